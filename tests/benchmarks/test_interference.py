"""The interference tool, end to end: a real node, its real analytics actor
held and resumed, real burner processes, the pacer on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.load import interference


def _burners() -> list[int]:
    found = []
    for pid in (int(entry) for entry in os.listdir("/proc") if entry.isdigit()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"benchmarks.load.interference\0--burn" in command:
            found.append(pid)
    return found


def _segments() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if name.startswith("load-")}


def test_every_condition_is_measured_and_nothing_is_left_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    segments_before = _segments()
    out = tmp_path / "samples.json"
    argv = ["--rate", "2000", "--rounds", "1", "--seconds", "0.5", "--json", str(out)]

    assert interference.main(argv) == 0

    table = capsys.readouterr().out
    samples = json.loads(out.read_text())
    labels = [sample["condition"] for sample in samples]
    for condition in interference.CONDITIONS:
        assert labels.count(condition.label) == 1
        assert condition.label in table
    for sample in samples:
        assert sample["p99_ms"] > 0
        if sample["condition"] != "actor":
            # Held with SIGSTOP while measured: not one tick of CPU.
            assert sample["actor_cpu_share"] == 0
    assert _burners() == []
    assert _segments() == segments_before


@pytest.mark.parametrize("idle_class", [False, True])
def test_a_burner_ends_by_itself(idle_class: bool) -> None:
    """Spinning 1 ms in 2 for 0.2 s exits 0; nobody has to kill it."""
    argv = [sys.executable, "-m", "benchmarks.load.interference"]
    argv += ["--burn", "1", "2", "0.2", *(["--idle-class"] if idle_class else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
