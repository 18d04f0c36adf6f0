"""What wrk is pointed at: the node under test and the two baselines.

A `Target` is a set of `Service`s answering on one loopback port. Its cost
is read from /proc over every process below the PIDs it started, so CPU
and memory include supervisors, actors and workers alike.

The node is started the way the Procfile starts it, one supervisor per
role, from a fresh data directory with a unique node name, so its shared
memory segments are its own. Its environment is the harness's with every
`HYPERLINKR_*` variable replaced, so nothing in the caller's shell (a
Redis URL, a port) leaks into the run. To read L1 hits and click-ring
drops, the harness attaches to the node's segments with the node's own
settings (`hyperlinkr.node.open_table`), which gives exactly the layout
the node created; attaching with any other size is a layout mismatch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import shm
from benchmarks.load.baselines.nginx import nginx_argv, render_config
from benchmarks.load.processes import (
    ProcessMemory,
    Service,
    StartFailed,
    cpu_seconds,
    free_port,
    memory_of,
    wait_for_status,
)
from hyperlinkr.config import Settings
from hyperlinkr.node import open_click_ring, open_table, segment_names

__all__ = ["Counters", "LoadNode", "Target", "start_nginx", "start_sanic"]

ROLES = ("persister", "analytics", "web")
WORKERS = 2
START_TIMEOUT_S = 30.0
# All of wrk's load comes from one address, 127.0.0.1, where real traffic
# comes from many clients each under the per-client limits. Limits this
# high keep the limiter on the request path, as in production, while never
# refusing the load (the node's defaults would answer 429 within a second).
RATE_LIMITS = {
    "HYPERLINKR_REDIRECT_RATE_PER_S": "1000000",
    "HYPERLINKR_REDIRECT_BURST": "1000000",
    "HYPERLINKR_CREATE_RATE_PER_MIN": "1000000",
    "HYPERLINKR_CREATE_BURST": "100000",
}
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Counters:
    """The node's shared counters at one moment."""

    l1_hits: int
    l1_misses: int
    click_pushes: int
    click_drops: int


class Target:
    """Services answering HTTP on 127.0.0.1:port."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.services: list[Service] = []

    def pids(self) -> list[int]:
        return [pid for service in self.services for pid in service.tree()]

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())

    def memory(self) -> list[ProcessMemory]:
        return memory_of(self.pids())

    def counters(self) -> Counters | None:
        return None

    def click_ring_fill(self) -> tuple[int, int] | None:
        """(records held, capacity) of the click ring now; None without one."""
        return None

    def stop(self) -> None:
        """Stop every service, last started first."""
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    def _start(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
    ) -> Service:
        service = Service(name, argv, log, env=env, cwd=REPO_ROOT)
        self.services.append(service)
        return service


def _node_env(
    data_dir: Path, name: str, port: int, l1_entries: int, lmdb_mb: int
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HYPERLINKR_") and k != "PORT"
    }
    env.update(
        HYPERLINKR_NODE_NAME=name,
        HYPERLINKR_DATA_DIR=str(data_dir),
        HYPERLINKR_HOST="127.0.0.1",
        HYPERLINKR_PORT=str(port),
        HYPERLINKR_WORKERS=str(WORKERS),
        HYPERLINKR_L1_CAPACITY_ENTRIES=str(l1_entries),
        HYPERLINKR_LMDB_MAP_SIZE_MB=str(lmdb_mb),
    )
    env.update(RATE_LIMITS)
    return env


class LoadNode(Target):
    """A Hyperlinkr node of its own, in workdir; `close()` leaves nothing."""

    def __init__(self, workdir: Path, l1_entries: int, lmdb_mb: int) -> None:
        super().__init__("node", free_port())
        self.node_name = f"load-{uuid.uuid4().hex[:12]}"
        self.workdir = workdir
        self.env = _node_env(
            workdir / "data", self.node_name, self.port, l1_entries, lmdb_mb
        )
        self.settings = Settings.from_env(self.env)
        self._table: shm.Table | None = None
        self._clicks: shm.Ring | None = None
        self._closed = False

    def start(self) -> LoadNode:
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        for role in ROLES:
            self._start(
                f"node {role}",
                [sys.executable, "-m", "hyperlinkr", role],
                self.workdir / f"node-{role}.log",
                self.env,
            )
        try:
            wait_for_status(
                self.port, "/healthz", (200,), START_TIMEOUT_S, *self.services
            )
            self._wait_for_actors()
        except StartFailed as exc:
            raise StartFailed(f"the node did not start: {exc}\n{self.logs()}") from exc
        return self

    def _wait_for_actors(self) -> None:
        # /healthz answers once the web role is up; shorten also needs the
        # persister, and clicks the analytics actor.
        for role, service in zip(ROLES, self.services, strict=True):
            if role == "web":
                continue
            if not service.wait_for_children(START_TIMEOUT_S):
                raise StartFailed(
                    f"{service.name} started no actor in {START_TIMEOUT_S:.0f} s; "
                    f"its log:\n{service.log_tail()}"
                )

    def counters(self) -> Counters:
        if self._table is None:
            self._table = open_table(self.settings)
        if self._clicks is None:
            self._clicks = open_click_ring(self.settings)
        table, clicks = self._table.statistics(), self._clicks.statistics()
        return Counters(table.hits, table.misses, clicks.pushes, clicks.drops)

    def click_ring_fill(self) -> tuple[int, int]:
        if self._clicks is None:
            self._clicks = open_click_ring(self.settings)
        clicks = self._clicks.statistics()
        return clicks.depth, clicks.capacity

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.log_tail()}" for s in self.services)

    def close(self) -> None:
        """Stop the node, detach, and unlink its shared-memory segments."""
        if self._closed:
            return
        self._closed = True
        for segment in (self._table, self._clicks):
            if segment is not None:
                segment.close()
        self._table = self._clicks = None
        self.stop()
        self._unlink_segments()

    def _unlink_segments(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "hyperlinkr", "shm-unlink"],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=30,
            check=False,
        )
        # Whatever the CLI did, nothing of this node may stay in /dev/shm.
        for name in segment_names(self.settings):
            shm.unlink(name)


def start_sanic(workdir: Path, links: Mapping[str, str]) -> Target:
    """The minimal Sanic app, WORKERS workers, redirecting from links."""
    target = Target("sanic", free_port())
    links_path = workdir / "sanic-links.json"
    links_path.write_text(json.dumps(dict(links)))
    argv = [
        sys.executable,
        "-m",
        "benchmarks.load.baselines.sanic_app",
        "--links",
        str(links_path),
        "--port",
        str(target.port),
        "--workers",
        str(WORKERS),
    ]
    service = target._start("sanic baseline", argv, workdir / "sanic.log")
    _wait_redirecting(target, next(iter(links)), service)
    return target


def start_nginx(nginx: str, workdir: Path, links: Mapping[str, str]) -> Target:
    """nginx with a map of links, 2 worker processes, in workdir/nginx."""
    target = Target("nginx", free_port())
    prefix = workdir / "nginx"
    prefix.mkdir()
    config = render_config(prefix, target.port, links)
    argv = nginx_argv(nginx, prefix, config)
    service = target._start("nginx baseline", argv, prefix / "stdout.log")
    _wait_redirecting(target, next(iter(links)), service)
    return target


def _wait_redirecting(target: Target, code: str, service: Service) -> None:
    try:
        wait_for_status(target.port, f"/{code}", (302,), START_TIMEOUT_S, service)
    except BaseException:
        target.stop()
        raise
