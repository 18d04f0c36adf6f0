"""Real processes hammering one table and one ring, bounded in time."""

from __future__ import annotations

import multiprocessing
import struct
from collections.abc import Callable

from shm import Ring, Table, _native
from tests.shm import workers

Names = Callable[[], str]
spawn = multiprocessing.get_context("spawn")
JOIN_TIMEOUT_S = 60


def test_readers_only_ever_see_values_put_for_their_key(
    segment_name: Names,
) -> None:
    """2 writers, 3 readers, 200 slots for 5,000 keys: constant eviction."""
    name, capacity, keys, seconds = segment_name(), 200, 5000, 8.0
    table = Table.create_or_attach(name, capacity)
    results = spawn.Queue()
    procs = [
        spawn.Process(target=workers.table_writer, args=(name, capacity, keys, seconds))
        for _ in range(2)
    ] + [
        spawn.Process(
            target=workers.table_reader,
            args=(name, capacity, keys, seconds, results),
        )
        for _ in range(3)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=JOIN_TIMEOUT_S) for _ in range(3)]
    for proc in procs:
        proc.join(JOIN_TIMEOUT_S)
        assert proc.exitcode == 0, "a process deadlocked or failed"
    hits = sum(hits for hits, _, _ in outcomes)
    errors = [(e, first) for _, e, first in outcomes if e]
    stats = table.statistics()
    table.close()
    assert not errors, errors
    assert hits > 1000
    assert stats.evictions > 10_000
    # The log has a 64 KiB floor, so a 200-entry table holds 350-450 of
    # these records. Bounded means no more entries than the segment could
    # physically hold at the smallest record a writer here makes.
    key = b"key-0"  # the shortest key; serial 0 makes the shortest value
    record_bytes = _native.RECORD_HEADER_BYTES + len(key)
    record_bytes += len(workers.make_value(key, 0))
    record_bytes += -record_bytes % 8
    assert stats.entries <= table.memory_bytes // record_bytes, stats


def test_every_record_arrives_once_in_order_per_producer(
    segment_name: Names,
) -> None:
    name, producers, count = segment_name(), 3, 300_000
    ring = Ring.create_or_attach(name, 4096, 16)
    procs = [
        spawn.Process(target=workers.ring_producer, args=(name, pid, count))
        for pid in range(producers)
    ]
    for proc in procs:
        proc.start()
    next_serial = [0] * producers
    received = 0
    while received < producers * count:
        records, end = ring.peek(1024)
        for record in records:
            producer, serial = struct.unpack("<IQ", record)
            assert serial == next_serial[producer], "lost, repeated or reordered"
            next_serial[producer] += 1
        received += len(records)
        ring.advance(end)
        if not records and not any(p.is_alive() for p in procs):
            break
    for proc in procs:
        proc.join(JOIN_TIMEOUT_S)
        assert proc.exitcode == 0
    stats = ring.statistics()
    ring.close()
    assert next_serial == [count] * producers
    # Producers retry a full ring, so drops count refusals, not losses.
    assert stats.skipped == stats.late == 0
    assert stats.taken == producers * count
