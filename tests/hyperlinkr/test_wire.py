"""The C readers and writers of hyperlinkr._wire against their references.

`parse_plain`, `encode_click` and `ClickAggregator.add_records` run C for
the common case and Python (`parse_plain_reference`,
`encode_click_reference`, `add_fields(*read_click(record))`) for the
rest; these tests hold the two to the same answer on generated inputs
built to reach every branch of both: the regular expressions' edges,
header values that need Unicode, records too small for their fields,
corrupt records, times no date can name.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hyperlinkr import _wire
from hyperlinkr.clicks import (
    ClickRecordError,
    encode_click,
    encode_click_reference,
    read_click,
)
from hyperlinkr.codes import CODE_MAX_LENGTH
from hyperlinkr.http1 import PlainRequest, parse_plain, parse_plain_reference
from workers.aggregates import ClickAggregator

_FUZZ = settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# ---- request heads ------------------------------------------------------

_NAMES = [
    "Host",
    "Referer",
    "REFERER",
    "referer",
    "User-Agent",
    "user-AGENT",
    "X-Forwarded-For",
    "Connection",
    "CONNECTION",
    "Content-Length",
    "transfer-encoding",
    "Expect",
    "Upgrade",
    "Accept",
    "Referer-Policy",
    "Connections",
    "X-Odd!#$%&'*+.^_`|~",
    "Bad Name",
    "Bad\x7fName",
    "",
]
_NAMES += _NAMES[:9] * 2  # the names a redirect reads, more often
_VALUE_PIECES = [
    "keep-alive",
    "Keep-Alive",
    "close",
    "https://example.com/a?b=c",
    "Mozilla/5.0 (X11)",
    "203.0.113.7, 10.0.0.1",
    " ",
    "\t",
    "\x0b",
    "\x1c",
    "\x1f",
    "\x00",
    ":",
    "\r",
    "\n",
]
_VALUE_BYTES = [b"\xc2\xa0", b"\xe9", b"\xff", "\u212a".encode(), "\u0130".encode()]
_PATHS = [
    *["/abc1234"] * 8,
    *["/Zz_-9"] * 4,
    "/" + "a" * CODE_MAX_LENGTH,
    "/" + "a" * (CODE_MAX_LENGTH + 1),
    "/",
    "/abc/def",
    "/abc.def",
    "/abc?x=1&y=%2F",
    "/abc?x=%2",
    "/abc?x=%zz",
    "/abc?",
    "/abc?a b",
    "/abc?/?:@!$&'()*+,;=-._~",
    "/abc#frag",
    "/ab%41",
]
# The plain choices come several times over, so that about half the heads
# generated are plain and reach the header values.
_STARTS = [
    *["GET"] * 6,
    *["HEAD"] * 2,
    "get",
    "POST",
    "GET ",
    "OPTIONS",
]
_VERSIONS = [*["HTTP/1.1"] * 12, "HTTP/1.0", "http/1.1", "HTTP/1.1 ", "HTTP/2"]


@st.composite
def header_values(draw: st.DrawFn) -> bytes:
    parts = draw(
        st.lists(
            st.one_of(
                st.sampled_from(_VALUE_PIECES).map(str.encode),
                st.sampled_from(_VALUE_BYTES),
                st.text(
                    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8
                ).map(str.encode),
            ),
            max_size=4,
        )
    )
    return b"".join(parts)


@st.composite
def heads(draw: st.DrawFn) -> tuple[bytes, int]:
    method, path = draw(st.sampled_from(_STARTS)), draw(st.sampled_from(_PATHS))
    start_line = f"{method} {path} {draw(st.sampled_from(_VERSIONS))}"
    lines = [start_line.encode()]
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(_NAMES)).encode()
        separator = draw(st.sampled_from([*[b":"] * 6, b": ", b" :"]))
        lines.append(name + separator + draw(header_values()))
    ending = draw(st.sampled_from([*[b"\r\n"] * 8, b"\n", b"\r"]))
    head = b"\r\n".join(lines) + b"\r\n" + ending
    prefix = draw(st.sampled_from([b"", b"GET /x HTTP/1.1\r\n\r\n", b"junk"]))
    tail = draw(st.sampled_from([b"", b"GET /next HTTP/1.1\r\n\r\n", b"\x00"]))
    data = prefix + head + tail
    cut = draw(st.one_of(st.none(), st.none(), st.none(), st.integers(0, len(data))))
    if cut is not None:
        data = data[:cut]
    start = draw(st.sampled_from([len(prefix), len(prefix), 0, len(data) + 1, -3]))
    return data, start


@_FUZZ
@given(heads())
@example((b"GET /abc HTTP/1.1\r\nConnection: \xe2\x84\xaaeep-alive\r\n\r\n", 0))
@example((b"GET /abc HTTP/1.1\r\nReferer: \xc2\xa0x\r\n\r\n", 0))
@example((b"GET /abc HTTP/1.1\r\nUser-Agent:\x1c\x1f A\r\n\r\n", 0))
def test_the_c_scan_reads_every_head_as_the_reference(case: tuple[bytes, int]) -> None:
    data, start = case
    assert parse_plain(data, start) == parse_plain_reference(data, start)


def test_the_c_scan_answers_ascii_heads_itself() -> None:
    data = b"HEAD /abc?q=1 HTTP/1.1\r\nConnection: close\r\nReferer:  r\r\n\r\n"
    found = _wire.scan_plain(data, 0, CODE_MAX_LENGTH, PlainRequest)
    assert isinstance(found, PlainRequest)
    assert found == PlainRequest(len(data), b"abc", True, True, False, "r", None, None)


def test_the_c_scan_hands_unicode_values_to_the_reference() -> None:
    data = "GET /abc HTTP/1.1\r\nConnection: \u212aeep-alive\r\n\r\n".encode()
    assert _wire.scan_plain(data, 0, CODE_MAX_LENGTH, PlainRequest) is True
    request = parse_plain(data, 0)
    assert request is not None and request.keep_alive  # KELVIN SIGN lowers to k


def test_the_c_scan_refuses_what_is_not_a_tuple_class() -> None:
    with pytest.raises(TypeError):
        not_a_tuple: type = dict
        _wire.scan_plain(b"GET /a HTTP/1.1\r\n\r\n", 0, 10, not_a_tuple)


# ---- click records ------------------------------------------------------

_TEXT = st.text(
    st.one_of(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        st.sampled_from("\u00e9\u20ac\U0001f600\udce9"),
    ),
    max_size=260,
)


def _outcome(call: object, *args: object) -> object:
    try:
        return call(*args)  # type: ignore[operator]
    except Exception as exc:  # the two must fail alike, whatever the error
        return type(exc), str(exc)


@_FUZZ
@given(
    code=st.one_of(_TEXT.map(lambda t: t[:300] or "a"), st.just("\udce9")),
    ts_ms=st.one_of(
        st.integers(0, 2**64 - 1), st.integers(-(2**65), -1), st.just(2**64)
    ),
    referrer=st.one_of(st.none(), _TEXT),
    user_agent=st.one_of(st.none(), _TEXT),
    record_bytes=st.one_of(st.integers(0, 600), st.just(512)),
    visitor=st.one_of(st.none(), st.integers(-(2**70), 2**70)),
)
@example(code="c", ts_ms=1, referrer="", user_agent="", record_bytes=16, visitor=1)
@example(
    code="c",
    ts_ms=1,
    referrer="\u20ac" * 70,
    user_agent=None,
    record_bytes=512,
    visitor=None,
)
def test_the_c_encoder_writes_every_record_as_the_reference(
    code: str,
    ts_ms: int,
    referrer: str | None,
    user_agent: str | None,
    record_bytes: int,
    visitor: int | None,
) -> None:
    args = (code, ts_ms, referrer, user_agent, record_bytes, visitor)
    assert _outcome(encode_click, *args) == _outcome(encode_click_reference, *args)


def test_the_c_encoder_leaves_odd_arguments_to_the_reference() -> None:
    a_float: int = 1.5  # type: ignore[assignment]
    assert _wire.encode_click("c", a_float, None, None, 512, None) is None
    assert _wire.encode_click("c", -1, None, None, 512, None) is None
    assert _wire.encode_click("c" * 300, 1, None, None, 512, None) is None
    with pytest.raises(ClickRecordError):
        encode_click("c", -1, None, None)


@st.composite
def records(draw: st.DrawFn) -> bytes:
    record = encode_click_reference(
        draw(st.sampled_from(["abc", "xyz", "\u00e9t\u00e9", "q"])),
        draw(
            st.one_of(
                st.integers(1_700_000_000_000, 1_700_300_000_000),
                st.integers(0, 2**64 - 1),  # mostly past the year 9999
            )
        ),
        draw(st.one_of(st.none(), st.sampled_from(["", "https://a.example/"]), _TEXT)),
        draw(st.one_of(st.none(), st.sampled_from(["wrk", "Mozilla/5.0"]), _TEXT)),
        512,
        draw(st.one_of(st.none(), st.integers(0, 2**64 - 1))),
    )
    damage = draw(st.sampled_from(["none"] * 6 + ["flip", "cut", "pad", "junk"]))
    if damage == "flip":
        at = draw(st.integers(0, len(record) - 1))
        raw = bytearray(record)
        raw[at] = draw(st.integers(0, 255))
        record = bytes(raw)
    elif damage == "cut":
        record = record[: draw(st.integers(0, len(record)))]
    elif damage == "pad":
        record += b"\x00" * draw(st.integers(1, 20))
    elif damage == "junk":
        record += draw(st.binary(min_size=1, max_size=4))
    return record


def _counted_in_python(aggregator: ClickAggregator, batch: list[bytes]) -> int:
    refused = 0
    for record in batch:
        try:
            aggregator.add_fields(*read_click(record))
        except ClickRecordError:
            refused += 1
    return refused


def _counted_in_c(aggregator: ClickAggregator, batch: list[bytes]) -> int:
    # As the analytics actor does it (AnalyticsActor._take).
    refused = 0
    start = aggregator.add_records(batch)
    while start < len(batch):
        try:
            aggregator.add_fields(*read_click(batch[start]))
        except ClickRecordError:
            refused += 1
        start = aggregator.add_records(batch, start + 1)
    return refused


@_FUZZ
@given(st.lists(records(), max_size=40), st.sampled_from([None, 0, 1, 3, 50]))
def test_the_c_tally_counts_every_batch_as_the_reference(
    batch: list[bytes], recent_limit: int | None
) -> None:
    python = ClickAggregator(recent_limit=recent_limit)
    c = ClickAggregator(recent_limit=recent_limit)
    assert _counted_in_c(c, batch) == _counted_in_python(python, batch)
    assert (c.pending_clicks, c.oldest_ts_ms) == (
        python.pending_clicks,
        python.oldest_ts_ms,
    )
    # What is held till the flush (before deltas(), which cuts the recent
    # clicks to the limit), then what the flush makes of it. repr shows the
    # order of every dict's keys, which the stats keep.
    assert _tallies(c) == _tallies(python)
    assert repr(c.deltas()) == repr(python.deltas())


def _tallies(aggregator: ClickAggregator) -> str:
    held = []
    for code, t in aggregator._tallies.items():
        counts = (t.total, t.days, t.referrers, t.agents, t.visitors)
        held.append((code, t.first_ts_ms, t.last_ts_ms, counts, t.recent))
    return repr(held)


def test_the_c_tally_stops_at_what_it_cannot_read() -> None:
    good = encode_click("abc", 1_700_000_000_000, None, None)
    late = encode_click("abc", 2**63, None, None)  # no date names it
    batch = [good, b"\x02junk", good, late, bytearray(good), good]
    aggregator = ClickAggregator()
    stops = []
    start = aggregator.add_records(batch)  # type: ignore[arg-type]
    while start < len(batch):
        stops.append(start)
        start = aggregator.add_records(batch, start + 1)  # type: ignore[arg-type]
    assert stops == [1, 3, 4]
    assert aggregator.pending_clicks == 3


def test_fields_that_share_a_cache_slot_are_told_apart() -> None:
    # The C reader keeps the text of recent fields in slots picked from their
    # length and three 8-byte words (at the start, the middle and the end):
    # these agents differ only outside those words, so they share a slot.
    agents = ["M" * 40, "M" * 10 + "X" + "M" * 29, "M" * 10 + "\u00e9" + "M" * 28]
    batch = [
        encode_click("abc", 1_700_000_000_000 + i, None, agents[i % 3])
        for i in range(7)
    ]
    c = ClickAggregator()
    assert _counted_in_c(c, batch) == 0

    (tally,) = c._tallies.values()
    assert tally.agents == {agents[0]: 3, agents[1]: 2, agents[2]: 2}
