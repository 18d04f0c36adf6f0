"""The Sanic application of a web worker.

`create_app(settings)` builds the app; each worker process opens the
node's shared segments and its own LMDB environment when its server
starts (handles never cross a process boundary) and closes them when it
stops. Every error answer, Sanic's own included, is problem+json.
"""

from __future__ import annotations

from types import SimpleNamespace

from sanic import HTTPResponse, Request, Sanic
from sanic.config import Config
from sanic.handlers import ErrorHandler

from hyperlinkr import management, openapi, routes
from hyperlinkr.access import Access
from hyperlinkr.apikeys import KeyRing
from hyperlinkr.blocklist import LivePolicy
from hyperlinkr.config import Settings
from hyperlinkr.node import Node
from hyperlinkr.problems import problem_for_exception
from hyperlinkr.stats import StatsReader
from hyperlinkr.store import LinkStore

__all__ = ["MAX_HEADER_BYTES", "create_app"]

# Request line plus headers; room for a long Referer, far below abuse.
MAX_HEADER_BYTES = 16384


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

    @app.before_server_start
    async def open_node(app: Sanic[Config, SimpleNamespace]) -> None:
        node = Node.open(settings)
        app.ctx.node = node
        app.ctx.store = LinkStore(node)
        app.ctx.stats = StatsReader(node.env)
        app.ctx.policy = LivePolicy(settings)
        app.ctx.access = Access(settings, KeyRing(settings.api_keys_file), node.limiter)

    @app.after_server_stop
    async def close_node(app: Sanic[Config, SimpleNamespace]) -> None:
        app.ctx.node.close()

    return app
