"""The harness's verdicts, from measurements as a run records them."""

from __future__ import annotations

from benchmarks.load.bars import judge
from benchmarks.load.measure import Measurement
from benchmarks.load.wrk import WrkResult


def _run(target: str, scenario: str, drops: int | None) -> Measurement:
    wrk = WrkResult(1000, 1.0, 1000.0, 0.1, 0.2, 0.3, 0.1, 1.0, 0, 0, {})
    return Measurement(
        target, scenario, wrk, 1.0, 100.0, 1.0, 0.5, 0.0, 64, click_drops=drops
    )


def _drop_verdicts(measurements: list[Measurement]) -> list[tuple[float, bool]]:
    return [
        (verdict.measured, verdict.met)
        for verdict in judge(measurements)
        if verdict.bar.startswith("clicks dropped")
    ]


def test_drops_of_every_node_scenario_count_against_the_bar() -> None:
    runs = [
        _run("node", "redirect-hot", 0),
        _run("node", "redirect-zipf", 4683),
        _run("node", "mixed", 17),
        _run("sanic", "redirect-zipf", None),
    ]
    assert _drop_verdicts(runs) == [(4700, False)]


def test_no_drop_meets_the_bar_and_no_counter_leaves_it_out() -> None:
    assert _drop_verdicts([_run("node", "redirect-zipf", 0)]) == [(0, True)]
    assert _drop_verdicts([_run("nginx", "redirect-hot", None)]) == []
