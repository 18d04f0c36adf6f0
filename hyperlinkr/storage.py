"""Opening the node's two LMDB environments, and the names of their databases.

Every process opens its own environments after it starts (LMDB handles
must never cross fork or spawn).

- The links environment, `HYPERLINKR_DATA_DIR` itself: the persister is
  the only writer of `links` and of its two indexes, `urls` (URL digest +
  code, for `"reuse": true`) and `idempotency` (idempotency key digest ->
  code, for repeated creates), and of `outbox` (this node's changes not
  yet published to Dragonfly).
- The stats environment, `HYPERLINKR_DATA_DIR/stats`: the analytics actor
  is the only writer of `stats`, and in `meta` of how far it merged the
  click journal.
- The journal environment, `HYPERLINKR_DATA_DIR/journal`: the analytics
  actor's alone (no other process opens it), with the click ring
  checkpoint and the click records committed but not yet merged
  (`workers.journal`). It is apart from the stats so that the ring can
  be freed while a merge's long write transaction holds the stats
  environment.

LMDB allows one write transaction at a time per environment. Apart, an
analytics flush (which rewrites the stats of thousands of links) never
holds up the persister's commit of a new link, and the actor can write
through a writable memory map: a write transaction's dirty pages are then
the file's own pages, not pages liblmdb allocates and keeps for reuse for
the life of the environment (tens of MB after a flush over thousands of
links). LMDB warns against mixing writers with and without a writable map
on one environment; the stats environment has one writer, always with it.
Everybody else only reads.

Through that map, though, every page the actor writes stays mapped in its
address space, resident and counted in its RSS, until the kernel reclaims
it: after a flush over 10,000 links 40-55 MB, growing with the stats
file. `MappedPages.release()` (after each flush, and now and then during
one: dirty pages of an open transaction are the page cache's once
unmapped, and its commit writes them back) drops the actor's
page-table entries for the map: the pages stay in the page cache, which
readers and the next flush find a minor fault away, and reclaim them as
any unmapped cache; the data is the file's (MAP_SHARED), written back as
usual.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from pathlib import Path
from typing import cast

import lmdb

__all__ = [
    "IDEMPOTENCY_DB",
    "JOURNAL_SUBDIR",
    "LINKS_DB",
    "META_DB",
    "OUTBOX_DB",
    "STATS_DB",
    "STATS_SUBDIR",
    "URLS_DB",
    "MappedPages",
    "journal_path",
    "open_environment",
    "open_journal_environment",
    "open_stats_environment",
    "stats_path",
]

LINKS_DB = b"links"
STATS_DB = b"stats"
META_DB = b"meta"
URLS_DB = b"urls"
IDEMPOTENCY_DB = b"idempotency"
OUTBOX_DB = b"outbox"

STATS_SUBDIR = "stats"
JOURNAL_SUBDIR = "journal"

_MAX_DBS = 8
_MAX_READERS = 512
_LINKS_DBS = (LINKS_DB, STATS_DB, META_DB, URLS_DB, IDEMPOTENCY_DB, OUTBOX_DB)
_STATS_DBS = (STATS_DB, META_DB)


def open_environment(path: Path, map_size_bytes: int) -> lmdb.Environment:
    """Open (creating if needed) the links environment at `path`.

    Writes are synced on commit (`sync=True`): a committed transaction is on
    disk before `commit()` returns, which is what "durable" means here.
    `stats` and `meta` are opened too: nodes before stats had their own
    environment kept them here, and the analytics actor moves them out
    (`workers.statsmove`).
    """
    return _open(path, map_size_bytes, _LINKS_DBS, writemap=False)


def stats_path(data_dir: Path) -> Path:
    return data_dir / STATS_SUBDIR


def open_stats_environment(
    data_dir: Path, map_size_bytes: int, *, writer: bool = False
) -> lmdb.Environment:
    """Open (creating if needed) the stats environment under `data_dir`.

    Only the analytics actor passes `writer=True`, which maps the file
    writable (with it LMDB sizes the file to `map_size_bytes` at once, a
    sparse file: disk blocks are used as pages are written) and creates
    the databases. Readers open the databases they read when they exist
    (`open_db(..., create=False)`, see `hyperlinkr.stats.StatsReader`), so
    no process but the actor ever writes here, with or without the map.
    Commits are synced as in the links environment.
    """
    names = _STATS_DBS if writer else ()
    return _open(stats_path(data_dir), map_size_bytes, names, writemap=writer)


def journal_path(data_dir: Path) -> Path:
    return data_dir / JOURNAL_SUBDIR


def open_journal_environment(data_dir: Path, map_size_bytes: int) -> lmdb.Environment:
    """Open (creating if needed) the click journal's environment under `data_dir`.

    Only the analytics actor opens it. Its `meta` database holds the
    click ring checkpoint and the journal entries; commits are synced as
    everywhere else.
    """
    return _open(journal_path(data_dir), map_size_bytes, (META_DB,), writemap=False)


def _open(
    path: Path, map_size_bytes: int, names: tuple[bytes, ...], *, writemap: bool
) -> lmdb.Environment:
    path.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(
        str(path),
        map_size=map_size_bytes,
        max_dbs=_MAX_DBS,
        max_readers=_MAX_READERS,
        sync=True,
        metasync=True,
        lock=True,
        readahead=False,
        writemap=writemap,
    )
    for name in names:
        env.open_db(name)
    return env


logger = logging.getLogger(__name__)

_MADV_DONTNEED = 4  # Linux


class MappedPages:
    """This process's mapping of an environment's data file (see above)."""

    def __init__(self, env: lmdb.Environment) -> None:
        data_file = str(Path(env.path()).resolve() / "data.mdb")
        self._ranges = _mapped_ranges(data_file)
        self._madvise = _libc_madvise()
        if not self._ranges or self._madvise is None:
            logger.info("%s: its pages stay mapped (no map to release)", data_file)

    def release(self) -> None:
        """Drop this process's page-table entries for the whole map.

        Only while the environment is open and at the size it was opened
        with (nothing here resizes it): the ranges are read once, and a
        closed or resized map's range may map something else.
        """
        madvise = self._madvise
        if madvise is None:
            return
        for start, length in self._ranges:
            if madvise(start, length, _MADV_DONTNEED) != 0:
                logger.warning(
                    "madvise of %d bytes failed (errno %d); pages stay mapped",
                    length,
                    ctypes.get_errno(),
                )
                self._madvise = None
                return


def _mapped_ranges(path: str) -> list[tuple[int, int]]:
    """(start, length) of every mapping of `path` in this process."""
    ranges = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].rstrip("\n") == path:
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    ranges.append((start, end - start))
    except OSError:
        return []
    return ranges


def _libc_madvise() -> Callable[[int, int, int], int] | None:
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    return cast(Callable[[int, int, int], int], madvise)
