"""Heartbeats and the readiness checks behind /readyz."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hyperlinkr.config import Settings
from hyperlinkr.dragonfly import async_client
from hyperlinkr.errors import StoreError
from hyperlinkr.health import (
    STALE_AFTER_S,
    Beat,
    Heartbeat,
    Progress,
    beating,
    heartbeats_dir,
    read_beat,
    readiness,
)
from tests.dragonfly.servers import Server
from tests.e2e.nodes import free_port


def links() -> int:
    return 3


def ready(
    settings: Settings,
    count_links: Callable[[], int] = links,
    tier_url: str | None = None,
    now_s: float | None = None,
) -> tuple[bool, dict[str, str]]:
    """readiness() as /readyz runs it, with a real client when `tier_url`."""

    async def check() -> tuple[bool, dict[str, str]]:
        client = async_client(tier_url, False) if tier_url else None
        try:
            return await readiness(settings, count_links, client, now_s)
        finally:
            if client is not None:
                await client.aclose()

    return asyncio.run(check())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(tmp_path / "valkey").start()
    yield started
    started.stop()


def beat_both(settings: Settings, at_s: float) -> None:
    directory = heartbeats_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    for role in ("persister", "analytics"):
        (directory / role).write_bytes(Beat(os.getpid(), at_s).encode())


def test_a_beat_is_read_back_with_its_progress(settings: Settings) -> None:
    progress = Progress(last_flush_ms=1_000, oldest_pending_ms=900)
    heartbeat = Heartbeat.for_role(settings, "analytics", lambda: progress)
    heartbeat.beat()

    beat = read_beat(heartbeats_dir(settings), "analytics")
    assert beat is not None
    assert beat.pid == os.getpid()
    assert beat.progress == progress
    assert abs(beat.at_s - time.time()) < 5


def test_beats_are_written_at_most_once_an_interval(tmp_path: Path) -> None:
    reports = []

    def report() -> Progress:
        reports.append(1)
        return Progress()

    heartbeat = Heartbeat(tmp_path / "persister", report, interval_s=60)
    for _ in range(1000):
        heartbeat.beat()
    assert len(reports) == 1


def test_beating_beats_whenever_the_loop_polls(tmp_path: Path) -> None:
    heartbeat = Heartbeat(tmp_path / "persister", interval_s=0)
    answers = iter([False, True])
    poll = beating(lambda: next(answers), heartbeat)

    assert poll() is False
    first = read_beat(tmp_path, "persister")
    assert poll() is True
    second = read_beat(tmp_path, "persister")
    assert first is not None and second is not None
    assert second.at_s >= first.at_s


def test_a_heartbeat_that_cannot_be_written_logs_once_and_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    heartbeat = Heartbeat(tmp_path / "gone" / "persister", interval_s=0)
    with caplog.at_level(logging.INFO, logger="hyperlinkr.health"):
        heartbeat.beat()
        heartbeat.beat()
        (tmp_path / "gone").mkdir()
        heartbeat.beat()

    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "cannot write the heartbeat" in messages[0]
    assert "written again" in messages[1]
    assert read_beat(tmp_path / "gone", "persister") is not None


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[]", b'{"pid": "x", "at_s": 1, "progress": {}}']
)
def test_an_unreadable_beat_reads_as_none(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "analytics").write_bytes(raw)
    assert read_beat(tmp_path, "analytics") is None


def test_ready_when_lmdb_answers_and_both_actors_beat(settings: Settings) -> None:
    beat_both(settings, time.time())
    is_ready, checks = ready(settings)
    assert is_ready
    assert checks == {"lmdb": "ok", "persister": "ok", "analytics": "ok"}


def test_an_actor_that_never_beat_is_named(settings: Settings) -> None:
    is_ready, checks = ready(settings)
    assert not is_ready
    assert checks["persister"].startswith("failed: no heartbeat in ")
    assert "is the analytics role running?" in checks["analytics"]


def test_a_stale_beat_fails_its_check(settings: Settings) -> None:
    now_s = time.time()
    beat_both(settings, now_s)
    (heartbeats_dir(settings) / "analytics").write_bytes(
        Beat(4242, now_s - STALE_AFTER_S - 2).encode()
    )

    is_ready, checks = ready(settings, now_s=now_s)
    assert not is_ready
    assert checks["persister"] == "ok"
    assert checks["analytics"].startswith("failed: the analytics (pid 4242)")
    assert "5.0 s ago" in checks["analytics"]


def test_lmdb_that_cannot_count_fails_its_check(settings: Settings) -> None:
    def broken() -> int:
        raise StoreError("counting links in LMDB failed: disk I/O error")

    beat_both(settings, time.time())
    is_ready, checks = ready(settings, broken)
    assert not is_ready
    assert checks["lmdb"] == "failed: counting links in LMDB failed: disk I/O error"


def test_a_dragonfly_that_answers_is_ok(settings: Settings, server: Server) -> None:
    beat_both(settings, time.time())
    is_ready, checks = ready(settings, tier_url=server.url)
    assert is_ready
    assert checks["dragonfly"] == "ok"


def test_a_dragonfly_that_does_not_answer_degrades_but_stays_ready(
    settings: Settings,
) -> None:
    beat_both(settings, time.time())
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    is_ready, checks = ready(settings, tier_url=nobody)
    assert is_ready
    assert checks["dragonfly"].startswith("degraded: Dragonfly did not answer")
    assert "dragonfly" not in ready(settings)[1]
