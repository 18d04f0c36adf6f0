"""Micro benchmarks of what a web worker records per request.

Groups (one pytest-benchmark table each):

    metrics-request   record_request of a redirect, as the response
                      middleware calls it (a tally in memory); beside the
                      same call before configure() (the call alone), and
                      beside recording it straight into the files, as
                      before the tally (a counter child's inc() and a
                      histogram child's observe())
    metrics-lookup    record_lookup of an L1 hit, as LinkStore.lookup calls
                      it; beside one increment of a prometheus_client
                      counter child, what each lookup cost before the tally
    metrics-redirect  all one L1-hit redirect records: a lookup and a
                      request, with a flush every 1,000 redirects (each
                      flush at least as costly as the redirect's three
                      file increments, so this bounds the flush's share
                      from above; the web worker flushes every 100 ms)

The bar (well under a microsecond per recorded request, on the median) is
read off these tables, not asserted: timing depends on the machine. A
direct recording is a prometheus_client multiprocess increment (a lock, a
getpid() system call and a 16-byte write into a memory-mapped file), so
those figures move with the cost of a system call on the host. The
assertions only check that each benchmark recorded what it claims, and
hold with --benchmark-disable too, where every function runs once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import Counter, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector
from pytest_benchmark.fixture import BenchmarkFixture

from hyperlinkr import metrics
from hyperlinkr.config import Settings

ROUTE = "hyperlinkr.redirect"
REDIRECT_S = 0.00018  # a typical L1-hit redirect


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave this process's metrics as they were, whatever the benchmark did."""
    monkeypatch.setattr(metrics, "_recorder", None)
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "unset-by-the-benchmark")
    monkeypatch.delenv(metrics.MULTIPROC_ENV)


@pytest.fixture
def directory(isolated: None, tmp_path: Path) -> Iterator[Path]:
    """Metrics configured into a directory of the benchmark's own."""
    settings = Settings.from_env({"HYPERLINKR_DATA_DIR": str(tmp_path)})
    yield metrics.configure(settings)


def recorded(directory: Path, name: str) -> float:
    collector = MultiProcessCollector(None, path=str(directory))
    return sum(
        sample.value
        for family in collector.collect()
        for sample in family.samples
        if sample.name == name
    )


@pytest.mark.benchmark(group="metrics-request")
def test_record_request(benchmark: BenchmarkFixture, directory: Path) -> None:
    benchmark(metrics.record_request, ROUTE, 302, REDIRECT_S)
    metrics.flush()
    assert recorded(directory, "hyperlinkr_requests_total") >= 1


@pytest.mark.benchmark(group="metrics-request")
@pytest.mark.usefixtures("isolated")
def test_baseline_record_request_unconfigured(benchmark: BenchmarkFixture) -> None:
    benchmark(metrics.record_request, ROUTE, 302, REDIRECT_S)


@pytest.mark.benchmark(group="metrics-request")
def test_baseline_record_request_into_the_files(
    benchmark: BenchmarkFixture, directory: Path
) -> None:
    count = Counter("bench_requests", "count", ("route",), registry=None)
    latency = Histogram(
        "bench_seconds",
        "latency",
        ("route",),
        buckets=metrics.REQUEST_BUCKETS_S,
        registry=None,
    )
    count_child, latency_child = count.labels("redirect"), latency.labels("redirect")

    def record() -> None:
        count_child.inc()
        latency_child.observe(REDIRECT_S)

    benchmark(record)
    assert recorded(directory, "bench_requests_total") >= 1


@pytest.mark.benchmark(group="metrics-lookup")
def test_record_lookup(benchmark: BenchmarkFixture, directory: Path) -> None:
    benchmark(metrics.record_lookup, "l1", "hit")
    metrics.flush()
    assert recorded(directory, "hyperlinkr_store_lookups_total") >= 1


@pytest.mark.benchmark(group="metrics-lookup")
def test_baseline_counter_child_inc(
    benchmark: BenchmarkFixture, directory: Path
) -> None:
    child = Counter("bench", "one child", ("x",), registry=None).labels("y")
    benchmark(child.inc)
    assert (directory / f"counter_{os.getpid()}.db").exists()


def _redirects(
    benchmark: BenchmarkFixture, directory: Path, record_one: Callable[[], None]
) -> None:
    """Benchmark record_one as a redirect records, flushed as a worker does."""
    redirects = 0

    def redirect() -> None:
        nonlocal redirects
        record_one()
        redirects += 1
        if redirects % 1000 == 0:
            metrics.flush()

    benchmark(redirect)
    metrics.flush()
    assert recorded(directory, "hyperlinkr_requests_total") == redirects


@pytest.mark.benchmark(group="metrics-redirect")
def test_record_one_redirect(benchmark: BenchmarkFixture, directory: Path) -> None:
    def record() -> None:
        metrics.record_lookup("l1", "hit")
        metrics.record_request(ROUTE, 302, REDIRECT_S)

    _redirects(benchmark, directory, record)


@pytest.mark.benchmark(group="metrics-redirect")
def test_record_one_fast_path_redirect(
    benchmark: BenchmarkFixture, directory: Path
) -> None:
    # The same two records as test_record_one_redirect, through the one
    # call the redirect fast path makes.
    record = metrics.l1_redirect_recorder(ROUTE, 302)
    _redirects(benchmark, directory, lambda: record(REDIRECT_S))
