"""Which URLs may be shortened, and their normalised form.

A shortener hands its reputation to every URL it accepts, so the policy is
deliberately strict and purely syntactic: no DNS lookups (they are slow,
and a name's addresses can change after the check anyway). What it looks
at, in order:

1. the value is a string, at most `max_length` characters, with no control
   characters, whitespace, bidi overrides or backslashes anywhere (a
   backslash is read as "/" by browsers, which lets the host we check differ
   from the host a browser visits);
2. the scheme is allowed (http and https by default);
3. there is a host, no credentials and a valid port;
4. the host is normalised: lowercase, no trailing dot, IDN to punycode, and
   numeric IPv4 spellings (`2130706433`, `0x7f.1`, `0177.0.0.1`) read the
   way browsers read them, so `127.0.0.1` cannot hide behind another form;
5. the host is not a loopback/private/link-local/reserved address or
   `localhost` (unless allowed), not the service itself, not on the
   operator's blocklist and not another shortener (chains of redirects
   hide where a link really goes).

A host "matches" a listed name when it equals it or is a subdomain of it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, quote, urlsplit

from hyperlinkr.errors import ConfigError, UrlRefused

if TYPE_CHECKING:
    from hyperlinkr.config import Settings

__all__ = ["UrlPolicy", "check_url", "load_blocklist", "to_ascii_host"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 2048
_MAX_HOST_LENGTH = 253

_FORBIDDEN_CHARS = re.compile(
    r"[\x00-\x20\x7f-\x9f\s\\\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_ASCII_HOST = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
    r"(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*"
)
# RFC 3986 reserved characters plus "%": left alone when escaping an IRI.
_URI_SAFE = ":/?#[]@!$&'()*+,;=%~"
_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """The rules `check_url` applies. Host sets hold normalised ASCII names."""

    allowed_schemes: frozenset[str] = frozenset({"http", "https"})
    max_length: int = DEFAULT_MAX_LENGTH
    allow_private_hosts: bool = False
    own_hosts: frozenset[str] = frozenset()
    shortener_hosts: frozenset[str] = frozenset()
    blocked_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_settings(
        cls, settings: Settings, blocked_hosts: frozenset[str] = frozenset()
    ) -> UrlPolicy:
        """The policy a node runs with; `blocked_hosts` from `load_blocklist`."""
        return cls(
            allowed_schemes=settings.allowed_schemes,
            allow_private_hosts=settings.allow_private_hosts,
            own_hosts=settings.own_hosts,
            shortener_hosts=settings.shortener_hosts,
            blocked_hosts=blocked_hosts,
        )


def check_url(raw: object, policy: UrlPolicy) -> str:
    """Return `raw` normalised, or raise `UrlRefused` naming the broken rule."""
    url = _check_text(raw, policy.max_length)
    parts = _split(url)
    if parts.scheme not in policy.allowed_schemes:
        allowed = ", ".join(sorted(policy.allowed_schemes))
        raise UrlRefused(
            "scheme",
            f"scheme {parts.scheme or '(none)'!r} is not allowed; "
            f"use one of: {allowed}",
        )
    host, address = _check_authority(parts)
    _check_host(host, address, policy)
    normalised = _rebuild(url, parts, host, address)
    if len(normalised) > policy.max_length:
        raise UrlRefused(
            "length",
            f"the URL is {len(normalised)} characters long once its host is "
            f"punycoded and non-ASCII characters are percent-encoded; the "
            f"limit is {policy.max_length}",
        )
    return normalised


def _check_text(raw: object, max_length: int) -> str:
    if not isinstance(raw, str):
        raise UrlRefused(
            "invalid", f"the URL must be a string, got {type(raw).__name__}"
        )
    if len(raw) > max_length:
        raise UrlRefused(
            "length",
            f"the URL is {len(raw)} characters long; the limit is {max_length}",
        )
    found = _FORBIDDEN_CHARS.search(raw)
    if found is not None:
        raise UrlRefused(
            "control-chars",
            f"the URL contains {found.group()!r} at position {found.start()}; "
            "percent-encode it or remove it",
        )
    return raw


def _split(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise UrlRefused("invalid", f"the URL cannot be parsed: {exc}") from exc


def _check_authority(parts: SplitResult) -> tuple[str, IpAddress | None]:
    """Validate credentials, port and host; return (ascii host, IP or None)."""
    if not parts.netloc or not parts.hostname:
        raise UrlRefused(
            "host-required", "the URL has no host; write it as scheme://host/..."
        )
    if "@" in parts.netloc:
        raise UrlRefused(
            "credentials", "the URL contains user:password@; remove the credentials"
        )
    _check_port(parts)
    return _normalise_host(parts.hostname, bracketed="[" in parts.netloc)


def _check_port(parts: SplitResult) -> None:
    try:
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(
            "port", f"the port in {parts.netloc!r} is not a number in 1..65535"
        ) from exc
    if port == 0:
        raise UrlRefused("port", "port 0 cannot be connected to; use 1..65535")


def _normalise_host(host: str, bracketed: bool) -> tuple[str, IpAddress | None]:
    if bracketed:
        return _ipv6_host(host)
    ascii_host = to_ascii_host(host)
    address = _numeric_ipv4(ascii_host)
    if address is not None:
        return str(address), address
    return ascii_host, None


def _ipv6_host(host: str) -> tuple[str, IpAddress]:
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError as exc:
        raise UrlRefused("invalid", f"[{host}] is not a valid IPv6 address") from exc
    if address.scope_id is not None:
        raise UrlRefused("invalid", f"[{host}] has a zone id, which is local")
    return address.compressed, address


def to_ascii_host(host: str) -> str:
    """Lowercase, strip one trailing dot, IDN to punycode; validate the name.

    An IPv6 literal (bracketed or not) comes back in compressed form. Raises
    `UrlRefused` (rule "invalid", or "host-required" when empty).
    """
    if ":" in host:
        return _ipv6_host(host.removeprefix("[").removesuffix("]"))[0]
    name = host[:-1] if host.endswith(".") else host
    if not name:
        raise UrlRefused("host-required", "the URL's host is empty")
    if not name.isascii():
        name = _idna(name)
    name = name.lower()
    if not _ASCII_HOST.fullmatch(name):
        raise UrlRefused(
            "invalid",
            f"host {host!r} is not a valid host name (letters, digits, '-', "
            f"'_' in dot-separated labels of 1..63, at most {_MAX_HOST_LENGTH})",
        )
    return name


def _idna(name: str) -> str:
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise UrlRefused(
            "invalid", f"host {name!r} is not a valid international domain name"
        ) from exc


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Read `host` as browsers do when its last label is a number.

    Browsers accept 1 to 4 dot-separated numbers, each decimal, octal
    (leading 0) or hex (0x); the last fills the remaining bytes. A name
    ending in a number that is not such an address is invalid for them.
    """
    labels = host.split(".")
    if not _IPV4_PART.fullmatch(labels[-1]):
        return None
    numbers = [_ipv4_number(label, host) for label in labels]
    if len(numbers) > 4 or any(n > 255 for n in numbers[:-1]):
        raise _bad_ipv4(host)
    if numbers[-1] >= 256 ** (5 - len(numbers)):
        raise _bad_ipv4(host)
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ipv4_number(label: str, host: str) -> int:
    if not _IPV4_PART.fullmatch(label):
        raise _bad_ipv4(host)
    if label[:2] in ("0x", "0X"):
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        if not set(label) <= set("01234567"):
            raise _bad_ipv4(host)
        return int(label, 8)
    return int(label, 10)


