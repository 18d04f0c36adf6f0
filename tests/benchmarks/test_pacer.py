"""The load harness's open-loop generator, against a real server on loopback.

The server is a small threaded HTTP/1.1 responder in the test process. It
can stall everything at once (every response waits on one lock), which is
what tells an open-loop generator from a closed one: the requests due
during the stall must count the stall, even those it never sent then.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.load.pacer import (
    STALLS_MARKER,
    OpenLoop,
    PacerFailed,
    build_pacer,
    measure_stalls,
    run_pacer,
)

RATE_PER_S = 500.0
CONNECTIONS = 4
STALL_S = 0.3
STALL_AT = 200  # the request that holds everything up


class _Responder(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = self.request.recv(4096)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            method, path, _ = head.split(b" ", 2)
            fields = _fields(head)
            length = int(fields.get(b"content-length", b"0"))
            while len(buffer) < length:
                data = self.request.recv(4096)
                if not data:
                    return
                buffer += data
            sent, buffer = buffer[:length], buffer[length:]
            with self.server.lock:
                self.server.served += 1
                if self.server.served == STALL_AT:
                    time.sleep(STALL_S)
                status = b"404 Not Found" if path == b"/missing" else b"302 Found"
                body = b"gone" if path == b"/missing" else b""
                if method == b"POST":
                    self.server.posts.append((path, fields.get(b"content-type"), sent))
                    status, body = b"201 Created", b'{"code":"abc"}'
            self.request.sendall(
                b"HTTP/1.1 " + status + b"\r\nLocation: https://example.com/\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            if path == b"/closing":
                # Reset the connection at once (no lingering close): the
                # next request sent on it must not take the pacer down.
                self.request.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                return


def _fields(head: bytes) -> dict[bytes, bytes]:
    """The header fields of a request head, names in lower case."""
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    return fields


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Responder)
        self.lock = threading.Lock()
        self.served = 0
        self.posts: list[tuple[bytes, bytes | None, bytes]] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pacer(tmp_path_factory.mktemp("pacer"))


def _codes(directory: Path, *codes: str) -> Path:
    path = directory / "codes.txt"
    path.write_text("".join(f"{code}\n" for code in codes))
    return path


def test_every_due_request_is_answered_and_counted(
    server: _Server, binary: Path, tmp_path: Path
) -> None:
    loop = OpenLoop(binary, _codes(tmp_path, "a", "b", "c"))
    dump = tmp_path / "dump.txt"
    result, pacing = run_pacer(
        loop, server.port, RATE_PER_S, CONNECTIONS, 1.0, 0.2, dump=dump
    )
    assert pacing.due == 500
    assert result.requests == 500
    assert result.errors == 0
    assert pacing.unanswered == 0
    # The warm-up's 100 requests were sent too, and not measured.
    assert server.served == 600
    rows = [tuple(map(int, line.split())) for line in dump.read_text().splitlines()]
    assert len(rows) == 500
    # Due times follow the schedule: 2 ms apart, whatever the answers did.
    dues = sorted(due for due, _, _ in rows)
    assert dues[:3] == [0, 2_000_000, 4_000_000]
    assert dues[-1] == 499 * 2_000_000


def test_post_sends_each_line_as_a_json_body_in_turn(
    server: _Server, binary: Path, tmp_path: Path
) -> None:
    bodies = [json.dumps({"url": f"https://example.com/{i}"}) for i in range(3)]
    loop = OpenLoop(binary, _codes(tmp_path, *bodies), "/shorten", post=True)
    result, pacing = run_pacer(loop, server.port, RATE_PER_S, CONNECTIONS, 0.6, 0.1)
    assert (result.requests, result.errors, pacing.unanswered) == (300, 0, 0)
    assert result.sent == {"shorten": 300}
    # Every request, the warm-up's 50 too, was a POST of one line as JSON,
    # the lines in turn: 350 requests, so the first two lines went once more.
    assert {(path, kind) for path, kind, _ in server.posts} == {
        (b"/shorten", b"application/json")
    }
    sent = Counter(body.decode() for _, _, body in server.posts)
    assert sent == {bodies[0]: 117, bodies[1]: 117, bodies[2]: 116}


def test_a_stall_counts_against_every_request_due_during_it(
    server: _Server, binary: Path, tmp_path: Path
) -> None:
    loop = OpenLoop(binary, _codes(tmp_path, "a"))
    dump = tmp_path / "dump.txt"
    result, pacing = run_pacer(
        loop, server.port, RATE_PER_S, CONNECTIONS, 1.0, 0, dump=dump
    )
    rows = [tuple(map(int, line.split())) for line in dump.read_text().splitlines()]
    assert result.requests == len(rows) == 500
    stalled_ms = STALL_S * 1000
    # About STALL_S * RATE_PER_S requests fell due while the server stood
    # still; each waited, from its due time, for part of the stall ...
    waited = [latency for _, latency, _ in rows if latency > 0.3 * stalled_ms * 1e6]
    assert len(waited) >= 0.5 * STALL_S * RATE_PER_S
    assert result.max_ms >= 0.9 * stalled_ms
    assert result.p99_ms >= 0.5 * stalled_ms
    # ... but only those already sent, at most one per connection, waited
    # for it from their send: the others left when a connection came free.
    served_late = [s for _, _, s in rows if s > 0.3 * stalled_ms * 1e6]
    assert 1 <= len(served_late) <= CONNECTIONS
    assert pacing.service_p50_ms < 0.1 * stalled_ms
    assert pacing.late >= len(waited) - CONNECTIONS


def test_error_statuses_and_refused_connections_are_reported(
    server: _Server, binary: Path, tmp_path: Path
) -> None:
    loop = OpenLoop(binary, _codes(tmp_path, "a", "missing"))
    result, _ = run_pacer(loop, server.port, RATE_PER_S, CONNECTIONS, 0.2, 0)
    assert result.requests == 100
    assert result.status_errors == 50
    assert result.socket_errors == 0

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]  # bound, never listening
        with pytest.raises(PacerFailed, match="connect"):
            run_pacer(loop, closed_port, RATE_PER_S, CONNECTIONS, 0.2, 0)


def test_the_stall_probe_reports_a_core_taken_from_it(binary: Path) -> None:
    # SIGSTOP is what a hypervisor does to a vCPU, seen from inside: the
    # probe's clock jumps while it is runnable again only after SIGCONT.
    probe = subprocess.Popen(
        [str(binary), "--stalls", "1.0"], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.3)
        os.kill(probe.pid, signal.SIGSTOP)
        time.sleep(0.2)
        os.kill(probe.pid, signal.SIGCONT)
        output, _ = probe.communicate(timeout=30)
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    line = next(ln for ln in output.splitlines() if ln.startswith(STALLS_MARKER))
    assert '"longest_ms": ' in line
    longest_ms = float(line.split('"longest_ms": ')[1].rstrip("}"))
    assert 150 <= longest_ms < 1000


def test_stalls_are_measured_on_every_core_at_once(binary: Path) -> None:
    stalls = measure_stalls(binary, 0.2)
    assert stalls.cores == (os.cpu_count() or 1)
    assert stalls.seconds == 0.2
    assert 0 <= stalls.share < 1
    assert stalls.longest_ms <= stalls.stalled_ms or stalls.gaps == 0


def test_connections_the_target_closes_are_replaced(
    server: _Server, binary: Path, tmp_path: Path
) -> None:
    # One connection at 2,000/s: each request goes out right after the last
    # answer, while the reset that followed it may still be on its way.
    loop = OpenLoop(binary, _codes(tmp_path, "closing"))
    result, pacing = run_pacer(loop, server.port, 2000.0, 1, 0.5, 0)
    # Every request was answered on a new connection, or lost with one the
    # target had reset just as it was sent, and counted as such.
    assert pacing.due == 1000
    assert result.requests + result.socket_errors == 1000
    assert result.requests >= 250
