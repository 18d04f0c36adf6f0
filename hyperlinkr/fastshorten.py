"""Answering a plain POST /shorten with the real handler, past Sanic's pipeline.

Why
---
A shorten cost a web worker 230-285 us of CPU at 5,000/s, and about half
of that was Sanic around the handler: parsing the head into a Request,
routing, the handler's task, reading the body through `receive_body`,
two middleware passes, and rendering the response. The fast path's
protocol (`hyperlinkr.fastpath`) hands a complete, plain POST of
/shorten (`http1.parse_post`) to `Shortener.answer` instead, which makes
the same Sanic `Request` Sanic would have made (same headers, head, body
and connection info), awaits `routes.shorten` itself on it, and renders
what it returns, or what the app's error handler makes of what it
raises, with `http1.response_bytes`. The handler is not a copy: it is the
one function Sanic calls, so validation, keys, limits, idempotency and
durability are the same code on both paths, and
tests/e2e/test_fastpath.py compares the bytes of both answers.

What it stands in for, besides the parse and the write, is what
`Redirector` stands in for: the metrics middleware (one `record_request`
for the shorten route and status, timed from before the handler to after
the error handler) and the Alt-Svc middleware. Where `Redirector.refusal`
keeps the fast path off, this stays off with it, and so it does when the
app's POST /shorten is not `routes.shorten`.

Unlike a redirect, a shorten waits (for the persister's group commit), so
the protocol owns the connection for the whole await: bytes that arrive
meanwhile are held, not given to Sanic, and are served, or handed over,
in order once the answer is written (see `hyperlinkr.fastpath`).
"""

from __future__ import annotations

from inspect import isawaitable
from time import perf_counter
from typing import Any

from sanic import HTTPResponse, Request, Sanic
from sanic.compat import Header
from sanic.http import Http

from hyperlinkr import metrics, routes
from hyperlinkr.http1 import PlainPost, parse_post, response_bytes

__all__ = ["Shortener"]

_PATH = b"/shorten"


class Shortener:
    """One per web worker: answers plain shortens; counts them."""

    def __init__(self, app: Sanic[Any, Any], enabled: bool, alt_svc: str | None):
        self._app = app
        route_name = _shorten_route_name(app)
        self._route_name = route_name or ""
        self.enabled = enabled and route_name is not None
        self._request_class: type[Request] = app.request_class or Request
        self._max_body = int(app.config.REQUEST_MAX_SIZE)
        self._alt_svc = alt_svc
        self._keep_alive = bool(app.config.KEEP_ALIVE)
        self.count = 0

    def parse(self, data: bytes, start: int) -> PlainPost | None:
        """The plain POST /shorten at data[start], if the fast path takes it."""
        if not self.enabled:
            return None
        return parse_post(data, start, _PATH, Http.HEADER_MAX_SIZE, self._max_body)

    async def answer(
        self, post: PlainPost, transport: Any, conn_info: Any
    ) -> tuple[bytes, bool]:
        """(response, keep alive): what Sanic would have sent for `post`.

        `transport` and `conn_info` are the connection's, as Sanic gives
        them to the Request it makes.
        """
        started_s = perf_counter()
        request = self._request_class(
            url_bytes=_PATH,
            headers=Header(post.headers),
            version="1.1",
            method="POST",
            transport=transport,
            app=self._app,
            head=post.head,
        )
        request.conn_info = conn_info
        request.body = post.body
        try:
            response = await routes.shorten(request)
        except Exception as exc:  # what Sanic's handle_exception gets
            response = await self._error_response(request, exc)
        if self._alt_svc is not None:
            response.headers["alt-svc"] = self._alt_svc
        metrics.record_request(
            self._route_name, response.status, perf_counter() - started_s
        )
        self.count += 1
        keep_alive = post.keep_alive and self._keep_alive
        return response_bytes(response, keep_alive), keep_alive

    async def _error_response(self, request: Request, exc: Exception) -> HTTPResponse:
        handler = self._app.error_handler
        response = handler.response(request, exc)  # type: ignore[no-untyped-call]
        if isawaitable(response):
            response = await response
        if not isinstance(response, HTTPResponse):
            raise TypeError(f"the error handler answered {response!r}")
        return response


def _shorten_route_name(app: Sanic[Any, Any]) -> str | None:
    for route in app.router.routes:
        if (
            route.handler is routes.shorten
            and route.segments == ("shorten",)
            and "POST" in route.methods
        ):
            return str(route.name)
    return None
