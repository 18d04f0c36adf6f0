"""The click record: what a web worker tells the analytics actor per redirect.

One record is pushed to the click ring for every counted redirect, so
`encode_click` sits on the hot path: one buffer filled in C, with
truncation only when a field is actually too long. The analytics actor
decodes records off the hot path and must survive anything the ring hands
it, so `decode_click` checks every length and raises `ClickRecordError`
(a `ValueError`) instead of returning a half-read click. `read_click` is
the same read returning the fields as a tuple, without building a
`Click`.

`encode_click` runs the common case in C (`hyperlinkr._wire`), which
hands anything it is not sure of back to `encode_click_reference`; the
actor reads records in C as well (`ClickAggregator.add_records`), up to
one it is not sure of, which `read_click` then reads or refuses. The
Python stays the definition, and tests/hyperlinkr/test_wire.py holds the
two to the same records and counts.

Layout, little endian, version 1::

    offset  size  field
    0       1     layout version (1)
    1       8     ts_ms, u64, wall clock of the redirect
    9       1     flags: bit 0 referrer present, bit 1 user agent present,
                  bit 2 visitor hash present
    10      1     code length in bytes, u8
    11      1     referrer length in bytes, u8 (at most REFERRER_MAX_BYTES)
    12      2     user agent length in bytes, u16 (at most USER_AGENT_MAX_BYTES)
    14      8     visitor hash, u64, only when flag bit 2 is set
    ...           code, referrer, user agent: UTF-8, back to back

Trailing NUL bytes after the last field are ignored, so a ring that hands
back fixed-size slots decodes the same as one that keeps exact lengths.

The client address is never part of a click: no raw IP reaches the ring,
the actor or LMDB. The optional visitor hash is a keyed 64-bit digest of
address, user agent and day, made in the web worker, so that unique
visitors per day can be estimated (HyperLogLog) without anyone being able
to recover the address or follow a visitor from one day to the next.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hyperlinkr import _wire

__all__ = [
    "REFERRER_MAX_BYTES",
    "USER_AGENT_MAX_BYTES",
    "Click",
    "ClickFields",
    "ClickRecordError",
    "decode_click",
    "encode_click",
    "encode_click_reference",
    "read_click",
]

REFERRER_MAX_BYTES = 200
USER_AGENT_MAX_BYTES = 240

_VERSION = 1
_HEADER = struct.Struct("<BQBBBH")
_HAS_REFERRER = 0x01
_HAS_USER_AGENT = 0x02
_HAS_VISITOR = 0x04
_KNOWN_FLAGS = _HAS_REFERRER | _HAS_USER_AGENT | _HAS_VISITOR
_VISITOR = struct.Struct("<Q")
_HEADER_BYTES = _HEADER.size
_VISITOR_END = _HEADER_BYTES + _VISITOR.size
_read_header = _HEADER.unpack_from
_read_visitor = _VISITOR.unpack_from
_U8_MAX = 0xFF


# (code, ts_ms, referrer, user_agent, visitor): a Click's fields, in order.
ClickFields = tuple[str, int, str | None, str | None, int | None]


class ClickRecordError(ValueError):
    """A click record cannot be built or read."""


@dataclass(frozen=True, slots=True)
class Click:
    """One redirect as the analytics actor sees it."""

    code: str
    ts_ms: int
    referrer: str | None
    user_agent: str | None
    visitor: int | None = None


def _truncate_utf8(data: bytes, limit_bytes: int) -> bytes:
    """Cut `data` to at most `limit_bytes` without splitting a character."""
    if len(data) <= limit_bytes:
        return data
    end = max(limit_bytes, 0)
    # A continuation byte (10xxxxxx) at the cut means a character started
    # before it: back off to that character's first byte.
    while end > 0 and data[end] & 0xC0 == 0x80:
        end -= 1
    return data[:end]


def encode_click(
    code: str,
    ts_ms: int,
    referrer: str | None,
    user_agent: str | None,
    record_bytes: int = 512,
    visitor: int | None = None,
) -> bytes:
    """Build the ring record for one redirect, never longer than `record_bytes`.

    Raises `ClickRecordError` where `encode_click_reference` does.
    """
    record = _wire.encode_click(
        code, ts_ms, referrer, user_agent, record_bytes, visitor
    )
    if record is None:  # not the common case: the reference decides
        return encode_click_reference(
            code, ts_ms, referrer, user_agent, record_bytes, visitor
        )
    return record


def encode_click_reference(
    code: str,
    ts_ms: int,
    referrer: str | None,
    user_agent: str | None,
    record_bytes: int = 512,
    visitor: int | None = None,
) -> bytes:
    """`encode_click` in Python: the definition of the record.

    The referrer and user agent are truncated (on character boundaries) to
    their limits and then to whatever room the record has left.
    """
    code_raw = code.encode()
    room_bytes = record_bytes - _HEADER.size - len(code_raw)
    if len(code_raw) > _U8_MAX or room_bytes < 0:
        raise ClickRecordError(
            f"code {code!r} is {len(code_raw)} bytes; a {record_bytes}-byte "
            f"record holds codes up to {min(_U8_MAX, record_bytes - _HEADER.size)}"
            " bytes: raise the ring's record size or shorten the code"
        )

    flags = 0
    visitor_raw = b""
    if visitor is not None:
        flags |= _HAS_VISITOR
        visitor_raw = _VISITOR.pack(visitor & 0xFFFFFFFFFFFFFFFF)
        room_bytes -= _VISITOR.size
    referrer_raw = b""
    if referrer is not None:
        flags |= _HAS_REFERRER
        limit_bytes = min(REFERRER_MAX_BYTES, room_bytes)
        referrer_raw = _truncate_utf8(referrer.encode(errors="replace"), limit_bytes)
        room_bytes -= len(referrer_raw)
    agent_raw = b""
    if user_agent is not None:
        flags |= _HAS_USER_AGENT
        limit_bytes = min(USER_AGENT_MAX_BYTES, room_bytes)
        agent_raw = _truncate_utf8(user_agent.encode(errors="replace"), limit_bytes)

    try:
        header = _HEADER.pack(
            _VERSION, ts_ms, flags, len(code_raw), len(referrer_raw), len(agent_raw)
        )
    except struct.error as exc:
        raise ClickRecordError(
            f"ts_ms {ts_ms!r} does not fit an unsigned 64-bit field: {exc}"
        ) from exc
    return b"".join((header, visitor_raw, code_raw, referrer_raw, agent_raw))


def _header_error(record: bytes) -> ClickRecordError:
    """What is wrong with the header of `record`, which `read_click` refused."""
    if len(record) < _HEADER.size:
        return ClickRecordError(
            f"click record is {len(record)} bytes; expected at least "
            f"{_HEADER.size} (the header)"
        )
    fields: tuple[int, ...] = _HEADER.unpack_from(record)
    version, _ts_ms, flags, code_len, referrer_len, agent_len = fields
    if version != _VERSION:
        return ClickRecordError(
            f"click record layout version {version}; expected {_VERSION}"
        )
    if flags & ~_KNOWN_FLAGS:
        return ClickRecordError(f"click record has unknown flags {flags:#04x}")
    if (referrer_len and not flags & _HAS_REFERRER) or (
        agent_len and not flags & _HAS_USER_AGENT
    ):
        return ClickRecordError("click record has data for a field marked absent")
    if code_len == 0:
        return ClickRecordError("click record has an empty code")
    return ClickRecordError(
        f"click record field lengths {referrer_len}/{agent_len} exceed "
        f"{REFERRER_MAX_BYTES}/{USER_AGENT_MAX_BYTES}"
    )


def _body_error(record: bytes, end: int) -> ClickRecordError:
    """What is wrong with the length of `record`, whose fields end at `end`."""
    if len(record) < end:
        return ClickRecordError(
            f"click record is {len(record)} bytes; its header announces {end}"
        )
    return ClickRecordError(
        f"click record has {len(record) - end} bytes of trailing data; "
        "expected none or NUL padding"
    )


def read_click(record: bytes) -> ClickFields:
    """`decode_click` as a plain tuple, for the analytics actor's loop.

    The checks are the same; they are written as one test per part of the
    record, and only a record that fails one is looked at again to say why.
    """
    size = len(record)
    if size < _HEADER_BYTES:
        raise _header_error(record)
    version, ts_ms, flags, code_len, referrer_len, agent_len = _read_header(record)
    if (
        version != _VERSION
        or flags & ~_KNOWN_FLAGS
        or not code_len
        or referrer_len > (REFERRER_MAX_BYTES if flags & _HAS_REFERRER else 0)
        or agent_len > (USER_AGENT_MAX_BYTES if flags & _HAS_USER_AGENT else 0)
    ):
        raise _header_error(record)
    if flags & _HAS_VISITOR:
        if size < _VISITOR_END:
            raise ClickRecordError("click record is too short for its visitor hash")
        (visitor,) = _read_visitor(record, _HEADER_BYTES)
        start = _VISITOR_END
    else:
        visitor = None
        start = _HEADER_BYTES

    code_end = start + code_len
    referrer_end = code_end + referrer_len
    end = referrer_end + agent_len
    if size != end and (size < end or record.count(0, end) != size - end):
        raise _body_error(record, end)
    try:
        code = record[start:code_end].decode()
        referrer = (
            record[code_end:referrer_end].decode() if flags & _HAS_REFERRER else None
        )
        agent = record[referrer_end:end].decode() if flags & _HAS_USER_AGENT else None
    except UnicodeDecodeError as exc:
        raise ClickRecordError(f"click record is not valid UTF-8: {exc}") from exc
    return code, ts_ms, referrer, agent, visitor


def decode_click(record: bytes) -> Click:
    """Read a record built by `encode_click`; raise `ClickRecordError` if bad."""
    return Click(*read_click(record))
