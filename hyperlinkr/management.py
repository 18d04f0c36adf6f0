"""The management API: read, change, delete and bulk-create links.

Every route needs an API key: `links:manage` to read, change or delete,
`links:create` for bulk creation. Changes and deletes are durable before
the answer, like creates, and the persister drops the old L1 entry before
it acknowledges, so every worker answers with the new state at once.
"""

from __future__ import annotations

import io
from typing import Any

from sanic import HTTPResponse, Request, Sanic

from hyperlinkr.codes import could_be_code
from hyperlinkr.problems import Problem
from hyperlinkr.requests import parse_json_object, parse_patch, parse_shorten
from hyperlinkr.routes import json_response, not_found
from hyperlinkr.shortening import Answer, link_body, shorten_many
from hyperlinkr.store import StoreUnavailable

__all__ = ["MAX_BULK_LINKS", "register"]

MAX_BULK_LINKS = 100
_QR_FORMATS = {"svg": "image/svg+xml", "png": "image/png"}


def _known(request: Request, code: str) -> Any:
    if not could_be_code(code):
        raise not_found(code)
    link = request.app.ctx.store.get(code)
    if link is None:
        raise not_found(code)
    return link


async def get_link(request: Request, code: str) -> HTTPResponse:
    ctx = request.app.ctx
    ctx.access.require(request, "links:manage")
    return json_response(link_body(ctx.settings.public_base_url, _known(request, code)))


async def patch_link(request: Request, code: str) -> HTTPResponse:
    ctx = request.app.ctx
    ctx.access.require(request, "links:manage")
    _known(request, code)
    fields = parse_json_object(request.content_type, request.body)
    changes = parse_patch(fields, ctx.policy.current())
    try:
        link = await ctx.store.patch(code, changes)
    except StoreUnavailable as exc:
        raise Problem(503, str(exc), headers={"retry-after": "1"}) from exc
    if link is None:
        raise not_found(code)
    return json_response(link_body(ctx.settings.public_base_url, link))


async def delete_link(request: Request, code: str) -> HTTPResponse:
    ctx = request.app.ctx
    ctx.access.require(request, "links:manage")
    _known(request, code)
    try:
        await ctx.store.delete(code)
    except StoreUnavailable as exc:
        raise Problem(503, str(exc), headers={"retry-after": "1"}) from exc
    return HTTPResponse(status=204)


async def bulk_create(request: Request) -> HTTPResponse:
    """Up to MAX_BULK_LINKS links; one result per item, partial success."""
    ctx = request.app.ctx
    key = ctx.access.require(request, "links:create")
    body = parse_json_object(request.content_type, request.body)
    items = body.get("links")
    if set(body) != {"links"} or not isinstance(items, list):
        raise Problem(
            422,
            'expected {"links": [{"url": ...}, ...]}',
            slug="invalid-field",
            field="links",
        )
    if not 1 <= len(items) <= MAX_BULK_LINKS:
        raise Problem(
            422,
            f"{len(items)} links: send 1 to {MAX_BULK_LINKS} per request",
            slug="invalid-field",
            field="links",
        )
    results: list[Answer | None] = [None] * len(items)
    wanted, where = [], []
    policy = ctx.policy.current()
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise Problem(
                    422, f"links[{i}] must be an object", slug="invalid-field"
                )
            request_i = parse_shorten(item, policy)
            ctx.access.spend_create(request, key)
        except Problem as problem:
            results[i] = Answer(problem.status, problem.body())
            continue
        wanted.append(request_i)
        where.append(i)
    for i, answer in zip(
        where, await shorten_many(ctx.store, ctx.settings, wanted), strict=True
    ):
        results[i] = answer
    return json_response(
        {"results": [_result(answer) for answer in results if answer is not None]}
    )


def _result(answer: Answer) -> dict[str, Any]:
    if answer.status < 400:
        return {"status": answer.status, "link": answer.body}
    return {"status": answer.status, "problem": answer.body}


async def qr_code(request: Request, code: str) -> HTTPResponse:
    """The short URL as a QR code: SVG by default, PNG with ?format=png."""
    ctx = request.app.ctx
    link = _known(request, code)
    fmt = request.args.get("format", "svg")
    if fmt not in _QR_FORMATS:
        raise Problem(422, f"format {fmt[:20]!r}: expected svg or png", field="format")
    scale = _scale(request.args.get("scale", "4"))
    import segno  # here: a worker that draws no QR code keeps 0.5 MB

    qr = segno.make(f"{ctx.settings.public_base_url}/{link.code}", error="m")
    buffer = io.BytesIO()
    qr.save(buffer, kind=fmt, scale=scale)
    return HTTPResponse(
        buffer.getvalue(),
        content_type=_QR_FORMATS[fmt],
        headers={"cache-control": "public, max-age=86400"},
    )


def _scale(raw: str) -> int:
    if not raw.isdecimal() or not 1 <= int(raw) <= 40:
        raise Problem(422, f"scale {raw[:20]!r}: expected 1 to 40", field="scale")
    return int(raw)


def register(app: Sanic[Any, Any]) -> None:
    app.add_route(bulk_create, "/links/bulk", methods=["POST"], name="bulk_create")
    app.add_route(get_link, "/links/<code:str>", methods=["GET"], name="get_link")
    app.add_route(patch_link, "/links/<code:str>", methods=["PATCH"], name="patch_link")
    app.add_route(
        delete_link, "/links/<code:str>", methods=["DELETE"], name="delete_link"
    )
    app.add_route(qr_code, "/<code:str>/qr", methods=["GET"], name="qr_code")
