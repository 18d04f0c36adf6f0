"""Noticing that a small configuration file changed, without inotify.

Workers re-read the blocklist and the API keys file when they change,
checking at most once a second. A modification time alone can miss a
change: file systems keep coarse timestamps (a kernel tick), so a write
made in the same tick as an earlier read, say the second half of a file
being written while a worker read the first half, leaves the time
unchanged. So the version of a file is its (mtime, size, inode), and a
file modified in the last `SETTLE_S` seconds counts as changed at every
check until it has been quiet that long.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["FileWatch"]

SETTLE_S = 2.0


class FileWatch:
    """`changed()` is True when the file may differ from the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._version: tuple[int, int, int] | None = None
        self._seen = False

    def changed(self) -> bool:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            version = None
            recent = False
        else:
            version = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            recent = time.time() - stat.st_mtime < SETTLE_S
        if self._seen and version == self._version and not recent:
            return False
        self._seen = True
        self._version = version
        return True

    @property
    def exists(self) -> bool:
        return self._version is not None
