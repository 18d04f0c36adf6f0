"""Shared-memory segments: naming, the segment header, create-or-attach.

Every segment starts with one 4 KiB page of header, written by its creator;
the region it describes (a table or a ring, laid out in shm/_native.c)
starts at offset 4096:

    offset size field
    0      8    magic            b"HLKRSHM1"
    8      4    layout_version   u32, LAYOUT_VERSION
    12     4    kind             u32, 1 = table, 2 = ring, 3 = limiter
    16     8    total_bytes      u64, the segment's size
    24     8    param_a          u64, table: bucket_count; ring: capacity;
                                 limiter: bucket_count
    32     8    param_b          u64, table: arena_bytes; ring: record_bytes;
                                 limiter: 0
    40     8    generation       u64, random, chosen by the creator
    48     8    creator_pid      u64
    56     8    initialised      u64, 0 until the region is ready, then 1

The creator makes the segment with O_CREAT|O_EXCL, so exactly one process
initialises it; it writes the region, then the header, then stores
`initialised = 1` with release ordering. An attacher waits (bounded) for
that flag, then compares every field with what it expected: a segment of
another layout or size is a LayoutMismatch naming both, never a crash.

Segments are POSIX shared memory opened with posix-ipc: unlike
multiprocessing.shared_memory, nothing unlinks them when an attaching
process exits. unlink() is explicit and belongs to a clean shutdown.
"""

from __future__ import annotations

import mmap
import os
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import posix_ipc

from shm import _native
from shm.errors import LayoutMismatch, SegmentNotReady

__all__ = ["HEADER_BYTES", "Kind", "Segment", "SegmentSpec", "unlink"]

MAGIC = b"HLKRSHM1"
LAYOUT_VERSION = 3
HEADER_BYTES = 4096
_HEADER = struct.Struct("<8sIIQQQQQ")
_INITIALISED_OFFSET = 56
_ATTACH_TIMEOUT_S = 5.0

# Writes a fresh region into zero-filled memory: (buffer, offset, generation).
RegionInit = Callable[[mmap.mmap, int, int], None]


class Kind(IntEnum):
    TABLE = 1
    RING = 2
    LIMITER = 3


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """What a segment must look like: its kind, its two size parameters."""

    kind: Kind
    param_a: int
    param_b: int
    region_bytes: int

    @property
    def total_bytes(self) -> int:
        return HEADER_BYTES + self.region_bytes

    def describe(self) -> str:
        return (
            f"{self.kind.name.lower()} v{LAYOUT_VERSION} "
            f"({self.param_a}, {self.param_b}), {self.total_bytes} bytes"
        )


def _posix_name(name: str) -> str:
    if not name or "/" in name or len(name) > 200:
        raise ValueError(
            f"segment name {name!r}: expected 1 to 200 characters, no '/'"
        )
    return "/" + name


class Segment:
    """One mapped segment; `created` says whether this process made it."""

    def __init__(
        self, name: str, spec: SegmentSpec, buffer: mmap.mmap, created: bool
    ) -> None:
        self.name = name
        self.spec = spec
        self.buffer = buffer
        self.created = created
        self.generation = _HEADER.unpack_from(buffer, 0)[6]

    @classmethod
    def create_or_attach(
        cls, name: str, spec: SegmentSpec, init_region: RegionInit
    ) -> Segment:
        """Create the segment and initialise its region, or attach to it."""
        posix = _posix_name(name)
        try:
            memory = posix_ipc.SharedMemory(
                posix, posix_ipc.O_CREX, size=spec.total_bytes
            )
        except posix_ipc.ExistentialError:
            return cls._attach(name, posix, spec)
        buffer = _map(memory)
        generation = secrets.randbits(63) | 1
        init_region(buffer, HEADER_BYTES, generation)
        _HEADER.pack_into(
            buffer, 0, MAGIC, LAYOUT_VERSION, spec.kind, spec.total_bytes,
            spec.param_a, spec.param_b, generation, os.getpid(),
        )
        _native.store(buffer, _INITIALISED_OFFSET, 1)
        return cls(name, spec, buffer, created=True)

    @classmethod
    def _attach(cls, name: str, posix: str, spec: SegmentSpec) -> Segment:
        memory = posix_ipc.SharedMemory(posix)
        deadline = time.monotonic() + _ATTACH_TIMEOUT_S
        while memory.size < HEADER_BYTES and time.monotonic() < deadline:
            time.sleep(0.005)
            memory = _reopen(memory, posix)
        buffer = _map(memory)
        while _native.load(buffer, _INITIALISED_OFFSET) != 1:
            if time.monotonic() >= deadline:
                buffer.close()
                raise SegmentNotReady(
                    f"segment {name!r} exists but was never initialised "
                    f"(its creator died?); unlink it and start again"
                )
            time.sleep(0.005)
        _check_header(name, buffer, spec)
        return cls(name, spec, buffer, created=False)

    def close(self) -> None:
        """Unmap; the segment itself lives on until unlink()."""
        if not self.buffer.closed:
            self.buffer.close()

    def unlink(self) -> None:
        """Remove the name; memory goes when the last process unmaps."""
        unlink(self.name)


def unlink(name: str) -> bool:
    """Remove a segment by name; False when there was none."""
    try:
        posix_ipc.unlink_shared_memory(_posix_name(name))
    except posix_ipc.ExistentialError:
        return False
    return True


def _map(memory: posix_ipc.SharedMemory) -> mmap.mmap:
    try:
        return mmap.mmap(memory.fd, memory.size)
    finally:
        memory.close_fd()


def _reopen(
    memory: posix_ipc.SharedMemory, posix: str
) -> posix_ipc.SharedMemory:
    memory.close_fd()
    return posix_ipc.SharedMemory(posix)


def _check_header(name: str, buffer: mmap.mmap, spec: SegmentSpec) -> None:
    magic, version, kind, total, a, b, _gen, _pid = _HEADER.unpack_from(
        buffer, 0
    )
    found = (magic, version, kind, total, a, b)
    wanted = (MAGIC, LAYOUT_VERSION, spec.kind, spec.total_bytes,
              spec.param_a, spec.param_b)
    if found != wanted or len(buffer) != spec.total_bytes:
        buffer.close()
        raise LayoutMismatch(
            f"segment {name!r} holds {_describe(found)} but this process "
            f"expects {spec.describe()}; stop every process of the node "
            f"and unlink the segment, or fix the configuration"
        )


def _describe(found: tuple[bytes, int, int, int, int, int]) -> str:
    magic, version, kind, total, a, b = found
    if magic != MAGIC:
        return f"an unknown layout (magic {magic!r})"
    label = Kind(kind).name.lower() if kind in (1, 2, 3) else f"kind {kind}"
    return f"{label} v{version} ({a}, {b}), {total} bytes"
