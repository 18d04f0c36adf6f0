"""The store facade a web worker uses: tiered reads, durable writes.

Reads go L1 (shared table), then Dragonfly when configured, then LMDB,
and fill L1 on the way back; a code found nowhere is cached as negative
for `negative_ttl_s`, so a flood of random codes costs one lookup per
code and TTL, not per request. While Dragonfly is away (see
`hyperlinkr.dragonfly.Breaker`) reads skip it and go to LMDB at once.

With Dragonfly, a create first claims its code there (SET NX): that is
what makes codes unique across nodes. A code already claimed is taken; a
Dragonfly that does not answer makes the create fail fast (503), because
without the claim two nodes could hand out the same code.

Writes go through the persister: a mutation is pushed to the write ring,
and the writer waits (without blocking the event loop) until the ring head
has passed it, which means it was committed with fsync; then it reads
LMDB to learn the outcome. Only a durable outcome is ever reported. A
batch of writes waits once, for the last of them, so a bulk create costs
one group commit rather than one per link.

The waiting is one `_HeadWatch` per worker: writers park on a future for
their position and a single task reads the head once a millisecond while
anyone waits. A poll loop per request cost each waiting request a wakeup
per tick, and under uvloop a sleep shorter than half a millisecond is no
sleep at all (it rounds timers to whole milliseconds), so every waiting
request spun the event loop and took the CPU the requests needed.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hyperlinkr.dragonfly import (
    Breaker,
    TierUnavailable,
    link_key,
    stats_key,
    tier_errors,
    visitors_key,
)
from hyperlinkr.errors import RecordError, StoreError
from hyperlinkr.links import (
    L1Entry,
    Link,
    decode_l1,
    decode_record,
    encode_l1,
    encode_record,
)
from hyperlinkr.linkstore import (
    Create,
    Delete,
    Idempotency,
    LinkReader,
    Mutation,
    Patch,
    encode_mutation,
)
from hyperlinkr.metrics import record_lookup
from hyperlinkr.node import Node
from hyperlinkr.stats import StoredStats, load_stats
from shm.ring import Ring
from shm.table import MAX_VALUE_BYTES

__all__ = ["CreateOutcome", "CreateResult", "LinkStore", "StoreUnavailable"]

# How often a worker with writes in flight reads the write ring's head: a
# whole millisecond, the finest timer uvloop keeps (it rounds to ms).
_POLL_S = 0.001
_PUSH_ATTEMPTS = 20
_PUSH_RETRY_S = 0.005


class StoreUnavailable(StoreError):
    """The persister did not make a write durable in time."""


class CreateOutcome(enum.Enum):
    CREATED = "created"
    CODE_TAKEN = "code-taken"
    REPLAYED = "replayed"  # the idempotency key was used before


@dataclass(frozen=True, slots=True)
class CreateResult:
    outcome: CreateOutcome
    link: Link | None  # the link created, or the one the key created before


class LinkStore:
    """One per web worker process."""

    def __init__(
        self, node: Node, tier: Any = None, durable_timeout_s: float = 5.0
    ) -> None:
        self._table = node.table
        self._writes = node.writes
        self._reader = LinkReader(node.env)
        self._negative_ttl_s = node.settings.negative_ttl_s
        self._durable = _HeadWatch(node.writes, durable_timeout_s)
        self._tier = tier  # an asyncio Redis client, or None (embedded)
        # Nothing to catch without a tier, and no Redis client to import.
        self._tier_errors = tier_errors() if tier is not None else ()
        self.breaker = Breaker()

    @property
    def shared(self) -> bool:
        return self._tier is not None

    async def lookup(self, code: str) -> L1Entry | None:
        """The link behind `code` from the nearest tier, or None."""
        key = code.encode()
        cached = self._table.get(key)
        if cached is not None:
            if cached:
                record_lookup("l1", "hit")
                return decode_l1(cached)
            record_lookup("l1", "negative")
            return None
        record_lookup("l1", "miss")
        link = await self._from_tier(code) if self._tier is not None else None
        if link is None:
            link = self._reader.get(code)
            record_lookup("lmdb", "miss" if link is None else "hit")
        if link is None:
            if self._negative_ttl_s > 0:
                self._table.put_negative(key, self._negative_ttl_s)
            return None
        entry = encode_l1(link)
        self._cache(key, entry)
        return decode_l1(entry)

    def _cache(self, key: bytes, entry: bytes) -> None:
        # The longest URLs (2037+ characters) do not fit an L1 value; they
        # are served from LMDB every time, correct if slower.
        if len(entry) <= MAX_VALUE_BYTES:
            self._table.put(key, entry)

    async def _from_tier(self, code: str) -> Link | None:
        if not self.breaker.available:
            record_lookup("dragonfly", "skipped")
            return None
        try:
            data = await self._tier.get(link_key(code))
        except self._tier_errors:
            self.breaker.failed()
            record_lookup("dragonfly", "error")
            return None
        if data is None:
            record_lookup("dragonfly", "miss")
            return None
        try:
            link = decode_record(data)
        except RecordError:
            record_lookup("dragonfly", "error")
            return None
        record_lookup("dragonfly", "hit")
        return link

    async def shared_stats(self, code: str) -> list[StoredStats]:
        """Every node's stats of `code` from Dragonfly; TierUnavailable if away."""
        self.breaker.check()
        try:
            fields = await self._tier.hgetall(stats_key(code))
        except self._tier_errors as exc:
            self.breaker.failed()
            raise TierUnavailable(
                f"reading stats from Dragonfly failed: {exc}"
            ) from exc
        return [load_stats(value) for value in fields.values()]

    async def unique_visitors(self, code: str, days: Sequence[str]) -> dict[str, int]:
        """Estimated distinct visitors per day (HyperLogLog), from Dragonfly."""
        self.breaker.check()
        try:
            # PFCOUNT cannot be pipelined by the cluster client; the reads
            # go out together all the same.
            counts = await asyncio.gather(
                *(self._tier.pfcount(visitors_key(code, day)) for day in days)
            )
        except self._tier_errors as exc:
            self.breaker.failed()
            raise TierUnavailable(
                f"reading visitors from Dragonfly failed: {exc}"
            ) from exc
        return dict(zip(days, (int(n) for n in counts), strict=True))

    def get(self, code: str) -> Link | None:
        """The full durable record (for stats and management), from LMDB."""
        return self._reader.get(code)

    def count(self) -> int:
        """How many links LMDB holds; raises StoreError if it cannot tell."""
        return self._reader.count()

    def reusable(self, url: str, redirect_status: int, now_ms: int) -> Link | None:
        """An enabled, unexpired link to `url` with this status, if any."""
        for link in self._reader.with_url(url):
            if (
                link.enabled
                and not link.is_expired(now_ms)
                and link.redirect_status == redirect_status
            ):
                return link
        return None

    def idempotent(self, key_digest: str) -> tuple[str, str] | None:
        """(code, request fingerprint) a previous create stored for this key."""
        return self._reader.idempotent(key_digest)

    async def create(self, link: Link, once: Idempotency | None = None) -> CreateResult:
        """Make `link` durable; tells whether it won its code."""
        return (await self.create_many([(link, once)]))[0]

    async def create_many(
        self, items: Sequence[tuple[Link, Idempotency | None]]
    ) -> list[CreateResult]:
        """Create several links with one wait for durability."""
        claimed = [True] * len(items)  # embedded: no shared tier to claim in
        if self._tier is not None:
            claimed = await self._claim([link for link, _ in items])
        wanted = [item for item, won in zip(items, claimed, strict=True) if won]
        await self._write_all([Create(link, once) for link, once in wanted])
        return [
            self._outcome(link, once)
            if won
            else CreateResult(CreateOutcome.CODE_TAKEN, None)
            for (link, once), won in zip(items, claimed, strict=True)
        ]

    async def _claim(self, links: Sequence[Link]) -> list[bool]:
        """Claim each code in Dragonfly (SET NX); all True when embedded."""
        if self._tier is None:
            return [True] * len(links)
        if not self.breaker.available:
            raise StoreUnavailable(
                "Dragonfly is unreachable, so a new code cannot be claimed; retry soon"
            )
        try:
            pipe = self._tier.pipeline(transaction=False)
            for link in links:
                pipe.set(link_key(link.code), encode_record(link), nx=True)
            answers = await pipe.execute()
        except self._tier_errors as exc:
            self.breaker.failed()
            raise StoreUnavailable(
                f"Dragonfly did not answer the code claim ({exc}); retry soon"
            ) from exc
        return [bool(answer) for answer in answers]

    def _outcome(self, link: Link, once: Idempotency | None) -> CreateResult:
        data = self._reader.record(link.code)
        # The persister stores encode_record(link) unchanged, so equal bytes
        # prove at once that this request's create won the code; a decode
        # and a nonce check prove it for any other record with our nonce.
        stored = None
        if data is not None and data != encode_record(link):
            stored = decode_record(data)
        if data is not None and (stored is None or stored.nonce == link.nonce):
            self._cache(link.code.encode(), encode_l1(link))
            return CreateResult(CreateOutcome.CREATED, link)
        if once is not None:
            earlier = self._reader.idempotent(once.key_digest)
            if earlier is not None:
                first = self._reader.get(earlier[0])
                return CreateResult(CreateOutcome.REPLAYED, first)
        if stored is None:
            raise StoreUnavailable(
                f"the persister released the write of {link.code!r} without "
                "committing it; see the persister's log"
            )
        return CreateResult(CreateOutcome.CODE_TAKEN, stored)

    async def patch(self, code: str, fields: dict[str, Any]) -> Link | None:
        """Change fields of a link durably; the link after, None if unknown."""
        await self._write_all([Patch(code, fields)])
        return self._reader.get(code)

    async def delete(self, code: str) -> None:
        """Delete a link durably (the persister drops it from L1)."""
        await self._write_all([Delete(code)])

    async def _write_all(self, mutations: Sequence[Mutation]) -> None:
        last = -1
        for mutation in mutations:
            last = await self._push(encode_mutation(mutation))
        await self._durable.wait(last)

    async def _push(self, record: bytes) -> int:
        for _ in range(_PUSH_ATTEMPTS):
            position: int = self._writes.push(record)
            if position >= 0:
                return position
            await asyncio.sleep(_PUSH_RETRY_S)
        raise StoreUnavailable(
            "the write ring stayed full; the persister is behind or not running"
        )


