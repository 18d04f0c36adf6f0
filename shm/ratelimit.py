"""A rate limiter every process of a node shares: GCRA in shared memory.

The algorithm and the byte layout are in shm/_limiter.c. Each client key
(an IP address, an API key id) has a budget of `burst` requests refilled
at `rate_per_s`; all web workers update the same word per key with one
CAS, so the limit holds for the node as a whole, however requests spread
over workers.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from shm import _limiter
from shm.layout import HEADER_BYTES, Kind, Segment, SegmentSpec

__all__ = ["Decision", "RateLimiter", "RateLimiterStatistics"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request, with what RateLimit headers need."""

    allowed: bool
    remaining: int
    retry_after_s: float
    reset_s: float


@dataclass(frozen=True, slots=True)
class RateLimiterStatistics:
    buckets: int
    allowed: int
    limited: int
    evicted: int


class RateLimiter:
    """Per-key budgets in a shared segment; attach by name from any process."""

    def __init__(self, segment: Segment) -> None:
        self._segment = segment
        self._core = _limiter.LimiterCore(segment.buffer, HEADER_BYTES)
        self.buckets = segment.spec.param_a

    @classmethod
    def create_or_attach(cls, name: str, buckets: int = 16384) -> RateLimiter:
        if buckets < 1 or buckets & (buckets - 1):
            raise ValueError(f"buckets={buckets}: expected a power of two >= 1")
        region = _limiter.region_bytes(buckets)
        spec = SegmentSpec(Kind.LIMITER, buckets, 0, region)

        def init(buffer: object, offset: int, generation: int) -> None:
            epoch_us = time.time_ns() // 1000 - 1_000_000
            _limiter.init_region(
                buffer, offset, buckets, epoch_us, secrets.randbits(64)
            )

        return cls(Segment.create_or_attach(name, spec, init))

    def acquire(self, key: bytes, rate_per_s: float, burst: int) -> Decision:
        """Spend one request of `key`'s budget, if it has one left."""
        allowed, a, b = self._spend(key, rate_per_s, burst)
        if allowed:
            return Decision(True, a, 0.0, b / 1e6)
        return Decision(False, 0, a / 1e6, b / 1e6)

    def allows(self, key: bytes, rate_per_s: float, burst: int) -> bool:
        """acquire() for a caller that needs only the verdict (no Decision)."""
        return bool(self._spend(key, rate_per_s, burst)[0])

    def spender(self, rate_per_s: float, burst: int) -> Callable[[bytes], bool]:
        """allows() with the budget fixed, for a caller that asks per request.

        The redirect fast path does: three calls deep, allows() cost 0.97 us
        a request against 0.33 us for the C call it makes.
        """
        acquire, clock = self._core.acquire, time.time_ns
        interval_us, limit = _interval_us(rate_per_s), _limiter.MAX_KEY_BYTES

        def spend(key: bytes) -> bool:
            allowed: bool = acquire(key[:limit], clock() // 1000, interval_us, burst)[0]
            return allowed

        return spend

    def _spend(
        self, key: bytes, rate_per_s: float, burst: int
    ) -> tuple[bool, int, int]:
        return self._core.acquire(
            key[: _limiter.MAX_KEY_BYTES],
            time.time_ns() // 1000,
            _interval_us(rate_per_s),
            burst,
        )

    def statistics(self) -> RateLimiterStatistics:
        allowed, limited, evicted = self._core.counters()
        return RateLimiterStatistics(self.buckets, allowed, limited, evicted)

    def close(self) -> None:
        self._core.close()
        self._segment.close()

    def unlink(self) -> None:
        self._segment.unlink()


def _interval_us(rate_per_s: float) -> int:
    """The time between two requests at `rate_per_s`, in the core's units."""
    return max(10, int(1_000_000 / rate_per_s))
