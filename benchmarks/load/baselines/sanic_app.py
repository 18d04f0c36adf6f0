"""The Sanic baseline: 302 with Location from a dict, and nothing else.

    python -m benchmarks.load.baselines.sanic_app --links links.json \
        --port 8001 --workers 2

`links.json` is one JSON object, code -> URL. Sanic's workers start with
the spawn method and build the app from `create_app` through an
`AppLoader`, so each worker loads the dict itself and nothing happens at
import time. SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from sanic import HTTPResponse, Request, Sanic
from sanic.worker.loader import AppLoader

__all__ = ["create_app", "main"]

APP_NAME = "hyperlinkr_load_baseline"
# Without a content type Sanic sends the header `content-type: None`.
_TEXT = "text/plain; charset=utf-8"


def create_app(links_path: str) -> Sanic[Any, Any]:
    links: dict[str, str] = json.loads(Path(links_path).read_text())
    app: Sanic[Any, Any] = Sanic(APP_NAME)

    async def redirect(request: Request, code: str) -> HTTPResponse:
        url = links.get(code)
        if url is None:
            return HTTPResponse(status=404, content_type=_TEXT)
        return HTTPResponse(status=302, headers={"location": url}, content_type=_TEXT)

    app.add_route(redirect, "/<code:str>", methods=["GET"], name="redirect")
    return app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", required=True, help="JSON file: code -> URL")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    loader = AppLoader(factory=partial(create_app, args.links))
    app = loader.load()
    app.prepare(
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        access_log=False,
        motd=False,
    )
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()
