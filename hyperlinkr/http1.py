"""HTTP/1.1 bytes for the fast path: read a plain request, write an answer
exactly as Sanic would.

`parse_plain(data, start)` accepts only complete request heads whose
meaning is beyond doubt and answers `None` for everything else, which
then goes to Sanic: being stricter than Sanic costs a fallback, being
looser would answer a request Sanic would have refused. A plain head is

    GET|HEAD /<code>[?<query>] HTTP/1.1 CRLF
    (<token>:<value without CR or LF> CRLF)*
    CRLF

with a code of the shape `codes.could_be_code` accepts, a query of RFC
3986 characters only, and no Content-Length, Transfer-Encoding, Expect or
Upgrade header (no body to skip, nothing to negotiate). One regular
expression matches the whole head and a second picks out the few headers
that matter, so a plain head costs two passes in C. Header values are
read the way `sanic.http.http1` reads them: UTF-8 with surrogateescape,
leading whitespace stripped (`str.lstrip`), the first Referer, User-Agent
and X-Forwarded-For, and the last Connection header deciding keep-alive
(anything but exactly "keep-alive", in any case, means close).

`parse_plain` runs `hyperlinkr._wire.scan_plain`, the same reading in C,
which hands the head back to `parse_plain_reference` (the regular
expressions below, the definition) whenever a header value it would read
holds a byte above 0x7f: decoding, stripping and comparing those is
Unicode's business. tests/hyperlinkr/test_wire.py holds the two to the
same answers over generated heads.

`redirect_bytes` renders what `routes.redirect` returns after the app's
response middleware (Alt-Svc, when the h3 role is on), Sanic's
`Http.http1_response_header` and `HTTPResponse.processed_headers` are
done with it: status line, location, cache-control, [alt-svc,]
content-length: 0, connection, content-type, in that order, values
sanitised with Sanic's own table. tests/e2e/test_fastpath.py compares
the two byte for byte, so a change to either side shows up there.

`parse_post(data, start, path, max_head, max_body)` reads a complete POST
of `path` whose body came with it, and hands back the headers the way
`Http.http1_request_header` builds them (names lowercased, values
decoded with surrogateescape and `lstrip`ped, in order), so the fast path
can give the real handler a real Sanic `Request`. Plain here means: the
request line is exactly `POST <path> HTTP/1.1`, every header line is a
token, a colon and a value without CR or LF, there is exactly one
Content-Length of ASCII digits no larger than `max_body`, and there is no
Transfer-Encoding, Expect or Upgrade header. `response_bytes` puts any
complete `HTTPResponse` on the wire as `Http.http1_response_header` does
for a response sent whole.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from sanic import HTTPResponse
from sanic.headers import _HTTP1_STATUSLINES, format_http1_response
from sanic.helpers import has_message_body
from sanic.response.types import HEADER_TRANSLATION_TABLE

from hyperlinkr._wire import scan_plain
from hyperlinkr.codes import CODE_MAX_LENGTH
from hyperlinkr.routes import REDIRECT_CACHE_CONTROL

__all__ = [
    "REDIRECT_STATUSES",
    "PlainPost",
    "PlainRequest",
    "parse_plain",
    "parse_plain_reference",
    "parse_post",
    "redirect_bytes",
    "response_bytes",
]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

_QUERY = rb"\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*"
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# The whole head in one match: request line, header lines, the empty line.
_PLAIN_HEAD = re.compile(
    rb"(GET|HEAD) /([A-Za-z0-9_-]{1,%d})(%b)? HTTP/1\.1\r\n"
    rb"((?:%b:[^\r\n]*\r\n)*)\r\n" % (CODE_MAX_LENGTH, _QUERY, _TOKEN)
)
# The headers a redirect reads or that make a request not plain; searched
# from the CRLF ending the request line, so every name follows a CRLF.
_NOTABLE = re.compile(
    rb"\r\n(referer|user-agent|x-forwarded-for|connection"
    rb"|content-length|transfer-encoding|expect|upgrade):([^\r\n]*)",
    re.IGNORECASE,
)
_READ = frozenset({b"referer", b"user-agent", b"x-forwarded-for", b"connection"})
# A POST head's header block, and its lines one by one.
_HEADER_BLOCK = re.compile(rb"(?:%b:[^\r\n]*\r\n)*\r\n" % _TOKEN)
_HEADER_LINE = re.compile(rb"(%b):([^\r\n]*)\r\n" % _TOKEN)
# Headers that mean a body is not simply Content-Length bytes, or that
# there is something to negotiate first: such a POST is Sanic's.
_NOT_PLAIN_POST = frozenset({"transfer-encoding", "expect", "upgrade"})

_CACHE_CONTROL = REDIRECT_CACHE_CONTROL.translate(HEADER_TRANSLATION_TABLE).encode()
_TAIL = b"\r\ncontent-type: text/plain; charset=utf-8\r\n\r\n"


class PlainRequest(NamedTuple):
    """A plain GET or HEAD of one code, as far as a redirect cares."""

    end: int  # offset just past the head's CRLFCRLF
    code: bytes
    has_query: bool
    head_only: bool
    keep_alive: bool
    referer: str | None
    user_agent: str | None
    forwarded_for: str | None


class PlainPost(NamedTuple):
    """A plain POST with its whole body, ready to become a Sanic Request."""

    end: int  # offset just past the body
    head: bytes  # the request line and headers, as Sanic keeps them
    headers: list[tuple[str, str]]  # as Http.http1_request_header reads them
    body: bytes
    keep_alive: bool


def parse_plain(data: bytes, start: int) -> PlainRequest | None:
    """The request whose head starts at data[start], if complete and plain."""
    found = scan_plain(data, start, CODE_MAX_LENGTH, PlainRequest)
    if found is True:  # a value it reads is not ASCII: the reference decides
        return parse_plain_reference(data, start)
    return found


def parse_plain_reference(data: bytes, start: int) -> PlainRequest | None:
    """`parse_plain` by the regular expressions: the definition of plain."""
    head = _PLAIN_HEAD.match(data, start)
    if head is None:
        return None
    found: dict[bytes, bytes] = {}
    for name, value in _NOTABLE.findall(data, head.start(4) - 2, head.end(4)):
        name = name.lower()
        if name == b"connection" or name not in found:
            found[name] = value  # the first of each, but the last Connection
    if not found.keys() <= _READ:
        return None
    connection = _text(found.get(b"connection"))
    return PlainRequest(
        head.end(),
        head[2],
        head[3] is not None,
        head[1] == b"HEAD",
        connection is None or connection.lower() == "keep-alive",
        _text(found.get(b"referer")),
        _text(found.get(b"user-agent")),
        _text(found.get(b"x-forwarded-for")),
    )


def _text(raw: bytes | None) -> str | None:
    """A header value as Sanic reads it."""
    if raw is None:
        return None
    return raw.decode("utf-8", "surrogateescape").lstrip()


def parse_post(
    data: bytes, start: int, path: bytes, max_head: int, max_body: int
) -> PlainPost | None:
    """The POST of `path` at data[start], if plain and complete with its body.

    `max_head` is Sanic's header limit (a head that reaches it is not
    plain), `max_body` its body limit (REQUEST_MAX_SIZE).
    """
    line = b"POST " + path + b" HTTP/1.1\r\n"
    if not data.startswith(line, start):
        return None
    block_start = start + len(line)
    block = _HEADER_BLOCK.match(data, block_start, start + max_head + 4)
    if block is None or block.end() - 4 - start >= max_head:
        return None
    headers: list[tuple[str, str]] = []
    length: int | None = None
    keep_alive = True
    for raw_name, raw_value in _HEADER_LINE.findall(data, block_start, block.end()):
        name = raw_name.decode().lower()
        value = raw_value.decode("utf-8", "surrogateescape").lstrip()
        if name == "content-length":
            if length is not None or not (value.isascii() and value.isdigit()):
                return None
            length = int(value)
        elif name == "connection":
            keep_alive = value.lower() == "keep-alive"
        elif name in _NOT_PLAIN_POST:
            return None
        headers.append((name, value))
    body_start = block.end()
    if length is None or length > max_body or body_start + length > len(data):
        return None
    end = body_start + length
    head = data[start : body_start - 4]
    return PlainPost(end, head, headers, data[body_start:end], keep_alive)


def response_bytes(response: HTTPResponse, keep_alive: bool) -> bytes:
    """`response`, sent whole, as Http.http1_response_header writes it.

    Like Sanic it sets content-length and connection in the response's
    headers before it renders them.
    """
    headers = response.headers
    body = response.body or b""
    if has_message_body(response.status):  # type: ignore[no-untyped-call]
        headers["content-length"] = len(body)
    else:
        body = b""
        headers.pop("content-length", None)
        headers.pop("transfer-encoding", None)
    headers["connection"] = "keep-alive" if keep_alive else "close"
    return format_http1_response(response.status, response.processed_headers) + body


def redirect_bytes(
    status: int, location: str, keep_alive: bool, alt_svc: str | None = None
) -> bytes:
    """The whole response routes.redirect gives, as Sanic puts it on the wire.

    `alt_svc` is the value create_app's Alt-Svc middleware adds, if any.
    """
    parts = [
        _HTTP1_STATUSLINES[status],
        b"location: ",
        _header_value(location),
        b"\r\ncache-control: ",
        _CACHE_CONTROL,
    ]
    if alt_svc is not None:
        parts += (b"\r\nalt-svc: ", _header_value(alt_svc))
    parts += (
        b"\r\ncontent-length: 0\r\nconnection: ",
        b"keep-alive" if keep_alive else b"close",
        _TAIL,
    )
    return b"".join(parts)


def _header_value(value: str) -> bytes:
    """What HTTPResponse.processed_headers makes of a header value."""
    return value.translate(HEADER_TRANSLATION_TABLE).encode(errors="surrogateescape")
