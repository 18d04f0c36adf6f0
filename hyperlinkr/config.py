"""Settings for one node, read once from the environment.

Every setting is an environment variable named `HYPERLINKR_<NAME>`, where
`<NAME>` is the attribute of `Settings` in upper case. The one exception is
the port: honcho exports a plain `PORT` to each process it starts, so `PORT`
is honoured when `HYPERLINKR_PORT` is unset.

`Settings.from_env()` validates everything up front and raises `ConfigError`
naming the variable, the value it had, and what it should be, so a bad
deployment fails at start rather than on the first request. `SETTINGS_DOC`
is the one table of names, defaults and meanings; `.env.example` and the
docs are generated from it (`render_env_example()`).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from hyperlinkr.errors import ConfigError, UrlRefused
from hyperlinkr.logs import FORMATS as _LOG_FORMATS
from hyperlinkr.urlpolicy import to_ascii_host

__all__ = ["SETTINGS_DOC", "SettingDoc", "Settings", "render_env_example"]

PREFIX = "HYPERLINKR_"

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NODE_NAME = re.compile(r"[a-z0-9_-]{1,24}")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_NEVER_ALLOWED_SCHEMES = frozenset({"javascript", "data", "vbscript", "file"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_REDIRECT_STATUSES = (301, 302, 307, 308)
_MAX_WORKERS = 64

DEFAULT_SHORTENER_HOSTS = frozenset(
    {
        "bit.ly",
        "tinyurl.com",
        "t.co",
        "goo.gl",
        "ow.ly",
        "is.gd",
        "buff.ly",
        "cutt.ly",
        "rebrand.ly",
        "shorturl.at",
    }
)


class SettingDoc(NamedTuple):
    """One row of the settings table: variable, default, meaning."""

    env_name: str
    default: str
    meaning: str


def _doc(name: str, default: str, meaning: str) -> SettingDoc:
    return SettingDoc(PREFIX + name, default, meaning)


SETTINGS_DOC: tuple[SettingDoc, ...] = (
    _doc("NODE_NAME", "hyperlinkr", "names this node's shared-memory segments"),
    _doc(
        "DATA_DIR",
        "./data",
        "directory of the LMDB environments (links there, click stats in `stats/`, "
        "clicks not yet merged into them in `journal/`)",
    ),
    _doc("HOST", "127.0.0.1", "address the HTTP server binds"),
    _doc("PORT", "8000", "TCP port (plain PORT is used when this is unset)"),
    _doc("WORKERS", "CPU count", "web worker processes, 1..64"),
    _doc(
        "PUBLIC_BASE_URL",
        "http://{HOST}:{PORT}",
        "base of the short links handed out (http or https)",
    ),
    _doc("CODE_LENGTH", "7", "length of random short codes, 5..16"),
    _doc("MAX_BODY_BYTES", "16384", "largest request body accepted"),
    _doc("L1_CAPACITY_ENTRIES", "200000", "slots in the shared L1 cache"),
    _doc("NEGATIVE_TTL_S", "5.0", "seconds a known-missing code stays cached"),
    _doc("CLICK_RING_RECORDS", "65536", "click ring size, a power of two"),
    _doc("WRITE_RING_RECORDS", "4096", "link-write ring size, a power of two"),
    _doc("FLUSH_INTERVAL_MS", "1000", "how often new clicks are merged into /stats"),
    _doc("RECENT_CLICKS", "50", "recent clicks kept per link for /stats"),
    _doc("DEFAULT_REDIRECT_STATUS", "302", "redirect status: 301, 302, 307 or 308"),
    _doc("ALLOWED_SCHEMES", "http,https", "URL schemes accepted for shortening"),
    _doc(
        "ALLOW_PRIVATE_HOSTS",
        "false",
        "accept loopback/private/link-local literal addresses",
    ),
    _doc("BLOCKLIST_FILE", "", "file of blocked hosts, one per line"),
    _doc(
        "OWN_HOSTS",
        "",
        "extra host names of this service (the base URL's host is implied)",
    ),
    _doc(
        "SHORTENER_HOSTS",
        ",".join(sorted(DEFAULT_SHORTENER_HOSTS)),
        "other shorteners' hosts, refused to prevent redirect chains",
    ),
    _doc(
        "LMDB_MAP_SIZE_MB",
        "1024",
        "largest size each LMDB file (links, stats) may grow to",
    ),
    _doc(
        "DEFAULT_FORWARD_QUERY",
        "false",
        "merge the visitor's query string into the target of new links",
    ),
    _doc(
        "API_KEYS_FILE",
        "{DATA_DIR}/api-keys.json",
        "API key hashes and scopes (written by `hyperlinkr api-key create`)",
    ),
    _doc(
        "ANONYMOUS_CREATE",
        "true",
        "let clients without an API key shorten (rate limited per IP)",
    ),
    _doc("PUBLIC_STATS", "true", "serve /stats without an API key (stats:read)"),
    _doc(
        "TRUSTED_PROXIES",
        "",
        "proxy addresses/CIDRs whose X-Forwarded-For is believed",
    ),
    _doc("CREATE_RATE_PER_MIN", "60", "link creations per client per minute, 0 = off"),
    _doc("CREATE_BURST", "20", "link creations a client may make at once"),
    _doc("REDIRECT_RATE_PER_S", "200", "redirects per client IP per second, 0 = off"),
    _doc("REDIRECT_BURST", "400", "redirects a client IP may make at once"),
    _doc("H3_PORT", "", "UDP port of the h3 role (HTTP/3); empty or 0 = off"),
    _doc(
        "TLS_CERT_FILE",
        "",
        "PEM certificate for HTTP/3 (`hyperlinkr make-cert DIR` makes one)",
    ),
    _doc("TLS_KEY_FILE", "", "PEM private key of TLS_CERT_FILE, unencrypted"),
    _doc(
        "REDIS_URL",
        "",
        "Dragonfly/Redis URL shared by every node; empty = embedded (L1 + LMDB)",
    ),
    _doc("REDIS_CLUSTER", "false", "REDIS_URL names a Redis Cluster node"),
    _doc("ACCESS_LOG", "false", "log every HTTP request"),
    _doc(
        "FAST_PATH",
        "true",
        "answer plain L1-hit redirects in the HTTP protocol, before Sanic's pipeline",
    ),
    _doc(
        "PIN_WORKERS",
        "true",
        "pin web worker i to the i-th CPU the node may use, when it has 2+ workers "
        "and at least as many CPUs",
    ),
    _doc("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    _doc("LOG_FORMAT", "plain", "plain lines, or json: one object per line"),
)


def render_env_example() -> str:
    """The text of `.env.example`: every setting, commented out at its default."""
    lines = ["# Hyperlinkr settings. Uncomment a line to change it.", ""]
    for row in SETTINGS_DOC:
        lines.append(f"# {row.meaning}")
        lines.append(f"# {row.env_name}={row.default}")
        lines.append("")
    return "\n".join(lines)


class _Env:
    """Typed, validated access to `HYPERLINKR_*` variables."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(PREFIX + name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def fail(self, name: str, value: str, expected: str) -> ConfigError:
        return ConfigError(
            f"{PREFIX}{name}={value!r} is not valid: expected {expected}; "
            f"fix the value or unset {PREFIX}{name} to use the default"
        )

    def text(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        expected = f"an integer from {low} to {high}"
        try:
            parsed = int(value, 10)
        except ValueError as exc:
            raise self.fail(name, value, expected) from exc
        if not low <= parsed <= high:
            raise self.fail(name, value, expected)
        return parsed

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        expected = f"a number from {low} to {high}"
        try:
            parsed = float(value)
        except ValueError as exc:
            raise self.fail(name, value, expected) from exc
        if not math.isfinite(parsed) or not low <= parsed <= high:
            raise self.fail(name, value, expected)
        return parsed

    def power_of_two(self, name: str, default: int, low: int, high: int) -> int:
        number = self.integer(name, default, low, high)
        if number & (number - 1):
            expected = f"a power of two from {low} to {high}"
            raise self.fail(name, str(number), expected)
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise self.fail(name, value, "one of 1/0/true/false/yes/no/on/off")

    def names(self, name: str, default: frozenset[str]) -> frozenset[str]:
        value = self.raw(name)
        if value is None:
            return default
        return frozenset(p.strip() for p in value.split(",") if p.strip())

    def path(self, name: str) -> Path | None:
        value = self.raw(name)
        return None if value is None else Path(value)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a node needs to know, validated. Build with `from_env()`.

    There are no field defaults here on purpose: `from_env()` is the one place
    that knows them, so `Settings.from_env({})` is the all-defaults node.
    """

    node_name: str
    data_dir: Path
    host: str
    port: int
    workers: int
    public_base_url: str
    code_length: int
    max_body_bytes: int
    l1_capacity_entries: int
    negative_ttl_s: float
    click_ring_records: int
    write_ring_records: int
    flush_interval_ms: int
    recent_clicks: int
    default_redirect_status: int
    allowed_schemes: frozenset[str]
    allow_private_hosts: bool
    blocklist_file: Path | None
    own_hosts: frozenset[str]
    shortener_hosts: frozenset[str]
    lmdb_map_size_mb: int
    default_forward_query: bool
    api_keys_file: Path
    anonymous_create: bool
    public_stats: bool
    trusted_proxies: tuple[IpNetwork, ...]
    create_rate_per_min: int
    create_burst: int
    redirect_rate_per_s: int
    redirect_burst: int
    h3_port: int | None
    tls_cert_file: Path | None
    tls_key_file: Path | None
    redis_url: str | None
    redis_cluster: bool
    access_log: bool
    fast_path: bool
    pin_workers: bool
    log_level: str
    log_format: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read and validate every `HYPERLINKR_*` variable in `environ`."""
        env = _Env(environ)
        host = env.text("HOST", "127.0.0.1")
        port = _port(env, environ)
        base_url = _public_base_url(env, host, port)
        h3_port, tls_cert_file, tls_key_file = _http3(env)
        data_dir = env.path("DATA_DIR") or Path("./data")
        return cls(
            node_name=_node_name(env),
            data_dir=data_dir,
            host=host,
            port=port,
            workers=env.integer("WORKERS", _default_workers(), 1, _MAX_WORKERS),
            public_base_url=base_url,
            code_length=env.integer("CODE_LENGTH", 7, 5, 16),
            max_body_bytes=env.integer("MAX_BODY_BYTES", 16384, 1024, 1 << 20),
            l1_capacity_entries=env.integer(
                "L1_CAPACITY_ENTRIES", 200_000, 1024, 100_000_000
            ),
            negative_ttl_s=env.number("NEGATIVE_TTL_S", 5.0, 0.0, 3600.0),
            click_ring_records=env.power_of_two(
                "CLICK_RING_RECORDS", 65536, 16, 1 << 24
            ),
            write_ring_records=env.power_of_two(
                "WRITE_RING_RECORDS", 4096, 16, 1 << 20
            ),
            flush_interval_ms=env.integer("FLUSH_INTERVAL_MS", 1000, 10, 60_000),
            recent_clicks=env.integer("RECENT_CLICKS", 50, 0, 1000),
            default_redirect_status=_redirect_status(env),
            allowed_schemes=_allowed_schemes(env),
            allow_private_hosts=env.flag("ALLOW_PRIVATE_HOSTS", False),
            blocklist_file=env.path("BLOCKLIST_FILE"),
            own_hosts=_own_hosts(env, base_url),
            shortener_hosts=_hosts(env, "SHORTENER_HOSTS", DEFAULT_SHORTENER_HOSTS),
            lmdb_map_size_mb=env.integer("LMDB_MAP_SIZE_MB", 1024, 16, 1 << 20),
            default_forward_query=env.flag("DEFAULT_FORWARD_QUERY", False),
            api_keys_file=env.path("API_KEYS_FILE") or data_dir / "api-keys.json",
            anonymous_create=env.flag("ANONYMOUS_CREATE", True),
            public_stats=env.flag("PUBLIC_STATS", True),
            trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
            create_rate_per_min=env.integer("CREATE_RATE_PER_MIN", 60, 0, 1_000_000),
            create_burst=env.integer("CREATE_BURST", 20, 1, 100_000),
            redirect_rate_per_s=env.integer("REDIRECT_RATE_PER_S", 200, 0, 1_000_000),
            redirect_burst=env.integer("REDIRECT_BURST", 400, 1, 1_000_000),
            h3_port=h3_port,
            tls_cert_file=tls_cert_file,
            tls_key_file=tls_key_file,
            redis_url=_redis_url(env),
            redis_cluster=env.flag("REDIS_CLUSTER", False),
            access_log=env.flag("ACCESS_LOG", False),
            fast_path=env.flag("FAST_PATH", True),
            pin_workers=env.flag("PIN_WORKERS", True),
            log_level=_log_level(env),
            log_format=_log_format(env),
        )

    @staticmethod
    def describe() -> list[tuple[str, str, str]]:
        """(variable, default, meaning) for every setting, for docs."""
        return [(r.env_name, r.default, r.meaning) for r in SETTINGS_DOC]

    @property
    def lmdb_map_size_bytes(self) -> int:
        return self.lmdb_map_size_mb * 1024 * 1024


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, _MAX_WORKERS))


