"""Hostile input: each answered with the right 4xx problem, nothing changed."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.e2e.nodes import RunningNode

JSON = {"content-type": "application/json"}

# (description, method, path, headers, body, expected status)
CASES: list[tuple[str, str, str, dict[str, str], bytes, int]] = [
    ("malformed JSON", "POST", "/shorten", JSON, b'{"url": ', 400),
    ("JSON array", "POST", "/shorten", JSON, b'["https://example.com"]', 400),
    ("JSON string", "POST", "/shorten", JSON, b'"https://example.com"', 400),
    ("empty body", "POST", "/shorten", JSON, b"", 400),
    ("invalid UTF-8", "POST", "/shorten", JSON, b'{"url": "https://ex\xff.com"}', 400),
    (
        "wrong content type",
        "POST",
        "/shorten",
        {"content-type": "text/plain"},
        b'{"url": "https://example.com"}',
        415,
    ),
    ("no content type", "POST", "/shorten", {}, b'{"url": "https://example.com"}', 415),
    ("missing url", "POST", "/shorten", JSON, b"{}", 422),
    ("url is a number", "POST", "/shorten", JSON, b'{"url": 42}', 422),
    ("url is null", "POST", "/shorten", JSON, b'{"url": null}', 422),
    ("url is a list", "POST", "/shorten", JSON, b'{"url": ["https://a.example"]}', 422),
    (
        "unknown field",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com", "ttl": 5}',
        422,
    ),
    (
        "CR/LF in url",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com/\\r\\nSet-Cookie: a=b"}',
        422,
    ),
    ("space in url", "POST", "/shorten", JSON, b'{"url": "https://exa mple.com"}', 422),
    (
        "javascript: url",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "javascript:alert(1)"}',
        422,
    ),
    (
        "data: url",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "data:text/html,<script>alert(1)</script>"}',
        422,
    ),
    ("file: url", "POST", "/shorten", JSON, b'{"url": "file:///etc/passwd"}', 422),
    ("no host", "POST", "/shorten", JSON, b'{"url": "https:///path"}', 422),
    (
        "loopback host",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "http://127.0.0.1/admin"}',
        422,
    ),
    (
        "loopback as integer",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "http://2130706433/"}',
        422,
    ),
    ("private host", "POST", "/shorten", JSON, b'{"url": "http://10.1.2.3/"}', 422),
    (
        "link-local host",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "http://169.254.169.254/latest/meta-data"}',
        422,
    ),
    ("ipv6 loopback", "POST", "/shorten", JSON, b'{"url": "http://[::1]:8080/"}', 422),
    ("localhost", "POST", "/shorten", JSON, b'{"url": "http://localhost/"}', 422),
    (
        "credentials",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://user:pw@example.com/"}',
        422,
    ),
    (
        "another shortener",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://bit.ly/abc"}',
        422,
    ),
    (
        "url too long",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com/' + b"a" * 2100 + b'"}',
        422,
    ),
    (
        "body over the limit",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com/' + b"a" * 20000 + b'"}',
        413,
    ),
    (
        "alias too short",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com", "alias": "ab"}',
        422,
    ),
    (
        "alias with slash",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com", "alias": "a/b/c"}',
        422,
    ),
    (
        "alias reserved",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com", "alias": "stats"}',
        422,
    ),
    (
        "alias reserved, other case",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com", "alias": "MeTrIcS"}',
        422,
    ),
    (
        "alias not a string",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com", "alias": 12345}',
        422,
    ),
    (
        "bad redirect status",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com", "redirect_status": 200}',
        422,
    ),
    (
        "ttl negative",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com", "ttl_s": -5}',
        422,
    ),
    (
        "ttl not finite",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com", "ttl_s": 1e999}',
        400,
    ),
    (
        "expires_at in the past",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com", "expires_at": "2000-01-01T00:00:00Z"}',
        422,
    ),
    (
        "expires_at garbage",
        "POST",
        "/shorten",
        JSON,
        b'{"url": "https://example.com", "expires_at": "tomorrow"}',
        422,
    ),
    ("10 kB code", "GET", "/" + "a" * 10_000, {}, b"", 404),
    ("10 kB stats code", "GET", "/stats/" + "b" * 10_000, {}, b"", 404),
    ("40 kB code", "GET", "/" + "c" * 40_000, {}, b"", 431),
    ("40 kB header", "GET", "/abcdefg", {"x-long": "d" * 40_000}, b"", 431),
    ("code with dots", "GET", "/..%2F..%2Fetc%2Fpasswd", {}, b"", 404),
    ("non-ASCII code", "GET", "/%C3%A9t%C3%A9", {}, b"", 404),
    ("invalid UTF-8 code", "GET", "/%FF%FE", {}, b"", 404),
    ("wrong method on shorten", "GET", "/shorten", {}, b"", 405),
    ("wrong method on code", "DELETE", "/abcdefg", {}, b"", 405),
    ("wrong method on stats", "POST", "/stats/abcdefg", JSON, b"{}", 405),
    ("PUT on shorten", "PUT", "/shorten", JSON, b'{"url": "https://example.com"}', 405),
]


@pytest.fixture
def seeded(node: RunningNode) -> tuple[RunningNode, str]:
    made = httpx.post(node.url("/shorten"), json={"url": "https://example.com/keep"})
    assert made.status_code == 201
    return node, made.json()["code"]


def test_hostile_inputs_get_clear_problems(seeded: tuple[RunningNode, str]) -> None:
    node, code = seeded
    wrong = []
    with httpx.Client(base_url=node.base_url, timeout=10) as client:
        for name, method, path, headers, body, status in CASES:
            answer = client.request(method, path, headers=headers, content=body)
            problem = _problem_or_none(answer)
            if answer.status_code != status or problem is None:
                wrong.append((name, answer.status_code, answer.text[:200]))
    assert not wrong, wrong
    assert_unchanged(node, code)


def _problem_or_none(answer: httpx.Response) -> dict | None:
    if answer.headers.get("content-type") != "application/problem+json":
        return None
    body = answer.json()
    if not {"type", "title", "status", "detail"} <= set(body):
        return None
    return body if body["status"] == answer.status_code else None


def assert_unchanged(node: RunningNode, code: str) -> None:
    answer = httpx.get(node.url(f"/{code}"))
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://example.com/keep"
    fresh = httpx.post(node.url("/shorten"), json={"url": "https://example.com/after"})
    assert fresh.status_code == 201


def test_taken_alias_is_409_and_keeps_the_first_link(node: RunningNode) -> None:
    first = {"url": "https://example.com/first", "alias": "taken-one"}
    assert httpx.post(node.url("/shorten"), json=first).status_code == 201
    again = httpx.post(
        node.url("/shorten"),
        json={"url": "https://evil.example/", "alias": "taken-one"},
    )
    assert again.status_code == 409
    assert again.json()["type"].endswith("/alias-taken")
    assert httpx.get(node.url("/taken-one")).headers["location"] == first["url"]


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /abc HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 40_000 + b"\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /abc HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /shorten HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 99999999\r\n\r\n{}",
    ],
)
def test_malformed_http_is_refused_without_a_500(
    seeded: tuple[RunningNode, str], raw: bytes
) -> None:
    node, code = seeded
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(raw)
        reply = _read_reply(sock)
    status_line = reply.split(b"\r\n", 1)[0]
    assert reply == b"" or status_line.split()[1].startswith(b"4"), status_line
    assert_unchanged(node, code)


def _read_reply(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def test_the_longest_urls_shorten_and_redirect(node: RunningNode) -> None:
    """URLs at the 2048-character limit do not fit an L1 value: LMDB serves them."""
    for length in (2036, 2040, 2048):
        url = "https://example.com/" + "x" * (length - 20)
        made = httpx.post(node.url("/shorten"), json={"url": url})
        assert made.status_code == 201, made.text
        for _ in range(3):
            answer = httpx.get(node.url(f"/{made.json()['code']}"))
            assert answer.headers["location"] == url
