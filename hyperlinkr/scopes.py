"""The scopes an API key can hold (`hyperlinkr.apikeys` grants and checks them).

A module of its own so that the command line can name them without
importing what keys need: hashlib loads OpenSSL's libcrypto, about 4 MB
of every supervisor process that only parses arguments.
"""

from __future__ import annotations

__all__ = ["SCOPES"]

SCOPES = ("links:create", "links:manage", "stats:read")
