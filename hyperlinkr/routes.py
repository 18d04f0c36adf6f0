"""The HTTP API's handlers: shorten, redirect, stats, health.

Handlers only translate between HTTP and the store facade; every refusal
is a `Problem`, rendered as problem+json by the app's error handler.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
from sanic import HTTPResponse, Request, Sanic

from hyperlinkr.clicks import encode_click
from hyperlinkr.codes import could_be_code, new_code
from hyperlinkr.links import Link
from hyperlinkr.node import CLICK_RECORD_BYTES
from hyperlinkr.problems import Problem
from hyperlinkr.requests import parse_json_object, parse_shorten
from hyperlinkr.store import CreateOutcome, StoreUnavailable

__all__ = ["register"]

JSON = "application/json"
# Browsers must come back to us for every click, or analytics undercount.
REDIRECT_CACHE_CONTROL = "private, no-store"
_RANDOM_CODE_ATTEMPTS = 5


def json_response(body: Any, status: int = 200) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(body), status=status, content_type=JSON)


def _iso(ts_ms: int | None) -> str | None:
    if ts_ms is None:
        return None
    return (
        datetime.fromtimestamp(ts_ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _not_found(code: str) -> Problem:
    shown = code if len(code) <= 40 else code[:40] + "..."
    return Problem(404, f"no link has the code {shown!r}")


async def shorten(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    fields = parse_json_object(request.content_type, request.body)
    wanted = parse_shorten(fields, ctx.policy)
    settings = ctx.settings
    attempts = 1 if wanted.alias else _RANDOM_CODE_ATTEMPTS
    for _ in range(attempts):
        link = Link(
            code=wanted.alias or new_code(settings.code_length),
            url=wanted.url,
            created_at_ms=int(time.time() * 1000),
            expires_at_ms=wanted.expires_at_ms,
            redirect_status=wanted.redirect_status or settings.default_redirect_status,
        )
        try:
            outcome = await ctx.store.create(link)
        except StoreUnavailable as exc:
            raise Problem(503, str(exc), headers={"retry-after": "1"}) from exc
        if outcome is CreateOutcome.CREATED:
            return json_response(_link_body(settings.public_base_url, link), 201)
    if wanted.alias:
        raise Problem(
            409,
            f"the alias {wanted.alias!r} is taken; choose another",
            slug="alias-taken",
        )
    raise Problem(503, "could not find a free code; try again", slug="no-free-code")


def _link_body(base_url: str, link: Link) -> dict[str, Any]:
    return {
        "code": link.code,
        "short_url": f"{base_url}/{link.code}",
        "url": link.url,
        "created_at": _iso(link.created_at_ms),
        "expires_at": _iso(link.expires_at_ms),
        "redirect_status": link.redirect_status,
    }


async def redirect(request: Request, code: str) -> HTTPResponse:
    ctx = request.app.ctx
    if not could_be_code(code):
        raise _not_found(code)
    entry = ctx.store.lookup(code)
    if entry is None or not entry.enabled:
        raise _not_found(code)
    now_ms = int(time.time() * 1000)
    if entry.is_expired(now_ms):
        raise Problem(410, f"the link {code!r} expired at {_iso(entry.expires_at_ms)}")
    if request.method == "GET":
        headers = request.headers
        record = encode_click(
            code,
            now_ms,
            headers.get("referer"),
            headers.get("user-agent"),
            CLICK_RECORD_BYTES,
        )
        ctx.node.clicks.push(record)  # a full ring counts a drop, never waits
    return HTTPResponse(
        b"",
        status=entry.redirect_status,
        headers={"location": entry.url, "cache-control": REDIRECT_CACHE_CONTROL},
        content_type="text/plain; charset=utf-8",
    )


async def stats(request: Request, code: str) -> HTTPResponse:
    ctx = request.app.ctx
    if not could_be_code(code):
        raise _not_found(code)
    link = ctx.store.get(code)
    if link is None:
        raise _not_found(code)
    body = ctx.stats.get(code)
    body["url"] = link.url
    body["created_at"] = _iso(link.created_at_ms)
    return json_response(body)


async def healthz(request: Request) -> HTTPResponse:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    checks: dict[str, str] = {}
    try:
        ctx.store.count()
        checks["lmdb"] = "ok"
    except OSError as exc:
        checks["lmdb"] = f"failed: {exc}"
    ready = all(value == "ok" for value in checks.values())
    return json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        200 if ready else 503,
    )


def register(app: Sanic[Any, Any]) -> None:
    app.add_route(shorten, "/shorten", methods=["POST"], name="shorten")
    app.add_route(healthz, "/healthz", methods=["GET"], name="healthz")
    app.add_route(readyz, "/readyz", methods=["GET"], name="readyz")
    app.add_route(stats, "/stats/<code:str>", methods=["GET"], name="stats")
    app.add_route(redirect, "/<code:str>", methods=["GET", "HEAD"], name="redirect")
