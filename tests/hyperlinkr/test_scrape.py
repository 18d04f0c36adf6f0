"""The node's view for GET /metrics, from real shared memory and LMDB."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hyperlinkr import metrics
from hyperlinkr.errors import StoreError
from hyperlinkr.health import Beat, Progress, heartbeats_dir
from hyperlinkr.linkstore import LinkReader
from hyperlinkr.node import Node
from hyperlinkr.scrape import render

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scraped(node: Node, count_links: Callable[[], int] | None = None) -> Samples:
    count = LinkReader(node.env).count if count_links is None else count_links
    body, content_type = render(node, count)
    assert content_type.startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def write_beat(node: Node, role: str, beat: Beat) -> None:
    directory = heartbeats_dir(node.settings)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / role).write_bytes(beat.encode())


@pytest.mark.usefixtures("unconfigured")
def test_shared_memory_and_lmdb_are_read_at_scrape_time(node: Node) -> None:
    node.table.put(b"abc1234", b"value")
    node.table.get(b"abc1234")
    node.table.get(b"missing")
    node.clicks.push(b"click")

    samples = scraped(node)
    assert samples[("hyperlinkr_l1_entries", frozenset())] == 1
    assert samples[("hyperlinkr_l1_hits_total", frozenset())] == 1
    assert samples[("hyperlinkr_l1_misses_total", frozenset())] == 1
    assert samples[("hyperlinkr_l1_capacity_entries", frozenset())] == 1024
    clicks = frozenset({("ring", "clicks")})
    assert samples[("hyperlinkr_ring_depth_records", clicks)] == 1
    assert samples[("hyperlinkr_ring_pushes_total", clicks)] == 1
    assert samples[("hyperlinkr_ring_capacity_records", clicks)] == 64
    writes = frozenset({("ring", "writes")})
    assert samples[("hyperlinkr_ring_drops_total", writes)] == 0
    assert samples[("hyperlinkr_links_stored", frozenset())] == 0


@pytest.mark.usefixtures("unconfigured")
def test_lag_and_heartbeat_ages_come_from_the_beats(node: Node) -> None:
    beat_s = 1_000_000.0
    progress = Progress(last_flush_ms=999_000_000, oldest_pending_ms=999_998_500)
    write_beat(node, "analytics", Beat(os.getpid(), beat_s, progress))
    write_beat(node, "persister", Beat(os.getpid(), beat_s - 10))

    samples = scraped(node)
    ages = {
        dict(labels)["role"]: value
        for (name, labels), value in samples.items()
        if name == "hyperlinkr_heartbeat_age_seconds"
    }
    assert ages["persister"] - ages["analytics"] == pytest.approx(10)
    lag = samples[("hyperlinkr_analytics_lag_seconds", frozenset())]
    assert lag == pytest.approx(1.5)  # at the beat, not aged to the scrape
    flushed = samples[
        ("hyperlinkr_analytics_last_flush_timestamp_seconds", frozenset())
    ]
    assert flushed == 999_000


@pytest.mark.usefixtures("unconfigured")
def test_no_lag_is_reported_without_an_analytics_beat(node: Node) -> None:
    samples = scraped(node)
    assert ("hyperlinkr_analytics_lag_seconds", frozenset()) not in samples


@pytest.mark.usefixtures("unconfigured")
def test_links_are_left_out_when_lmdb_cannot_count(node: Node) -> None:
    def broken() -> int:
        raise StoreError("counting links in LMDB failed: gone")

    samples = scraped(node, broken)
    assert ("hyperlinkr_links_stored", frozenset()) not in samples
    assert ("hyperlinkr_l1_entries", frozenset()) in samples


def test_every_process_files_are_summed_in(configured: Path, node: Node) -> None:
    metrics.record_request("hyperlinkr.redirect", 302, 0.0004)
    metrics.record_lookup("l1", "hit")

    samples = scraped(node)
    redirect = frozenset({("route", "redirect"), ("status", "302")})
    assert samples[("hyperlinkr_requests_total", redirect)] == 1
    hits = frozenset({("tier", "l1"), ("outcome", "hit")})
    assert samples[("hyperlinkr_store_lookups_total", hits)] == 1
