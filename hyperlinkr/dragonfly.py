"""The Dragonfly tier: keys, clients, and what to do when it is away.

Dragonfly (Redis and Valkey speak the same protocol and stand in for it in
tests) is optional. When `HYPERLINKR_REDIS_URL` is set, every node of a
deployment shares it: links are claimed and read there, mutations travel
between nodes on a stream, and click statistics from every node meet
there. Only plain commands are used (SET NX, GET, DEL, XADD, XREADGROUP,
XACK, HSET, HGETALL, PFADD, PFCOUNT, EXPIRE): no modules, no scripts.

Keys. Everything about one link carries the link's code as a hash tag, so
in Redis Cluster a link's keys share one slot:

    hl:{<code>}:link          the link's record (hyperlinkr.links format)
    hl:{<code>}:stats         hash: node name -> that node's stored stats
    hl:{<code>}:uv:<day>      HyperLogLog of visitor hashes for a UTC day
    hl:mutations              the stream of every mutation, all nodes
    hl:epoch                  set once the tier holds every link; missing
                              means it lost its data and must be re-seeded
    hl:salt                   the deployment's visitor-hash salt

Why per-node stats instead of counters incremented by every node: a node's
LMDB already holds its own aggregates, counted exactly once. Mirroring
them (HSET of the whole per-node value) is idempotent, heals itself at
the next flush after an outage, and can be rebuilt from the nodes' LMDB
after the tier restarts empty; increments could do none of these.

Outages. A `Breaker` turns the first failure into "away for 1 s": callers
then skip the tier at once instead of waiting for a timeout on every
request, so redirects keep flowing from L1 and LMDB and shorten answers
503 quickly. Every call has a 0.5 s socket timeout.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = [
    "EPOCH_KEY",
    "SALT_KEY",
    "STREAM_KEY",
    "Breaker",
    "TierUnavailable",
    "async_client",
    "link_key",
    "stats_key",
    "sync_client",
    "tier_errors",
    "visitors_key",
]

STREAM_KEY = "hl:mutations"
EPOCH_KEY = "hl:epoch"
SALT_KEY = "hl:salt"
STREAM_MAX_ENTRIES = 1_000_000
SOCKET_TIMEOUT_S = 0.5
AWAY_FOR_S = 1.0


def tier_errors() -> tuple[type[Exception], ...]:
    """What a failing tier can raise.

    The cluster client's own errors do not derive from RedisError. Like the
    clients, this imports redis-py (about 6 MB of every process that does):
    call it only where a tier is configured, so an embedded node never
    loads the Redis client at all.
    """
    import redis
    import redis.exceptions

    return (redis.RedisError, redis.exceptions.RedisClusterException)


class TierUnavailable(ConnectionError):
    """Dragonfly did not answer; the caller falls back or answers 503."""


def link_key(code: str) -> str:
    return f"hl:{{{code}}}:link"


def stats_key(code: str) -> str:
    return f"hl:{{{code}}}:stats"


def visitors_key(code: str, day: str) -> str:
    return f"hl:{{{code}}}:uv:{day}"


def _options() -> dict[str, Any]:
    return {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": SOCKET_TIMEOUT_S,
        "health_check_interval": 5,
    }


def sync_client(url: str, cluster: bool) -> Any:
    """A blocking client (actors); Redis Cluster when `cluster`."""
    import redis
    import redis.cluster

    if cluster:
        return redis.cluster.RedisCluster.from_url(url, **_options())
    return redis.Redis.from_url(url, **_options())


def async_client(url: str, cluster: bool) -> Any:
    """An asyncio client (web workers); Redis Cluster when `cluster`."""
    import redis.asyncio
    import redis.asyncio.cluster

    if cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(url, **_options())
    return redis.asyncio.Redis.from_url(url, **_options())


class Breaker:
    """Remembers a failure for AWAY_FOR_S so callers can skip the tier."""

    def __init__(self) -> None:
        self._away_until_s = 0.0
        self.failures = 0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._away_until_s

    def failed(self) -> None:
        self.failures += 1
        self._away_until_s = time.monotonic() + AWAY_FOR_S

    def check(self) -> None:
        if not self.available:
            raise TierUnavailable(
                "Dragonfly did not answer a moment ago; retrying in under 1 s"
            )
