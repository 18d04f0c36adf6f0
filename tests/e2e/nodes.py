"""A real node for end-to-end tests: the CLI's role supervisors, started
as honcho would start them, on a free loopback port, with their own data
directory and shared-memory names. Only processes started here are ever
signalled, by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from hyperlinkr.node import SEGMENT_SUFFIXES

ROLES = ("persister", "analytics", "web")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            return [int(p) for p in file.read().split()]
    except FileNotFoundError:
        return []


class RunningNode:
    """One node; `start()`, use `url(...)`, `stop()` or `kill_all()`."""

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.data_dir = data_dir
        self.name = f"t{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update(
            HYPERLINKR_NODE_NAME=self.name,
            HYPERLINKR_DATA_DIR=str(data_dir),
            HYPERLINKR_HOST="127.0.0.1",
            HYPERLINKR_PORT=str(self.port),
            HYPERLINKR_WORKERS="2",
            HYPERLINKR_L1_CAPACITY_ENTRIES="20000",
            HYPERLINKR_LMDB_MAP_SIZE_MB="64",
            # Stats sooner than the default's second: tests wait for them.
            HYPERLINKR_FLUSH_INTERVAL_MS="200",
            # Tests that are about limits turn them on; the rest send bursts.
            HYPERLINKR_CREATE_RATE_PER_MIN="0",
            HYPERLINKR_REDIRECT_RATE_PER_S="0",
        )
        self.env.update(
            {f"HYPERLINKR_{k.upper()}": str(v) for k, v in settings.items()}
        )
        self.env.pop("PORT", None)
        self.supervisors: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.base_url = f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> RunningNode:
        for role in ROLES:
            log = self.data_dir.parent / f"{self.name}-{role}.log"
            self.logs[role] = log
            with log.open("ab") as out:
                self.supervisors[role] = subprocess.Popen(
                    [sys.executable, "-m", "hyperlinkr", role],
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive()
            if self._actors_running() and self._healthy():
                return
            time.sleep(0.05)
        raise AssertionError(f"node did not start in time; logs:\n{self.log_text()}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url("/healthz"), timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _actors_running(self) -> bool:
        return all(self.workers_of(role) for role in ("persister", "analytics"))

    def _check_alive(self) -> None:
        for role, proc in self.supervisors.items():
            if proc.poll() is not None:
                raise AssertionError(
                    f"{role} supervisor exited with {proc.returncode}; "
                    f"logs:\n{self.log_text()}"
                )

    def workers_of(self, role: str) -> list[int]:
        """PIDs of the children doing the work of `role`."""
        return children_of(self.supervisors[role].pid)

    def log_text(self) -> str:
        return "\n".join(
            f"--- {role}\n{path.read_text(errors='replace')[-4000:]}"
            for role, path in self.logs.items()
            if path.exists()
        )

    def stop(self) -> dict[str, int]:
        """SIGTERM every supervisor; their exit codes by role."""
        for proc in self.supervisors.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for role, proc in self.supervisors.items():
            try:
                codes[role] = proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[role] = proc.wait()
        return codes

    def kill_all(self) -> None:
        """kill -9 every process of the node, children first."""
        pids = [c for p in self.supervisors.values() for c in children_of(p.pid)]
        for pid in pids + [p.pid for p in self.supervisors.values()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.supervisors.values():
            proc.wait(STOP_TIMEOUT_S)
        _wait_gone(pids)

    def unlink_shm(self) -> None:
        for suffix in SEGMENT_SUFFIXES:
            path = Path(f"/dev/shm/{self.name}-{suffix}")
            path.unlink(missing_ok=True)


def _wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for pid in pids:
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            if _is_zombie(pid):
                break
            time.sleep(0.01)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
