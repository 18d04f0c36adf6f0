"""The node's Prometheus metrics, as each of its processes records them.

Every process of a node (web workers, actors, role supervisors) records
into prometheus_client's multiprocess files under `<data_dir>/metrics/`,
and whichever web worker answers `GET /metrics` sums them all
(`hyperlinkr.scrape`). What already lives in shared memory or LMDB (the
L1 table's and the rings' counters, the number of links) is not recorded
here at all: the scrape reads their `statistics()` snapshots, so the hot
path pays nothing for them.

Setup order
-----------
prometheus_client picks memory or files for metric values when it is
imported (from PROMETHEUS_MULTIPROC_DIR), and reads the directory again
whenever a value is created. `configure(settings)` is therefore the first
thing each process does: it creates the directory and sets the variable
(so the children a supervisor starts inherit it), installs a fresh
multiprocess value class (the one chosen at import may be the in-memory
one, or belong to another directory), folds the files of dead processes
into the archive (`hyperlinkr.metricsdir`) and only then creates this
process's metrics. Nothing here creates a metric at import. Until
`configure()` has run, every `record_*` function does nothing, so unit
tests and tools that never configure write no files.

A process that dies
-------------------
Its counts are already in its memory-mapped files, even after SIGKILL;
the next process to start folds them into the archive, so node-wide
counters never go back (see `hyperlinkr.metricsdir` for why deleting
them would be wrong).

Cost, and the tally
-------------------
One prometheus_client multiprocess increment takes a lock, calls getpid()
and writes 16 bytes into the mapped file: about 1.1 us on the
development VM. A request recorded that way is two to three of them (its
counter, its histogram's sum and bucket) and an L1-hit redirect with its
lookup about 4.5 us, a fifth of what the redirect fast path spends on a
request. So the two calls made per request, `record_request` and
`record_lookup`, only add to a tally in this process's memory (a few
additions, about 0.3 us), and `flush()` moves the tally into the files:
one increment per series that moved, however many requests it holds.
`hyperlinkr.monitoring` flushes every `FLUSH_INTERVAL_S` on the web
worker's loop and when the worker stops, `hyperlinkr.scrape` before it
renders, and an exiting process at exit. What that costs in accuracy: a
scrape can miss up to `FLUSH_INTERVAL_S` of another worker's requests
(they arrive in the next scrape, so no count is lost to rate()), and a
worker killed with SIGKILL loses its last unflushed tally, at most
`FLUSH_INTERVAL_S` of requests.
Everything else (actor flushes, commits, restarts) is rare and recorded
directly. `benchmarks/test_metrics.py` measures both ways.

A histogram's tally is added to its multiprocess values directly (its
sum, and each bucket by how many observations fell in it), because
prometheus_client has no call to observe many values at once; the
attributes used are checked at configure() and, if a release of the
library lacks them, requests are recorded one by one as before, with a
warning.
"""

from __future__ import annotations

import atexit
import logging
import os
from bisect import bisect_left
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from prometheus_client import Counter, Histogram, values

from hyperlinkr.config import Settings
from hyperlinkr.errors import ConfigError
from hyperlinkr.metricsdir import compact

__all__ = [
    "LOOKUP_SERIES",
    "REQUEST_BUCKETS_S",
    "configure",
    "directory_of",
    "flush",
    "record_commit",
    "record_flush",
    "record_journal_commit",
    "record_lookup",
    "record_request",
    "record_restart",
]

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# How stale a web worker's request and lookup counts may be in its files.
FLUSH_INTERVAL_S: Final = 0.1

# Redirects answer from L1 in well under a millisecond; shortens wait for
# an fsync; anything past 5 s has already timed out at the client.
REQUEST_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
FLUSH_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
COMMIT_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
# The persister takes at most 1024 records per commit.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

LOOKUP_SERIES = (
    ("l1", "hit"),
    ("l1", "negative"),
    ("l1", "miss"),
    ("lmdb", "hit"),
    ("lmdb", "miss"),
)
_UNMATCHED_ROUTE = "unmatched"


def directory_of(settings: Settings) -> Path:
    """Where the node's processes keep their metric files."""
    return settings.data_dir / "metrics"


