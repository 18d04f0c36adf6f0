"""Fixtures of the analytics tests: a real LMDB environment in the test's tmp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest
from actor_io import MAP_SIZE_BYTES

from hyperlinkr.storage import open_environment, open_journal_environment


@pytest.fixture
def lmdb_path(tmp_path: Path) -> Path:
    """Where `env` lives; a test that restarts the actor reopens it here."""
    return tmp_path / "lmdb"


@pytest.fixture
def env(lmdb_path: Path) -> Iterator[lmdb.Environment]:
    environment = open_environment(lmdb_path, MAP_SIZE_BYTES)
    yield environment
    environment.close()


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    """Where `journal_env` lives (in its `journal` subdirectory)."""
    return tmp_path


@pytest.fixture
def journal_env(journal_dir: Path) -> Iterator[lmdb.Environment]:
    environment = open_journal_environment(journal_dir, MAP_SIZE_BYTES)
    yield environment
    environment.close()
