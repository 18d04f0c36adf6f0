from __future__ import annotations

import random
import struct

import pytest

from hyperlinkr.clicks import (
    REFERRER_MAX_BYTES,
    USER_AGENT_MAX_BYTES,
    Click,
    ClickRecordError,
    decode_click,
    encode_click,
)

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0"


def test_round_trip_keeps_every_field() -> None:
    record = encode_click("abc123", 1_700_000_000_123, "https://x.io/a", CHROME)

    assert decode_click(record) == Click(
        "abc123", 1_700_000_000_123, "https://x.io/a", CHROME
    )


def test_absent_fields_stay_absent_and_empty_stays_empty() -> None:
    assert decode_click(encode_click("a", 1, None, None)) == Click("a", 1, None, None)
    assert decode_click(encode_click("a", 1, "", "")) == Click("a", 1, "", "")


def test_long_fields_are_truncated_to_their_limits() -> None:
    click = decode_click(encode_click("a", 1, "r" * 1000, "u" * 1000))

    assert click.referrer == "r" * REFERRER_MAX_BYTES
    assert click.user_agent == "u" * USER_AGENT_MAX_BYTES


def test_truncation_never_splits_a_character() -> None:
    referrer = "https://x.io/" + "é" * 300
    agent = "€" * 300

    click = decode_click(encode_click("a", 1, referrer, agent))

    assert click.referrer is not None and click.user_agent is not None
    assert referrer.startswith(click.referrer)
    assert agent.startswith(click.user_agent)
    assert len(click.referrer.encode()) in (REFERRER_MAX_BYTES - 1, REFERRER_MAX_BYTES)
    assert len(click.user_agent.encode()) == USER_AGENT_MAX_BYTES


@pytest.mark.parametrize("record_bytes", [64, 128, 256, 300, 512])
def test_record_always_fits_record_bytes(record_bytes: int) -> None:
    record = encode_click("c" * 40, 1, "ü" * 500, "𝄞" * 500, record_bytes)

    assert len(record) <= record_bytes
    assert decode_click(record).code == "c" * 40


def test_code_that_cannot_fit_is_refused() -> None:
    with pytest.raises(ClickRecordError, match="record holds codes up to"):
        encode_click("c" * 60, 1, None, None, record_bytes=64)


def test_negative_timestamp_is_refused() -> None:
    with pytest.raises(ClickRecordError, match="ts_ms"):
        encode_click("a", -1, None, None)


def test_nul_padding_after_the_record_is_ignored() -> None:
    record = encode_click("a", 5, "r", "u").ljust(512, b"\0")

    assert decode_click(record) == Click("a", 5, "r", "u")


@pytest.mark.parametrize(
    "record",
    [
        b"",
        b"\x01" * 5,
        struct.pack("<BQBBBH", 2, 1, 0, 1, 0, 0) + b"a",
        struct.pack("<BQBBBH", 1, 1, 0x80, 1, 0, 0) + b"a",
        struct.pack("<BQBBBH", 1, 1, 0, 0, 0, 0),
        struct.pack("<BQBBBH", 1, 1, 0, 1, 3, 0) + b"abcd",
        struct.pack("<BQBBBH", 1, 1, 3, 1, 0, 900) + b"a",
        struct.pack("<BQBBBH", 1, 1, 0, 5, 0, 0) + b"ab",
        struct.pack("<BQBBBH", 1, 1, 0, 1, 0, 0) + b"a" + b"junk",
        struct.pack("<BQBBBH", 1, 1, 0, 2, 0, 0) + b"\xff\xfe",
    ],
)
def test_garbage_raises_click_record_error(record: bytes) -> None:
    with pytest.raises(ClickRecordError):
        decode_click(record)


def test_random_bytes_never_raise_anything_but_click_record_error() -> None:
    rng = random.Random(7)
    valid = encode_click("abc", 1, "https://é.io/", CHROME)
    for _ in range(5000):
        record = bytearray(valid[: rng.randrange(0, len(valid) + 1)])
        for _ in range(rng.randrange(1, 4)):
            if record:
                record[rng.randrange(len(record))] = rng.randrange(256)
        try:
            decode_click(bytes(record))
        except ClickRecordError:
            pass


def test_click_record_error_is_a_value_error() -> None:
    assert issubclass(ClickRecordError, ValueError)


def test_visitor_hash_round_trips_and_is_optional() -> None:
    record = encode_click("abc", 7, "https://r.io/", CHROME, visitor=2**64 - 3)
    click = decode_click(record.ljust(512, b"\0"))
    assert click.visitor == 2**64 - 3
    assert click.user_agent == CHROME
    assert decode_click(encode_click("abc", 7, None, None)).visitor is None
