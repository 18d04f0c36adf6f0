"""One scenario against one target, and what it cost.

CPU is read from /proc just before and just after wrk (or the pacer)
runs, over every process of the target, and divided by the requests it
completed: so it includes the node's idle work (the analytics flush loop,
supervisors) for the scenario's duration, which is part of what a
request costs. The generator runs on the same machine and its own CPU is
not counted; on a small machine it competes with the target for cores,
which the throughput figures include.

Anything else running on the machine skews every figure, so each
measurement also says how much CPU the rest of the machine used meanwhile:
all CPU time spent in processes or stolen by the hypervisor (/proc/stat,
interrupts left out) less the target's, wrk's (the harness's waited-for
children) and the harness's own, as a share of every core for the run.

The click check waits for the analytics actor to flush, then compares the
sum of the hot codes' clicks.total with the redirects wrk saw answered.
Requests in flight when wrk stops were served (and their clicks counted)
but never reported by wrk, so the clicks recorded should lie between the
redirects answered and the redirects the scripts sent (at most one per
connection more). Only a shortfall below the answered count is loss; a
full click ring drops clicks rather than slow redirects, and the ring's
drop counter says whether that happened.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.load.client import stats_totals
from benchmarks.load.pacer import Pacing, run_pacer
from benchmarks.load.processes import machine_busy_seconds
from benchmarks.load.targets import Counters, LoadNode, Target
from benchmarks.load.workload import Scenario
from benchmarks.load.wrk import WrkResult, run_wrk

__all__ = ["ClickCheck", "Measurement", "check_clicks", "measure", "warm_up"]

logger = logging.getLogger(__name__)

FLUSH_WAIT_S = 5.0
# A fresh target's first seconds (connections accepted, caches, allocator)
# are not what the first scenario should measure.
TARGET_WARMUP_S = 1
OPEN_LOOP_WARMUP_S = 1.0
_POLL_INTERVAL_S = 0.25
# How often the click ring's fill is sampled during a run: at 100,000
# clicks/s it moves by at most 500 records between samples.
FILL_SAMPLE_S = 0.005


@dataclass(frozen=True, slots=True)
class Measurement:
    target: str
    scenario: str
    wrk: WrkResult
    cpu_s: float
    rss_total_mb: float
    wall_s: float
    wrk_cpu_s: float
    others_cpu_s: float
    connections: int = 0
    # The rate a paced scenario was offered; None when it offered all it could.
    offered_per_s: float | None = None
    l1_hits: int | None = None
    l1_misses: int | None = None
    click_drops: int | None = None
    # The most records the click ring held at once during the run, of its
    # capacity: how close it came to dropping clicks.
    click_ring_peak: int | None = None
    click_ring_capacity: int | None = None
    # What only an open-loop scenario (the pacer) measures.
    pacing: Pacing | None = None

    @property
    def others_share(self) -> float:
        """CPU used by everything else, as a share of the whole machine."""
        cores = os.cpu_count() or 1
        return self.others_cpu_s / (self.wall_s * cores) if self.wall_s else 0.0

    @property
    def cpu_us_per_request(self) -> float | None:
        if not self.wrk.requests:
            return None
        return 1e6 * self.cpu_s / self.wrk.requests

    @property
    def l1_hit_ratio(self) -> float | None:
        if self.l1_hits is None or self.l1_misses is None:
            return None
        lookups = self.l1_hits + self.l1_misses
        return self.l1_hits / lookups if lookups else None

    def as_dict(self) -> dict[str, Any]:
        fields = {k: v for k, v in asdict(self).items() if k not in ("wrk", "pacing")}
        return {
            **fields,
            "wrk": self.wrk.as_dict(),
            "pacing": None if self.pacing is None else self.pacing.as_dict(),
            "cpu_us_per_request": self.cpu_us_per_request,
            "l1_hit_ratio": self.l1_hit_ratio,
            "others_share": self.others_share,
        }


def warm_up(target: Target, scenario: Scenario, connections: int, threads: int) -> None:
    """Load a freshly started target for TARGET_WARMUP_S, unmeasured."""
    logger.info("warming up %s with %s", target.name, scenario.name)
    assert scenario.script is not None, "the warm-up is a wrk scenario"
    run_wrk(scenario.script, target.port, TARGET_WARMUP_S, connections, threads)


def measure(
    target: Target,
    scenario: Scenario,
    duration_s: int,
    connections: int,
    threads: int,
    rate_per_s: float | None = None,
) -> Measurement:
    """Run scenario against target on `connections`; a paced one (the
    pacer's, open loop) needs `rate_per_s`."""
    if scenario.paced_connections is not None and (
        rate_per_s is None or rate_per_s <= 0
    ):
        raise ValueError(
            f"{scenario.name} is paced: expected a positive rate_per_s, "
            f"got {rate_per_s!r}"
        )
    loop, script, pacing = scenario.open_loop, scenario.script, None
    if loop is not None and rate_per_s is not None:
        # Its own warm-up, outside the CPU measured: new connections, and
        # the target settling into the rate.
        run_pacer(loop, target.port, rate_per_s, connections, OPEN_LOOP_WARMUP_S, 0)
        before, cpu = target.counters(), _CpuClock(target)
        with _FillWatch(target) as fill:
            result, pacing = run_pacer(
                loop, target.port, rate_per_s, connections, duration_s, 0
            )
    else:
        assert script is not None, f"{scenario.name} has neither script nor pacer"
        if scenario.warmup_s:
            run_wrk(script, target.port, scenario.warmup_s, connections, threads)
        before, cpu = target.counters(), _CpuClock(target)
        with _FillWatch(target) as fill:
            result = run_wrk(script, target.port, duration_s, connections, threads)
    spent = cpu.read()
    after = target.counters()
    measurement = Measurement(
        target.name,
        scenario.name,
        result,
        spent.target_s,
        sum(p.rss_mb for p in target.memory()),
        spent.wall_s,
        spent.wrk_s,
        spent.others_s,
        connections,
        rate_per_s if scenario.paced_connections is not None else None,
        **_counter_deltas(before, after),
        click_ring_peak=fill.peak,
        click_ring_capacity=fill.capacity,
        pacing=pacing,
    )
    logger.info(
        "%s %s: %.0f requests/s, p99 %.2f ms, %d errors",
        target.name,
        scenario.name,
        result.requests_per_s,
        result.p99_ms,
        result.errors,
    )
    return measurement


class _FillWatch:
    """Samples the target's click ring fill from a thread while a run goes on."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak: int | None = None
        self.capacity: int | None = None

    def __enter__(self) -> _FillWatch:
        if self._target.click_ring_fill() is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _sample(self) -> None:
        while True:
            fill = self._target.click_ring_fill()
            if fill is not None:
                depth, self.capacity = fill
                self.peak = depth if self.peak is None else max(self.peak, depth)
            if self._done.wait(FILL_SAMPLE_S):
                return


@dataclass(frozen=True, slots=True)
class _CpuSpent:
    wall_s: float
    target_s: float
    wrk_s: float
    others_s: float


class _CpuClock:
    """CPU seconds spent since construction: target, wrk, everything else."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._start = self._now()

    def _now(self) -> tuple[float, float, float, float, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        harness = resource.getrusage(resource.RUSAGE_SELF)
        return (
            time.monotonic(),
            self._target.cpu_seconds(),
            children.ru_utime + children.ru_stime,
            harness.ru_utime + harness.ru_stime,
            machine_busy_seconds(),
        )

    def read(self) -> _CpuSpent:
        wall, target, wrk, harness, busy = (
            b - a for a, b in zip(self._start, self._now(), strict=True)
        )
        others = max(0.0, busy - target - wrk - harness)
        return _CpuSpent(wall, target, wrk, others)


def _counter_deltas(before: Counters | None, after: Counters | None) -> dict[str, int]:
    if before is None or after is None:
        return {}
    return {
        "l1_hits": after.l1_hits - before.l1_hits,
        "l1_misses": after.l1_misses - before.l1_misses,
        "click_drops": after.click_drops - before.click_drops,
    }


@dataclass(frozen=True, slots=True)
class ClickCheck:
    codes: int
    redirects_answered: int
    redirects_sent: int
    clicks_recorded: int
    waited_s: float
    click_drops: int | None
    ring_peak: int | None = None
    ring_capacity: int | None = None

    @property
    def missing(self) -> int:
        """Answered redirects without a recorded click (negative: extra)."""
        return self.redirects_answered - self.clicks_recorded

    @property
    def loss_ratio(self) -> float:
        if not self.redirects_answered:
            return 0.0
        return max(0, self.missing) / self.redirects_answered

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "missing": self.missing, "loss_ratio": self.loss_ratio}


def check_clicks(node: LoadNode, hot: list[str], run: Measurement) -> ClickCheck:
    """Wait up to FLUSH_WAIT_S for the hot codes' clicks to be recorded."""
    expected = run.wrk.answered
    started = time.monotonic()
    recorded = sum(stats_totals(node.port, hot))
    while recorded < expected and time.monotonic() - started < FLUSH_WAIT_S:
        time.sleep(_POLL_INTERVAL_S)
        recorded = sum(stats_totals(node.port, hot))
    check = ClickCheck(
        len(hot),
        expected,
        run.wrk.sent["redirect"],
        recorded,
        time.monotonic() - started,
        run.click_drops,
        run.click_ring_peak,
        run.click_ring_capacity,
    )
    logger.info(
        "clicks: %d recorded for %d redirects answered, after %.1f s",
        recorded,
        expected,
        check.waited_s,
    )
    return check
