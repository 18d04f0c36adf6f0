"""Reading and validating the JSON body of `POST /shorten`.

Everything a client can get wrong is refused here with a `Problem` that
says which field and why, before anything touches a store: 415 for a body
that is not JSON, 400 for JSON that does not parse or is not an object,
422 for fields with wrong types or values (the URL policy's refusals
included, with the broken rule in `rule`). Unknown fields are refused too,
so a typo such as `"ttl"` for `"ttl_s"` does not silently create a link
that never expires.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime

import orjson

from hyperlinkr.codes import check_alias
from hyperlinkr.errors import InvalidCode, UrlRefused
from hyperlinkr.problems import Problem
from hyperlinkr.urlpolicy import UrlPolicy, check_url

__all__ = [
    "REDIRECT_STATUSES",
    "ShortenRequest",
    "parse_json_object",
    "parse_patch",
    "parse_shorten",
]

REDIRECT_STATUSES = (301, 302, 307, 308)
MAX_TTL_S = 100 * 365 * 86400
_FIELDS = frozenset(
    {"url", "alias", "ttl_s", "expires_at", "redirect_status", "forward_query", "reuse"}
)
_PATCH_FIELDS = frozenset(
    {"url", "ttl_s", "expires_at", "redirect_status", "enabled", "forward_query"}
)


@dataclass(frozen=True, slots=True)
class ShortenRequest:
    url: str
    alias: str | None
    expires_at_ms: int | None
    redirect_status: int | None
    forward_query: bool | None = None
    reuse: bool = False


def parse_json_object(content_type: str | None, body: bytes) -> dict[str, object]:
    """The body as a JSON object, or a Problem saying what is wrong with it."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise Problem(
            415,
            f"expected a JSON body with Content-Type: application/json, "
            f"got {media_type or 'no content type'!r}",
        )
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(
            400, f"the body is not valid JSON (UTF-8): {exc}", slug="malformed-json"
        ) from exc
    if not isinstance(value, dict):
        raise Problem(
            400,
            f'expected a JSON object such as {{"url": "https://..."}}, '
            f"got a JSON {type(value).__name__}",
            slug="malformed-json",
        )
    return value


def parse_shorten(
    fields: dict[str, object], policy: UrlPolicy, now_ms: int | None = None
) -> ShortenRequest:
    """Validate the fields of a shorten request."""
    _refuse_unknown(fields, _FIELDS)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return ShortenRequest(
        url=_url(fields, policy),
        alias=_alias(fields),
        expires_at_ms=_expiry(fields, now_ms),
        redirect_status=_redirect_status(fields),
        forward_query=_flag(fields, "forward_query"),
        reuse=bool(_flag(fields, "reuse")),
    )


def parse_patch(
    fields: dict[str, object], policy: UrlPolicy, now_ms: int | None = None
) -> dict[str, object]:
    """The changes a PATCH asks for, by the persister's wire field names.

    `"expires_at": null` removes the expiry; other fields may not be null.
    """
    _refuse_unknown(fields, _PATCH_FIELDS)
    if not fields:
        raise Problem(
            422,
            "nothing to change; send one or more of "
            + ", ".join(sorted(_PATCH_FIELDS)),
        )
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    changes: dict[str, object] = {}
    if "url" in fields:
        changes["u"] = _url(fields, policy)
    if "expires_at" in fields and fields["expires_at"] is None:
        if "ttl_s" in fields:
            raise _invalid("ttl_s", 'give "ttl_s" or "expires_at", not both')
        changes["x"] = None
    elif "ttl_s" in fields or "expires_at" in fields:
        changes["x"] = _expiry(fields, now_ms)
    for name, wire in (
        ("redirect_status", "s"),
        ("enabled", "e"),
        ("forward_query", "q"),
    ):
        if name not in fields:
            continue
        value = (
            _redirect_status(fields)
            if name == "redirect_status"
            else _flag(fields, name)
        )
        if value is None:
            raise _invalid(name, f'"{name}" may not be null')
        changes[wire] = value
    return changes


