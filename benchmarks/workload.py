"""The shm benchmark workload, shared by test_shm.py and shm_report.py.

Both entry points time the same operations on the same data, so a figure
from one can be checked against the other:

- a table sized like a small L1 (TABLE_CAPACITY_ENTRIES), filled with
  TABLE_FILL_ENTRIES 7-byte codes whose values are shaped like an L1 entry
  (a 12-byte header and a URL, about 70 bytes); the hit key sits in the
  newer half of the log, so a hit is a plain read with no promotion;
- rings with cells sized like the node's click ring (512 bytes, see
  hyperlinkr/node.py) and records of a typical click's size (160 bytes);
- the baselines use the same keys, values and records.

Segments are named `hlb-<pid>-<random>` and unlinked by the context
managers here, whatever happens inside them, so a run leaves nothing in
/dev/shm. A push benchmark must never meet a full ring (a full ring
answers -1 at once and would flatter the figure): `push_ring_capacity`
sizes the ring for every push the run makes, and callers check `drops`.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.queues import Queue
from uuid import uuid4

from shm import Ring, Table

__all__ = [
    "CLICK_RECORD",
    "HIT_KEY",
    "MISS_KEY",
    "POP_BATCH_RECORDS",
    "POP_ROUNDS",
    "POP_ROUND_RECORDS",
    "PUSH_ITERATIONS",
    "PUSH_ROUNDS",
    "PUSH_WARMUP_ROUNDS",
    "RING_RECORD_BYTES",
    "VALUE",
    "drain",
    "fill",
    "filled_table",
    "open_ring",
    "push_calls",
    "push_ring_capacity",
    "queue_without_consumer",
    "segment_name",
    "table_entries",
]

TABLE_CAPACITY_ENTRIES = 16_384
TABLE_FILL_ENTRIES = 10_000
RING_RECORD_BYTES = 512
CLICK_RECORD_BYTES = 160
POP_ROUND_RECORDS = 4096
POP_BATCH_RECORDS = 256
POP_ROUNDS = 200
# Pushes are timed in fixed rounds so the ring can be sized to never fill.
PUSH_ROUNDS = 100
PUSH_WARMUP_ROUNDS = 10
PUSH_ITERATIONS = 1000

_URL = b"https://example.com/articles/2024/the-long-road-to-%06d?utm=news"
_L1_HEADER = bytes(12)

HIT_KEY = b"c%06d" % (TABLE_FILL_ENTRIES - 1)
MISS_KEY = b"zzzzzzz"
VALUE = _L1_HEADER + _URL % 0
CLICK_RECORD = bytes(range(CLICK_RECORD_BYTES))


def segment_name() -> str:
    """A segment name no other process or run uses."""
    return f"hlb-{os.getpid()}-{uuid4().hex[:8]}"


def table_entries() -> dict[bytes, bytes]:
    """The table's contents: code -> L1-shaped value."""
    return {b"c%06d" % i: _L1_HEADER + _URL % i for i in range(TABLE_FILL_ENTRIES)}


@contextmanager
def filled_table() -> Iterator[Table]:
    """A fresh table holding `table_entries()`, unlinked on exit."""
    table = Table.create_or_attach(segment_name(), TABLE_CAPACITY_ENTRIES)
    try:
        for key, value in table_entries().items():
            table.put(key, value)
        yield table
    finally:
        table.close()
        table.unlink()


@contextmanager
def open_ring(capacity_records: int) -> Iterator[Ring]:
    """A fresh, empty click-sized ring, unlinked on exit."""
    ring = Ring.create_or_attach(segment_name(), capacity_records, RING_RECORD_BYTES)
    try:
        yield ring
    finally:
        ring.close()
        ring.unlink()


def push_ring_capacity(push_calls: int) -> int:
    """The smallest power-of-two capacity that takes `push_calls` pushes."""
    return 1 << max(1, (push_calls - 1).bit_length())


def push_calls() -> int:
    """How many pushes a pytest-benchmark push run makes, warmup included."""
    return (PUSH_ROUNDS + PUSH_WARMUP_ROUNDS) * PUSH_ITERATIONS


def fill(ring: Ring, records: int) -> None:
    """Push `records` copies of CLICK_RECORD; raise if the ring is full."""
    push = ring.push
    for _ in range(records):
        if push(CLICK_RECORD) < 0:
            raise RuntimeError(
                f"ring {ring.name!r} filled up after fewer than {records} "
                f"pushes; drain it first or give it more capacity"
            )


def drain(ring: Ring, batch_records: int = POP_BATCH_RECORDS) -> int:
    """Peek and advance in batches until the ring is empty; records taken."""
    peek, advance = ring.peek, ring.advance
    taken = 0
    while True:
        records, end = peek(batch_records)
        if not records:
            return taken
        advance(end)
        taken += len(records)


@contextmanager
def queue_without_consumer() -> Iterator[Queue[bytes | None]]:
    """A multiprocessing.Queue nobody reads while it is timed.

    With no consumer the queue's feeder thread parks once the pipe is full,
    so a timed put() is the producer's enqueue cost alone (lock, semaphore,
    buffer append, notify): a lower bound on what a Queue costs in real
    use. delivery.py times the whole hand-over to a consumer process.

    On exit the queue is read to the end marker, so the feeder thread can
    finish and be joined instead of being left blocked on a full pipe.
    """
    queue: Queue[bytes | None] = multiprocessing.Queue()
    try:
        yield queue
    finally:
        queue.put(None)
        while queue.get() is not None:
            pass
        queue.close()
        queue.join_thread()
