"""GET /metrics and /readyz of a real node, and the dashboard built on them."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import httpx

from tests.e2e.conftest import MakeNode
from tests.e2e.nodes import RunningNode
from tests.e2e.scraping import Samples, scrape, total, wait_for

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "docs" / "grafana" / "hyperlinkr.json"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
METRIC_NAME = re.compile(r"\bhyperlinkr_[a-z0-9_]+")


def dashboard_metric_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    exprs += [
        variable["definition"]
        for variable in dashboard["templating"]["list"]
        if "definition" in variable
    ]
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}


def settled(samples: Samples) -> bool:
    """The three clicks and five requests are counted, the actor has beaten since.

    A worker writes its request counts every metrics.FLUSH_INTERVAL_S, so the
    one that did not answer the scrape may be that far behind.
    """
    return (
        total(samples, "hyperlinkr_clicks_total") >= 3
        and total(samples, "hyperlinkr_requests_total") >= 5
        and total(samples, "hyperlinkr_analytics_last_flush_timestamp_seconds") > 0
        and total(samples, "hyperlinkr_analytics_lag_seconds") == 0
    )


def make_traffic(node: RunningNode) -> str:
    made = httpx.post(node.url("/shorten"), json={"url": "https://example.com/m"})
    assert made.status_code == 201
    code: str = made.json()["code"]
    for agent in (BROWSER, BROWSER, "curl/8.5.0"):
        answer = httpx.get(node.url(f"/{code}"), headers={"user-agent": agent})
        assert answer.status_code == 302
    assert httpx.get(node.url("/Zz9Zz9Z")).status_code == 404
    return code


def test_every_metric_the_dashboard_queries_is_scraped(node: RunningNode) -> None:
    make_traffic(node)
    wait_for(lambda: settled(scrape(node)), "the clicks to be counted")

    samples = scrape(node)
    scraped = {name for name, _ in samples}
    queried = dashboard_metric_names()
    assert len(queried) > 20
    assert sorted(queried - scraped) == []


def test_metrics_count_what_the_node_did(node: RunningNode) -> None:
    make_traffic(node)
    wait_for(lambda: settled(scrape(node)), "the clicks to be counted")
    samples = scrape(node)

    requests = "hyperlinkr_requests_total"
    assert total(samples, requests, route="redirect", status="302") == 3
    assert total(samples, requests, route="redirect", status="404") == 1
    assert total(samples, requests, route="shorten", status="201") == 1
    latency = "hyperlinkr_request_duration_seconds_count"
    assert total(samples, latency, route="redirect") == 4
    lookups = "hyperlinkr_store_lookups_total"
    assert total(samples, lookups, tier="l1", outcome="hit") == 3
    assert total(samples, lookups, tier="lmdb", outcome="miss") == 1
    assert total(samples, "hyperlinkr_clicks_total", kind="human") == 2
    assert total(samples, "hyperlinkr_clicks_total", kind="bot") == 1
    assert total(samples, "hyperlinkr_persister_batch_mutations_sum") == 1
    assert total(samples, "hyperlinkr_links_stored") == 1
    assert total(samples, "hyperlinkr_ring_pushes_total", ring="clicks") == 3
    assert total(samples, "hyperlinkr_ring_depth_records", ring="clicks") == 0


def test_readyz_names_the_actor_that_stopped_beating(node: RunningNode) -> None:
    def readyz() -> httpx.Response:
        return httpx.get(node.url("/readyz"), timeout=5)

    wait_for(lambda: readyz().status_code == 200, "the node to be ready")
    (actor,) = node.workers_of("analytics")
    os.kill(actor, signal.SIGSTOP)
    try:
        wait_for(lambda: readyz().status_code == 503, "/readyz to fail")
        body = readyz().json()
    finally:
        os.kill(actor, signal.SIGCONT)

    assert body["status"] == "not ready"
    assert body["checks"]["lmdb"] == "ok"
    assert body["checks"]["persister"] == "ok"
    assert body["checks"]["analytics"].startswith("failed: the analytics")
    wait_for(lambda: readyz().status_code == 200, "/readyz to recover")


def test_a_killed_workers_counts_stay_in_the_sums(make_node: MakeNode) -> None:
    node = make_node(workers=1)
    make_traffic(node)
    before = total(scrape(node), "hyperlinkr_requests_total")
    (worker,) = node.workers_of("web")
    os.kill(worker, signal.SIGKILL)

    metrics_dir = node.data_dir / "metrics"

    def folded() -> bool:
        return not any(metrics_dir.glob(f"*_{worker}.db"))

    wait_for(folded, "the restarted worker to fold in its predecessor's files")
    after = scrape(node)
    assert total(after, "hyperlinkr_process_restarts_total", role="web") == 1
    # Every request counted before (the scrape flushed them to the files);
    # the scrape's own count was tallied after it and may die with SIGKILL.
    assert before >= 5
    assert total(after, "hyperlinkr_requests_total") >= before
    assert (metrics_dir / "counter_archive.db").exists()
