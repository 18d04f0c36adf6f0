"""Reading plain requests and writing answers for the fast path."""

from __future__ import annotations

import pytest
from sanic import HTTPResponse
from sanic.headers import format_http1_response

from hyperlinkr.http1 import (
    PlainPost,
    PlainRequest,
    parse_plain,
    parse_post,
    redirect_bytes,
    response_bytes,
)
from hyperlinkr.routes import REDIRECT_CACHE_CONTROL


def head(*lines: str, start: str = "GET /abc1234 HTTP/1.1") -> bytes:
    return ("\r\n".join((start, *lines)) + "\r\n\r\n").encode("latin-1")


def test_a_bare_get_is_plain_and_keeps_the_connection_alive() -> None:
    request = parse_plain(head(), 0)
    assert request == PlainRequest(
        end=len(head()),
        code=b"abc1234",
        has_query=False,
        head_only=False,
        keep_alive=True,
        referer=None,
        user_agent=None,
        forwarded_for=None,
    )


def test_parsing_starts_where_told_and_ends_past_the_empty_line() -> None:
    first, second = head(), head("Host: x", start="HEAD /Zz_-9 HTTP/1.1")
    request = parse_plain(first + second + b"GET /partial", len(first))
    assert request is not None
    assert (request.code, request.head_only) == (b"Zz_-9", True)
    assert request.end == len(first) + len(second)


def test_headers_are_read_as_sanic_reads_them() -> None:
    request = parse_plain(
        head(
            "REFERER: \t https://one.example/ ",
            "Referer: https://two.example/",
            "user-agent:Agent/1 \xe9\xff",
            "X-Forwarded-For: 203.0.113.1, 10.0.0.1",
        ),
        0,
    )
    assert request is not None
    assert request.referer == "https://one.example/ "  # the first, lstripped
    assert request.user_agent == "Agent/1 \udce9\udcff"  # surrogateescape
    assert request.forwarded_for == "203.0.113.1, 10.0.0.1"


@pytest.mark.parametrize(
    ("lines", "keep_alive"),
    [
        ((), True),
        (("Connection: keep-alive",), True),
        (("Connection: KEEP-ALIVE",), True),
        (("Connection: close",), False),
        (("Connection: keep-alive, Upgrade",), False),
        (("Connection: keep-alive ",), False),
        (("Connection: close", "Connection: keep-alive"), True),  # the last wins
        (("Connection: keep-alive", "connection: close"), False),
    ],
)
def test_keep_alive_follows_the_last_connection_header(
    lines: tuple[str, ...], keep_alive: bool
) -> None:
    request = parse_plain(head(*lines), 0)
    assert request is not None
    assert request.keep_alive is keep_alive


@pytest.mark.parametrize(
    ("target", "has_query"),
    [
        ("/abc1234?utm_source=x&a=%20b", True),
        ("/abc1234?", True),
        ("/abc1234?a=/b?c:d@e!$'()*+,;=~", True),
    ],
)
def test_a_query_of_uri_characters_is_plain(target: str, has_query: bool) -> None:
    request = parse_plain(head(start=f"GET {target} HTTP/1.1"), 0)
    assert request is not None
    assert request.has_query is has_query


@pytest.mark.parametrize(
    "data",
    [
        head(start="GET /abc1234 HTTP/1.0"),
        head(start="get /abc1234 HTTP/1.1"),
        head(start="POST /abc1234 HTTP/1.1"),
        head(start="GET /abc1234/ HTTP/1.1"),
        head(start="GET /stats/abc1234 HTTP/1.1"),
        head(start="GET /abc%31234 HTTP/1.1"),
        head(start="GET /abc1234?a=%zz HTTP/1.1"),
        head(start="GET /abc1234?a=<b> HTTP/1.1"),
        head(start="GET /abc1234#top HTTP/1.1"),
        head(start="GET /abc1234  HTTP/1.1"),
        head(start="GET /" + "a" * 33 + " HTTP/1.1"),
        head("Content-Length: 0"),
        head("transfer-encoding: chunked"),
        head("Expect: 100-continue"),
        head("Upgrade: websocket"),
        head("No colon"),
        head("X-A: 1", " folded"),
        head("Referer : https://a.example/"),
        head("X-Bare: a\rb"),
        head("X-Bare: a\nb"),
        b"GET /abc1234 HTTP/1.1\r\nHost: x\r\n",  # incomplete
        b"\r\n" + head(),
    ],
)
def test_anything_unusual_is_not_plain(data: bytes) -> None:
    assert parse_plain(data, 0) is None


def sanic_bytes(
    status: int, location: str, keep_alive: bool, alt_svc: str | None = None
) -> bytes:
    """What Sanic's http1_response_header makes of routes.redirect's answer."""
    response = HTTPResponse(
        b"",
        status=status,
        headers={"location": location, "cache-control": REDIRECT_CACHE_CONTROL},
        content_type="text/plain; charset=utf-8",
    )
    if alt_svc is not None:  # what create_app's response middleware does
        response.headers["alt-svc"] = alt_svc
    response.headers["content-length"] = 0
    response.headers["connection"] = "keep-alive" if keep_alive else "close"
    return format_http1_response(status, response.processed_headers)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize(
    "location",
    [
        "https://example.com/a?b=1",
        "https://example.com/\u00e9t\u00e9",
        "http://x/\r\nA",
    ],
)
def test_redirect_bytes_are_sanics(
    status: int, keep_alive: bool, location: str
) -> None:
    assert redirect_bytes(status, location, keep_alive) == sanic_bytes(
        status, location, keep_alive
    )


