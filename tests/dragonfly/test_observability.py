"""/readyz and /metrics of a node on a real Redis-protocol server."""

from __future__ import annotations

import httpx

from tests.dragonfly.servers import Server
from tests.e2e.conftest import MakeNode
from tests.e2e.scraping import scrape, total, wait_for


def test_the_tier_is_checked_and_its_lookups_counted(
    make_node: MakeNode, server: Server
) -> None:
    node = make_node(redis_url=server.url)
    wait_for(lambda: httpx.get(node.url("/readyz")).status_code == 200, "ready")
    assert httpx.get(node.url("/readyz")).json()["checks"]["dragonfly"] == "ok"
    assert httpx.get(node.url("/Zz9Zz9Z")).status_code == 404

    lookups = "hyperlinkr_store_lookups_total"

    def looked_up() -> bool:
        # The worker that answered writes its tally every FLUSH_INTERVAL_S.
        return total(scrape(node), lookups, tier="lmdb", outcome="miss") >= 1

    wait_for(looked_up, "the lookups to be counted")
    samples = scrape(node)
    assert total(samples, lookups, tier="dragonfly", outcome="miss") == 1
    assert total(samples, lookups, tier="lmdb", outcome="miss") == 1

    server.kill()
    answer = httpx.get(node.url("/readyz"), timeout=5)
    assert answer.status_code == 200  # redirects still flow from L1 and LMDB
    assert answer.json()["checks"]["dragonfly"].startswith("degraded: ")
    assert httpx.get(node.url("/Zz9Zz9Y")).status_code == 404

    def away() -> float:
        samples = scrape(node)
        return total(samples, lookups, tier="dragonfly", outcome="error") + total(
            samples, lookups, tier="dragonfly", outcome="skipped"
        )

    wait_for(lambda: away() >= 1, "the lookup of the tier that is away")
