"""What a role supervisor holds, and how it counts the children it restarts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from hyperlinkr import metrics
from hyperlinkr.config import Settings
from hyperlinkr.supervisor import RestartMetrics

REPO = Path(__file__).resolve().parents[2]
# What a supervisor must not import: each is megabytes in every role.
CHILD_ONLY_MODULES = ("prometheus_client", "sanic", "aioquic", "redis", "lmdb", "shm")
RESTARTS = "hyperlinkr_process_restarts_total"


def test_a_supervisor_imports_none_of_what_its_children_use() -> None:
    """`hyperlinkr ROLE` and `hyperlinkr run` start with these imports only."""
    probe = (
        "import sys\n"
        "import hyperlinkr.cli, hyperlinkr.server\n"
        f"print(*[m for m in {CHILD_ONLY_MODULES!r} if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == []


def restart_counts(settings: Settings) -> dict[str, float]:
    collector = MultiProcessCollector(None, path=str(metrics.directory_of(settings)))
    return {
        sample.labels["role"]: sample.value
        for family in collector.collect()
        for sample in family.samples
        if sample.name == RESTARTS
    }


@pytest.mark.usefixtures("unconfigured")
def test_restart_metrics_are_set_up_at_the_first_restart(settings: Settings) -> None:
    restarts = RestartMetrics(settings, ("web", "analytics"))
    assert not metrics.directory_of(settings).exists()

    restarts("web")
    assert restart_counts(settings) == {"web": 1, "analytics": 0}
    restarts("web")
    restarts("analytics")
    assert restart_counts(settings) == {"web": 2, "analytics": 1}


@pytest.mark.usefixtures("unconfigured")
def test_a_restart_that_cannot_be_counted_is_only_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings = Settings.from_env({"HYPERLINKR_DATA_DIR": str(blocker / "data")})

    RestartMetrics(settings, ("web",))("web")
    assert "restart of a web child not counted" in caplog.text
