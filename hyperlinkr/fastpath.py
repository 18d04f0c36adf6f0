"""The fast path: plain redirects and shortens answered inside Sanic's protocol.

Why
---
Sanic spends about 58 us of CPU on a request before and after our
handler: it builds a Request and a Header multidict, routes, runs the
handler as a task step, builds an HTTPResponse and sanitises its headers.
A redirect that is an L1 hit needs none of that: two regular-expression
passes over the head, one shared-table read, one ring push and one
write. `FastPathProtocol` is Sanic's own HTTP/1.1 protocol with
`data_received` taught to answer those requests itself, on the bytes as
they arrive, and to hand every other byte to Sanic untouched. Nothing
else about the worker changes. Plain POSTs of /shorten are taken the same
way and answered by the real handler without the pipeline around it
(`hyperlinkr.fastshorten`).

Who owns the byte stream
------------------------
A connection is one ordered stream of requests and must get one ordered
stream of answers. The invariant: at any moment exactly one of the two
paths owns the connection, and the fast path owns it only while Sanic is
parked at the top of its request loop (`Http.http1`): stage IDLE, the
per-request state reset (`http.request is None`), its wake-up event
clear, its receive buffer empty, and the transport accepting writes; or
before the connection's task has taken its first step, when Sanic has
read nothing yet and will park on the empty buffer. Then nothing of
Sanic's is in flight, so bytes written now cannot overtake an answer of
Sanic's. Any other state (a request in the handler, a response being
sent, an unread body being drained, the transport pushing back) means
Sanic owns it, and new bytes go to `HttpProtocol.data_received` as if
this class did not exist.

While the fast path owns the connection, `data_received` walks the
requests in the bytes it got, in order. Each complete, plain
(`hyperlinkr.http1.parse_plain`) request for a servable L1 entry is
answered at once. The first one that is not, whether incomplete, too
large, unusual, a miss or refused by the limiter, is handed to Sanic with
everything after it (`HttpProtocol.data_received`: append to its buffer,
wake its task), and Sanic owns the connection until it has answered all of
it and parks again. So pipelined requests are answered in order, a request
split over several reads is Sanic's, and a header block at or over
Sanic's limit (`Http.HEADER_MAX_SIZE`) reaches Sanic to be refused with
the usual 431. An answer to a client that asked to close (or to every
client, if the app has keep-alive off) closes the connection after the
write, as Sanic does; Sanic's task, parked in its receive, is cancelled
by `connection_lost` exactly as when a keep-alive client goes away.

What is servable, and what stays Sanic's
----------------------------------------
Servable means what `routes.redirect` would answer with a redirect: the
L1 entry is positive, enabled, not expired, has a redirect status, and
either does not forward the query or the request has none (merging a
query is left to `routes.forward_query`). Its first path segment must
not be a static route of the app (`/healthz` is a route, not a code). A
miss, a negative entry, a disabled or expired link: Sanic answers, which
also fills L1 for next time. HTTP/1.0 is not plain and goes to Sanic.

The response bytes are rebuilt from the L1 entry (`http1.redirect_bytes`)
and kept in a small per-worker cache keyed by the entry's bytes. The
entry is the only source of truth: a changed link is a new key, so the
cache can never serve a stale answer, and it is cleared when full.

Rate limits: when HYPERLINKR_REDIRECT_RATE_PER_S is above 0 the fast path
spends from the same node-wide limiter, with the same key as
`Access.spend_redirect` (b"r" + the client IP, the socket peer or, behind
a trusted proxy, `access.client_ip`'s pick from X-Forwarded-For), so a
client has one budget whichever path answers it. A refused request goes
to Sanic, which asks the limiter again and answers 429 with the usual
problem and headers. Falling back for every request when limits are on
was rejected: limits are on by default, so the fast path would be off in
every real deployment.

The fast path bypasses what Sanic runs around a handler. It stands in for
the parts of the app it knows (`hyperlinkr.redirector`: the metrics
middleware, the Alt-Svc middleware) and turns itself off for an app with
anything else (other middleware, `http.*` signals, the access log, a
redirect route that is not `routes.redirect`): it logs why once, and
every request goes to Sanic.

A shorten of ours in flight
--------------------------
A shorten awaits the persister's commit, so answering one does not end
within `data_received`. From the moment the fast path takes a plain POST
until its answer is written, the fast path owns the connection outright:
Sanic stays parked as it was, bytes that arrive meanwhile are held in
order (and reading is paused once they reach Sanic's own buffer limit,
REQUEST_BUFFER_SIZE), and after the write they are served, or handed to
Sanic, exactly as if they had just arrived. So a redirect sent behind a
shorten cannot overtake its answer. Sanic's checks that would misread
the parked stage are told: `close_if_idle` (graceful shutdown) treats
the connection as busy, and its answer is written before it closes;
`check_timeouts` times the shorten as a handler (RESPONSE_TIMEOUT), not
as an idle keep-alive. A client that leaves meanwhile still has its
link made (the write is in the ring); only the answer has nowhere to go.

Alternatives rejected: replacing Sanic's `Http` class (its methods are
rewritten at start by Sanic's touch-up machinery, and every request, not
only redirects, would then meet a parser of ours); holding a partial head
across reads (while it is held Sanic's stage is IDLE, so its request
timeout and graceful-shutdown wait would not apply to that client); a
separate redirect server on its own port (another process to supervise,
and clients would have to know); caching answers per code with
invalidation (a second truth to keep in step with L1).

`statistics(app)` counts redirects and shortens answered here, requests
Sanic parsed, and why bytes were handed over.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic as current_time
from typing import Any

from sanic import Sanic
from sanic.http import Http, Stage
from sanic.server.protocols.http_protocol import HttpProtocol

from hyperlinkr.http1 import PlainPost, parse_plain
from hyperlinkr.redirector import FastPathStatistics, Handoff, Redirector

__all__ = ["FastPathProtocol", "FastPathStatistics", "Handoff", "statistics"]

logger = logging.getLogger(__name__)

# How often a connection with a shorten in flight checks Sanic's timeouts.
_IN_FLIGHT_CHECK_S = 1.0


def statistics(app: Sanic[Any, Any]) -> FastPathStatistics | None:
    """This worker's fast path figures; None before its first connection."""
    redirector = getattr(app.ctx, "fast_path", None)
    return redirector.statistics() if isinstance(redirector, Redirector) else None


