"""Fixtures for the shm benchmarks, and a per-record summary of batched ones.

pytest-benchmark reports the time of one call of the benchmarked function.
A batched benchmark (one call drains thousands of ring records) declares
how many records a call handles through `per_record`; its median per record
is then kept in the benchmark's `extra_info` (so `--benchmark-autosave`
files carry it) and printed at the end of the run, after pytest-benchmark's
own tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from multiprocessing.queues import Queue

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks import delivery, workload
from shm import Ring, Table

_PER_RECORD_LINES = pytest.StashKey[list[str]]()


@pytest.fixture
def table() -> Iterator[Table]:
    """A filled table (see workload.py), unlinked after the test."""
    with workload.filled_table() as filled:
        yield filled


@pytest.fixture
def entries() -> dict[bytes, bytes]:
    """The table's contents as a plain dict, the baseline for get and put."""
    return workload.table_entries()


@pytest.fixture
def push_ring() -> Iterator[Ring]:
    """A ring with room for every push of a timed run, so it never fills."""
    capacity = workload.push_ring_capacity(workload.push_calls())
    with workload.open_ring(capacity) as ring:
        yield ring


@pytest.fixture
def pop_ring() -> Iterator[Ring]:
    """A ring with room for one round of the pop benchmark."""
    with workload.open_ring(2 * workload.POP_ROUND_RECORDS) as ring:
        yield ring


@pytest.fixture
def queue() -> Iterator[Queue[bytes | None]]:
    """A multiprocessing.Queue with no consumer (see workload.py)."""
    with workload.queue_without_consumer() as unread:
        yield unread


@pytest.fixture
def ring_delivery() -> Iterator[delivery.Deliver]:
    """Rounds of pushes to a ring a spawned consumer drains (delivery.py)."""
    with delivery.ring_delivery() as deliver:
        yield deliver


@pytest.fixture
def queue_delivery() -> Iterator[delivery.Deliver]:
    """Rounds of puts to a Queue a spawned consumer reads (delivery.py)."""
    with delivery.queue_delivery() as deliver:
        yield deliver


@pytest.fixture
def per_record(
    request: pytest.FixtureRequest, benchmark: BenchmarkFixture
) -> Callable[[int], None]:
    """Call with the records one benchmarked call handles, after it ran."""

    def record(records_per_call: int) -> None:
        if benchmark.stats is None:  # --benchmark-disable: nothing was timed
            return
        median_ns = benchmark.stats.stats.median * 1e9 / records_per_call
        benchmark.extra_info["records_per_call"] = records_per_call
        benchmark.extra_info["median_ns_per_record"] = round(median_ns, 1)
        lines = request.config.stash.setdefault(_PER_RECORD_LINES, [])
        lines.append(
            f"{request.node.name}: median {median_ns:.1f} ns per record "
            f"({records_per_call} records per call)"
        )

    return record


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's tables
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(_PER_RECORD_LINES, [])
    if lines:
        terminalreporter.section("benchmarks, per record")
        for line in lines:
            terminalreporter.write_line(line)