class _Recorder:
    """Every metric one process records; created by `configure()`."""

    def __init__(self, restart_roles: Sequence[str]) -> None:
        self.requests = Counter(
            "hyperlinkr_requests",
            "HTTP requests answered, by route name and status",
            ("route", "status"),
            registry=None,
        )
        self.request_seconds = Histogram(
            "hyperlinkr_request_duration_seconds",
            "Time from the request middleware to the response, by route",
            ("route",),
            buckets=REQUEST_BUCKETS_S,
            registry=None,
        )
        self._lookup_counter = Counter(
            "hyperlinkr_store_lookups",
            "Redirect lookups by store tier and outcome",
            ("tier", "outcome"),
            registry=None,
        )
        self.lookups = {key: self._lookup_counter.labels(*key) for key in LOOKUP_SERIES}
        self._actor_metrics()
        restarts = Counter(
            "hyperlinkr_process_restarts",
            "Children a role supervisor started again after they exited",
            ("role",),
            registry=None,
        )
        self._restart_counter = restarts
        self.restarts = {role: restarts.labels(role) for role in restart_roles}
        self._request_series: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._request_tallies: dict[tuple[str, int], list[float]] = {}
        # One cell per series, so a caller may hold on to one (l1_redirect).
        self._lookup_tallies: dict[tuple[str, str], list[int]] = {}
        probe = self.request_seconds.labels(_UNMATCHED_ROUTE)
        self.batched = _observations_addable(probe)
        if not self.batched:
            logger.warning(
                "this prometheus_client release keeps histograms differently; "
                "requests are recorded one by one (slower)"
            )

    def _actor_metrics(self) -> None:
        self.flush_seconds = Histogram(
            "hyperlinkr_analytics_flush_duration_seconds",
            "Time of one analytics flush: merge, commit with checkpoint, advance",
            buckets=FLUSH_BUCKETS_S,
            registry=None,
        )
        clicks = Counter(
            "hyperlinkr_clicks",
            "Clicks committed to the stats in LMDB, by kind",
            ("kind",),
            registry=None,
        )
        self.human_clicks = clicks.labels("human")
        self.bot_clicks = clicks.labels("bot")
        self.journal_commit_seconds = Histogram(
            "hyperlinkr_analytics_journal_commit_duration_seconds",
            "Time of one click journal commit: records and checkpoint, advance",
            buckets=COMMIT_BUCKETS_S,
            registry=None,
        )
        self.commit_seconds = Histogram(
            "hyperlinkr_persister_commit_duration_seconds",
            "Time of one persister group commit (LMDB write and fsync)",
            buckets=COMMIT_BUCKETS_S,
            registry=None,
        )
        self.batch_mutations = Histogram(
            "hyperlinkr_persister_batch_mutations",
            "Mutations committed together in one persister transaction",
            buckets=BATCH_BUCKETS,
            registry=None,
        )

    def request(self, route_name: str, status: int, seconds: float) -> None:
        tally = self._request_tallies.get((route_name, status))
        if tally is None:
            tally = self._request_tally(route_name, status)
        # [count, sum of seconds, one count per bucket]: see flush().
        tally[0] += 1
        tally[1] += seconds
        tally[_FIRST_BUCKET + bisect_left(REQUEST_BUCKETS_S, seconds)] += 1
        if not self.batched:
            self.flush()

    def _request_tally(self, route_name: str, status: int) -> list[float]:
        # Sanic names routes "<app>.<handler>"; the handler is the label.
        route = route_name.rpartition(".")[2] or _UNMATCHED_ROUTE
        series = (
            self.requests.labels(route, str(status)),
            self.request_seconds.labels(route),
        )
        tally = [0.0] * (_FIRST_BUCKET + len(REQUEST_BUCKETS_S) + 1)
        self._request_series[(route_name, status)] = series
        self._request_tallies[(route_name, status)] = tally
        return tally

    def lookup(self, tier: str, outcome: str) -> None:
        cell = self._lookup_tallies.get((tier, outcome))
        if cell is None:
            cell = self._lookup_cell(tier, outcome)
        cell[0] += 1
        if not self.batched:
            self.flush()

    def _lookup_cell(self, tier: str, outcome: str) -> list[int]:
        key = (tier, outcome)
        if key not in self.lookups:  # a tier exported once it is used
            self.lookups[key] = self._lookup_counter.labels(tier, outcome)
        cell = self._lookup_tallies[key] = [0]
        return cell

    def l1_redirect(self, route_name: str, status: int) -> Callable[[float], None]:
        """lookup("l1", "hit") and request(route_name, status, seconds), in
        one call that reaches the tallies directly: the fast path's, once per
        redirect (two calls through the module functions cost 0.8 us)."""
        if not self.batched:

            def one_by_one(seconds: float) -> None:
                self.lookup("l1", "hit")
                self.request(route_name, status, seconds)

            return one_by_one
        tally = self._request_tallies.get((route_name, status))
        if tally is None:
            tally = self._request_tally(route_name, status)
        hits = self._lookup_tallies.get(("l1", "hit")) or self._lookup_cell("l1", "hit")

        def record(seconds: float) -> None:
            hits[0] += 1
            tally[0] += 1
            tally[1] += seconds
            tally[_FIRST_BUCKET + bisect_left(REQUEST_BUCKETS_S, seconds)] += 1

        return record

    def flush(self) -> None:
        """Move the tallied requests and lookups into the metric files."""
        for key, tally in self._request_tallies.items():
            if not tally[0]:
                continue
            count, histogram = self._request_series[key]
            count.inc(tally[0])
            if self.batched:
                _add_observations(histogram, tally[1], tally[_FIRST_BUCKET:])
            else:  # one observation: request() flushes after each
                histogram.observe(tally[1])
            tally[:] = _zeros(len(tally))
        for series, cell in self._lookup_tallies.items():
            if cell[0]:
                self.lookups[series].inc(cell[0])
                cell[0] = 0

    def restart(self, role: str) -> None:
        child = self.restarts.get(role)
        if child is None:
            child = self.restarts[role] = self._restart_counter.labels(role)
        child.inc()


