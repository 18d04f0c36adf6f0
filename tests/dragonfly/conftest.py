from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dragonfly.servers import Cluster, Server
from tests.e2e.conftest import make_node  # noqa: F401 - the fixture, reused


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(tmp_path / "valkey").start()
    yield started
    started.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    started = Cluster(tmp_path / "cluster").start()
    yield started
    started.stop()
