"""Stats kept in the links environment move to the stats environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from hyperlinkr.stats import StatsReader
from hyperlinkr.storage import (
    META_DB,
    STATS_DB,
    open_environment,
    open_stats_environment,
)
from workers.analytics import CHECKPOINT_KEY, Checkpoint
from workers.statsmove import MOVED_KEY, move_stats

MAP_SIZE_BYTES = 64 * 1024 * 1024
OLD_CHECKPOINT = Checkpoint(0xABC, 1234).pack()


def _values(env: lmdb.Environment, name: bytes = STATS_DB) -> dict[bytes, bytes]:
    with env.begin(db=env.open_db(name)) as txn:
        return {bytes(k): bytes(v) for k, v in txn.cursor()}


def _put(env: lmdb.Environment, values: dict[bytes, bytes], name: bytes) -> None:
    with env.begin(write=True, db=env.open_db(name)) as txn:
        for key, value in values.items():
            txn.put(key, value)


@pytest.fixture
def envs(tmp_path: Path) -> Iterator[tuple[lmdb.Environment, lmdb.Environment]]:
    links = open_environment(tmp_path, MAP_SIZE_BYTES)
    stats = open_stats_environment(tmp_path, MAP_SIZE_BYTES, writer=True)
    yield links, stats
    stats.close()
    links.close()


def _old_node(links: lmdb.Environment, count: int) -> dict[bytes, bytes]:
    old = {f"code{i:04}".encode(): b'{"version":1,"n":%d}' % i for i in range(count)}
    _put(links, old, STATS_DB)
    _put(links, {CHECKPOINT_KEY: OLD_CHECKPOINT}, META_DB)
    return old


def test_every_value_and_the_checkpoint_move_once(
    envs: tuple[lmdb.Environment, lmdb.Environment],
) -> None:
    links, stats = envs
    old = _old_node(links, 25)

    assert move_stats(links, stats, batch=4) == 25

    assert _values(stats) == old
    assert _values(stats, META_DB)[CHECKPOINT_KEY] == OLD_CHECKPOINT
    assert _values(links) == {}
    assert CHECKPOINT_KEY not in _values(links, META_DB)
    assert move_stats(links, stats) == 0
    assert _values(stats) == old


def test_a_new_node_has_nothing_to_move(
    envs: tuple[lmdb.Environment, lmdb.Environment],
) -> None:
    links, stats = envs

    assert move_stats(links, stats) == 0
    assert MOVED_KEY not in _values(stats, META_DB)


def test_a_move_cut_after_the_copy_only_empties_the_old_database(
    envs: tuple[lmdb.Environment, lmdb.Environment],
) -> None:
    # The state a crash between the copy's last commit and the old
    # database's emptying leaves; what the new environment holds then is
    # the truth, whatever the old one says.
    links, stats = envs
    _old_node(links, 3)
    moved = {b"code0000": b"moved"}
    _put(stats, moved, STATS_DB)
    _put(stats, {MOVED_KEY: b"1", CHECKPOINT_KEY: OLD_CHECKPOINT}, META_DB)

    assert move_stats(links, stats) == 3

    assert _values(stats) == moved
    assert _values(links) == {}


def test_a_move_cut_during_the_copy_copies_again(
    envs: tuple[lmdb.Environment, lmdb.Environment],
) -> None:
    links, stats = envs
    old = _old_node(links, 5)
    _put(stats, {b"code0001": old[b"code0001"]}, STATS_DB)  # one batch landed

    assert move_stats(links, stats) == 5

    assert _values(stats) == old


def test_the_reader_finds_a_link_on_either_side_of_a_move(
    envs: tuple[lmdb.Environment, lmdb.Environment],
) -> None:
    links, stats = envs
    old = b'{"version":2,"total":7,"human":7,"bot":0,"first_ts_ms":null,'
    old += b'"last_ts_ms":null,"per_day":{},"referrers":{},"browsers":{},'
    old += b'"operating_systems":{},"devices":{},"recent":[]}'
    _put(links, {b"a": old}, STATS_DB)
    reader = StatsReader(stats, moving_from=links)

    assert reader.stored("a")["total"] == 7
    move_stats(links, stats)
    assert reader.stored("a")["total"] == 7
    assert reader.stored("b")["total"] == 0