_FIRST_BUCKET: Final = 2  # a request tally: count, sum, then the buckets


def _zeros(length: int) -> list[float]:
    return [0.0] * length


def _observations_addable(histogram: Histogram) -> bool:
    """Whether `_add_observations` knows how `histogram` keeps its values."""
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    return (
        isinstance(buckets, list)
        and len(buckets) == len(REQUEST_BUCKETS_S) + 1
        and all(hasattr(value, "inc") for value in buckets)
        and hasattr(total, "inc")
    )


def _add_observations(
    histogram: Histogram, total_s: float, per_bucket: Sequence[float]
) -> None:
    """What observe() would have left after each of the tallied observations.

    prometheus_client keeps one value per bucket (not cumulative: it sums
    them when collecting) and one for the sum; observe(x) adds 1 to the
    first bucket whose bound is >= x, and x to the sum.
    """
    histogram._sum.inc(total_s)
    for value, count in zip(histogram._buckets, per_bucket, strict=True):
        if count:
            value.inc(count)


# One per process, on purpose: set by configure(), None until then.
_recorder: _Recorder | None = None


def configure(settings: Settings, restart_roles: Sequence[str] = ()) -> Path:
    """Point this process's metrics at the node's directory; returns it.

    Call first thing in every process, before any metric is recorded.
    `restart_roles` are the roles a supervisor process watches: their
    restart counters are exported at zero from the start.
    """
    global _recorder
    directory = directory_of(settings).resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        compact(directory)
    except OSError as exc:
        raise ConfigError(
            f"cannot use {directory} for metrics: {exc}; make "
            "HYPERLINKR_DATA_DIR writable by the node's user"
        ) from exc
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    _recorder = _Recorder(restart_roles)
    atexit.unregister(flush)  # once, however often a test configures
    atexit.register(flush)
    return directory


def flush() -> None:
    """Write this process's tallied requests and lookups to its metric files."""
    recorder = _recorder
    if recorder is not None:
        recorder.flush()


def record_request(route_name: str, status: int, seconds: float) -> None:
    """One answered request: Sanic's route name ("" if none), status, time.

    Tallied in memory until the next `flush()`.
    """
    recorder = _recorder
    if recorder is not None:
        recorder.request(route_name, status, seconds)


def record_lookup(tier: str, outcome: str) -> None:
    """One lookup in `tier` ("l1", "dragonfly", "lmdb") and its outcome.

    Outcomes: hit, miss, negative (L1 knows the code is missing); for
    Dragonfly also error, and skipped (its breaker said it is away).
    Tallied in memory until the next `flush()`.
    """
    recorder = _recorder
    if recorder is not None:
        recorder.lookup(tier, outcome)


def l1_redirect_recorder(route_name: str, status: int) -> Callable[[float], None]:
    """`record_lookup("l1", "hit")` and `record_request(route_name, status,
    seconds)` as one function of `seconds`, for the redirect fast path.

    It records into this process's recorder as configured now: make it
    after `configure()` (a web worker configures before serving).
    """
    recorder = _recorder
    if recorder is None:
        return _record_nothing
    return recorder.l1_redirect(route_name, status)


def _record_nothing(seconds: float) -> None:
    pass


def record_commit(seconds: float, mutations: int) -> None:
    """One persister commit of `mutations` that took `seconds`."""
    recorder = _recorder
    if recorder is not None:
        recorder.commit_seconds.observe(seconds)
        recorder.batch_mutations.observe(mutations)


def record_flush(seconds: float, human: int, bot: int) -> None:
    """One analytics flush that committed `human` and `bot` clicks."""
    recorder = _recorder
    if recorder is not None:
        recorder.flush_seconds.observe(seconds)
        if human:
            recorder.human_clicks.inc(human)
        if bot:
            recorder.bot_clicks.inc(bot)


def record_journal_commit(seconds: float) -> None:
    """One analytics commit of taken clicks to the journal, before their merge."""
    recorder = _recorder
    if recorder is not None:
        recorder.journal_commit_seconds.observe(seconds)


def record_restart(role: str) -> None:
    """A supervisor started a child of `role` again."""
    recorder = _recorder
    if recorder is not None:
        recorder.restart(role)