class _HeadWatch:
    """Wakes each writer of a worker once the ring head passed its record.

    Writers park a future under their record's position; one task, alive
    only while someone waits, reads the head every `_POLL_S`, resolves
    every parked future below it, and fails with StoreUnavailable those
    that waited `timeout_s`. Every writer waits as long, so deadlines come
    in the order writers park, and the oldest is always first. A future
    whose request was cancelled is skipped. Should the task itself fail,
    it fails every writer still parked, so none can wait forever. Parked
    positions lie between the head and the ring's tail, so there are never
    more of them than the ring holds records: a full ring refuses the push.
    """

    def __init__(self, writes: Ring, timeout_s: float) -> None:
        self._writes = writes
        self._timeout_s = timeout_s
        self._by_position: list[tuple[int, int, asyncio.Future[None]]] = []
        self._by_deadline: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._order = itertools.count()  # ties never compare two futures
        self._task: asyncio.Task[None] | None = None

    async def wait(self, position: int) -> None:
        """Return once the record at `position` is durable."""
        if self._writes.head > position:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._by_position, (position, next(self._order), future))
        self._by_deadline.append((time.monotonic() + self._timeout_s, future))
        if self._task is None:
            self._task = loop.create_task(self._watch())
        await future

    async def _watch(self) -> None:
        try:
            while self._by_deadline:
                self._release(self._writes.head)
                self._expire(time.monotonic())
                if self._by_deadline:
                    await asyncio.sleep(_POLL_S)
            self._by_position.clear()  # only futures nobody awaits are left
        except BaseException as exc:
            self._fail_all(exc)
            raise
        finally:
            self._task = None

    def _release(self, head: int) -> None:
        parked = self._by_position
        while parked and parked[0][0] < head:
            future = heapq.heappop(parked)[2]
            if not future.done():
                future.set_result(None)

    def _expire(self, now_s: float) -> None:
        waiting = self._by_deadline
        while waiting and (waiting[0][1].done() or waiting[0][0] <= now_s):
            future = waiting.popleft()[1]
            if not future.done():
                future.set_exception(
                    StoreUnavailable(
                        f"the persister did not commit within "
                        f"{self._timeout_s:.0f} s; is it running?"
                    )
                )

    def _fail_all(self, exc: BaseException) -> None:
        for _, future in self._by_deadline:
            if not future.done():
                future.set_exception(
                    StoreUnavailable(f"waiting for the persister failed: {exc!r}")
                )
        self._by_deadline.clear()
        self._by_position.clear()
