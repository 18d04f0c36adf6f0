"""The node's whole view for GET /metrics, put together at scrape time.

A scrape sums every process's multiprocess files (prometheus_client's
`MultiProcessCollector`, under the directory's shared lock, see
`hyperlinkr.metricsdir`) and adds what is read rather than recorded:

- the L1 table's and both rings' `statistics()` from shared memory, which
  every process of the node adds to already, so recording them again per
  request would only cost the hot path;
- the number of links in LMDB;
- the actors' heartbeats: their ages and the analytics lag.

Everything here is node-wide, so whichever web worker answers, the view
is the same. The shared-memory counters start again from zero when a
segment is recreated (`hyperlinkr shm-unlink`), which Prometheus sees as
an ordinary counter reset.

Analytics lag is the age of the oldest click the actor had taken from the
ring and not yet committed, measured when it last beat (at most a second
ago), and 0 when nothing was pending. Measured at the beat, not aged on
to the scrape: a stale beat would otherwise report a backlog the actor
flushed long ago. Clicks still waiting in the ring show as the click
ring's depth; an actor that stopped beating shows in its heartbeat age
(and in /readyz), while its lag stays at its last value.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector

from hyperlinkr.errors import StoreError
from hyperlinkr.health import ACTOR_ROLES, Beat, heartbeats_dir, read_beat
from hyperlinkr.metrics import directory_of, flush
from hyperlinkr.metricsdir import locked
from hyperlinkr.node import Node

__all__ = ["NodeCollector", "render"]

# (field of shm.TableStatistics, metric name, help); counters then gauges.
_TABLE_COUNTERS = (
    ("hits", "hyperlinkr_l1_hits", "L1 lookups that found the key"),
    ("misses", "hyperlinkr_l1_misses", "L1 lookups that did not find the key"),
    ("inserts", "hyperlinkr_l1_inserts", "Records written to the L1 log"),
    ("evictions", "hyperlinkr_l1_evictions", "L1 entries evicted to make room"),
    ("promotions", "hyperlinkr_l1_promotions", "L1 hits copied to the log head"),
    ("deletes", "hyperlinkr_l1_deletes", "L1 entries deleted"),
    ("cas_retries", "hyperlinkr_l1_cas_retries", "L1 index CAS retries"),
)
_TABLE_GAUGES = (
    ("entries", "hyperlinkr_l1_entries", "Entries in the L1 table"),
    ("capacity", "hyperlinkr_l1_capacity_entries", "Entries L1 is sized for"),
)
_RING_COUNTERS = (
    ("pushes", "hyperlinkr_ring_pushes", "Records pushed to the ring"),
    ("drops", "hyperlinkr_ring_drops", "Pushes refused because the ring was full"),
    ("skipped", "hyperlinkr_ring_skipped", "Cells skipped (producer died)"),
    ("late", "hyperlinkr_ring_late", "Records dropped by a producer that came back"),
)
_RING_GAUGES = (
    ("depth", "hyperlinkr_ring_depth_records", "Records not yet consumed"),
    ("capacity", "hyperlinkr_ring_capacity_records", "Records the ring holds"),
)


class NodeCollector:
    """Reads the node's shared memory, LMDB and heartbeats at each scrape."""

    def __init__(
        self,
        node: Node,
        count_links: Callable[[], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._node = node
        self._count_links = count_links
        self._heartbeats = heartbeats_dir(node.settings)
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        table = self._node.table.statistics()
        for attr, name, doc in _TABLE_COUNTERS:
            yield CounterMetricFamily(name, doc, value=getattr(table, attr))
        for attr, name, doc in _TABLE_GAUGES:
            yield GaugeMetricFamily(name, doc, value=getattr(table, attr))
        yield from self._rings()
        yield from self._links()
        yield from self._actors()

    def _rings(self) -> Iterator[Metric]:
        rings = (("clicks", self._node.clicks), ("writes", self._node.writes))
        snapshots = [(label, ring.statistics()) for label, ring in rings]
        for attr, name, doc in _RING_COUNTERS:
            counter = CounterMetricFamily(name, doc, labels=("ring",))
            for label, stats in snapshots:
                counter.add_metric((label,), getattr(stats, attr))
            yield counter
        for attr, name, doc in _RING_GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=("ring",))
            for label, stats in snapshots:
                gauge.add_metric((label,), getattr(stats, attr))
            yield gauge

    def _links(self) -> Iterator[Metric]:
        try:
            count = self._count_links()
        except StoreError:
            return  # /readyz says why; a scrape without the sample is honest
        yield GaugeMetricFamily(
            "hyperlinkr_links_stored", "Links stored in LMDB", value=count
        )

    def _actors(self) -> Iterator[Metric]:
        now_s = self._clock()
        ages = GaugeMetricFamily(
            "hyperlinkr_heartbeat_age_seconds",
            "Seconds since each actor's last heartbeat",
            labels=("role",),
        )
        for role in ACTOR_ROLES:
            beat = read_beat(self._heartbeats, role)
            if beat is None:
                continue
            ages.add_metric((role,), max(0.0, now_s - beat.at_s))
            if role == "analytics":
                yield from _analytics(beat)
        yield ages


def _analytics(beat: Beat) -> Iterator[Metric]:
    # TODO: the lag is as old as the beat (up to BEAT_INTERVAL_S); a lag
    # to the millisecond needs the actor to publish it in shared memory.
    oldest_ms = beat.progress.oldest_pending_ms
    lag_s = 0.0 if oldest_ms is None else max(0.0, beat.at_s - oldest_ms / 1000)
    yield GaugeMetricFamily(
        "hyperlinkr_analytics_lag_seconds",
        "Age of the oldest uncommitted click at the last heartbeat (0 if none)",
        value=lag_s,
    )
    last_flush_ms = beat.progress.last_flush_ms
    if last_flush_ms is not None:
        yield GaugeMetricFamily(
            "hyperlinkr_analytics_last_flush_timestamp_seconds",
            "Wall-clock time of the analytics actor's last flush",
            value=last_flush_ms / 1000,
        )


def render(node: Node, count_links: Callable[[], int]) -> tuple[bytes, str]:
    """The node's metrics in Prometheus text format, and its content type.

    This process's tallied requests are flushed first, so its own counts are
    never behind its scrape (other workers' may be, by up to
    `metrics.FLUSH_INTERVAL_S`).
    """
    flush()
    registry = CollectorRegistry()
    registry.register(NodeCollector(node, count_links))
    directory = directory_of(node.settings).resolve()
    if not directory.is_dir():
        # metrics.configure() never ran in this process (a bare create_app):
        # there are no multiprocess files, only the node's shared state.
        return generate_latest(registry), CONTENT_TYPE_LATEST
    collect = MultiProcessCollector  # untyped in prometheus_client
    collect(registry, path=str(directory))  # type: ignore[no-untyped-call]
    with locked(directory, exclusive=False):
        body = generate_latest(registry)
    return body, CONTENT_TYPE_LATEST
