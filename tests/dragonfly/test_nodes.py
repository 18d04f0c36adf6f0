"""Several nodes sharing one Redis-protocol server, over real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from hyperlinkr.apikeys import create_key
from hyperlinkr.dragonfly import EPOCH_KEY, link_key
from tests.dragonfly.servers import Cluster, Server
from tests.e2e.conftest import MakeNode
from tests.e2e.nodes import RunningNode
from tests.e2e.traffic import get_many, location_of, shorten_many

VISIBLE_WITHIN_S = 1.0


def eventually(check: Callable[[], bool], within_s: float) -> float:
    """Seconds until `check()` held; fails after `within_s`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within_s, "not seen in time"
        time.sleep(0.02)
    return time.monotonic() - started


def two_nodes(make_node: MakeNode, url: str) -> tuple[RunningNode, RunningNode, str]:
    """Two nodes on one server; an API key (links:manage) valid on the first."""
    a = make_node(redis_url=url)
    key = create_key(a.data_dir / "api-keys.json", "ops", frozenset({"links:manage"}))
    b = make_node(redis_url=url)
    return a, b, key


def test_a_link_made_on_one_node_works_on_the_other(
    make_node: MakeNode, server: Server
) -> None:
    a, b, _ = two_nodes(make_node, server.url)
    made = httpx.post(a.url("/shorten"), json={"url": "https://example.com/shared"})
    assert made.status_code == 201
    code = made.json()["code"]
    assert location_of(b.port, code) == (302, "https://example.com/shared")

    taken = httpx.post(
        b.url("/shorten"), json={"url": "https://x.example/", "alias": "same"}
    )
    again = httpx.post(
        a.url("/shorten"), json={"url": "https://y.example/", "alias": "same"}
    )
    assert (taken.status_code, again.status_code) == (201, 409)


def test_a_delete_on_one_node_is_a_404_on_the_other_within_1_s(
    make_node: MakeNode, server: Server
) -> None:
    a, b, key = two_nodes(make_node, server.url)
    code = httpx.post(a.url("/shorten"), json={"url": "https://example.com/d"}).json()[
        "code"
    ]
    assert get_many(b.port, f"/{code}", 50) == {302: 50}  # cached in B's L1
    auth = {"authorization": f"Bearer {key}"}
    patched = httpx.patch(
        a.url(f"/links/{code}"), json={"url": "https://example.com/e"}, headers=auth
    )
    assert patched.status_code == 200
    eventually(
        lambda: location_of(b.port, code) == (302, "https://example.com/e"),
        VISIBLE_WITHIN_S,
    )
    assert httpx.delete(a.url(f"/links/{code}"), headers=auth).status_code == 204
    eventually(lambda: location_of(b.port, code)[0] == 404, VISIBLE_WITHIN_S)


def test_clicks_on_both_nodes_make_one_total_on_either(
    make_node: MakeNode, server: Server
) -> None:
    a, b, _ = two_nodes(make_node, server.url)
    code = httpx.post(a.url("/shorten"), json={"url": "https://example.com/c"}).json()[
        "code"
    ]
    assert get_many(a.port, f"/{code}", 300) == {302: 300}
    assert get_many(b.port, f"/{code}", 200) == {302: 200}

    def total_on(node: RunningNode) -> int:
        return int(httpx.get(node.url(f"/stats/{code}")).json()["clicks"]["total"])

    eventually(lambda: total_on(a) == 500 and total_on(b) == 500, 10)
    stats = httpx.get(b.url(f"/stats/{code}")).json()
    # Every request came from one client (same address and user agent).
    assert stats["per_day"][0]["unique_visitors"] == 1


def test_a_node_that_was_down_catches_up_from_the_stream(
    make_node: MakeNode, server: Server
) -> None:
    a, b, key = two_nodes(make_node, server.url)
    keep = httpx.post(a.url("/shorten"), json={"url": "https://example.com/k"}).json()
    eventually(lambda: location_of(b.port, keep["code"])[0] == 302, VISIBLE_WITHIN_S)
    b.stop()
    made = httpx.post(a.url("/shorten"), json={"url": "https://example.com/new"}).json()
    auth = {"authorization": f"Bearer {key}"}
    assert (
        httpx.delete(a.url(f"/links/{keep['code']}"), headers=auth).status_code == 204
    )
    b.start()
    time.sleep(1.0)
    server.kill()  # from now on B can only answer from its own LMDB
    assert location_of(b.port, made["code"]) == (302, "https://example.com/new")
    assert location_of(b.port, keep["code"])[0] == 404


def test_losing_the_server_keeps_redirects_and_fails_shorten_fast(
    make_node: MakeNode, server: Server
) -> None:
    node = make_node(redis_url=server.url)
    answers = shorten_many(
        node.port, [f"https://example.com/o/{i}" for i in range(300)]
    )
    links = {body["code"]: body["url"] for status, body in answers if status == 201}
    assert len(links) == 300
    cold = list(links)[:100]
    hot = list(links)[-1]
    during: dict[int, int] = {}
    traffic = threading.Thread(
        target=lambda: during.update(get_many(node.port, f"/{hot}", 3000))
    )
    traffic.start()
    time.sleep(0.2)
    server.kill()
    traffic.join(60)
    assert during == {302: 3000}  # not one redirect failed while it went away

    for code in list(links)[100:]:  # L1 and LMDB, without the server
        assert location_of(node.port, code) == (302, links[code])
    started = time.monotonic()
    refused = httpx.post(node.url("/shorten"), json={"url": "https://example.com/x"})
    assert refused.status_code == 503
    assert time.monotonic() - started < 1.0
    assert httpx.get(node.url(f"/stats/{cold[0]}")).status_code == 503

    server.start()  # the same port, empty
    eventually(
        lambda: (
            httpx.post(
                node.url("/shorten"), json={"url": "https://example.com/back"}
            ).status_code
            == 201
        ),
        10,
    )
    client = server.client()
    eventually(lambda: bool(client.exists(EPOCH_KEY)), 10)
    missing = [code for code in links if not client.exists(link_key(code))]
    assert missing == [], f"{len(missing)} links were not re-seeded"
    assert location_of(node.port, cold[0]) == (302, links[cold[0]])
    eventually(lambda: httpx.get(node.url(f"/stats/{cold[0]}")).status_code == 200, 10)


def test_a_redis_cluster_serves_create_redirect_and_stats(
    make_node: MakeNode, cluster: Cluster
) -> None:
    a = make_node(redis_url=cluster.url, redis_cluster="true")
    b = make_node(redis_url=cluster.url, redis_cluster="true")
    codes = [
        httpx.post(a.url("/shorten"), json={"url": f"https://example.com/k{i}"}).json()[
            "code"
        ]
        for i in range(20)
    ]
    for i, code in enumerate(codes):
        assert location_of(b.port, code) == (302, f"https://example.com/k{i}")
    assert get_many(a.port, f"/{codes[0]}", 30) == {302: 30}
    assert get_many(b.port, f"/{codes[0]}", 20) == {302: 20}

    def total() -> int:
        answer = httpx.get(b.url(f"/stats/{codes[0]}"))
        assert answer.status_code == 200, (answer.text, b.log_text()[-3000:])
        return int(answer.json()["clicks"]["total"])

    eventually(lambda: total() == 50, 10)
