"""A link, and its two byte forms: the durable record and the L1 entry.

The LMDB record is JSON (orjson) with one-letter keys and a version field,
so it stays readable with standard tools and can grow new optional fields.

The L1 entry is what the redirect hot path reads from shared memory, so it
is a fixed struct header followed by the URL, decoded with one
`unpack_from` and one UTF-8 decode:

    offset  size  field
    0       8     expires_at_ms, u64 little-endian; 0 means never
    8       2     redirect_status, u16
    10      2     flags, u16: bit 0 enabled, bit 1 forward_query
    12      n     url, UTF-8 (n = entry length - 12)

The code is not in the L1 entry: it is the table's key.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from hyperlinkr.errors import RecordError

__all__ = [
    "L1_HEADER_BYTES",
    "RECORD_VERSION",
    "L1Entry",
    "Link",
    "decode_l1",
    "decode_record",
    "encode_l1",
    "encode_record",
    "new_nonce",
]

RECORD_VERSION = 1

_L1_HEADER = struct.Struct("<QHH")
L1_HEADER_BYTES = _L1_HEADER.size
_FLAG_ENABLED = 1
_FLAG_FORWARD_QUERY = 2


def new_nonce() -> str:
    """A random token that lets a request recognise its own committed write."""
    return secrets.token_urlsafe(12)


@dataclass(frozen=True, slots=True)
class Link:
    """One short link. Times are Unix epoch milliseconds."""

    code: str
    url: str
    created_at_ms: int
    expires_at_ms: int | None
    redirect_status: int
    enabled: bool = True
    forward_query: bool = False
    nonce: str = field(default_factory=new_nonce)

    def is_expired(self, now_ms: int) -> bool:
        return self.expires_at_ms is not None and now_ms >= self.expires_at_ms


class L1Entry(NamedTuple):
    """What the redirect path needs about a link, decoded from the L1 table."""

    url: str
    redirect_status: int
    expires_at_ms: int | None
    enabled: bool
    forward_query: bool

    def is_expired(self, now_ms: int) -> bool:
        return self.expires_at_ms is not None and now_ms >= self.expires_at_ms


def encode_record(link: Link) -> bytes:
    """The LMDB value for `link`."""
    return orjson.dumps(
        {
            "v": RECORD_VERSION,
            "c": link.code,
            "u": link.url,
            "t": link.created_at_ms,
            "x": link.expires_at_ms,
            "s": link.redirect_status,
            "e": link.enabled,
            "q": link.forward_query,
            "n": link.nonce,
        }
    )


def decode_record(data: bytes | memoryview) -> Link:
    """The link stored as `data`; RecordError if it is corrupt or unknown."""
    try:
        fields = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"link record is not valid JSON: {exc}") from exc
    if not isinstance(fields, dict) or fields.get("v") != RECORD_VERSION:
        raise RecordError(
            f"link record has version {_version_of(fields)!r}; this build "
            f"reads version {RECORD_VERSION}: upgrade Hyperlinkr to read it"
        )
    try:
        return Link(
            code=fields["c"],
            url=fields["u"],
            created_at_ms=fields["t"],
            expires_at_ms=fields["x"],
            redirect_status=fields["s"],
            enabled=fields["e"],
            forward_query=fields["q"],
            nonce=fields["n"],
        )
    except KeyError as exc:
        raise RecordError(f"link record lacks the field {exc}") from exc


def _version_of(fields: object) -> object:
    return fields.get("v") if isinstance(fields, dict) else None


def encode_l1(link: Link) -> bytes:
    """The L1 table value for `link` (layout in the module docstring)."""
    flags = (_FLAG_ENABLED if link.enabled else 0) | (
        _FLAG_FORWARD_QUERY if link.forward_query else 0
    )
    header = _L1_HEADER.pack(link.expires_at_ms or 0, link.redirect_status, flags)
    return header + link.url.encode("utf-8")


def decode_l1(data: bytes | memoryview) -> L1Entry:
    """Decode an L1 value; the caller guarantees it came from `encode_l1`."""
    expires_at_ms, status, flags = _L1_HEADER.unpack_from(data)
    return L1Entry(
        str(data[L1_HEADER_BYTES:], "utf-8"),
        status,
        expires_at_ms or None,
        bool(flags & _FLAG_ENABLED),
        bool(flags & _FLAG_FORWARD_QUERY),
    )
