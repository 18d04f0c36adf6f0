"""Child-process bodies for the multi-process shm tests (spawned, so they
live in an importable module). Each attaches by name, as a node's
processes do."""

from __future__ import annotations

import os
import random
import signal
import struct
import time
import zlib

from shm import Ring, Table, _native

_VALUE = struct.Struct("<32sQI")


def make_value(key: bytes, serial: int) -> bytes:
    """A value that names its key and carries a checksum of itself."""
    body = _VALUE.pack(key, serial, 0)[:-4]
    padding = bytes(random.randrange(256) for _ in range(serial % 97))
    return body + padding + struct.pack("<I", zlib.crc32(body + padding))


def check_value(key: bytes, value: bytes) -> str | None:
    body, crc = value[:-4], struct.unpack("<I", value[-4:])[0]
    if zlib.crc32(body) != crc:
        return f"checksum mismatch for {key!r}"
    if body[:32].rstrip(b"\0") != key:
        return f"value of {body[:32]!r} returned for {key!r}"
    return None


def table_writer(name: str, capacity: int, keys: int, seconds: float) -> None:
    table = Table.create_or_attach(name, capacity)
    deadline = time.monotonic() + seconds
    serial = 0
    while time.monotonic() < deadline:
        key = b"key-%d" % random.randrange(keys)
        if not table.put(key, make_value(key, serial)):
            raise SystemExit("put failed")
        serial += 1
    table.close()


def table_reader(
    name: str, capacity: int, keys: int, seconds: float, out: object
) -> None:
    table = Table.create_or_attach(name, capacity)
    deadline = time.monotonic() + seconds
    hits = errors = 0
    first_error = ""
    while time.monotonic() < deadline:
        key = b"key-%d" % random.randrange(keys)
        value = table.get(key)
        if value is None:
            continue
        hits += 1
        problem = check_value(key, value)
        if problem:
            errors += 1
            first_error = first_error or problem
    out.put((hits, errors, first_error))  # type: ignore[attr-defined]
    table.close()


def ring_producer(name: str, producer_id: int, count: int) -> None:
    ring = Ring.create_or_attach(name, 4096, 16)
    for serial in range(count):
        record = struct.pack("<IQ", producer_id, serial)
        while ring.push(record) < 0:
            time.sleep(0.0002)
    ring.close()


def ring_producer_stopping_at(name: str, producer_id: int, hook: int) -> None:
    """Publish 1,000 records, then stop at `hook` inside the next push."""
    ring = Ring.create_or_attach(name, 4096, 16)
    for serial in range(1000):
        while ring.push(struct.pack("<IQ", producer_id, serial)) < 0:
            time.sleep(0.0002)
    _native.set_test_hook(hook)
    ring.push(struct.pack("<IQ", producer_id, 1000))
    raise SystemExit("the hook did not stop this process")


def table_writer_stopping_mid_write(name: str, capacity: int) -> None:
    table = Table.create_or_attach(name, capacity)
    table.put(b"victim", b"old value")
    _native.set_test_hook(_native.HOOK_PUT_MID_WRITE)
    table.put(b"victim", b"new value that is never finished")
    raise SystemExit("the hook did not stop this process")


def ring_consumer_stopping_mid_batch(name: str, out: object) -> None:
    """Take one batch, report it, then stop before advancing past it."""
    ring = Ring.create_or_attach(name, 4096, 16)
    records: list[bytes] = []
    while not records:
        records, _end = ring.peek(500)
    out.put(records)  # type: ignore[attr-defined]
    # Queue.put hands off to a feeder thread; flush it before stopping.
    out.close()  # type: ignore[attr-defined]
    out.join_thread()  # type: ignore[attr-defined]
    os.kill(os.getpid(), signal.SIGSTOP)
