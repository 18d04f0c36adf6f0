"""What a web worker adds to its app to be watched: request timing, /metrics.

`install(app)` registers a request and a response middleware, both at the
outermost priority, that time every answer and record it with
`metrics.record_request`; error answers count too, because Sanic runs
response middleware for what its error handler renders, and for requests
that matched no route (labelled "unmatched"). The time runs from the
first request middleware to the last response middleware: Sanic's parsing
before and the socket write after are not in it.

`metrics.record_request` and `record_lookup` only tally in memory; the
app flushes the tally into the metric files every
`metrics.FLUSH_INTERVAL_S` on its loop (a timer, no task) and when the
server stops; `scrape.render` flushes before it reads the files.

`GET /metrics` renders the node's whole view (`hyperlinkr.scrape`). It runs
on the event loop: a scrape reads a few small files and shared counters,
a few milliseconds every scrape interval.
"""

from __future__ import annotations

import asyncio
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


class _Flusher:
    """Calls metrics.flush() every FLUSH_INTERVAL_S while the server runs."""

    def __init__(self) -> None:
        self._timer: asyncio.TimerHandle | None = None

    async def start(self, app: Sanic[Any, Any]) -> None:
        self._arm()

    async def stop(self, app: Sanic[Any, Any]) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        metrics.flush()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(metrics.FLUSH_INTERVAL_S, self._tick)

    def _tick(self) -> None:
        try:
            metrics.flush()
        finally:
            self._arm()


def install(app: Sanic[Any, Any]) -> None:
    """Time every request of `app` and serve GET /metrics from it."""
    app.register_middleware(_start_timer, "request", priority=_PRIORITY)
    app.register_middleware(_record, "response", priority=_PRIORITY)
    flusher = _Flusher()
    app.after_server_start(flusher.start)
    app.before_server_stop(flusher.stop)
    app.add_route(metrics_endpoint, "/metrics", methods=["GET"], name="metrics")
