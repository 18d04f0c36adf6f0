"""Running wrk and reading what it measured.

The figures come from the `HLR-RESULT` line the scripts' `done()` prints
(see `benchmarks.load.scripts`), which has what the `--latency` table
lacks (p95) in exact units; requests/s is also read from wrk's own
`Requests/sec:` line, and both are kept. wrk counts a response as an
error only when its status is above 399 (so 201 and 302 are fine), and
counts socket errors (connect, read, write, timeout) apart from those.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.load.scripts import RESULT_MARKER

__all__ = ["WrkFailed", "WrkResult", "install_hint", "run_wrk", "wrk_path"]

_TIMEOUT = "2s"
_GRACE_S = 30.0
_REQUESTS_PER_S = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)


class WrkFailed(RuntimeError):
    """wrk exited with an error or printed no result line."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    socket_errors: int
    status_errors: int
    sent: dict[str, int]

    @property
    def errors(self) -> int:
        return self.socket_errors + self.status_errors

    @property
    def answered(self) -> int:
        """Responses with a status below 400."""
        return self.requests - self.status_errors

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors, "answered": self.answered}


def wrk_path() -> str | None:
    return shutil.which("wrk")


def install_hint() -> str:
    return (
        "wrk is not installed; install it with `apt-get install wrk` "
        "(Debian/Ubuntu) and run again"
    )


def run_wrk(
    script: Path,
    port: int,
    duration_s: int,
    connections: int,
    threads: int,
) -> WrkResult:
    """Run wrk against 127.0.0.1:port for duration_s (whole seconds)."""
    wrk = wrk_path()
    if wrk is None:
        raise WrkFailed(install_hint())
    threads = min(threads, connections)
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        f"--timeout={_TIMEOUT}",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/",
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration_s + _GRACE_S,
        start_new_session=True,
        check=False,
    )
    if done.returncode != 0:
        raise WrkFailed(
            f"wrk exited with {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return parse_output(done.stdout)


def parse_output(stdout: str) -> WrkResult:
    """The WrkResult in wrk's output; WrkFailed if it holds none."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if not lines:
        raise WrkFailed(f"wrk printed no {RESULT_MARKER.strip()} line:\n{stdout}")
    raw = json.loads(lines[-1][len(RESULT_MARKER) :])
    duration_s = raw["duration_us"] / 1e6
    match = _REQUESTS_PER_S.search(stdout)
    rate = float(match.group(1)) if match else raw["requests"] / duration_s
    return WrkResult(
        requests=raw["requests"],
        duration_s=duration_s,
        requests_per_s=rate,
        p50_ms=raw["p50_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        socket_errors=sum(
            raw[key]
            for key in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        status_errors=raw["status_errors"],
        sent=dict(raw["sent"]),
    )
