"""The store facade a web worker uses: tiered reads, durable writes.

Reads go L1 (shared table), then LMDB, and fill L1 on the way back; a code
found nowhere is cached as negative for `negative_ttl_s`, so a flood of
random codes costs one LMDB read per code and TTL, not per request. The
Dragonfly tier, when it exists, slots in between the two.

Writes go through the persister: `create()` pushes the mutation to the
write ring, waits (without blocking the event loop) until the ring head
has passed it, which means it was committed with fsync, and then reads
LMDB to learn whether its link won the code or an existing one kept it.
Only a durable outcome is ever reported.
"""

from __future__ import annotations

import asyncio
import enum
import time

from hyperlinkr.errors import StoreError
from hyperlinkr.links import L1Entry, Link, decode_l1, encode_l1
from hyperlinkr.linkstore import Create, LinkReader, Mutation, encode_mutation
from hyperlinkr.node import Node

__all__ = ["CreateOutcome", "LinkStore", "StoreUnavailable"]

_POLL_S = 0.0005
_PUSH_ATTEMPTS = 20


class StoreUnavailable(StoreError):
    """The persister did not make a write durable in time."""


class CreateOutcome(enum.Enum):
    CREATED = "created"
    CODE_TAKEN = "code-taken"


class LinkStore:
    """One per web worker process."""

    def __init__(self, node: Node, durable_timeout_s: float = 5.0) -> None:
        self._table = node.table
        self._writes = node.writes
        self._reader = LinkReader(node.env)
        self._negative_ttl_s = node.settings.negative_ttl_s
        self._durable_timeout_s = durable_timeout_s

    def lookup(self, code: str) -> L1Entry | None:
        """The link behind `code` from the nearest tier, or None."""
        key = code.encode()
        cached = self._table.get(key)
        if cached is not None:
            return decode_l1(cached) if cached else None
        link = self._reader.get(code)
        if link is None:
            if self._negative_ttl_s > 0:
                self._table.put_negative(key, self._negative_ttl_s)
            return None
        entry = encode_l1(link)
        self._table.put(key, entry)
        return decode_l1(entry)

    def get(self, code: str) -> Link | None:
        """The full durable record (for stats and management), from LMDB."""
        return self._reader.get(code)

    def count(self) -> int:
        """How many links LMDB holds; raises StoreError if it cannot tell."""
        return self._reader.count()

    async def create(self, link: Link) -> CreateOutcome:
        """Make `link` durable; CODE_TAKEN if another link holds its code."""
        await self._write(Create(link))
        stored = self._reader.get(link.code)
        if stored is None:
            raise StoreUnavailable(
                f"the persister released the write of {link.code!r} without "
                "committing it; see the persister's log"
            )
        if stored.nonce != link.nonce:
            return CreateOutcome.CODE_TAKEN
        self._table.put(link.code.encode(), encode_l1(link))
        return CreateOutcome.CREATED

    async def _write(self, mutation: Mutation) -> None:
        position = await self._push(encode_mutation(mutation))
        deadline = time.monotonic() + self._durable_timeout_s
        while self._writes.head <= position:
            if time.monotonic() > deadline:
                raise StoreUnavailable(
                    f"the persister did not commit within "
                    f"{self._durable_timeout_s:.0f} s; is it running?"
                )
            await asyncio.sleep(_POLL_S)

    async def _push(self, record: bytes) -> int:
        for _ in range(_PUSH_ATTEMPTS):
            position: int = self._writes.push(record)
            if position >= 0:
                return position
            await asyncio.sleep(0.005)
        raise StoreUnavailable(
            "the write ring stayed full; the persister is behind or not running"
        )
