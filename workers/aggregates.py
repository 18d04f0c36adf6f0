"""Folding clicks into per-link deltas.

The analytics actor adds clicks to a `ClickAggregator` as it drains the
ring (and the click journal, after a restart); at the merge it hands
`drain_deltas()` to `workers.statsmerge.merge_into`, inside the same write
transaction that records the ring checkpoint.

Counting happens once per click and meaning once per distinct value: a
click only bumps counters keyed by what the record holds (the referrer
and user-agent strings, the day number), and `deltas()` turns each
distinct string into a host, a browser, an OS and a device type, and each
day number into a date, at the flush. Real traffic repeats a few strings
many times, so this does per batch what would otherwise be done per
click; the result is the same, down to the order of the keys.

A delta holds at most twice `recent_limit` recent clicks per link; the
merge (`workers.statsmerge`) keeps the newest `recent_limit`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from urllib.parse import urlsplit

from hyperlinkr._wire import Tally, tally_clicks
from hyperlinkr.clicks import Click, ClickRecordError
from hyperlinkr.stats import RecentClick
from workers.useragents import Agent, classify

__all__ = [
    "HOST_CACHE_ENTRIES",
    "ClickAggregator",
    "LinkDelta",
    "aggregate",
    "referrer_host",
]

HOST_CACHE_ENTRIES = 4096
DIRECT = "direct"
UNKNOWN_HOST = "unknown"
_DAY_MS = 86_400_000
# 9999-12-31T23:59:59.999Z, the last millisecond a date can name.
_LAST_TS_MS = 253_402_300_799_999
_NEWEST_FIRST = itemgetter(0)


@dataclass(slots=True)
class LinkDelta:
    """What one batch of clicks adds to one link's stats."""

    total: int = 0
    human: int = 0
    bot: int = 0
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    per_day: dict[str, int] = field(default_factory=dict)
    referrers: dict[str, int] = field(default_factory=dict)
    browsers: dict[str, int] = field(default_factory=dict)
    operating_systems: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)
    recent: list[RecentClick] = field(default_factory=list)
    # Visitor hashes per UTC day, for HyperLogLogs in the shared tier only.
    visitors: dict[str, set[int]] = field(default_factory=dict)


@lru_cache(maxsize=1024)
def _day_name(day_number: int) -> str:
    """Day `day_number` since 1970-01-01 (`ts_ms // _DAY_MS`), as YYYY-MM-DD."""
    return datetime.fromtimestamp(day_number * 86_400, tz=UTC).strftime("%Y-%m-%d")


def referrer_host(referrer: str | None) -> str:
    """The host of a referrer; "direct" when there is none."""
    if not referrer:
        return DIRECT
    return _host(referrer)


@lru_cache(maxsize=HOST_CACHE_ENTRIES)
def _host(referrer: str) -> str:
    try:
        host = urlsplit(referrer).hostname
    except ValueError:
        return UNKNOWN_HOST
    return host or UNKNOWN_HOST


_Recent = tuple[int, str | None, str | None]  # ts_ms, referrer, user agent


# A `Tally` is one link's clicks since the last flush, counted by their raw
# values: first_ts_ms, last_ts_ms, total, and days {day number: clicks},
# referrers and agents {raw value or None: clicks}, recent [_Recent],
# visitors {day number: {visitor hash}}. It is a C type (hyperlinkr._wire)
# so that `ClickAggregator.add_records` counts a batch of ring records
# without a Python call per click; `add_fields` is the same counting in
# Python, on the same type.