def _bad_ipv4(host: str) -> UrlRefused:
    return UrlRefused(
        "invalid", f"host {host!r} ends in a number but is not an IPv4 address"
    )


def _check_host(host: str, address: IpAddress | None, policy: UrlPolicy) -> None:
    if not policy.allow_private_hosts and _is_private(host, address):
        raise UrlRefused(
            "private-host",
            f"{host} is a loopback, private or reserved address; "
            "only public hosts can be shortened",
        )
    if _matches(host, policy.own_hosts):
        raise UrlRefused(
            "own-host", f"{host} is this service; link to the target directly"
        )
    if _matches(host, policy.blocked_hosts):
        raise UrlRefused("blocklist", f"{host} is on this service's blocklist")
    if _matches(host, policy.shortener_hosts):
        raise UrlRefused(
            "shortener-host",
            f"{host} is another URL shortener; shorten the final URL instead",
        )


def _matches(host: str, names: frozenset[str]) -> bool:
    """True when `host` equals a name in `names` or is a subdomain of one."""
    if host in names:
        return True
    dot = host.find(".")
    while dot != -1:
        if host[dot + 1 :] in names:
            return True
        dot = host.find(".", dot + 1)
    return False


def _is_private(host: str, address: IpAddress | None) -> bool:
    if address is None:
        return host == "localhost" or host.endswith(".localhost")
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None and _is_private(str(embedded), embedded):
            return True
    return not address.is_global or address.is_multicast


def _rebuild(url: str, parts: SplitResult, host: str, address: IpAddress | None) -> str:
    """Scheme and host normalised; non-ASCII after the authority escaped.

    A redirect carries the URL in the Location header, which is ASCII, so
    an IRI such as `/café` is stored as the URI `/caf%C3%A9`; existing
    escapes and every reserved character are kept as they are.
    """
    netloc = f"[{host}]" if isinstance(address, ipaddress.IPv6Address) else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    authority_end = len(parts.scheme) + 3 + len(parts.netloc)
    rest = url[authority_end:]
    if not rest.isascii():
        rest = quote(rest, safe=_URI_SAFE)
    return f"{parts.scheme}://{netloc}{rest}"


def load_blocklist(path: Path) -> frozenset[str]:
    """Blocked hosts from `path`: one per line, `#` comments, `*.` optional."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"blocklist file {str(path)!r} cannot be read ({exc}); fix "
            "HYPERLINKR_BLOCKLIST_FILE or unset it to run without a blocklist"
        ) from exc
    hosts = {
        _blocklist_entry(line, n, path) for n, line in enumerate(text.splitlines(), 1)
    }
    hosts.discard("")
    logger.info("loaded %d blocked hosts from %s", len(hosts), path)
    return frozenset(hosts)


def _blocklist_entry(line: str, line_number: int, path: Path) -> str:
    entry = line.split("#", 1)[0].strip().removeprefix("*.")
    if not entry:
        return ""
    try:
        return to_ascii_host(entry)
    except UrlRefused as exc:
        raise ConfigError(
            f"blocklist file {str(path)!r} line {line_number}: {entry!r} is "
            "not a host name; expected one host per line (e.g. example.com)"
        ) from exc
