"""A small keep-alive HTTP client for the parts wrk cannot do.

Seeding needs the codes the node hands back, and the click check needs the
body of /stats for each hot code, so both run here: threads, each with its
own keep-alive `http.client` connection, each taking every k-th item. The
GIL is no bottleneck: a thread spends nearly all its time waiting for the
node, which fsyncs every shortened link before it answers.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["ClientError", "seed_links", "stats_totals"]

SEED_THREADS = 64
STATS_THREADS = 8
_TIMEOUT_S = 30.0
_ATTEMPTS = 3
_PROGRESS_INTERVAL_S = 0.25
_BAR_CELLS = 30

T = TypeVar("T")
R = TypeVar("R")


class ClientError(RuntimeError):
    """The node refused or failed a request the harness depends on."""


class _Connection:
    """One keep-alive connection that reconnects after a transport error.

    A request is retried after a transport error or a 503. Retrying a POST
    /shorten whose answer was lost may leave one more link to the same URL,
    which is harmless here: only the codes handed back are used.
    """

    def __init__(self, port: int) -> None:
        self._port = port
        self._conn = self._open()

    def _open(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self._port, timeout=_TIMEOUT_S)

    def request(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, bytes]:
        headers = {"content-type": "application/json"} if body else {}
        for attempt in range(_ATTEMPTS):
            try:
                self._conn.request(method, path, body, headers)
                response = self._conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = self._open()
                if attempt + 1 == _ATTEMPTS:
                    raise
                continue
            if response.status != 503 or attempt + 1 == _ATTEMPTS:
                return response.status, payload
            time.sleep(0.2)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        self._conn.close()


def _fan_out(
    port: int,
    items: Sequence[T],
    threads: int,
    call: Callable[[_Connection, T], R],
    done: Callable[[], None] | None = None,
) -> list[R]:
    """call(conn, item) for every item, across threads; results in order.

    The first failure (or a Ctrl-C in the main thread) stops every thread
    after its current request, so an error never waits for the whole list.
    """
    results: list[R | None] = [None] * len(items)
    abort = threading.Event()

    def work(first: int) -> None:
        conn = _Connection(port)
        try:
            for index in range(first, len(items), threads):
                if abort.is_set():
                    return
                results[index] = call(conn, items[index])
                if done is not None:
                    done()
        except BaseException:
            abort.set()
            raise
        finally:
            conn.close()

    pool = ThreadPoolExecutor(threads)
    try:
        for future in [pool.submit(work, i) for i in range(threads)]:
            future.result()
    finally:
        abort.set()
        pool.shutdown(wait=True)
    return results  # type: ignore[return-value]  # every slot was filled


class _Progress:
    """A progress bar on stderr; a line per 10% when stderr is no terminal."""

    def __init__(self, label: str, total: int) -> None:
        self._label = label
        self._total = total
        self._done = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_decile = -1

    def advance(self) -> None:
        with self._lock:
            self._done += 1

    def draw(self, final: bool = False) -> None:
        done, total = self._done, max(self._total, 1)
        rate = done / max(time.monotonic() - self._started, 1e-9)
        cells = _BAR_CELLS * done // total
        bar = "#" * cells + "." * (_BAR_CELLS - cells)
        line = f"{self._label} [{bar}] {done}/{self._total} {rate:,.0f}/s"
        if sys.stderr.isatty():
            sys.stderr.write("\r" + line + ("\n" if final else ""))
        elif final or 10 * done // total > self._last_decile:
            self._last_decile = 10 * done // total
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _shorten(conn: _Connection, url: str) -> str:
    status, body = conn.request("POST", "/shorten", json.dumps({"url": url}).encode())
    if status != 201:
        raise ClientError(
            f"POST /shorten {url!r} answered {status}, expected 201: {body[:300]!r}"
        )
    code: str = json.loads(body)["code"]
    return code


def seed_links(port: int, urls: Sequence[str]) -> list[str]:
    """Shorten every URL on the node at port; the codes, in the same order."""
    progress = _Progress("seeding", len(urls))
    stop = threading.Event()

    def keep_drawing() -> None:
        while not stop.wait(_PROGRESS_INTERVAL_S):
            progress.draw()

    painter = threading.Thread(target=keep_drawing, daemon=True)
    painter.start()
    try:
        return _fan_out(port, urls, SEED_THREADS, _shorten, progress.advance)
    finally:
        stop.set()
        painter.join()
        progress.draw(final=True)


def _total_clicks(conn: _Connection, code: str) -> int:
    status, body = conn.request("GET", f"/stats/{code}")
    if status != 200:
        raise ClientError(f"GET /stats/{code} answered {status}, expected 200")
    stats: dict[str, Any] = json.loads(body)
    total: int = stats["clicks"]["total"]
    return total


def stats_totals(port: int, codes: Sequence[str]) -> list[int]:
    """clicks.total from /stats for each code, in the same order."""
    return _fan_out(port, codes, STATS_THREADS, _total_clicks)
