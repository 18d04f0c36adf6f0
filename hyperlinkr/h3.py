"""The h3 role: the node's HTTP API over HTTP/3 (QUIC on UDP).

Why a role of its own, in one process: Sanic serves HTTP/3 (through
aioquic) from a single worker only. QUIC has no accept queue to share:
a second worker cannot bind the UDP port, and the server shuts down. So
the HTTP/1.1 workers stay many and this process is the node's one QUIC
endpoint. It builds the same app with `create_app` and attaches the same
shared memory and LMDB as the web workers, so a link or a click is the
same whichever protocol carried it. HTTP/1.1 clients learn about it from
the `Alt-Svc` header the web workers add.

QUIC has no plaintext mode: the role needs a certificate and its key
(`hyperlinkr.certs` makes a self-signed pair for local runs). They are
checked before the server starts, so a wrong path or a key that does not
match is a configuration error with the fix in its message, not a
traceback from deep inside Sanic.

aioquic is stricter than HTTP/1.1 clients about response headers: names
must be lower case, and `transfer-encoding` is forbidden (HTTP/3 frames
its own bodies). Sanic sends an empty body without `content-length` as
chunked, so `_fit_for_http3` gives such answers `content-length: 0` and
lower-cases every header name before they are sent.

Sanic leaves `request.ip` empty over HTTP/3 (every connection shares one
unconnected UDP socket); `_fill_client_address` takes it from the QUIC
connection's current path, so per-client decisions see the real client.

Sanic 25.12 starts a handler as soon as the request's head arrives and
does not wait for the body, so a body that comes in a later datagram
would be read empty or cut short; `_await_body` waits for the length
the client announced before the handler runs.

Stopping: Sanic turns SIGINT and SIGTERM into a clean stop once it
serves. A signal that arrives while the app is still starting (opening
the node, binding the port) is remembered and acted on as soon as the
server is up, so the process always ends with 0 and no traceback.
Sanic's HTTP/3 server has no graceful drain: requests in flight when it
stops are cut off, and their clients retry or fall back to HTTP/1.1.

    python -m hyperlinkr.h3 --port P --cert CERT --key KEY

runs the role by hand; every other setting comes from `HYPERLINKR_*`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

from sanic import Request, Sanic
from sanic.compat import Header
from sanic.response import BaseHTTPResponse

import shm
from hyperlinkr.app import create_app
from hyperlinkr.config import Settings
from hyperlinkr.errors import ConfigError
from hyperlinkr.problems import Problem
from hyperlinkr.supervisor import ExitCode

__all__ = ["check_tls_files", "check_udp_port", "serve_h3"]

logger = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
BODY_TIMEOUT_S = 10.0
_FIRST_POLL_S = 0.001
_LAST_POLL_S = 0.02


def serve_h3(settings: Settings, cert_file: Path, key_file: Path, port: int) -> int:
    """Serve the node's API over HTTP/3 on UDP `port` until SIGINT/SIGTERM."""
    check_tls_files(cert_file, key_file)
    check_udp_port(settings.host, port)
    if settings.log_level != "DEBUG":
        # aioquic logs every handshake and close at INFO.
        logging.getLogger("quic").setLevel(logging.WARNING)
    early = _EarlyStop()
    app = create_app(settings, name="hyperlinkr_h3")
    app.middleware(_fill_client_address, "request")
    app.middleware(_await_body, "request")
    app.middleware(_fit_for_http3, "response")
    app.after_server_start(early.act)
    logger.info("serving HTTP/3 on udp %s:%d", settings.host, port)
    app.run(
        version=3,
        host=settings.host,
        port=port,
        ssl={"cert": str(cert_file), "key": str(key_file)},
        single_process=True,
        access_log=settings.access_log,
        motd=False,
    )
    logger.info("HTTP/3 server on udp port %d stopped", port)
    return 0


def check_tls_files(cert_file: Path, key_file: Path) -> None:
    """Raise `ConfigError` unless the pair loads as a certificate and its key."""
    for what, path in (("certificate", cert_file), ("key", key_file)):
        if not path.is_file():
            raise ConfigError(
                f"the TLS {what} file {str(path)!r} does not exist; point "
                "HYPERLINKR_TLS_CERT_FILE and HYPERLINKR_TLS_KEY_FILE at a PEM "
                "certificate and key, or make a self-signed pair for local "
                "runs with `python -m hyperlinkr.certs DIR`"
            )
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"cannot load the TLS certificate {str(cert_file)!r} with the key "
            f"{str(key_file)!r}: {exc.reason or exc}; expected a PEM "
            "certificate and the unencrypted PEM key that belongs to it"
        ) from exc


