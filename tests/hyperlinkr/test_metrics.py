"""Recording metrics in one process: configure(), then the record_* calls."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from hyperlinkr import metrics
from hyperlinkr.config import Settings
from hyperlinkr.errors import ConfigError
from tests.hyperlinkr.conftest import Sums, node_settings


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


@pytest.mark.usefixtures("unconfigured")
def test_nothing_is_recorded_or_created_before_configure(settings: Settings) -> None:
    metrics.record_request("hyperlinkr.redirect", 302, 0.001)
    metrics.record_lookup("l1", "hit")
    metrics.record_commit(0.01, 3)
    metrics.record_flush(0.01, 1, 1)
    metrics.record_restart("web")
    assert not metrics.directory_of(settings).exists()


def test_configure_points_prometheus_client_at_the_node_directory(
    configured: Path, settings: Settings
) -> None:
    assert configured == (settings.data_dir / "metrics").resolve()
    assert configured.is_dir()
    assert os.environ[metrics.MULTIPROC_ENV] == str(configured)
    assert (configured / f"histogram_{os.getpid()}.db").exists()


def test_requests_are_counted_by_route_and_status(sums: Callable[[], Sums]) -> None:
    metrics.record_request("hyperlinkr.redirect", 302, 0.0002)
    metrics.record_request("hyperlinkr.redirect", 302, 0.0002)
    metrics.record_request("hyperlinkr.redirect", 404, 0.0003)
    metrics.record_request("", 404, 0.004)

    now = sums()
    requests = "hyperlinkr_requests_total"
    assert now[(requests, labels(route="redirect", status="302"))] == 2
    assert now[(requests, labels(route="redirect", status="404"))] == 1
    assert now[(requests, labels(route="unmatched", status="404"))] == 1


def test_a_sub_millisecond_redirect_lands_in_a_sub_millisecond_bucket(
    sums: Callable[[], Sums],
) -> None:
    metrics.record_request("hyperlinkr.redirect", 302, 0.0002)

    now = sums()
    bucket = "hyperlinkr_request_duration_seconds_bucket"
    assert now[(bucket, labels(route="redirect", le="0.0001"))] == 0
    assert now[(bucket, labels(route="redirect", le="0.00025"))] == 1
    total = "hyperlinkr_request_duration_seconds_sum"
    assert now[(total, labels(route="redirect"))] == pytest.approx(0.0002)


def test_tallied_requests_reach_the_files_only_when_flushed(
    configured: Path, sums: Callable[[], Sums]
) -> None:
    def on_file() -> float:
        collector = MultiProcessCollector(None, path=str(configured))
        return sum(
            sample.value
            for family in collector.collect()
            for sample in family.samples
            if sample.name == "hyperlinkr_requests_total"
        )

    metrics.record_request("hyperlinkr.redirect", 302, 0.0002)
    metrics.record_lookup("l1", "hit")
    assert on_file() == 0
    metrics.flush()
    assert on_file() == 1
    metrics.flush()  # nothing new: nothing added twice
    assert on_file() == 1


def test_a_flushed_tally_is_what_observing_one_by_one_leaves(
    sums: Callable[[], Sums],
) -> None:
    # Every bucket bound, values between bounds, and past the last bound.
    bounds = metrics.REQUEST_BUCKETS_S
    seconds = [*bounds, *(b * 0.7 for b in bounds), 7.5, 0.0, 1e-7]
    for value in seconds:
        metrics.record_request("hyperlinkr.batched", 302, value)
        metrics.record_lookup("l1", "miss")
    tallied = sums()
    direct = Histogram(
        "direct", "the same values observed one by one", buckets=bounds, registry=None
    )
    for value in seconds:
        direct.observe(value)

    cumulative = 0.0
    for bound in [*bounds, float("inf")]:
        cumulative += sum(1 for value in seconds if _bucket_of(value) == bound)
        le = "+Inf" if bound == float("inf") else floatToGoString(bound)
        got = tallied[
            (
                "hyperlinkr_request_duration_seconds_bucket",
                labels(route="batched", le=le),
            )
        ]
        assert got == cumulative
        assert got == _sample(direct, "direct_bucket", le=le)
    tallied_sum = tallied[
        ("hyperlinkr_request_duration_seconds_sum", labels(route="batched"))
    ]
    assert tallied_sum == pytest.approx(sum(seconds))
    assert tallied_sum == pytest.approx(_sample(direct, "direct_sum"))
    miss = ("hyperlinkr_store_lookups_total", labels(tier="l1", outcome="miss"))
    assert tallied[miss] == len(seconds)


def _bucket_of(value: float) -> float:
    return next(
        (bound for bound in metrics.REQUEST_BUCKETS_S if value <= bound),
        float("inf"),
    )


def _sample(histogram: Histogram, name: str, **wanted: str) -> float:
    return next(
        sample.value
        for family in histogram.collect()
        for sample in family.samples
        if sample.name == name
        and all(sample.labels.get(k) == v for k, v in wanted.items())
    )


def test_the_fast_path_recorder_records_what_the_two_calls_record(
    sums: Callable[[], Sums],
) -> None:
    # Between two reads, once through each: the differences must be equal,
    # including a flush in between (the recorder holds the same tallies).
    before = sums()
    metrics.record_lookup("l1", "hit")
    metrics.record_request("hyperlinkr.redirect", 301, 0.0002)
    metrics.record_lookup("l1", "hit")
    metrics.record_request("hyperlinkr.redirect", 301, 0.003)
    middle = sums()
    record = metrics.l1_redirect_recorder("hyperlinkr.redirect", 301)
    record(0.0002)
    sums()
    record(0.003)
    after = sums()

    def change(a: Sums, b: Sums) -> Sums:
        return {key: b[key] - a.get(key, 0.0) for key in b}

    by_calls, by_recorder = change(before, middle), change(middle, after)
    assert by_recorder == pytest.approx(by_calls)
    hits = ("hyperlinkr_store_lookups_total", labels(tier="l1", outcome="hit"))
    assert by_recorder[hits] == 2


@pytest.mark.usefixtures("unconfigured")
def test_the_fast_path_recorder_records_nothing_before_configure(
    settings: Settings,
) -> None:
    metrics.l1_redirect_recorder("hyperlinkr.redirect", 302)(0.001)
    assert not metrics.directory_of(settings).exists()


def test_every_lookup_series_is_exported_from_the_start(
    sums: Callable[[], Sums],
) -> None:
    metrics.record_lookup("l1", "miss")
    metrics.record_lookup("lmdb", "hit")

    now = sums()
    for tier, outcome in metrics.LOOKUP_SERIES:
        expected = 1 if (tier, outcome) in {("l1", "miss"), ("lmdb", "hit")} else 0
        series = ("hyperlinkr_store_lookups_total", labels(tier=tier, outcome=outcome))
        assert now[series] == expected


def test_a_tier_is_exported_once_it_is_used(sums: Callable[[], Sums]) -> None:
    series = ("hyperlinkr_store_lookups_total", labels(tier="dragonfly", outcome="hit"))
    assert series not in sums()
    metrics.record_lookup("dragonfly", "hit")
    assert sums()[series] == 1


def test_actor_events_are_counted(sums: Callable[[], Sums]) -> None:
    metrics.record_flush(0.003, human=5, bot=2)
    metrics.record_flush(0.004, human=1, bot=0)
    metrics.record_commit(0.002, 7)
    metrics.record_journal_commit(0.0015)

    now = sums()
    assert now[("hyperlinkr_clicks_total", labels(kind="human"))] == 6
    assert now[("hyperlinkr_clicks_total", labels(kind="bot"))] == 2
    assert now[("hyperlinkr_analytics_flush_duration_seconds_sum", labels())] == (
        pytest.approx(0.007)
    )
    assert now[("hyperlinkr_persister_batch_mutations_sum", labels())] == 7
    commits = ("hyperlinkr_persister_commit_duration_seconds_bucket", labels(le="+Inf"))
    assert now[commits] == 1
    journal = ("hyperlinkr_analytics_journal_commit_duration_seconds_sum", labels())
    assert now[journal] == pytest.approx(0.0015)


def test_restarts_of_watched_roles_start_at_zero(sums: Callable[[], Sums]) -> None:
    assert sums()[("hyperlinkr_process_restarts_total", labels(role="web"))] == 0
    metrics.record_restart("web")
    metrics.record_restart("analytics")

    now = sums()
    assert now[("hyperlinkr_process_restarts_total", labels(role="web"))] == 1
    assert now[("hyperlinkr_process_restarts_total", labels(role="analytics"))] == 1


@pytest.mark.usefixtures("unconfigured")
def test_an_unusable_data_dir_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="HYPERLINKR_DATA_DIR writable"):
        metrics.configure(node_settings(blocker / "data"))
