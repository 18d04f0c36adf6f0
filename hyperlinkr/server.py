"""One web worker: a Sanic server in this process on an inherited socket.

The web supervisor binds the listening socket once and hands it to every
worker; they all accept from the one queue, so a worker that dies loses
only the connections it was serving, never the ones waiting in the queue.
Unless HYPERLINKR_FAST_PATH is off, the server speaks HTTP/1.1 through
`FastRedirectProtocol`, which answers plain L1-hit redirects itself and
hands everything else to Sanic (`hyperlinkr.fastpath`).
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
from types import FrameType
from typing import TYPE_CHECKING, Any

from hyperlinkr.config import Settings

if TYPE_CHECKING:
    from sanic import Sanic

__all__ = ["bind_listener", "serve_worker"]

_BACKLOG = 1024


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), inheritable by children."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(_BACKLOG)
    sock.set_inheritable(True)
    return sock


def serve_worker(settings: Settings, listen_fd: int) -> int:
    # Imported here: the web supervisor imports this module for
    # bind_listener and has no use for Sanic (about 25 MB resident).
    from hyperlinkr.app import create_app
    from hyperlinkr.fastpath import FastRedirectProtocol

    stops = _StopSignals()
    sock = socket.socket(fileno=listen_fd)
    app = create_app(settings)
    app.after_server_start(stops.take_over)
    app.after_server_start(_freeze_startup_objects)
    app.run(
        sock=sock,
        single_process=True,
        access_log=settings.access_log,
        motd=False,
        protocol=FastRedirectProtocol if settings.fast_path else None,
    )
    return 0


class _StopSignals:
    """A SIGINT or SIGTERM during start-up stops the worker once it serves.

    Sanic loses a stop signal that arrives while it starts: before it
    handles signals, SIGINT raises KeyboardInterrupt (a traceback) and
    SIGTERM kills the worker outright; once it does, its handler calls
    `loop.stop()` while the after-start listeners run in
    `run_until_complete`, which swallows that stop, and the worker then
    serves forever, past its supervisor's stop timeout. So this remembers a
    signal from the moment the worker starts, takes the signals over in the
    first after-start listener, and stops the app the Sanic way
    (`app.stop(terminate=False)`) only once it is serving, from inside
    `run_forever`, where the stop cannot be lost.

    The h3 role has its own (`hyperlinkr.h3._EarlyStop`): Sanic's HTTP/3
    path never marks the app as running, so "once it serves" cannot be
    told the same way there.
    """

    _RETRY_S = 0.01

    def __init__(self) -> None:
        self._requested = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._remember)

    def _remember(self, signum: int, frame: FrameType | None) -> None:
        self._requested = True

    async def take_over(self, app: Sanic[Any, Any]) -> None:
        loop = asyncio.get_running_loop()

        def stop_when_serving() -> None:
            if app.state.is_running:
                app.stop(terminate=False)
            else:
                loop.call_later(self._RETRY_S, stop_when_serving)

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop_when_serving)
        if self._requested:
            stop_when_serving()


async def _freeze_startup_objects(app: object) -> None:
    """Keep what the worker built at start out of every garbage collection.

    A web worker starts with about 60,000 objects (Sanic, the app, its
    routes, the modules) that live as long as it does. Left in the
    collector's generations, each young collection that promotes into the
    oldest one, and each full collection, walks them again: a full
    collection took 40-65 ms on the development VM, a pause every request
    in flight waits out. After `gc.freeze()` the collector ignores them.
    """
    gc.collect()
    gc.freeze()
