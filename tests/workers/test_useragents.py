from __future__ import annotations

import pytest

from workers.useragents import CACHE_ENTRIES, Agent, _classify_string, classify

WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
MAC_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
LINUX_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
CUBOT_PHONE = (
    "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"
)


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (WINDOWS_CHROME, Agent("Chrome", "Windows", "desktop", False)),
        (MAC_SAFARI, Agent("Safari", "Mac OS X", "desktop", False)),
        (LINUX_FIREFOX, Agent("Firefox", "Linux", "desktop", False)),
        (IPHONE, Agent("Mobile Safari", "iOS", "mobile", False)),
        (IPAD, Agent("Mobile Safari", "iOS", "tablet", False)),
        (ANDROID_PHONE, Agent("Chrome Mobile", "Android", "mobile", False)),
    ],
)
def test_browsers_are_named_with_their_device_type(
    user_agent: str, expected: Agent
) -> None:
    assert classify(user_agent) == expected


def test_android_without_mobile_token_is_a_tablet() -> None:
    assert classify(ANDROID_TABLET).device == "tablet"


@pytest.mark.parametrize(
    "user_agent",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "curl/8.5.0",
        "Wget/1.21.4",
        "python-requests/2.32.3",
        "python-httpx/0.27.0",
        "Go-http-client/2.0",
        "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (compatible; Yahoo! Slurp)",
        "SkypeUriPreview Preview/0.5",
    ],
)
def test_automation_is_flagged_as_bot(user_agent: str) -> None:
    agent = classify(user_agent)

    assert agent.is_bot
    assert agent.device == "bot"


@pytest.mark.parametrize("user_agent", [None, "", "   "])
def test_missing_user_agent_counts_as_bot(user_agent: str | None) -> None:
    assert classify(user_agent) == Agent("Other", "Other", "bot", True)


def test_phone_brand_containing_bot_is_not_a_bot() -> None:
    agent = classify(CUBOT_PHONE)

    assert not agent.is_bot
    assert agent.device == "mobile"


def test_unknown_string_is_other_but_human() -> None:
    assert classify("something-odd/1.0") == Agent("Other", "Other", "other", False)


def test_results_are_cached_and_the_cache_is_bounded() -> None:
    _classify_string.cache_clear()
    classify(WINDOWS_CHROME)
    classify(WINDOWS_CHROME)

    info = _classify_string.cache_info()
    assert info.hits == 1
    assert info.maxsize == CACHE_ENTRIES
