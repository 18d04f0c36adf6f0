"""The API over HTTP/3: a real node, the h3 server beside it, aioquic as client.

The h3 process is started here the way its role runs it
(`python -m hyperlinkr.h3`), with the node's own environment, so it
attaches the node's shared memory and LMDB. Only processes started here
are signalled, by PID, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

pytest.importorskip("aioquic", reason="aioquic is a dependency of the h3 role")

from hyperlinkr.certs import CertPair, make_self_signed
from hyperlinkr.supervisor import ExitCode
from tests.e2e.conftest import MakeNode
from tests.e2e.h3client import REQUEST_TIMEOUT_S, Answer, H3Client, h3_session
from tests.e2e.nodes import RunningNode

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
FLUSH_WAIT_S = 5.0
JSON = {"content-type": "application/json"}
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
H3_MODULE = ("-m", "hyperlinkr.h3")


def _h3_with(change_app: str) -> tuple[str, str]:
    """The h3 process, with `change_app` run on its app before it serves."""
    lines = [
        "import sys, time",
        "import sanic",
        "import hyperlinkr.h3 as h3",
        "make_app = h3.create_app",
        "def changed_app(settings, name):",
        "    app = make_app(settings, name=name)",
        *(f"    {line}" for line in change_app.strip().splitlines()),
        "    return app",
        "h3.create_app = changed_app",
        "sys.exit(h3.main(sys.argv[1:]))",
    ]
    return ("-c", "\n".join(lines))


# A start that takes seconds, to signal the process mid-start.
SLOW_START = _h3_with("app.before_server_start(lambda app: time.sleep(2.0))")
# A route that tells what address the server saw the request come from.
PEER_ROUTE = _h3_with("""
async def peer(request):
    return sanic.json({"ip": request.ip, "port": request.port})
app.add_route(peer, "/_test/peer")
""")


@dataclass
class H3Server:
    """The h3 process beside a node: where it listens, its log, its PID."""

    node: RunningNode
    certs: CertPair
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def session(self) -> AbstractAsyncContextManager[H3Client]:
        return h3_session(self.port, self.certs.cert_file)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_tail(self) -> str:
        return self.log_text()[-4000:]

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)
            message = f"h3 did not stop in time:\n{self.log_tail()}"
            raise AssertionError(message) from exc

    def assert_stopped_cleanly(self, code: int) -> None:
        assert code == 0, self.log_tail()
        assert "Traceback" not in self.log_text()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_h3(
    node: RunningNode, certs: CertPair, program: Sequence[str] = H3_MODULE
) -> H3Server:
    port = free_udp_port()
    log = node.data_dir.parent / f"{node.name}-h3.log"
    argv = [sys.executable, *program, "--port", str(port)]
    argv += ["--cert", str(certs.cert_file), "--key", str(certs.key_file)]
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env=node.env, stdout=out, stderr=subprocess.STDOUT
        )
    return H3Server(node, certs, port, process, log)


async def _healthy(server: H3Server) -> bool:
    try:
        async with server.session() as client:
            return (await client.request("GET", "/healthz")).status == 200
    except (TimeoutError, ConnectionError):
        return False


def wait_ready(server: H3Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"h3 exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        if asyncio.run(_healthy(server)):
            return
        time.sleep(0.1)
    raise AssertionError(f"h3 did not answer in time:\n{server.log_tail()}")


def wait_for_log(server: H3Server, text: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while text not in server.log_text():
        if time.monotonic() > deadline or server.process.poll() is not None:
            raise AssertionError(f"no {text!r} in the log:\n{server.log_tail()}")
        time.sleep(0.02)


@pytest.fixture
def certs(tmp_path: Path) -> CertPair:
    return make_self_signed(tmp_path / "tls")


@pytest.fixture
def h3(make_node: MakeNode, certs: CertPair) -> Iterator[H3Server]:
    """A node with the h3 server beside it; the server must stop cleanly."""
    server = start_h3(make_node(), certs)
    try:
        wait_ready(server)
        yield server
    finally:
        code = server.stop()
    server.assert_stopped_cleanly(code)


async def _shorten_follow_and_count(server: H3Server) -> dict[str, Any]:
    url = "https://example.com/over/http3"
    async with server.session() as client:
        body = orjson.dumps({"url": url})
        created = await client.request("POST", "/shorten", body, JSON)
        assert created.status == 201, created.body
        code = created.json()["code"]

        ua = {"user-agent": CHROME}
        followed = await client.request("GET", f"/{code}", headers=ua)
        assert followed.status == 302
        assert followed.headers["location"] == url
        assert "no-store" in followed.headers["cache-control"]

        # The same link through HTTP/1.1 on the node; HEAD counts no click.
        head = httpx.head(server.node.url(f"/{code}"), timeout=REQUEST_TIMEOUT_S)
        assert (head.status_code, head.headers["location"]) == (302, url)

        return await _wait_for_clicks(client, code, 1)


async def _wait_for_clicks(client: H3Client, code: str, total: int) -> dict[str, Any]:
    deadline = time.monotonic() + FLUSH_WAIT_S
    while True:
        answer = await client.request("GET", f"/stats/{code}")
        assert answer.status == 200, answer.body
        body: dict[str, Any] = answer.json()
        if body["clicks"]["total"] >= total or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)


def test_shorten_redirect_and_stats_over_http3(h3: H3Server) -> None:
    stats = asyncio.run(_shorten_follow_and_count(h3))
    assert stats["clicks"] == {"total": 1, "human": 1, "bot": 0}
    assert stats["browsers"][0]["name"] == "Chrome"


def test_problems_over_http3_are_problem_json(h3: H3Server) -> None:
    async def ask() -> Answer:
        async with h3.session() as client:
            return await client.request("GET", "/stats/nosuchcode")

    answer = asyncio.run(ask())
    assert answer.status == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert "nosuchcode" in answer.json()["detail"]


def test_a_body_sent_after_its_headers_is_read_whole(h3: H3Server) -> None:
    """Sanic starts the handler on the head; the body must still be awaited."""
    url = "https://example.com/late/" + "b" * 1500

    async def shorten_late() -> Answer:
        async with h3.session() as client:
            body = orjson.dumps({"url": url})
            return await client.request(
                "POST", "/shorten", body, JSON, body_delay_s=0.3
            )

    created = asyncio.run(shorten_late())
    assert created.status == 201, created.body
    assert created.json()["url"] == url


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_h3_server_with_0(
    make_node: MakeNode, certs: CertPair, signum: int
) -> None:
    server = start_h3(make_node(), certs)
    try:
        wait_ready(server)
    finally:
        code = server.stop(signum)
    server.assert_stopped_cleanly(code)


def test_a_signal_during_start_still_stops_with_0(
    tmp_path: Path, certs: CertPair
) -> None:
    node = RunningNode(tmp_path / "data")  # never started: only its settings
    server = start_h3(node, certs, SLOW_START)
    try:
        wait_for_log(server, "serving HTTP/3")
    finally:
        code = server.stop(signal.SIGTERM)
        node.unlink_shm()
    server.assert_stopped_cleanly(code)
    assert "arrived while starting" in server.log_text()


def test_the_client_address_is_known_over_http3(
    tmp_path: Path, certs: CertPair
) -> None:
    """Per-client decisions (rate limits) need the QUIC peer's address."""
    node = RunningNode(tmp_path / "data")  # never started: only its settings
    server = start_h3(node, certs, PEER_ROUTE)

    async def ask() -> Answer:
        async with server.session() as client:
            return await client.request("GET", "/_test/peer")

    try:
        wait_ready(server)
        answer = asyncio.run(ask())
    finally:
        code = server.stop()
        node.unlink_shm()
    server.assert_stopped_cleanly(code)
    assert answer.status == 200, answer.body
    assert answer.json()["ip"] == "127.0.0.1"
    assert answer.json()["port"] > 0


