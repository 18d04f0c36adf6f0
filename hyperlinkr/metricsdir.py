"""The multiprocess metrics directory: a file per process, folded in at death.

prometheus_client's multiprocess mode gives every process its own
memory-mapped files in one directory (`counter_<pid>.db`,
`histogram_<pid>.db`), and a scrape sums every file it finds there. A
process that dies leaves its files behind. Left alone, they pile up with
every restart and every scrape reads them all. Deleted, they take their
counts out of the node-wide sums: the sum drops, Prometheus takes the drop
for a counter reset, and rate() counts everything the *living* processes
ever counted as new, which draws a spike on every graph. (rate() copes with
a counter that restarts from zero, not with a sum that loses one term.)

So the files of dead processes are folded into one archive per type
(`counter_archive.db`, `histogram_archive.db`) and only then removed. The
sums a scrape sees are the same before and after, counters only grow, and
the directory holds the live processes' files plus two. Every process
compacts when it configures its metrics (`hyperlinkr.metrics.configure`),
so a restarted child folds in the files of the one it replaces, and a
starting node folds in the whole previous run.

Compaction takes the directory's lock file exclusively and scrapes take it
shared (`locked`), so no scrape sees a dead process's counts twice (archive
replaced, dead file not yet removed) or not at all. Writers never lock:
each writes only its own files, and compaction only touches files of
processes that no longer exist.

A process is dead when no process has its pid (`kill(pid, 0)`). A reused pid
keeps its predecessor's file until the new owner exits; if the new owner is
one of ours, prometheus_client reopens the file and counts on from its
values, which keeps the sum right too. Gauge files of dead processes are
removed, not archived: a dead process's gauge means nothing. (The node's
gauges are computed at scrape time, so there are none today.)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["ARCHIVED_TYPES", "compact", "locked"]

logger = logging.getLogger(__name__)

ARCHIVED_TYPES = ("counter", "histogram")
_LOCK_FILE = ".lock"
# The smallest file prometheus_client can have written: its used-bytes header.
_HEADER_BYTES = 8

# The multiprocess file format's reader and writer; prometheus_client leaves
# them unannotated, these are their types as used here.
_merge: Callable[[list[str], bool], Iterable[Metric]] = MultiProcessCollector.merge


class _File:
    """A multiprocess file opened for writing (prometheus_client's MmapedDict)."""

    def __init__(self, path: Path) -> None:
        self._mmaped = MmapedDict(str(path))  # type: ignore[no-untyped-call]

    def write(self, key: str, value: float) -> None:
        self._mmaped.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._mmaped.close()  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def locked(directory: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the directory's lock: exclusive to compact, shared to scrape."""
    fd = os.open(directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def compact(directory: Path) -> int:
    """Fold the files of dead processes into the archives; return how many."""
    with locked(directory, exclusive=True):
        dead = _dead_files(directory)
        removable: list[Path] = []
        for kind, paths in dead.items():
            if kind not in ARCHIVED_TYPES or _fold(directory, kind, paths):
                removable += paths
        for path in removable:
            path.unlink(missing_ok=True)
    if removable:
        logger.info(
            "folded the metrics of %d exited processes into the archive",
            len({_pid_of(path) for path in removable}),
        )
    return len(removable)


def _dead_files(directory: Path) -> dict[str, list[Path]]:
    dead: dict[str, list[Path]] = {}
    for path in sorted(directory.glob("*.db")):
        pid = _pid_of(path)
        if pid is None or _alive(pid):
            continue
        dead.setdefault(path.name.split("_", 1)[0], []).append(path)
    return dead


def _pid_of(path: Path) -> int | None:
    last = path.stem.rsplit("_", 1)[-1]
    return int(last) if last.isdecimal() else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # somebody else's process holds the pid now
    return True


def _fold(directory: Path, kind: str, paths: list[Path]) -> bool:
    """Merge `paths` into the `kind` archive; False if they could not be read."""
    archive = directory / f"{kind}_archive.db"
    readable = [p for p in paths if p.stat().st_size >= _HEADER_BYTES]
    sources = [archive, *readable] if archive.exists() else readable
    if not sources:
        return True  # only files of processes killed before their first write
    try:
        merged = _merge([str(p) for p in sources], False)
    except (OSError, ValueError, struct.error) as exc:
        logger.error(
            "cannot read the %s metrics of exited processes (%s); leaving "
            "their files in %s for the next start",
            kind,
            exc,
            directory,
        )
        return False
    # TODO: series no process defines any more (a metric renamed or removed
    # by an upgrade) stay in the archive at their last value for ever;
    # pruning them needs the current metric names here. Until then, delete
    # the directory with the node stopped.
    # Scrapes glob *.db: the new archive is invisible until the rename.
    staging = directory / f"{kind}_archive.staging"
    staging.unlink(missing_ok=True)
    out = _File(staging)
    try:
        for metric in merged:
            for sample in metric.samples:
                labels = sample.labels
                key = mmap_key(
                    metric.name,
                    sample.name,
                    list(labels),
                    list(labels.values()),
                    metric.documentation,
                )
                out.write(key, sample.value)
    finally:
        out.close()
    os.replace(staging, archive)
    return True
