"""One web worker: a Sanic server in this process on an inherited socket.

The web supervisor binds the listening socket once and hands it to every
worker; they all accept from the one queue, so a worker that dies loses
only the connections it was serving, never the ones waiting in the queue.
Unless HYPERLINKR_FAST_PATH is off, the server speaks HTTP/1.1 through
`FastRedirectProtocol`, which answers plain L1-hit redirects itself and
hands everything else to Sanic (`hyperlinkr.fastpath`).
"""

from __future__ import annotations

import gc
import socket

from hyperlinkr.config import Settings

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

    sock = socket.socket(fileno=listen_fd)
    app = create_app(settings)
    app.after_server_start(_freeze_startup_objects)
    app.run(
        sock=sock,
        single_process=True,
        access_log=settings.access_log,
        motd=False,
        protocol=FastRedirectProtocol if settings.fast_path else None,
    )
    return 0


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
