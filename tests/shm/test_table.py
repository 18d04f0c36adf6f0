from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable

import pytest

from shm import NEGATIVE, Table, _native

Names = Callable[[], str]


def test_put_then_get_returns_the_value(segment_name: Names) -> None:
    table = Table.create_or_attach(segment_name(), 100)
    assert table.put(b"abc1234", b"https://example.com/")
    assert table.get(b"abc1234") == b"https://example.com/"
    assert table.get(b"other") is None
    table.close()


def test_a_second_attach_sees_the_same_entries(segment_name: Names) -> None:
    name = segment_name()
    first = Table.create_or_attach(name, 100)
    second = Table.create_or_attach(name, 100)
    assert first.created and not second.created
    first.put(b"k", b"v1")
    assert second.get(b"k") == b"v1"
    second.put(b"k", b"v2")
    assert first.get(b"k") == b"v2"
    first.close()
    second.close()


def test_overwrite_keeps_one_entry(segment_name: Names) -> None:
    table = Table.create_or_attach(segment_name(), 100)
    for i in range(50):
        table.put(b"same", b"value-%d" % i)
    assert table.get(b"same") == b"value-49"
    assert table.statistics().entries == 1
    table.close()


def test_delete_removes_the_entry(segment_name: Names) -> None:
    table = Table.create_or_attach(segment_name(), 100)
    table.put(b"gone", b"x")
    assert table.delete(b"gone")
    assert table.get(b"gone") is None
    assert not table.delete(b"gone")
    table.close()


def test_negative_entry_is_distinct_from_miss(segment_name: Names) -> None:
    table = Table.create_or_attach(segment_name(), 100)
    table.put_negative(b"missing", ttl_s=60)
    assert table.get(b"missing") is NEGATIVE
    assert not NEGATIVE
    table.put(b"missing", b"now it exists")
    assert table.get(b"missing") == b"now it exists"
    table.close()


def test_entries_expire(segment_name: Names) -> None:
    table = Table.create_or_attach(segment_name(), 100)
    table.put(b"brief", b"v", ttl_s=0.05)
    table.put_negative(b"neg", ttl_s=0.05)
    assert table.get(b"brief") == b"v"
    time.sleep(0.1)
    assert table.get(b"brief") is None
    assert table.get(b"neg") is None
    table.close()


def test_full_table_evicts_instead_of_failing(segment_name: Names) -> None:
    table = Table.create_or_attach(segment_name(), 1000)
    for i in range(20_000):
        assert table.put(b"key-%d" % i, b"v" * 100)
    stats = table.statistics()
    assert stats.entries <= 1000 * 1.2
    assert table.get(b"key-19999") == b"v" * 100
    assert table.get(b"key-0") is None
    table.close()


def test_hot_entries_survive_a_wrapping_log(segment_name: Names) -> None:
    """A key read regularly is promoted and outlives a stream of new keys.

    Without promotion it would miss once per lap of the log, 45 times here.
    A full bucket can still evict it early (8 new keys in its bucket between
    two promotions: one run in 50), so a miss is refilled, as the store
    does, and counted.
    """
    table = Table.create_or_attach(segment_name(), 1000)
    table.put(b"hot", b"stay")
    misses = 0
    for i in range(50_000):
        table.put(b"cold-%d" % i, b"c" * 100)
        if i % 100 == 0 and table.get(b"hot") != b"stay":
            misses += 1
            table.put(b"hot", b"stay")
    assert misses <= 2
    assert table.statistics().promotions > 0
    table.close()


def test_values_of_every_size_round_trip(segment_name: Names) -> None:
    table = Table.create_or_attach(segment_name(), 1000)
    for size in (0, 1, 7, 8, 100, 1000, 2048):
        table.put(b"size-%d" % size, b"previous")
        table.put(b"size-%d" % size, b"x" * size)
        assert table.get(b"size-%d" % size) == b"x" * size
    table.close()


@pytest.mark.parametrize(
    ("key", "value"),
    [(b"", b"v"), (b"k" * 33, b"v"), (b"k", b"v" * 2049)],
)
def test_oversized_or_empty_input_is_refused(
    segment_name: Names, key: bytes, value: bytes
) -> None:
    table = Table.create_or_attach(segment_name(), 100)
    with pytest.raises(ValueError):
        table.put(key, value)
    table.close()


