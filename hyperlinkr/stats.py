"""Click statistics of one link: the stored record and the public view of it.

The analytics actor is the only writer of the `stats` database; it keeps one
orjson value per link code, shaped as `StoredStats`. Layout 2 stores each
recent click as a row, `[ts_ms, referrer, browser, os, device]`; layout 1
stored them as objects, which made a link's value 36% larger and a third
slower to read and rewrite at every flush. Layout 1 values still read (as
layout 2), and the next flush that touches the link rewrites them.

This module owns that shape (the actor imports it from here, so the web
side never depends on the workers package) and turns it into the body of
`GET /stats/{code}`.

Every breakdown counts every click, bots included: the `devices` map has a
"bot" entry, so the sum of any breakdown equals `total`. Breakdowns are
bounded by the writer; entries it had to drop are summed under `OTHER_KEY`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, TypedDict, cast

import lmdb
import orjson

from hyperlinkr.storage import STATS_DB

__all__ = [
    "OTHER_KEY",
    "STATS_LAYOUT_VERSION",
    "RecentClick",
    "StatsFormatError",
    "StatsReader",
    "StoredStats",
    "combine",
    "dump_stats",
    "empty_stats",
    "load_stats",
    "public_view",
]

STATS_LAYOUT_VERSION = 2
_LAYOUT_1 = 1
OTHER_KEY = "(other)"
TOP_ENTRIES = 10

_COUNTER_FIELDS = (
    "per_day",
    "referrers",
    "browsers",
    "operating_systems",
    "devices",
)


class StatsFormatError(ValueError):
    """A stored stats value is not a version this code can read."""


# ts_ms, referrer host, browser, os, device. The actor builds tuples; values
# read back from orjson are lists, which index, sort and dump the same way.
RecentClick = tuple[int, str, str, str, str]
_LAYOUT_1_RECENT = ("ts_ms", "referrer", "browser", "os", "device")


class StoredStats(TypedDict):
    version: int
    total: int
    human: int
    bot: int
    first_ts_ms: int | None
    last_ts_ms: int | None
    per_day: dict[str, int]
    referrers: dict[str, int]
    browsers: dict[str, int]
    operating_systems: dict[str, int]
    devices: dict[str, int]
    recent: list[RecentClick]


def empty_stats() -> StoredStats:
    """The stats of a link nobody has clicked yet."""
    return StoredStats(
        version=STATS_LAYOUT_VERSION,
        total=0,
        human=0,
        bot=0,
        first_ts_ms=None,
        last_ts_ms=None,
        per_day={},
        referrers={},
        browsers={},
        operating_systems={},
        devices={},
        recent=[],
    )


_FIELDS = frozenset(empty_stats())


def dump_stats(stats: StoredStats) -> bytes:
    return orjson.dumps(stats)


def load_stats(raw: bytes | memoryview) -> StoredStats:
    """Read a stored value; raise `StatsFormatError` if it is not one."""
    try:
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StatsFormatError(f"stored stats are not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise StatsFormatError(
            f"stored stats are a {type(value).__name__}; expected an object"
        )
    version = value.get("version")
    if version != STATS_LAYOUT_VERSION and version != _LAYOUT_1:
        raise StatsFormatError(
            f"stored stats have layout version {version!r}; expected "
            f"{_LAYOUT_1} or {STATS_LAYOUT_VERSION}"
        )
    if not _FIELDS <= value.keys():
        raise StatsFormatError(f"stored stats lack {sorted(_FIELDS - value.keys())}")
    malformed = [name for name in _COUNTER_FIELDS if not isinstance(value[name], dict)]
    if malformed or not isinstance(value["recent"], list):
        raise StatsFormatError(
            f"stored stats fields {malformed or ['recent']} have the wrong type"
        )
    if version == _LAYOUT_1:
        value["recent"] = _recent_rows(value["recent"])
        value["version"] = STATS_LAYOUT_VERSION
    return cast(StoredStats, value)


def _recent_rows(clicks: list[Any]) -> list[RecentClick]:
    """Layout 1's recent click objects as layout 2's rows."""
    try:
        return [
            (c["ts_ms"], c["referrer"], c["browser"], c["os"], c["device"])
            for c in clicks
        ]
    except (KeyError, TypeError) as exc:
        raise StatsFormatError(
            f"a recent click of layout 1 is not an object with the fields "
            f"{list(_LAYOUT_1_RECENT)} ({type(exc).__name__}: {exc})"
        ) from exc


def _iso_utc(ts_ms: int | None) -> str | None:
    if ts_ms is None:
        return None
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _top(counts: dict[str, int], label: str) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{label: name, "clicks": n} for name, n in ranked[:TOP_ENTRIES]]


def public_view(code: str, stats: StoredStats) -> dict[str, Any]:
    """The JSON body of `GET /stats/{code}`."""
    per_day = sorted(stats["per_day"].items())
    return {
        "code": code,
        "clicks": {
            "total": stats["total"],
            "human": stats["human"],
            "bot": stats["bot"],
        },
        "first_click_at": _iso_utc(stats["first_ts_ms"]),
        "last_click_at": _iso_utc(stats["last_ts_ms"]),
        "per_day": [{"date": day, "clicks": n} for day, n in per_day],
        "referrers": _top(stats["referrers"], "host"),
        "browsers": _top(stats["browsers"], "name"),
        "operating_systems": _top(stats["operating_systems"], "name"),
        "devices": _top(stats["devices"], "name"),
        "recent": [_public_recent(click) for click in stats["recent"]],
    }


def _public_recent(click: RecentClick) -> dict[str, Any]:
    ts_ms, referrer, browser, os, device = click
    return {
        "at": _iso_utc(ts_ms),
        "referrer": referrer,
        "browser": browser,
        "os": os,
        "device": device,
    }


class StatsReader:
    """Reads what the analytics actor wrote; cheap, any process, any thread.

    `env` is the stats environment. Given `moving_from`, the links
    environment, a link is looked for there first: the actor of a node
    upgraded from before the stats environment moves old stats over when
    it starts (`workers.statsmove`), copying them all before it deletes
    the old ones and counting nothing until both are done. So a value
    found there is current, and a link not found there has its current
    stats (or none) in `env`, whenever the read happens. Once moved, the
    old database is empty and costs one more lookup per read.
    """

    def __init__(
        self, env: lmdb.Environment, moving_from: lmdb.Environment | None = None
    ) -> None:
        self._sources = [_Source(env)]
        if moving_from is not None:
            self._sources.insert(0, _Source(moving_from))
        for source in self._sources:
            source.database()  # now, at start-up: see _Source

    def stored(self, code: str) -> StoredStats:
        """The stored record of `code`, or empty stats if it has none."""
        key = code.encode()
        for source in self._sources:
            db = source.database()
            if db is None:
                continue
            with source.env.begin(db=db) as txn:
                raw = txn.get(key)
            if raw is not None:
                return load_stats(raw)
        return empty_stats()

    def get(self, code: str) -> dict[str, Any]:
        """The public stats of `code`; zeros and empty lists when unclicked."""
        return public_view(code, self.stored(code))


class _Source:
    """An environment's `stats` database, opened once the actor made it.

    Until the analytics actor has created it (at its start, before it
    counts anything), no link has stats there. A reader never creates it:
    that would be a write by a process without the actor's writable map.
    py-lmdb opens a database in a write transaction of its own (a handle
    opened in a read transaction dies with it), which waits for the
    environment's writer; so readers open at start-up, and only a reader
    that started before the actor ever did tries again on later reads.
    """

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self._db: lmdb._Database | None = None

    def database(self) -> lmdb._Database | None:
        if self._db is None:
            try:
                self._db = self.env.open_db(STATS_DB, create=False)
            except lmdb.NotFoundError:
                return None
        return self._db


def combine(parts: list[StoredStats], recent_limit: int = 50) -> StoredStats:
    """The stats of several nodes for one link, as one (for shared mode)."""
    total = empty_stats()
    recent: list[RecentClick] = []
    for part in parts:
        for name in ("total", "human", "bot"):
            total[name] += part[name]
        total["first_ts_ms"] = _earliest(total["first_ts_ms"], part["first_ts_ms"])
        total["last_ts_ms"] = _latest(total["last_ts_ms"], part["last_ts_ms"])
        for name in _COUNTER_FIELDS:
            counts: dict[str, int] = total[name]  # type: ignore[literal-required]
            for key, n in part[name].items():  # type: ignore[literal-required]
                counts[key] = counts.get(key, 0) + n
        recent.extend(part["recent"])
    recent.sort(key=itemgetter(0), reverse=True)
    total["recent"] = recent[:recent_limit]
    return total


def _earliest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)
