"""Short codes: random ones, custom aliases, and the redirect path's sieve.

Random codes are drawn character by character with `secrets.choice`, which
draws below 62 by rejection (no modulo bias) from the OS CSPRNG: with the
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
# Bound once: the redirect path calls this for every request.
_code_shape = re.compile(rf"[A-Za-z0-9_-]{{1,{CODE_MAX_LENGTH}}}").fullmatch


def new_code(length: int) -> str:
    """A random base62 code of `length` characters that is not reserved."""
    if not 1 <= length <= CODE_MAX_LENGTH:
        raise ValueError(
            f"code length {length} is out of range: expected 1..{CODE_MAX_LENGTH}"
        )
    while True:
        code = "".join(secrets.choice(BASE62) for _ in range(length))
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