def test_closed_table_raises_instead_of_crashing(segment_name: Names) -> None:
    table = Table.create_or_attach(segment_name(), 100)
    table.close()
    with pytest.raises(ValueError, match="closed"):
        table.get(b"k")


def test_two_million_small_entries_fit_in_450_mib(segment_name: Names) -> None:
    table = Table.create_or_attach(segment_name(), 2_000_000)
    assert table.memory_bytes <= 450 * 2**20
    table.close()


def test_a_table_of_any_capacity_finds_every_key_it_holds(
    segment_name: Names,
) -> None:
    """1000 entries take 375 buckets, not a power of two; a full bucket
    evicts its oldest entry, 0.09% of them expected, and nothing else is
    lost."""
    table = Table.create_or_attach(segment_name(), 1000)
    keys = [b"key-%d" % i for i in range(1000)]
    for key in keys:
        assert table.put(key, key)
    stats = table.statistics()
    hits = sum(1 for key in keys if table.get(key) == key)
    assert stats.entries == hits == 1000 - stats.evictions
    assert stats.evictions <= 8
    table.close()


def test_keys_spread_over_every_bucket(segment_name: Names) -> None:
    """The bucket mapping reaches the top of a 375-bucket index, not only
    the buckets below a power of two."""
    name = segment_name()
    table = Table.create_or_attach(name, 1000)
    for i in range(1000):
        table.put(b"key-%d" % i, b"v")
    used = _ways_used_per_bucket(name)
    assert len(used) == 375
    assert 250 <= sum(used[250:]) <= 420  # a third of 1000, +- 5 sd
    for i in range(1000, 20_000):
        table.put(b"key-%d" % i, b"v")
    assert 0 not in _ways_used_per_bucket(name)  # about 53 puts per bucket
    table.close()


def _ways_used_per_bucket(name: str) -> list[int]:
    """Non-empty index ways of each bucket, read from the segment's bytes
    (the index ends where the arena starts; see shm/_native.c)."""
    with open(f"/dev/shm/{name}", "rb") as raw:
        segment = raw.read()
    buckets, arena_bytes = struct.unpack_from("<QQ", segment, 24)
    index_end = len(segment) - arena_bytes
    index = memoryview(segment)[index_end - buckets * 64 : index_end]
    ways = index.cast("Q")
    return [8 - ways[b * 8 : b * 8 + 8].tolist().count(0) for b in range(buckets)]


def test_a_capacity_past_the_largest_index_is_refused(
    segment_name: Names,
) -> None:
    name = segment_name()
    too_many = _native.MAX_BUCKET_COUNT * 8 // 3 + 8
    with pytest.raises(ValueError, match="expected at most"):
        Table.create_or_attach(name, too_many)
    assert not os.path.exists(f"/dev/shm/{name}")


@pytest.mark.parametrize("buckets", [0, 2**32 + 1])
def test_init_table_refuses_a_bucket_count_out_of_range(buckets: int) -> None:
    region = bytearray(_native.table_region_bytes(1, 4096))
    with pytest.raises(ValueError, match="bucket_count"):
        _native.init_table(region, 0, buckets, 4096, 1)


@pytest.mark.parametrize(
    ("word", "value"),
    [(1, 0), (1, 2**32 + 1), (1, 2**58), (1, 2**64 - 1), (2, 2**63), (2, 8)],
)
def test_a_corrupt_region_header_is_refused(word: int, value: int) -> None:
    """Each field is bounded before the sizes are added: 2^58 buckets or a
    2^63-byte arena wrap the sum to a region that seems to fit."""
    region = bytearray(_native.table_region_bytes(1, 4096))
    _native.init_table(region, 0, 1, 4096, 1)
    _native.TableCore(region, 0, NEGATIVE).close()
    struct.pack_into("<Q", region, 8 * word, value)
    with pytest.raises(ValueError, match="does not fit"):
        _native.TableCore(region, 0, NEGATIVE)
