"""Short codes: random ones, custom aliases, and the redirect path's sieve.

Random codes come from the OS CSPRNG, one `secrets.token_bytes` call a
code (a system call; drawing each character with `secrets.choice` made
one per character, 8 us a code). Each byte below 248 = 4 * 62 is mapped
to a character by its value modulo 62 and the others are dropped, so
every character is equally likely (no modulo bias); the draw asks for a
few bytes more than it needs and draws again in the rare case (well under
one in ten thousand, at any length) that too many were dropped. With the
default 7 characters there are 62**7 (about 3.5e12) codes, so walking the
code space to find links is hopeless. A collision with an existing code is
possible and is the persister's to detect (a create never overwrites).

Codes and aliases are case-sensitive. Reserved words are the first path
segments the HTTP API uses for itself; they are refused as aliases in any
letter case so that `/Stats` can never mean someone's link.
"""

from __future__ import annotations

import re
import secrets
import string

from hyperlinkr.errors import InvalidCode

__all__ = [
    "ALIAS_MAX_LENGTH",
    "ALIAS_MIN_LENGTH",
    "BASE62",
    "CODE_MAX_LENGTH",
    "RESERVED",
    "check_alias",
    "could_be_code",
    "new_code",
]

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
CODE_MAX_LENGTH = 32
ALIAS_MIN_LENGTH = 3
ALIAS_MAX_LENGTH = 32

RESERVED = frozenset(
    {
        "stats",
        "shorten",
        "metrics",
        "healthz",
        "readyz",
        "links",
        "openapi.json",
        "api",
        "admin",
        "static",
        "favicon.ico",
        "robots.txt",
        "docs",
        "qr",
        "login",
        "logout",
        ".well-known",
    }
)

_ALIAS_CHARS = re.compile(r"[A-Za-z0-9_-]+")
# Byte b < 248 becomes BASE62[b % 62]; bytes 248..255 are dropped.
_UNBIASED_BYTES = 4 * len(BASE62)
_TO_BASE62 = bytes(
    ord(BASE62[byte % len(BASE62)]) if byte < _UNBIASED_BYTES else 0
    for byte in range(256)
)
_DROPPED = bytes(range(_UNBIASED_BYTES, 256))
# Bound once: the redirect path calls this for every request.
_code_shape = re.compile(rf"[A-Za-z0-9_-]{{1,{CODE_MAX_LENGTH}}}").fullmatch


def new_code(length: int) -> str:
    """A random base62 code of `length` characters that is not reserved."""
    if not 1 <= length <= CODE_MAX_LENGTH:
        raise ValueError(
            f"code length {length} is out of range: expected 1..{CODE_MAX_LENGTH}"
        )
    draw = length + 8  # 8 spare bytes: P(fewer than `length` kept) < 1e-4
    while True:
        kept = secrets.token_bytes(draw).translate(_TO_BASE62, _DROPPED)
        if len(kept) < length:
            continue
        code = kept[:length].decode("ascii")
        if code.lower() not in RESERVED:
            return code


def check_alias(alias: object) -> str:
    """Return `alias` if it may be used as a custom code, else raise InvalidCode."""
    if not isinstance(alias, str):
        raise InvalidCode(f"an alias must be a string, got {type(alias).__name__}")
    if not ALIAS_MIN_LENGTH <= len(alias) <= ALIAS_MAX_LENGTH:
        raise InvalidCode(
            f"alias {alias[:40]!r} has {len(alias)} characters; expected "
            f"{ALIAS_MIN_LENGTH} to {ALIAS_MAX_LENGTH}"
        )
    if not alias.isascii() or not _ALIAS_CHARS.fullmatch(alias):
        raise InvalidCode(
            f"alias {alias!r} may only use letters A-Z a-z, digits, '_' and '-'"
        )
    if alias.lower() in RESERVED:
        raise InvalidCode(f"alias {alias!r} is reserved by the service; choose another")
    return alias


def could_be_code(text: str) -> bool:
    """True if `text` has the shape of a code (a cheap test before any lookup)."""
    return _code_shape(text) is not None
