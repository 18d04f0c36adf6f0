"""`python -m benchmarks.load.interference`: what CPU used beside the web
workers does to their redirect tail.

    python -m benchmarks.load.interference [--rate N] [--rounds N]
                                           [--seconds S] [--json out.json]

The latency bar (p99 at or under 1 ms at half the maximum redirect rate)
is missed on 2-core machines, and the analytics actor is what makes the
difference (`docs/architecture.md`, Analytics). This tool asks whether
that is the actor's scheduling or the CPU it uses. It starts a node as
the harness does (fresh data directory, free port, 1,000 links), then
sends redirects open loop with the pacer at `--rate`, in rounds, each
round measuring these conditions in turn:

- `actor`: the node as it runs, analytics actor included;
- `stopped`: the analytics actor held with SIGSTOP while the load runs
  (its clicks wait in the ring, and it counts them after SIGCONT);
- `burn D% in B ms`: the actor held, and beside the node a process of
  this tool's that spins B ms out of every B/D ms at nice 19, the lowest
  priority an unprivileged process can take (`idle class`: in
  SCHED_IDLE, below every nice level).

A scheduler that isolated priorities would leave the burners' rows at
the `stopped` row. On the machines the bar was measured on they are not:
CPU spent beside the workers lengthens their tail whatever its priority,
and long bursts of it more than short ones.

Everything stays on 127.0.0.1, is bounded in time, and is stopped by
PID: the burners end by themselves after `--seconds` plus the warm-up,
and are killed if they have not; the actor is resumed before the node
is stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.load.client import seed_links
from benchmarks.load.harness import unwind_on_signals
from benchmarks.load.pacer import WARMUP_S, OpenLoop, build_pacer, run_pacer
from benchmarks.load.processes import cpu_seconds, descendants
from benchmarks.load.targets import LoadNode

__all__ = ["Burner", "Condition", "Sample", "main", "measure_conditions"]

logger = logging.getLogger(__name__)

LINKS = 1000
CONNECTIONS = 64
L1_ENTRIES = 4096
LMDB_MB = 1024
GAP_S = 1.0  # between measurements: the actor catches up on held clicks
_BURNER_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class Burner:
    """A process that spins `busy_ms` out of every `period_ms`."""

    busy_ms: float
    period_ms: float
    idle_class: bool = False

    @property
    def label(self) -> str:
        share = 100 * self.busy_ms / self.period_ms
        where = "idle class" if self.idle_class else "nice 19"
        return f"burn {share:.0f}% in {self.busy_ms:g} ms ({where})"


@dataclass(frozen=True, slots=True)
class Condition:
    """What runs beside the web workers while one measurement is taken."""

    stop_actor: bool
    burner: Burner | None = None

    @property
    def label(self) -> str:
        if self.burner is not None:
            return self.burner.label
        return "stopped" if self.stop_actor else "actor"


CONDITIONS = (
    Condition(stop_actor=False),
    Condition(stop_actor=True),
    Condition(True, Burner(0.2, 5.0)),
    Condition(True, Burner(0.5, 5.0)),
    Condition(True, Burner(5.0, 50.0)),
    Condition(True, Burner(5.0, 50.0, idle_class=True)),
)


@dataclass(frozen=True, slots=True)
class Sample:
    condition: str
    p50_ms: float
    p99_ms: float
    p999_ms: float
    late_share: float  # requests the generator sent over 0.1 ms late
    actor_cpu_share: float  # of one core, while the load ran


def burn(busy_ms: float, period_ms: float, duration_s: float, idle_class: bool) -> None:
    """Spin `busy_ms` of every `period_ms` for `duration_s`, at the lowest priority."""
    os.nice(19)
    if idle_class:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    clock = time.perf_counter
    end = clock() + duration_s
    rest_s = (period_ms - busy_ms) / 1000
    while clock() < end:
        busy_until = clock() + busy_ms / 1000
        while clock() < busy_until:
            pass
        if rest_s > 0:
            time.sleep(rest_s)


@contextmanager
def _burning(burner: Burner | None, duration_s: float) -> Iterator[None]:
    if burner is None:
        yield
        return
    argv = [sys.executable, "-m", "benchmarks.load.interference", "--burn"]
    argv += [f"{burner.busy_ms}", f"{burner.period_ms}", f"{duration_s}"]
    if burner.idle_class:
        argv.append("--idle-class")
    process = subprocess.Popen(argv, start_new_session=True)
    try:
        yield
    finally:
        try:
            process.wait(timeout=_BURNER_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def _actor_held(pid: int, hold: bool) -> Iterator[None]:
    if hold:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        if hold:
            os.kill(pid, signal.SIGCONT)


def _actor_pid(node: LoadNode) -> int:
    """The analytics actor: the child of the node's analytics supervisor."""
    for service in node.services:
        if service.name == "node analytics":
            children = descendants([service.pid])[1:]
            if children:
                return children[0]
    raise RuntimeError("the node has no analytics actor running")


