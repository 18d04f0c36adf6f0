"""User-agent classification for click analytics, run in the analytics actor.

ua-parser (uap-core rules) names the browser and OS; the device *type*
(desktop, mobile, tablet, bot, other) is ours, derived from what the parser
found plus a few tokens of the raw string. A click is a bot when ua-parser
calls the device a spider, when the string holds a known automation token,
or when there is no user agent at all: every real browser sends one.

Parsing costs tens of microseconds and real traffic repeats a small set of
strings, so results are kept in a bounded LRU keyed on the raw string.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import ua_parser

__all__ = ["CACHE_ENTRIES", "Agent", "DeviceType", "classify"]

CACHE_ENTRIES = 4096

DeviceType = Literal["desktop", "mobile", "tablet", "bot", "other"]

_BOT_TOKENS = (
    "bot",
    "crawl",
    "spider",
    "slurp",
    "curl",
    "wget",
    "python-requests",
    "python-urllib",
    "httpx",
    "aiohttp",
    "go-http-client",
    "okhttp",
    "java/",
    "libwww-perl",
    "apache-httpclient",
    "node-fetch",
    "axios",
    "scrapy",
    "headless",
    "phantomjs",
    "lighthouse",
    "preview",
    "facebookexternalhit",
    "embedly",
    "whatsapp",
    "pingdom",
    "uptime",
)
# Real devices whose names contain a bot token.
_NOT_BOT_TOKENS = ("cubot",)

_DESKTOP_OS = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Linux",
        "Ubuntu",
        "Debian",
        "Fedora",
        "Red Hat",
        "SUSE",
        "Arch Linux",
        "Chrome OS",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
    }
)
_MOBILE_OS = frozenset(
    {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Symbian OS"}
)
_TABLET_TOKENS = ("ipad", "tablet", "kindle", "silk/", "playbook")


@dataclass(frozen=True, slots=True)
class Agent:
    """What analytics keeps of a user agent."""

    browser: str
    os: str
    device: DeviceType
    is_bot: bool


_EMPTY = Agent(browser="Other", os="Other", device="bot", is_bot=True)


def _has_bot_token(lowered: str) -> bool:
    for token in _NOT_BOT_TOKENS:
        lowered = lowered.replace(token, "")
    return any(token in lowered for token in _BOT_TOKENS)


def _device_type(lowered: str, os_family: str, brand: str | None) -> DeviceType:
    if any(token in lowered for token in _TABLET_TOKENS):
        return "tablet"
    if brand == "Generic_Android_Tablet":
        return "tablet"
    if os_family == "Android" and "mobile" not in lowered:
        # Android tablets drop the "Mobile" token that phones send.
        return "tablet"
    if os_family in _MOBILE_OS or "mobi" in lowered:
        return "mobile"
    if os_family in _DESKTOP_OS:
        return "desktop"
    return "other"


@lru_cache(maxsize=CACHE_ENTRIES)
def _classify_string(user_agent: str) -> Agent:
    result = ua_parser.parse(user_agent).with_defaults()
    lowered = user_agent.lower()
    is_bot = result.device.family == "Spider" or _has_bot_token(lowered)
    os_family = result.os.family
    device = "bot" if is_bot else _device_type(lowered, os_family, result.device.brand)
    return Agent(
        browser=result.user_agent.family,
        os=os_family,
        device=device,
        is_bot=is_bot,
    )


def classify(user_agent: str | None) -> Agent:
    """Name the browser, OS and device type of `user_agent`; flag bots."""
    if not user_agent or user_agent.isspace():
        return _EMPTY
    return _classify_string(user_agent)
