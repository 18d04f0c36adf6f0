"""Answering a plain redirect from L1 exactly as `routes.redirect` would.

`Redirector` is the fast path's stand-in for everything Sanic runs for a
redirect: the handler (rate limit, L1 lookup, click push, response) and
the app's middleware around it. It stands in only for what it knows, and
`Redirector.refusal(app)` says what in an app it does not know: other
middleware, `http.*` signal handlers, the access log, a redirect route
that is not `routes.redirect` on `/<code>`. Then the fast path stays off.

What it knows, and does in place of:

- `routes.redirect`: the same checks in the same order as far as they
  matter (a positive, enabled, unexpired L1 entry with a redirect status;
  the limiter before the click), the same click record (with the visitor
  hash when Dragonfly made one), the same response bytes;
- `hyperlinkr.monitoring`: one `record_request` for the redirect route and
  status, timed from just after parsing to just before the write, and the
  `record_lookup("l1", "hit")` that `LinkStore.lookup` would have made
  (both in one call, `metrics.l1_redirect_recorder`);
- the Alt-Svc middleware of `create_app` when the h3 role is on: the same
  header, in the same place.

Anything it declines (an L1 miss, a negative entry, a disabled or
expired link, a query the link forwards, a refusal by the limiter) is
answered by Sanic, which then does its own lookup and recording, so
nothing is counted twice, with one exception: a request the limiter
refuses is refused twice, once here and once by `Access.spend_redirect`,
so the limiter's `limited` counter counts it twice.

Response bytes are cached per L1 entry bytes (see `hyperlinkr.fastpath`).
"""

from __future__ import annotations

import enum
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Final, NamedTuple

from sanic import Sanic

from hyperlinkr import app as app_module
from hyperlinkr import metrics, monitoring, routes
from hyperlinkr.access import client_ip
from hyperlinkr.clicks import encode_click
from hyperlinkr.fastshorten import Shortener
from hyperlinkr.http1 import REDIRECT_STATUSES, PlainRequest, redirect_bytes
from hyperlinkr.links import decode_l1
from hyperlinkr.node import CLICK_RECORD_BYTES

__all__ = ["FastPathStatistics", "Handoff", "Redirector"]

logger = logging.getLogger(__name__)

_CACHE_ENTRIES: Final = 4096
_REQUESTS_COUNT: Final = "requests_count"
_ALT_SVC_MIDDLEWARE: Final = "_advertise_http3.<locals>.add_alt_svc"


class Handoff(enum.IntEnum):
    """Why bytes went to Sanic instead of being answered by the fast path."""

    BUSY = 0  # Sanic owned the connection when they arrived
    INCOMPLETE = 1  # the head had not arrived in full
    TOO_LARGE = 2  # the head reached Sanic's header size limit
    NOT_PLAIN = 3  # not a plain GET/HEAD of a code over HTTP/1.1
    NOT_SERVABLE = 4  # a route, a miss, disabled, expired, a query to forward
    LIMITED = 5  # the rate limiter refused it
    BACKPRESSURE = 6  # the transport asked us to stop writing


@dataclass(frozen=True, slots=True)
class FastPathStatistics:
    """What one web worker's fast path did since it started."""

    enabled: bool
    fast: int  # redirects answered by the fast path
    shortens: int  # shortens answered by the fast path (hyperlinkr.fastshorten)
    sanic: int  # requests Sanic parsed (and answered)
    busy: int  # reads handed over because Sanic owned the connection
    incomplete: int
    too_large: int
    not_plain: int
    not_servable: int
    limited: int
    backpressure: int


class _Answer(NamedTuple):
    """What one L1 entry is answered with; made once per distinct entry."""

    status: int
    expires_at_ms: int  # 0: never
    forwards_query: bool
    keep_alive_bytes: bytes
    close_bytes: bytes


