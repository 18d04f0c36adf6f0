"""The analytics actor against an in-process ring stand-in and a real LMDB."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest
from actor_io import (
    MAP_SIZE_BYTES,
    ActorDied,
    push_clicks,
    stored_checkpoint,
    total_clicks,
)
from list_ring import ListRing

from hyperlinkr.clicks import encode_click
from hyperlinkr.storage import META_DB, open_environment
from workers.aggregates import LinkDelta
from workers.analytics import (
    CHECKPOINT_KEY,
    AnalyticsActor,
    Checkpoint,
    CheckpointError,
    FlushPace,
    Holding,
    RingContractError,
)
from workers.processes import (
    MAX_BATCH_RECORDS,
    RESTART_ROOM_S,
    batch_records_for,
    holding_for,
)

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
MAY_1_MS = 1_714_521_600_000
NEVER_MS = 3_600_000


class DiesBeforeAdvance:
    """Wraps a ring so that the consumer dies right after its LMDB commit."""

    def __init__(self, ring: ListRing) -> None:
        self._ring = ring
        self.generation = ring.generation

    @property
    def head(self) -> int:
        return self._ring.head

    def peek(self, max_records: int, start: int) -> tuple[list[bytes], int]:
        return self._ring.peek(max_records, start)

    def advance(self, end_position: int) -> None:
        raise ActorDied(f"killed before advancing to {end_position}")


def test_clicks_are_counted_and_released(env: lmdb.Environment) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 10)
    actor = AnalyticsActor(ring, env, flush_interval_ms=0)

    assert actor.run_once() == 10

    assert total_clicks(env, "a") == 10
    assert ring.head == 10
    assert stored_checkpoint(env) == Checkpoint(ring.generation, 10)


def test_records_pending_between_flushes_are_taken_once(
    env: lmdb.Environment,
) -> None:
    ring = ListRing()
    actor = AnalyticsActor(ring, env, flush_interval_ms=NEVER_MS)
    push_clicks(ring, "a", 3)
    assert actor.run_once() == 3
    push_clicks(ring, "a", 2)
    assert actor.run_once() == 2
    assert actor.run_once() == 0

    actor.flush()

    assert total_clicks(env, "a") == 5
    assert ring.advance_calls == [5]


def test_a_full_batch_flushes_before_the_interval(env: lmdb.Environment) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 10)
    actor = AnalyticsActor(ring, env, flush_interval_ms=NEVER_MS, batch_records=4)

    assert actor.run_once() == 4

    assert total_clicks(env, "a") == 4
    assert ring.head == 4
    assert actor.statistics().flushes == 1


def test_crash_after_commit_before_advance_does_not_count_twice(
    lmdb_path: Path,
) -> None:
    """The checkpoint committed with the counts lets the next life skip them."""
    ring = ListRing()
    push_clicks(ring, "a", 7)
    env = open_environment(lmdb_path, MAP_SIZE_BYTES)
    doomed = AnalyticsActor(DiesBeforeAdvance(ring), env, flush_interval_ms=0)
    with pytest.raises(ActorDied):
        doomed.run_once()
    env.close()
    assert ring.head == 0  # the records are still in the ring

    env = open_environment(lmdb_path, MAP_SIZE_BYTES)
    actor = AnalyticsActor(ring, env, flush_interval_ms=0)
    actor.recover()
    assert ring.head == 7
    push_clicks(ring, "a", 2)
    assert actor.run_once() == 2

    assert total_clicks(env, "a") == 9
    env.close()


def test_failed_advance_is_recovered_by_the_same_actor(
    env: lmdb.Environment,
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 4)
    flaky = DiesBeforeAdvance(ring)
    actor = AnalyticsActor(flaky, env, flush_interval_ms=0)
    with pytest.raises(ActorDied):
        actor.run_once()

    flaky.advance = ring.advance  # type: ignore[method-assign]
    push_clicks(ring, "a", 1)
    assert actor.run_once() == 1

    assert total_clicks(env, "a") == 5
    assert ring.head == 5


def test_crash_before_commit_counts_the_records_after_restart(
    lmdb_path: Path,
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 5)
    env = open_environment(lmdb_path, MAP_SIZE_BYTES)
    doomed = AnalyticsActor(ring, env, flush_interval_ms=NEVER_MS)
    assert doomed.run_once() == 5  # aggregated, never flushed
    env.close()

    env = open_environment(lmdb_path, MAP_SIZE_BYTES)
    actor = AnalyticsActor(ring, env, flush_interval_ms=0)
    assert actor.run_once() == 5

    assert total_clicks(env, "a") == 5
    env.close()


def test_new_ring_generation_counts_from_its_head(
    env: lmdb.Environment, caplog: pytest.LogCaptureFixture
) -> None:
    old_ring = ListRing(generation=1)
    push_clicks(old_ring, "a", 6)
    AnalyticsActor(old_ring, env, flush_interval_ms=0).run_once()

    new_ring = ListRing(generation=2)
    push_clicks(new_ring, "a", 4)
    actor = AnalyticsActor(new_ring, env, flush_interval_ms=0)
    actor.recover()
    assert new_ring.advance_calls == []
    assert actor.run_once() == 4

    assert total_clicks(env, "a") == 10
    assert stored_checkpoint(env) == Checkpoint(2, 4)
    assert "click ring was recreated" in caplog.text


def test_bad_records_are_skipped_counted_and_logged_once_per_flush(
    env: lmdb.Environment, caplog: pytest.LogCaptureFixture
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 2)
    ring.push(b"garbage")
    ring.push(b"")
    push_clicks(ring, "a", 1)
    actor = AnalyticsActor(ring, env, flush_interval_ms=0)

    assert actor.run_once() == 5

    assert total_clicks(env, "a") == 3
    assert ring.head == 5
    assert actor.statistics().bad_records == 2
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "skipped 2 click records" in warnings[0].getMessage()


def test_click_time_no_date_can_name_is_a_bad_record_not_a_crash(
    env: lmdb.Environment,
) -> None:
    ring = ListRing()
    ring.push(encode_click("a", 2**63, None, FIREFOX, ring.record_bytes))
    push_clicks(ring, "a", 2)
    actor = AnalyticsActor(ring, env, flush_interval_ms=0)

    assert actor.run_once() == 3

    assert total_clicks(env, "a") == 2
    assert ring.head == 3
    assert actor.statistics().bad_records == 1


def test_run_flushes_on_the_interval_and_stops_on_a_callable(
    env: lmdb.Environment,
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 10)
    actor = AnalyticsActor(ring, env, flush_interval_ms=20)

    actor.run(lambda: ring.head == ring.tail)

    assert total_clicks(env, "a") == 10
    assert actor.statistics().flushes == 1


def test_run_flushes_once_more_when_the_event_is_set(
    env: lmdb.Environment,
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 3)
    actor = AnalyticsActor(ring, env, flush_interval_ms=NEVER_MS)
    stop = threading.Event()
    thread = threading.Thread(target=actor.run, args=(stop,))
    thread.start()
    try:
        while actor.statistics().records_seen < 3 and thread.is_alive():
            stop.wait(0.005)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive(), "analytics actor deadlocked on stop"

    assert total_clicks(env, "a") == 3
    assert ring.head == 3


def test_statistics_snapshot(env: lmdb.Environment) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 4)
    actor = AnalyticsActor(ring, env, flush_interval_ms=NEVER_MS)
    actor.run_once()
    pending = actor.statistics()
    actor.flush()
    flushed = actor.statistics()

    assert (pending.records_seen, pending.pending_records) == (4, 4)
    assert (pending.flushes, pending.last_flush_ms) == (0, None)
    assert (flushed.flushes, flushed.pending_records) == (1, 0)
    assert flushed.last_flush_ms is not None
    assert flushed.last_flush_duration_ms >= 0


def test_flush_with_nothing_pending_writes_nothing(env: lmdb.Environment) -> None:
    ring = ListRing()
    actor = AnalyticsActor(ring, env)
    actor.recover()

    actor.flush()

    assert actor.statistics().flushes == 0
    assert ring.advance_calls == []


def test_unreadable_checkpoint_counts_from_the_ring_head(
    env: lmdb.Environment, caplog: pytest.LogCaptureFixture
) -> None:
    with env.begin(write=True, db=env.open_db(META_DB)) as txn:
        txn.put(CHECKPOINT_KEY, b"short")
    ring = ListRing()
    push_clicks(ring, "a", 1)
    actor = AnalyticsActor(ring, env, flush_interval_ms=0)

    assert actor.run_once() == 1
    assert "ring checkpoint is 5 bytes" in caplog.text
    with pytest.raises(CheckpointError):
        Checkpoint.unpack(b"short")


def test_ring_that_loses_published_records_is_a_contract_error(
    env: lmdb.Environment,
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 3)
    actor = AnalyticsActor(ring, env, flush_interval_ms=NEVER_MS)
    actor.run_once()
    ring._records.clear()

    with pytest.raises(RingContractError):
        actor.run_once()


def test_the_actor_holds_back_at_most_a_quarter_of_the_ring() -> None:
    # Under load a flush is due by time, not count, while most of the ring
    # stays free for what arrives during a flush or a restart.
    assert batch_records_for(65_536) == MAX_BATCH_RECORDS == 16_384
    assert batch_records_for(4096) == 1024
    assert batch_records_for(16) == 4
    assert batch_records_for(2) == 1


def test_below_the_rate_that_fills_the_ring_it_holds_up_to_half() -> None:
    holding = holding_for(65_536)
    assert holding == Holding(65_536, 16_384, 32_768, RESTART_ROOM_S)
    assert holding_for(16) == Holding(16, 4, 8, RESTART_ROOM_S)
    assert holding_for(2) == Holding(2, 1, 1, RESTART_ROOM_S)


@pytest.mark.parametrize(
    ("taken", "age_s", "due"),
    [
        (99, 0.001, False),  # under at_least, however fast they came
        (100, 10.0, False),  # 10/s: room for a second of them and more
        (200, 1.0, False),  # 200 + 200 of room needed <= 1000
        (400, 1.0, False),  # 400 + 400
        (500, 1.0, True),  # 500 + 500 reach the capacity
        (300, 0.5, False),  # 300 + 600
        (400, 0.5, True),  # 400 + 800
        (100, 0.0, True),  # all at once: no rate to trust
        (600, 100.0, True),  # at_most, however slowly they came
    ],
)
def test_holding_keeps_room_for_a_second_of_arrivals(
    taken: int, age_s: float, due: bool
) -> None:
    holding = Holding(capacity=1000, at_least=100, at_most=600, room_s=1.0)
    assert holding.due(taken, age_s) is due


class _Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def _holding_actor(
    ring: ListRing,
    env: lmdb.Environment,
    holding: Holding,
    clock: _Clock,
    flush_interval_ms: int = NEVER_MS,
) -> AnalyticsActor:
    """An actor with a batch of 4 that holds on as `holding` says."""
    return AnalyticsActor(
        ring,
        env,
        flush_interval_ms=flush_interval_ms,
        batch_records=4,
        holding=holding,
        clock=clock,
    )


@pytest.mark.parametrize(("per_step_s", "flushed_at"), [(0.001, 4), (0.1, 12)])
def test_the_actor_holds_past_its_batch_only_while_the_rate_leaves_room(
    env: lmdb.Environment, per_step_s: float, flushed_at: int
) -> None:
    # Two clicks a step. At 2,000/s the ring (capacity 64) has no room for
    # a second of them, and the batch (4) is flushed when it is reached; at
    # 20/s the actor holds on, up to at_most (12).
    ring = ListRing(capacity_records=64)
    clock = _Clock()
    holding = Holding(capacity=64, at_least=4, at_most=12, room_s=1.0)
    actor = _holding_actor(ring, env, holding, clock)
    taken = 0
    while actor.statistics().flushes == 0:
        push_clicks(ring, "a", 2)
        taken += actor.run_once()
        clock.now_s += per_step_s
        assert taken <= 12

    assert taken == flushed_at
    assert total_clicks(env, "a") == flushed_at
    assert ring.head == flushed_at


def test_a_held_batch_still_flushes_on_the_interval(env: lmdb.Environment) -> None:
    ring = ListRing()
    clock = _Clock()
    holding = Holding(capacity=1024, at_least=4, at_most=512, room_s=1.0)
    actor = _holding_actor(ring, env, holding, clock, flush_interval_ms=1000)
    for _ in range(4):  # 8/s: room enough, and 0.75 s is not the interval
        push_clicks(ring, "a", 2)
        actor.run_once()
        clock.now_s += 0.25
    assert actor.statistics().flushes == 0

    push_clicks(ring, "a", 2)
    actor.run_once()
    assert actor.statistics().flushes == 1
    assert total_clicks(env, "a") == 10


def test_a_backlog_found_at_once_is_flushed_at_once(env: lmdb.Environment) -> None:
    # After a restart the actor finds the ring full of what waited for it:
    # no rate to trust, so at_least is enough.
    ring = ListRing()
    push_clicks(ring, "a", 8)
    holding = Holding(capacity=1024, at_least=4, at_most=512, room_s=1.0)
    actor = _holding_actor(ring, env, holding, _Clock())

    assert actor.run_once() == 4
    assert actor.statistics().flushes == 1


def _pairs(count: int) -> Iterator[tuple[str, LinkDelta]]:
    return ((f"c{i}", LinkDelta(total=1)) for i in range(count))


@pytest.mark.parametrize(("depth", "rests"), [(10, 5), (50, 0), (99, 0)])
def test_a_paced_flush_rests_only_while_the_ring_has_room(
    depth: int, rests: int
) -> None:
    slept: list[float] = []
    pace = FlushPace(lambda: depth, room=50, work_s=0.0, sleep=slept.append)

    passed = [code for code, _ in pace.paced(_pairs(5))]

    assert passed == [f"c{i}" for i in range(5)]
    assert slept == [pace.rest_s] * rests


def test_a_paced_flush_counts_the_same(env: lmdb.Environment) -> None:
    ring = ListRing()
    for code in ("a", "b", "c"):
        push_clicks(ring, code, 7)
    slept: list[float] = []
    pace = FlushPace(lambda: 0, room=1, work_s=0.0, sleep=slept.append)
    actor = AnalyticsActor(ring, env, flush_interval_ms=0, pace=pace)

    assert actor.run_once() == 21

    assert [total_clicks(env, code) for code in ("a", "b", "c")] == [7, 7, 7]
    assert len(slept) == 3  # once before each link
    assert stored_checkpoint(env) == Checkpoint(ring.generation, 21)