def measure_conditions(
    node: LoadNode, loop: OpenLoop, rate_per_s: float, rounds: int, measured_s: float
) -> list[Sample]:
    """Every condition `rounds` times, in turn; one sample each time."""
    samples = []
    for _ in range(rounds):
        for condition in CONDITIONS:
            samples.append(_measure(node, loop, rate_per_s, measured_s, condition))
            time.sleep(GAP_S)
    return samples


def _measure(
    node: LoadNode,
    loop: OpenLoop,
    rate_per_s: float,
    measured_s: float,
    condition: Condition,
) -> Sample:
    actor = _actor_pid(node)
    label = condition.label
    with _actor_held(actor, condition.stop_actor):
        with _burning(condition.burner, measured_s + WARMUP_S):
            cpu_before_s = cpu_seconds([actor])
            result, pacing = run_pacer(
                loop, node.port, rate_per_s, CONNECTIONS, measured_s
            )
            actor_s = cpu_seconds([actor]) - cpu_before_s
    sample = Sample(
        label,
        result.p50_ms,
        result.p99_ms,
        pacing.p999_ms,
        pacing.late_share,
        actor_s / (measured_s + WARMUP_S),
    )
    logger.info("%s: p99 %.2f ms", label, sample.p99_ms)
    return sample


def render(samples: Sequence[Sample], rate_per_s: float) -> str:
    """One line per condition: the median of its samples, and their range."""
    lines = [
        f"redirects at {rate_per_s:,.0f}/s open loop, {CONNECTIONS} connections; "
        "medians over rounds (p99 range)",
        f"{'condition':34} {'p50 ms':>7} {'p99 ms':>7} {'p99 range':>13} "
        f"{'p99.9 ms':>8} {'late':>6} {'actor CPU':>9}",
    ]
    for condition in CONDITIONS:
        mine = [s for s in samples if s.condition == condition.label]
        if not mine:
            continue
        p99s = [s.p99_ms for s in mine]
        lines.append(
            f"{condition.label:34} "
            f"{statistics.median(s.p50_ms for s in mine):7.2f} "
            f"{statistics.median(p99s):7.2f} "
            f"{min(p99s):6.2f}-{max(p99s):<6.2f} "
            f"{statistics.median(s.p999_ms for s in mine):8.2f} "
            f"{statistics.median(s.late_share for s in mine):6.1%} "
            f"{statistics.median(s.actor_cpu_share for s in mine):9.1%}"
        )
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load.interference",
        description="Redirect latency beside the analytics actor and burners.",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=30_000.0,
        help="redirects per second (half of redirect-hot's)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--seconds",
        type=float,
        default=6.0,
        help="measured seconds per condition and round",
    )
    parser.add_argument("--json", type=Path, help="also write the samples here")
    parser.add_argument("--burn", nargs=3, type=float, help=argparse.SUPPRESS)
    parser.add_argument("--idle-class", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.rate <= 0 or options.rounds < 1 or options.seconds <= 0:
        parser.error("--rate, --rounds and --seconds must be positive")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse(argv)
    if options.burn is not None:
        busy_ms, period_ms, duration_s = options.burn
        burn(busy_ms, period_ms, duration_s, options.idle_class)
        return 0
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        binary = build_pacer(workdir)
        node = LoadNode(workdir, L1_ENTRIES, LMDB_MB)
        stack.callback(node.close)
        node.start()
        urls = [f"https://example.com/interference/{i}" for i in range(LINKS)]
        codes = workdir / "codes.txt"
        codes.write_text("\n".join(seed_links(node.port, urls)) + "\n")
        loop = OpenLoop(binary, codes)
        samples = measure_conditions(
            node, loop, options.rate, options.rounds, options.seconds
        )
    print(render(samples, options.rate))
    if options.json is not None:
        options.json.write_text(json.dumps([asdict(s) for s in samples], indent=1))
    return 0


if __name__ == "__main__":
    # Unwinding through main's context managers resumes the actor, ends
    # the burners and stops the node.
    unwind_on_signals()
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        logger.warning("interrupted; everything the run started was stopped")
        sys.exit(130)
