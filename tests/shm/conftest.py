from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

import shm


@pytest.fixture
def segment_name() -> Iterator[Callable[[], str]]:
    """Hands out unique segment names and unlinks them after the test."""
    names: list[str] = []

    def make() -> str:
        name = f"hlt-{os.getpid()}-{uuid.uuid4().hex[:10]}"
        names.append(name)
        return name

    yield make
    for name in names:
        shm.unlink(name)
