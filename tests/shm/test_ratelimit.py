"""The shared GCRA rate limiter: budgets per key, shared across processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

import pytest

from shm.ratelimit import RateLimiter

Names = Callable[[], str]
spawn = multiprocessing.get_context("spawn")


def spend(name: str, key: bytes, count: int, out: object) -> None:
    limiter = RateLimiter.create_or_attach(name, 1024)
    allowed = sum(limiter.acquire(key, 0.01, 50).allowed for _ in range(count))
    out.put(allowed)  # type: ignore[attr-defined]
    limiter.close()


def test_a_burst_is_allowed_then_refused_with_a_wait(segment_name: Names) -> None:
    limiter = RateLimiter.create_or_attach(segment_name(), 1024)
    decisions = [limiter.acquire(b"10.0.0.1", 1.0, 5) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert decisions[5].retry_after_s == pytest.approx(1.0, abs=0.05)
    assert limiter.statistics().limited == 1
    limiter.close()


def test_keys_have_separate_budgets(segment_name: Names) -> None:
    limiter = RateLimiter.create_or_attach(segment_name(), 1024)
    assert limiter.acquire(b"a", 1.0, 1).allowed
    assert not limiter.acquire(b"a", 1.0, 1).allowed
    assert limiter.acquire(b"b", 1.0, 1).allowed
    limiter.close()


def test_a_spender_spends_from_the_same_budget_as_acquire(segment_name: Names) -> None:
    limiter = RateLimiter.create_or_attach(segment_name(), 1024)
    spend = limiter.spender(1.0, 3)
    long_key = b"k" * 1000  # cut to the key size, as acquire() cuts it
    assert [spend(long_key), spend(long_key)] == [True, True]
    assert limiter.acquire(long_key, 1.0, 3).allowed  # the third of three
    assert not spend(long_key)
    assert not limiter.acquire(long_key, 1.0, 3).allowed
    assert spend(b"another")
    limiter.close()


def test_processes_share_one_budget_per_key(segment_name: Names) -> None:
    """Three processes spend from one key of 50: exactly 50 get through."""
    name = segment_name()
    RateLimiter.create_or_attach(name, 1024).close()
    out = spawn.Queue()
    procs = [
        spawn.Process(target=spend, args=(name, b"shared", 200, out)) for _ in range(3)
    ]
    for proc in procs:
        proc.start()
    allowed = sum(out.get(timeout=30) for _ in procs)
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    # 0.01 requests/s refills nothing during the test: the burst is all.
    assert allowed == 50


def test_bad_arguments_are_value_errors(segment_name: Names) -> None:
    limiter = RateLimiter.create_or_attach(segment_name(), 1024)
    with pytest.raises(ValueError):
        limiter.acquire(b"", 1.0, 1)
    with pytest.raises(ValueError):
        limiter.acquire(b"k", 1.0, 0)
    limiter.close()
    with pytest.raises(ValueError):
        RateLimiter.create_or_attach(segment_name(), 1000)
