"""The Procfile under honcho: a node that starts, serves and stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from hyperlinkr.node import SEGMENT_SUFFIXES
from tests.e2e.nodes import free_port

REPO = Path(__file__).resolve().parents[2]


WAIT_S = 30


def test_ctrl_c_under_honcho_stops_every_role_with_rc_0(tmp_path: Path) -> None:
    port = free_port()
    honcho, log, name = _start_honcho(tmp_path, port)
    try:
        base = f"http://127.0.0.1:{port}"
        code = _shorten_when_up(base)
        assert httpx.get(f"{base}/{code}").status_code == 302
        os.killpg(honcho.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        honcho.wait(WAIT_S)
    finally:
        _stop(honcho, name)
    _assert_clean_stop(log.read_text())


@pytest.mark.parametrize(
    "moment",
    [
        "web worker 1 started",  # the worker process exists, Sanic not yet
        "Starting worker",  # Sanic is starting: listeners, signal handlers
    ],
)
def test_ctrl_c_while_the_web_workers_start_stops_them_too(
    tmp_path: Path, moment: str
) -> None:
    # Sanic itself loses a stop signal that lands while its after-start
    # listeners run (the worker then serves on past honcho's timeout and is
    # killed: rc=-9), as seen once in a full run on a loaded machine. Where
    # exactly the signal lands is up to the scheduler, so this exercises the
    # start-up window rather than pinning one moment of it.
    honcho, log, name = _start_honcho(tmp_path, free_port())
    try:
        # Once each supervisor has started its child it handles signals, so
        # only the web workers can be caught starting.
        wanted = ("persister actor started", "analytics actor started", moment)
        deadline = time.monotonic() + WAIT_S
        while not all(line in log.read_text() for line in wanted):
            assert time.monotonic() < deadline, log.read_text()
            assert honcho.poll() is None, log.read_text()
            time.sleep(0.005)
        os.killpg(honcho.pid, signal.SIGINT)
        honcho.wait(WAIT_S)
    finally:
        _stop(honcho, name)
    _assert_clean_stop(log.read_text())


def _start_honcho(
    tmp_path: Path, port: int
) -> tuple[subprocess.Popen[bytes], Path, str]:
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
    return honcho, log, name


def _stop(honcho: subprocess.Popen[bytes], name: str) -> None:
    if honcho.poll() is None:
        os.killpg(honcho.pid, signal.SIGKILL)
        honcho.wait()
    for suffix in SEGMENT_SUFFIXES:
        Path(f"/dev/shm/{name}-{suffix}").unlink(missing_ok=True)


def _assert_clean_stop(output: str) -> None:
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
