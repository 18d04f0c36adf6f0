"""Child-process bodies for the analytics tests on a real ring (spawned, so
they live in an importable module). Each attaches to the ring by name, as
a web worker does."""

from __future__ import annotations

from hyperlinkr.clicks import encode_click
from shm import Ring, _native

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
MAY_1_MS = 1_714_521_600_000


def clicks_then_die_mid_push(
    name: str, capacity: int, record_bytes: int, code: str, count: int
) -> None:
    """Push `count` clicks on `code`, then stop inside the next push."""
    ring = Ring.create_or_attach(name, capacity, record_bytes)
    for i in range(count):
        record = encode_click(code, MAY_1_MS + i, None, FIREFOX, record_bytes)
        while ring.push(record) < 0:
            pass
    _native.set_test_hook(_native.HOOK_PUSH_RESERVED)
    ring.push(encode_click(code, MAY_1_MS, None, FIREFOX, record_bytes))
    raise SystemExit("the hook did not stop this process")