class ClickAggregator:
    """Accumulates clicks between flushes; one per actor, not thread-safe.

    `recent_limit` bounds the recent clicks held per link (None keeps them
    all). They are cut to the newest `recent_limit` whenever twice that
    many are held, in a stable sort, so the list `merge` keeps is the one
    it would keep from every click of the batch.
    """

    def __init__(
        self,
        classify_agent: Callable[[str | None], Agent] = classify,
        recent_limit: int | None = None,
    ) -> None:
        self._classify = classify_agent
        self._recent_limit = recent_limit
        # Recent clicks held per link before they are cut to the limit.
        self._recent_held = sys.maxsize if recent_limit is None else 2 * recent_limit
        self._tallies: dict[str, Tally] = {}

    @property
    def pending_clicks(self) -> int:
        return sum(tally.total for tally in self._tallies.values())

    @property
    def oldest_ts_ms(self) -> int | None:
        """The click time of the oldest click pending, if any."""
        return min((t.first_ts_ms for t in self._tallies.values()), default=None)

    def add_records(self, records: list[bytes], start: int = 0) -> int:
        """Count records[start:] as `add_fields(*read_click(record))` would,
        up to the first either would refuse; return its index (or
        len(records)). The caller hands that one to those two, which raise
        why, and goes on after it.
        """
        return tally_clicks(
            records, start, self._tallies, self._recent_held, _keep_newest
        )

    def add(self, click: Click) -> None:
        self.add_fields(
            click.code, click.ts_ms, click.referrer, click.user_agent, click.visitor
        )

    def add_fields(
        self,
        code: str,
        ts_ms: int,
        referrer: str | None,
        user_agent: str | None,
        visitor: int | None = None,
    ) -> None:
        """Count one click, given as `Click`'s fields.

        A time no date can name raises `ClickRecordError` before anything is
        counted. This runs once per click, so it is one function: a call
        would cost about as much as the counting.
        """
        if not 0 <= ts_ms <= _LAST_TS_MS:
            raise ClickRecordError(
                f"click time {ts_ms} ms is not between 1970 and the year 9999; "
                "expected a wall-clock time in milliseconds since 1970"
            )
        tally = self._tallies.get(code)
        if tally is None:
            tally = self._tallies[code] = Tally(ts_ms, ts_ms)
        tally.total += 1
        if ts_ms < tally.first_ts_ms:
            tally.first_ts_ms = ts_ms
        elif ts_ms > tally.last_ts_ms:
            tally.last_ts_ms = ts_ms
        day = ts_ms // _DAY_MS
        days = tally.days
        days[day] = days.get(day, 0) + 1
        referrers = tally.referrers
        referrers[referrer] = referrers.get(referrer, 0) + 1
        agents = tally.agents
        agents[user_agent] = agents.get(user_agent, 0) + 1
        if visitor is not None:
            seen = tally.visitors.get(day)
            if seen is None:
                seen = tally.visitors[day] = set()
            seen.add(visitor)
        if self._recent_held:
            recent = tally.recent
            recent.append((ts_ms, referrer, user_agent))
            if len(recent) > self._recent_held:
                _keep_newest(recent, self._recent_held // 2)

    def deltas(self) -> dict[str, LinkDelta]:
        """What the clicks so far add to each link, worked out on each call."""
        meaning = _Meaning(self._classify, self._recent_limit)
        return {code: meaning.delta(t) for code, t in self._tallies.items()}

    def drain_deltas(self) -> Iterator[tuple[str, LinkDelta]]:
        """`deltas()` one link at a time, letting go of each link's tally as
        its delta is made.

        A merge over thousands of links then holds one link's delta at a
        time, and frees the tallies over its course instead of milliseconds
        of freeing at once after it; it may rest between links. A drain
        stopped early leaves the links not reached yet.
        """
        meaning = _Meaning(self._classify, self._recent_limit)
        tallies = self._tallies
        for code in list(tallies):
            yield code, meaning.delta(tallies.pop(code))


# What a recent click shows of its user agent: browser, os, device, in
# `RecentClick`'s order.
_Shown = tuple[str, str, str]


def _keep_newest(recent: list[_Recent], limit: int) -> None:
    """Cut `recent` to its `limit` newest clicks, the earlier first on a tie."""
    recent.sort(key=_NEWEST_FIRST, reverse=True)  # stable, also in reverse
    del recent[limit:]


class _Meaning:
    """Turns tallies into deltas, looking at each distinct raw value once."""

    def __init__(
        self,
        classify_agent: Callable[[str | None], Agent],
        recent_limit: int | None,
    ) -> None:
        self._classify = classify_agent
        self._recent_limit = recent_limit
        self._hosts: dict[str | None, str] = {}
        self._agents: dict[str | None, Agent] = {}
        self._shown: dict[str | None, _Shown] = {}

    def delta(self, tally: Tally) -> LinkDelta:
        delta = LinkDelta(
            total=tally.total,
            first_ts_ms=tally.first_ts_ms,
            last_ts_ms=tally.last_ts_ms,
            per_day={_day_name(day): n for day, n in tally.days.items()},
            visitors={_day_name(day): v for day, v in tally.visitors.items()},
        )
        self._add_referrers(delta.referrers, tally.referrers)
        self._add_agents(delta, tally.agents)
        delta.recent = self._recent(tally.recent)
        return delta

    def _add_referrers(
        self, hosts: dict[str, int], referrers: dict[str | None, int]
    ) -> None:
        known = self._hosts
        for referrer, clicks in referrers.items():
            host = known.get(referrer)
            if host is None:
                host = known[referrer] = referrer_host(referrer)
            hosts[host] = hosts.get(host, 0) + clicks

    def _add_agents(self, delta: LinkDelta, agents: dict[str | None, int]) -> None:
        browsers, systems, devices = (
            delta.browsers,
            delta.operating_systems,
            delta.devices,
        )
        for user_agent, clicks in agents.items():
            agent = self._agent(user_agent)
            if agent.is_bot:
                delta.bot += clicks
            else:
                delta.human += clicks
            browsers[agent.browser] = browsers.get(agent.browser, 0) + clicks
            systems[agent.os] = systems.get(agent.os, 0) + clicks
            devices[agent.device] = devices.get(agent.device, 0) + clicks

    def _agent(self, user_agent: str | None) -> Agent:
        agent = self._agents.get(user_agent)
        if agent is None:
            agent = self._agents[user_agent] = self._classify(user_agent)
            self._shown[user_agent] = (agent.browser, agent.os, agent.device)
        return agent

    def _recent(self, clicks: list[_Recent]) -> list[RecentClick]:
        if self._recent_limit is not None and len(clicks) > self._recent_limit:
            _keep_newest(clicks, self._recent_limit)
        # Every referrer and user agent of the tally was looked at already.
        hosts, shown = self._hosts, self._shown
        return [
            (ts_ms, hosts[referrer], *shown[user_agent])
            for ts_ms, referrer, user_agent in clicks
        ]


def aggregate(clicks: Iterable[Click]) -> dict[str, LinkDelta]:
    """Fold a batch of clicks into per-code deltas."""
    aggregator = ClickAggregator()
    for click in clicks:
        aggregator.add(click)
    return aggregator.deltas()
