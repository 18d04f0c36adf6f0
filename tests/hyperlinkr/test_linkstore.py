"""Links in a real LMDB environment, and the write-ring mutation codec."""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Iterator
from multiprocessing.queues import Queue
from pathlib import Path

import lmdb
import pytest

from hyperlinkr.errors import RecordError, StoreError
from hyperlinkr.links import Link
from hyperlinkr.linkstore import (
    MAX_MUTATION_BYTES,
    Create,
    Delete,
    Idempotency,
    LinkReader,
    LinkWriter,
    Mutation,
    Patch,
    Update,
    decode_mutation,
    encode_mutation,
)
from hyperlinkr.storage import open_environment

MAP_SIZE_BYTES = 16 * 1024 * 1024
JOIN_TIMEOUT_S = 30.0


def make_link(code: str, url: str = "https://example.com/") -> Link:
    return Link(code, url, 1_700_000_000_000, None, 302, nonce=f"nonce-{code}")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[lmdb.Environment]:
    environment = open_environment(tmp_path / "lmdb", MAP_SIZE_BYTES)
    yield environment
    environment.close()


def test_created_link_can_be_read_back(env: lmdb.Environment) -> None:
    link = make_link("abc1234")
    assert LinkWriter(env).apply([Create(link)]) == [True]
    assert LinkReader(env).get("abc1234") == link
    assert LinkReader(env).get("missing") is None


def test_create_never_overwrites_an_existing_code(env: lmdb.Environment) -> None:
    writer = LinkWriter(env)
    first = make_link("dup0001", "https://first.example/")
    second = make_link("dup0001", "https://second.example/")
    assert writer.apply([Create(first)]) == [True]
    assert writer.apply([Create(second)]) == [False]
    assert LinkReader(env).get("dup0001") == first


def test_a_batch_reports_each_mutation(env: lmdb.Environment) -> None:
    writer = LinkWriter(env)
    original = make_link("code001")
    changed = dataclasses.replace(original, url="https://changed.example/")
    results = writer.apply(
        [
            Create(original),
            Create(make_link("code001", "https://loser.example/")),
            Update(changed),
            Update(make_link("unknown")),
            Create(make_link("code002")),
            Delete("code002"),
            Delete("never-was"),
        ]
    )
    assert results == [True, False, True, False, True, True, False]
    reader = LinkReader(env)
    assert reader.get("code001") == changed
    assert reader.get("code002") is None
    assert reader.get("unknown") is None
    assert reader.count() == 1


def test_empty_batch_commits_nothing(env: lmdb.Environment) -> None:
    assert LinkWriter(env).apply([]) == []
    assert LinkReader(env).count() == 0


def test_a_failed_batch_applies_nothing(tmp_path: Path) -> None:
    """A commit that cannot fit the map is all-or-nothing, as a StoreError."""
    small = open_environment(tmp_path / "small", 64 * 1024)
    try:
        links = [
            make_link(f"c{n:06d}", "https://e.example/" + "x" * 1900)
            for n in range(200)
        ]
        with pytest.raises(StoreError, match="LMDB_MAP_SIZE_MB"):
            LinkWriter(small).apply([Create(link) for link in links])
        assert LinkReader(small).count() == 0
    finally:
        small.close()


def _read_in_child(
    path: str, code: str, ready: Queue[str], go: Queue[str], results: Queue[str | None]
) -> None:
    """Opens its own environment, reads before and after the parent writes."""
    env = open_environment(Path(path), MAP_SIZE_BYTES)
    reader = LinkReader(env)
    before = reader.get(code)
    ready.put("ready")
    go.get(timeout=JOIN_TIMEOUT_S)
    after = reader.get(code)
    results.put(None if before is None else before.url)
    results.put(None if after is None else after.url)
    env.close()


