"""Visitor hashes: counting distinct visitors without keeping who they are.

A visitor hash is a keyed BLAKE2b digest (64 bits) of the client address,
the user agent and the UTC day number. The key (salt) is shared by every
node of a deployment through Dragonfly (`hl:salt`, made once with SET NX),
so one visitor hashes alike on every node and the per-day HyperLogLogs
merge. Because the day is hashed in, the same visitor on two days gives
unrelated hashes; because the salt never leaves the servers, a hash cannot
be tested against a guessed address. Neither the address nor the hash is
stored anywhere but in HyperLogLog registers.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from hyperlinkr.dragonfly import SALT_KEY

__all__ = ["VisitorHasher", "shared_salt"]

_DAY_MS = 86_400_000


class VisitorHasher:
    def __init__(self, salt: bytes) -> None:
        self._salt = salt[:64]

    def __call__(self, address: str, user_agent: str | None, now_ms: int) -> int:
        digest = hashlib.blake2b(
            f"{now_ms // _DAY_MS}\0{address}\0{user_agent or ''}".encode(),
            digest_size=8,
            key=self._salt,
        ).digest()
        return int.from_bytes(digest, "little")


async def shared_salt(client: Any) -> bytes:
    """The deployment's salt from Dragonfly, made by the first who asks."""
    await client.set(SALT_KEY, secrets.token_hex(32), nx=True)
    value = await client.get(SALT_KEY)
    return bytes(value)
