"""The stats environment's writable map, and releasing what it maps."""

from __future__ import annotations

import os
from pathlib import Path

from hyperlinkr.storage import STATS_DB, MappedPages, open_stats_environment


def resident_kb(path: Path) -> int:
    """This process's resident memory mapped from `path` (/proc/self/smaps)."""
    total, current = 0, None
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and ":" not in fields[0]:
                current = fields[5] if len(fields) > 5 else None
            elif fields[0] == "Rss:" and current == str(path):
                total += int(fields[1])
    return total


def test_release_unmaps_the_written_pages_and_keeps_their_data(
    tmp_path: Path,
) -> None:
    env = open_stats_environment(tmp_path, 64 << 20, writer=True)
    db = env.open_db(STATS_DB)
    values = {f"link{i}".encode(): os.urandom(2500) for i in range(2000)}
    with env.begin(write=True) as txn:
        for key, value in values.items():
            txn.put(key, value, db=db)
    data_file = (tmp_path / "stats" / "data.mdb").resolve()
    written_kb = resident_kb(data_file)
    assert written_kb >= 2000 * 4  # a page or more per value, all mapped

    MappedPages(env).release()
    assert resident_kb(data_file) < written_kb / 10

    with env.begin(db=db) as txn:  # from the page cache, a fault away
        assert all(txn.get(key) == value for key, value in values.items())
    with env.begin(write=True) as txn:  # and the map still writes
        txn.put(b"link0", b"new", db=db)
    env.close()

    reopened = open_stats_environment(tmp_path, 64 << 20, writer=False)
    with reopened.begin() as txn:
        stats = reopened.open_db(STATS_DB, txn=txn, create=False)
        assert txn.get(b"link0", db=stats) == b"new"
        assert txn.get(b"link1999", db=stats) == values[b"link1999"]
    reopened.close()


def test_release_inside_a_write_transaction_keeps_what_it_wrote(
    tmp_path: Path,
) -> None:
    # The analytics actor releases pages while a merge's transaction is
    # open: its dirty pages leave the map, and stay the file's.
    env = open_stats_environment(tmp_path, 64 << 20, writer=True)
    db = env.open_db(STATS_DB)
    values = {f"link{i}".encode(): os.urandom(2500) for i in range(2000)}
    data_file = (tmp_path / "stats" / "data.mdb").resolve()
    pages = MappedPages(env)
    with env.begin(write=True) as txn:
        for i, (key, value) in enumerate(values.items()):
            txn.put(key, value, db=db)
            if i == 999:
                written_kb = resident_kb(data_file)
                pages.release()
                assert resident_kb(data_file) < written_kb / 10
        # What was written before the release reads back inside the txn.
        assert txn.get(b"link0", db=db) == values[b"link0"]
    env.close()

    reopened = open_stats_environment(tmp_path, 64 << 20, writer=False)
    with reopened.begin() as txn:
        stats = reopened.open_db(STATS_DB, txn=txn, create=False)
        assert all(txn.get(key, db=stats) == value for key, value in values.items())
    reopened.close()
