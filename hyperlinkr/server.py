"""One web worker: a Sanic server in this process on an inherited socket.

The web supervisor binds one listening socket per worker, all on the
node's port with SO_REUSEPORT, and hands worker i socket i. The kernel
spreads new connections over the sockets by a hash of their addresses,
so each worker gets its share of them. On one shared socket the worker
that woke first took every connection waiting, and under wrk's 64
keep-alive connections one worker often served 70-75% of the requests
while the other idled (p99 of paced shortens 21 ms with such a split,
14 ms with an even one). The supervisor keeps every socket open, so a
worker that dies loses only the connections it was serving: new ones
hashed to its socket wait in that socket's queue until its replacement
accepts them, a second or two later.
Unless HYPERLINKR_FAST_PATH is off, the server speaks HTTP/1.1 through
`FastPathProtocol`, which answers plain L1-hit redirects and plain
shortens itself and hands everything else to Sanic (`hyperlinkr.fastpath`).

With HYPERLINKR_PIN_WORKERS on (the default), worker i runs only on the
i-th CPU the node may use (`worker_cpus`), when there are two workers or
more and at least as many CPUs. Left to the kernel, the workers of a
2-core machine moved between the cores and at times waited on the same
one while the other ran the analytics actor or the client: p99 of
redirects at half the maximum rate (36,000/s open loop) was 1.54-3.27 ms
(median 1.79) unpinned and 0.82-1.00 ms (median 0.94) pinned, in five
alternating rounds on one node. The analytics actor, the persister and
the supervisors are not pinned: they go wherever a core is free.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
from types import FrameType
from typing import TYPE_CHECKING, Any

from hyperlinkr.config import Settings

if TYPE_CHECKING:
    from sanic import Sanic

__all__ = ["bind_listeners", "serve_worker", "worker_cpus"]

_BACKLOG = 1024


def bind_listeners(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on one (host, port), inheritable by children.

    Port 0 binds the first to a free port and the rest to the same one. A
    port something else listens on is refused (OSError), even a group of
    SO_REUSEPORT sockets of this user that the new ones could join: a
    plain socket is bound to the port first, which fails if anything is
    there, and closed just before the group is bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]
    listeners: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(_BACKLOG)
            sock.set_inheritable(True)
    except BaseException:
        for sock in listeners:
            sock.close()
        raise
    return listeners


def worker_cpus(settings: Settings) -> list[int | None]:
    """The CPU each web worker is pinned to, by index; None: not pinned."""
    usable = sorted(os.sched_getaffinity(0))
    if not settings.pin_workers or not 2 <= settings.workers <= len(usable):
        return [None] * settings.workers
    cpus: list[int | None] = [*usable[: settings.workers]]
    return cpus


def serve_worker(settings: Settings, listen_fd: int, cpu: int | None = None) -> int:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    # Imported here: the web supervisor imports this module for
    # bind_listeners and has no use for Sanic (about 25 MB resident).
    from hyperlinkr.app import create_app
    from hyperlinkr.fastpath import FastPathProtocol

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
        protocol=FastPathProtocol if settings.fast_path else None,
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
