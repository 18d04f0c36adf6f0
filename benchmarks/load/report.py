"""The run's results: one plain-text table for people, one JSON document.

The headline figures are node / baseline ratios for the same redirect
load: throughput (below 1 means the node is slower) and CPU per request
(above 1 means the node spends more per request).
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from benchmarks.load.bars import judge
from benchmarks.load.measure import ClickCheck, Measurement
from benchmarks.load.options import Options
from benchmarks.load.pacer import Stalls
from benchmarks.load.processes import ProcessMemory
from benchmarks.load.workload import BASELINE_SCENARIOS, NODE_SCENARIOS, Scenario

__all__ = ["Ratio", "RunReport", "ratios"]

_LEGEND = (
    "CPU us/req: CPU time of every target process per request; RSS MB: "
    "their VmRSS summed;",
    "others: CPU used meanwhile by everything but the target, wrk and the "
    "harness, as a share of all cores (noise).",
)
_TARGETS = ("node", "sanic", "nginx")
# nginx also runs redirect-half, at the node's rate (see harness).
_RATIO_SCENARIOS = (*BASELINE_SCENARIOS, "redirect-half")
_COLUMNS = (
    ("scenario", "<", 14),
    ("target", "<", 6),
    ("req/s", ">", 9),
    ("p50 ms", ">", 7),
    ("p95 ms", ">", 7),
    ("p99 ms", ">", 7),
    ("errors", ">", 7),
    ("CPU us/req", ">", 10),
    ("RSS MB", ">", 7),
    ("L1 hit", ">", 7),
    ("others", ">", 6),
)


@dataclass(frozen=True, slots=True)
class Ratio:
    scenario: str
    baseline: str
    throughput: float | None
    cpu_per_request: float | None
    p99: float | None


def _divide(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(measurements: Sequence[Measurement]) -> list[Ratio]:
    """node / baseline for every redirect scenario a baseline ran."""
    by_key = {(m.target, m.scenario): m for m in measurements}
    found = []
    for (target, scenario), base in by_key.items():
        node = by_key.get(("node", scenario))
        if target == "node" or node is None or scenario not in _RATIO_SCENARIOS:
            continue
        found.append(
            Ratio(
                scenario,
                target,
                _divide(node.wrk.requests_per_s, base.wrk.requests_per_s),
                _divide(node.cpu_us_per_request, base.cpu_us_per_request),
                _divide(node.wrk.p99_ms, base.wrk.p99_ms),
            )
        )
    return found


def _in_order(measurements: Sequence[Measurement]) -> list[Measurement]:
    """By scenario as the node ran them, then the node before baselines."""

    def key(m: Measurement) -> tuple[int, int]:
        scenario = NODE_SCENARIOS.index(m.scenario)
        return scenario, _TARGETS.index(m.target)

    return sorted(measurements, key=key)


def _row(m: Measurement) -> tuple[str, ...]:
    cpu, hit = m.cpu_us_per_request, m.l1_hit_ratio
    return (
        m.scenario,
        m.target,
        f"{m.wrk.requests_per_s:,.0f}",
        f"{m.wrk.p50_ms:.2f}",
        f"{m.wrk.p95_ms:.2f}",
        f"{m.wrk.p99_ms:.2f}",
        f"{m.wrk.errors:,}",
        "-" if cpu is None else f"{cpu:.1f}",
        f"{m.rss_total_mb:.0f}",
        "-" if hit is None else f"{100 * hit:.1f}%",
        f"{100 * m.others_share:.0f}%",
    )


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            f"{cell:{align}{width}}"
            for cell, (_, align, width) in zip(cells, _COLUMNS, strict=True)
        ).rstrip()

    header = line([name for name, _, _ in _COLUMNS])
    return [header, "-" * len(header), *(line(r) for r in rows)]


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _tool_version(argv: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else None


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@dataclass(slots=True)
class RunReport:
    options: Options
    scenarios: dict[str, Scenario]
    node_name: str = ""
    seed_s: float = 0.0
    measurements: list[Measurement] = field(default_factory=list)
    clicks: ClickCheck | None = None
    node_memory: list[ProcessMemory] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Other work on the machine skews every figure; this says how much ran.
    load_average_start: float = 0.0
    # The machine's own stalls, measured idle before and after the run.
    host_stalls: list[tuple[str, Stalls]] = field(default_factory=list)

    def text(self) -> str:
        o = self.options
        lines = [
            f"Hyperlinkr load run: {o.links:,} links seeded in {self.seed_s:.1f} s, "
            f"{o.duration_s} s per scenario, wrk -t{o.threads} -c{o.connections}",
            f"{os.cpu_count()} CPUs, node L1 {o.l1_capacity_entries:,} entries, "
            f"load average {self.load_average_start:.1f} at start, "
            f"{os.getloadavg()[0]:.1f} at end",
            "",
            *_table([_row(m) for m in _in_order(self.measurements)]),
            *_LEGEND,
            *self._stall_lines(),
            *self._paced_lines(),
            *self._ratio_lines(),
            *self._click_lines(),
            *self._memory_lines(),
            *self._scenario_lines(),
            *self._bar_lines(),
        ]
        if self.notes:
            lines += ["", "notes:", *(f"  {note}" for note in self.notes)]
        return "\n".join(lines)

    def _paced_lines(self) -> list[str]:
        lines = []
        for m in self.measurements:
            if m.offered_per_s is None:
                continue
            lines.append(
                f"{m.target} {m.scenario}: offered {m.offered_per_s:,.0f} req/s "
                f"on {m.connections} connections, achieved "
                f"{m.wrk.requests_per_s:,.0f} "
                f"({m.wrk.requests_per_s / m.offered_per_s:.0%})"
            )
            p = m.pacing
            if p is not None:
                lines.append(
                    f"  open loop: p99.9 {p.p999_ms:.2f} ms; from the send rather "
                    f"than the due time p50 {p.service_p50_ms:.2f} ms, p99 "
                    f"{p.service_p99_ms:.2f} ms; sent late (> 0.1 ms: no core for "
                    f"the generator, or every connection busy) "
                    f"{100 * p.late_share:.1f}%, latest by {p.max_lag_ms:.1f} ms"
                )
        return ["", *lines] if lines else []

    def _stall_lines(self) -> list[str]:
        if not self.host_stalls:
            return []
        first = self.host_stalls[0][1]
        readings = "; ".join(
            f"{when} {100 * s.share:.2f}% (longest {s.longest_ms:.1f} ms)"
            for when, s in self.host_stalls
        )
        return [
            f"host stalls, a busy loop on each of {first.cores} CPUs for "
            f"{first.seconds:g} s with nothing else running, time lost in gaps "
            f"over 0.1 ms: {readings}"
        ]

    def _bar_lines(self) -> list[str]:
        verdicts = judge(self.measurements)
        if not verdicts:
            return []
        return ["", "bars:", *(f"  {v.line()}" for v in verdicts)]

    def _ratio_lines(self) -> list[str]:
        found = ratios(self.measurements)
        if not found:
            return []
        lines = ["", "node / baseline   scenario        throughput  CPU/req  p99"]
        for r in found:
            lines.append(
                f"node / {r.baseline:<10} {r.scenario:<15} "
                f"{_times(r.throughput):>10}  {_times(r.cpu_per_request):>7}  "
                f"{_times(r.p99):>5}"
            )
        return lines

    def _click_lines(self) -> list[str]:
        c = self.clicks
        if c is None:
            return []
        drops = "?" if c.click_drops is None else f"{c.click_drops:,}"
        if c.ring_peak is not None and c.ring_capacity:
            drops += (
                f", the ring at most {c.ring_peak:,} of {c.ring_capacity:,} "
                f"records full ({100 * c.ring_peak / c.ring_capacity:.0f}%)"
            )
        return [
            "",
            f"clicks (redirect-hot, {c.codes:,} codes): {c.clicks_recorded:,} "
            f"recorded after {c.waited_s:.1f} s for {c.redirects_answered:,} "
            f"redirects answered ({c.redirects_sent:,} sent);",
            f"  missing {max(0, c.missing):,} (loss {100 * c.loss_ratio:.3f}%), "
            f"click-ring drops {drops}",
        ]

    def _memory_lines(self) -> list[str]:
        if not self.node_memory:
            return []
        lines = [
            "",
            "node memory after its last scenario:",
            f"  {'pid':>7}  {'RSS MB':>7}  {'PSS MB':>7}  process",
        ]
        for p in self.node_memory:
            lines.append(f"  {p.pid:>7}  {p.rss_mb:>7.1f}  {p.pss_mb:>7.1f}  {p.label}")
        rss = sum(p.rss_mb for p in self.node_memory)
        pss = sum(p.pss_mb for p in self.node_memory)
        lines.append(
            f"  {'total':>7}  {rss:>7.1f}  {pss:>7.1f}  "
            "(RSS counts shared segments once per process)"
        )
        return lines

    def _scenario_lines(self) -> list[str]:
        return [
            "",
            "scenarios:",
            *(f"  {s.name:<14} {s.description}" for s in self.scenarios.values()),
        ]

    def as_dict(self) -> dict[str, Any]:
        options = {**asdict(self.options), "json_path": str(self.options.json_path)}
        return {
            "options": options,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "wrk": _tool_version(["wrk", "--version"]),
                "nginx": _tool_version(["nginx", "-v"]),
                "sanic": _package_version("sanic"),
            },
            "node_name": self.node_name,
            "l1_capacity_entries": self.options.l1_capacity_entries,
            "seed_s": self.seed_s,
            "load_average_start": self.load_average_start,
            "load_average_end": os.getloadavg()[0],
            "host_stalls": {when: s.as_dict() for when, s in self.host_stalls},
            "scenarios": {n: s.description for n, s in self.scenarios.items()},
            "measurements": [m.as_dict() for m in self.measurements],
            "ratios": [asdict(r) for r in ratios(self.measurements)],
            "bars": [{**asdict(v), "met": v.met} for v in judge(self.measurements)],
            "clicks": None if self.clicks is None else self.clicks.as_dict(),
            "node_memory": [asdict(p) for p in self.node_memory],
            "node_rss_total_mb": sum(p.rss_mb for p in self.node_memory),
            "node_pss_total_mb": sum(p.pss_mb for p in self.node_memory),
            "notes": self.notes,
        }
