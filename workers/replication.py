"""Keeping a node's links in step with the shared tier and the other nodes.

Runs as a thread of the persister when `HYPERLINKR_REDIS_URL` is set, with
three duties, in one loop:

1. Publish. Every local change is recorded in LMDB's outbox in the same
   commit that applies it (`LinkWriter.apply_and_record`). This thread
   sends the outbox in order, in one pipeline per batch: the new record to
   the link's key (SET, or DEL for a delete), and the change itself to the
   `hl:mutations` stream tagged with this node's name; then it forgets what
   was sent. While Dragonfly is away the outbox simply grows, so nothing a
   node acknowledged is lost for the others either.
2. Consume. Each node reads the stream with a consumer group of its own
   name, skips its own entries, applies the others' to its LMDB copy, drops
   the L1 entries they change (twice, 50 ms apart, like local changes) and
   acknowledges them. A node that was down finds its group's position and
   catches up; entries read but not acknowledged before a crash are read
   again (id 0) and re-applied, which changes nothing.
3. Re-seed. `hl:epoch` exists once the tier holds every link. When it is
   missing (a new tier, or one that restarted empty), every link in LMDB is
   written back (SET NX, pipelined, progress logged) and the consumer group
   is made again; then the epoch key is set.

Why a thread and not the persister's own loop: a blocking stream read
(XREADGROUP BLOCK) delivers another node's change the moment it is
published, without polling, and must not delay local commits, which the
persister's loop serves within half a millisecond.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import lmdb
import redis

import shm
from hyperlinkr.dragonfly import (
    EPOCH_KEY,
    STREAM_KEY,
    STREAM_MAX_ENTRIES,
    link_key,
    tier_errors,
)
from hyperlinkr.links import encode_record
from hyperlinkr.linkstore import (
    Create,
    Delete,
    LinkWriter,
    Mutation,
    Update,
    decode_mutation,
    encode_mutation,
)
from hyperlinkr.storage import LINKS_DB

__all__ = ["Replicator"]

# Imported only with a tier configured, so resolving them here costs nothing.
TIER_ERRORS = tier_errors()

logger = logging.getLogger(__name__)

_BATCH = 500
_BLOCK_MS = 100
_EPOCH_CHECK_S = 1.0
_RETRY_S = 0.5
_REDELETE_AFTER_S = 0.05
_SEED_BATCH = 1000
_SEED_LOG_EVERY = 20_000


class Replicator:
    """The replication loop of one node's persister."""

    def __init__(
        self,
        client: Any,
        node_name: str,
        env: lmdb.Environment,
        table: shm.Table,
    ) -> None:
        self._client = client
        self._node = node_name.encode()
        self._env = env
        self._table = table
        self._writer = LinkWriter(env)
        self._epoch_checked_s = 0.0
        self._pending_first = True
        self._healthy = True
        self._redelete: deque[tuple[float, list[bytes]]] = deque()
        self.published = 0
        self.applied = 0
        self.seeded = 0

    def start(self, should_stop: Callable[[], bool]) -> threading.Thread:
        thread = threading.Thread(
            target=self.run, args=(should_stop,), name="replicator", daemon=True
        )
        thread.start()
        return thread

    def run(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            try:
                self.run_once()
            except TIER_ERRORS as exc:
                self._went_away(exc)
                time.sleep(_RETRY_S)
        self._publish_quietly()

    def run_once(self, block_ms: int = _BLOCK_MS) -> None:
        self._check_epoch()
        self._publish()
        self._consume(block_ms)
        self._redelete_due()
        if not self._healthy:
            logger.info("Dragonfly answers again; replication resumed")
            self._healthy = True

    def _went_away(self, exc: Exception) -> None:
        if self._healthy:
            logger.warning(
                "Dragonfly is unreachable (%s); local changes wait in the "
                "outbox and are published when it is back",
                exc,
            )
        self._healthy = False

    def _publish_quietly(self) -> None:
        try:
            self._publish()
        except TIER_ERRORS as exc:
            logger.warning("stopping with unpublished changes in the outbox: %s", exc)

    # -- publish -------------------------------------------------------

    def _publish(self) -> None:
        while True:
            entries = self._writer.outbox(_BATCH)
            if not entries:
                return
            pipe = self._client.pipeline(transaction=False)
            for _, event in entries:
                _mirror_link(pipe, event)
                pipe.xadd(
                    STREAM_KEY,
                    {"n": self._node, "m": encode_mutation(event)},
                    maxlen=STREAM_MAX_ENTRIES,
                    approximate=True,
                )
            pipe.execute()
            self._writer.forget_published([key for key, _ in entries])
            self.published += len(entries)

    # -- consume -------------------------------------------------------

    def _consume(self, block_ms: int) -> None:
        start = "0" if self._pending_first else ">"
        try:
            answer = self._client.xreadgroup(
                self._node,
                self._node,
                {STREAM_KEY: start},
                count=_BATCH,
                block=None if start == "0" else block_ms,
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._make_group()
            return
        entries = answer[0][1] if answer else []
        if start == "0" and not entries:
            self._pending_first = False
            return
        self._apply(entries)

    def _apply(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        if not entries:
            return
        changes = [
            decode_mutation(fields[b"m"])
            for _, fields in entries
            if fields.get(b"n") != self._node
        ]
        if changes:
            self._writer.apply(changes)
            self._forget(changes)
            self.applied += len(changes)
        self._client.xack(
            STREAM_KEY, self._node, *[entry_id for entry_id, _ in entries]
        )

    def _forget(self, changes: list[Mutation]) -> None:
        keys = [_code_of(change).encode() for change in changes]
        for key in keys:
            self._table.delete(key)
        self._redelete.append((time.monotonic() + _REDELETE_AFTER_S, keys))

    def _redelete_due(self) -> None:
        now_s = time.monotonic()
        while self._redelete and self._redelete[0][0] <= now_s:
            for key in self._redelete.popleft()[1]:
                self._table.delete(key)

    def _make_group(self) -> None:
        try:
            self._client.xgroup_create(STREAM_KEY, self._node, id="0", mkstream=True)
            logger.info(
                "made the consumer group %s on %s", self._node.decode(), STREAM_KEY
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._pending_first = True

    # -- re-seed -------------------------------------------------------

    def _check_epoch(self) -> None:
        now_s = time.monotonic()
        if now_s - self._epoch_checked_s < _EPOCH_CHECK_S:
            return
        self._epoch_checked_s = now_s
        if not self._client.exists(EPOCH_KEY):
            self.reseed()

    def reseed(self) -> int:
        """Write every link of this node to the tier; returns how many."""
        logger.info("Dragonfly holds no epoch key; re-seeding it from LMDB")
        started_s = time.monotonic()
        sent = 0
        pipe = self._client.pipeline(transaction=False)
        with self._env.begin(db=self._env.open_db(LINKS_DB)) as txn:
            for key, value in txn.cursor():
                pipe.set(link_key(bytes(key).decode()), bytes(value), nx=True)
                sent += 1
                if sent % _SEED_BATCH == 0:
                    pipe.execute()
                    pipe = self._client.pipeline(transaction=False)
                if sent % _SEED_LOG_EVERY == 0:
                    logger.info("re-seeded %d links so far", sent)
        pipe.execute()
        self._make_group()
        self._client.set(EPOCH_KEY, str(int(time.time())))
        self.seeded += sent
        logger.info(
            "re-seeded Dragonfly with %d links in %.1f s",
            sent,
            time.monotonic() - started_s,
        )
        return sent


def _code_of(change: Mutation) -> str:
    if isinstance(change, Create | Update):
        return change.link.code
    return change.code


def _mirror_link(pipe: Any, event: Mutation) -> None:
    if isinstance(event, Delete):
        pipe.delete(link_key(event.code))
    elif isinstance(event, Update):
        pipe.set(link_key(event.link.code), encode_record(event.link))
    elif isinstance(event, Create):
        pipe.set(link_key(event.link.code), encode_record(event.link), nx=True)
