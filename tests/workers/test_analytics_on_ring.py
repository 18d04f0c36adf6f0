"""The analytics actor on a real shared-memory click ring and a real LMDB.

The actor holds the records it took in the ring until its flush, peeking
on from where its last peek ended: these tests check that positions stay
right for the checkpoint and advance() over laps of the ring and over the
cell of a producer that died mid-push.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator

import lmdb
import pytest
from actor_io import push_clicks, stored_checkpoint, total_clicks
from click_producers import clicks_then_die_mid_push

import shm
from shm import Ring
from workers.analytics import AnalyticsActor, Checkpoint

RECORD_BYTES = 512
NEVER_MS = 3_600_000
DEADLINE_S = 20.0
spawn = multiprocessing.get_context("spawn")


@pytest.fixture
def ring_name() -> Iterator[str]:
    name = f"hlt-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    yield name
    shm.unlink(name)


def _run_until(actor: AnalyticsActor, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, "the actor stopped taking records"
        if actor.run_once() == 0:
            time.sleep(0.005)


def test_clicks_arriving_between_polls_are_counted_once_over_laps(
    ring_name: str, env: lmdb.Environment
) -> None:
    ring = Ring.create_or_attach(ring_name, 16, RECORD_BYTES)
    actor = AnalyticsActor(ring, env, flush_interval_ms=NEVER_MS, batch_records=8)
    pushed = 0
    for arrival in range(40):
        push_clicks(ring, "a", arrival % 7)
        pushed += arrival % 7
        actor.run_once()
    actor.flush()

    assert total_clicks(env, "a") == pushed == actor.statistics().records_seen
    assert ring.head == pushed > 4 * ring.capacity
    assert stored_checkpoint(env) == Checkpoint(ring.generation, pushed)
    ring.close()


def test_dead_producers_cell_is_skipped_and_covered_by_the_checkpoint(
    ring_name: str, env: lmdb.Environment
) -> None:
    ring = Ring.create_or_attach(ring_name, 4096, RECORD_BYTES, stall_timeout_ms=200)
    victim = spawn.Process(
        target=clicks_then_die_mid_push,
        args=(ring_name, 4096, RECORD_BYTES, "a", 300),
    )
    victim.start()
    try:
        _wait_until_stopped(victim.pid)
    finally:
        os.kill(victim.pid or 0, signal.SIGKILL)
        victim.join(DEADLINE_S)
    push_clicks(ring, "a", 200)
    actor = AnalyticsActor(ring, env, flush_interval_ms=NEVER_MS)

    _run_until(actor, lambda: actor.statistics().records_seen == 500)
    actor.flush()

    assert total_clicks(env, "a") == 500
    assert ring.head == 501  # 300 clicks, the dead producer's cell, 200 clicks
    assert stored_checkpoint(env) == Checkpoint(ring.generation, 501)
    assert ring.statistics().skipped == 1
    ring.close()


def _wait_until_stopped(pid: int | None) -> None:
    """Wait for the child to SIGSTOP itself at its hook."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.01)
    pytest.fail("the producer never reached its hook")
