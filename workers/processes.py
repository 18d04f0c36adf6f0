"""The bodies of the actor processes, as their supervisors start them.

Each opens its own LMDB environment (the persister the links one, the
analytics actor the stats one) and attaches the node's segments
after it starts, runs until SIGINT or SIGTERM, finishes its batch (the
persister drains the write ring, the analytics actor flushes what it
counted) and returns an exit code for its supervisor. Each beats its
heartbeat (`hyperlinkr.health`) whenever its loop polls for a stop.

Each imports its own actor's modules when it starts, and the Dragonfly
ones only when HYPERLINKR_REDIS_URL is set: the persister has no use for
the user-agent parser, nor the analytics actor for the persister.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import TYPE_CHECKING

from hyperlinkr.config import Settings
from hyperlinkr.health import Heartbeat, Progress, beating
from hyperlinkr.node import open_click_ring, open_table, open_write_ring
from hyperlinkr.storage import (
    MappedPages,
    open_environment,
    open_journal_environment,
    open_stats_environment,
)

if TYPE_CHECKING:
    from workers.analytics import AnalyticsActor, Holding

__all__ = [
    "StopFlag",
    "batch_records_for",
    "holding_for",
    "run_analytics",
    "run_persister",
]

logger = logging.getLogger(__name__)


class StopFlag:
    """Set by SIGINT/SIGTERM; the work loop polls it between batches."""

    def __init__(self) -> None:
        self.signum: int | None = None
        signal.signal(signal.SIGINT, self._set)
        signal.signal(signal.SIGTERM, self._set)

    def _set(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None


def run_persister(settings: Settings) -> int:
    from workers.persister import Persister

    stop = StopFlag()
    heartbeat = Heartbeat.for_role(settings, "persister")
    env = open_environment(settings.data_dir, settings.lmdb_map_size_bytes)
    writes, table = open_write_ring(settings), open_table(settings)
    replicated = settings.redis_url is not None
    try:
        replicator = None
        if settings.redis_url is not None:
            from hyperlinkr.dragonfly import sync_client
            from workers.replication import Replicator

            client = sync_client(settings.redis_url, settings.redis_cluster)
            replicator = Replicator(client, settings.node_name, env, table)
            thread = replicator.start(stop)
        Persister(writes, table, env, record=replicated).run(beating(stop, heartbeat))
        if replicator is not None:
            thread.join(5)
    finally:
        writes.close()
        table.close()
        env.close()
    return 0


# A merge costs about the same for 4,000 clicks as for 16,000 (it parses
# and rewrites the stored stats of every link touched), so under load the
# actor merges by time, not by count, and frees the ring in between with
# journal commits (see workers.analytics, Journaling); a quarter of the
# ring held back leaves the rest for what arrives during a merge or a
# restart. Below the rate that fills the rest within RESTART_ROOM_S, it
# holds up to half (Batching): a restart (the supervisor's 0.25 s delay,
# then about 0.3 s to start) still finds room for a second of clicks.
MAX_BATCH_RECORDS = 16_384
RESTART_ROOM_S = 1.0


def batch_records_for(ring_capacity: int) -> int:
    """How many clicks the analytics actor may hold whatever the rate."""
    return max(1, min(MAX_BATCH_RECORDS, ring_capacity // 4))


def holding_for(ring_capacity: int) -> Holding:
    """When the analytics actor's taken clicks make a flush due."""
    from workers.analytics import Holding

    at_least = batch_records_for(ring_capacity)
    at_most = max(at_least, min(2 * MAX_BATCH_RECORDS, ring_capacity // 2))
    return Holding(ring_capacity, at_least, at_most, RESTART_ROOM_S)


def run_analytics(settings: Settings) -> int:
    from workers.analytics import AnalyticsActor, FlushPace
    from workers.statsmove import move_stats

    stop = StopFlag()
    map_size = settings.lmdb_map_size_bytes
    env = open_stats_environment(settings.data_dir, map_size, writer=True)
    links_env = open_environment(settings.data_dir, map_size)
    try:
        move_stats(links_env, env)
    finally:
        links_env.close()
    journal = open_journal_environment(settings.data_dir, map_size)
    clicks = open_click_ring(settings)
    try:
        mirror = None
        if settings.redis_url is not None:
            from hyperlinkr.dragonfly import sync_client
            from workers.statsmirror import TierStatsMirror

            client = sync_client(settings.redis_url, settings.redis_cluster)
            mirror = TierStatsMirror(client, settings.node_name, env)
        actor = AnalyticsActor(
            clicks,
            env,
            flush_interval_ms=settings.flush_interval_ms,
            recent_limit=settings.recent_clicks,
            batch_records=batch_records_for(clicks.capacity),
            mirror=mirror,
            # A flush rests while a quarter of the ring is free: one that
            # starts with half of it held must not run flat out at once.
            pace=FlushPace(lambda: clicks.statistics().depth, 3 * clicks.capacity // 4),
            release_pages=MappedPages(env).release,
            holding=holding_for(clicks.capacity),
            journal=journal,
        )
        heartbeat = Heartbeat.for_role(settings, "analytics", lambda: _progress(actor))
        actor.run(beating(stop, heartbeat))
    finally:
        clicks.close()
        journal.close()
        env.close()
    return 0


def _progress(actor: AnalyticsActor) -> Progress:
    stats = actor.statistics()
    return Progress(stats.last_flush_ms, stats.oldest_pending_ms)
