"""Folding the metric files of exited processes into the archive."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from hyperlinkr.config import Settings
from hyperlinkr.metricsdir import compact
from tests.hyperlinkr.conftest import Sums

REQUESTS = ("hyperlinkr_requests_total", frozenset({("route", "r"), ("status", "200")}))
SECONDS = ("hyperlinkr_request_duration_seconds_sum", frozenset({("route", "r")}))
TIMEOUT_S = 30

# A node process: configures metrics for the data dir, records, exits.
_RECORDER = textwrap.dedent(
    """
    import os, sys
    from hyperlinkr import metrics
    from hyperlinkr.config import Settings

    settings = Settings.from_env({"HYPERLINKR_DATA_DIR": sys.argv[1]})
    metrics.configure(settings)
    for _ in range(int(sys.argv[2])):
        metrics.record_request("app.r", 200, 0.5)
    metrics.flush()  # as a web worker's timer does; exiting flushes too
    print(os.getpid(), flush=True)
    if sys.argv[3] == "linger":
        sys.stdin.read()
    """
)


def record_in_child(
    settings: Settings, requests: int, linger: bool = False
) -> subprocess.Popen[str]:
    args = [str(settings.data_dir), str(requests), "linger" if linger else "exit"]
    return subprocess.Popen(
        [sys.executable, "-c", _RECORDER, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def run_to_exit(settings: Settings, requests: int) -> int:
    child = record_in_child(settings, requests)
    out, _ = child.communicate(timeout=TIMEOUT_S)
    assert child.returncode == 0
    return int(out)


def files_of(directory: Path, pid: int) -> list[Path]:
    return sorted(directory.glob(f"*_{pid}.db"))


def test_exited_processes_are_folded_in_with_their_sums_kept(
    configured: Path, settings: Settings, sums: Callable[[], Sums]
) -> None:
    first, second, last = (run_to_exit(settings, 5) for _ in range(3))
    # Each one's configure() folded in the one before it.
    assert not files_of(configured, first) and not files_of(configured, second)
    assert files_of(configured, last)
    before = sums()
    assert before[REQUESTS] == 15
    assert before[SECONDS] == pytest.approx(7.5)

    assert compact(configured) == 2  # the last one's counter and histogram
    assert sums() == before
    assert not files_of(configured, last)
    assert (configured / "counter_archive.db").exists()
    assert (configured / "histogram_archive.db").exists()
    assert compact(configured) == 0


def test_files_of_running_processes_are_left_alone(
    configured: Path, settings: Settings, sums: Callable[[], Sums]
) -> None:
    child = record_in_child(settings, 3, linger=True)
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        assert compact(configured) == 0
        assert files_of(configured, pid)
        assert sums()[REQUESTS] == 3
    finally:
        child.communicate(timeout=TIMEOUT_S)


def test_files_a_dead_process_never_wrote_are_removed(
    configured: Path, settings: Settings
) -> None:
    pid = run_to_exit(settings, 0)
    for path in files_of(configured, pid):
        path.unlink()
    (configured / f"counter_{pid}.db").touch()  # killed before its first write
    (configured / f"gauge_livesum_{pid}.db").write_bytes(b"\0" * 64)

    assert compact(configured) == 2
    assert not files_of(configured, pid)
    assert not (configured / "counter_archive.db").exists()


def test_own_files_are_never_folded(configured: Path) -> None:
    assert compact(configured) == 0
    assert files_of(configured, os.getpid())