class FastPathProtocol(HttpProtocol):
    """Sanic's HTTP/1.1 protocol, answering plain redirects and shortens itself."""

    __slots__ = ("_answering", "_close_after", "_held", "_redirector", "_shortener")

    def __init__(self, *, app: Sanic[Any, Any], **kwargs: Any) -> None:
        redirector = Redirector.of(app)
        kwargs["state"] = redirector.sanic_state
        super().__init__(app=app, **kwargs)
        self._redirector = redirector
        self._shortener = redirector.shortener
        # While a shorten of ours is in flight: the bytes that came since.
        self._held: bytearray | None = None
        self._answering: asyncio.Task[None] | None = None
        self._close_after = False  # the server asked us to close when done

    def data_received(self, data: bytes) -> None:
        if self._held is not None:
            self._hold(data)
            return
        if not data or not self._fast_owns():
            if data:
                self._redirector.handoffs[Handoff.BUSY] += 1
            super().data_received(data)
            return
        self._time = current_time()
        start = self._serve(data)
        if 0 <= start < len(data):
            super().data_received(data[start:])

    def _fast_owns(self) -> bool:
        """True when Sanic is parked waiting for a new request (see above)."""
        if not hasattr(self, "_http"):
            # The connection's task has not taken its first step: Sanic has
            # read nothing and will park on an empty buffer when it does.
            parked = self._task is not None
        else:
            http = self._http
            parked = (
                http is not None
                and http.stage is Stage.IDLE
                and getattr(http, "request", False) is None
                and not self._data_received.is_set()
            )
        transport = self.transport
        return (
            parked
            and not self.recv_buffer
            and self._can_write.is_set()
            and transport is not None
            and not transport.is_closing()
            and self._redirector.enabled
        )

    def _serve(self, data: bytes) -> int:
        """Answer the requests at the front of `data`; where Sanic takes over.

        Returns the offset of the first byte left for Sanic (len(data) if
        none), or -1 when the connection was closed after an answer.
        """
        redirector = self._redirector
        limit = Http.HEADER_MAX_SIZE
        peer = self.conn_info.client_ip if self.conn_info else ""
        write = self.transport.write  # type: ignore[union-attr]
        start = 0
        while start < len(data):
            if not self._can_write.is_set():
                redirector.handoffs[Handoff.BACKPRESSURE] += 1
                return start
            if data.startswith(b"POST ", start):
                return self._shorten(data, start)
            request = parse_plain(data, start)
            # TODO: a head split over two reads goes to Sanic whole, which
            # costs Sanic's ~60 us for it and, with a pipelining client that
            # stays ahead of Sanic, for every request after it as well.
            if request is None or request.end - 4 - start >= limit:
                redirector.handoffs[_not_plain(data, start, limit)] += 1
                return start
            answer = redirector.answer(request, peer)
            if isinstance(answer, Handoff):
                redirector.handoffs[answer] += 1
                return start
            response, keep_alive = answer
            write(response)
            if not keep_alive:
                self.close()
                return -1
            start = request.end
        return start

    def _shorten(self, data: bytes, start: int) -> int:
        """Take the POST at data[start] if plain; where Sanic takes over."""
        post = self._shortener.parse(data, start)
        if post is None:
            reason = _not_plain(data, start, Http.HEADER_MAX_SIZE)
            self._redirector.handoffs[reason] += 1
            return start
        self._held = bytearray(data[post.end :])
        self._answering = self.loop.create_task(self._answer_post(post))
        return len(data)

    async def _answer_post(self, post: PlainPost) -> None:
        """Answer `post`, then go on with what came meanwhile."""
        try:
            response, keep_alive = await self._shortener.answer(
                post, self.transport, self.conn_info
            )
        except Exception:
            # The handler's own errors became answers; this is a fault of
            # ours, and there is nothing sane left to say on this connection.
            logger.exception("the fast path failed to answer a shorten")
            self._held = None
            self.close()
            return
        except BaseException:  # cancelled: the worker is going away
            self._held = None
            self.close()
            raise
        finally:
            self._answering = None
        held, self._held = self._held, None
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # the client went away; the link was made all the same
        transport.write(response)
        self._time = current_time()
        if not keep_alive or self._close_after:
            self.close()
            return
        transport.resume_reading()  # in case holding paused it
        if held:
            self.data_received(bytes(held))

    def _hold(self, data: bytes) -> None:
        """Keep bytes for after the answer, pausing a client that sends a lot."""
        self._time = current_time()
        held = self._held
        assert held is not None
        held += data
        transport = self.transport
        if len(held) >= self.app.config.REQUEST_BUFFER_SIZE and transport:
            transport.pause_reading()  # as Sanic does with its own buffer

    def close_if_idle(self) -> bool:
        """Sanic's, except that a connection with a shorten in flight is busy."""
        if self._held is not None:
            self._close_after = True
            return False
        return bool(super().close_if_idle())

    def check_timeouts(self) -> None:
        """Sanic's, with a shorten in flight timed as a handler, not as idle."""
        if self._held is not None and self._task:
            if current_time() - self._time <= self.response_timeout:
                self._callback_check_timeouts = self.loop.call_later(
                    _IN_FLIGHT_CHECK_S, self.check_timeouts
                )
                return
            self._task.cancel()  # Sanic's answer to a response timeout
            return
        super().check_timeouts()  # type: ignore[no-untyped-call]


def _not_plain(data: bytes, start: int, limit: int) -> Handoff:
    """Why the head at data[start] was not parsed as plain."""
    end = data.find(b"\r\n\r\n", start)
    if (len(data) if end < 0 else end) - start >= limit:
        return Handoff.TOO_LARGE  # Sanic refuses it with 431
    return Handoff.INCOMPLETE if end < 0 else Handoff.NOT_PLAIN
