"""Opening the node's LMDB environment, and the names of its databases.

Every process opens its own environment after it starts (LMDB handles must
never cross fork or spawn). The persister is the only writer of `links`
and of its two indexes, `urls` (URL digest + code, for `"reuse": true`)
and `idempotency` (idempotency key digest -> code, for repeated creates),
and of `outbox` (this node's changes not yet published to Dragonfly);
the analytics actor is the only writer of `stats` and of its ring
checkpoint in `meta`. Everybody else only reads.
"""

from __future__ import annotations

from pathlib import Path

import lmdb

__all__ = [
    "IDEMPOTENCY_DB",
    "LINKS_DB",
    "META_DB",
    "OUTBOX_DB",
    "STATS_DB",
    "URLS_DB",
    "open_environment",
]

LINKS_DB = b"links"
STATS_DB = b"stats"
META_DB = b"meta"
URLS_DB = b"urls"
IDEMPOTENCY_DB = b"idempotency"
OUTBOX_DB = b"outbox"

_MAX_DBS = 8
_MAX_READERS = 512


def open_environment(
    path: Path, map_size_bytes: int, *, readonly: bool = False
) -> lmdb.Environment:
    """Open (creating if needed) the environment at `path` with every database.

    Writes are synced on commit (`sync=True`): a committed transaction is on
    disk before `commit()` returns, which is what "durable" means here.
    """
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
    )
    for name in (LINKS_DB, STATS_DB, META_DB, URLS_DB, IDEMPOTENCY_DB, OUTBOX_DB):
        env.open_db(name)
    return env
