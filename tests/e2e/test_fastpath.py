"""The redirect fast path against Sanic's own path, byte for byte.

Every test runs a real node with HYPERLINKR_FAST_PATH=false (Sanic's own
path on `node.port`) and, beside it on the same shared memory and LMDB,
one worker serving the same app with `FastPathProtocol`
(tests/e2e/fastpath_server.py). The same request
bytes go to both over raw sockets and the bytes that come back must be
equal. The fast path's counters show which path answered, so an equal
answer is not just Sanic answering twice.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hyperlinkr.apikeys import create_key
from tests.e2e.conftest import MakeNode
from tests.e2e.fastpath_server import STATISTICS_PATH
from tests.e2e.nodes import RunningNode, free_port
from tests.e2e.rawhttp import (
    Answer,
    batches,
    exchange,
    get,
    read_answers,
    round_trips,
)
from tests.e2e.scraping import scrape, total, wait_for

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# Http.HEADER_MAX_SIZE for create_app's defaults (MAX_HEADER_BYTES and the
# default HYPERLINKR_MAX_BODY_BYTES are both 16384).
HEADER_LIMIT_BYTES = 16384
_ALLOW = re.compile(rb"(\r\nAllow: )([^\r]*)")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@dataclass
class Pair:
    """A node and a fast-path worker on the node's shared memory."""

    node: RunningNode
    fast_port: int
    manage_key: str | None = None
    server: subprocess.Popen[bytes] | None = None

    def same(self, talk: Callable[..., Answer], *args: Any, **kwargs: Any) -> Answer:
        """`talk(port, ...)` to both paths; their answer, checked to be equal."""
        normal = talk(self.node.port, *args, **kwargs)
        fast = talk(self.fast_port, *args, **kwargs)
        assert canonical(fast) == canonical(normal)
        return fast

    def statistics(self) -> dict[str, int]:
        figures: dict[str, int] = httpx.get(self.fast_url(STATISTICS_PATH)).json()
        return figures

    def fast_count(self) -> int:
        return self.statistics()["fast"]

    def shorten_count(self) -> int:
        return self.statistics()["shortens"]

    def same_made(
        self, talk: Callable[..., Answer], *args: Any, **kwargs: Any
    ) -> Answer:
        """`same`, for answers that make links: alike but for what is new."""
        normal = talk(self.node.port, *args, **kwargs)
        fast = talk(self.fast_port, *args, **kwargs)
        assert made(canonical(fast)) == made(canonical(normal))
        return fast

    def fast_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.fast_port}{path}"

    def shorten(self, url: str = "https://example.com/landing", **body: Any) -> str:
        answer = httpx.post(self.node.url("/shorten"), json={"url": url, **body})
        assert answer.status_code == 201, answer.text
        code: str = answer.json()["code"]
        return code

    def patch(self, code: str, **fields: Any) -> None:
        headers = {"authorization": f"Bearer {self.manage_key}"}
        url = self.node.url(f"/links/{code}")
        answer = httpx.patch(url, json=fields, headers=headers)
        assert answer.status_code == 200, answer.text

    def clicks(self, code: str) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(self.node.url(f"/stats/{code}")).json()
        return stats


def canonical(answer: Answer) -> Answer:
    """`answer` with every Allow header's methods sorted.

    Sanic lists them in the order of a set of strings, which differs from
    one process to the next (hash randomisation), even between two
    workers of the same node.
    """

    def sort(match: re.Match[bytes]) -> bytes:
        methods = sorted(match[2].split(b", "))
        return match[1] + b", ".join(methods)

    return Answer(_ALLOW.sub(sort, answer.raw), answer.closed)


# What differs between two answers that made a link each: its code, its
# times of creation and expiry, and what is left of the caller's budget.
_NEW = [
    (re.compile(rb'"code":"[A-Za-z0-9_-]+"'), b'"code":"C"'),
    (re.compile(rb'/[A-Za-z0-9_-]+","url"'), b'/C","url"'),
    (re.compile(rb'"created_at":"[^"]+"'), b'"created_at":"T"'),
    (re.compile(rb'"expires_at":"[^"]+"'), b'"expires_at":"T"'),
    (
        re.compile(rb"\r\nratelimit-remaining: \d+\r\n"),
        b"\r\nratelimit-remaining: R\r\n",
    ),
]


