"""The management API over real HTTP: keys, scopes, edit, delete, bulk, QR."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hyperlinkr.apikeys import create_key
from tests.e2e.conftest import MakeNode
from tests.e2e.nodes import RunningNode


class Keyed:
    """A node with one key per scope set, and helpers to call it."""

    def __init__(self, node: RunningNode, keys: dict[str, str]) -> None:
        self.node = node
        self.keys = keys

    def auth(self, name: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[name]}"}

    def shorten(self, **body: object) -> httpx.Response:
        return httpx.post(self.node.url("/shorten"), json=body)


def make_keys(data_dir: Path) -> dict[str, str]:
    path = data_dir / "api-keys.json"
    return {
        "manage": create_key(path, "manage", frozenset({"links:manage"})),
        "create": create_key(path, "create", frozenset({"links:create"})),
        "stats": create_key(path, "stats", frozenset({"stats:read"})),
    }


@pytest.fixture
def keyed(make_node: MakeNode, tmp_path: Path) -> Iterator[Keyed]:
    data_dir = tmp_path / "keyed"
    keys = make_keys(data_dir)
    yield Keyed(make_node(data_dir), keys)


def code_of(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    return str(response.json()["code"])


def test_cli_prints_a_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    env = {"HYPERLINKR_DATA_DIR": str(tmp_path), "PATH": ""}
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "hyperlinkr",
            "api-key",
            "create",
            "--scopes",
            "links:manage,stats:read",
            "--label",
            "ops",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    key = made.stdout.strip()
    assert key.startswith("hlk_")
    stored = (tmp_path / "api-keys.json").read_text()
    assert key.split("_", 2)[2] not in stored
    listed = subprocess.run(
        [sys.executable, "-m", "hyperlinkr", "api-key", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "links:manage,stats:read\tops" in listed
    bad = subprocess.run(
        [sys.executable, "-m", "hyperlinkr", "api-key", "create", "--scopes", "root"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode != 0
    assert "expected one or more of" in bad.stderr


def test_link_details_need_a_key_with_the_manage_scope(keyed: Keyed) -> None:
    code = code_of(keyed.shorten(url="https://example.com/d"))
    url = keyed.node.url(f"/links/{code}")
    assert httpx.get(url).status_code == 401
    wrong = httpx.get(url, headers={"authorization": "Bearer hlk_0000_nope"})
    assert wrong.status_code == 401
    assert "www-authenticate" in wrong.headers
    assert httpx.get(url, headers=keyed.auth("stats")).status_code == 403
    details = httpx.get(url, headers={"x-api-key": keyed.keys["manage"]})
    assert details.status_code == 200
    assert details.json()["url"] == "https://example.com/d"
    assert details.json()["enabled"] is True
    missing = httpx.get(keyed.node.url("/links/Nope123"), headers=keyed.auth("manage"))
    assert missing.status_code == 404


def test_patch_is_seen_by_every_worker_at_once(keyed: Keyed) -> None:
    code = code_of(keyed.shorten(url="https://example.com/before"))
    for _ in range(20):  # warm L1 through both workers
        httpx.get(keyed.node.url(f"/{code}"))
    changed = httpx.patch(
        keyed.node.url(f"/links/{code}"),
        json={"url": "https://example.com/after", "redirect_status": 307},
        headers=keyed.auth("manage"),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == "https://example.com/after"
    for _ in range(40):  # new connections spread over the workers
        answer = httpx.get(keyed.node.url(f"/{code}"))
        assert (answer.status_code, answer.headers["location"]) == (
            307,
            "https://example.com/after",
        )


def test_disable_enable_and_expiry_changes(keyed: Keyed) -> None:
    code = code_of(keyed.shorten(url="https://example.com/e"))
    link = keyed.node.url(f"/links/{code}")
    manage = keyed.auth("manage")
    assert httpx.patch(link, json={"enabled": False}, headers=manage).status_code == 200
    assert httpx.get(keyed.node.url(f"/{code}")).status_code == 404
    assert httpx.patch(link, json={"enabled": True}, headers=manage).status_code == 200
    assert httpx.get(keyed.node.url(f"/{code}")).status_code == 302
    soon = httpx.patch(link, json={"ttl_s": 1}, headers=manage)
    assert soon.json()["expires_at"] is not None
    time.sleep(1.1)
    assert httpx.get(keyed.node.url(f"/{code}")).status_code == 410
    never = httpx.patch(link, json={"expires_at": None}, headers=manage)
    assert never.json()["expires_at"] is None
    assert httpx.get(keyed.node.url(f"/{code}")).status_code == 302
    for body in ({}, {"enabled": "yes"}, {"url": "javascript:alert(1)"}, {"code": "x"}):
        assert httpx.patch(link, json=body, headers=manage).status_code == 422, body


def test_query_forwarding_merges_the_visitors_query(keyed: Keyed) -> None:
    code = code_of(
        keyed.shorten(url="https://example.com/p?ref=a#top", forward_query=True)
    )
    answer = httpx.get(keyed.node.url(f"/{code}?utm_source=mail&x=1"))
    assert (
        answer.headers["location"]
        == "https://example.com/p?ref=a&utm_source=mail&x=1#top"
    )
    plain = code_of(keyed.shorten(url="https://example.com/q"))
    answer = httpx.get(keyed.node.url(f"/{plain}?utm_source=mail"))
    assert answer.headers["location"] == "https://example.com/q"


def test_delete_is_seen_everywhere_and_keeps_nothing(keyed: Keyed) -> None:
    code = code_of(keyed.shorten(url="https://example.com/gone"))
    for _ in range(10):
        httpx.get(keyed.node.url(f"/{code}"))
    link = keyed.node.url(f"/links/{code}")
    assert httpx.delete(link).status_code == 401
    assert httpx.delete(link, headers=keyed.auth("create")).status_code == 403
    assert httpx.delete(link, headers=keyed.auth("manage")).status_code == 204
    for _ in range(20):
        assert httpx.get(keyed.node.url(f"/{code}")).status_code == 404
    assert httpx.get(keyed.node.url(f"/stats/{code}")).status_code == 404
    assert httpx.delete(link, headers=keyed.auth("manage")).status_code == 404


def test_bulk_creates_up_to_100_with_one_result_each(keyed: Keyed) -> None:
    taken = code_of(keyed.shorten(url="https://example.com/t", alias="bulk-taken"))
    links = [{"url": f"https://example.com/b/{i}"} for i in range(95)]
    links += [
        {"url": "ftp://example.com/"},
        {"url": "https://example.com/x", "alias": "bulk-twice"},
        {"url": "https://example.com/y", "alias": "bulk-twice"},
        {"url": "https://example.com/z", "alias": taken},
        "not an object",
    ]
    bulk = keyed.node.url("/links/bulk")
    answer = httpx.post(bulk, json={"links": links}, headers=keyed.auth("create"))
    assert answer.status_code == 200, answer.text
    statuses = [result["status"] for result in answer.json()["results"]]
    assert statuses == [201] * 95 + [422, 201, 409, 409, 422]
    created = answer.json()["results"][7]["link"]
    redirect = httpx.get(keyed.node.url(f"/{created['code']}"))
    assert redirect.headers["location"] == "https://example.com/b/7"
    too_many = {"links": [{"url": "https://example.com/"}] * 101}
    assert (
        httpx.post(bulk, json=too_many, headers=keyed.auth("create")).status_code == 422
    )
    assert httpx.post(bulk, json={"links": links[:1]}).status_code == 401
    assert (
        httpx.post(
            bulk, json={"links": links[:1]}, headers=keyed.auth("manage")
        ).status_code
        == 403
    )


def test_idempotency_key_returns_the_first_answer(keyed: Keyed) -> None:
    shorten = keyed.node.url("/shorten")
    body = {"url": "https://example.com/once"}
    first = httpx.post(shorten, json=body, headers={"idempotency-key": "k-1"})
    again = httpx.post(shorten, json=body, headers={"idempotency-key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = httpx.post(
        shorten,
        json={"url": "https://example.com/other"},
        headers={"idempotency-key": "k-1"},
    )
    assert other.status_code == 422
    fresh = httpx.post(shorten, json=body, headers={"idempotency-key": "k-2"})
    assert fresh.json()["code"] != first.json()["code"]


def test_reuse_returns_the_existing_link_for_a_url(keyed: Keyed) -> None:
    first = keyed.shorten(url="https://example.com/reuse")
    again = keyed.shorten(url="https://example.com/reuse", reuse=True)
    assert again.status_code == 200
    assert again.json()["code"] == first.json()["code"]
    new = keyed.shorten(url="https://example.com/reuse")
    assert new.status_code == 201 and new.json()["code"] != first.json()["code"]


def test_qr_code_as_svg_and_png(keyed: Keyed) -> None:
    code = code_of(keyed.shorten(url="https://example.com/qr"))
    svg = httpx.get(keyed.node.url(f"/{code}/qr"))
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in svg.content
    png = httpx.get(keyed.node.url(f"/{code}/qr?format=png&scale=2"))
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert httpx.get(keyed.node.url(f"/{code}/qr?format=gif")).status_code == 422
    assert httpx.get(keyed.node.url(f"/{code}/qr?scale=999")).status_code == 422
    assert httpx.get(keyed.node.url("/Nope123/qr")).status_code == 404


def test_closed_instance_needs_keys_for_create_and_stats(
    make_node: MakeNode, tmp_path: Path
) -> None:
    data_dir = tmp_path / "closed"
    keys = make_keys(data_dir)
    node = make_node(data_dir, anonymous_create="false", public_stats="false")
    shorten = node.url("/shorten")
    body = {"url": "https://example.com/c"}
    assert httpx.post(shorten, json=body).status_code == 401
    auth = {"authorization": f"Bearer {keys['stats']}"}
    assert httpx.post(shorten, json=body, headers=auth).status_code == 403
    made = httpx.post(shorten, json=body, headers={"x-api-key": keys["create"]})
    code = code_of(made)
    assert httpx.get(node.url(f"/stats/{code}")).status_code == 401
    assert httpx.get(node.url(f"/stats/{code}"), headers=auth).status_code == 200