def check_udp_port(host: str, port: int) -> None:
    """Raise `ConfigError` unless UDP (`host`, `port`) can be bound now."""
    # Sanic binds the port deep in its start and answers a failure with a
    # traceback; trying first turns the usual mistake into a clear message.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on udp {host}:{port} for HTTP/3: {exc.strerror}; "
            "set HYPERLINKR_H3_PORT (or --port) to a free UDP port"
        ) from exc


async def _fill_client_address(request: Request) -> None:
    # Every QUIC connection shares the server's one unconnected UDP socket,
    # whose peer name is empty, so Sanic leaves `request.ip` blank; the
    # connection's current network path holds the client's address.
    conn = request.conn_info
    if conn is None or conn.client_ip or not conn.network_paths:
        return
    host, port = conn.network_paths[0].addr[:2]
    conn.peername = (host, port)
    conn.client_ip, conn.client_port = host, port
    conn.client = f"[{host}]" if ":" in host else host


async def _await_body(request: Request) -> None:
    # Sanic 25.12 starts the handler as soon as a request's head arrives
    # and never waits for the body's end, so a body that comes in a later
    # datagram than the head would be seen empty or cut short. The length
    # the client announced is awaited here; the DATA frames keep being
    # appended to `request.body` while this waits.
    expected = _content_length(request)
    if expected is None or len(request.body) >= expected:
        return
    # TODO: a body sent without content-length is not awaited (HTTP/3
    # does not require the header); such a body that spans datagrams is
    # still cut short until Sanic tracks the end of a request stream.
    deadline_s = time.monotonic() + BODY_TIMEOUT_S
    poll_s = _FIRST_POLL_S
    while len(request.body) < expected:
        if time.monotonic() >= deadline_s:
            raise Problem(
                408,
                f"the body announced as {expected} bytes did not arrive within "
                f"{BODY_TIMEOUT_S:g} s ({len(request.body)} bytes came)",
            )
        await asyncio.sleep(poll_s)
        poll_s = min(poll_s * 2, _LAST_POLL_S)


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdecimal():
        raise Problem(400, f"content-length {value!r} is not a byte count")
    expected = int(value)
    limit = request.app.config.REQUEST_MAX_SIZE
    if expected > limit:
        raise Problem(413, f"a body of {expected} bytes is over the {limit} limit")
    return expected


async def _fit_for_http3(request: Request, response: BaseHTTPResponse) -> None:
    headers = Header((name.lower(), value) for name, value in response.headers.items())
    may_have_body = response.status >= 200 and response.status not in (204, 304)
    if may_have_body and not response.body:
        headers.setdefault("content-length", "0")
    response.headers = headers


class _EarlyStop:
    """Remembers a stop signal that arrives before Sanic handles signals."""

    def __init__(self) -> None:
        self.signum: int | None = None
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._remember)

    def _remember(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    async def act(self, app: Sanic[Any, SimpleNamespace]) -> None:
        # By now Sanic's own handlers have replaced ours. Nothing after the
        # after-start listeners suspends before Sanic enters run_forever, so
        # the stop takes effect there, through Sanic's usual shutdown path.
        if self.signum is not None:
            logger.info("signal %d arrived while starting; stopping", self.signum)
            app.stop(terminate=False)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hyperlinkr.h3",
        description="Serve this node's HTTP API over HTTP/3 (one process).",
    )
    parser.add_argument("--port", type=_udp_port, required=True, help="UDP port")
    parser.add_argument("--cert", type=Path, required=True, help="PEM certificate")
    parser.add_argument("--key", type=Path, required=True, help="PEM private key")
    return parser.parse_args(argv)


def _udp_port(text: str) -> int:
    if not text.isdecimal() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port from 1 to 65535, got {text!r}"
        )
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        _configure_logging("INFO")
        logger.error("h3 cannot start: %s", exc)
        return ExitCode.CONFIG
    _configure_logging(settings.log_level)
    try:
        return serve_h3(settings, args.cert, args.key, args.port)
    except (ConfigError, shm.ShmError) as exc:
        logger.error("h3 cannot start: %s", exc)
        return ExitCode.CONFIG


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
        stream=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
