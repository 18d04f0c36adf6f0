"""Print the shm micro-benchmark figures and the bars, in one command.

    python -m benchmarks.shm_report [--strict]

Times the operations of benchmarks/test_shm.py on the same data (see
workload.py and delivery.py) with plain timeit loops: every figure is the
median, over several runs, of one run's time divided by the calls (or, for
the batched pop and the delivery rounds, the records) it made. timeit
switches the garbage collector off while it times; pytest-benchmark leaves
it on and calls through a thin wrapper, so its figures sit a few tens of
ns above these.

The bars are those of benchmarks/README.md. With --strict the exit status
is 1 when one is missed, for a script that wants to fail on it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks import delivery, workload
from shm import Ring, Table

_GET_NUMBER = 20_000
_GET_REPEAT = 30
_BAR_MAX_NS = 1000.0
_BAR_MIN_RATIO = 10.0


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured operation: its median cost per call or record."""

    name: str
    median_ns: float


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of the README, with what was measured against it."""

    name: str
    measured: str
    met: bool


def _median_ns(
    call: str,
    names: dict[str, object],
    number: int,
    repeat: int,
    setup: Callable[[], None] | None = None,
    per_call: int = 1,
) -> float:
    """Median over `repeat` runs of `number` calls, per call (or per record)."""
    timer = timeit.Timer(call, globals=names)
    runs = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        runs.append(timer.timeit(number))
    return statistics.median(runs) / (number * per_call) * 1e9


def _timed(call: str, names: dict[str, object], number: int, repeat: int) -> float:
    """Like _median_ns, after one untimed warmup run of the same size."""
    timeit.Timer(call, globals=names).timeit(number)
    return _median_ns(call, names, number, repeat)


def measure_table(table: Table) -> list[Figure]:
    """Get hit, get miss and put on the table, with their dict baselines."""
    entries = workload.table_entries()
    hit, miss, value = workload.HIT_KEY, workload.MISS_KEY, workload.VALUE
    n, r = _GET_NUMBER, _GET_REPEAT
    return [
        Figure("table get hit", _timed("f(k)", {"f": table.get, "k": hit}, n, r)),
        Figure("table get miss", _timed("f(k)", {"f": table.get, "k": miss}, n, r)),
        Figure(
            "baseline dict.get hit",
            _timed("f(k)", {"f": entries.get, "k": hit}, n, r),
        ),
        Figure(
            "table put (overwrite)",
            _timed("f(k, v)", {"f": table.put, "k": hit, "v": value}, n, r),
        ),
        Figure(
            "baseline dict set",
            _timed("d[k] = v", {"d": entries, "k": hit, "v": value}, n, r),
        ),
    ]


def _push_figure(name: str, push: Callable[[bytes], object]) -> Figure:
    """Pushes timed as test_shm.py does: fixed runs, warmup runs first."""
    names: dict[str, object] = {"f": push, "r": workload.CLICK_RECORD}
    number = workload.PUSH_ITERATIONS
    _median_ns("f(r)", names, number, workload.PUSH_WARMUP_ROUNDS)
    median = _median_ns("f(r)", names, number, workload.PUSH_ROUNDS)
    return Figure(name, median)


def measure_push(ring: Ring) -> list[Figure]:
    """Ring.push and its Queue.put baseline; the ring must fit every push."""
    figures = [_push_figure("ring push", ring.push)]
    if ring.statistics().drops:
        raise RuntimeError("a timed push met a full ring; the figure is void")
    with workload.queue_without_consumer() as queue:
        figures.append(_push_figure("baseline Queue.put, enqueue only", queue.put))
    return figures


def _delivery_figure(name: str, deliver: delivery.Deliver) -> Figure:
    """Delivery rounds timed as test_shm.py does, per record delivered."""
    records = delivery.DELIVERY_RECORDS

    def checked() -> None:
        if deliver(records) != records:
            raise RuntimeError(f"{name}: a round lost records; the figure is void")

    names: dict[str, object] = {"deliver": checked}
    _median_ns("deliver()", names, 1, delivery.DELIVERY_WARMUP_ROUNDS)
    median = _median_ns(
        "deliver()", names, 1, delivery.DELIVERY_ROUNDS, per_call=records
    )
    return Figure(name, median)


def measure_delivery() -> list[Figure]:
    """Records handed to a consumer process, through a ring and a Queue."""
    with delivery.ring_delivery() as deliver:
        ring = _delivery_figure("ring delivery per record", deliver)
    with delivery.queue_delivery() as deliver:
        queue = _delivery_figure("baseline Queue delivery per record", deliver)
    return [ring, queue]


def measure_pop(ring: Ring) -> Figure:
    """peek + advance in batches, per record, from a refilled ring."""
    records = workload.POP_ROUND_RECORDS
    names: dict[str, object] = {
        "drain": workload.drain,
        "ring": ring,
        "b": workload.POP_BATCH_RECORDS,
    }
    median = _median_ns(
        "drain(ring, b)",
        names,
        number=1,
        repeat=workload.POP_ROUNDS,
        setup=lambda: workload.fill(ring, records),
        per_call=records,
    )
    return Figure(f"ring pop per record (batches of {names['b']})", median)


def measure() -> list[Figure]:
    """Every figure, each from its own fresh segment."""
    with workload.filled_table() as table:
        figures = measure_table(table)
    capacity = workload.push_ring_capacity(workload.push_calls())
    with workload.open_ring(capacity) as ring:
        figures += measure_push(ring)
    with workload.open_ring(2 * workload.POP_ROUND_RECORDS) as ring:
        figures.append(measure_pop(ring))
    return figures + measure_delivery()


def bars(figures: Sequence[Figure]) -> list[Bar]:
    """The README's bars, checked against the figures of this run."""
    by_name = {figure.name: figure.median_ns for figure in figures}
    get_ns, push_ns = by_name["table get hit"], by_name["ring push"]
    delivery_ratio = (
        by_name["baseline Queue delivery per record"]
        / by_name["ring delivery per record"]
    )
    push_ratio = by_name["baseline Queue.put, enqueue only"] / push_ns
    return [
        Bar("table get hit <= 1 us", f"{get_ns:.0f} ns", get_ns <= _BAR_MAX_NS),
        Bar("ring push <= 1 us", f"{push_ns:.0f} ns", push_ns <= _BAR_MAX_NS),
        Bar(
            "delivery: ring >= 10x cheaper than Queue",
            f"{delivery_ratio:.1f}x",
            delivery_ratio >= _BAR_MIN_RATIO,
        ),
        Bar(
            "ring push >= 10x faster than Queue.put",
            f"{push_ratio:.1f}x",
            push_ratio >= _BAR_MIN_RATIO,
        ),
    ]


def render(figures: Sequence[Figure], checked: Sequence[Bar]) -> str:
    """The report as plain text, one figure or bar a line."""
    lines = ["shm micro benchmarks, median per operation"]
    lines += [f"  {f.name:<42} {f.median_ns:>9.1f} ns" for f in figures]
    lines.append("bars (benchmarks/README.md)")
    for bar in checked:
        verdict = "met" if bar.met else "MISSED"
        lines.append(f"  {bar.name:<42} {bar.measured:>9}    {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.shm_report", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a bar is missed"
    )
    args = parser.parse_args(argv)
    figures = measure()
    checked = bars(figures)
    print(render(figures, checked))
    missed = not all(bar.met for bar in checked)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
