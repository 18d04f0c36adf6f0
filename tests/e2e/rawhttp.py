"""HTTP/1.1 over a raw socket, for comparing two servers byte for byte.

`exchange()` sends request bytes exactly as given (at once, or in slices
with pauses, as a slow or fragmenting client would), reads as many
answers as were asked for (framed by content-length, no body after a
HEAD) and then tells whether the server closed the connection. The raw
bytes read are the result: two servers agree when these are equal.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

READ_TIMEOUT_S = 10.0
# After the last expected answer: how long to wait for a close (or more).
SETTLE_S = 0.2


@dataclass(frozen=True, slots=True)
class Answer:
    raw: bytes  # every byte the server sent
    closed: bool  # the server closed the connection after them

    def statuses(self) -> list[int]:
        return [int(part[:3]) for part in self.raw.split(b"HTTP/1.1 ")[1:]]


def get(code: str, *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
    """A request head for /{code} with Host and these lines (latin-1 bytes)."""
    lines = [f"{method} /{code} HTTP/{version}", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def exchange(
    port: int,
    requests: Sequence[bytes],
    *,
    slice_bytes: int | None = None,
    pause_s: float = 0.0,
    receive_buffer_bytes: int | None = None,
    wait_before_read_s: float = 0.0,
) -> Answer:
    """Send `requests` on one connection; read one answer per request.

    The bytes are sent from a thread while this one reads, so a server
    that stops reading until its answers are read cannot deadlock us.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if receive_buffer_bytes is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(READ_TIMEOUT_S)
        sock.connect(("127.0.0.1", port))
        data = b"".join(requests)
        sender = threading.Thread(
            target=_send, args=(sock, data, slice_bytes, pause_s), daemon=True
        )
        sender.start()
        time.sleep(wait_before_read_s)
        answer = read_answers(sock, [_is_head(request) for request in requests])
        sender.join(READ_TIMEOUT_S)
        return answer


def round_trips(port: int, requests: Sequence[bytes]) -> Answer:
    """Each request sent only once the answer to the one before is in."""
    return batches(port, [[request] for request in requests])


def batches(port: int, batches: Sequence[Sequence[bytes]]) -> Answer:
    """Each batch pipelined, the next sent once its answers are in."""
    with socket.create_connection(("127.0.0.1", port), READ_TIMEOUT_S) as sock:
        raw = b""
        for batch in batches:
            sock.sendall(b"".join(batch))
            reader = _Reader(sock)
            for request in batch:
                if not reader.take_answer(_is_head(request)):
                    return Answer(raw + reader.buffer, True)
            raw += reader.buffer
        return Answer(raw, _closed(sock))


def _is_head(request: bytes) -> bool:
    return request.startswith(b"HEAD ")


def _send(
    sock: socket.socket, data: bytes, slice_bytes: int | None, pause_s: float
) -> None:
    step = slice_bytes or len(data)
    try:
        for at in range(0, len(data), step):
            sock.sendall(data[at : at + step])
            time.sleep(pause_s)
    except OSError:
        pass  # the server closed early (431, Connection: close); the reader sees it


def read_answers(sock: socket.socket, heads: Sequence[bool]) -> Answer:
    reader = _Reader(sock)
    for head_only in heads:
        if not reader.take_answer(head_only):
            return Answer(reader.buffer, True)
    return Answer(reader.buffer, _closed(sock))


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.taken = 0

    def take_answer(self, head_only: bool) -> bool:
        """Read one more whole answer; False if the server closed first."""
        while (head_end := self.buffer.find(b"\r\n\r\n", self.taken)) < 0:
            if not self._more():
                return False
        head = self.buffer[self.taken : head_end]
        end = head_end + 4 + (0 if head_only else _content_length(head))
        while len(self.buffer) < end:
            if not self._more():
                return False
        self.taken = end
        return True

    def _more(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return False
        self.buffer += data
        return bool(data)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _closed(sock: socket.socket) -> bool:
    """Whether the server closes now; more bytes than expected fail loudly."""
    sock.settimeout(SETTLE_S)
    try:
        extra = sock.recv(65536)
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(READ_TIMEOUT_S)
    if extra:
        raise AssertionError(f"the server sent more than was asked for: {extra!r}")
    return True
