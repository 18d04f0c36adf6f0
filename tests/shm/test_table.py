from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from shm import NEGATIVE, Table

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
    """A key read regularly is promoted and outlives a stream of new keys."""
    table = Table.create_or_attach(segment_name(), 1000)
    table.put(b"hot", b"stay")
    for i in range(50_000):
        table.put(b"cold-%d" % i, b"c" * 100)
        if i % 100 == 0:
            assert table.get(b"hot") == b"stay"
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
