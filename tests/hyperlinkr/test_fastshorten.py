"""When the shorten fast path may stand in for Sanic, and when it may not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sanic import HTTPResponse, Request, Sanic

from hyperlinkr import routes
from hyperlinkr.app import create_app
from hyperlinkr.config import Settings
from hyperlinkr.fastshorten import Shortener
from hyperlinkr.redirector import Redirector

_names = iter(range(1_000_000))


def app_for(tmp_path: Path) -> Sanic[Any, Any]:
    settings = Settings.from_env({"HYPERLINKR_DATA_DIR": str(tmp_path)})
    return create_app(settings, f"fastshorten{next(_names)}")


def test_it_takes_over_for_the_apps_own_shorten_route(tmp_path: Path) -> None:
    app = app_for(tmp_path)
    assert Redirector.refusal(app) is None
    assert Shortener(app, True, None).enabled
    assert not Shortener(app, False, None).enabled  # off with the redirects


def test_unknown_middleware_keeps_the_whole_fast_path_off(tmp_path: Path) -> None:
    app = app_for(tmp_path)

    @app.middleware("request")
    async def tag(request: Request) -> None:
        request.ctx.tagged = True

    refusal = Redirector.refusal(app)
    assert refusal is not None and "middleware" in refusal


def test_another_handler_on_shorten_keeps_shortens_on_sanics_path() -> None:
    async def other(request: Request) -> HTTPResponse:
        return HTTPResponse(b"mine", status=200)

    theirs: Sanic[Any, Any] = Sanic(f"fastshorten{next(_names)}")
    theirs.add_route(other, "/shorten", methods=["POST"])
    assert not Shortener(theirs, True, None).enabled
    ours: Sanic[Any, Any] = Sanic(f"fastshorten{next(_names)}")
    ours.add_route(routes.shorten, "/shorten", methods=["POST"])
    assert Shortener(ours, True, None).enabled
