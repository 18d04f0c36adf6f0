"""Moving click stats out of the links environment, once, at the actor's start.

Nodes before the stats environment (`hyperlinkr.storage`) kept `stats`
and the ring checkpoint in the links environment. The analytics actor,
their only writer, moves them before it counts anything:

1. copy every stored stats value into the stats environment, in
   transactions of `batch` values (one transaction over millions of
   values would hold them all as dirty pages);
2. in one last transaction there, write the old checkpoint and the
   `MOVED_KEY` marker;
3. empty the old `stats` database and delete the old checkpoint.

A crash during 1 or 2 leaves no marker: the next start copies again from
the start, which rewrites the same values, since nothing was counted into
the stats environment yet. A crash during 3 leaves the marker: the next
start only empties the old database. Counting starts only after 3, so
a reader that looks in the old database first and then in the new one
(`StatsReader`) finds every link's current stats at every moment.
"""

from __future__ import annotations

import logging

import lmdb

from hyperlinkr.storage import META_DB, STATS_DB
from workers.analytics import CHECKPOINT_KEY

__all__ = ["MOVED_KEY", "move_stats"]

logger = logging.getLogger(__name__)

MOVED_KEY = b"analytics.stats_moved_from_links_environment"
_BATCH = 10_000


def move_stats(
    links_env: lmdb.Environment, stats_env: lmdb.Environment, batch: int = _BATCH
) -> int:
    """Move what the links environment holds of stats; return values moved."""
    old_stats, old_meta = links_env.open_db(STATS_DB), links_env.open_db(META_DB)
    with links_env.begin() as txn:
        left = txn.stat(old_stats)["entries"]
        checkpoint = txn.get(CHECKPOINT_KEY, db=old_meta)
    if not left and checkpoint is None:
        return 0
    new_stats, new_meta = stats_env.open_db(STATS_DB), stats_env.open_db(META_DB)
    with stats_env.begin(db=new_meta) as txn:
        copied = txn.get(MOVED_KEY) is not None
    if not copied:
        logger.info("moving the stats of %d links to their own environment", left)
        _copy(links_env, old_stats, stats_env, new_stats, batch)
        with stats_env.begin(write=True, db=new_meta) as txn:
            if checkpoint is not None:
                txn.put(CHECKPOINT_KEY, checkpoint)
            txn.put(MOVED_KEY, b"1")
    with links_env.begin(write=True) as txn:
        txn.drop(old_stats, delete=False)
        txn.delete(CHECKPOINT_KEY, db=old_meta)
    logger.info("the stats of %d links are in the stats environment", left)
    return left


def _copy(
    source: lmdb.Environment,
    source_db: lmdb._Database,
    target: lmdb.Environment,
    target_db: lmdb._Database,
    batch: int,
) -> None:
    with source.begin(db=source_db) as read:
        cursor = read.cursor()
        more = cursor.first()
        while more:
            with target.begin(write=True, db=target_db) as write:
                for _ in range(batch):
                    write.put(cursor.key(), cursor.value())
                    more = cursor.next()
                    if not more:
                        break
