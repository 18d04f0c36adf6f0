"""Who is asking, what they may do, and how often: keys, client IP, limits.

Authentication is by API key (`hyperlinkr.apikeys`). A request that
presents no key is anonymous; one that presents a wrong key is refused
with 401 even where anonymous access would do, so a mistyped key never
silently downgrades. A valid key without the needed scope is 403.

The client IP is the socket's peer, unless that peer is a trusted proxy
(`HYPERLINKR_TRUSTED_PROXIES`): then X-Forwarded-For is read from the
right, skipping trusted hops, and the first untrusted address is the
client. Entries left of it were written by the client and prove nothing.

Rate limits use the node-wide shared limiter (`shm.ratelimit`): creations
per principal (the key id, or the client IP when anonymous) and, looser,
redirects per client IP. A refusal is 429 with `Retry-After`; answers
carry `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence

from sanic import Request

from hyperlinkr.apikeys import ApiKey, KeyRing
from hyperlinkr.config import IpNetwork, Settings
from hyperlinkr.problems import Problem
from shm.ratelimit import Decision, RateLimiter

__all__ = ["Access", "client_ip", "rate_headers"]

_BEARER = "bearer "


def client_ip(
    peer: str, forwarded_for: str | None, trusted: Sequence[IpNetwork]
) -> str:
    """The client's address, believing X-Forwarded-For only from `trusted`."""
    if not trusted or not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _is_address(hop) else peer
    return hops[0] if hops and _is_address(hops[0]) else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_trusted(text: str, trusted: Sequence[IpNetwork]) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def rate_headers(limit: int, decision: Decision) -> dict[str, str]:
    headers = {
        "ratelimit-limit": str(limit),
        "ratelimit-remaining": str(decision.remaining),
        "ratelimit-reset": str(math.ceil(decision.reset_s)),
    }
    if not decision.allowed:
        headers["retry-after"] = str(max(1, math.ceil(decision.retry_after_s)))
    return headers


class Access:
    """One per web worker: the key ring, the limiter and the settings."""

    def __init__(self, settings: Settings, keys: KeyRing, limiter: RateLimiter) -> None:
        self._settings = settings
        self._keys = keys
        self._limiter = limiter
        self._trusted = settings.trusted_proxies

    def client_ip(self, request: Request) -> str:
        return client_ip(
            request.conn_info.client_ip if request.conn_info else "",
            request.headers.get("x-forwarded-for"),
            self._trusted,
        )

    def key_of(self, request: Request) -> ApiKey | None:
        """The presented key; None when there is none; 401 when it is wrong."""
        presented = _presented_key(request)
        if presented is None:
            return None
        key = self._keys.authenticate(presented)
        if key is None:
            raise Problem(
                401,
                "the API key is not valid (revoked or mistyped)",
                headers={"www-authenticate": 'Bearer realm="hyperlinkr"'},
            )
        return key

    def require(self, request: Request, scope: str) -> ApiKey:
        """The presented key if it has `scope`; 401 or 403 otherwise."""
        key = self.key_of(request)
        if key is None:
            raise Problem(
                401,
                f"this needs an API key with the scope {scope!r}; send it as "
                "'Authorization: Bearer <key>'",
                headers={"www-authenticate": 'Bearer realm="hyperlinkr"'},
            )
        if scope not in key.scopes:
            raise Problem(
                403,
                f"API key {key.key_id!r} lacks the scope {scope!r} "
                f"(it has: {', '.join(sorted(key.scopes))})",
            )
        return key

    def may_create(self, request: Request) -> ApiKey | None:
        """Check a create is allowed at all; the key, or None if anonymous."""
        if self._settings.anonymous_create and _presented_key(request) is None:
            return None
        return self.require(request, "links:create")

    def may_read_stats(self, request: Request) -> None:
        if not self._settings.public_stats or _presented_key(request) is not None:
            self.require(request, "stats:read")

    def spend_create(self, request: Request, key: ApiKey | None) -> dict[str, str]:
        """Spend one creation; the RateLimit headers, or 429 when none is left."""
        per_min = self._settings.create_rate_per_min
        if per_min == 0:
            return {}
        who = b"key:" + key.key_id.encode() if key else b"ip:" + self._ip(request)
        decision = self._limiter.acquire(
            b"c" + who, per_min / 60, self._settings.create_burst
        )
        headers = rate_headers(self._settings.create_burst, decision)
        if not decision.allowed:
            raise _too_many("link creations", decision, headers)
        return headers

    def spend_redirect(self, ip: str) -> None:
        per_s = self._settings.redirect_rate_per_s
        if per_s == 0:
            return
        decision = self._limiter.acquire(
            b"r" + ip.encode(), per_s, self._settings.redirect_burst
        )
        if not decision.allowed:
            headers = rate_headers(self._settings.redirect_burst, decision)
            raise _too_many("redirects", decision, headers)

    def _ip(self, request: Request) -> bytes:
        return self.client_ip(request).encode()


def _presented_key(request: Request) -> str | None:
    header: str | None = request.headers.get("authorization")
    if header and header[: len(_BEARER)].lower() == _BEARER:
        return header[len(_BEARER) :].strip()
    key: str | None = request.headers.get("x-api-key")
    return key


def _too_many(what: str, decision: Decision, headers: dict[str, str]) -> Problem:
    return Problem(
        429,
        f"too many {what} from this client; retry in "
        f"{max(1, math.ceil(decision.retry_after_s))} s",
        headers=headers,
    )
