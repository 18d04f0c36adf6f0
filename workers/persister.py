"""The persister: the one writer of links to LMDB, by group commit.

Web workers push encoded mutations (`hyperlinkr.linkstore`) to the write
ring and wait. The persister peeks every record the ring has published,
commits them all in one LMDB transaction (one fsync, however many), and
only then advances the ring head past them. The head is therefore the
node's durability receipt: a record behind it is on disk, or was skipped
as unreadable, and the writer learns which by reading LMDB.

Crash safety follows from the same order. A persister killed before the
commit leaves the records in the ring and the restarted one commits them;
killed after the commit and before the advance, it commits them again,
which changes nothing: a Create of an existing code keeps the stored link
(the writer recognises its own by the nonce), and Update and Delete give
the same result twice.

Group commit needs no timer: while one fsync runs, more records arrive,
and the next peek takes all of them.

A changed or deleted link must not live on in L1. The persister drops its
entry after the commit, and once more `REDELETE_AFTER_S` later: a web
worker that read the old record from LMDB just before the commit may put
it into L1 just after the first drop, and the second drop removes it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import lmdb

import shm
from hyperlinkr.errors import RecordError, StoreError
from hyperlinkr.linkstore import (
    Create,
    LinkWriter,
    Mutation,
    Update,
    decode_mutation,
)
from hyperlinkr.metrics import record_commit

__all__ = ["Persister", "PersisterStatistics"]

logger = logging.getLogger(__name__)

_BATCH_RECORDS = 1024
# With nothing to commit the ring is polled every _IDLE_SLEEP_S, and once
# nothing came for _QUIET_AFTER_S, every _QUIET_SLEEP_S: an idle node then
# wakes the persister 500 times a second rather than 2000 (each wakeup is
# about 25 us of CPU), and the first write after a quiet spell waits at
# most 2 ms for its commit to start. The two sleeps are the only delay a
# write sees before its group commit; there is no timer to fill batches.
_IDLE_SLEEP_S = 0.0005
_QUIET_SLEEP_S = 0.002
_QUIET_AFTER_S = 0.1
_RETRY_SLEEP_S = 0.5
REDELETE_AFTER_S = 0.05


@dataclass(frozen=True, slots=True)
class PersisterStatistics:
    commits: int
    mutations: int
    bad_records: int
    failed_commits: int
    last_batch_size: int
    last_commit_ms: float


class Persister:
    """Drains `writes` into LMDB; keeps `table` in step for changed links."""

    def __init__(
        self,
        writes: shm.Ring,
        table: shm.Table,
        env: lmdb.Environment,
        record: bool = False,
    ) -> None:
        self._writes = writes
        self._table = table
        self._writer = LinkWriter(env)
        self._record = record  # keep an outbox for the shared tier
        self._commits = 0
        self._mutations = 0
        self._bad_records = 0
        self._failed_commits = 0
        self._last_batch_size = 0
        self._last_commit_ms = 0.0
        self._redelete: deque[tuple[float, list[bytes]]] = deque()

    def run_once(self) -> int:
        """Commit what the ring holds; return how many mutations it was."""
        records, end = self._writes.peek(_BATCH_RECORDS)
        if not records:
            if end > self._writes.head:
                self._writes.advance(end)  # only skipped cells
            return 0
        mutations = self._decode(records)
        started_s = time.perf_counter()
        self._writer.apply(mutations, record=self._record)
        commit_s = time.perf_counter() - started_s
        self._last_commit_ms = commit_s * 1000
        self._forget_changed(mutations)
        self._writes.advance(end)
        self._commits += 1
        self._mutations += len(mutations)
        self._last_batch_size = len(mutations)
        record_commit(commit_s, len(mutations))
        return len(mutations)

    def _decode(self, records: list[bytes]) -> list[Mutation]:
        mutations = []
        for record in records:
            try:
                mutations.append(decode_mutation(record))
            except RecordError as exc:
                self._bad_records += 1
                logger.error("skipping an unreadable write-ring record: %s", exc)
        return mutations

    def _forget_changed(self, mutations: list[Mutation]) -> None:
        # Creates are cached by their writer once it sees them committed.
        keys = [
            (m.link.code if isinstance(m, Update) else m.code).encode()
            for m in mutations
            if not isinstance(m, Create)
        ]
        for key in keys:
            self._table.delete(key)
        if keys:
            self._redelete.append((time.monotonic() + REDELETE_AFTER_S, keys))

    def _redelete_due(self) -> None:
        now_s = time.monotonic()
        while self._redelete and self._redelete[0][0] <= now_s:
            for key in self._redelete.popleft()[1]:
                self._table.delete(key)

    def run(self, should_stop: Callable[[], bool]) -> None:
        """Commit until `should_stop()`, then drain what is left and return."""
        logger.info("persister started at write ring position %d", self._writes.head)
        last_commit_s = time.monotonic()
        while not should_stop():
            self._redelete_due()
            if self._run_guarded():
                last_commit_s = time.monotonic()
            elif time.monotonic() - last_commit_s < _QUIET_AFTER_S:
                time.sleep(_IDLE_SLEEP_S)
            else:
                time.sleep(_QUIET_SLEEP_S)
        while self._run_guarded() > 0:
            pass
        time.sleep(REDELETE_AFTER_S)
        self._redelete_due()
        logger.info("persister stopped at write ring position %d", self._writes.head)

    def _run_guarded(self) -> int:
        try:
            return self.run_once()
        except StoreError as exc:
            self._failed_commits += 1
            logger.error("%s; retrying in %.1f s", exc, _RETRY_SLEEP_S)
            time.sleep(_RETRY_SLEEP_S)
            return 0

    def statistics(self) -> PersisterStatistics:
        return PersisterStatistics(
            self._commits,
            self._mutations,
            self._bad_records,
            self._failed_commits,
            self._last_batch_size,
            self._last_commit_ms,
        )
