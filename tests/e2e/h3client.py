"""A small HTTP/3 client over aioquic, for end-to-end tests.

    async with h3_session(port, cafile) as client:
        answer = await client.request("GET", "/healthz")

One QUIC connection per session, verified against `cafile` as the only
CA and `localhost` as the server name; each request is one stream, and
every wait is bounded by `REQUEST_TIMEOUT_S`. A connection the server
closes fails the requests still waiting, with the server's reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent

REQUEST_TIMEOUT_S = 5.0
SERVER_NAME = "localhost"


@dataclass
class Answer:
    """One HTTP/3 response: status, headers by (lower-case) name, body."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return orjson.loads(self.body)


class H3Client(QuicConnectionProtocol):
    """Sends requests on one QUIC connection; each answer resolves a future."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._http = H3Connection(self._quic)
        self._answers: dict[int, Answer] = {}
        self._waiters: dict[int, asyncio.Future[Answer]] = {}

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        body_delay_s: float = 0.0,
    ) -> Answer:
        """Send one request; `body_delay_s` holds the body back after the head."""
        stream_id = self._quic.get_next_available_stream_id()
        self._answers[stream_id] = Answer()
        waiter = self._waiters[stream_id] = self._loop.create_future()
        fields = _request_head(method, path, body, headers or {})
        self._http.send_headers(stream_id, fields, end_stream=not body)
        if body:
            self.transmit()
            await asyncio.sleep(body_delay_s)
            self._http.send_data(stream_id, body, end_stream=True)
        self.transmit()
        return await asyncio.wait_for(waiter, REQUEST_TIMEOUT_S)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self._fail_all(event)
        for h3_event in self._http.handle_event(event):
            self._on_h3_event(h3_event)

    def _fail_all(self, event: ConnectionTerminated) -> None:
        error = ConnectionError(
            f"connection closed: 0x{event.error_code:x} {event.reason_phrase}"
        )
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(error)
        self._waiters.clear()

    def _on_h3_event(self, event: H3Event) -> None:
        if not isinstance(event, HeadersReceived | DataReceived):
            return
        answer = self._answers.get(event.stream_id)
        if answer is None:
            return
        if isinstance(event, HeadersReceived):
            for name, value in event.headers:
                answer.headers[name.decode()] = value.decode()
            answer.status = int(answer.headers.get(":status", "0"))
        else:
            answer.body += event.data
        if event.stream_ended:
            self._waiters.pop(event.stream_id).set_result(answer)


def _request_head(
    method: str, path: str, body: bytes, headers: dict[str, str]
) -> list[tuple[bytes, bytes]]:
    fields = [
        (b":method", method.encode()),
        (b":scheme", b"https"),
        (b":authority", SERVER_NAME.encode()),
        (b":path", path.encode()),
    ]
    fields += [(k.encode(), v.encode()) for k, v in headers.items()]
    if body:
        fields.append((b"content-length", str(len(body)).encode()))
    return fields


@asynccontextmanager
async def h3_session(port: int, cafile: Path) -> AsyncIterator[H3Client]:
    """One verified QUIC connection to 127.0.0.1:`port`."""
    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=H3_ALPN, server_name=SERVER_NAME
    )
    configuration.load_verify_locations(cafile=str(cafile))
    connection = connect(
        "127.0.0.1", port, configuration=configuration, create_protocol=H3Client
    )
    client = await asyncio.wait_for(connection.__aenter__(), REQUEST_TIMEOUT_S)
    assert isinstance(client, H3Client)
    try:
        yield client
    finally:
        await asyncio.wait_for(
            connection.__aexit__(None, None, None), REQUEST_TIMEOUT_S
        )
