"""The Procfile under honcho: a node that starts, serves and stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from hyperlinkr.node import SEGMENT_SUFFIXES
from tests.e2e.nodes import free_port

REPO = Path(__file__).resolve().parents[2]


def test_ctrl_c_under_honcho_stops_every_role_with_rc_0(tmp_path: Path) -> None:
    port = free_port()
    name = f"hon{os.getpid()}"
    env = dict(os.environ)
    env.update(
        HYPERLINKR_NODE_NAME=name,
        HYPERLINKR_DATA_DIR=str(tmp_path / "data"),
        HYPERLINKR_PORT=str(port),
        HYPERLINKR_WORKERS="2",
        HYPERLINKR_LMDB_MAP_SIZE_MB="64",
    )
    log = tmp_path / "honcho.log"
    with log.open("wb") as out:
        honcho = subprocess.Popen(
            ["honcho", "-f", str(REPO / "Procfile"), "-d", str(tmp_path), "start"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        code = _shorten_when_up(base)
        assert httpx.get(f"{base}/{code}").status_code == 302
        os.killpg(honcho.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        honcho.wait(30)
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait()
        for suffix in SEGMENT_SUFFIXES:
            Path(f"/dev/shm/{name}-{suffix}").unlink(missing_ok=True)
    output = log.read_text()
    stopped = re.findall(r"(\w+)\.1 stopped \(rc=(-?\d+)\)", output)
    assert sorted(stopped) == [("analytics", "0"), ("persister", "0"), ("web", "0")], (
        output
    )
    assert "Traceback" not in output, output


def _shorten_when_up(base: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            made = httpx.post(f"{base}/shorten", json={"url": "https://example.com/h"})
            if made.status_code == 201:
                return str(made.json()["code"])
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the node under honcho never answered")
