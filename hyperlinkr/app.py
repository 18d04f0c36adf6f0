"""The Sanic application of a web worker.

`create_app(settings)` builds the app; each worker process opens the
node's shared segments and its own LMDB environment when its server
starts (handles never cross a process boundary) and closes them when it
stops. Every error answer, Sanic's own included, is problem+json. When
the h3 role is enabled, HTTP/1.1 answers carry `Alt-Svc`, which is how
clients learn that the same API is served over HTTP/3 on the UDP port.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from sanic import HTTPResponse, Request, Sanic
from sanic.config import Config
from sanic.handlers import ErrorHandler
from sanic.response import BaseHTTPResponse

from hyperlinkr import management, monitoring, openapi, routes
from hyperlinkr.access import Access
from hyperlinkr.apikeys import KeyRing
from hyperlinkr.blocklist import LivePolicy
from hyperlinkr.config import Settings
from hyperlinkr.dragonfly import async_client, tier_errors
from hyperlinkr.node import Node
from hyperlinkr.problems import problem_for_exception
from hyperlinkr.stats import StatsReader
from hyperlinkr.store import LinkStore
from hyperlinkr.visitors import VisitorHasher, shared_salt

__all__ = ["MAX_HEADER_BYTES", "create_app"]

logger = logging.getLogger(__name__)

# Request line plus headers; room for a long Referer, far below abuse.
MAX_HEADER_BYTES = 16384
# How long a client may remember that HTTP/3 is offered (RFC 7838 `ma`).
ALT_SVC_MAX_AGE_S = 86400


class ProblemErrorHandler(ErrorHandler):
    """Renders every uncaught exception as problem+json."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        self.log(request, exception)
        return problem_for_exception(request, exception)

    @staticmethod
    def log(request: Request, exception: Exception) -> None:
        # problem_for_exception logs what deserves it (server errors only).
        return None


def create_app(
    settings: Settings, name: str = "hyperlinkr"
) -> Sanic[Config, SimpleNamespace]:
    app: Sanic[Config, SimpleNamespace] = Sanic(
        name, error_handler=ProblemErrorHandler(), configure_logging=False
    )
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.config.REQUEST_MAX_HEADER_SIZE = MAX_HEADER_BYTES
    app.config.MOTD = False
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.NOISY_EXCEPTIONS = False
    app.ctx.settings = settings
    routes.register(app)
    management.register(app)
    openapi.register(app)
    if settings.h3_port is not None:
        _advertise_http3(app, settings.h3_port)
    monitoring.install(app)

    @app.before_server_start
    async def open_node(app: Sanic[Config, SimpleNamespace]) -> None:
        node = Node.open(settings)
        app.ctx.node = node
        app.ctx.tier = None
        app.ctx.visitors = None
        if settings.redis_url is not None:
            app.ctx.tier = async_client(settings.redis_url, settings.redis_cluster)
            app.ctx.visitors = await _visitor_hasher(app.ctx.tier)
        app.ctx.store = LinkStore(node, app.ctx.tier)
        app.ctx.stats = StatsReader(node.stats_env, node.env)
        app.ctx.policy = LivePolicy(settings)
        app.ctx.access = Access(settings, KeyRing(settings.api_keys_file), node.limiter)

    @app.after_server_stop
    async def close_node(app: Sanic[Config, SimpleNamespace]) -> None:
        if app.ctx.tier is not None:
            await app.ctx.tier.aclose()
        app.ctx.node.close()

    return app


async def _visitor_hasher(tier: Any) -> VisitorHasher | None:
    try:
        return VisitorHasher(await shared_salt(tier))
    except tier_errors() as exc:
        logger.warning(
            "Dragonfly is unreachable at start (%s); this worker counts no "
            "unique visitors until it restarts",
            exc,
        )
        return None


def _advertise_http3(app: Sanic[Config, SimpleNamespace], h3_port: int) -> None:
    # The h3 role is another process (Sanic serves HTTP/3 from one worker
    # only), and Sanic adds Alt-Svc only when both protocols share one
    # process, so the workers add it themselves.
    alt_svc = f'h3=":{h3_port}"; ma={ALT_SVC_MAX_AGE_S}'

    async def add_alt_svc(request: Request, response: BaseHTTPResponse) -> None:
        if request.version != "3":
            response.headers["alt-svc"] = alt_svc

    app.middleware(add_alt_svc, "response")
