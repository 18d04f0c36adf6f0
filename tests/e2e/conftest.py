from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.nodes import RunningNode

MakeNode = Callable[..., RunningNode]


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[MakeNode]:
    """Starts nodes on demand; stops them and removes their shm afterwards."""
    nodes: list[RunningNode] = []

    def make(data_dir: Path | None = None, **settings: Any) -> RunningNode:
        node = RunningNode(data_dir or tmp_path / f"data{len(nodes)}", **settings)
        nodes.append(node)
        return node.start()

    yield make
    for node in nodes:
        node.stop()
        node.unlink_shm()


@pytest.fixture
def node(make_node: MakeNode) -> RunningNode:
    return make_node()