def test_a_missing_certificate_is_a_configuration_error(tmp_path: Path) -> None:
    node = RunningNode(tmp_path / "data")  # never started: only its settings
    missing = tmp_path / "missing.pem"
    server = start_h3(node, CertPair(missing, missing))
    try:
        code = server.process.wait(STOP_TIMEOUT_S)
    finally:
        server.stop()
    assert code == ExitCode.CONFIG
    assert "does not exist" in server.log_text()
    assert "hyperlinkr.certs" in server.log_text()


def test_a_busy_udp_port_is_a_configuration_error(
    tmp_path: Path, certs: CertPair
) -> None:
    node = RunningNode(tmp_path / "data")  # never started: only its settings
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        argv = [sys.executable, *H3_MODULE, "--port", str(port)]
        argv += ["--cert", str(certs.cert_file), "--key", str(certs.key_file)]
        done = subprocess.run(
            argv, env=node.env, capture_output=True, timeout=STOP_TIMEOUT_S
        )
    assert done.returncode == ExitCode.CONFIG, done.stderr
    assert f"udp 127.0.0.1:{port}".encode() in done.stderr
    assert b"Traceback" not in done.stderr


def test_the_h3_role_serves_and_web_workers_advertise_it(
    make_node: MakeNode, certs: CertPair
) -> None:
    port = free_udp_port()
    node = make_node(
        h3_port=port, tls_cert_file=certs.cert_file, tls_key_file=certs.key_file
    )
    answer = httpx.get(node.url("/healthz"), timeout=REQUEST_TIMEOUT_S)
    assert answer.headers["alt-svc"] == f'h3=":{port}"; ma=86400'

    log = node.data_dir.parent / f"{node.name}-h3-role.log"
    with log.open("ab") as out:
        role = subprocess.Popen(
            [sys.executable, "-m", "hyperlinkr", "h3"],
            env=node.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = H3Server(node, certs, port, role, log)
    try:
        wait_ready(server)
        stats = asyncio.run(_shorten_follow_and_count(server))
    finally:
        code = server.stop()
    server.assert_stopped_cleanly(code)
    assert stats["clicks"]["total"] == 1
