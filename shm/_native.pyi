"""Type stub for shm._native, the C core of the shared-memory package.

Written from the method tables and module init of shm/_native.c; keep the
two in step (`python -m mypy.stubtest --mypy-config-file pyproject.toml
shm._native` compares this file with the built module). Every function
and method taking arguments parses them positionally (METH_O,
METH_VARARGS, METH_FASTCALL), hence the `/` markers; only the two
constructors accept keywords.

Buffers: arguments parsed with "w*" or PyBUF_WRITABLE need a writable
buffer (the segment's mmap), even for a plain load; keys, values and ring
records may be any buffer ("y*", PyBUF_SIMPLE). Values, seeds, sizes and
positions are u64 in C: a negative or wider int raises OverflowError.

TableCore is generic in the marker its get() returns for a negative
entry, which is the object handed to the constructor. The runtime class
is not subscriptable: spell `TableCore[X]` in annotations only.
"""

from typing import Final, Generic, TypeVar, final

from _typeshed import ReadableBuffer, WriteableBuffer

_Negative = TypeVar("_Negative")

MAX_KEY_BYTES: Final = 32
MAX_VALUE_BYTES: Final = 2048
RECORD_HEADER_BYTES: Final = 40
MAX_BUCKET_COUNT: Final = 4294967296

HOOK_PUSH_RESERVED: Final = 1
HOOK_PUSH_MID_COPY: Final = 2
HOOK_PUT_MID_WRITE: Final = 3

_TableCounters = tuple[int, int, int, int, int, int, int, int]
"""(entries, hits, misses, inserts, evictions, cas_retries, promotions,
deletes)"""

_RingCounters = tuple[int, int, int, int, int, int, int, int]
"""(head, tail, pushes, drops, skipped, taken, cas_retries, late)"""

@final
class TableCore(Generic[_Negative]):
    """The L1 table over a region of a shared-memory buffer."""

    def __init__(
        self, buffer: WriteableBuffer, offset: int, negative: _Negative
    ) -> None: ...
    def get(self, key: ReadableBuffer, /) -> bytes | _Negative | None:
        """The value, the negative marker, or None on a miss or expiry."""

    def put(
        self,
        key: ReadableBuffer,
        value: ReadableBuffer,
        expires_at_ms: int = 0,
        negative: bool = False,
        /,
    ) -> bool:
        """Append and index a record; False if the bucket stayed contended."""

    def delete(self, key: ReadableBuffer, /) -> bool:
        """Whether an entry was removed."""

    def counters(self) -> _TableCounters: ...
    def close(self) -> None:
        """Release the buffer; every later call raises ValueError."""

@final
class RingCore:
    """A multi-producer, single-consumer ring over a buffer region."""

    def __init__(
        self, buffer: WriteableBuffer, offset: int, stall_timeout_ms: int = 1000
    ) -> None: ...
    def push(self, record: ReadableBuffer, /) -> int:
        """The record's position, or -1 when the ring is full (never blocks)."""

    def peek(self, max_records: int, start: int = ..., /) -> tuple[list[bytes], int]:
        """(records, end_position), consuming nothing.

        Reads from `start`, by default the head. A start other than the head
        must be an end position an earlier peek returned since the last
        advance (ValueError otherwise): a consumer holding records back
        between advances peeks on from where it stopped, without copying
        them again.
        """

    def advance(self, end_position: int, /) -> int:
        """Free the cells before end_position; the new head."""

    def head(self) -> int: ...
    def positions(self) -> tuple[int, int]:
        """(head, tail)"""

    def counters(self) -> _RingCounters: ...
    def close(self) -> None:
        """Release the buffer; every later call raises ValueError."""

def load(buffer: WriteableBuffer, offset: int, /) -> int:
    """The u64 at offset, with acquire ordering."""

def store(buffer: WriteableBuffer, offset: int, value: int, /) -> None:
    """Write the u64 at offset, with release ordering."""

def compare_exchange(
    buffer: WriteableBuffer, offset: int, expected: int, desired: int, /
) -> bool: ...
def fetch_add(buffer: WriteableBuffer, offset: int, delta: int, /) -> int:
    """Add delta to the u64 at offset; the previous value."""

def table_region_bytes(bucket_count: int, arena_bytes: int, /) -> int: ...
def ring_region_bytes(capacity: int, record_bytes: int, /) -> int: ...
def init_table(
    buffer: WriteableBuffer,
    offset: int,
    bucket_count: int,
    arena_bytes: int,
    seed: int,
    /,
) -> None:
    """Write a fresh table header; bucket_count from 1 to MAX_BUCKET_COUNT."""

def init_ring(
    buffer: WriteableBuffer,
    offset: int,
    capacity: int,
    record_bytes: int,
    generation: int,
    /,
) -> None: ...
def set_test_hook(point: int, /) -> None:
    """SIGSTOP this process at a HOOK_* point; 0 turns the hook off."""

def key_hash(seed: int, key: ReadableBuffer, /) -> int:
    """The table's 64-bit hash of key under seed."""
