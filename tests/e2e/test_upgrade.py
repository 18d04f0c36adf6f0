"""A data directory from before the stats environment, under a new node."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import orjson

from hyperlinkr.storage import (
    META_DB,
    STATS_DB,
    journal_path,
    open_environment,
    open_journal_environment,
    open_stats_environment,
    stats_path,
)
from tests.e2e.conftest import MakeNode
from tests.e2e.test_node import wait_for_clicks
from workers.analytics import CHECKPOINT_KEY

MAP_SIZE_BYTES = 64 * 1024 * 1024  # RunningNode's HYPERLINKR_LMDB_MAP_SIZE_MB
LAYOUT_1_RECENT = ("ts_ms", "referrer", "browser", "os", "device")


def _as_old_node_left_it(data_dir: Path) -> dict[bytes, bytes]:
    """Put the stats back where old nodes kept them, in layout 1; drop the new env."""
    # open_db() outside a transaction: inside a write one it would wait on
    # that transaction's own lock.
    stats_env = open_stats_environment(data_dir, MAP_SIZE_BYTES)
    stats_db, meta_db = stats_env.open_db(STATS_DB), stats_env.open_db(META_DB)
    with stats_env.begin() as txn:
        values = dict(txn.cursor(db=stats_db))
    stats_env.close()
    shutil.rmtree(stats_path(data_dir))
    # The ring checkpoint is in the journal environment now; old nodes had none.
    journal_env = open_journal_environment(data_dir, MAP_SIZE_BYTES)
    with journal_env.begin(db=journal_env.open_db(META_DB)) as txn:
        checkpoint = txn.get(CHECKPOINT_KEY)
    journal_env.close()
    shutil.rmtree(journal_path(data_dir))
    old = {}
    for key, raw in values.items():
        value = orjson.loads(raw)
        value["version"] = 1
        value["recent"] = [
            dict(zip(LAYOUT_1_RECENT, row, strict=True)) for row in value["recent"]
        ]
        old[bytes(key)] = orjson.dumps(value)
    links_env = open_environment(data_dir, MAP_SIZE_BYTES)
    stats_db, meta_db = links_env.open_db(STATS_DB), links_env.open_db(META_DB)
    with links_env.begin(write=True) as txn:
        for key, value in old.items():
            txn.put(key, value, db=stats_db)
        assert checkpoint is not None
        txn.put(CHECKPOINT_KEY, checkpoint, db=meta_db)
    links_env.close()
    return old


def test_stats_of_an_old_data_dir_move_over_and_keep_counting(
    make_node: MakeNode, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    node = make_node(data_dir)
    code = httpx.post(node.url("/shorten"), json={"url": "https://example.com/u"})
    code = code.json()["code"]
    for _ in range(3):
        assert httpx.get(node.url(f"/{code}")).status_code == 302
    before = wait_for_clicks(node, code, 3)
    assert before["clicks"]["total"] == 3
    assert node.stop() == {"persister": 0, "analytics": 0, "web": 0}
    old = _as_old_node_left_it(data_dir)
    assert code.encode() in old

    node = make_node(data_dir)
    assert httpx.get(node.url(f"/stats/{code}")).json() == before
    assert httpx.get(node.url(f"/{code}")).status_code == 302
    after = wait_for_clicks(node, code, 4)
    assert node.stop() == {"persister": 0, "analytics": 0, "web": 0}

    assert after["clicks"]["total"] == 4
    assert after["recent"][1:] == before["recent"]
    links_env = open_environment(data_dir, MAP_SIZE_BYTES)
    stats_db, meta_db = links_env.open_db(STATS_DB), links_env.open_db(META_DB)
    with links_env.begin() as txn:
        assert txn.stat(stats_db)["entries"] == 0
        assert txn.get(CHECKPOINT_KEY, db=meta_db) is None
    links_env.close()
