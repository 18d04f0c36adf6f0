"""RFC 9457 problem details: the one shape of every error answer.

Handlers raise `Problem` for refusals they decide themselves; everything
Sanic raises on its own (unknown route, wrong method, oversized body,
malformed request) goes through `problem_for_exception`, so a client never
sees an HTML error page or a bare 500 for something it sent.

`type` is a stable URI per kind of problem under `TYPE_BASE`; clients
match on it, and `title` is its short human name. `detail` says what was
wrong with this particular request and how to fix it.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from sanic import HTTPResponse, Request
from sanic.exceptions import PayloadTooLarge, SanicException

__all__ = ["TYPE_BASE", "Problem", "problem_for_exception", "problem_response"]

logger = logging.getLogger(__name__)

TYPE_BASE = "https://hyperlinkr.dev/problems/"
CONTENT_TYPE = "application/problem+json"

_TITLES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    408: ("request-timeout", "Request timeout"),
    409: ("conflict", "Conflict"),
    410: ("gone", "Gone"),
    413: ("payload-too-large", "Payload too large"),
    414: ("uri-too-long", "URI too long"),
    415: ("unsupported-media-type", "Unsupported media type"),
    416: ("range-not-satisfiable", "Range not satisfiable"),
    417: ("expectation-failed", "Expectation failed"),
    422: ("unprocessable-content", "Unprocessable content"),
    429: ("too-many-requests", "Too many requests"),
    431: ("headers-too-large", "Request header fields too large"),
    500: ("internal-error", "Internal server error"),
    503: ("unavailable", "Service unavailable"),
}


class Problem(Exception):
    """An error answer: status, a slug for `type`, and a detail."""

    def __init__(
        self,
        status: int,
        detail: str,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        default_slug, default_title = _TITLES.get(status, ("error", "Error"))
        self.status = status
        self.detail = detail
        self.slug = slug or default_slug
        self.title = title or default_title
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            body["instance"] = instance
        body.update(self.extra)
        return body


def problem_response(problem: Problem, instance: str | None = None) -> HTTPResponse:
    return HTTPResponse(
        orjson.dumps(problem.body(instance)),
        status=problem.status,
        headers=problem.headers,
        content_type=CONTENT_TYPE,
    )


def problem_for_exception(request: Request | None, exc: BaseException) -> HTTPResponse:
    """The problem answer for any exception that escaped a handler."""
    if isinstance(exc, Problem):
        return problem_response(exc, _path(request))
    if isinstance(exc, SanicException) and exc.status_code < 500:
        problem = Problem(
            _status_of(exc), _sanic_detail(exc), headers=_sanic_headers(exc)
        )
        return problem_response(problem, _path(request))
    logger.error(
        "unhandled error answering %s: %r",
        _path(request) or "a request",
        exc,
        exc_info=exc,
    )
    problem = Problem(
        500, "the server failed to answer this request; the error was logged"
    )
    return problem_response(problem)


def _path(request: Request | None) -> str | None:
    if request is None:
        return None
    try:
        return request.path
    except Exception:
        return None


def _status_of(exc: SanicException) -> int:
    # Sanic reports oversized headers as 413; 431 is the status that says so.
    if isinstance(exc, PayloadTooLarge) and "header" in str(exc).lower():
        return 431
    return int(exc.status_code)


def _sanic_detail(exc: SanicException) -> str:
    message = str(exc) or "the request was refused"
    return message[:300]


def _sanic_headers(exc: SanicException) -> dict[str, str]:
    headers = getattr(exc, "headers", None) or {}
    return {str(k): str(v) for k, v in dict(headers).items()}
