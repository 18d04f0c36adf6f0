"""kill -9 at exact points: nothing wedges, nothing published is lost."""

from __future__ import annotations

import multiprocessing
import os
import signal
import struct
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess

import pytest

from shm import Ring, Table, _native
from tests.shm import workers

Names = Callable[[], str]
spawn = multiprocessing.get_context("spawn")
DEADLINE_S = 20.0


def wait_until_stopped(proc: BaseProcess) -> None:
    """Wait for the child to SIGSTOP itself at its hook."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        with open(f"/proc/{proc.pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.01)
    proc.kill()
    pytest.fail("the child never reached its hook")


def kill_9(proc: BaseProcess) -> None:
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(DEADLINE_S)


def drain(ring: Ring, expected: int) -> list[tuple[int, int]]:
    records: list[tuple[int, int]] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(records) < expected and time.monotonic() < deadline:
        batch, end = ring.peek(1024)
        records.extend(struct.unpack("<IQ", r) for r in batch)
        ring.advance(end)
        if not batch:
            time.sleep(0.001)
    return records


@pytest.mark.parametrize(
    "hook", [_native.HOOK_PUSH_RESERVED, _native.HOOK_PUSH_MID_COPY]
)
def test_producer_killed_mid_push_is_skipped(segment_name: Names, hook: int) -> None:
    name = segment_name()
    ring = Ring.create_or_attach(name, 4096, 16, stall_timeout_ms=200)
    victim = spawn.Process(
        target=workers.ring_producer_stopping_at, args=(name, 9, hook)
    )
    victim.start()
    wait_until_stopped(victim)
    kill_9(victim)
    survivor = spawn.Process(target=workers.ring_producer, args=(name, 1, 2000))
    survivor.start()
    records = drain(ring, 3000)
    survivor.join(DEADLINE_S)
    stats = ring.statistics()
    ring.close()
    assert sorted(s for p, s in records if p == 9) == list(range(1000))
    assert [s for p, s in records if p == 1] == list(range(2000))
    assert stats.skipped == 1
    assert stats.depth == 0


def test_writer_killed_mid_write_leaves_the_table_usable(
    segment_name: Names,
) -> None:
    name = segment_name()
    table = Table.create_or_attach(name, 1000)
    victim = spawn.Process(
        target=workers.table_writer_stopping_mid_write, args=(name, 1000)
    )
    victim.start()
    wait_until_stopped(victim)
    kill_9(victim)
    assert table.get(b"victim") == b"old value"
    assert table.put(b"victim", b"after the crash")
    assert table.get(b"victim") == b"after the crash"
    for i in range(5000):
        assert table.put(b"k%d" % i, b"v")
    assert table.get(b"k4999") == b"v"
    table.close()


def test_consumer_killed_mid_batch_resumes_at_its_first_record(
    segment_name: Names,
) -> None:
    name = segment_name()
    ring = Ring.create_or_attach(name, 4096, 16)
    for serial in range(3000):
        ring.push(struct.pack("<IQ", 0, serial))
    out = spawn.Queue()
    consumer = spawn.Process(
        target=workers.ring_consumer_stopping_mid_batch, args=(name, out)
    )
    consumer.start()
    first_batch = out.get(timeout=DEADLINE_S)
    wait_until_stopped(consumer)
    kill_9(consumer)
    records = drain(ring, 3000)
    ring.close()
    assert struct.unpack("<IQ", first_batch[0]) == (0, 0)
    assert records == [(0, serial) for serial in range(3000)]


def test_consumer_peeking_on_from_its_cursor_skips_a_dead_producer(
    segment_name: Names,
) -> None:
    """Held-back records and the dead producer's cell are counted in one end."""
    name = segment_name()
    ring = Ring.create_or_attach(name, 4096, 16, stall_timeout_ms=200)
    victim = spawn.Process(
        target=workers.ring_producer_stopping_at,
        args=(name, 9, _native.HOOK_PUSH_RESERVED),
    )
    victim.start()
    wait_until_stopped(victim)
    with pytest.raises(ValueError, match="not published"):
        ring.peek(1, 1001)  # past the cell the victim reserved
    kill_9(victim)
    for serial in range(500):
        assert ring.push(struct.pack("<IQ", 1, serial)) >= 0

    records: list[bytes] = []
    cursor = ring.head
    deadline = time.monotonic() + DEADLINE_S
    while len(records) < 1500 and time.monotonic() < deadline:
        batch, cursor = ring.peek(256, cursor)
        records.extend(batch)
        if not batch:
            time.sleep(0.001)
    assert ring.head == 0, "nothing is released before advance"
    assert ring.advance(cursor) == cursor == 1501
    stats = ring.statistics()
    ring.close()
    unpacked = [struct.unpack("<IQ", r) for r in records]
    assert unpacked == [(9, s) for s in range(1000)] + [(1, s) for s in range(500)]
    assert (stats.skipped, stats.depth) == (1, 0)