def made(answer: Answer) -> Answer:
    """`answer` with what a new link makes different written the same."""
    raw = answer.raw
    for pattern, same in _NEW:
        raw = pattern.sub(same, raw)
    return Answer(raw, answer.closed)


def start_fast_server(node: RunningNode) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = node.data_dir.parent / f"{node.name}-fastpath.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.fastpath_server", "--port", str(port)],
            env=node.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.05)
    stop(proc)
    raise AssertionError(f"the fast-path server did not start:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


StartPair = Callable[..., Pair]


@pytest.fixture
def start_pair(make_node: MakeNode, tmp_path: Path) -> Iterator[StartPair]:
    servers: list[subprocess.Popen[bytes]] = []

    def start(**settings: Any) -> Pair:
        data_dir = tmp_path / f"pair{len(servers)}"
        key = create_key(
            data_dir / "api-keys.json", "manage", frozenset({"links:manage"})
        )
        # The node is the reference: Sanic's own path, whatever the default.
        node = make_node(data_dir, fast_path="false", **settings)
        proc, port = start_fast_server(node)
        servers.append(proc)
        return Pair(node, port, key, proc)

    yield start
    for proc in servers:
        stop(proc)


@pytest.fixture
def pair(start_pair: StartPair) -> Pair:
    return start_pair()


def test_get_and_head_on_keep_alive_are_the_same_bytes_and_fast(pair: Pair) -> None:
    code = pair.shorten()
    requests = [
        get(code),
        get(code, method="HEAD"),
        get(code, "Referer: https://a.example/"),
    ]
    before = pair.fast_count()
    answer = pair.same(round_trips, requests)
    assert answer.statuses() == [302, 302, 302]
    assert not answer.closed
    assert b"connection: keep-alive\r\n" in answer.raw
    assert pair.fast_count() - before == 3  # the first on a new connection too


def test_every_redirect_status_and_a_query_are_answered_alike(pair: Pair) -> None:
    for status in (301, 302, 307, 308):
        code = pair.shorten(f"https://example.com/{status}?a=1", redirect_status=status)
        for target in (code, f"{code}?utm_source=x&b=%20c", f"{code}?"):
            answer = pair.same(round_trips, [get(target)])
            assert answer.statuses() == [status]


def test_a_forwarded_query_is_left_to_sanic(pair: Pair) -> None:
    code = pair.shorten("https://example.com/f?a=1", forward_query=True)
    round_trips(pair.fast_port, [get(code)])  # fills L1
    before = pair.fast_count()
    merged = pair.same(round_trips, [get(f"{code}?b=2")])
    assert b"location: https://example.com/f?a=1&b=2\r\n" in merged.raw
    assert pair.fast_count() == before
    pair.same(round_trips, [get(code)])
    assert pair.fast_count() == before + 1


def test_a_pipelined_mix_is_answered_in_order(pair: Pair) -> None:
    code = pair.shorten()
    other = pair.shorten("https://example.org/other")
    round_trips(pair.fast_port, [get(code), get(other)])  # both in L1
    body = b'{"url": 5}'
    requests = [
        get(code),
        get(other, method="HEAD"),
        get("Missing1"),
        b"POST /" + code.encode() + b" HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        get(code),
        b"POST /shorten HTTP/1.1\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%b" % (len(body), body),
        get("healthz"),
        get(other),
        get(code, method="HEAD"),
    ]
    before = pair.fast_count()
    answer = pair.same(exchange, requests)
    assert answer.statuses() == [302, 302, 404, 405, 302, 422, 200, 302, 302]
    assert pair.fast_count() - before == 2  # the two before the miss


def test_the_fast_path_resumes_once_sanic_has_drained_the_pipeline(pair: Pair) -> None:
    code = pair.shorten()
    round_trips(pair.fast_port, [get(code)])
    before = pair.fast_count()
    requests = [[get("Missing1"), get(code)], [get(code), get(code)]]
    answer = pair.same(batches, requests)
    assert answer.statuses() == [404, 302, 302, 302]
    assert pair.fast_count() - before == 2


def test_requests_in_pieces_are_answered_alike(pair: Pair) -> None:
    code = pair.shorten()
    requests = [get(code, f"User-Agent: {FIREFOX}"), get("Missing1"), get(code)]
    for slice_bytes in (1, 7, 50):
        answer = pair.same(exchange, requests, slice_bytes=slice_bytes, pause_s=0.002)
        assert answer.statuses() == [302, 404, 302], slice_bytes


def test_a_slow_client_between_two_halves_of_a_head(pair: Pair) -> None:
    code = pair.shorten()
    request = get(code, "Referer: https://slow.example/")
    answer = pair.same(exchange, [request], slice_bytes=20, pause_s=0.3)
    assert answer.statuses() == [302]


CONNECTION_HEADERS = [
    ("Connection: close", True),
    ("connection: CLOSE", True),
    ("Connection: Keep-Alive", False),
    ("Connection: keep-alive, Upgrade", True),  # Sanic wants exactly keep-alive
    ("Connection: keep-alive ", True),  # trailing space too
    ("Connection: close\r\nConnection: keep-alive", False),  # the last one wins
]


def test_connection_header_is_honoured_like_sanic(pair: Pair) -> None:
    code = pair.shorten()
    for header, closes in CONNECTION_HEADERS:
        requests = [get(code, header), get(code)]
        before = pair.fast_count()
        answer = pair.same(exchange, requests)
        assert answer.closed is closes, header
        assert answer.statuses() == ([302] if closes else [302, 302]), header
        assert pair.fast_count() - before == len(answer.statuses()), header


def test_head_with_connection_close_and_http_1_0(pair: Pair) -> None:
    code = pair.shorten()
    head_close = get(code, "Connection: close", method="HEAD")
    assert pair.same(exchange, [head_close]).closed
    old = get(code, version="1.0")
    answer = pair.same(exchange, [old, get(code)])
    assert answer.closed
    assert answer.statuses() == [302]


def padded(code: str, head_bytes: int) -> bytes:
    """A GET of `code` whose CRLFCRLF starts at offset `head_bytes`."""
    bare = get(code, "X-Pad: ")
    pad = head_bytes - (len(bare) - 4)
    return get(code, "X-Pad: " + "p" * pad)


def test_header_size_limit_is_sanics(pair: Pair) -> None:
    code = pair.shorten()
    round_trips(pair.fast_port, [get(code)])
    under = padded(code, HEADER_LIMIT_BYTES - 1)
    assert under.index(b"\r\n\r\n") == HEADER_LIMIT_BYTES - 1
    before = pair.fast_count()
    assert pair.same(exchange, [under]).statuses() == [302]
    assert pair.fast_count() == before + 1
    at_limit = padded(code, HEADER_LIMIT_BYTES)
    refused = pair.same(exchange, [at_limit])
    assert refused.statuses() == [431]
    assert refused.closed
    assert pair.statistics()["too_large"] >= 1
    huge = padded(code, 3 * HEADER_LIMIT_BYTES)
    assert pair.same(exchange, [huge]).statuses() == [431]


UNUSUAL_REQUESTS = [
    b"get /CODE HTTP/1.1\r\n\r\n",
    b"GET //CODE HTTP/1.1\r\n\r\n",
    b"GET /CODE/ HTTP/1.1\r\n\r\n",
    b"GET /CODE#x HTTP/1.1\r\n\r\n",
    b"GET /CODE?a=\xff HTTP/1.1\r\n\r\n",
    b"GET /%43ODE HTTP/1.1\r\n\r\n",
    b"GET /CODE HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"GET /CODE HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
    b"GET /CODE HTTP/1.1\r\nReferer : https://a.example/\r\n\r\n",
    b"GET /CODE HTTP/1.1\r\nX-Bare: a\rb\r\n\r\n",
    b"GET /CODE HTTP/1.1\r\nX-\x00-Nul: 1\r\n\r\n",
    b"GET /CODE HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"GET /CODE HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd",
    b"GET /CODE HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /CODE HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
    b"GET /CODE HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
    b"GET /CODE  HTTP/1.1\r\n\r\n",
    b"GET /CODE HTTP/1.2\r\n\r\n",
    b"OPTIONS /CODE HTTP/1.1\r\n\r\n",
    b"\r\nGET /CODE HTTP/1.1\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n\r\n",
    b"HEAD /readyz HTTP/1.1\r\n\r\n",
    b"GET /shorten HTTP/1.1\r\n\r\n",
    b"GET /openapi.json HTTP/1.1\r\n\r\n",
    b"GET /CODE/qr HTTP/1.1\r\n\r\n",
    b"GET /" + b"a" * 33 + b" HTTP/1.1\r\n\r\n",
]


def test_unusual_requests_get_sanics_answer(pair: Pair) -> None:
    code = pair.shorten()
    for unusual in UNUSUAL_REQUESTS:
        request = unusual.replace(b"CODE", code.encode())
        before = pair.fast_count()
        pair.same(exchange, [request, get(code)])
        assert pair.fast_count() == before, request


ODD_BUT_PLAIN_HEADERS = [
    ("User-Agent: \xc3\xa9t\xff\xfe",),
    ("Referer: https://one.example/", "Referer: https://two.example/"),
    ("Referer:", "User-Agent:   spaced  "),
    ("X-Empty:", "Accept: */*", "Cookie: a=b; c=d", "X-Forwarded-For: 203.0.113.9"),
    ("X-Control: \x01\x7f",),
    (f"X-Long: {'v' * 8000}",),
]


def test_plain_requests_with_odd_headers_are_fast_and_alike(pair: Pair) -> None:
    code = pair.shorten()
    for headers in ODD_BUT_PLAIN_HEADERS:
        request = get(code, *headers)
        before = pair.fast_count()
        assert pair.same(exchange, [request]).statuses() == [302], headers
        assert pair.fast_count() == before + 1, headers


def test_clicks_are_counted_with_referrer_and_user_agent(pair: Pair) -> None:
    code = pair.shorten()
    round_trips(pair.fast_port, [get(code)])  # one click, through Sanic's path
    agent = f"User-Agent: {FIREFOX}"
    referer = "Referer: https://news.example.org/story"
    gets = [get(code, referer, agent) for _ in range(5)]
    heads = [get(code, referer, agent, method="HEAD") for _ in range(3)]
    before = pair.fast_count()
    assert exchange(pair.fast_port, gets + heads).statuses() == [302] * 8
    assert pair.fast_count() - before == 8
    deadline = time.monotonic() + 5
    while pair.clicks(code)["clicks"]["total"] < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # a HEAD counted by mistake would show up by now
    stats = pair.clicks(code)
    assert stats["clicks"]["total"] == 6
    assert {"host": "news.example.org", "clicks": 5} in stats["referrers"]
    assert any(b["name"] == "Firefox" and b["clicks"] == 5 for b in stats["browsers"])


def test_a_changed_link_is_never_answered_from_its_old_entry(pair: Pair) -> None:
    code = pair.shorten("https://example.com/before")
    assert b"example.com/before" in round_trips(pair.fast_port, [get(code)] * 2).raw
    pair.patch(code, url="https://example.com/after", redirect_status=307)
    answers = [round_trips(pair.fast_port, [get(code)]) for _ in range(20)]
    assert all(a.statuses() == [307] for a in answers)
    assert all(b"location: https://example.com/after\r\n" in a.raw for a in answers)
    before = pair.fast_count()
    pair.same(round_trips, [get(code)])
    assert pair.fast_count() == before + 1  # the new entry is served fast
    pair.patch(code, enabled=False)
    gone = pair.same(round_trips, [get(code), get(code)])
    assert gone.statuses() == [404, 404]


def test_metrics_count_fast_answers_as_the_middleware_would(pair: Pair) -> None:
    code = pair.shorten()
    requests = "hyperlinkr_requests_total"
    lookups = "hyperlinkr_store_lookups_total"
    before = scrape(pair.node)
    fast_before = pair.fast_count()
    answer = exchange(pair.fast_port, [get(code)] * 7 + [get(code, method="HEAD")])
    assert answer.statuses() == [302] * 8
    assert pair.fast_count() - fast_before == 8
    after = scrape(pair.node)  # sums every process of the node, ours too

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    def flushed() -> bool:
        # The fast server writes its tally every metrics.FLUSH_INTERVAL_S.
        nonlocal after
        after = scrape(pair.node)
        return grew(requests, route="redirect", status="302") >= 8

    wait_for(flushed, "the fast server's tally to be flushed")

    assert grew(requests, route="redirect", status="302") == 8
    latency = "hyperlinkr_request_duration_seconds_count"
    assert grew(latency, route="redirect") == 8
    assert grew(lookups, tier="l1", outcome="hit") == 8


def test_alt_svc_of_the_h3_role_is_added_like_the_middleware_does(
    start_pair: StartPair, tmp_path: Path
) -> None:
    # The web role never reads the certificate; only the h3 role does.
    pair = start_pair(
        h3_port=4433,
        tls_cert_file=tmp_path / "cert.pem",
        tls_key_file=tmp_path / "key.pem",
    )
    code = pair.shorten()
    before = pair.fast_count()
    requests = [get(code), get(code, "Connection: close")]
    answer = pair.same(exchange, requests)
    assert answer.raw.count(b'\r\nalt-svc: h3=":4433"; ma=86400\r\n') == 2
    assert pair.fast_count() - before == 2


def test_an_expired_link_gets_sanics_410(pair: Pair) -> None:
    code = pair.shorten(ttl_s=1)
    assert round_trips(pair.fast_port, [get(code)] * 2).statuses() == [302, 302]
    time.sleep(1.1)
    answer = pair.same(round_trips, [get(code)])
    assert answer.statuses() == [410]


def test_rate_limit_is_one_budget_for_both_paths(start_pair: StartPair) -> None:
    pair = start_pair(redirect_rate_per_s=1, redirect_burst=4)
    code = pair.shorten()
    before = pair.fast_count()
    answer = round_trips(pair.fast_port, [get(code)] * 5)
    assert answer.statuses() == [302, 302, 302, 302, 429]
    assert pair.fast_count() - before == 4  # shortening put the link in L1
    assert pair.statistics()["limited"] == 1
    refused = round_trips(pair.node.port, [get(code)])
    assert refused.statuses() == [429]
    assert b"retry-after: " in refused.raw


def test_forwarded_for_is_believed_only_from_trusted_proxies(
    start_pair: StartPair,
) -> None:
    pair = start_pair(
        redirect_rate_per_s=1, redirect_burst=2, trusted_proxies="127.0.0.0/8"
    )
    code = pair.shorten()
    round_trips(pair.fast_port, [get(code, "X-Forwarded-For: 198.51.100.1")])

    def statuses(client: str) -> list[int]:
        request = get(code, f"X-Forwarded-For: 198.51.100.77, {client}")
        return round_trips(pair.fast_port, [request] * 3).statuses()

    assert statuses("203.0.113.1") == [302, 302, 429]
    assert statuses("203.0.113.2") == [302, 302, 429]
    assert pair.statistics()["limited"] == 2


def test_a_reader_that_falls_behind_gets_every_answer_in_order(pair: Pair) -> None:
    """Answers pile up past the transport's high-water mark; none is lost."""
    code = pair.shorten("https://example.com/" + "long" * 500)  # 2.2 kB answers
    request = get(code, "User-Agent: slow")
    request = get(code, "User-Agent: " + "s" * (128 - len(request) + 4))
    assert len(request) == 128  # so reads of 2**n bytes end between requests
    requests = [request] * 4000 + [get("Missing1"), get(code)]
    answer = pair.same(
        exchange,
        requests,
        slice_bytes=100 * len(request),
        pause_s=0.001,
        receive_buffer_bytes=4096,
        wait_before_read_s=1.0,
    )
    assert answer.statuses() == [302] * 4000 + [404, 302]
    figures = pair.statistics()
    assert figures["backpressure"] >= 1  # the fast path saw it and stepped back


def test_a_reader_that_falls_behind_behind_a_pipelined_mix(pair: Pair) -> None:
    code = pair.shorten()
    requests = [
        get("Missing1") if i % 1000 == 999 else get(code, "User-Agent: slow")
        for i in range(30000)
    ]
    answer = pair.same(
        exchange, requests, receive_buffer_bytes=4096, wait_before_read_s=1.0
    )
    statuses = answer.statuses()
    assert len(statuses) == 30000
    assert statuses.count(404) == 30
    assert [i for i, status in enumerate(statuses) if status == 404][:2] == [999, 1999]


def test_web_workers_serve_through_the_fast_path_by_default(
    make_node: MakeNode,
) -> None:
    node = make_node()
    made = httpx.post(node.url("/shorten"), json={"url": "https://example.com/w"})
    code = made.json()["code"]
    for _ in range(4):  # new connections, spread over both workers
        assert round_trips(node.port, [get(code), get(code)]).statuses() == [302] * 2
    log = node.logs["web"].read_text()
    assert "fast path on: redirects on, shortens on" in log
    assert "fast path off" not in log


# --- POST /shorten (hyperlinkr.fastshorten) ---------------------------------

# Creation limits out of the way, unless a test is about them.
ROOMY = {"create_rate_per_min": 1_000_000, "create_burst": 100_000}


@pytest.fixture
def maker(start_pair: StartPair) -> Pair:
    return start_pair(**ROOMY)


def shorten_request(
    body: bytes | dict[str, Any] | list[Any],
    *headers: str,
    content_type: str | None = "application/json",
) -> bytes:
    """A POST /shorten with Host, these lines, a type and a Content-Length."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = ["POST /shorten HTTP/1.1", "Host: 127.0.0.1", *headers]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(raw)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + raw


def test_shortens_and_their_refusals_are_the_same_bytes_and_fast(maker: Pair) -> None:
    taken = maker.shorten(alias="taken-alias")
    cases = [
        (shorten_request({"url": "https://example.com/new"}), 201),
        (
            shorten_request(
                {"url": "https://example.com/x", "redirect_status": 301, "ttl_s": 60}
            ),
            201,
        ),
        (
            shorten_request(
                {"url": "https://example.com/ua"}, f"User-Agent: {FIREFOX}"
            ),
            201,
        ),
        (shorten_request(b'{"url": "https://example.com/\xc3\xa9t\xc3\xa9"}'), 201),
        (
            shorten_request(
                {"url": "https://e.com/"},
                content_type="Application/JSON; charset=utf-8",
            ),
            201,
        ),
        (shorten_request({"url": "javascript:alert(1)"}), 422),
        (shorten_request({"url": "https://e.com/", "colour": "red"}), 422),
        (shorten_request({"url": "https://e.com/", "alias": taken}), 409),
        (shorten_request(b'{"url": '), 400),
        (shorten_request(b"[1, 2]"), 400),
        (shorten_request(b""), 400),
        (shorten_request(b"\xff\xfe"), 400),
        (shorten_request({"url": "https://e.com/"}, content_type="text/plain"), 415),
        (shorten_request({"url": "https://e.com/"}, content_type=None), 415),
        (shorten_request({"url": "https://e.com/"}, "Idempotency-Key: "), 400),
    ]
    for request, status in cases:
        before = maker.shorten_count()
        answer = maker.same_made(exchange, [request, get("healthz")])
        assert answer.statuses() == [status, 200], request
        assert not answer.closed
        assert maker.shorten_count() == before + 1, request


def test_a_shorten_that_asks_to_close_is_answered_and_closed_alike(
    maker: Pair,
) -> None:
    for header in (
        "Connection: close",
        "connection: CLOSE",
        "Connection: keep-alive, x",
    ):
        request = shorten_request({"url": "https://example.com/c"}, header)
        before = maker.shorten_count()
        answer = maker.same_made(exchange, [request, get("healthz")])
        assert answer.statuses() == [201], header
        assert answer.closed, header
        assert maker.shorten_count() == before + 1, header


def test_a_pipelined_mix_with_shortens_is_answered_in_order(maker: Pair) -> None:
    code = maker.shorten()
    round_trips(maker.fast_port, [get(code)])  # in L1
    requests = [
        shorten_request({"url": "https://example.com/p1"}),
        get(code),
        shorten_request(b"nope"),
        shorten_request({"url": "https://example.com/p2"}),
        get(code, method="HEAD"),
        get("Missing1"),
        shorten_request({"url": "https://example.com/p3"}),
        get(code),
    ]
    shortens, fast = maker.shorten_count(), maker.fast_count()
    answer = maker.same_made(exchange, requests)
    assert answer.statuses() == [201, 302, 400, 201, 302, 404, 201, 302]
    assert maker.shorten_count() - shortens == 3  # those before the miss
    assert maker.fast_count() - fast == 2


UNUSUAL_POSTS = [
    shorten_request({"url": "https://e.com/"}).replace(b"HTTP/1.1", b"HTTP/1.0"),
    shorten_request({"url": "https://e.com/"}).replace(b"/shorten", b"/shorten?a=1"),
    shorten_request({"url": "https://e.com/"}, "Content-Length: 17"),
    b"POST /shorten HTTP/1.1\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n11\r\n"
    b'{"url": "https:/"}\r\n0\r\n\r\n',
    b"POST /shorten HTTP/1.1\r\nContent-Type: application/json\r\n\r\n",
    shorten_request({"url": "https://e.com/" + "a" * 17000}),  # over the body limit
    shorten_request({"url": "https://e.com/"}, "X-Pad: " + "p" * HEADER_LIMIT_BYTES),
]


def test_unusual_posts_get_sanics_answer(maker: Pair) -> None:
    code = maker.shorten()
    for request in UNUSUAL_POSTS:
        before = maker.shorten_count()
        maker.same_made(exchange, [request, get(code)])
        assert maker.shorten_count() == before, request[:120]
    expecting = shorten_request({"url": "https://e.com/"}, "Expect: 100-continue")
    # Sanic's "100 Continue" comes first: three answers to two requests.
    answer = maker.same_made(exchange, [expecting, b"", get(code)])
    assert answer.statuses() == [100, 201, 302]
    assert maker.shorten_count() == before


def test_a_shorten_in_pieces_is_sanics_and_answered_alike(maker: Pair) -> None:
    request = shorten_request({"url": "https://example.com/pieces"})
    before = maker.shorten_count()
    for slice_bytes in (1, 30, len(request) - 5):
        answer = maker.same_made(
            exchange, [request, get("healthz")], slice_bytes=slice_bytes, pause_s=0.01
        )
        assert answer.statuses() == [201, 200], slice_bytes
    assert maker.shorten_count() == before


def test_idempotent_replays_are_the_same_bytes_on_both_paths(maker: Pair) -> None:
    key = "Idempotency-Key: order-77"
    request = shorten_request({"url": "https://example.com/once"}, key)
    first = round_trips(maker.node.port, [request])
    assert first.statuses() == [201]
    before = maker.shorten_count()
    replay = maker.same(round_trips, [request])  # same link, same moment
    assert replay.statuses() == [201]
    assert b"\r\nidempotent-replayed: true\r\n" in replay.raw
    assert (
        made(first).raw.split(b"\r\n\r\n")[1] == made(replay).raw.split(b"\r\n\r\n")[1]
    )
    other = shorten_request({"url": "https://example.com/other"}, key)
    assert maker.same(round_trips, [other]).statuses() == [422]
    assert maker.shorten_count() == before + 2


def test_api_keys_are_checked_alike(start_pair: StartPair) -> None:
    pair = start_pair(anonymous_create=False, **ROOMY)
    url = {"url": "https://example.com/k"}
    cases = [
        (shorten_request(url), 401),
        (shorten_request(url, "Authorization: Bearer nonsense"), 401),
        (shorten_request(url, "X-Api-Key: nonsense"), 401),
        (shorten_request(url, f"Authorization: Bearer {pair.manage_key}"), 403),
    ]
    for request, status in cases:
        before = pair.shorten_count()
        answer = pair.same(round_trips, [request])
        assert answer.statuses() == [status], request
        assert pair.shorten_count() == before + 1
    maker = create_key(
        pair.node.data_dir / "api-keys.json", "maker", frozenset({"links:create"})
    )
    allowed = shorten_request(url, f"Authorization: Bearer {maker}")

    # A worker looks at the key file again on its first request a second
    # (apikeys._RELOAD_CHECK_S) after its last look, so by now every one
    # of both paths will have read the new key.
    time.sleep(1.2)
    before = pair.shorten_count()
    assert pair.same_made(round_trips, [allowed]).statuses() == [201]
    assert pair.shorten_count() == before + 1


def test_the_creation_limit_is_one_budget_for_both_paths(start_pair: StartPair) -> None:
    pair = start_pair(create_rate_per_min=1, create_burst=3)
    request = shorten_request({"url": "https://example.com/limited"})
    answer = round_trips(pair.fast_port, [request] * 4)
    assert answer.statuses() == [201, 201, 201, 429]
    assert b"\r\nratelimit-remaining: 0\r\n" in answer.raw
    assert b"\r\nretry-after: " in answer.raw
    refused = round_trips(pair.node.port, [request])
    assert refused.statuses() == [429]
    assert pair.shorten_count() == 4


def test_bytes_sent_during_a_shorten_wait_for_its_answer(maker: Pair) -> None:
    """While the persister is stopped nothing is answered, then all in order."""
    code = maker.shorten()
    round_trips(maker.fast_port, [get(code)])  # in L1
    [persister] = maker.node.workers_of("persister")
    first = shorten_request({"url": "https://example.com/held1"})
    later = [
        get(code),
        shorten_request({"url": "https://example.com/held2"}),
        get(code),
    ]
    with socket.create_connection(("127.0.0.1", maker.fast_port), 10) as sock:
        os.kill(persister, signal.SIGSTOP)
        try:
            sock.sendall(first)
            time.sleep(0.2)
            sock.sendall(b"".join(later))
            sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                sock.recv(1)  # not even the redirect overtakes the shorten
            sock.settimeout(10)
        finally:
            os.kill(persister, signal.SIGCONT)
        answer = read_answers(sock, [False] * 4)
    assert answer.statuses() == [201, 302, 201, 302]
    assert not answer.closed
    assert b"example.com/held1" in answer.raw.split(b"HTTP/1.1 ")[1]


def test_a_shorten_in_flight_is_answered_before_the_worker_stops(maker: Pair) -> None:
    assert maker.server is not None
    [persister] = maker.node.workers_of("persister")
    request = shorten_request({"url": "https://example.com/stopping"})
    with socket.create_connection(("127.0.0.1", maker.fast_port), 10) as sock:
        os.kill(persister, signal.SIGSTOP)
        try:
            sock.sendall(request)
            time.sleep(0.2)
            maker.server.send_signal(signal.SIGTERM)
            time.sleep(0.5)
        finally:
            os.kill(persister, signal.SIGCONT)
        answer = read_answers(sock, [False])
    assert answer.statuses() == [201]
    assert answer.closed
    assert maker.server.wait(STOP_TIMEOUT_S) == 0
    code = json.loads(answer.raw.split(b"\r\n\r\n", 1)[1])["code"]
    assert round_trips(maker.node.port, [get(code)]).statuses() == [302]


def test_a_client_that_leaves_during_a_shorten_still_has_its_link_made(
    maker: Pair,
) -> None:
    [persister] = maker.node.workers_of("persister")
    url = "https://example.com/left-early"
    with socket.create_connection(("127.0.0.1", maker.fast_port), 10) as sock:
        os.kill(persister, signal.SIGSTOP)
        try:
            sock.sendall(shorten_request({"url": url}))
            time.sleep(0.2)
        finally:
            sock.close()
            time.sleep(0.2)
            os.kill(persister, signal.SIGCONT)
    reuse = shorten_request({"url": url, "reuse": True})

    def made_once() -> bool:
        return round_trips(maker.node.port, [reuse]).statuses() == [200]

    wait_for(made_once, "the link of the client that left")
    answer = maker.same_made(round_trips, [shorten_request({"url": url})])
    assert answer.statuses() == [201]  # and the worker serves on


def test_metrics_count_fast_shortens_as_the_middleware_would(maker: Pair) -> None:
    requests_total = "hyperlinkr_requests_total"
    before = scrape(maker.node)
    shortens = maker.shorten_count()
    sent = [shorten_request({"url": "https://example.com/m"})] * 2
    sent.append(shorten_request({"url": "https://e.com/"}, content_type="text/plain"))
    assert exchange(maker.fast_port, sent).statuses() == [201, 201, 415]
    assert maker.shorten_count() - shortens == 3
    after = before

    def grew(status: str) -> float:
        return total(after, requests_total, route="shorten", status=status) - total(
            before, requests_total, route="shorten", status=status
        )

    def flushed() -> bool:
        nonlocal after
        after = scrape(maker.node)
        return grew("201") >= 2 and grew("415") >= 1

    wait_for(flushed, "the fast server's tally to be flushed")
    assert (grew("201"), grew("415")) == (2, 1)
    latency = "hyperlinkr_request_duration_seconds_count"
    assert (
        total(after, latency, route="shorten") - total(before, latency, route="shorten")
        == 3
    )
