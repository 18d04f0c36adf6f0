"""HYPERLINKR_LOG_FORMAT=json on a real node: every line is one JSON object."""

from __future__ import annotations

import json
import time

import httpx

from tests.e2e.conftest import MakeNode


def test_json_logs_carry_extra_fields_and_the_access_log(make_node: MakeNode) -> None:
    node = make_node(log_format="json", access_log="true")
    assert httpx.get(node.url("/healthz")).status_code == 200
    time.sleep(0.5)  # let the access record reach the log file
    node.stop()

    records = []
    for role, path in node.logs.items():
        for line in path.read_text().splitlines():
            record = json.loads(line)  # fails the test on any non-JSON line
            assert {"ts", "level", "logger", "process", "message"} <= set(record)
            records.append((role, record))
    started = [r for _, r in records if " started (pid " in r["message"]]
    assert any(r.get("role") == "web" and "pid" in r for r in started)
    access = [r for _, r in records if r["logger"] == "sanic.access"]
    assert any(r.get("status") == 200 for r in access), access
