"""The public HTTP API: shorten, redirect, stats, health.

Handlers only translate between HTTP and the store facade; every refusal
is a `Problem`, rendered as problem+json by the app's error handler. The
management API (`/links`) is in `hyperlinkr.management`.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from sanic import HTTPResponse, Request, Sanic

from hyperlinkr.clicks import encode_click
from hyperlinkr.codes import could_be_code
from hyperlinkr.dragonfly import TierUnavailable
from hyperlinkr.health import readiness
from hyperlinkr.linkstore import Idempotency
from hyperlinkr.node import CLICK_RECORD_BYTES
from hyperlinkr.problems import Problem
from hyperlinkr.requests import parse_json_object, parse_shorten
from hyperlinkr.shortening import idempotency, iso, shorten_many
from hyperlinkr.stats import combine, public_view

__all__ = ["forward_query", "json_response", "not_found", "register"]

JSON = "application/json"
# Browsers must come back to us for every click, or analytics undercount.
REDIRECT_CACHE_CONTROL = "private, no-store"
MAX_VISITOR_DAYS = 90


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> HTTPResponse:
    return HTTPResponse(
        orjson.dumps(body), status=status, headers=headers, content_type=JSON
    )


def not_found(code: str) -> Problem:
    shown = code if len(code) <= 40 else code[:40] + "..."
    return Problem(404, f"no link has the code {shown!r}")


def forward_query(target: str, query: str) -> str:
    """`target` with the visitor's query string appended to its own."""
    if not query:
        return target
    parts = urlsplit(target)
    merged = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit(parts._replace(query=merged))


async def shorten(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    key = ctx.access.may_create(request)
    fields = parse_json_object(request.content_type, request.body)
    wanted = parse_shorten(fields, ctx.policy.current())
    rate = ctx.access.spend_create(request, key)
    principal = f"key:{key.key_id}" if key else f"ip:{ctx.access.client_ip(request)}"
    once = _idempotency(request, principal)
    [answer] = await shorten_many(ctx.store, ctx.settings, [wanted], once)
    if answer.status >= 400:
        raise Problem(answer.status, answer.body["detail"], slug=_slug(answer.body))
    headers = dict(rate)
    if answer.replayed:
        headers["idempotent-replayed"] = "true"
    return json_response(answer.body, answer.status, headers)


def _idempotency(request: Request, principal: str) -> Idempotency | None:
    return idempotency(request.headers.get("idempotency-key"), principal, request.body)


def _slug(body: dict[str, Any]) -> str:
    return str(body["type"]).rsplit("/", 1)[-1]


async def redirect(request: Request, code: str) -> HTTPResponse:
    ctx = request.app.ctx
    if not could_be_code(code):
        raise not_found(code)
    ip = ctx.access.client_ip(request)  # once: the limit and the visitor hash
    ctx.access.spend_redirect(ip)
    entry = await ctx.store.lookup(code)
    if entry is None or not entry.enabled:
        raise not_found(code)
    now_ms = int(time.time() * 1000)
    if entry.is_expired(now_ms):
        raise Problem(410, f"the link {code!r} expired at {iso(entry.expires_at_ms)}")
    if request.method == "GET":
        headers = request.headers
        agent = headers.get("user-agent")
        visitor = None
        if ctx.visitors is not None:
            visitor = ctx.visitors(ip, agent, now_ms)
        record = encode_click(
            code, now_ms, headers.get("referer"), agent, CLICK_RECORD_BYTES, visitor
        )
        ctx.node.clicks.push(record)  # a full ring counts a drop, never waits
    location = entry.url
    if entry.forward_query:
        location = forward_query(location, request.query_string)
    return HTTPResponse(
        b"",
        status=entry.redirect_status,
        headers={"location": location, "cache-control": REDIRECT_CACHE_CONTROL},
        content_type="text/plain; charset=utf-8",
    )


async def stats(request: Request, code: str) -> HTTPResponse:
    ctx = request.app.ctx
    ctx.access.may_read_stats(request)
    if not could_be_code(code):
        raise not_found(code)
    link = ctx.store.get(code)
    if link is None:
        raise not_found(code)
    body = await _stats_body(ctx, code)
    body["url"] = link.url
    body["created_at"] = iso(link.created_at_ms)
    return json_response(body)


async def _stats_body(ctx: Any, code: str) -> dict[str, Any]:
    """This node's stats, or, with Dragonfly, every node's together."""
    if not ctx.store.shared:
        return ctx.stats.get(code)  # type: ignore[no-any-return]
    try:
        combined = combine(await ctx.store.shared_stats(code))
        body = public_view(code, combined)
        days = [row["date"] for row in body["per_day"]][-MAX_VISITOR_DAYS:]
        visitors = await ctx.store.unique_visitors(code, days)
    except TierUnavailable as exc:
        raise Problem(
            503,
            f"stats of every node live in Dragonfly, which is unreachable ({exc}); "
            "retry soon",
            headers={"retry-after": "1"},
        ) from exc
    for row in body["per_day"]:
        row["unique_visitors"] = visitors.get(row["date"])
    return body


async def healthz(request: Request) -> HTTPResponse:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    ready, checks = await readiness(ctx.settings, ctx.store.count, ctx.tier)
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
