"""The analytics actor: drains the click ring into per-link stats in LMDB.

Exactly once
------------
Every click a web worker published is counted once, across crashes of the
actor at any instruction. The ring keeps a record until the consumer
`advance()`s past it, and a restarted consumer peeks from the head again.
So the actor never advances past a record before the counts it produced
are committed, and it commits, in the *same* LMDB write transaction as
those counts, a checkpoint: the ring position the flush covers, tagged with
the ring segment's generation.

A crash before the commit loses the transaction and the ring still holds
the records: they are counted after the restart. A crash after the commit
and before `advance()` leaves records that are already counted in the
ring: `recover()` finds the checkpoint ahead of the ring head and advances
to it first. A checkpoint of another generation belongs to a ring segment
that no longer exists (its records went with it), so counting starts at
the new segment's head.

With a journal (`workers.journal`, its own LMDB environment), every
commit is a journal commit: the raw records taken go into one journal
entry, in the same transaction as the checkpoint past them (both in the
journal environment), and then the ring is advanced. A merge first
commits what was taken, then adds the clicks of every journal entry to
the stats in one transaction of the stats environment, which also
records the sequence number of the last entry covered
(`MERGED_THROUGH_KEY`); the entries are deleted after that commit. A
restarted actor skips the entries at or below that number and reads the
rest back into its aggregator before anything else, so a crash anywhere
leaves each click either in the ring past the checkpoint, in a journal
entry past the merged number, or in the stats: in exactly one of them.

Pacing
------
A flush merges every touched link in one go, tens of milliseconds of CPU
under load, and meanwhile the web workers on the same cores wait: that
burst was most of what the actor added to redirect latency. Given a
`FlushPace`, a flush rests `rest_s` after every `work_s` of merging, as
long as the ring holds less than `room` records; past that (clicks
arriving faster than the flush goes) it merges flat out, so pacing never
costs a click. The write transaction stays open while it rests: only the
actor writes the stats environment, and readers do not wait on writers.

Batching
--------
The ring head only moves at a flush, so between flushes the actor holds
taken records back in the ring and peeks on from the position its last
peek ended at (`_cursor`), never copying a record twice. Published records
never move or change until advanced past, so what lies before the cursor
stays what was counted. A flush happens when the oldest pending click is
`flush_interval_ms` old, or when `batch_records` are pending, which also
bounds the ring space held back.

Every flush costs about the same whatever it adds (it reads, merges and
rewrites each touched link, and syncs), and under load those flushes were
the larger part of what the actor adds to redirect latency. So given a
`Holding`, the actor holds on past `batch_records` (up to `at_most`) for as
long as the ring keeps room for `room_s` more of clicks arriving at the
rate they came since the oldest pending one: the room a restarted actor
needs. At a high rate that room is gone at `batch_records` already, and
the actor flushes there as it would without.

Journaling
----------
Holding only spaces out the flushes so far: the ring must keep its room.
Given a journal environment, what `Holding` (or `batch_records`) makes
due is a journal commit, which frees the ring for the price of one LMDB
put, and the merge waits for `flush_interval_ms`, however fast clicks
arrive. Under load that merges each touched link once per interval
instead of several times, which is most of the actor's CPU, and so most
of what it takes from the web workers on the same cores.

A merge over many links (a wide Zipf load touches about 19,000 a second
at 56,000 clicks/s) takes seconds of CPU, longer than the ring lasts at
the maximum rate (65,536 records, 1.2 s). So a merge does not stop the
counting: its clicks move to an aggregator of their own, and after every
slice of merging (`FlushPace.paced`'s `between`) the actor takes what the
ring published into a fresh one and commits it to the journal when due,
in the journal environment, whose write lock the merge does not hold.
The merge then waits as long as it runs, and the next one covers more
clicks per link. Measured, wrk at the maximum rate over 100,000 links
(Zipf, s=1), 10 s, two runs each way: 2,297-37,400 clicks dropped with
the ring full when a merge held the ring; none, the ring at most 28-45%
full, with the journal in its own environment.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import lmdb

from hyperlinkr.clicks import ClickRecordError, read_click
from hyperlinkr.metrics import record_flush, record_journal_commit
from hyperlinkr.stats import StoredStats
from hyperlinkr.storage import META_DB, STATS_DB
from workers.aggregates import ClickAggregator, LinkDelta
from workers.journal import JOURNAL_PREFIX, journal_key, pack_records, read_journal
from workers.statsmerge import merge_into

__all__ = [
    "CHECKPOINT_KEY",
    "MERGED_THROUGH_KEY",
    "AnalyticsActor",
    "AnalyticsStatistics",
    "Checkpoint",
    "CheckpointError",
    "ClickRing",
    "FlushPace",
    "RingContractError",
    "StatsMirror",
]

logger = logging.getLogger(__name__)

CHECKPOINT_KEY = b"analytics.click_ring.checkpoint"
# In the stats environment: the sequence number of the last journal entry
# merged, 8 bytes big-endian.
MERGED_THROUGH_KEY = b"analytics.journal_merged_through"
_CHECKPOINT = struct.Struct("<QQ")
_IDLE_SLEEP_S = 0.003
# A merge lets go of the stats pages it mapped every this many slices (16
# ms of merging at FlushPace's default), not only at its end: over 10,000
# links a merge maps about 110 MB of them, in the actor's RSS meanwhile.
_RELEASE_SLICES = 32


class CheckpointError(ValueError):
    """A stored ring checkpoint is not 16 bytes of (generation, position)."""


class RingContractError(RuntimeError):
    """The ring answered in a way its contract rules out."""


class StatsMirror(Protocol):
    """Where counted stats are copied after each commit (the shared tier)."""

    def publish(
        self,
        merged: dict[str, StoredStats],
        visitors: dict[str, dict[str, set[int]]],
    ) -> None: ...


class ClickRing(Protocol):
    """The consumer half of `shm`'s ring, as the actor uses it."""

    @property
    def generation(self) -> int: ...

    @property
    def head(self) -> int: ...

    def peek(self, max_records: int, start: int, /) -> tuple[list[bytes], int]: ...

    def advance(self, end_position: int, /) -> object: ...


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far into which ring segment the stats in LMDB have counted."""

    generation: int
    position: int

    def pack(self) -> bytes:
        return _CHECKPOINT.pack(self.generation, self.position)

    @classmethod
    def unpack(cls, raw: bytes | memoryview) -> Checkpoint:
        if len(raw) != _CHECKPOINT.size:
            raise CheckpointError(
                f"ring checkpoint is {len(raw)} bytes; expected {_CHECKPOINT.size}"
            )
        generation, position = _CHECKPOINT.unpack(raw)
        return cls(generation, position)


@dataclass(frozen=True, slots=True)
class AnalyticsStatistics:
    records_seen: int
    flushes: int
    last_flush_ms: int | None
    last_flush_duration_ms: float
    bad_records: int
    pending_records: int
    oldest_pending_ms: int | None  # click time of the oldest click not merged


@dataclass(frozen=True, slots=True)
class Holding:
    """How many taken records make a flush due (see Batching above)."""

    capacity: int  # records the ring holds
    at_least: int  # below this many, only the flush interval makes one due
    at_most: int  # this many always make one due
    room_s: float  # of arrivals at the recent rate, the ring must have room for

    def due(self, taken: int, age_s: float) -> bool:
        """Whether `taken` records, the oldest taken `age_s` ago, are enough."""
        if taken >= self.at_most:
            return True
        if taken < self.at_least:
            return False
        if age_s <= 0:
            return True
        return taken + taken / age_s * self.room_s >= self.capacity


@dataclass(frozen=True, slots=True)
class FlushPace:
    """How a flush shares the CPU (see Pacing above)."""

    depth: Callable[[], int]  # records the ring holds, taken ones included
    room: int
    work_s: float = 0.0005
    rest_s: float = 0.002
    sleep: Callable[[float], None] = time.sleep

    def paced(
        self,
        pairs: Iterator[tuple[str, LinkDelta]],
        between: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[str, LinkDelta]]:
        """`pairs`, calling `between` after every `work_s` of them, then resting
        if it allows (returns true) and the ring has room."""
        clock = time.perf_counter
        rest_at = clock() + self.work_s
        for pair in pairs:
            if clock() >= rest_at:
                may_rest = between() if between is not None else True
                if may_rest and self.depth() < self.room:
                    self.sleep(self.rest_s)
                rest_at = clock() + self.work_s
            yield pair


class AnalyticsActor:
    """Counts clicks from `ring` into `env`; one per node, one thread."""

    def __init__(
        self,
        ring: ClickRing,
        env: lmdb.Environment,
        flush_interval_ms: int = 200,
        recent_limit: int = 50,
        batch_records: int = 4096,
        mirror: StatsMirror | None = None,
        pace: FlushPace | None = None,
        release_pages: Callable[[], None] | None = None,
        holding: Holding | None = None,
        clock: Callable[[], float] = time.monotonic,
        journal: lmdb.Environment | None = None,
    ) -> None:
        if batch_records < 1:
            raise ValueError(f"batch_records is {batch_records}; expected >= 1")
        self._ring = ring
        self._env = env
        self._stats_db = env.open_db(STATS_DB)
        self._meta_db = env.open_db(META_DB)
        self._flush_interval_s = flush_interval_ms / 1000
        self._recent_limit = recent_limit
        self._batch_records = batch_records
        self._aggregator = ClickAggregator(recent_limit=recent_limit)
        self._mirror = mirror
        self._pace = pace
        # storage.MappedPages.release: after each merge, and every
        # _RELEASE_SLICES slices of one.
        self._release_pages = release_pages
        self._holding = holding
        self._clock = clock
        self._last_peek_s = clock()
        self._journal_env = journal
        self._journaling = journal is not None
        # The ring checkpoint lives with the journal when there is one.
        self._checkpoint_env = env if journal is None else journal
        self._checkpoint_db = (
            self._meta_db if journal is None else journal.open_db(META_DB)
        )

        # Journal entries that no merge has covered yet, read back at the
        # first recover().
        self._journal_read = False
        self._spent = False
        self._journal_keys: list[bytes] = []
        self._journal_sequence = 0
        self._behind = 0  # records taken since the running merge began
        self._slices = 0  # slices of the running merge so far
        self._stop_poll: Callable[[], bool] | None = None  # run()'s, if running
        self._merging_oldest_ms: int | None = None  # of the running merge
        # Packed chunks of the records taken since the last commit, if journaling.
        self._held: list[bytes] = []
        self._uncommitted_since_s: float | None = None

        self._recovered = False
        self._committed = 0  # ring position advanced past, and in LMDB
        self._cursor = 0  # ring position taken into the aggregator
        self._taken = 0  # records between the ring head and `_cursor`
        self._pending_since_s: float | None = None  # oldest click not merged
        self._bad_since_flush = 0
        self._first_bad_error: str | None = None

        self._records_seen = 0
        self._flushes = 0
        self._bad_records = 0
        self._last_flush_ms: int | None = None
        self._last_flush_duration_ms = 0.0

    def recover(self) -> None:
        """Read back the journal, and skip ring records a previous life committed."""
        if self._journaling and not self._journal_read:
            self._replay_journal()
        head = self._ring.head
        stored = self._read_checkpoint()
        generation = self._ring.generation
        if stored is None:
            logger.info("no click ring checkpoint; counting from position %d", head)
        elif stored.generation != generation:
            logger.warning(
                "click ring was recreated (generation %#x, checkpoint is for "
                "%#x); counting from position %d",
                generation,
                stored.generation,
                head,
            )
        elif stored.position > head:
            logger.info(
                "click ring positions %d to %d were counted before a restart; "
                "advancing past them",
                head,
                stored.position,
            )
            self._ring.advance(stored.position)
            head = stored.position
        elif stored.position < head:
            logger.warning(
                "click ring head %d is past the checkpoint %d; the records in "
                "between were released by another consumer and are not counted",
                head,
                stored.position,
            )
        self._committed = self._cursor = head
        self._taken = 0
        self._recovered = True

    def _replay_journal(self) -> None:
        """Take the clicks of every journal entry a previous life left unmerged."""
        with self._env.begin(db=self._meta_db) as txn:
            raw = txn.get(MERGED_THROUGH_KEY)
        merged_through = -1 if raw is None else int.from_bytes(raw, "big")
        with self._checkpoint_env.begin(db=self._checkpoint_db) as txn:
            entries = read_journal(txn, self._checkpoint_db)
        # Sequence numbers only go up, even if the journal was lost: an entry
        # numbered at or below `merged_through` would never be merged.
        self._journal_sequence = max(
            merged_through + 1, entries[-1].sequence + 1 if entries else 0
        )
        merged = [entry.key for entry in entries if entry.sequence <= merged_through]
        if merged:
            # A merge committed them and died before it could delete them.
            self._forget(merged)
            entries = [entry for entry in entries if entry.sequence > merged_through]
        records = 0
        for entry in entries:
            if entry.error is not None:
                logger.error(
                    "click journal entry %d is unreadable (%s); its clicks are "
                    "not counted",
                    entry.sequence,
                    entry.error,
                )
            self._take(entry.records)
            records += len(entry.records)
        self._journal_keys = [entry.key for entry in entries]
        self._journal_read = True
        if entries:
            # Merged at the first chance: they have waited long enough.
            self._pending_since_s = self._clock() - self._flush_interval_s
            logger.info(
                "read %d click records back from %d journal entries",
                records,
                len(entries),
            )

    def _read_checkpoint(self) -> Checkpoint | None:
        with self._checkpoint_env.begin(db=self._checkpoint_db) as txn:
            raw = txn.get(CHECKPOINT_KEY)
        if raw is None and self._journaling:
            # Where a node without the journal environment kept it; the first
            # merge deletes it there.
            with self._env.begin(db=self._meta_db) as txn:
                raw = txn.get(CHECKPOINT_KEY)
        if raw is None:
            return None
        try:
            return Checkpoint.unpack(raw)
        except CheckpointError as exc:
            logger.error("%s; ignoring it and counting from the ring head", exc)
            return None

    def run_once(self) -> int:
        """Take what the ring has published, then merge or journal what is due;
        return the records taken."""
        self._check_whole()
        if not self._recovered:
            self.recover()
        taken = self._poll()
        if self._merge_due():
            self.flush()
        elif self._journaling and self._commit_due():
            self._commit_journal()
        return taken

    def _poll(self) -> int:
        """Take what the ring published after `_cursor`; return how many records."""
        peeked_s = self._clock()
        records, end_position = self._peek()
        self._take(records)

        if records:
            # They were published after the last peek, or were waiting.
            if self._pending_since_s is None:
                self._pending_since_s = self._last_peek_s
            if self._uncommitted_since_s is None:
                self._uncommitted_since_s = self._last_peek_s
            if self._journaling:
                self._held.append(pack_records(records))
        self._last_peek_s = peeked_s
        self._taken += len(records)
        self._cursor = end_position
        self._records_seen += len(records)
        return len(records)

    def _check_whole(self) -> None:
        if self._spent:
            raise RuntimeError(
                "a merge failed after taking clicks out of the aggregator; this "
                "actor cannot go on, and a new one counts them again from the "
                "journal and the ring"
            )

    def _peek(self) -> tuple[list[bytes], int]:
        """The records published after `_cursor`, and where they end."""
        try:
            records, end_position = self._ring.peek(self._batch_records, self._cursor)
        except ValueError as exc:
            raise RingContractError(
                f"ring refused a peek from {self._cursor}, where its last peek "
                f"ended ({exc}); {self._taken} records before it were published "
                "and not advanced past"
            ) from exc
        if end_position < self._cursor:
            raise RingContractError(
                f"ring peek from {self._cursor} ended at {end_position}, before "
                "its start"
            )
        return records, end_position

    def _take(self, records: list[bytes]) -> None:
        aggregator = self._aggregator
        start = aggregator.add_records(records)
        while start < len(records):
            try:
                # The record add_records stopped at, read and counted in
                # Python, which says why it is refused.
                aggregator.add_fields(*read_click(records[start]))
            except ClickRecordError as exc:
                self._bad_since_flush += 1
                self._bad_records += 1
                if self._first_bad_error is None:
                    self._first_bad_error = str(exc)
            start = aggregator.add_records(records, start + 1)

    def _merge_due(self) -> bool:
        if self._pending_since_s is None:
            # Only skipped positions, with nothing to wait on.
            return self._cursor != self._committed
        if self._clock() - self._pending_since_s >= self._flush_interval_s:
            return True
        return not self._journaling and self._commit_due()

    def _commit_due(self) -> bool:
        """Whether the records taken since the last commit are enough to commit."""
        if self._uncommitted_since_s is None:
            return self._cursor != self._committed
        if self._holding is None:
            return self._taken >= self._batch_records
        return self._holding.due(self._taken, self._clock() - self._uncommitted_since_s)

    def _commit_journal(self) -> None:
        """Commit the records taken since the last commit to the journal, unmerged,
        with their checkpoint, then release them from the ring."""
        if self._cursor == self._committed:
            return
        started_s = time.perf_counter()
        checkpoint = Checkpoint(self._ring.generation, self._cursor)
        key = None
        assert self._journal_env is not None
        with self._journal_env.begin(write=True, db=self._checkpoint_db) as txn:
            if self._held:
                key = journal_key(self._journal_sequence)
                txn.put(key, b"".join(self._held))
            txn.put(CHECKPOINT_KEY, checkpoint.pack())
        if key is not None:
            self._journal_sequence += 1
            self._journal_keys.append(key)
        self._held = []
        self._uncommitted_since_s = None
        self._release(checkpoint)
        record_journal_commit(time.perf_counter() - started_s)

    def _release(self, checkpoint: Checkpoint) -> None:
        """Advance the ring to a `checkpoint` just committed."""
        self._taken = 0
        # Until advance() returns, the ring head is behind committed records:
        # should it raise, the next run_once() recovers from the checkpoint.
        self._recovered = False
        self._ring.advance(checkpoint.position)
        self._committed = checkpoint.position
        self._recovered = True

    def flush(self) -> None:
        """Merge every pending click into the stats, then release what it covered."""
        if self._journaling:
            self._merge_journal()
        else:
            self._merge_taken()

    def _merge_taken(self) -> None:
        """Without a journal: merge the records taken, with the checkpoint past
        them, then release them from the ring."""
        if self._cursor == self._committed:
            return
        started_s = time.perf_counter()
        checkpoint = Checkpoint(self._ring.generation, self._cursor)
        mirrored = self._mirror is not None
        counted = _Counted(self._aggregator.drain_deltas(), keep_visitors=mirrored)
        pairs = iter(counted)
        if self._pace is not None:
            pairs = self._pace.paced(pairs)
        self._check_whole()
        self._spent = True  # until the commit: the drain empties the aggregator
        with self._env.begin(write=True) as txn:
            merged = merge_into(
                txn, self._stats_db, pairs, self._recent_limit, keep=mirrored
            )
            txn.put(CHECKPOINT_KEY, checkpoint.pack(), db=self._meta_db)
        self._spent = False
        self._pending_since_s = None
        self._uncommitted_since_s = None
        self._release(checkpoint)
        self._merged(merged, counted, started_s)

    def _merge_journal(self) -> None:
        """Commit what was taken to the journal, then merge every journal entry
        into the stats, and delete them.

        The merge's clicks move to an aggregator of their own, and between
        its slices the ring is read and freed by journal commits as at any
        other time, into a new one: the stats environment's write
        transaction, open for the whole merge, does not stop the journal's.
        The merge's transaction records the last journal entry it covers
        (`MERGED_THROUGH_KEY`), so if the deletion after it never happens,
        the next life skips those entries instead of counting them again.
        """
        self._commit_journal()
        keys = self._journal_keys
        self._pending_since_s = None
        if not keys:
            return  # only skipped ring positions, now committed
        started_s = time.perf_counter()
        through = int.from_bytes(keys[-1][len(JOURNAL_PREFIX) :], "big")
        merging, self._aggregator = (
            self._aggregator,
            ClickAggregator(recent_limit=self._recent_limit),
        )
        self._journal_keys = []
        self._behind = 0
        self._slices = 0
        # Until its commit, the merge's clicks are the oldest not in the stats.
        self._merging_oldest_ms = merging.oldest_ts_ms
        mirrored = self._mirror is not None
        counted = _Counted(merging.drain_deltas(), keep_visitors=mirrored)
        pairs = iter(counted)
        if self._pace is not None:
            pairs = self._pace.paced(pairs, between=self._take_meanwhile)
        self._check_whole()
        self._spent = True  # until the commit: the drain empties `merging`
        with self._env.begin(write=True) as txn:
            merged = merge_into(
                txn, self._stats_db, pairs, self._recent_limit, keep=mirrored
            )
            txn.put(MERGED_THROUGH_KEY, through.to_bytes(8, "big"), db=self._meta_db)
            # Where a node without the journal environment kept the checkpoint.
            txn.delete(CHECKPOINT_KEY, db=self._meta_db)
        self._spent = False
        self._merging_oldest_ms = None
        self._forget(keys)
        self._merged(merged, counted, started_s)

    def _take_meanwhile(self) -> bool:
        """Between slices of a merge: take what the ring published, and free the
        ring when a journal commit is due. Whether the merge may rest: not
        once it has fallen a ring's worth of clicks behind (four batches),
        which the next merge's tallies would have to hold in memory."""
        if self._stop_poll is not None:
            self._stop_poll()  # its answer waits for the merge's end
        self._behind += self._poll()
        if self._commit_due():
            self._commit_journal()
        self._slices += 1
        if self._release_pages is not None and self._slices % _RELEASE_SLICES == 0:
            self._release_pages()
        return self._behind < 4 * self._batch_records

    def _forget(self, keys: list[bytes]) -> None:
        """Delete journal entries a committed merge covered."""
        assert self._journal_env is not None
        with self._journal_env.begin(write=True, db=self._checkpoint_db) as txn:
            for key in keys:
                txn.delete(key)

    def _merged(
        self, merged: dict[str, StoredStats], counted: _Counted, started_s: float
    ) -> None:
        """What follows a committed merge: the mirror, the map, the figures."""
        if self._mirror is not None:
            self._mirror.publish(merged, counted.visitors)
        if self._release_pages is not None:
            self._release_pages()
        self._report_bad_records()
        self._flushes += 1
        self._last_flush_ms = int(time.time() * 1000)
        duration_s = time.perf_counter() - started_s
        self._last_flush_duration_ms = duration_s * 1000
        record_flush(duration_s, counted.human, counted.bot)

    def _report_bad_records(self) -> None:
        if not self._bad_since_flush:
            return
        logger.warning(
            "skipped %d click records that did not decode (first: %s); "
            "counting continues",
            self._bad_since_flush,
            self._first_bad_error,
        )
        self._bad_since_flush = 0
        self._first_bad_error = None

    def run(self, stop: threading.Event | Callable[[], bool]) -> None:
        """Count until `stop` is set (or returns true), then flush once more.

        `stop` is also polled between the slices of a merge, which may run
        for seconds under load (a poll there beats the role's heartbeat,
        `hyperlinkr.health.beating`); the merge finishes either way.
        """
        should_stop = stop.is_set if isinstance(stop, threading.Event) else stop
        self._stop_poll = should_stop
        if not self._recovered:
            self.recover()
        while not should_stop():
            if self.run_once() == 0:
                time.sleep(_IDLE_SLEEP_S)
        self.flush()
        logger.info("analytics actor stopped at click ring position %d", self._cursor)

    def statistics(self) -> AnalyticsStatistics:
        return AnalyticsStatistics(
            records_seen=self._records_seen,
            flushes=self._flushes,
            last_flush_ms=self._last_flush_ms,
            last_flush_duration_ms=self._last_flush_duration_ms,
            bad_records=self._bad_records,
            pending_records=self._taken,
            oldest_pending_ms=min(
                (
                    ms
                    for ms in (self._merging_oldest_ms, self._aggregator.oldest_ts_ms)
                    if ms is not None
                ),
                default=None,
            ),
        )


class _Counted:
    """Passes a flush's (code, delta) pairs on, adding up what it reports."""

    def __init__(
        self, deltas: Iterator[tuple[str, LinkDelta]], keep_visitors: bool
    ) -> None:
        self._deltas = deltas
        self._keep_visitors = keep_visitors
        self.human = 0
        self.bot = 0
        self.visitors: dict[str, dict[str, set[int]]] = {}

    def __iter__(self) -> Iterator[tuple[str, LinkDelta]]:
        for code, delta in self._deltas:
            self.human += delta.human
            self.bot += delta.bot
            if self._keep_visitors:
                self.visitors[code] = delta.visitors
            yield code, delta
