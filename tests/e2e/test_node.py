"""A node started by the CLI, over real HTTP: the API end to end."""

from __future__ import annotations

import time

import httpx

from tests.e2e.conftest import MakeNode
from tests.e2e.nodes import RunningNode

FLUSH_WAIT_S = 10.0


def wait_for_clicks(node: RunningNode, code: str, total: int) -> dict:
    deadline = time.monotonic() + FLUSH_WAIT_S
    while True:
        body = httpx.get(node.url(f"/stats/{code}")).json()
        if body["clicks"]["total"] >= total or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_create_redirect_and_stats(node: RunningNode) -> None:
    created = httpx.post(node.url("/shorten"), json={"url": "https://example.com/a"})
    assert created.status_code == 201
    body = created.json()
    code = body["code"]
    assert len(code) == 7 and code.isalnum()
    assert body["short_url"] == node.url(f"/{code}")
    assert body["url"] == "https://example.com/a"

    headers = {
        "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "referer": "https://news.example.org/item?id=1",
    }
    answer = httpx.get(node.url(f"/{code}"), headers=headers)
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://example.com/a"
    assert "no-store" in answer.headers["cache-control"]

    stats = wait_for_clicks(node, code, 1)
    assert stats["clicks"] == {"total": 1, "human": 1, "bot": 0}
    assert stats["referrers"] == [{"host": "news.example.org", "clicks": 1}]
    assert stats["browsers"][0]["name"] == "Chrome"
    assert stats["operating_systems"][0]["name"] == "Windows"
    assert stats["devices"] == [{"name": "desktop", "clicks": 1}]
    assert stats["recent"][0]["browser"] == "Chrome"
    assert "ip" not in str(stats["recent"]).lower()


def test_head_redirects_without_counting_a_click(node: RunningNode) -> None:
    code = httpx.post(
        node.url("/shorten"), json={"url": "https://example.com/h"}
    ).json()["code"]
    head = httpx.head(node.url(f"/{code}"))
    assert head.status_code == 302
    assert head.headers["location"] == "https://example.com/h"
    httpx.get(node.url(f"/{code}"))
    stats = wait_for_clicks(node, code, 1)
    time.sleep(0.5)
    assert httpx.get(node.url(f"/stats/{code}")).json()["clicks"]["total"] == 1
    assert stats["clicks"]["total"] == 1


def test_alias_status_and_expiry(node: RunningNode) -> None:
    made = httpx.post(
        node.url("/shorten"),
        json={
            "url": "https://example.com/x",
            "alias": "my-link",
            "redirect_status": 308,
        },
    )
    assert made.status_code == 201
    assert made.json()["code"] == "my-link"
    assert httpx.get(node.url("/my-link")).status_code == 308
    again = httpx.post(
        node.url("/shorten"), json={"url": "https://example.com/y", "alias": "my-link"}
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert (
        httpx.get(node.url("/my-link")).headers["location"] == "https://example.com/x"
    )

    soon = httpx.post(
        node.url("/shorten"), json={"url": "https://example.com/t", "ttl_s": 1}
    )
    assert soon.status_code == 201
    assert soon.json()["expires_at"] is not None
    time.sleep(1.2)
    gone = httpx.get(node.url(f"/{soon.json()['code']}"))
    assert gone.status_code == 410
    assert gone.json()["title"] == "Gone"


def test_unknown_code_is_404_problem(node: RunningNode) -> None:
    for path in ("/Zz9Zz9Z", "/stats/Zz9Zz9Z", "/no/such/route"):
        answer = httpx.get(node.url(path))
        assert answer.status_code == 404, path
        problem = answer.json()
        assert set(problem) >= {"type", "title", "status", "detail"}


def test_restart_keeps_links_and_stats(make_node: MakeNode) -> None:
    node = make_node()
    code = httpx.post(
        node.url("/shorten"), json={"url": "https://example.com/r"}
    ).json()["code"]
    for _ in range(5):
        httpx.get(node.url(f"/{code}"))
    wait_for_clicks(node, code, 5)
    assert set(node.stop().values()) == {0}
    node.start()
    assert (
        httpx.get(node.url(f"/{code}")).headers["location"] == "https://example.com/r"
    )
    assert wait_for_clicks(node, code, 6)["clicks"]["total"] == 6
