"""Copying a node's click statistics into the shared tier.

After each flush the analytics actor hands over the merged stats of every
link it touched; this mirror writes them, in one pipelined round trip, as
this node's field of the link's stats hash, and adds the flush's visitor
hashes to the per-day HyperLogLogs. Commands per flush: one EXISTS (of
this node's marker), one HSET per link touched, one PFADD and one EXPIRE
per link and day with visitors, all in a single round trip, so the cost
per click falls as traffic grows.

Writing the whole per-node value rather than increments makes a lost or
repeated write harmless: the next flush of that link carries the full
truth again. After an outage, or after the tier restarted empty, the
mirror re-sends every link's stats from LMDB, so stats on every node
become whole again without anyone re-counting a click.
"""

from __future__ import annotations

import logging
from typing import Any

import lmdb

from hyperlinkr.dragonfly import Breaker, stats_key, tier_errors, visitors_key
from hyperlinkr.stats import StoredStats, dump_stats, load_stats
from hyperlinkr.storage import STATS_DB

__all__ = ["TierStatsMirror"]

# Imported only with a tier configured, so resolving them here costs nothing.
TIER_ERRORS = tier_errors()

logger = logging.getLogger(__name__)

VISITORS_TTL_S = 400 * 86400
_RESYNC_BATCH = 500


class TierStatsMirror:
    """One per analytics actor."""

    def __init__(self, client: Any, node_name: str, env: lmdb.Environment) -> None:
        self._client = client
        self._node = node_name
        self._env = env
        self._breaker = Breaker()
        self._resync_needed = True
        # Gone when the tier lost its data: then every link is sent again.
        self._marker = f"hl:stats-synced:{node_name}"
        self.published = 0

    def publish(
        self,
        merged: dict[str, StoredStats],
        visitors: dict[str, dict[str, set[int]]],
    ) -> None:
        if not self._breaker.available:
            return
        try:
            if self._resync_needed:
                self._resync()
            if not self._send(merged, visitors):
                self._resync()  # the tier lost its data since the last flush
        except TIER_ERRORS as exc:
            self._breaker.failed()
            self._resync_needed = True
            logger.warning(
                "could not copy stats to Dragonfly (%s); this node's stats "
                "will be re-sent when it answers again",
                exc,
            )

    def _send(
        self,
        merged: dict[str, StoredStats],
        visitors: dict[str, dict[str, set[int]]],
    ) -> bool:
        """One round trip; False if the tier had lost this node's stats."""
        pipe = self._client.pipeline(transaction=False)
        pipe.exists(self._marker)
        for code, stats in merged.items():
            pipe.hset(stats_key(code), self._node, dump_stats(stats))
        for code, days in visitors.items():
            for day, hashes in days.items():
                if hashes:
                    key = visitors_key(code, day)
                    pipe.pfadd(key, *(f"{h:016x}" for h in hashes))
                    pipe.expire(key, VISITORS_TTL_S)
        answers = pipe.execute()
        self.published += len(merged)
        return bool(answers[0])

    def _resync(self) -> None:
        """Send every link's stats this node holds; progress in the log."""
        sent = 0
        batch: dict[str, StoredStats] = {}
        with self._env.begin(db=self._env.open_db(STATS_DB)) as txn:
            for key, value in txn.cursor():
                batch[bytes(key).decode()] = load_stats(value)
                if len(batch) >= _RESYNC_BATCH:
                    self._send(batch, {})
                    sent += len(batch)
                    batch = {}
        if batch:
            self._send(batch, {})
            sent += len(batch)
        self._client.set(self._marker, 1)
        self._resync_needed = False
        if sent:
            logger.info("re-sent the stats of %d links to Dragonfly", sent)

    def resync_later(self) -> None:
        """Ask for a full re-send at the next flush (the tier lost its data)."""
        self._resync_needed = True