def _redis_url(env: _Env) -> str | None:
    value = env.raw("REDIS_URL")
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix") or not (
        parts.hostname or parts.path
    ):
        expected = "a URL such as redis://127.0.0.1:6379/0 (or rediss://, unix://)"
        raise env.fail("REDIS_URL", value, expected)
    return value


def _node_name(env: _Env) -> str:
    value = env.text("NODE_NAME", "hyperlinkr")
    if not _NODE_NAME.fullmatch(value):
        raise env.fail("NODE_NAME", value, "1 to 24 characters of a-z 0-9 _ -")
    return value


def _port(env: _Env, environ: Mapping[str, str]) -> int:
    if env.raw("PORT") is not None:
        return env.integer("PORT", 8000, 1, 65535)
    plain = environ.get("PORT", "").strip()
    if not plain:
        return 8000
    if not plain.isdecimal() or not 1 <= int(plain) <= 65535:
        raise ConfigError(
            f"PORT={plain!r} is not valid: expected an integer from 1 to 65535; "
            f"fix PORT or set {PREFIX}PORT, which takes precedence"
        )
    return int(plain)


def _public_base_url(env: _Env, host: str, port: int) -> str:
    value = env.text("PUBLIC_BASE_URL", f"http://{_url_host(host)}:{port}")
    expected = "an http(s) URL with a host and no query or fragment"
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise env.fail("PUBLIC_BASE_URL", value, expected) from exc
    if parts.scheme.lower() not in ("http", "https") or not hostname:
        raise env.fail("PUBLIC_BASE_URL", value, expected)
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise env.fail("PUBLIC_BASE_URL", value, expected)
    return value.rstrip("/")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _redirect_status(env: _Env) -> int:
    status = env.integer("DEFAULT_REDIRECT_STATUS", 302, 301, 308)
    if status not in _REDIRECT_STATUSES:
        raise env.fail("DEFAULT_REDIRECT_STATUS", str(status), "301, 302, 307 or 308")
    return status


