"""The exceptions of the shm package.

    ShmError(Exception)
     +-- LayoutMismatch(ShmError, ValueError)   attach found another layout
     +-- SegmentNotReady(ShmError, TimeoutError) creator never finished
"""

from __future__ import annotations

__all__ = ["LayoutMismatch", "SegmentNotReady", "ShmError"]


class ShmError(Exception):
    """Base class of every error raised by shm."""


class LayoutMismatch(ShmError, ValueError):
    """A segment exists under the name but was laid out differently."""


class SegmentNotReady(ShmError, TimeoutError):
    """A segment exists but its creator never marked it initialised."""
