"""What the analytics tests put into a click ring and read back from LMDB."""

from __future__ import annotations

from typing import Protocol

import lmdb
from click_producers import FIREFOX, MAY_1_MS

from hyperlinkr.clicks import encode_click
from hyperlinkr.stats import StatsReader
from hyperlinkr.storage import META_DB
from workers.analytics import CHECKPOINT_KEY, Checkpoint

MAP_SIZE_BYTES = 64 * 1024 * 1024


class ActorDied(Exception):
    """Stands for the actor process being killed."""


class PushableRing(Protocol):
    record_bytes: int

    def push(self, record: bytes, /) -> int: ...


def push_clicks(ring: PushableRing, code: str, count: int) -> None:
    """`count` clicks on `code`, a millisecond apart, from one browser."""
    for i in range(count):
        record = encode_click(code, MAY_1_MS + i, None, FIREFOX, ring.record_bytes)
        assert ring.push(record) >= 0


def total_clicks(env: lmdb.Environment, code: str) -> int:
    total: int = StatsReader(env).get(code)["clicks"]["total"]
    return total


def stored_checkpoint(env: lmdb.Environment) -> Checkpoint:
    with env.begin(db=env.open_db(META_DB)) as txn:
        raw = txn.get(CHECKPOINT_KEY)
    assert raw is not None
    return Checkpoint.unpack(raw)
