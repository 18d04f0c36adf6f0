"""A web role for the fast-path tests and measurements.

    python -m tests.e2e.fastpath_server --port P [--workers N] [--sanic]

It is `hyperlinkr web` with one difference: each worker runs
`create_app(settings)` with `FastPathProtocol` (or, with `--sanic`,
Sanic's own protocol, for a like-for-like baseline). Settings come from
the `HYPERLINKR_*` variables, so started with a node's environment it
shares that node's L1, rings and LMDB and the node's actors count its
clicks. Workers accept on one inherited socket under the role's
supervisor, exactly as in production. `GET /_fastpath/statistics`
answers the serving worker's `FastPath.statistics()` as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

from sanic import HTTPResponse, Request

from hyperlinkr import metrics
from hyperlinkr.app import create_app
from hyperlinkr.config import Settings
from hyperlinkr.fastpath import FastPathProtocol, statistics
from hyperlinkr.routes import json_response
from hyperlinkr.server import bind_listeners
from hyperlinkr.supervisor import ChildSpec, Supervisor, die_with_parent

STATISTICS_PATH = "/_fastpath/statistics"


async def _statistics(request: Request) -> HTTPResponse:
    figures = statistics(request.app)
    return json_response(dataclasses.asdict(figures) if figures else None)


def serve(settings: Settings, listen_fd: int, fast: bool) -> int:
    die_with_parent(os.getppid())
    metrics.configure(settings)  # as `hyperlinkr _child web` does
    app = create_app(settings)
    app.add_route(_statistics, STATISTICS_PATH, methods=["GET"])
    extra: dict[str, Any] = {"protocol": FastPathProtocol} if fast else {}
    app.run(
        sock=socket.socket(fileno=listen_fd),
        single_process=True,
        access_log=settings.access_log,
        motd=False,
        **extra,
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--sanic", action="store_true", help="no fast path")
    parser.add_argument("--child-fd", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env(os.environ)
    if args.child_fd is not None:
        return serve(settings, args.child_fd, not args.sanic)
    listeners = bind_listeners("127.0.0.1", args.port, args.workers)
    specs = []
    for i, listener in enumerate(listeners):
        fd = listener.detach()
        argv_child = [sys.executable, "-m", "tests.e2e.fastpath_server"]
        argv_child += ["--port", str(args.port), "--child-fd", str(fd)]
        argv_child += ["--sanic"] if args.sanic else []
        specs.append(ChildSpec(f"web worker {i}", argv_child, (fd,)))
    return Supervisor("fastpath-web", specs).run()


if __name__ == "__main__":
    sys.exit(main())
