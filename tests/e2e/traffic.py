"""Bounded loopback traffic for the end-to-end tests."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor


def _connection(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def shorten_many(
    port: int, urls: Sequence[str], threads: int = 8
) -> list[tuple[int, dict]]:
    """POST /shorten for each URL; (status, body) in the order given."""

    def run(chunk: Sequence[str]) -> list[tuple[int, dict]]:
        conn = _connection(port)
        answers = []
        for url in chunk:
            try:
                conn.request(
                    "POST",
                    "/shorten",
                    json.dumps({"url": url}),
                    {"content-type": "application/json"},
                )
                response = conn.getresponse()
                answers.append((response.status, json.loads(response.read())))
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = _connection(port)
                answers.append((0, {}))
        conn.close()
        return answers

    chunks = [urls[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(run, chunks))
    ordered: list[tuple[int, dict]] = [(0, {})] * len(urls)
    for i, answers in enumerate(results):
        for j, answer in enumerate(answers):
            ordered[i + j * threads] = answer
    return ordered


def get_many(port: int, path: str, count: int, threads: int = 4) -> dict[int, int]:
    """GET `path` `count` times over keep-alive connections; statuses counted."""
    return get_each(port, [path] * count, threads)


def get_each(
    port: int, paths: Sequence[str], threads: int = 4, per_s: float = 0.0
) -> dict[int, int]:
    """GET every path once over keep-alive connections, split among threads
    (each sending at most `per_s / threads` a second, if `per_s`); statuses
    counted."""
    interval_s = threads / per_s if per_s else 0.0

    def run(chunk: Sequence[str]) -> dict[int, int]:
        conn = _connection(port)
        statuses: dict[int, int] = {}
        started_s = time.monotonic()
        for i, path in enumerate(chunk):
            ahead_s = started_s + i * interval_s - time.monotonic()
            if ahead_s > 0:
                time.sleep(ahead_s)
            try:
                conn.request("GET", path, headers={"user-agent": "loadtest/1.0"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = _connection(port)
                status = 0
            statuses[status] = statuses.get(status, 0) + 1
        conn.close()
        return statuses

    total: dict[int, int] = {}
    with ThreadPoolExecutor(threads) as pool:
        for statuses in pool.map(run, [paths[i::threads] for i in range(threads)]):
            for status, n in statuses.items():
                total[status] = total.get(status, 0) + n
    return total


def location_of(port: int, code: str) -> tuple[int, str | None]:
    conn = _connection(port)
    try:
        conn.request("HEAD", f"/{code}")
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("location")
    finally:
        conn.close()