def test_another_process_sees_a_committed_write(
    tmp_path: Path, env: lmdb.Environment
) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready: Queue[str] = ctx.Queue()
    go: Queue[str] = ctx.Queue()
    results: Queue[str | None] = ctx.Queue()
    child = ctx.Process(
        target=_read_in_child,
        args=(str(tmp_path / "lmdb"), "shared1", ready, go, results),
    )
    child.start()
    try:
        assert ready.get(timeout=JOIN_TIMEOUT_S) == "ready"
        LinkWriter(env).apply([Create(make_link("shared1", "https://seen.example/"))])
        go.put("go")
        assert results.get(timeout=JOIN_TIMEOUT_S) is None
        assert results.get(timeout=JOIN_TIMEOUT_S) == "https://seen.example/"
    finally:
        child.join(JOIN_TIMEOUT_S)
        if child.is_alive():
            child.kill()
    assert not child.is_alive(), "child reader deadlocked"
    assert child.exitcode == 0


LONGEST = make_link("x" * 32, "https://example.com/" + "p" * 2028)


@pytest.mark.parametrize(
    "mutation",
    [
        Create(make_link("abc1234")),
        Update(
            dataclasses.replace(make_link("abc1234"), expires_at_ms=5, enabled=False)
        ),
        Delete("abc1234"),
        Create(LONGEST),
        Update(LONGEST),
    ],
)
def test_mutations_round_trip_through_the_wire_form(mutation: Mutation) -> None:
    data = encode_mutation(mutation)
    assert len(data) <= MAX_MUTATION_BYTES
    assert decode_mutation(data) == mutation
    assert decode_mutation(memoryview(data)) == mutation


def test_a_2048_character_url_fits_a_ring_record() -> None:
    assert len(LONGEST.url) == 2048
    assert len(encode_mutation(Create(LONGEST))) <= MAX_MUTATION_BYTES


def test_a_mutation_too_big_for_a_ring_record_is_refused() -> None:
    link = make_link("abc1234", "https://example.com/" + "ü" * 2000)
    with pytest.raises(RecordError, match=str(MAX_MUTATION_BYTES)):
        encode_mutation(Create(link))


@pytest.mark.parametrize(
    "data", [b"", b"\x01", b"\x09abc", b"\x01not-json", b"\x03\xff\xfe"]
)
def test_malformed_mutations_raise_record_error(data: bytes) -> None:
    with pytest.raises(RecordError):
        decode_mutation(data)


def test_patch_changes_only_its_fields_and_moves_the_url_index(
    env: lmdb.Environment,
) -> None:
    writer, reader = LinkWriter(env), LinkReader(env)
    writer.apply([Create(make_link("pat0001", "https://old.example/"))])
    assert writer.apply([Patch("pat0001", {"u": "https://new.example/", "e": False})])
    patched = reader.get("pat0001")
    assert patched is not None
    assert (patched.url, patched.enabled, patched.redirect_status) == (
        "https://new.example/",
        False,
        302,
    )
    assert reader.with_url("https://old.example/") == []
    assert [link.code for link in reader.with_url("https://new.example/")] == [
        "pat0001"
    ]
    assert writer.apply([Patch("missing", {"e": True})]) == [False]


def test_delete_removes_the_link_from_the_url_index(env: lmdb.Environment) -> None:
    writer, reader = LinkWriter(env), LinkReader(env)
    writer.apply([Create(make_link("del0001")), Create(make_link("del0002"))])
    assert len(reader.with_url("https://example.com/")) == 2
    writer.apply([Delete("del0001")])
    assert [link.code for link in reader.with_url("https://example.com/")] == [
        "del0002"
    ]


def test_create_once_creates_one_link_per_key(env: lmdb.Environment) -> None:
    writer, reader = LinkWriter(env), LinkReader(env)
    once = Idempotency("digest-1", "fingerprint-1")
    assert writer.apply([Create(make_link("one0001"), once)]) == [True]
    assert writer.apply([Create(make_link("one0002"), once)]) == [False]
    assert reader.get("one0002") is None
    assert reader.idempotent("digest-1") == ("one0001", "fingerprint-1")
    assert reader.idempotent("digest-2") is None


@pytest.mark.parametrize(
    "mutation",
    [
        Patch("abc", {"u": "https://x.example/", "x": None, "s": 301}),
        Create(make_link("onc0001"), Idempotency("d" * 64, "f" * 64)),
    ],
)
def test_new_mutation_kinds_round_trip(mutation: Mutation) -> None:
    assert decode_mutation(encode_mutation(mutation)) == mutation
