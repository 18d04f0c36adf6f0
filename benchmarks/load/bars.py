"""The issue's bars, judged from one run's measurements.

A bar is a figure, a limit and a direction; a verdict says what the run
measured against it. A bar the run has no measurement for (a baseline
skipped, a scenario missing) is left out rather than judged. The memory
bar (RSS with 2 million links cached) needs a node of its own and is
judged by `benchmarks.load.rss`.

These are read off one run on a shared, noisy machine: a bar missed by a
small margin with a high `others` share says more about the machine than
about the node. Re-run before deciding anything on one verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.load.measure import Measurement
from benchmarks.load.workload import SHORTEN_PACED_PER_S

__all__ = ["Verdict", "judge"]

REDIRECT_SPEEDUP = 2.0
HALF_LOAD_P99_MS = 1.0
SHORTEN_PER_S = SHORTEN_PACED_PER_S  # the shorten bar's rate, offered as such
SHORTEN_P99_MS = 20.0
# A paced scenario whose target answered at least this share of the rate
# it was offered kept up with it (wrk's pacing itself loses a little).
KEPT_UP_SHARE = 0.97


@dataclass(frozen=True, slots=True)
class Verdict:
    bar: str
    measured: float
    limit: float
    unit: str
    at_least: bool  # True: measured must reach limit; False: stay under it

    @property
    def met(self) -> bool:
        if self.at_least:
            return self.measured >= self.limit
        return self.measured <= self.limit

    def line(self) -> str:
        sign = ">=" if self.at_least else "<="
        state = "met" if self.met else "NOT met"
        return (
            f"{self.bar}: {self.measured:,.2f} {self.unit} "
            f"(bar {sign} {self.limit:,.2f}) {state}"
        )


def judge(measurements: Sequence[Measurement]) -> list[Verdict]:
    """Every bar this run measured, in the issue's order."""
    by_key = {(m.target, m.scenario): m for m in measurements}
    found: list[Verdict] = []
    node = by_key.get(("node", "redirect-hot"))
    sanic = by_key.get(("sanic", "redirect-hot"))
    if node is not None and sanic is not None and sanic.wrk.requests_per_s:
        speedup = node.wrk.requests_per_s / sanic.wrk.requests_per_s
        found.append(
            Verdict("redirect-hot node / sanic", speedup, REDIRECT_SPEEDUP, "x", True)
        )
    half = by_key.get(("node", "redirect-half"))
    if half is not None:
        p99_ms = half.wrk.p99_ms
        found.append(
            Verdict("redirect-half p99", p99_ms, HALF_LOAD_P99_MS, "ms", False)
        )
        if half.offered_per_s:
            # Short of the offered rate, that p99 was read at a lower load.
            found.append(
                Verdict(
                    "redirect-half achieved/offered",
                    half.wrk.requests_per_s / half.offered_per_s,
                    KEPT_UP_SHARE,
                    "",
                    True,
                )
            )
    shorten = by_key.get(("node", "shorten"))
    if shorten is not None:
        rate = shorten.wrk.requests_per_s
        found.append(Verdict("shorten req/s", rate, SHORTEN_PER_S, "/s", True))
    paced = by_key.get(("node", "shorten-paced"))
    if paced is not None:
        # p99 at the bar's rate; `shorten`'s own p99 (at the maximum rate,
        # with every connection queued) is in the table beside it. Short
        # of the offered rate, the node did not keep up: that p99 is the
        # one judged all the same, and the achieved rate is printed above.
        found.append(
            Verdict(
                f"shorten p99 at {SHORTEN_PER_S:,.0f}/s offered",
                paced.wrk.p99_ms,
                SHORTEN_P99_MS,
                "ms",
                False,
            )
        )
        found.append(
            Verdict(
                "shorten-paced achieved/offered",
                paced.wrk.requests_per_s / SHORTEN_PER_S,
                KEPT_UP_SHARE,
                "",
                True,
            )
        )
    drops = [m.click_drops for m in measurements if m.target == "node"]
    if any(count is not None for count in drops):
        # Every node scenario, redirect-zipf and mixed at the maximum rate
        # included: the click check counts only redirect-hot's clicks.
        found.append(
            Verdict(
                "clicks dropped by the ring, every node scenario",
                sum(count or 0 for count in drops),
                0,
                "",
                False,
            )
        )
    return found
