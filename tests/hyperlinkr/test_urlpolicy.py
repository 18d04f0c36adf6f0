"""The URL policy: what may be shortened, and the normalised form kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperlinkr.config import Settings
from hyperlinkr.errors import ConfigError, UrlRefused
from hyperlinkr.urlpolicy import UrlPolicy, check_url, load_blocklist, to_ascii_host

POLICY = UrlPolicy(
    own_hosts=frozenset({"sho.rt"}),
    shortener_hosts=frozenset({"bit.ly", "t.co"}),
    blocked_hosts=frozenset({"evil.example", "xn--bcher-kva.example"}),
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com", "https://example.com"),
        ("https://example.com/a/b?c=d#e", "https://example.com/a/b?c=d#e"),
        ("HTTPS://EXAMPLE.COM/Path?Q=Upper", "https://example.com/Path?Q=Upper"),
        ("http://example.com./x", "http://example.com/x"),
        ("http://bücher.de/", "http://xn--bcher-kva.de/"),
        ("http://BÜCHER.de/", "http://xn--bcher-kva.de/"),
        (
            "http://пример.рф/путь",
            "http://xn--e1afmkfd.xn--p1ai/%D0%BF%D1%83%D1%82%D1%8C",
        ),
        (
            "https://example.com/café?q=ü#ö",
            "https://example.com/caf%C3%A9?q=%C3%BC#%C3%B6",
        ),
        (
            "https://example.com/a%20b?x=%C3%A9&y=é",
            "https://example.com/a%20b?x=%C3%A9&y=%C3%A9",
        ),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("http://example.com:/x", "http://example.com/x"),
        ("http://8.8.8.8/", "http://8.8.8.8/"),
        ("http://0x08.0x08.0x08.0x08/", "http://8.8.8.8/"),
        ("http://134744072/", "http://8.8.8.8/"),
        ("http://[2606:4700:4700::1111]/", "http://[2606:4700:4700::1111]/"),
        ("http://[2606:4700:4700:0::1111]:81/", "http://[2606:4700:4700::1111]:81/"),
        ("http://under_score.example.com/", "http://under_score.example.com/"),
        ("https://example.com/%20encoded%0A", "https://example.com/%20encoded%0A"),
        ("http://notbit.ly/", "http://notbit.ly/"),
        ("http://t.com/", "http://t.com/"),
    ],
)
def test_accepted_urls_are_normalised(raw: str, expected: str) -> None:
    assert check_url(raw, POLICY) == expected


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (None, "invalid"),
        (b"https://example.com", "invalid"),
        (42, "invalid"),
        ("https://example.com/" + "a" * 2048, "length"),
        ("https://exa mple.com/", "control-chars"),
        ("https://example.com/a b", "control-chars"),
        ("https://example.com/\r\nSet-Cookie: x", "control-chars"),
        ("https://example.com/\t", "control-chars"),
        ("https://example.com/\x00", "control-chars"),
        ("https://example.com/\x7f", "control-chars"),
        ("https://example.com/\x85", "control-chars"),
        ("https://example.com/\u3000", "control-chars"),
        ("https://example.com/\u202egnp.exe", "control-chars"),
        (" https://example.com/", "control-chars"),
        ("https://example.com\\@good.com/", "control-chars"),
        ("javascript:alert(1)", "scheme"),
        ("JavaScript:alert(1)", "scheme"),
        ("data:text/html,<script>alert(1)</script>", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("ftp://example.com/", "scheme"),
        ("example.com/path", "scheme"),
        ("//example.com/path", "scheme"),
        ("http:example.com", "host-required"),
        ("http:/example.com", "host-required"),
        ("http:///path", "host-required"),
        ("http://", "host-required"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://user@example.com/", "credentials"),
        ("http://example.com:99999/", "port"),
        ("http://example.com:0/", "port"),
        ("http://example.com:http/", "port"),
        ("http://[::1/", "invalid"),
        ("http://[not-ipv6]/", "invalid"),
        ("http://[fe80::1%25eth0]/", "invalid"),
        ("http://%6c%6fcalhost/", "invalid"),
        ("http://exa<mple.com/", "invalid"),
        ("http://-leading.example/", "invalid"),
        ("http://a..b/", "invalid"),
        ("http://" + "a" * 64 + ".com/", "invalid"),
        ("http://1.2.3.4.5/", "invalid"),
        ("http://256.1.1.1/", "invalid"),
        ("http://foo.1/", "invalid"),
        ("http://09.1.1.1/", "invalid"),
        ("http://127.0.0.1/", "private-host"),
        ("http://127.1/", "private-host"),
        ("http://2130706433/", "private-host"),
        ("http://0x7f.1/", "private-host"),
        ("http://0177.0.0.1/", "private-host"),
        ("http://0x7f000001/", "private-host"),
        ("http://10.0.0.1/", "private-host"),
        ("http://172.16.5.4/", "private-host"),
        ("http://192.168.1.1:8080/", "private-host"),
        ("http://169.254.169.254/latest/meta-data/", "private-host"),
        ("http://100.64.0.1/", "private-host"),
        ("http://0.0.0.0/", "private-host"),
        ("http://0/", "private-host"),
        ("http://224.0.0.1/", "private-host"),
        ("http://240.0.0.1/", "private-host"),
        ("http://255.255.255.255/", "private-host"),
        ("http://[::1]/", "private-host"),
        ("http://[::]/", "private-host"),
        ("http://[fe80::1]/", "private-host"),
        ("http://[fc00::1]/", "private-host"),
        ("http://[ff02::1]/", "private-host"),
        ("http://[::ffff:127.0.0.1]/", "private-host"),
        ("http://[::ffff:10.0.0.1]/", "private-host"),
        ("http://\uff11\uff12\uff17\uff0e0.0.1/", "private-host"),
        ("http://localhost/", "private-host"),
        ("http://LOCALHOST:8000/", "private-host"),
        ("http://localhost./", "private-host"),
        ("http://api.localhost/", "private-host"),
        ("http://sho.rt/abc", "own-host"),
        ("https://SHO.RT./abc", "own-host"),
        ("http://www.sho.rt/abc", "own-host"),
        ("http://evil.example/", "blocklist"),
        ("http://deep.sub.evil.example/", "blocklist"),
        ("http://bücher.example/", "blocklist"),
        ("http://bit.ly/xyz", "shortener-host"),
        ("http://BIT.LY/xyz", "shortener-host"),
        ("http://j.bit.ly/xyz", "shortener-host"),
        ("https://t.co/xyz", "shortener-host"),
    ],
)
def test_refused_urls_name_the_rule(raw: object, rule: str) -> None:
    with pytest.raises(UrlRefused) as caught:
        check_url(raw, POLICY)
    assert caught.value.rule == rule, caught.value.detail
    assert caught.value.detail


def test_url_at_exactly_max_length_is_accepted() -> None:
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    assert check_url(url, POLICY) == url


def test_private_hosts_are_accepted_when_allowed() -> None:
    policy = UrlPolicy(allow_private_hosts=True)
    assert check_url("http://0x7f.1:8080/x", policy) == "http://127.0.0.1:8080/x"
    assert check_url("http://localhost/", policy) == "http://localhost/"
    assert check_url("http://[::1]/", policy) == "http://[::1]/"


def test_other_schemes_are_accepted_when_configured() -> None:
    policy = UrlPolicy(allowed_schemes=frozenset({"http", "https", "ftp"}))
    assert check_url("FTP://Example.com/f", policy) == "ftp://example.com/f"


def test_policy_from_default_settings_refuses_the_service_itself() -> None:
    settings = Settings.from_env(
        {
            "HYPERLINKR_PUBLIC_BASE_URL": "https://Sho.rt/",
            "HYPERLINKR_OWN_HOSTS": "x.io",
        }
    )
    policy = UrlPolicy.from_settings(settings, frozenset({"bad.example"}))
    for url, rule in [
        ("https://sho.rt/abc", "own-host"),
        ("https://x.io/abc", "own-host"),
        ("https://bad.example/", "blocklist"),
        ("https://tinyurl.com/abc", "shortener-host"),
        ("http://127.0.0.1:8000/abc", "private-host"),
    ]:
        with pytest.raises(UrlRefused) as caught:
            check_url(url, policy)
        assert caught.value.rule == rule


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\uff0ecom", "example.com"),
    ],
)
def test_to_ascii_host_normalises(host: str, expected: str) -> None:
    assert to_ascii_host(host) == expected


def test_blocklist_file_is_read_with_comments_and_idn(tmp_path: Path) -> None:
    path = tmp_path / "blocklist.txt"
    path.write_text(
        "# operator blocklist\n\nEvil.Example  # phishing\n*.spam.test\n"
        "bücher.example.\n",
        encoding="utf-8",
    )
    assert load_blocklist(path) == frozenset(
        {"evil.example", "spam.test", "xn--bcher-kva.example"}
    )


def test_blocklist_with_a_bad_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "blocklist.txt"
    path.write_text("ok.example\nnot a host\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2"):
        load_blocklist(path)


def test_missing_blocklist_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HYPERLINKR_BLOCKLIST_FILE"):
        load_blocklist(tmp_path / "absent.txt")


def test_to_ascii_host_compresses_ipv6_literals() -> None:
    assert to_ascii_host("[2001:DB8:0::1]") == "2001:db8::1"
    assert to_ascii_host("2001:db8::1") == "2001:db8::1"


def test_url_that_grows_past_the_limit_when_escaped_is_refused() -> None:
    raw = "https://example.com/" + "é" * 1000
    with pytest.raises(UrlRefused) as refused:
        check_url(raw, POLICY)
    assert refused.value.rule == "length"
