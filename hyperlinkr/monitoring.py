"""What a web worker adds to its app to be watched: request timing, /metrics.

`install(app)` registers a request and a response middleware, both at the
outermost priority, that time every answer and record it with
`metrics.record_request`; error answers count too, because Sanic runs
response middleware for what its error handler renders, and for requests
that matched no route (labelled "unmatched"). The time runs from the
first request middleware to the last response middleware: Sanic's parsing
before and the socket write after are not in it.

`GET /metrics` renders the node's whole view (`hyperlinkr.scrape`). It runs
on the event loop: a scrape reads a few small files and shared counters,
a few milliseconds every scrape interval.
"""

from __future__ import annotations

import time
from typing import Any

from sanic import HTTPResponse, Request, Sanic
from sanic.response import BaseHTTPResponse

from hyperlinkr import metrics, scrape

__all__ = ["install"]

# Outermost: the timer starts before, and stops after, every other middleware.
_PRIORITY = 1_000_000


async def _start_timer(request: Request) -> None:
    request.ctx.started_s = time.perf_counter()


async def _record(request: Request, response: BaseHTTPResponse) -> None:
    started_s = getattr(request.ctx, "started_s", None)
    if started_s is None:
        return  # answered before the middleware ran (a malformed request)
    route = request.route
    metrics.record_request(
        route.name if route is not None else "",
        response.status,
        time.perf_counter() - started_s,
    )


async def metrics_endpoint(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    body, content_type = scrape.render(ctx.node, ctx.store.count)
    return HTTPResponse(body, content_type=content_type)


def install(app: Sanic[Any, Any]) -> None:
    """Time every request of `app` and serve GET /metrics from it."""
    app.register_middleware(_start_timer, "request", priority=_PRIORITY)
    app.register_middleware(_record, "response", priority=_PRIORITY)
    app.add_route(metrics_endpoint, "/metrics", methods=["GET"], name="metrics")
