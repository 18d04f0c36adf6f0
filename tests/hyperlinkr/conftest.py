"""Fixtures for the observability tests: a configured metrics directory."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import values
from prometheus_client.multiprocess import MultiProcessCollector

import shm
from hyperlinkr import metrics
from hyperlinkr.config import Settings
from hyperlinkr.node import Node, segment_names

Sums = dict[tuple[str, frozenset[tuple[str, str]]], float]


def node_settings(data_dir: Path) -> Settings:
    """A small node of its own: unique segment names, tiny rings."""
    return Settings.from_env(
        {
            "HYPERLINKR_NODE_NAME": f"t{uuid.uuid4().hex[:10]}",
            "HYPERLINKR_DATA_DIR": str(data_dir),
            "HYPERLINKR_L1_CAPACITY_ENTRIES": "1024",
            "HYPERLINKR_CLICK_RING_RECORDS": "64",
            "HYPERLINKR_WRITE_RING_RECORDS": "16",
            "HYPERLINKR_LMDB_MAP_SIZE_MB": "16",
        }
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return node_settings(tmp_path / "data")


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Metrics as in a process that never called configure(); restored after."""
    monkeypatch.setattr(metrics, "_recorder", None)
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    # setenv first so that the test's own value is removed afterwards.
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "unset-by-the-test")
    monkeypatch.delenv(metrics.MULTIPROC_ENV)


@pytest.fixture
def configured(unconfigured: None, settings: Settings) -> Path:
    """This process's metrics pointed at the test's node; returns the directory."""
    return metrics.configure(settings, restart_roles=("web",))


@pytest.fixture
def sums(configured: Path) -> Callable[[], Sums]:
    """Reads the directory's node-wide sums, as a scrape would (flush first)."""

    def read() -> Sums:
        metrics.flush()
        collector = MultiProcessCollector(None, path=str(configured))
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in collector.collect()
            for sample in family.samples
        }

    return read


@pytest.fixture
def node(settings: Settings) -> Iterator[Node]:
    """The shared segments and LMDB of the test's node; unlinked afterwards."""
    opened = Node.open(settings)
    yield opened
    opened.close()
    for name in segment_names(settings):
        shm.unlink(name)
