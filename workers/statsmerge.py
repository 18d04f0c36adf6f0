"""Merging per-link click deltas into the stats stored in LMDB.

`merge_into` runs inside the analytics actor's write transaction, the one
that also records the ring checkpoint. Nothing here commits: the caller
owns the transaction, so either every link's counts and the checkpoint
land together, or none of them do.

The stored value per link is `hyperlinkr.stats.StoredStats`. Its maps stay
bounded however long a link lives: the hundred largest entries of a
breakdown are kept and the rest are summed under `OTHER_KEY`; per-day
counts keep the newest `MAX_DAYS` days; the recent list keeps the newest
`recent_limit` clicks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from operator import itemgetter

import lmdb

from hyperlinkr.stats import (
    OTHER_KEY,
    RecentClick,
    StatsFormatError,
    StoredStats,
    dump_stats,
    empty_stats,
    load_stats,
)
from workers.aggregates import LinkDelta

__all__ = ["MAX_DAYS", "MAX_MAP_ENTRIES", "merge", "merge_into"]

logger = logging.getLogger(__name__)

MAX_MAP_ENTRIES = 100
MAX_DAYS = 400
_BY_TIME = itemgetter(0)  # a recent click's ts_ms


def _bounded_top(counts: dict[str, int], limit: int) -> dict[str, int]:
    if len(counts) <= limit:
        return counts
    folded = counts.pop(OTHER_KEY, 0)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = dict(ranked[: limit - 1])
    kept[OTHER_KEY] = folded + sum(n for _, n in ranked[limit - 1 :])
    return kept


def _added(stored: Mapping[str, int], delta: Mapping[str, int]) -> dict[str, int]:
    """`stored` plus `delta`, key by key, new keys after the stored ones."""
    merged = dict(stored)
    for key, n in delta.items():
        merged[key] = merged.get(key, 0) + n
    return merged


def _merge_counts(
    stored: dict[str, int], delta: dict[str, int], limit: int
) -> dict[str, int]:
    return _bounded_top(_added(stored, delta), limit)


def _merge_days(stored: dict[str, int], delta: dict[str, int]) -> dict[str, int]:
    merged = _added(stored, delta)
    newest = sorted(merged)[-MAX_DAYS:]
    return {day: merged[day] for day in newest}


def _merge_recent(
    stored: list[RecentClick], delta: list[RecentClick], limit: int
) -> list[RecentClick]:
    merged = delta + stored
    merged.sort(key=_BY_TIME, reverse=True)
    return merged[:limit]


def _min_ts(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max_ts(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def merge(stats: StoredStats, delta: LinkDelta, recent_limit: int) -> StoredStats:
    """`stats` with `delta` added, every map and list kept bounded."""
    return StoredStats(
        version=stats["version"],
        total=stats["total"] + delta.total,
        human=stats["human"] + delta.human,
        bot=stats["bot"] + delta.bot,
        first_ts_ms=_min_ts(stats["first_ts_ms"], delta.first_ts_ms),
        last_ts_ms=_max_ts(stats["last_ts_ms"], delta.last_ts_ms),
        per_day=_merge_days(stats["per_day"], delta.per_day),
        referrers=_merge_counts(stats["referrers"], delta.referrers, MAX_MAP_ENTRIES),
        browsers=_merge_counts(stats["browsers"], delta.browsers, MAX_MAP_ENTRIES),
        operating_systems=_merge_counts(
            stats["operating_systems"], delta.operating_systems, MAX_MAP_ENTRIES
        ),
        devices=_merge_counts(stats["devices"], delta.devices, MAX_MAP_ENTRIES),
        recent=_merge_recent(stats["recent"], delta.recent, recent_limit),
    )


def _stored_or_empty(
    txn: lmdb.Transaction, db: lmdb._Database, key: bytes
) -> StoredStats:
    raw = txn.get(key, db=db)
    if raw is None:
        return empty_stats()
    try:
        return load_stats(raw)
    except StatsFormatError as exc:
        # Refusing to merge would stop every flush behind one bad value;
        # restarting that link's stats from zero keeps the rest counting.
        logger.error(
            "stats of link %r are unreadable (%s); starting them again from zero",
            key.decode(errors="replace"),
            exc,
        )
        return empty_stats()


def merge_into(
    txn: lmdb.Transaction,
    db: lmdb._Database,
    deltas: Iterable[tuple[str, LinkDelta]],
    recent_limit: int,
    keep: bool = True,
) -> dict[str, StoredStats]:
    """Add `deltas`, (code, delta) pairs, to the stats in `db`, in the caller's `txn`.

    Returns the merged stats of every link it touched, or nothing when not
    asked to `keep` them: only the Dragonfly mirror needs them, and a flush
    over many links would hold all of them at once. Each link is read,
    merged and written in turn, so only one link's stats are in memory at
    a time (and one delta, when `deltas` works them out as it goes).
    """
    merged = {}
    for code, delta in deltas:
        key = code.encode()
        stats = merge(_stored_or_empty(txn, db, key), delta, recent_limit)
        txn.put(key, dump_stats(stats), db=db)
        if keep:
            merged[code] = stats
    return merged
