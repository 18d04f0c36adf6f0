"""Folding clicks into per-link deltas, and merging deltas into LMDB.

The analytics actor adds decoded clicks to a `ClickAggregator` as it drains
the ring; at flush time it hands `deltas()` to `merge_into`, inside the
same write transaction that records the ring checkpoint. Nothing here
commits: the caller owns the transaction, so either every link's counts and
the checkpoint land together, or none of them do.

The stored value per link is `hyperlinkr.stats.StoredStats`. Its maps stay
bounded however long a link lives: the hundred largest entries of a
breakdown are kept and the rest are summed under `OTHER_KEY`; per-day
counts keep the newest `MAX_DAYS` days; the recent list keeps the newest
`recent_limit` clicks.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import lmdb

from hyperlinkr.clicks import Click
from hyperlinkr.stats import (
    OTHER_KEY,
    RecentClick,
    StatsFormatError,
    StoredStats,
    dump_stats,
    empty_stats,
    load_stats,
)
from workers.useragents import Agent, classify

__all__ = [
    "MAX_DAYS",
    "MAX_MAP_ENTRIES",
    "ClickAggregator",
    "LinkDelta",
    "aggregate",
    "merge_into",
    "referrer_host",
]

logger = logging.getLogger(__name__)

MAX_MAP_ENTRIES = 100
MAX_DAYS = 400
DIRECT = "direct"
UNKNOWN_HOST = "unknown"


@dataclass(slots=True)
class LinkDelta:
    """What one batch of clicks adds to one link's stats."""

    total: int = 0
    human: int = 0
    bot: int = 0
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    per_day: Counter[str] = field(default_factory=Counter)
    referrers: Counter[str] = field(default_factory=Counter)
    browsers: Counter[str] = field(default_factory=Counter)
    operating_systems: Counter[str] = field(default_factory=Counter)
    devices: Counter[str] = field(default_factory=Counter)
    recent: list[RecentClick] = field(default_factory=list)
    # Visitor hashes per UTC day, for HyperLogLogs in the shared tier only.
    visitors: dict[str, set[int]] = field(default_factory=dict)

    def add(
        self, ts_ms: int, host: str, agent: Agent, visitor: int | None = None
    ) -> None:
        self.total += 1
        if agent.is_bot:
            self.bot += 1
        else:
            self.human += 1
        if self.first_ts_ms is None or ts_ms < self.first_ts_ms:
            self.first_ts_ms = ts_ms
        if self.last_ts_ms is None or ts_ms > self.last_ts_ms:
            self.last_ts_ms = ts_ms

        day = utc_day(ts_ms)
        self.per_day[day] += 1
        if visitor is not None:
            self.visitors.setdefault(day, set()).add(visitor)
        self.referrers[host] += 1
        self.browsers[agent.browser] += 1
        self.operating_systems[agent.os] += 1
        self.devices[agent.device] += 1
        self.recent.append(
            RecentClick(
                ts_ms=ts_ms,
                referrer=host,
                browser=agent.browser,
                os=agent.os,
                device=agent.device,
            )
        )


def utc_day(ts_ms: int) -> str:
    """The UTC calendar day of `ts_ms`, as YYYY-MM-DD."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def referrer_host(referrer: str | None) -> str:
    """The host of a referrer; "direct" when there is none."""
    if not referrer:
        return DIRECT
    try:
        host = urlsplit(referrer).hostname
    except ValueError:
        return UNKNOWN_HOST
    return host or UNKNOWN_HOST


class ClickAggregator:
    """Accumulates clicks between flushes; one per actor, not thread-safe."""

    def __init__(self, classify_agent: Callable[[str | None], Agent] = classify):
        self._classify = classify_agent
        self._deltas: dict[str, LinkDelta] = {}
        self._clicks = 0

    @property
    def pending_clicks(self) -> int:
        return self._clicks

    def add(self, click: Click) -> None:
        delta = self._deltas.get(click.code)
        if delta is None:
            delta = self._deltas[click.code] = LinkDelta()
        agent = self._classify(click.user_agent)
        delta.add(click.ts_ms, referrer_host(click.referrer), agent, click.visitor)
        self._clicks += 1

    def deltas(self) -> Mapping[str, LinkDelta]:
        """The deltas so far; valid until `clear()`."""
        return self._deltas

    def clear(self) -> None:
        self._deltas = {}
        self._clicks = 0


def aggregate(clicks: Iterable[Click]) -> dict[str, LinkDelta]:
    """Fold a batch of clicks into per-code deltas."""
    aggregator = ClickAggregator()
    for click in clicks:
        aggregator.add(click)
    return dict(aggregator.deltas())


def _bounded_top(counts: Counter[str], limit: int) -> dict[str, int]:
    if len(counts) <= limit:
        return dict(counts)
    folded = counts.pop(OTHER_KEY, 0)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = dict(ranked[: limit - 1])
    kept[OTHER_KEY] = folded + sum(n for _, n in ranked[limit - 1 :])
    return kept


def _merge_counts(
    stored: dict[str, int], delta: Counter[str], limit: int
) -> dict[str, int]:
    merged = Counter(stored)
    merged.update(delta)
    return _bounded_top(merged, limit)


def _merge_days(stored: dict[str, int], delta: Counter[str]) -> dict[str, int]:
    merged = Counter(stored)
    merged.update(delta)
    newest = sorted(merged)[-MAX_DAYS:]
    return {day: merged[day] for day in newest}


def _merge_recent(
    stored: list[RecentClick], delta: list[RecentClick], limit: int
) -> list[RecentClick]:
    merged = delta + stored
    merged.sort(key=lambda click: click["ts_ms"], reverse=True)
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
    deltas: Mapping[str, LinkDelta],
    recent_limit: int,
) -> dict[str, StoredStats]:
    """Add `deltas` to the stats in `db`, inside the caller's write `txn`.

    Returns the merged stats of every link it touched.
    """
    merged = {}
    for code, delta in deltas.items():
        key = code.encode()
        stats = merge(_stored_or_empty(txn, db, key), delta, recent_limit)
        txn.put(key, dump_stats(stats), db=db)
        merged[code] = stats
    return merged