def test_redirect_bytes_carry_alt_svc_where_the_middleware_puts_it() -> None:
    alt_svc = 'h3=":4433"; ma=86400'
    expected = sanic_bytes(302, "https://example.com/", True, alt_svc)
    assert redirect_bytes(302, "https://example.com/", True, alt_svc) == expected
    assert b'\r\nalt-svc: h3=":4433"; ma=86400\r\ncontent-length: 0\r\n' in expected


HEAD_LIMIT = 16384
BODY_LIMIT = 1000


def post(*lines: str, body: bytes = b'{"url":"https://e.com/"}') -> bytes:
    """A POST /shorten with these header lines and a Content-Length."""
    start = "POST /shorten HTTP/1.1"
    head = "\r\n".join((start, *lines, f"Content-Length: {len(body)}"))
    return (head + "\r\n\r\n").encode("latin-1") + body


def parse(data: bytes, start: int = 0) -> PlainPost | None:
    return parse_post(data, start, b"/shorten", HEAD_LIMIT, BODY_LIMIT)


def test_a_post_with_its_body_is_plain_with_headers_as_sanic_reads_them() -> None:
    data = post("Host: x", "Content-Type:   application/json ", "X-Ua: \xc3\xa9t\xff")
    found = parse(data)
    assert found == PlainPost(
        end=len(data),
        head=data[: data.index(b"\r\n\r\n")],
        headers=[
            ("host", "x"),
            ("content-type", "application/json "),  # lstrip only, as Sanic
            ("x-ua", "\u00e9t\udcff"),  # UTF-8, surrogateescape
            ("content-length", "24"),
        ],
        body=b'{"url":"https://e.com/"}',
        keep_alive=True,
    )


def test_a_post_ends_past_its_body_and_parsing_starts_where_told() -> None:
    first, second = post(body=b"{}"), post("Connection: close", body=b"[1]")
    found = parse(first + second + b"GET /abc HTTP/1.1\r\n", len(first))
    assert found is not None
    assert (found.body, found.keep_alive) == (b"[1]", False)
    assert found.end == len(first) + len(second)


def test_a_post_without_headers_but_a_length_and_one_of_length_zero() -> None:
    assert parse(post(body=b"")) is not None
    bare = b"POST /shorten HTTP/1.1\r\n\r\n"
    assert parse(bare) is None  # no Content-Length: Sanic reads no body


@pytest.mark.parametrize(
    "data",
    [
        post(body=b"{}")[:-1],  # the body has not all arrived
        post(body=b"x" * (BODY_LIMIT + 1)),  # Sanic refuses it with 413
        post("Content-Length: 2", body=b"{}"),  # two lengths
        post("Transfer-Encoding: chunked", body=b"{}"),
        post("Expect: 100-continue", body=b"{}"),
        post("Upgrade: h2c", body=b"{}"),
        post(body=b"{}").replace(b"Length: 2", b"Length: +2"),
        post(body=b"{}").replace(b"Length: 2", b"Length: 2 "),
        post(body=b"{}").replace(b"Length: 2", b"Length: \xd9\xa2"),  # Arabic 2
        post(body=b"{}").replace(b"/shorten", b"/shorten?x=1"),
        post(body=b"{}").replace(b"/shorten", b"/shorten/"),
        post(body=b"{}").replace(b"HTTP/1.1", b"HTTP/1.0"),
        post(body=b"{}").replace(b"POST", b"post"),
        post("No colon here", body=b"{}"),
        post(" folded: line", body=b"{}"),
        post("Bad name: 1", body=b"{}"),
        post("X-Bare: a\rb", body=b"{}"),
        post("X-Pad: " + "p" * HEAD_LIMIT, body=b"{}"),
    ],
)
def test_anything_unusual_about_a_post_is_not_plain(data: bytes) -> None:
    assert parse(data) is None


def test_a_head_just_under_the_limit_is_plain_and_at_it_is_not() -> None:
    bare = post("X-Pad: ", body=b"")
    pad = HEAD_LIMIT - 1 - bare.index(b"\r\n\r\n")
    under = post("X-Pad: " + "p" * pad, body=b"")
    assert under.index(b"\r\n\r\n") == HEAD_LIMIT - 1
    assert parse(under) is not None
    assert parse(post("X-Pad: " + "p" * (pad + 1), body=b"")) is None


def test_response_bytes_are_a_whole_response_as_sanic_sends_it() -> None:
    response = HTTPResponse(
        b'{"a":1}',
        status=201,
        headers={"ratelimit-limit": "20", "x-odd": "a\r\nb"},
        content_type="application/json",
    )
    assert response_bytes(response, True) == (
        b"HTTP/1.1 201 Created\r\nratelimit-limit: 20\r\nx-odd: ab\r\n"
        b"content-length: 7\r\nconnection: keep-alive\r\n"
        b'content-type: application/json\r\n\r\n{"a":1}'
    )
    closing = HTTPResponse(b"", status=204, headers={"content-length": "3"})
    assert response_bytes(closing, False) == (
        b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
    )
