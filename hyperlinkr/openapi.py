"""The OpenAPI 3.1 description of the HTTP API, served at /openapi.json.

Written by hand, next to nothing else, so it says what clients may rely
on rather than what a framework guesses; tests/e2e/test_openapi.py keeps
it true (every route of the app is described, every described route
exists) and runs schemathesis against a live node.
"""

from __future__ import annotations

from typing import Any

import orjson
from sanic import HTTPResponse, Request, Sanic

from hyperlinkr import __version__

__all__ = ["document", "register"]

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_CODE = {
    "name": "code",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 32},
}
_KEYED: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(status): _PROBLEM for status in statuses}


_LINK = {
    "type": "object",
    "required": ["code", "short_url", "url", "created_at", "redirect_status"],
    "properties": {
        "code": {"type": "string"},
        "short_url": {"type": "string", "format": "uri"},
        "url": {"type": "string", "format": "uri"},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "redirect_status": {"enum": [301, 302, 307, 308]},
        "enabled": {"type": "boolean"},
        "forward_query": {"type": "boolean"},
    },
}

_SHORTEN = {
    "type": "object",
    "required": ["url"],
    "additionalProperties": False,
    "properties": {
        "url": {"type": "string", "maxLength": 2048},
        "alias": {"type": "string", "pattern": "^[A-Za-z0-9_-]{3,32}$"},
        "ttl_s": {"type": "number", "minimum": 1},
        "expires_at": {"type": "string", "format": "date-time"},
        "redirect_status": {"enum": [301, 302, 307, 308]},
        "forward_query": {"type": "boolean"},
        "reuse": {"type": "boolean"},
    },
}

_PATCH = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "url": {"type": "string", "maxLength": 2048},
        "ttl_s": {"type": "number", "minimum": 1},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "redirect_status": {"enum": [301, 302, 307, 308]},
        "enabled": {"type": "boolean"},
        "forward_query": {"type": "boolean"},
    },
}

_COUNTS = {
    "type": "array",
    "items": {"type": "object", "additionalProperties": True},
}

_STATS = {
    "type": "object",
    "required": ["code", "clicks", "per_day", "recent"],
    "properties": {
        "code": {"type": "string"},
        "url": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "clicks": {
            "type": "object",
            "properties": {
                "total": {"type": "integer"},
                "human": {"type": "integer"},
                "bot": {"type": "integer"},
            },
        },
        "first_click_at": {"type": ["string", "null"]},
        "last_click_at": {"type": ["string", "null"]},
        "per_day": _COUNTS,
        "referrers": _COUNTS,
        "browsers": _COUNTS,
        "operating_systems": _COUNTS,
        "devices": _COUNTS,
        "recent": _COUNTS,
    },
}

_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "field": {"type": "string"},
        "rule": {"type": "string"},
    },
}


def _paths() -> dict[str, Any]:
    shorten_body = {
        "required": True,
        "content": {"application/json": {"schema": _ref("ShortenRequest")}},
    }
    return {
        "/shorten": {
            "post": {
                "summary": "Shorten a URL",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "maxLength": 255},
                    }
                ],
                "requestBody": shorten_body,
                "responses": {
                    "201": _json(_ref("Link"), "Created (after it is durable)"),
                    "200": _json(_ref("Link"), "An existing link was reused"),
                    **_problems(400, 401, 403, 409, 410, 413, 415, 422, 429, 503),
                },
            }
        },
        "/{code}": {
            "get": {
                "summary": "Redirect to the link's target (counts a click)",
                "parameters": [_CODE],
                "responses": {
                    "301": {"description": "Moved permanently"},
                    "302": {"description": "Found"},
                    "307": {"description": "Temporary redirect"},
                    "308": {"description": "Permanent redirect"},
                    **_problems(404, 410, 429),
                },
            },
            "head": {
                "summary": "The redirect, without counting a click",
                "parameters": [_CODE],
                "responses": {
                    "302": {"description": "Found"},
                    **_problems(404, 410, 429),
                },
            },
        },
        "/{code}/qr": {
            "get": {
                "summary": "The short URL as a QR code",
                "parameters": [
                    _CODE,
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"enum": ["svg", "png"]},
                    },
                    {
                        "name": "scale",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 40},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "QR code",
                        "content": {"image/svg+xml": {}, "image/png": {}},
                    },
                    **_problems(404, 422),
                },
            }
        },
        "/stats/{code}": {
            "get": {
                "summary": "Click analytics of a link",
                "parameters": [_CODE],
                "security": [{}, *_KEYED],
                "responses": {
                    "200": _json(
                        _ref("Stats"), "Stats, fresh within the flush interval"
                    ),
                    **_problems(401, 403, 404),
                },
            }
        },
        "/links/bulk": {
            "post": {
                "summary": "Create up to 100 links; one result per item",
                "security": _KEYED,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["links"],
                                "properties": {
                                    "links": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": 100,
                                        "items": _ref("ShortenRequest"),
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "results": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "status": {"type": "integer"},
                                            "link": _ref("Link"),
                                            "problem": _ref("Problem"),
                                        },
                                    },
                                }
                            },
                        },
                        "One result per link, in order",
                    ),
                    **_problems(400, 401, 403, 413, 415, 422, 503),
                },
            }
        },
        "/links/{code}": {
            "get": {
                "summary": "A link's details",
                "security": _KEYED,
                "parameters": [_CODE],
                "responses": {
                    "200": _json(_ref("Link"), "The link"),
                    **_problems(401, 403, 404),
                },
            },
            "patch": {
                "summary": "Change a link (durable before the answer)",
                "security": _KEYED,
                "parameters": [_CODE],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("PatchRequest")}},
                },
                "responses": {
                    "200": _json(_ref("Link"), "The changed link"),
                    **_problems(400, 401, 403, 404, 413, 415, 422, 503),
                },
            },
            "delete": {
                "summary": "Delete a link (durable before the answer)",
                "security": _KEYED,
                "parameters": [_CODE],
                "responses": {
                    "204": {"description": "Deleted"},
                    **_problems(401, 403, 404, 503),
                },
            },
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "responses": {"200": _json({"type": "object"}, "Alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: stores reachable, actors alive",
                "responses": {
                    "200": _json({"type": "object"}, "Ready"),
                    "503": _json({"type": "object"}, "Not ready; see checks"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of the whole node",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
            }
        },
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Hyperlinkr", "version": __version__},
        "paths": _paths(),
        "components": {
            "schemas": {
                "Link": _LINK,
                "ShortenRequest": _SHORTEN,
                "PatchRequest": _PATCH,
                "Stats": _STATS,
                "Problem": _PROBLEM_SCHEMA,
            },
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details",
                    "content": {
                        "application/problem+json": {"schema": _ref("Problem")}
                    },
                }
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


async def serve(request: Request) -> HTTPResponse:
    return HTTPResponse(request.app.ctx.openapi, content_type="application/json")


def register(app: Sanic[Any, Any]) -> None:
    app.ctx.openapi = orjson.dumps(document())
    app.add_route(serve, "/openapi.json", methods=["GET"], name="openapi")
