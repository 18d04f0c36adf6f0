"""The exceptions Hyperlinkr raises on purpose.

Every error the package raises deliberately belongs to one tree, so callers
can catch "anything Hyperlinkr refused" with one clause, and each class also
subclasses the builtin it refines, so generic code that catches `ValueError`
keeps working:

    HyperlinkrError(Exception)
     +-- ConfigError(HyperlinkrError, ValueError)
     |     a setting (usually an environment variable) has a bad value
     +-- UrlRefused(HyperlinkrError, ValueError)
     |     a URL offered for shortening breaks the URL policy; `rule` names
     |     the rule (machine-readable), `detail` explains it to a person
     +-- InvalidCode(HyperlinkrError, ValueError)
     |     a short code or custom alias is malformed or reserved
     +-- RecordError(HyperlinkrError, ValueError)
     |     stored or wire bytes (an LMDB record, a ring message) cannot be
     |     decoded (corrupt, incompatible version) or a value is too big to
     |     be encoded into its fixed-size slot
     +-- StoreError(HyperlinkrError, OSError)
           the durable store failed (LMDB map full, disk error, ...)

Foreign exceptions (lmdb, idna, ...) are translated at the boundary with
`raise X(...) from exc`, never leaked as they are.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "HyperlinkrError",
    "InvalidCode",
    "RecordError",
    "StoreError",
    "UrlRefused",
]


class HyperlinkrError(Exception):
    """Base class of every error Hyperlinkr raises deliberately."""


class ConfigError(HyperlinkrError, ValueError):
    """A setting has a value the service cannot run with."""


class UrlRefused(HyperlinkrError, ValueError):
    """A URL breaks the URL policy.

    `rule` is a short, stable machine name ("scheme", "length",
    "control-chars", "host-required", "credentials", "port", "private-host",
    "own-host", "blocklist", "shortener-host", "invalid") suitable for an API
    response; `detail` is the human explanation.
    """

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"URL refused ({rule}): {detail}")
        self.rule = rule
        self.detail = detail

    def __reduce__(self) -> tuple[type[UrlRefused], tuple[str, str]]:
        # Keeps the exception picklable across process boundaries.
        return (type(self), (self.rule, self.detail))


class InvalidCode(HyperlinkrError, ValueError):
    """A short code or custom alias is malformed or reserved."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __reduce__(self) -> tuple[type[InvalidCode], tuple[str]]:
        return (type(self), (self.detail,))


class RecordError(HyperlinkrError, ValueError):
    """Bytes from a store or a ring cannot be decoded into a value."""


class StoreError(HyperlinkrError, OSError):
    """The durable store (LMDB) failed to read or commit."""
