"""Liveness and readiness: the actors' heartbeats and the /readyz checks.

Heartbeats
----------
Each actor keeps one file, `<data_dir>/heartbeats/<role>`, holding a small
JSON `Beat`: its pid, the wall-clock time of the beat, and the progress it
reports (the analytics actor: its last flush and its oldest pending click).
The file is replaced whole (written aside, then renamed) at most once a
second, so a reader sees one beat or the next, never a mix.

Why a file and not shared memory: it needs no layout or version, it is
readable with `cat` when something is wrong, a process of another node
cannot mistake it for its own (it lives in the node's data directory, like
LMDB), and one rename a second costs the actor nothing. The time inside
the file is used rather than its mtime, which some filesystems keep
coarsely. A beat is written even when the previous one failed, and a
failure is logged once, when it starts, and once when it ends: a full disk
must not stop the persister, only make it look not ready.

The actors' loops poll their stop predicate between batches
(`workers.processes`), so `beating(stop, heartbeat)` wraps that predicate:
the actor classes know nothing about health, and an actor stuck inside a
batch (a commit that does not return) stops beating, which is exactly what
readiness should notice.

Readiness
---------
`readiness(settings, count_links, tier)` returns (ready, checks): LMDB
answers a count; each actor's heartbeat is younger than `STALE_AFTER_S`
(three missed beats); the Dragonfly tier, when there is one, answers a
ping. Each check is "ok" or a sentence that says what to look at,
starting "failed:" or "degraded:".

A Dragonfly that does not answer is "degraded", and the node stays ready:
redirects keep flowing from L1 and LMDB (only shortening answers 503),
and a shared tier that goes away would otherwise take every node out of
its load balancer at once, turning a partial outage into a full one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from hyperlinkr.config import Settings
from hyperlinkr.dragonfly import tier_errors

__all__ = [
    "ACTOR_ROLES",
    "BEAT_INTERVAL_S",
    "STALE_AFTER_S",
    "Beat",
    "Heartbeat",
    "Progress",
    "beating",
    "heartbeats_dir",
    "read_beat",
    "readiness",
]

logger = logging.getLogger(__name__)

ACTOR_ROLES = ("persister", "analytics")
BEAT_INTERVAL_S = 1.0
STALE_AFTER_S = 3.0
OK = "ok"
FAILED = "failed: "


@dataclass(frozen=True, slots=True)
class Progress:
    """What an actor reports with each beat; None where it has nothing to say."""

    last_flush_ms: int | None = None
    oldest_pending_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat, as written to and read from the role's file."""

    pid: int
    at_s: float
    progress: Progress = field(default_factory=Progress)

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> Beat | None:
        """The beat in `raw`, or None if it is not one."""
        try:
            fields = orjson.loads(raw)
            progress = Progress(**fields["progress"])
            beat = cls(fields["pid"], fields["at_s"], progress)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        return beat if _valid(beat) else None


def _valid(beat: Beat) -> bool:
    stamps = (beat.progress.last_flush_ms, beat.progress.oldest_pending_ms)
    return (
        isinstance(beat.pid, int)
        and isinstance(beat.at_s, int | float)
        and all(stamp is None or isinstance(stamp, int) for stamp in stamps)
    )


def heartbeats_dir(settings: Settings) -> Path:
    return settings.data_dir / "heartbeats"


def read_beat(directory: Path, role: str) -> Beat | None:
    """The last beat of `role`, or None if it never beat (or is unreadable)."""
    try:
        return Beat.decode((directory / role).read_bytes())
    except FileNotFoundError:
        return None


class Heartbeat:
    """Writes one role's beats; `beat()` is cheap enough to call every loop."""

    def __init__(
        self,
        path: Path,
        report: Callable[[], Progress] = Progress,
        interval_s: float = BEAT_INTERVAL_S,
    ) -> None:
        self.path = path
        # One writer per role at a time: its supervisor starts one actor.
        self._staging = path.with_name(f".{path.name}.staging")
        self._report = report
        self._interval_s = interval_s
        self._due_s = 0.0
        self._failing = False

    @classmethod
    def for_role(
        cls, settings: Settings, role: str, report: Callable[[], Progress] = Progress
    ) -> Heartbeat:
        directory = heartbeats_dir(settings)
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory / role, report)

    def beat(self) -> None:
        """Write a beat if the last one is `interval_s` old."""
        now_s = time.monotonic()
        if now_s < self._due_s:
            return
        self._due_s = now_s + self._interval_s
        self.write()

    def write(self) -> None:
        beat = Beat(os.getpid(), time.time(), self._report())
        try:
            self._staging.write_bytes(beat.encode())
            os.replace(self._staging, self.path)
        except OSError as exc:
            if not self._failing:
                logger.error(
                    "cannot write the heartbeat %s (%s); the node reports "
                    "not ready until it can",
                    self.path,
                    exc,
                )
            self._failing = True
            return
        if self._failing:
            logger.info("heartbeat %s is written again", self.path)
            self._failing = False


def beating(
    should_stop: Callable[[], bool], heartbeat: Heartbeat
) -> Callable[[], bool]:
    """`should_stop`, beating `heartbeat` each time a work loop polls it."""

    def poll() -> bool:
        heartbeat.beat()
        return should_stop()

    return poll


async def readiness(
    settings: Settings,
    count_links: Callable[[], int],
    tier: Any = None,
    now_s: float | None = None,
) -> tuple[bool, dict[str, str]]:
    """(ready, checks) for /readyz; `tier` is the Dragonfly client, if any."""
    now_s = time.time() if now_s is None else now_s
    checks = {"lmdb": _check_lmdb(count_links)}
    directory = heartbeats_dir(settings)
    for role in ACTOR_ROLES:
        checks[role] = _check_actor(directory, role, now_s)
    if tier is not None:
        checks["dragonfly"] = await _check_dragonfly(tier)
    ready = not any(result.startswith(FAILED) for result in checks.values())
    return ready, checks


def _check_lmdb(count_links: Callable[[], int]) -> str:
    try:
        count_links()
    except OSError as exc:
        return FAILED + str(exc)
    return OK


def _check_actor(directory: Path, role: str, now_s: float) -> str:
    beat = read_beat(directory, role)
    if beat is None:
        return (
            f"{FAILED}no heartbeat in {directory / role}; is the {role} role running?"
        )
    age_s = now_s - beat.at_s
    if age_s > STALE_AFTER_S:
        return (
            f"{FAILED}the {role} (pid {beat.pid}) last beat {age_s:.1f} s ago; "
            "see its log"
        )
    return OK


async def _check_dragonfly(tier: Any) -> str:
    try:
        await tier.ping()  # bounded by the client's 0.5 s socket timeout
    except tier_errors() as exc:
        return (
            f"degraded: Dragonfly did not answer a ping ({exc}); redirects are "
            "served from L1 and LMDB, shortening answers 503"
        )
    return OK