def _refuse_unknown(fields: dict[str, object], known: frozenset[str]) -> None:
    unknown = sorted(set(fields) - known)
    if unknown:
        raise _invalid(
            unknown[0],
            f"unknown field {unknown[0][:40]!r}; accepted fields are "
            + ", ".join(sorted(known)),
        )


def _flag(fields: dict[str, object], name: str) -> bool | None:
    raw = fields.get(name)
    if raw is None or isinstance(raw, bool):
        return raw
    raise _invalid(name, f'"{name}" must be true or false, got {_json_type(raw)}')


def _invalid(field: str, detail: str) -> Problem:
    return Problem(422, detail, slug="invalid-field", field=field)


def _url(fields: dict[str, object], policy: UrlPolicy) -> str:
    if "url" not in fields:
        raise _invalid("url", 'the field "url" is required')
    raw = fields["url"]
    if not isinstance(raw, str):
        raise _invalid("url", f'"url" must be a string, got {_json_type(raw)}')
    try:
        return check_url(raw, policy)
    except UrlRefused as exc:
        raise Problem(
            422, exc.detail, slug="url-refused", field="url", rule=exc.rule
        ) from exc


def _alias(fields: dict[str, object]) -> str | None:
    raw = fields.get("alias")
    if raw is None:
        return None
    try:
        return check_alias(raw)
    except InvalidCode as exc:
        raise _invalid("alias", exc.detail) from exc


def _expiry(fields: dict[str, object], now_ms: int) -> int | None:
    ttl_s, expires_at = fields.get("ttl_s"), fields.get("expires_at")
    if ttl_s is not None and expires_at is not None:
        raise _invalid("ttl_s", 'give "ttl_s" or "expires_at", not both')
    if ttl_s is not None:
        return now_ms + _ttl_ms(ttl_s)
    if expires_at is not None:
        return _expires_at_ms(expires_at, now_ms)
    return None


def _ttl_ms(ttl_s: object) -> int:
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float):
        raise _invalid("ttl_s", f'"ttl_s" must be a number, got {_json_type(ttl_s)}')
    if not math.isfinite(ttl_s) or not 1 <= ttl_s <= MAX_TTL_S:
        raise _invalid(
            "ttl_s", f'"ttl_s" is {ttl_s}; expected 1 to {MAX_TTL_S} seconds'
        )
    return int(ttl_s * 1000)


def _expires_at_ms(expires_at: object, now_ms: int) -> int:
    expected = 'an ISO 8601 time with a UTC offset, e.g. "2030-01-31T12:00:00Z"'
    if not isinstance(expires_at, str) or len(expires_at) > 64:
        raise _invalid("expires_at", f'"expires_at" must be {expected}')
    try:
        moment = datetime.fromisoformat(expires_at)
    except ValueError as exc:
        raise _invalid("expires_at", f'"expires_at" must be {expected}') from exc
    if moment.tzinfo is None:
        raise _invalid("expires_at", f'"expires_at" has no UTC offset; use {expected}')
    expires_ms = int(moment.timestamp() * 1000)
    if expires_ms <= now_ms:
        raise _invalid("expires_at", f'"expires_at" {expires_at!r} is in the past')
    if expires_ms > now_ms + MAX_TTL_S * 1000:
        raise _invalid("expires_at", f'"expires_at" {expires_at!r} is too far ahead')
    return expires_ms


def _redirect_status(fields: dict[str, object]) -> int | None:
    raw = fields.get("redirect_status")
    if raw is None:
        return None
    if isinstance(raw, bool) or raw not in REDIRECT_STATUSES:
        raise _invalid(
            "redirect_status",
            f'"redirect_status" is {orjson.dumps(raw).decode()[:40]}; '
            "expected 301, 302, 307 or 308",
        )
    return int(raw)


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")
