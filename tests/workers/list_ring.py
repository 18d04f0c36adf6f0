"""An in-process stand-in for `shm`'s ring, for tests of its consumers.

`ListRing` keeps the ring's contract (positions, peek from the head or
from a given position without consuming, advance releases, a full ring
refuses a push) with a plain list, and nothing else: no shared memory, no
other processes. Tests of the real ring and of the actor against it live
beside the real ring.
"""

from __future__ import annotations

import random


class ListRing:
    """Single-process ring with the same API as the shared-memory one."""

    def __init__(
        self,
        capacity_records: int = 1024,
        record_bytes: int = 512,
        generation: int | None = None,
    ) -> None:
        self.generation = random.getrandbits(64) if generation is None else generation
        self.record_bytes = record_bytes
        self.capacity_records = capacity_records
        self._head = 0
        self._records: list[bytes] = []
        self.advance_calls: list[int] = []

    @property
    def head(self) -> int:
        return self._head

    @property
    def tail(self) -> int:
        return self._head + len(self._records)

    def push(self, record: bytes) -> int:
        if len(record) > self.record_bytes:
            raise ValueError(
                f"record is {len(record)} bytes; the ring holds {self.record_bytes}"
            )
        if len(self._records) >= self.capacity_records:
            return -1
        self._records.append(bytes(record))
        return self.tail - 1

    def peek(
        self, max_records: int, start: int | None = None
    ) -> tuple[list[bytes], int]:
        start = self._head if start is None else start
        if not self._head <= start <= self.tail:
            raise ValueError(f"peek from {start}; expected {self._head}..{self.tail}")
        offset = start - self._head
        records = self._records[offset : offset + max_records]
        return records, start + len(records)

    def advance(self, end_position: int) -> None:
        if not self._head <= end_position <= self.tail:
            raise ValueError(
                f"advance to {end_position}; expected {self._head}..{self.tail}"
            )
        del self._records[: end_position - self._head]
        self._head = end_position
        self.advance_calls.append(end_position)
