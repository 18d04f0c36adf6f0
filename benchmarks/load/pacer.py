"""The open-loop generator (pacer.c): building it, running it, its figures.

wrk has no rate option; the harness paces it from Lua, which leaves two
faults for a latency bar. Its timers fire on whole milliseconds, so paced
requests leave in bunches on each tick, and the target answers a bunch in
turn; and it times each request from its send, so a stall of the target
delays the requests behind it instead of counting against them. The
pacer sends each request at its own due time and times it from then
(see pacer.c). It is built from source with the C compiler the project's
extensions need, into the run's directory, each run.

Its figures come back as a `WrkResult`, the harness's one result type,
plus `Pacing`: what only an open-loop run can tell, namely how late the
generator itself sent (on a machine it shares with the target, waiting
for a core) and the latency from the actual send, which leaves that out.

The same program measures the machine: `measure_stalls` spins one copy
on every core and adds up the gaps in their clock readings. On an idle
machine those are the times the hypervisor (or something else) took the
core away, which no per-process CPU figure shows; a millisecond latency
bar cannot be read below them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.load.wrk import WrkResult

__all__ = [
    "OpenLoop",
    "PacerFailed",
    "Pacing",
    "Stalls",
    "build_pacer",
    "measure_stalls",
    "run_pacer",
]

RESULT_MARKER = "HLR-PACER "
STALLS_MARKER = "HLR-STALLS "
STALL_PROBE_S = 2.0
SOURCE = Path(__file__).with_name("pacer.c")
WARMUP_S = 1.0
_GRACE_S = 30.0


class PacerFailed(RuntimeError):
    """The pacer did not build, or did not run to its result line."""


@dataclass(frozen=True, slots=True)
class OpenLoop:
    """A scenario the pacer runs: GET prefix + code, for each code in turn;
    with `post`, each line of `codes` is a JSON body POSTed to prefix."""

    binary: Path
    codes: Path
    prefix: str = "/"
    post: bool = False

    @property
    def kind(self) -> str:
        """What its requests are, as the wrk scripts count them."""
        return "shorten" if self.post else "redirect"


@dataclass(frozen=True, slots=True)
class Pacing:
    due: int  # requests due in the measured time
    unanswered: int  # in flight when the pacer stopped waiting
    p999_ms: float
    service_p50_ms: float  # from the actual send, not the due time
    service_p99_ms: float
    late: int  # sent more than 0.1 ms after they were due
    max_lag_ms: float  # the latest send

    @property
    def late_share(self) -> float:
        return self.late / self.due if self.due else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "late_share": self.late_share}


@dataclass(frozen=True, slots=True)
class Stalls:
    """What a busy loop on each core lost to gaps of over 0.1 ms."""

    seconds: float
    cores: int
    gaps: int
    stalled_ms: float  # summed over the cores
    longest_ms: float

    @property
    def share(self) -> float:
        """Of all the cores' time."""
        return self.stalled_ms / (1000 * self.seconds * self.cores)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share": self.share}


def _compiler() -> list[str]:
    configured = sysconfig.get_config_var("CC")
    argv = shlex.split(configured) if isinstance(configured, str) else []
    if argv and shutil.which(argv[0]):
        return argv
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return [name]
    raise PacerFailed("no C compiler found (cc, gcc or clang) to build the pacer")


def build_pacer(directory: Path) -> Path:
    """Compile pacer.c into directory; the path of the program."""
    binary = directory / "pacer"
    argv = [*_compiler(), "-O2", "-std=c11", "-o", str(binary), str(SOURCE)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PacerFailed(
            f"building the pacer failed ({shlex.join(argv)}):\n{done.stderr[-2000:]}"
        )
    return binary


def run_pacer(
    loop: OpenLoop,
    port: int,
    rate_per_s: float,
    connections: int,
    duration_s: float,
    warmup_s: float = WARMUP_S,
    dump: Path | None = None,
) -> tuple[WrkResult, Pacing]:
    """Offer rate_per_s to 127.0.0.1:port for warmup_s + duration_s."""
    argv = [
        str(loop.binary),
        *(["--post"] if loop.post else []),
        str(port),
        f"{rate_per_s:.6g}",
        str(connections),
        f"{duration_s:g}",
        f"{warmup_s:g}",
        loop.prefix,
        str(loop.codes),
    ]
    if dump is not None:
        argv.append(str(dump))
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=warmup_s + duration_s + _GRACE_S,
            start_new_session=True,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PacerFailed(f"the pacer did not finish: {exc}") from exc
    if done.returncode != 0:
        raise PacerFailed(
            f"the pacer exited with {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return parse_output(done.stdout, loop.kind)


def parse_output(stdout: str, kind: str = "redirect") -> tuple[WrkResult, Pacing]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if not lines:
        marker = RESULT_MARKER.strip()
        raise PacerFailed(f"the pacer printed no {marker} line:\n{stdout}")
    raw = json.loads(lines[-1][len(RESULT_MARKER) :])
    result = WrkResult(
        requests=raw["requests"],
        duration_s=raw["duration_s"],
        requests_per_s=raw["requests"] / raw["duration_s"],
        p50_ms=raw["p50_ms"],
        p95_ms=raw["p95_ms"],
        p99_ms=raw["p99_ms"],
        mean_ms=raw["mean_ms"],
        max_ms=raw["max_ms"],
        socket_errors=raw["socket_errors"],
        status_errors=raw["status_errors"],
        sent={kind: raw["due"]},
    )
    pacing = Pacing(
        due=raw["due"],
        unanswered=raw["unanswered"],
        p999_ms=raw["p999_ms"],
        service_p50_ms=raw["service_p50_ms"],
        service_p99_ms=raw["service_p99_ms"],
        late=raw["late"],
        max_lag_ms=raw["max_lag_ms"],
    )
    return result, pacing


def measure_stalls(binary: Path, seconds: float = STALL_PROBE_S) -> Stalls:
    """Spin one probe a core for `seconds`, all at once; their gaps summed."""
    cores = os.cpu_count() or 1
    argv = [str(binary), "--stalls", f"{seconds:g}"]
    probes: list[subprocess.Popen[str]] = []
    try:
        for _ in range(cores):
            probes.append(
                subprocess.Popen(
                    argv, stdout=subprocess.PIPE, text=True, start_new_session=True
                )
            )
        outputs = [p.communicate(timeout=seconds + _GRACE_S)[0] for p in probes]
    except subprocess.TimeoutExpired as exc:
        raise PacerFailed(f"a stall probe did not finish: {exc}") from exc
    finally:
        for probe in probes:
            if probe.poll() is None:
                probe.kill()
                probe.wait()
    readings = []
    for probe, output in zip(probes, outputs, strict=True):
        lines = [ln for ln in output.splitlines() if ln.startswith(STALLS_MARKER)]
        if probe.returncode != 0 or not lines:
            raise PacerFailed(f"a stall probe exited {probe.returncode}: {output}")
        readings.append(json.loads(lines[-1][len(STALLS_MARKER) :]))
    return Stalls(
        seconds=seconds,
        cores=cores,
        gaps=sum(r["gaps"] for r in readings),
        stalled_ms=sum(r["stalled_ms"] for r in readings),
        longest_ms=max(r["longest_ms"] for r in readings),
    )
