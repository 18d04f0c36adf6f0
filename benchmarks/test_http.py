"""Micro benchmarks of what a web worker does per request besides storing.

Groups (one pytest-benchmark table each), each with a baseline measured in
the same run:

    codes           new_code(7), one random code; beside
                    secrets.token_bytes(10), the one system call it makes
    url-policy      check_url of typical long URLs (scheme, authority,
                    IDNA, private-address and blocklist rules, rebuild);
                    beside urllib.parse.urlsplit of the same URLs, the
                    parse it starts with (4,096 distinct URLs in turn,
                    past urlsplit's cache of recent ones, as in service)
    redirect-parse  http1.parse_plain of a browser's GET (eight headers);
                    beside finding the head's end, the least any parser
                    does
    shorten-parse   http1.parse_post of a curl-like POST /shorten with
                    its body; beside the same find
    redirect-bytes  http1.redirect_bytes; beside what Sanic does to send
                    routes.redirect's answer (HTTPResponse, its headers
                    sanitised, format_http1_response)
    shorten-bytes   http1.response_bytes of routes.shorten's 201 answer,
                    built the way the handler builds it; beside orjson
                    dumping its body alone

Nothing here is asserted about time: read the ratios off the tables (see
benchmarks/README.md for the compare workflow). The assertions check that
each function computed what it claims, and hold with --benchmark-disable,
where each runs once.
"""

from __future__ import annotations

import itertools
import secrets
from urllib.parse import urlsplit

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from sanic import HTTPResponse
from sanic.headers import format_http1_response

from hyperlinkr.codes import new_code
from hyperlinkr.http1 import parse_plain, parse_post, redirect_bytes, response_bytes
from hyperlinkr.routes import REDIRECT_CACHE_CONTROL, json_response
from hyperlinkr.urlpolicy import UrlPolicy, check_url

URL = (
    "https://www.example.com/articles/2026/12/why-short-links-matter"
    "?utm_source=newsletter&utm_medium=email&utm_campaign=winter#part-2"
)
URLS = [f"{URL[:-7]}{i}#part-2" for i in range(4096)]
BROWSER_GET = (
    b"GET /Ab3dE9x HTTP/1.1\r\nHost: hlr.example\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 "
    b"Firefox/128.0\r\nAccept: text/html,application/xhtml+xml\r\n"
    b"Accept-Language: en-GB,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"Referer: https://news.example.org/story\r\nConnection: keep-alive\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n\r\n"
)
_BODY = orjson.dumps({"url": URL})
SHORTEN_POST = (
    b"POST /shorten HTTP/1.1\r\nHost: hlr.example\r\nUser-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%b" % (len(_BODY), _BODY)
)
CREATED = {
    "code": "Ab3dE9x",
    "short_url": "https://hlr.example/Ab3dE9x",
    "url": URL,
    "created_at": "2026-12-04T12:00:00.000Z",
    "expires_at": None,
    "redirect_status": 302,
    "enabled": True,
    "forward_query": False,
}
RATE = {"ratelimit-limit": "20", "ratelimit-remaining": "19", "ratelimit-reset": "3"}


@pytest.mark.benchmark(group="codes")
def test_new_code(benchmark: BenchmarkFixture) -> None:
    code = benchmark(new_code, 7)
    assert len(code) == 7 and code.isalnum()


@pytest.mark.benchmark(group="codes")
def test_baseline_token_bytes(benchmark: BenchmarkFixture) -> None:
    assert len(benchmark(secrets.token_bytes, 10)) == 10


@pytest.mark.benchmark(group="url-policy")
def test_check_url(benchmark: BenchmarkFixture) -> None:
    urls, policy = itertools.cycle(URLS), UrlPolicy()
    assert benchmark(lambda: check_url(next(urls), policy)) in URLS


@pytest.mark.benchmark(group="url-policy")
def test_baseline_urlsplit(benchmark: BenchmarkFixture) -> None:
    urls = itertools.cycle(URLS)
    parts = benchmark(lambda: urlsplit(next(urls)))
    assert parts.hostname == "www.example.com"


@pytest.mark.benchmark(group="redirect-parse")
def test_parse_plain(benchmark: BenchmarkFixture) -> None:
    request = benchmark(parse_plain, BROWSER_GET, 0)
    assert request is not None and request.code == b"Ab3dE9x"
    assert request.referer == "https://news.example.org/story"


@pytest.mark.benchmark(group="redirect-parse")
def test_baseline_find_head_end(benchmark: BenchmarkFixture) -> None:
    assert benchmark(BROWSER_GET.find, b"\r\n\r\n") == len(BROWSER_GET) - 4


@pytest.mark.benchmark(group="shorten-parse")
def test_parse_post(benchmark: BenchmarkFixture) -> None:
    post = benchmark(parse_post, SHORTEN_POST, 0, b"/shorten", 16384, 16384)
    assert post is not None and post.body == _BODY
    assert ("content-type", "application/json") in post.headers


@pytest.mark.benchmark(group="shorten-parse")
def test_baseline_find_post_head_end(benchmark: BenchmarkFixture) -> None:
    assert benchmark(SHORTEN_POST.find, b"\r\n\r\n") > 0


def sanic_redirect(location: str) -> bytes:
    response = HTTPResponse(
        b"",
        status=302,
        headers={"location": location, "cache-control": REDIRECT_CACHE_CONTROL},
        content_type="text/plain; charset=utf-8",
    )
    response.headers["content-length"] = 0
    response.headers["connection"] = "keep-alive"
    return format_http1_response(302, response.processed_headers)


@pytest.mark.benchmark(group="redirect-bytes")
def test_redirect_bytes(benchmark: BenchmarkFixture) -> None:
    assert benchmark(redirect_bytes, 302, URL, True) == sanic_redirect(URL)


@pytest.mark.benchmark(group="redirect-bytes")
def test_baseline_sanic_redirect_response(benchmark: BenchmarkFixture) -> None:
    assert benchmark(sanic_redirect, URL).startswith(b"HTTP/1.1 302 Found\r\n")


def shorten_answer() -> bytes:
    return response_bytes(json_response(CREATED, 201, dict(RATE)), True)


@pytest.mark.benchmark(group="shorten-bytes")
def test_shorten_response_bytes(benchmark: BenchmarkFixture) -> None:
    raw = benchmark(shorten_answer)
    assert raw.startswith(b"HTTP/1.1 201 Created\r\nratelimit-limit: 20\r\n")
    assert raw.endswith(orjson.dumps(CREATED))


@pytest.mark.benchmark(group="shorten-bytes")
def test_baseline_dump_body(benchmark: BenchmarkFixture) -> None:
    assert benchmark(orjson.dumps, CREATED).startswith(b'{"code":"Ab3dE9x"')