def _allowed_schemes(env: _Env) -> frozenset[str]:
    schemes = frozenset(s.lower() for s in env.names("ALLOWED_SCHEMES", frozenset()))
    if not schemes:
        return frozenset({"http", "https"})
    for scheme in sorted(schemes):
        if not _SCHEME.fullmatch(scheme):
            raise env.fail("ALLOWED_SCHEMES", scheme, "URL scheme names, e.g. http")
        if scheme in _NEVER_ALLOWED_SCHEMES:
            expected = "schemes other than javascript, data, vbscript and file"
            raise env.fail("ALLOWED_SCHEMES", scheme, expected)
    return schemes


def _hosts(env: _Env, name: str, default: frozenset[str]) -> frozenset[str]:
    normalised = set()
    for host in env.names(name, default):
        try:
            normalised.add(to_ascii_host(host))
        except UrlRefused as exc:
            raise env.fail(name, host, "comma-separated host names") from exc
    return frozenset(normalised)


def _own_hosts(env: _Env, public_base_url: str) -> frozenset[str]:
    base_host = urlsplit(public_base_url).hostname or ""
    try:
        base_host = to_ascii_host(base_host)
    except UrlRefused as exc:
        expected = "a URL whose host is a valid host name"
        raise env.fail("PUBLIC_BASE_URL", public_base_url, expected) from exc
    return _hosts(env, "OWN_HOSTS", frozenset()) | {base_host}


