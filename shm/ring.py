"""Rings: many producers, one consumer, fixed-size records, shared memory.

The protocol (per-cell sequence words, CAS-claimed cells, skipping of cells
whose producer died, release only on advance) is in shm/_native.c. Here:
sizing, create-or-attach, and the `RingStatistics` snapshot.

A consumer reads with peek() and releases with advance(): records stay in
the ring until advanced past, so a consumer that dies mid-batch sees them
again. To count exactly once across crashes, commit the end position of a
batch together with its effects (see workers/analytics.py), then advance.
A consumer that holds records back over several peeks passes the end
position of its last peek as `peek(max_records, start)`, and reads on from
there instead of copying everything from the head again.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

from shm import _native
from shm.layout import HEADER_BYTES, Kind, Segment, SegmentSpec

__all__ = ["Ring", "RingStatistics"]

DEFAULT_STALL_TIMEOUT_MS = 1000


@dataclass(frozen=True, slots=True)
class RingStatistics:
    capacity: int
    depth: int
    head: int
    tail: int
    pushes: int
    drops: int
    skipped: int
    taken: int
    cas_retries: int
    late: int


class Ring:
    """A shared ring; producers push(), one consumer peek()s and advance()s."""

    def __init__(self, segment: Segment, stall_timeout_ms: int) -> None:
        self._segment = segment
        self._core = _native.RingCore(
            segment.buffer, HEADER_BYTES, stall_timeout_ms
        )
        self.name = segment.name
        self.created = segment.created
        self.capacity = segment.spec.param_a
        self.record_bytes = segment.spec.param_b
        self.generation = segment.generation
        # Bound methods, so the hot path pays no attribute lookups.
        self.push = self._core.push
        self.peek = self._core.peek
        self.advance = self._core.advance

    @classmethod
    def create_or_attach(
        cls,
        name: str,
        capacity_records: int,
        record_bytes: int,
        stall_timeout_ms: int = DEFAULT_STALL_TIMEOUT_MS,
    ) -> Ring:
        spec = _spec(capacity_records, record_bytes)

        def init(buffer: mmap.mmap, offset: int, generation: int) -> None:
            _native.init_ring(
                buffer, offset, capacity_records, record_bytes, generation
            )

        segment = Segment.create_or_attach(name, spec, init)
        return cls(segment, stall_timeout_ms)

    @property
    def head(self) -> int:
        """Position of the first record the consumer has not advanced past."""
        return int(self._core.head())

    def statistics(self) -> RingStatistics:
        head, tail, pushes, drops, skipped, taken, retries, late = (
            self._core.counters()
        )
        return RingStatistics(
            self.capacity, tail - head, head, tail, pushes, drops, skipped,
            taken, retries, late,
        )

    def close(self) -> None:
        self._core.close()
        self._segment.close()

    def unlink(self) -> None:
        self._segment.unlink()


def _spec(capacity_records: int, record_bytes: int) -> SegmentSpec:
    if capacity_records < 2 or capacity_records & (capacity_records - 1):
        raise ValueError(
            f"capacity_records={capacity_records}: expected a power of two >= 2"
        )
    if not 1 <= record_bytes <= 64 * 1024:
        raise ValueError(
            f"record_bytes={record_bytes}: expected 1 to 65536 bytes"
        )
    region = _native.ring_region_bytes(capacity_records, record_bytes)
    return SegmentSpec(Kind.RING, capacity_records, record_bytes, region)
