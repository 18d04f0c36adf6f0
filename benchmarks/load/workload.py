"""The links a run seeds, how its codes are split, and its scenarios.

The seeded codes are split in two sets that never overlap:

- hot: the last `Options.hot_codes` codes seeded (so they are in L1 when
  the run starts), cycled through by `redirect-hot`. No other scenario
  touches them before the click check, so the sum of their /stats totals
  can be compared with the redirects wrk saw answered. After the check,
  `redirect-half` cycles through them again at a set rate, sent by the
  open-loop pacer (`benchmarks.load.pacer`) rather than wrk. The pacer
  also sends `shorten-paced`, each request a new URL (SHORTEN_BODIES of
  them, in turn).
- ranked: every other code, shuffled with a fixed seed so a code's Zipf
  rank has nothing to do with when it was seeded (the L1 holds the last
  quarter seeded), then used in rank order by `redirect-zipf`, `stats`
  and `mixed`. The node's L1 holds a quarter of all the links, so the
  Zipf tail must miss it and go to LMDB.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load.pacer import OpenLoop
from benchmarks.load.scripts import write_codes, write_script

__all__ = [
    "BASELINE_SCENARIOS",
    "NODE_SCENARIOS",
    "PACED_SHARE",
    "SHORTEN_PACED_PER_S",
    "Scenario",
    "Workload",
    "seed_urls",
]

ZIPF_EXPONENT = 1.0
SHUFFLE_SEED = 20240601
MIXED_REDIRECT_PERCENT = 90
MIXED_SHORTEN_PERCENT = 5
# The Zipf scenarios are measured after this long a warm-up run, so the L1
# hit ratio is the steady state rather than the seeding order's leftovers.
ZIPF_WARMUP_S = 1
# redirect-half offers this share of the requests/s redirect-hot reached.
# Open loop, the schedule sets the rate: the connections only bound how
# many requests can be in flight at once.
PACED_SHARE = 0.5
PACED_CONNECTIONS = 64
# shorten-paced offers the rate the shorten bar names, open loop, on as
# many connections as the unpaced scenarios: p99 at that rate, where
# `shorten` gives the maximum rate and the latency of 64 connections
# queued for it.
SHORTEN_PACED_PER_S = 5000.0
SHORTEN_PACED_CONNECTIONS = 64
# Distinct URLs shorten-paced sends: enough for 12 s at its rate. Its
# warm-up and its measured run both start at the first; a URL sent again
# is a new link all the same (the requests do not ask for reuse).
SHORTEN_BODIES = 60_000

NODE_SCENARIOS = (
    "redirect-hot",
    "redirect-half",
    "redirect-zipf",
    "stats",
    "shorten",
    "shorten-paced",
    "mixed",
)
BASELINE_SCENARIOS = ("redirect-hot", "redirect-zipf")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    script: Path | None  # the wrk script; None for an open-loop scenario
    description: str
    warmup_s: int = 0
    # A paced scenario, run by the pacer (open loop) rather than wrk,
    # offers a set rate on this many connections: its own `rate_per_s`,
    # or (None) the one the harness gives it. None for the others, which
    # wrk runs and which offer all they can.
    paced_connections: int | None = None
    rate_per_s: float | None = None
    open_loop: OpenLoop | None = None


def seed_urls(count: int) -> list[str]:
    """The URLs a run shortens: plain, distinct, accepted by the URL policy."""
    return [f"https://example.com/seeded/{i}?ref=load" for i in range(count)]


@dataclass(frozen=True, slots=True)
class Workload:
    links: dict[str, str]
    hot: list[str]
    ranked: list[str]
    scenarios: dict[str, Scenario]

    @classmethod
    def build(
        cls,
        directory: Path,
        codes: Sequence[str],
        urls: Sequence[str],
        hot_count: int,
        pacer: Path,
    ) -> Workload:
        """Split the seeded codes and write the wrk scripts into directory;
        `pacer` is the open-loop generator (`benchmarks.load.pacer`)."""
        hot = list(codes[-hot_count:])
        ranked = list(codes[:-hot_count])
        random.Random(SHUFFLE_SEED).shuffle(ranked)
        scenarios = _write_scenarios(directory, hot, ranked, pacer)
        return cls(dict(zip(codes, urls, strict=True)), hot, ranked, scenarios)


def _write_scenarios(
    directory: Path, hot: Sequence[str], ranked: Sequence[str], pacer: Path
) -> dict[str, Scenario]:
    hot_file = write_codes(directory / "hot-codes.txt", hot)
    ranked_file = write_codes(directory / "ranked-codes.txt", ranked)
    common = {"run_token": secrets.token_hex(4), "seed": secrets.randbelow(1 << 30)}
    zipf = {"zipf_exponent": ZIPF_EXPONENT, **common}
    stats_percent = 100 - MIXED_REDIRECT_PERCENT - MIXED_SHORTEN_PERCENT

    def scenario(
        name: str,
        body: str,
        codes_file: Path | None,
        description: str,
        params: Mapping[str, object],
    ) -> Scenario:
        script = write_script(directory, name, body, codes_file, **params)
        warmup_s = ZIPF_WARMUP_S if body == "zipf" else 0
        return Scenario(name, script, description, warmup_s)

    def open_loop(
        name: str,
        loop: OpenLoop,
        description: str,
        connections: int = PACED_CONNECTIONS,
        rate_per_s: float | None = None,
    ) -> Scenario:
        return Scenario(name, None, description, 0, connections, rate_per_s, loop)

    bodies_file = write_codes(
        directory / "shorten-bodies.txt",
        _shorten_bodies(str(common["run_token"]), SHORTEN_BODIES),
    )

    hot_params = {"path_prefix": "/", "kind": "redirect", **common}
    stats_params = {"path_prefix": "/stats/", "kind": "stats", **common}
    mixed_params = {
        "redirect_percent": MIXED_REDIRECT_PERCENT,
        "shorten_percent": MIXED_SHORTEN_PERCENT,
        **zipf,
    }
    found = [
        scenario(
            "redirect-hot",
            "cycle",
            hot_file,
            f"GET /{{code}}, cycling through {len(hot):,} hot codes",
            hot_params,
        ),
        open_loop(
            "redirect-half",
            OpenLoop(pacer, hot_file, "/"),
            f"redirect-hot's codes at {PACED_SHARE:.0%} of its requests/s, "
            f"open loop on {PACED_CONNECTIONS} connections (latency from "
            "each request's due time)",
        ),
        scenario(
            "redirect-zipf",
            "zipf",
            ranked_file,
            f"GET /{{code}}, Zipf(s={ZIPF_EXPONENT}) over {len(ranked):,} codes",
            zipf,
        ),
        scenario(
            "stats",
            "cycle",
            ranked_file,
            f"GET /stats/{{code}}, cycling through {len(ranked):,} codes",
            stats_params,
        ),
        scenario(
            "shorten", "shorten", None, "POST /shorten, a new URL each time", common
        ),
        open_loop(
            "shorten-paced",
            OpenLoop(pacer, bodies_file, "/shorten", post=True),
            f"POST /shorten at {SHORTEN_PACED_PER_S:,.0f}/s, open loop on "
            f"{SHORTEN_PACED_CONNECTIONS} connections (latency from each "
            "request's due time)",
            SHORTEN_PACED_CONNECTIONS,
            SHORTEN_PACED_PER_S,
        ),
        scenario(
            "mixed",
            "mixed",
            ranked_file,
            f"{MIXED_REDIRECT_PERCENT}% Zipf redirects, {MIXED_SHORTEN_PERCENT}% "
            f"shorten, {stats_percent}% stats",
            mixed_params,
        ),
    ]
    return {s.name: s for s in found}


def _shorten_bodies(run_token: str, count: int) -> list[str]:
    """POST /shorten bodies, one a line, each with a URL of its own."""
    return [
        json.dumps({"url": f"https://example.com/load/{run_token}/paced/{i}"})
        for i in range(count)
    ]
