"""The L1 table: a cross-process cache of short code -> bytes.

The lock-free machinery (an index over an append-only log, readers
validated against the log head, FIFO eviction with second chance) lives in
shm/_native.c, whose header draws the bytes and argues the invariants.
This module sizes the segment, creates or attaches it, and turns the C
counters into a `TableStatistics` snapshot.

Sizing: a table holds `capacity_entries` entries of `mean_record_bytes`
(record header, key and value, 8-byte aligned) before the log wraps. The
index has three ways per entry: ceil(3 * capacity / 8) buckets of 8 ways,
24 bytes per entry, any bucket count (the C code scales the hash onto the
buckets with a multiply, not a mask). A full bucket evicts its oldest
entry early: 0.09% of the entries at full capacity (measured: 2 million
distinct keys put into a table of 2 million leave 1,998,208 to 1,998,277
entries; Poisson predicts 0.088%). Four ways would lose 0.015% for 8 more
bytes per entry, two ways 0.84% for 8 fewer.
"""

from __future__ import annotations

import mmap
import secrets
import time
from dataclasses import dataclass
from typing import Final, Literal

from shm import _native
from shm.layout import HEADER_BYTES, Kind, Segment, SegmentSpec

__all__ = ["NEGATIVE", "Table", "TableStatistics"]

MAX_KEY_BYTES: Final = _native.MAX_KEY_BYTES
MAX_VALUE_BYTES: Final = _native.MAX_VALUE_BYTES
_WAYS = 8
_INDEX_WAYS_PER_ENTRY = 3
_MIN_ARENA_BYTES = 64 * 1024
DEFAULT_MEAN_RECORD_BYTES = 160


class _Negative:
    """The marker get() returns for a cached known-missing key."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEGATIVE"

    def __bool__(self) -> Literal[False]:
        return False


NEGATIVE: Final = _Negative()


@dataclass(frozen=True, slots=True)
class TableStatistics:
    entries: int
    capacity: int
    hits: int
    misses: int
    inserts: int
    evictions: int
    cas_retries: int
    promotions: int
    deletes: int


def _spec(capacity_entries: int, mean_record_bytes: int) -> SegmentSpec:
    if capacity_entries < 1:
        raise ValueError(
            f"capacity_entries={capacity_entries}: expected at least 1"
        )
    buckets = (_INDEX_WAYS_PER_ENTRY * capacity_entries + _WAYS - 1) // _WAYS
    if buckets > _native.MAX_BUCKET_COUNT:
        raise ValueError(
            f"capacity_entries={capacity_entries}: expected at most "
            f"{_native.MAX_BUCKET_COUNT * _WAYS // _INDEX_WAYS_PER_ENTRY} "
            f"(the index takes at most {_native.MAX_BUCKET_COUNT} buckets)"
        )
    arena = max(_MIN_ARENA_BYTES, capacity_entries * mean_record_bytes)
    arena += -arena % 8
    region = _native.table_region_bytes(buckets, arena)
    return SegmentSpec(Kind.TABLE, buckets, arena, region)


class Table:
    """A shared table; every process of a node attaches by the same name."""

    def __init__(self, segment: Segment, capacity_entries: int) -> None:
        self._segment = segment
        self._core = _native.TableCore(segment.buffer, HEADER_BYTES, NEGATIVE)
        self.capacity = capacity_entries
        self.name = segment.name
        self.created = segment.created
        # Bound methods, so the hot path pays no attribute lookups.
        self.get = self._core.get
        self.delete = self._core.delete

    @classmethod
    def create_or_attach(
        cls,
        name: str,
        capacity_entries: int,
        mean_record_bytes: int = DEFAULT_MEAN_RECORD_BYTES,
    ) -> Table:
        spec = _spec(capacity_entries, mean_record_bytes)

        def init(buffer: mmap.mmap, offset: int, generation: int) -> None:
            seed = secrets.randbits(64)
            _native.init_table(buffer, offset, spec.param_a, spec.param_b, seed)

        segment = Segment.create_or_attach(name, spec, init)
        return cls(segment, capacity_entries)

    def put(self, key: bytes, value: bytes, ttl_s: float | None = None) -> bool:
        """Store value under key; False only if the index stayed contended."""
        return bool(self._core.put(key, value, _expiry_ms(ttl_s)))

    def put_negative(self, key: bytes, ttl_s: float) -> bool:
        """Remember that key is known to be missing, for ttl_s seconds."""
        return bool(self._core.put(key, b"", _expiry_ms(ttl_s), True))

    def statistics(self) -> TableStatistics:
        entries, hits, misses, inserts, evictions, retries, promotions, dels = (
            self._core.counters()
        )
        return TableStatistics(
            entries, self.capacity, hits, misses, inserts, evictions,
            retries, promotions, dels,
        )

    @property
    def memory_bytes(self) -> int:
        return self._segment.spec.total_bytes

    def close(self) -> None:
        self._core.close()
        self._segment.close()

    def unlink(self) -> None:
        self._segment.unlink()


def _expiry_ms(ttl_s: float | None) -> int:
    if ttl_s is None:
        return 0
    if ttl_s <= 0:
        raise ValueError(f"ttl_s={ttl_s}: expected a positive number of seconds")
    return int(time.time() * 1000 + ttl_s * 1000)
