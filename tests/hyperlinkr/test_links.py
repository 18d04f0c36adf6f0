"""Links and their byte forms: LMDB records and L1 entries."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from hyperlinkr.errors import RecordError
from hyperlinkr.links import (
    L1_HEADER_BYTES,
    L1Entry,
    Link,
    decode_l1,
    decode_record,
    encode_l1,
    encode_record,
)

LINK = Link(
    code="aB3xY9z",
    url="https://example.com/päth?q=1",
    created_at_ms=1_700_000_000_000,
    expires_at_ms=1_800_000_000_000,
    redirect_status=301,
    enabled=False,
    forward_query=True,
    nonce="n0nce",
)


def test_defaults_enable_the_link_and_give_each_a_fresh_nonce() -> None:
    first = Link("abcde", "https://a.example/", 1, None, 302)
    second = Link("abcde", "https://a.example/", 1, None, 302)
    assert first.enabled and not first.forward_query
    assert first.nonce and first.nonce != second.nonce


def test_link_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        LINK.url = "https://other.example/"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("expires_at_ms", "now_ms", "expired"),
    [(None, 10**15, False), (1000, 999, False), (1000, 1000, True), (1000, 1, False)],
)
def test_is_expired_from_the_expiry_instant_on(
    expires_at_ms: int | None, now_ms: int, expired: bool
) -> None:
    link = dataclasses.replace(LINK, expires_at_ms=expires_at_ms)
    assert link.is_expired(now_ms) is expired
    assert decode_l1(encode_l1(link)).is_expired(now_ms) is expired


@pytest.mark.parametrize(
    "link",
    [
        LINK,
        dataclasses.replace(LINK, expires_at_ms=None, enabled=True),
        dataclasses.replace(LINK, url="https://例え.jp/" + "x" * 2000),
    ],
)
def test_record_round_trips(link: Link) -> None:
    assert decode_record(encode_record(link)) == link
    assert decode_record(memoryview(encode_record(link))) == link


def test_record_is_compact_json_with_a_version() -> None:
    fields = orjson.loads(encode_record(LINK))
    assert fields["v"] == 1
    assert all(len(key) == 1 for key in fields)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"v": 99, "c": "x"}',
        b'{"c": "x"}',
        b'{"v": 1, "c": "x"}',
    ],
)
def test_corrupt_or_foreign_records_raise_record_error(data: bytes) -> None:
    with pytest.raises(RecordError):
        decode_record(data)


@pytest.mark.parametrize(
    "link",
    [
        LINK,
        dataclasses.replace(LINK, expires_at_ms=None),
        dataclasses.replace(LINK, enabled=True, forward_query=False),
        dataclasses.replace(LINK, redirect_status=308, url="https://ü.example/"),
    ],
)
def test_l1_entry_round_trips(link: Link) -> None:
    data = encode_l1(link)
    expected = L1Entry(
        link.url,
        link.redirect_status,
        link.expires_at_ms,
        link.enabled,
        link.forward_query,
    )
    assert decode_l1(data) == expected
    assert decode_l1(memoryview(data)) == expected


def test_l1_entry_is_a_12_byte_header_and_the_url() -> None:
    data = encode_l1(LINK)
    assert L1_HEADER_BYTES == 12
    assert data[L1_HEADER_BYTES:] == LINK.url.encode("utf-8")


def test_l1_entry_reads_from_a_slice_of_a_larger_buffer() -> None:
    """The shared table hands out views into its slots, not fresh bytes."""
    data = encode_l1(LINK)
    slot = bytearray(b"\xff" * 4 + data + b"\xff" * 4)
    view = memoryview(slot)[4 : 4 + len(data)]
    assert decode_l1(view).url == LINK.url