def _networks(env: _Env, name: str) -> tuple[IpNetwork, ...]:
    networks = []
    for text in sorted(env.names(name, frozenset())):
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            expected = "comma-separated IP addresses or CIDRs, e.g. 10.0.0.0/8"
            raise env.fail(name, text, expected) from exc
    return tuple(networks)


def _http3(env: _Env) -> tuple[int | None, Path | None, Path | None]:
    port = env.integer("H3_PORT", 0, 0, 65535) or None
    cert_file, key_file = env.path("TLS_CERT_FILE"), env.path("TLS_KEY_FILE")
    if (cert_file is None) != (key_file is None):
        raise ConfigError(
            f"only one of {PREFIX}TLS_CERT_FILE and {PREFIX}TLS_KEY_FILE is "
            "set; set both, to a PEM certificate and its key, or neither"
        )
    if port is not None and cert_file is None:
        raise ConfigError(
            f"{PREFIX}H3_PORT={port} turns HTTP/3 on, which needs TLS: set "
            f"{PREFIX}TLS_CERT_FILE and {PREFIX}TLS_KEY_FILE to a PEM "
            "certificate and its key (`hyperlinkr make-cert DIR` writes a "
            f"self-signed pair for local runs), or unset {PREFIX}H3_PORT"
        )
    return port, cert_file, key_file


def _log_level(env: _Env) -> str:
    level = env.text("LOG_LEVEL", "INFO").upper()
    if level not in _LOG_LEVELS:
        raise env.fail("LOG_LEVEL", level, ", ".join(_LOG_LEVELS))
    return level


def _log_format(env: _Env) -> str:
    fmt = env.text("LOG_FORMAT", "plain").lower()
    if fmt not in _LOG_FORMATS:
        raise env.fail("LOG_FORMAT", fmt, " or ".join(_LOG_FORMATS))
    return fmt
