"""Creating links: one or many, reused or fresh, idempotent when asked.

`POST /shorten` and `POST /links/bulk` share this. The request has been
validated (`hyperlinkr.requests`) and allowed (`hyperlinkr.access`) by the
time it gets here; what is left is choosing codes, asking the store to
make the links durable, and shaping the answers.

Idempotency: a client that sends `Idempotency-Key` gets, for a repeat of
the same request with the same key, the answer of the first one (201 and
the same link), however many times it retries and on whichever worker.
Keys are scoped to the caller (the API key id, or the client IP when
anonymous), so two clients cannot collide, and stored as a digest with a
fingerprint of the request body: the same key with another body is a 422.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hyperlinkr.codes import new_code
from hyperlinkr.config import Settings
from hyperlinkr.links import Link
from hyperlinkr.linkstore import Idempotency
from hyperlinkr.problems import Problem
from hyperlinkr.requests import ShortenRequest
from hyperlinkr.store import CreateOutcome, LinkStore, StoreUnavailable

__all__ = ["Answer", "idempotency", "iso", "link_body", "shorten_many"]

_RANDOM_CODE_ATTEMPTS = 5
_MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True, slots=True)
class Answer:
    """One create's result: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def iso(ts_ms: int | None) -> str | None:
    if ts_ms is None:
        return None
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def link_body(base_url: str, link: Link) -> dict[str, Any]:
    return {
        "code": link.code,
        "short_url": f"{base_url}/{link.code}",
        "url": link.url,
        "created_at": iso(link.created_at_ms),
        "expires_at": iso(link.expires_at_ms),
        "redirect_status": link.redirect_status,
        "enabled": link.enabled,
        "forward_query": link.forward_query,
    }


def idempotency(header: str | None, principal: str, body: bytes) -> Idempotency | None:
    """The stored form of an Idempotency-Key header, or None without one."""
    if header is None:
        return None
    if not 1 <= len(header) <= _MAX_IDEMPOTENCY_KEY or not header.isprintable():
        raise Problem(
            400,
            f"Idempotency-Key must be 1 to {_MAX_IDEMPOTENCY_KEY} printable characters",
            slug="bad-idempotency-key",
        )
    digest = hashlib.sha256(f"{principal}\0{header}".encode()).hexdigest()
    return Idempotency(digest, hashlib.sha256(body).hexdigest())


def _new_link(wanted: ShortenRequest, settings: Settings, code: str) -> Link:
    forward = wanted.forward_query
    return Link(
        code=code,
        url=wanted.url,
        created_at_ms=int(time.time() * 1000),
        expires_at_ms=wanted.expires_at_ms,
        redirect_status=wanted.redirect_status or settings.default_redirect_status,
        forward_query=settings.default_forward_query if forward is None else forward,
    )


def _replay(store: LinkStore, once: Idempotency, base_url: str) -> Answer | None:
    earlier = store.idempotent(once.key_digest)
    if earlier is None:
        return None
    code, fingerprint = earlier
    if fingerprint != once.fingerprint:
        raise Problem(
            422,
            "this Idempotency-Key was used for a different request; use a new key",
            slug="idempotency-key-reused",
        )
    link = store.get(code)
    if link is None:
        raise Problem(410, f"the link {code!r} this key created was deleted since")
    return Answer(201, link_body(base_url, link), replayed=True)


def _reused(
    store: LinkStore, wanted: ShortenRequest, settings: Settings
) -> Answer | None:
    if not wanted.reuse or wanted.alias:
        return None
    status = wanted.redirect_status or settings.default_redirect_status
    link = store.reusable(wanted.url, status, int(time.time() * 1000))
    if link is None:
        return None
    return Answer(200, link_body(settings.public_base_url, link))


async def shorten_many(
    store: LinkStore,
    settings: Settings,
    wanted: list[ShortenRequest],
    once: Idempotency | None = None,
) -> list[Answer]:
    """Create every requested link; one answer each, in order.

    An idempotency key covers one link: `once` needs exactly one request.
    """
    if once is not None and len(wanted) != 1:
        raise ValueError("an idempotency key covers exactly one link")
    base = settings.public_base_url
    if once is not None:
        replay = _replay(store, once, base)
        if replay is not None:
            return [replay]
    answers: list[Answer | None] = [_reused(store, w, settings) for w in wanted]
    pending = [i for i, answer in enumerate(answers) if answer is None]
    _refuse_duplicate_aliases(wanted, pending, answers)
    pending = [i for i in pending if answers[i] is None]
    for _ in range(_RANDOM_CODE_ATTEMPTS):
        if not pending:
            break
        links = [
            _new_link(
                wanted[i], settings, wanted[i].alias or new_code(settings.code_length)
            )
            for i in pending
        ]
        try:
            results = await store.create_many([(link, once) for link in links])
        except StoreUnavailable as exc:
            raise Problem(503, str(exc), headers={"retry-after": "1"}) from exc
        retry = []
        for i, link, result in zip(pending, links, results, strict=True):
            if result.outcome is CreateOutcome.CREATED:
                answers[i] = Answer(201, link_body(base, link))
            elif result.outcome is CreateOutcome.REPLAYED and result.link is not None:
                answers[i] = Answer(201, link_body(base, result.link), replayed=True)
            elif wanted[i].alias:
                answers[i] = _alias_taken(wanted[i].alias or "")
            else:
                retry.append(i)
        pending = retry
    for i in pending:
        answers[i] = Answer(503, _problem(503, "could not find a free code; try again"))
    return [answer for answer in answers if answer is not None]


def _refuse_duplicate_aliases(
    wanted: list[ShortenRequest], pending: list[int], answers: list[Answer | None]
) -> None:
    seen: set[str] = set()
    for i in pending:
        alias = wanted[i].alias
        if alias is None:
            continue
        if alias in seen:
            answers[i] = _alias_taken(alias)
        seen.add(alias)


def _alias_taken(alias: str) -> Answer:
    problem = Problem(
        409, f"the alias {alias!r} is taken; choose another", slug="alias-taken"
    )
    return Answer(409, problem.body())


def _problem(status: int, detail: str) -> dict[str, Any]:
    return Problem(status, detail).body()
