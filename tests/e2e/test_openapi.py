"""/openapi.json stays true to the app, and a live node survives schemathesis."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from hyperlinkr.apikeys import SCOPES, create_key
from hyperlinkr.app import create_app
from hyperlinkr.config import Settings
from hyperlinkr.openapi import document
from tests.e2e.conftest import MakeNode

FUZZ_TIMEOUT_S = 300


def app_routes() -> set[tuple[str, str]]:
    app = create_app(Settings.from_env({}), name="openapi_check")
    found = set()
    for route in app.router.routes:
        path = "/" + re.sub(r"<(\w+)(:\w+)?>", r"{\1}", route.path).lstrip("/")
        for method in route.methods:
            if method != "OPTIONS":
                found.add((path, method.lower()))
    return found


def documented_routes() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, operations in document()["paths"].items()
        for method in operations
    }


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    assert app_routes() == documented_routes()


def test_the_document_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate

    validate(document())


def test_schemathesis_finds_no_server_error(
    make_node: MakeNode, tmp_path: Path
) -> None:
    data_dir = tmp_path / "fuzz"
    key = create_key(data_dir / "api-keys.json", "fuzz", frozenset(SCOPES))
    node = make_node(data_dir)
    for url in ("https://example.com/a", "https://example.org/b"):
        httpx.post(node.url("/shorten"), json={"url": url, "alias": url[-1] * 4})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            node.url("/openapi.json"),
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--phases",
            "examples,coverage,fuzzing",
            "--header",
            f"Authorization: Bearer {key}",
            "--request-timeout",
            "10",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=FUZZ_TIMEOUT_S,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"\d+ generated, (\d+) passed", result.stdout)
    assert passed is not None and int(passed.group(1)) >= 200, result.stdout[-3000:]
    assert " failed" not in result.stdout
    assert httpx.get(node.url("/aaaa")).status_code in (302, 404)
    assert "Traceback" not in node.log_text()
