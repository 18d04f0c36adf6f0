"""Abuse resistance over real HTTP: shared rate limits, client IPs, blocklist."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path

import httpx

from hyperlinkr.access import client_ip
from tests.e2e.conftest import MakeNode
from tests.e2e.nodes import RunningNode

TRUSTED = ("127.0.0.0/8",)


def test_creations_beyond_the_burst_get_429_with_retry_after(
    make_node: MakeNode,
) -> None:
    node = make_node(create_rate_per_min=6, create_burst=3)
    answers = [
        httpx.post(node.url("/shorten"), json={"url": f"https://example.com/{i}"})
        for i in range(4)
    ]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert answers[0].headers["ratelimit-limit"] == "3"
    assert answers[0].headers["ratelimit-remaining"] == "2"
    refused = answers[3]
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert refused.headers["ratelimit-remaining"] == "0"


def test_forwarded_for_counts_only_through_trusted_proxies(make_node: MakeNode) -> None:
    node = make_node(
        create_rate_per_min=6, create_burst=1, trusted_proxies=",".join(TRUSTED)
    )

    def shorten(forwarded: str) -> int:
        answer = httpx.post(
            node.url("/shorten"),
            json={"url": "https://example.com/f"},
            headers={"x-forwarded-for": forwarded},
        )
        return answer.status_code

    assert shorten("203.0.113.1") == 201
    assert shorten("203.0.113.1") == 429
    assert shorten("203.0.113.2") == 201  # another client behind the proxy
    # A client cannot pick its identity: only the rightmost untrusted hop counts.
    assert shorten("198.51.100.7, 203.0.113.2") == 429


def test_client_ip_ignores_forwarded_for_from_untrusted_peers() -> None:
    import ipaddress

    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    assert client_ip("198.51.100.1", "203.0.113.9", trusted) == "198.51.100.1"
    assert client_ip("10.0.0.2", "203.0.113.9", trusted) == "203.0.113.9"
    assert (
        client_ip("10.0.0.2", "1.1.1.1, 203.0.113.9, 10.0.0.3", trusted)
        == "203.0.113.9"
    )
    assert client_ip("10.0.0.2", "not-an-ip", trusted) == "10.0.0.2"
    assert client_ip("10.0.0.2", "203.0.113.9", []) == "10.0.0.2"


def hammer(
    node: RunningNode, path: str, seconds: float, threads: int
) -> tuple[int, int, float]:
    """(allowed, refused, elapsed s) of GETs from many connections at once."""
    counts = {"allowed": 0, "refused": 0}
    lock = threading.Lock()
    started = time.monotonic()
    stop_at = started + seconds

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
        while time.monotonic() < stop_at:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if time.monotonic() >= stop_at:
                break  # answered after the window: neither side of the count
            with lock:
                counts["allowed" if response.status == 302 else "refused"] += 1
        conn.close()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 30)
    return counts["allowed"], counts["refused"], stop_at - started


def test_one_ip_over_every_worker_is_held_to_the_rate_within_10_percent(
    make_node: MakeNode,
) -> None:
    rate, burst = 100, 20
    node = make_node(redirect_rate_per_s=rate, redirect_burst=burst)
    code = httpx.post(
        node.url("/shorten"), json={"url": "https://example.com/r"}
    ).json()["code"]
    allowed, refused, elapsed = hammer(node, f"/{code}", 4.0, threads=8)
    expected = burst + rate * elapsed
    assert refused > allowed  # the clients did push far beyond the limit
    assert abs(allowed - expected) <= 0.10 * expected, (allowed, expected, elapsed)


def test_blocklist_edits_apply_without_a_restart(
    make_node: MakeNode, tmp_path: Path
) -> None:
    blocklist = tmp_path / "blocked.txt"
    blocklist.write_text("# hosts we refuse\nbad.example\n")
    node = make_node(blocklist_file=str(blocklist))

    def status(url: str) -> int:
        return httpx.post(node.url("/shorten"), json={"url": url}).status_code

    refused = httpx.post(node.url("/shorten"), json={"url": "https://www.bad.example/"})
    assert refused.status_code == 422 and refused.json()["rule"] == "blocklist"
    assert status("https://worse.example/") == 201
    blocklist.write_text("worse.example\n")
    deadline = time.monotonic() + 10
    while status("https://worse.example/") != 422:
        assert time.monotonic() < deadline, "the edited blocklist never applied"
        time.sleep(0.2)
    time.sleep(1.5)  # every worker looks at the file at least once a second
    for _ in range(10):
        assert status("https://worse.example/") == 422
        assert status("https://www.bad.example/") == 201


def test_links_to_this_service_are_refused(make_node: MakeNode) -> None:
    node = make_node(public_base_url="https://go.example.net")
    for url in ("https://go.example.net/abc", "https://GO.example.net./x"):
        answer = httpx.post(node.url("/shorten"), json={"url": url})
        assert answer.status_code == 422
        assert answer.json()["rule"] == "own-host"
    made = httpx.post(node.url("/shorten"), json={"url": "https://example.com/"})
    assert made.json()["short_url"].startswith("https://go.example.net/")
