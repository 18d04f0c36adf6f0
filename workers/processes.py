"""The bodies of the actor processes, as their supervisors start them.

Each opens its own LMDB environment and attaches the node's segments
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
from hyperlinkr.storage import open_environment

if TYPE_CHECKING:
    from workers.analytics import AnalyticsActor

__all__ = ["StopFlag", "run_analytics", "run_persister"]

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


def run_analytics(settings: Settings) -> int:
    from workers.analytics import AnalyticsActor

    stop = StopFlag()
    env = open_environment(settings.data_dir, settings.lmdb_map_size_bytes)
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
            mirror=mirror,
        )
        heartbeat = Heartbeat.for_role(settings, "analytics", lambda: _progress(actor))
        actor.run(beating(stop, heartbeat))
    finally:
        clicks.close()
        env.close()
    return 0


def _progress(actor: AnalyticsActor) -> Progress:
    stats = actor.statistics()
    return Progress(stats.last_flush_ms, stats.oldest_pending_ms)
