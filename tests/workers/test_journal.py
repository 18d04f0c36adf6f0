"""The click journal, and the analytics actor committing through it.

A ListRing stands in for the shared ring; LMDB is real. Crashes are
exceptions raised at the instruction the actor would die at, and a
restart is a new actor on the same LMDB files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import lmdb
import pytest
from actor_io import (
    MAP_SIZE_BYTES,
    ActorDied,
    push_clicks,
    stored_checkpoint,
    total_clicks,
)
from click_producers import FIREFOX, MAY_1_MS
from list_ring import ListRing

from hyperlinkr.clicks import encode_click
from hyperlinkr.storage import META_DB, open_environment, open_journal_environment
from workers.analytics import (
    CHECKPOINT_KEY,
    MERGED_THROUGH_KEY,
    AnalyticsActor,
    Checkpoint,
    FlushPace,
)
from workers.journal import (
    JOURNAL_PREFIX,
    JournalError,
    journal_key,
    pack_records,
    read_journal,
    unpack_records,
)

NEVER_MS = 3_600_000


class DiesBeforeAdvance(ListRing):
    """A ring whose consumer dies right after an LMDB commit, once."""

    def __init__(self) -> None:
        super().__init__()
        self.doomed = False

    def advance(self, end_position: int) -> None:
        if self.doomed:
            self.doomed = False
            raise ActorDied(f"killed before advancing to {end_position}")
        super().advance(end_position)


def journaling_actor(
    ring: ListRing,
    env: lmdb.Environment,
    journal: lmdb.Environment,
    flush_interval_ms: int = NEVER_MS,
    pace: FlushPace | None = None,
) -> AnalyticsActor:
    """An actor that commits every 4 records to the journal."""
    return AnalyticsActor(
        ring,
        env,
        flush_interval_ms=flush_interval_ms,
        batch_records=4,
        journal=journal,
        pace=pace,
    )


def open_journal(directory: Path) -> lmdb.Environment:
    return open_journal_environment(directory, MAP_SIZE_BYTES)


def open_both(
    lmdb_path: Path, journal_dir: Path
) -> tuple[lmdb.Environment, lmdb.Environment]:
    """The stats and journal environments, as a (re)started actor opens them."""
    return open_environment(lmdb_path, MAP_SIZE_BYTES), open_journal(journal_dir)


def clicked_ring(codes: Iterable[str], clicks: int) -> ListRing:
    """A ring holding `clicks` clicks on each code in `codes` (a string: each
    letter a code)."""
    ring = ListRing()
    for code in codes:
        push_clicks(ring, code, clicks)
    return ring


def rest_by(at_rest: Callable[[float], None]) -> FlushPace:
    """A pace that rests (calling `at_rest`) before every link it merges."""
    return FlushPace(lambda: 0, room=1, work_s=0.0, sleep=at_rest)


def journal_sizes(journal: lmdb.Environment) -> list[int]:
    """Records per journal entry, oldest first."""
    meta = journal.open_db(META_DB)
    with journal.begin(db=meta) as txn:
        return [len(entry.records) for entry in read_journal(txn, meta)]


def read_sequences(journal: lmdb.Environment) -> list[int]:
    meta = journal.open_db(META_DB)
    with journal.begin(db=meta) as txn:
        return [entry.sequence for entry in read_journal(txn, meta)]


def merged_through(env: lmdb.Environment) -> int | None:
    """The last journal entry a merge covered, as the stats environment says."""
    with env.begin(db=env.open_db(META_DB)) as txn:
        raw = txn.get(MERGED_THROUGH_KEY)
    return None if raw is None else int.from_bytes(raw, "big")


# The codec


def test_records_come_back_as_packed_over_several_chunks() -> None:
    first = [b"a" * 40, b"", b"\x00\x01"]
    second = [b"z" * 512]
    value = pack_records(first) + pack_records([]) + pack_records(second)

    assert unpack_records(value) == first + second
    assert unpack_records(b"") == []


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (b"\x01\x00", "too short to count"),
        (b"\x03\x00\x00\x00\x01\x00", "its lengths alone reach"),
        (b"\x01\x00\x00\x00\x05\x00abc", "its records reach"),
    ],
)
def test_a_value_that_is_not_a_journal_entry_is_refused(
    value: bytes, says: str
) -> None:
    with pytest.raises(JournalError, match=says):
        unpack_records(value)


def test_entries_are_read_in_the_order_they_were_written(
    env: lmdb.Environment,
) -> None:
    meta = env.open_db(META_DB)
    with env.begin(write=True, db=meta) as txn:
        txn.put(b"analytics.click_ring.checkpoint", b"x" * 16)
        for sequence in (256, 2, 1):
            txn.put(journal_key(sequence), pack_records([bytes([sequence % 256])]))
        txn.put(JOURNAL_PREFIX[:-1] + b"~", b"not ours")
    with env.begin(db=meta) as txn:
        entries = read_journal(txn, meta)

    assert [entry.sequence for entry in entries] == [1, 2, 256]
    assert [entry.records for entry in entries] == [[b"\x01"], [b"\x02"], [b"\x00"]]


# The actor


def test_a_full_batch_goes_to_the_journal_and_the_interval_merges_it(
    env: lmdb.Environment, journal_env: lmdb.Environment
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 10)
    actor = journaling_actor(ring, env, journal_env)

    assert actor.run_once() == 4
    assert actor.run_once() == 4

    assert journal_sizes(journal_env) == [4, 4]
    assert ring.head == 8  # released without merging
    assert stored_checkpoint(journal_env) == Checkpoint(ring.generation, 8)
    assert total_clicks(env, "a") == 0
    assert actor.statistics().flushes == 0

    assert actor.run_once() == 2
    actor.flush()

    assert total_clicks(env, "a") == 10
    assert journal_sizes(journal_env) == []
    assert ring.head == 10
    assert merged_through(env) == 2
    assert actor.statistics().flushes == 1


def test_the_merge_is_due_by_the_flush_interval_not_the_batch(
    env: lmdb.Environment, journal_env: lmdb.Environment
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 4)
    actor = journaling_actor(ring, env, journal_env, flush_interval_ms=0)

    assert actor.run_once() == 4

    assert total_clicks(env, "a") == 4
    assert journal_sizes(journal_env) == []


def test_a_merge_commits_what_it_took_to_the_journal_first(
    env: lmdb.Environment, journal_env: lmdb.Environment
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 3)
    actor = journaling_actor(ring, env, journal_env, flush_interval_ms=0)

    assert actor.run_once() == 3

    assert ring.advance_calls == [3]  # by the journal commit, before the merge
    assert total_clicks(env, "a") == 3
    assert merged_through(env) == 0
    assert journal_sizes(journal_env) == []


def test_a_restart_counts_the_journal_once(lmdb_path: Path, journal_dir: Path) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 8)
    env, journal = open_both(lmdb_path, journal_dir)
    doomed = journaling_actor(ring, env, journal)
    doomed.run_once()
    doomed.run_once()
    env.close()  # the actor dies with 8 clicks journaled, none merged
    journal.close()

    push_clicks(ring, "a", 3)
    env, journal = open_both(lmdb_path, journal_dir)
    actor = journaling_actor(ring, env, journal, flush_interval_ms=0)
    assert actor.run_once() == 3

    assert total_clicks(env, "a") == 11
    assert journal_sizes(journal) == []
    env.close()
    journal.close()


def test_death_between_journal_commit_and_advance_counts_once(
    lmdb_path: Path, journal_dir: Path
) -> None:
    ring = DiesBeforeAdvance()
    push_clicks(ring, "a", 4)
    env, journal = open_both(lmdb_path, journal_dir)
    doomed = journaling_actor(ring, env, journal)
    ring.doomed = True
    with pytest.raises(ActorDied):
        doomed.run_once()
    env.close()
    journal.close()
    assert ring.head == 0  # journaled and still in the ring

    env, journal = open_both(lmdb_path, journal_dir)
    actor = journaling_actor(ring, env, journal, flush_interval_ms=0)
    actor.recover()
    assert ring.head == 4  # the checkpoint skips what the journal holds
    push_clicks(ring, "a", 1)
    assert actor.run_once() == 1

    assert total_clicks(env, "a") == 5
    env.close()
    journal.close()


def test_a_failed_advance_after_a_journal_commit_is_recovered_by_the_same_actor(
    env: lmdb.Environment, journal_env: lmdb.Environment
) -> None:
    ring = DiesBeforeAdvance()
    push_clicks(ring, "a", 4)
    actor = journaling_actor(ring, env, journal_env)
    ring.doomed = True
    with pytest.raises(ActorDied):
        actor.run_once()

    push_clicks(ring, "a", 2)
    assert actor.run_once() == 2  # recovers: advances to the checkpoint first
    actor.flush()

    assert ring.head == 6
    assert total_clicks(env, "a") == 6


def test_death_during_a_merge_loses_nothing_and_counts_nothing_twice(
    lmdb_path: Path, journal_dir: Path
) -> None:
    ring = clicked_ring("abc", 4)
    env, journal = open_both(lmdb_path, journal_dir)
    rests = []

    def die_on_second_rest(seconds: float) -> None:
        rests.append(seconds)
        if len(rests) == 2:
            raise ActorDied("killed in the middle of a merge")

    pace = rest_by(die_on_second_rest)
    doomed = journaling_actor(ring, env, journal, pace=pace)
    for _ in range(3):
        doomed.run_once()
    assert journal_sizes(journal) == [4, 4, 4]
    with pytest.raises(ActorDied):
        doomed.flush()  # "a" merged in the transaction, which never commits
    with pytest.raises(RuntimeError, match="cannot go on"):
        doomed.run_once()
    env.close()
    journal.close()

    env, journal = open_both(lmdb_path, journal_dir)
    actor = journaling_actor(ring, env, journal, flush_interval_ms=0)
    actor.run_once()

    assert [total_clicks(env, code) for code in ("a", "b", "c")] == [4, 4, 4]
    assert journal_sizes(journal) == []
    env.close()
    journal.close()


def test_the_ring_is_freed_while_a_merge_runs(
    env: lmdb.Environment, journal_env: lmdb.Environment
) -> None:
    ring = clicked_ring("abc", 4)
    heads = []

    def clicks_arrive(seconds: float) -> None:
        # Between slices of the merge: what the actor did just before, and
        # more clicks meanwhile.
        heads.append(ring.head)
        push_clicks(ring, "d", 4)

    pace = rest_by(clicks_arrive)
    actor = journaling_actor(ring, env, journal_env, pace=pace)
    for _ in range(3):
        actor.run_once()
    actor.flush()

    # Each rest follows a poll that took the 4 clicks pushed at the rest
    # before, and a journal commit that released them; the last 4 wait.
    assert heads == [12, 16, 20]
    assert journal_sizes(journal_env) == [4, 4]
    assert [total_clicks(env, code) for code in ("a", "b", "c")] == [4, 4, 4]
    assert total_clicks(env, "d") == 0  # taken meanwhile: the next merge's

    assert actor.run_once() == 4
    actor.flush()
    assert total_clicks(env, "d") == 12
    assert journal_sizes(journal_env) == []


def test_a_merge_stops_resting_once_a_ring_worth_of_clicks_waits(
    env: lmdb.Environment, journal_env: lmdb.Environment
) -> None:
    codes = "abcdefgh"
    ring = clicked_ring(codes, 4)
    rests = []

    def clicks_arrive(seconds: float) -> None:
        rests.append(seconds)
        push_clicks(ring, "z", 4)

    pace = rest_by(clicks_arrive)
    actor = journaling_actor(ring, env, journal_env, pace=pace)
    for _ in codes:
        actor.run_once()
    actor.flush()

    # Batches of 4: after the fourth rest, 16 clicks have come since the
    # merge began, and it goes on without resting.
    assert len(rests) == 4
    assert [total_clicks(env, code) for code in codes] == [4] * len(codes)


def test_a_long_merge_releases_the_mapped_stats_pages_as_it_goes(
    env: lmdb.Environment, journal_env: lmdb.Environment
) -> None:
    codes = [f"c{i}" for i in range(70)]
    ring = clicked_ring(codes, 1)
    releases = []
    pace = rest_by(lambda seconds: None)
    actor = AnalyticsActor(
        ring,
        env,
        flush_interval_ms=NEVER_MS,
        batch_records=70,
        journal=journal_env,
        pace=pace,
        release_pages=lambda: releases.append(ring.head),
    )
    actor.run_once()
    actor.flush()

    # With no work between rests, a slice before each of the 70 links: two
    # releases on the way (every 32 slices) and one at the end.
    assert len(releases) == 3
    assert [total_clicks(env, code) for code in codes] == [1] * len(codes)


def test_a_running_actor_polls_for_a_stop_between_the_slices_of_a_merge(
    env: lmdb.Environment, journal_env: lmdb.Environment
) -> None:
    # The poll beats the role's heartbeat: a long merge must not look stalled.
    codes = "abcdef"
    ring = clicked_ring(codes, 1)
    polls = 0

    def stop() -> bool:
        nonlocal polls
        polls += 1
        return actor.statistics().flushes >= 1

    seen: list[int] = []
    actor = AnalyticsActor(
        ring,
        env,
        flush_interval_ms=0,
        batch_records=len(codes),
        journal=journal_env,
        pace=rest_by(lambda seconds: seen.append(polls)),
    )
    actor.run(stop)

    assert len(seen) == len(codes)  # a rest before each link merged
    assert seen == list(range(seen[0], seen[0] + len(codes)))  # a poll each
    assert [total_clicks(env, code) for code in codes] == [1] * len(codes)


def test_the_oldest_pending_click_during_a_merge_is_the_merge_s(
    env: lmdb.Environment, journal_env: lmdb.Environment
) -> None:
    # What the analytics lag gauge and /healthz read.
    ring = clicked_ring("abc", 4)
    oldest: list[int | None] = []

    def clicks_arrive(seconds: float) -> None:
        oldest.append(actor.statistics().oldest_pending_ms)
        ring.push(
            encode_click("d", MAY_1_MS + 60_000, None, FIREFOX, ring.record_bytes)
        )

    actor = journaling_actor(ring, env, journal_env, pace=rest_by(clicks_arrive))
    for _ in range(3):
        actor.run_once()
    assert actor.statistics().oldest_pending_ms == MAY_1_MS
    actor.flush()

    assert oldest == [MAY_1_MS] * 3
    assert actor.statistics().oldest_pending_ms == MAY_1_MS + 60_000  # "d"'s


def test_death_after_a_merge_with_clicks_journaled_meanwhile_counts_once(
    lmdb_path: Path, journal_dir: Path
) -> None:
    ring = clicked_ring("abc", 4)
    env, journal = open_both(lmdb_path, journal_dir)

    pushed = []

    def clicks_arrive(seconds: float) -> None:
        push_clicks(ring, "d", 4)
        pushed.append(4)

    class DiesBeforeForgetting(AnalyticsActor):
        def _forget(self, keys: list[bytes]) -> None:
            raise ActorDied("killed after the merge's commit")

    pace = rest_by(clicks_arrive)
    doomed = DiesBeforeForgetting(
        ring,
        env,
        flush_interval_ms=NEVER_MS,
        batch_records=4,
        journal=journal,
        pace=pace,
    )
    for _ in range(3):
        doomed.run_once()
    with pytest.raises(ActorDied):
        doomed.flush()
    meanwhile = ring.head - 12
    assert meanwhile >= 8  # journaled while the merge ran
    assert len(journal_sizes(journal)) == 3 + meanwhile // 4  # nothing deleted
    env.close()
    journal.close()

    push_clicks(ring, "d", 1)
    env, journal = open_both(lmdb_path, journal_dir)
    actor = journaling_actor(ring, env, journal, flush_interval_ms=0)
    while actor.run_once():
        pass

    assert [total_clicks(env, code) for code in ("a", "b", "c")] == [4, 4, 4]
    assert total_clicks(env, "d") == sum(pushed) + 1
    assert journal_sizes(journal) == []
    env.close()
    journal.close()


def test_sequence_numbers_go_on_past_the_last_merge_when_the_journal_is_lost(
    lmdb_path: Path, journal_dir: Path
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 8)
    env, journal = open_both(lmdb_path, journal_dir)
    journaling_actor(ring, env, journal, flush_interval_ms=0).run_once()
    journaling_actor(ring, env, journal, flush_interval_ms=0).run_once()
    assert merged_through(env) == 1
    journal.close()
    for name in ("data.mdb", "lock.mdb"):
        (journal_dir / "journal" / name).unlink()

    push_clicks(ring, "a", 4)
    journal = open_journal(journal_dir)
    actor = journaling_actor(ring, env, journal)
    actor.run_once()
    assert read_sequences(journal) == [2]
    actor.flush()

    assert total_clicks(env, "a") == 12
    env.close()
    journal.close()


def test_the_checkpoint_of_a_node_without_the_journal_environment_is_used_once(
    env: lmdb.Environment, journal_env: lmdb.Environment
) -> None:
    ring = DiesBeforeAdvance()
    push_clicks(ring, "a", 3)
    ring.doomed = True
    with pytest.raises(ActorDied):  # an actor of before, without a journal
        AnalyticsActor(ring, env, flush_interval_ms=0).run_once()
    assert stored_checkpoint(env) == Checkpoint(ring.generation, 3)
    assert ring.head == 0

    push_clicks(ring, "a", 2)
    actor = journaling_actor(ring, env, journal_env, flush_interval_ms=0)
    assert actor.run_once() == 2

    assert total_clicks(env, "a") == 5
    assert stored_checkpoint(journal_env) == Checkpoint(ring.generation, 5)
    with env.begin(db=env.open_db(META_DB)) as txn:
        assert txn.get(CHECKPOINT_KEY) is None  # the merge deleted it


def test_journal_entries_outlive_a_recreated_ring(
    env: lmdb.Environment,
    journal_env: lmdb.Environment,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old_ring = ListRing(generation=1)
    push_clicks(old_ring, "a", 4)
    journaling_actor(old_ring, env, journal_env).run_once()

    new_ring = ListRing(generation=2)
    push_clicks(new_ring, "a", 2)
    actor = journaling_actor(new_ring, env, journal_env, flush_interval_ms=0)
    assert actor.run_once() == 2

    assert total_clicks(env, "a") == 6
    assert stored_checkpoint(journal_env) == Checkpoint(2, 2)
    assert "click ring was recreated" in caplog.text


def test_an_unreadable_entry_is_logged_skipped_and_deleted(
    env: lmdb.Environment,
    journal_env: lmdb.Environment,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 4)
    readable, _ = ring.peek(4)
    meta = journal_env.open_db(META_DB)
    with journal_env.begin(write=True, db=meta) as txn:
        txn.put(journal_key(0), b"\xff\xff")
        txn.put(journal_key(1), pack_records(readable))
    ring.advance(4)  # as a previous life left it

    actor = journaling_actor(ring, env, journal_env, flush_interval_ms=0)
    actor.run_once()

    assert total_clicks(env, "a") == 4
    assert journal_sizes(journal_env) == []
    assert "click journal entry 0 is unreadable" in caplog.text


def test_bad_records_in_the_journal_are_skipped_again(
    env: lmdb.Environment, journal_env: lmdb.Environment
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 2)
    ring.push(b"garbage")
    push_clicks(ring, "a", 1)
    journaling_actor(ring, env, journal_env).run_once()
    assert journal_sizes(journal_env) == [4]

    actor = journaling_actor(ring, env, journal_env, flush_interval_ms=0)
    actor.run_once()

    assert total_clicks(env, "a") == 3
    assert actor.statistics().bad_records == 1


def test_stopping_merges_the_journal(
    env: lmdb.Environment, journal_env: lmdb.Environment
) -> None:
    ring = ListRing()
    push_clicks(ring, "a", 9)
    actor = journaling_actor(ring, env, journal_env)

    actor.run(lambda: actor.statistics().records_seen == 9)

    assert total_clicks(env, "a") == 9
    assert journal_sizes(journal_env) == []
