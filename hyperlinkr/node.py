"""The shared resources of one node, opened the same way by every process.

A node is every process started with one `HYPERLINKR_NODE_NAME`: web
workers, the analytics actor and the persister. They meet in three
shared-memory segments, named from the node name, and in one LMDB
environment under the data directory:

    <node>-l1       the L1 table: code -> `links.encode_l1` entry
    <node>-clicks   click ring, web workers -> analytics actor
    <node>-writes   link-write ring, web workers -> persister
    <node>-limits   the rate limiter every web worker updates

Whichever process starts first creates a segment; the others attach, and a
segment of another size or layout is a `shm.LayoutMismatch` that names
both. Segments outlive the processes on purpose: a restarted process finds
the L1 cache warm and the records still waiting in the rings.
`unlink_segments()` removes them, for `hyperlinkr shm-unlink` and tests.

The write ring doubles as the persister's receipt: the persister advances
its head only after the mutations before it are committed to LMDB, so a
writer whose record sits at position p knows it is durable once the head
is past p (see `hyperlinkr.store`).
"""

from __future__ import annotations

from dataclasses import dataclass

import lmdb

import shm
from hyperlinkr.config import Settings
from hyperlinkr.linkstore import MAX_MUTATION_BYTES
from hyperlinkr.storage import open_environment, open_stats_environment
from shm.ratelimit import RateLimiter

__all__ = [
    "CLICK_RECORD_BYTES",
    "SEGMENT_SUFFIXES",
    "Node",
    "open_click_ring",
    "open_limiter",
    "open_table",
    "open_write_ring",
    "segment_names",
    "unlink_segments",
]

CLICK_RECORD_BYTES = 512
# A link's L1 entry: 12-byte header, then a URL of at most 2048 characters.
_MEAN_L1_RECORD_BYTES = 160


SEGMENT_SUFFIXES = ("l1", "clicks", "writes", "limits")
_LIMITER_BUCKETS = 16384


def segment_names(settings: Settings) -> tuple[str, ...]:
    """(table, click ring, write ring, limiter) segment names of this node."""
    return tuple(f"{settings.node_name}-{suffix}" for suffix in SEGMENT_SUFFIXES)


def open_table(settings: Settings) -> shm.Table:
    return shm.Table.create_or_attach(
        segment_names(settings)[0],
        settings.l1_capacity_entries,
        _MEAN_L1_RECORD_BYTES,
    )


def open_click_ring(settings: Settings) -> shm.Ring:
    return shm.Ring.create_or_attach(
        segment_names(settings)[1], settings.click_ring_records, CLICK_RECORD_BYTES
    )


def open_write_ring(settings: Settings) -> shm.Ring:
    return shm.Ring.create_or_attach(
        segment_names(settings)[2], settings.write_ring_records, MAX_MUTATION_BYTES
    )


def open_limiter(settings: Settings) -> RateLimiter:
    return RateLimiter.create_or_attach(segment_names(settings)[3], _LIMITER_BUCKETS)


def unlink_segments(settings: Settings) -> list[str]:
    """Remove this node's segments; returns the names that existed."""
    return [name for name in segment_names(settings) if shm.unlink(name)]


@dataclass(slots=True)
class Node:
    """Everything a web worker holds: the segments and both LMDB environments."""

    settings: Settings
    table: shm.Table
    clicks: shm.Ring
    writes: shm.Ring
    limiter: RateLimiter
    env: lmdb.Environment  # links
    stats_env: lmdb.Environment

    @classmethod
    def open(cls, settings: Settings) -> Node:
        opened: list[shm.Table | shm.Ring | RateLimiter] = []
        try:
            table = open_table(settings)
            opened.append(table)
            clicks = open_click_ring(settings)
            opened.append(clicks)
            writes = open_write_ring(settings)
            opened.append(writes)
            limiter = open_limiter(settings)
            opened.append(limiter)
            env = open_environment(settings.data_dir, settings.lmdb_map_size_bytes)
            try:
                stats_env = open_stats_environment(
                    settings.data_dir, settings.lmdb_map_size_bytes
                )
            except BaseException:
                env.close()
                raise
        except BaseException:
            for segment in opened:
                segment.close()
            raise
        return cls(settings, table, clicks, writes, limiter, env, stats_env)

    def close(self) -> None:
        self.stats_env.close()
        self.env.close()
        for segment in (self.table, self.clicks, self.writes, self.limiter):
            segment.close()