class Redirector:
    """One per web worker: what answering needs, and the counters."""

    def __init__(self, app: Sanic[Any, Any]) -> None:
        ctx, settings = app.ctx, app.ctx.settings
        self._get = ctx.node.table.get
        self._push = ctx.node.clicks.push
        self._visitors = getattr(ctx, "visitors", None)
        self._rate_per_s: int = settings.redirect_rate_per_s
        self._spend: Callable[[bytes], bool] | None = None
        if self._rate_per_s:
            # Access.spend_redirect's budget, so a client has one.
            self._spend = ctx.node.limiter.spender(
                self._rate_per_s, settings.redirect_burst
            )
        self._trusted = settings.trusted_proxies
        self._alt_svc = None
        if any(_is_alt_svc(func) for func in _middleware(app)):
            self._alt_svc = _alt_svc(settings.h3_port)
        self._routes = _static_segments(app)
        self._route_name = _redirect_route_name(app) or ""
        self._recorders: dict[int, Callable[[float], None]] = {}  # by status
        self._needs_ip = bool(self._rate_per_s or self._visitors is not None)
        self._answers: dict[bytes, _Answer | None] = {}  # None: not servable
        self.keep_alive = bool(app.config.KEEP_ALIVE)
        self.fast = 0
        self.handoffs = [0] * len(Handoff)
        # Given to every connection of this worker as Sanic's per-server
        # state, so Sanic's own request counter counts the whole worker.
        self.sanic_state: dict[str, int] = {_REQUESTS_COUNT: 0}
        refusal = self.refusal(app)
        self.enabled = refusal is None
        self.shortener = Shortener(app, self.enabled, self._alt_svc)
        if refusal is None:
            shortens = "on" if self.shortener.enabled else "off (not routes.shorten)"
            logger.info("fast path on: redirects on, shortens %s", shortens)
        else:
            logger.warning("fast path off: %s; Sanic answers all", refusal)

    @classmethod
    def of(cls, app: Sanic[Any, Any]) -> Redirector:
        """The worker's redirector, made on its first connection."""
        redirector = getattr(app.ctx, "fast_path", None)
        if not isinstance(redirector, Redirector):
            redirector = app.ctx.fast_path = cls(app)
        return redirector

    def answer(self, request: PlainRequest, peer: str) -> tuple[bytes, bool] | Handoff:
        """(response, keep alive) for a plain request, or why Sanic must answer."""
        started_s = perf_counter()
        now_ms = int(time.time() * 1000)
        answer = self._servable(request, now_ms)
        if answer is None:
            return Handoff.NOT_SERVABLE
        ip = self._client_ip(peer, request.forwarded_for) if self._needs_ip else ""
        if self._spend is not None and not self._spend(b"r" + ip.encode()):
            return Handoff.LIMITED  # Access.spend_redirect's key, too
        if not request.head_only:
            self._click(request, now_ms, ip)
        self.fast += 1
        record = self._recorders.get(answer.status)
        if record is None:
            record = self._recorders[answer.status] = metrics.l1_redirect_recorder(
                self._route_name, answer.status
            )
        record(perf_counter() - started_s)
        if request.keep_alive and self.keep_alive:
            return answer.keep_alive_bytes, True
        return answer.close_bytes, False

    def _servable(self, request: PlainRequest, now_ms: int) -> _Answer | None:
        """The answer to `request` if routes.redirect would redirect it."""
        code = request.code
        entry = self._get(code)
        if not entry or code in self._routes:
            return None  # a miss, a negative entry, or a route of its own
        if entry in self._answers:
            answer = self._answers[entry]
        else:
            answer = self._prepare(entry)
        if (
            answer is None
            or (answer.forwards_query and request.has_query)
            or (answer.expires_at_ms and now_ms >= answer.expires_at_ms)
        ):
            return None
        return answer

    def _client_ip(self, peer: str, forwarded_for: str | None) -> str:
        # What Access.client_ip says for the same peer and header.
        return client_ip(peer, forwarded_for, self._trusted) if self._trusted else peer

    def _click(self, request: PlainRequest, now_ms: int, ip: str) -> None:
        agent = request.user_agent
        visitor = None
        if self._visitors is not None:
            visitor = self._visitors(ip, agent, now_ms)
        record = encode_click(
            request.code.decode(),
            now_ms,
            request.referer,
            agent,
            CLICK_RECORD_BYTES,
            visitor,
        )
        self._push(record)  # a full ring counts a drop, never waits

    def _prepare(self, entry: bytes) -> _Answer | None:
        try:
            link = decode_l1(entry)
        except (ValueError, struct.error):
            link = None  # Sanic's path meets the same entry and fails alike
        answer = None
        if (
            link is not None
            and link.enabled
            and link.redirect_status in REDIRECT_STATUSES
        ):
            status, url = link.redirect_status, link.url
            answer = _Answer(
                status,
                link.expires_at_ms or 0,
                link.forward_query,
                redirect_bytes(status, url, True, self._alt_svc),
                redirect_bytes(status, url, False, self._alt_svc),
            )
        if len(self._answers) >= _CACHE_ENTRIES:
            self._answers.clear()
        self._answers[entry] = answer
        return answer

    def statistics(self) -> FastPathStatistics:
        counts = self.handoffs
        return FastPathStatistics(
            self.enabled,
            self.fast,
            self.shortener.count,
            self.sanic_state[_REQUESTS_COUNT],
            *(counts[reason] for reason in Handoff),
        )

    @staticmethod
    def refusal(app: Sanic[Any, Any]) -> str | None:
        """Why the fast path cannot stand in for Sanic in `app`, if it cannot."""
        if app.config.ACCESS_LOG:
            return "the access log is on"
        unknown = [
            func
            for func in _middleware(app)
            if func not in _KNOWN_MIDDLEWARE and not _is_alt_svc(func)
        ]
        if unknown or app.named_request_middleware or app.named_response_middleware:
            return f"the app has middleware it does not know ({unknown})"
        if any(str(s.name).startswith("http.") for s in app.signal_router.routes):
            return "the app has http.* signal handlers"
        if _redirect_route_name(app) is None:
            return "the redirect route is not routes.redirect on /<code>"
        return None


_KNOWN_MIDDLEWARE = frozenset({monitoring._start_timer, monitoring._record})


def _middleware(app: Sanic[Any, Any]) -> list[object]:
    every = [*app.request_middleware, *app.response_middleware]
    return [getattr(middleware, "func", middleware) for middleware in every]


def _is_alt_svc(func: object) -> bool:
    return (
        getattr(func, "__module__", None) == app_module.__name__
        and getattr(func, "__qualname__", None) == _ALT_SVC_MIDDLEWARE
    )


def _alt_svc(h3_port: int | None) -> str | None:
    """The Alt-Svc value create_app's middleware adds, if the h3 role is on."""
    if h3_port is None:
        return None
    return f'h3=":{h3_port}"; ma={app_module.ALT_SVC_MAX_AGE_S}'


def _static_segments(app: Sanic[Any, Any]) -> frozenset[bytes]:
    """First path segments that are routes of their own, never codes."""
    return frozenset(
        route.segments[0].encode()
        for route in app.router.routes
        if route.static and len(route.segments) == 1
    )


def _redirect_route_name(app: Sanic[Any, Any]) -> str | None:
    for route in app.router.routes:
        if (
            route.handler is routes.redirect
            and route.segments == ("<__dynamic__:str>",)
            and {"GET", "HEAD"} <= route.methods
        ):
            return str(route.name)
    return None
