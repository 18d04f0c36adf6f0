from __future__ import annotations

from collections.abc import Callable

import pytest

from shm import Ring

Names = Callable[[], str]


def test_records_come_out_in_push_order(segment_name: Names) -> None:
    ring = Ring.create_or_attach(segment_name(), 16, 32)
    positions = [ring.push(b"r%d" % i) for i in range(10)]
    assert positions == list(range(10))
    records, end = ring.peek(100)
    assert records == [b"r%d" % i for i in range(10)]
    assert end == 10
    ring.close()


def test_full_ring_refuses_and_counts_the_drop(segment_name: Names) -> None:
    ring = Ring.create_or_attach(segment_name(), 4, 8)
    assert [ring.push(b"x") for _ in range(6)] == [0, 1, 2, 3, -1, -1]
    assert ring.statistics().drops == 2
    assert ring.statistics().depth == 4
    ring.close()


def test_peek_consumes_nothing_until_advance(segment_name: Names) -> None:
    ring = Ring.create_or_attach(segment_name(), 8, 8)
    for i in range(3):
        ring.push(b"%d" % i)
    first, end = ring.peek(2)
    again, _ = ring.peek(2)
    assert first == again == [b"0", b"1"]
    ring.advance(end)
    rest, end = ring.peek(10)
    assert rest == [b"2"]
    assert ring.head == 2
    ring.close()


def test_advance_frees_cells_for_the_next_lap(segment_name: Names) -> None:
    ring = Ring.create_or_attach(segment_name(), 4, 8)
    seen = []
    for lap in range(5):
        for i in range(4):
            assert ring.push(b"%d-%d" % (lap, i)) >= 0
        records, end = ring.peek(4)
        seen.extend(records)
        ring.advance(end)
    assert len(seen) == 20 and seen[-1] == b"4-3"
    ring.close()


def test_another_process_view_shares_positions(segment_name: Names) -> None:
    name = segment_name()
    producer = Ring.create_or_attach(name, 8, 16)
    consumer = Ring.create_or_attach(name, 8, 16)
    assert producer.generation == consumer.generation
    producer.push(b"hello")
    assert consumer.peek(1) == ([b"hello"], 1)
    producer.close()
    consumer.close()


def test_oversized_record_is_refused(segment_name: Names) -> None:
    ring = Ring.create_or_attach(segment_name(), 4, 8)
    with pytest.raises(ValueError, match="at most 8"):
        ring.push(b"123456789")
    ring.close()


def test_advance_beyond_tail_is_refused(segment_name: Names) -> None:
    ring = Ring.create_or_attach(segment_name(), 4, 8)
    ring.push(b"x")
    with pytest.raises(ValueError, match="between head"):
        ring.advance(5)
    ring.close()


@pytest.mark.parametrize(("capacity", "record"), [(3, 8), (0, 8), (8, 0)])
def test_bad_sizes_are_refused(segment_name: Names, capacity: int, record: int) -> None:
    with pytest.raises(ValueError):
        Ring.create_or_attach(segment_name(), capacity, record)


def test_peek_from_a_start_returns_only_the_records_after_it(
    segment_name: Names,
) -> None:
    """A consumer holding records back peeks on from where its last peek ended."""
    ring = Ring.create_or_attach(segment_name(), 8, 8)
    for i in range(5):
        ring.push(b"%d" % i)
    first, end = ring.peek(2)
    more, end = ring.peek(2, end)
    rest, end = ring.peek(10, end)
    assert (first, more, rest, end) == ([b"0", b"1"], [b"2", b"3"], [b"4"], 5)
    assert ring.peek(10, end) == ([], 5)
    assert ring.peek(10) == ([b"%d" % i for i in range(5)], 5)
    assert ring.head == 0
    ring.close()


def test_peek_from_a_start_follows_the_ring_over_laps(segment_name: Names) -> None:
    ring = Ring.create_or_attach(segment_name(), 4, 8)
    seen: list[bytes] = []
    cursor = 0
    for lap in range(6):
        for i in range(2):
            assert ring.push(b"%d-%d" % (lap, i)) >= 0
            records, cursor = ring.peek(4, cursor)
            seen.extend(records)
        if lap % 2:
            assert ring.advance(cursor) == cursor
    assert seen == [b"%d-%d" % (lap, i) for lap in range(6) for i in range(2)]
    assert ring.statistics().depth == 0
    ring.close()


def test_peek_from_outside_head_and_tail_is_refused(segment_name: Names) -> None:
    ring = Ring.create_or_attach(segment_name(), 8, 8)
    for i in range(4):
        ring.push(b"%d" % i)
    ring.advance(2)
    with pytest.raises(ValueError, match="between head 2 and tail 4"):
        ring.peek(1, 1)
    with pytest.raises(ValueError, match="between head 2 and tail 4"):
        ring.peek(1, 5)
    with pytest.raises(TypeError, match="optional start"):
        ring.peek(1, 2, 3)  # type: ignore[call-arg]
    assert ring.peek(1, 2) == ([b"2"], 3)
    ring.close()
