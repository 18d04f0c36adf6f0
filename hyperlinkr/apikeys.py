"""API keys: made once, shown once, stored only as a hash, with scopes.

A key reads `hlk_<id>_<secret>`: the id names the key in logs and files,
the secret is 32 random bytes (base64url). The keys file holds, per key,
its id, a label, its scopes and the SHA-256 of the secret. A slow password
hash would buy nothing here: the secret has 256 bits of entropy, so the
only attack on a leaked file is guessing 2^256 values. Comparison is in
constant time.

Web workers reload the file when its modification time changes (checked
at most once a second), so `hyperlinkr api-key create` and `revoke` take
effect without a restart.

Clients send the key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from hyperlinkr.errors import ConfigError
from hyperlinkr.filewatch import FileWatch
from hyperlinkr.scopes import SCOPES

__all__ = ["SCOPES", "ApiKey", "KeyRing", "create_key", "list_keys", "revoke_key"]

logger = logging.getLogger(__name__)

_PREFIX = "hlk_"
_RELOAD_CHECK_S = 1.0


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: never the secret itself."""

    key_id: str
    label: str
    scopes: frozenset[str]
    secret_sha256: str
    created_at_ms: int

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.key_id,
            "label": self.label,
            "scopes": sorted(self.scopes),
            "sha256": self.secret_sha256,
            "created_at_ms": self.created_at_ms,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _read(path: Path) -> list[ApiKey]:
    try:
        raw = orjson.loads(path.read_bytes())
        return [
            ApiKey(
                item["id"],
                item["label"],
                frozenset(item["scopes"]),
                item["sha256"],
                item["created_at_ms"],
            )
            for item in raw["keys"]
        ]
    except FileNotFoundError:
        return []
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"API keys file {path} is not valid ({exc!r}); fix it or remove it "
            "and create the keys again"
        ) from exc


def _write(path: Path, keys: list[ApiKey]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = orjson.dumps(
        {"keys": [key.to_json() for key in keys]}, option=orjson.OPT_INDENT_2
    )
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(body)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _check_scopes(scopes: frozenset[str]) -> None:
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise ConfigError(
            f"scopes {sorted(scopes)}: expected one or more of {', '.join(SCOPES)}"
        )


def create_key(path: Path, label: str, scopes: frozenset[str]) -> str:
    """Add a key to the file; returns the key, which is never stored."""
    _check_scopes(scopes)
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    keys = _read(path)
    keys.append(ApiKey(key_id, label, scopes, _digest(secret), int(time.time() * 1000)))
    _write(path, keys)
    return f"{_PREFIX}{key_id}_{secret}"


def revoke_key(path: Path, key_id: str) -> bool:
    """Remove the key with this id; False if there was none."""
    keys = _read(path)
    kept = [key for key in keys if key.key_id != key_id]
    if len(kept) == len(keys):
        return False
    _write(path, kept)
    return True


def list_keys(path: Path) -> list[ApiKey]:
    return _read(path)


class KeyRing:
    """The keys a web worker accepts, reloaded when the file changes."""

    def __init__(self, path: Path) -> None:
        self._watch = FileWatch(path)
        self._keys: dict[str, ApiKey] = {}
        self._checked_s = 0.0
        self._reload()

    def _reload(self) -> None:
        if not self._watch.changed():
            return
        try:
            keys = {key.key_id: key for key in _read(self._watch.path)}
        except ConfigError as exc:
            logger.error("%s; keeping the %d keys loaded before", exc, len(self._keys))
            return
        if keys != self._keys:
            self._keys = keys
            logger.info("loaded %d API keys from %s", len(keys), self._watch.path)

    def authenticate(self, presented: str) -> ApiKey | None:
        """The key `presented` is, or None if it is not a valid key."""
        now_s = time.monotonic()
        if now_s - self._checked_s >= _RELOAD_CHECK_S:
            self._checked_s = now_s
            self._reload()
        if not presented.startswith(_PREFIX):
            return None
        key_id, _, secret = presented[len(_PREFIX) :].partition("_")
        key = self._keys.get(key_id)
        if key is None or not secret:
            return None
        if not hmac.compare_digest(key.secret_sha256, _digest(secret)):
            return None
        return key
