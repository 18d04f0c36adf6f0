"""Shared-memory primitives: the L1 table and the actor rings.

Both live in POSIX shared memory, are created by the first process that
asks and attached by the others, and never take a lock.
"""

from __future__ import annotations

from shm.errors import LayoutMismatch, SegmentNotReady, ShmError
from shm.layout import unlink
from shm.ring import Ring, RingStatistics
from shm.table import NEGATIVE, Table, TableStatistics

__all__ = [
    "NEGATIVE",
    "LayoutMismatch",
    "Ring",
    "RingStatistics",
    "SegmentNotReady",
    "ShmError",
    "Table",
    "TableStatistics",
    "unlink",
]
