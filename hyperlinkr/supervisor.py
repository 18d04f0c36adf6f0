"""Keeping a role's processes alive: one supervisor per role, honcho above.

Honcho ends the whole node when any process it started exits, and restarts
nothing. So the process honcho starts for a role is this supervisor, and
the work happens in children it starts and restarts: a child that dies,
however it dies, is started again after `RESTART_DELAY_S` (doubling while
it keeps dying young, up to `MAX_RESTART_DELAY_S`). Its state lives in
shared memory and LMDB, so the new child picks up where the old one was.

Signals only set a flag; the loop acts on it. On SIGINT or SIGTERM the
supervisor passes SIGTERM to every child, waits for them to finish their
drain (persister, analytics) or in-flight requests (web), SIGKILLs what is
left after `STOP_TIMEOUT_S`, and exits 0. Honcho signals the whole process
group, so children usually see the signal first-hand too; either way each
stops once.

Exit codes are the child-to-parent protocol (`ExitCode`): a child that
exits with CONFIG cannot succeed by retrying (bad settings, a segment of
another layout), so the supervisor stops the role and exits CONFIG too,
which makes honcho stop the node with the child's message on screen.
Children ask the kernel for SIGTERM when their supervisor dies
(`die_with_parent`), so a killed supervisor leaves no orphans serving.

A supervisor only starts and watches processes, so it keeps its imports
to that: about 11 MB of its own. Counting restarts needs prometheus_client
(6 MB more), which `RestartMetrics` imports at the first restart.
"""

from __future__ import annotations

import ctypes
import enum
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

from hyperlinkr.config import Settings
from hyperlinkr.errors import ConfigError

__all__ = ["ChildSpec", "ExitCode", "RestartMetrics", "Supervisor", "die_with_parent"]

logger = logging.getLogger(__name__)

RESTART_DELAY_S = 0.25
MAX_RESTART_DELAY_S = 5.0
HEALTHY_AFTER_S = 10.0
STOP_TIMEOUT_S = 10.0
_TICK_S = 0.05
_PR_SET_PDEATHSIG = 1


class ExitCode(enum.IntEnum):
    OK = 0
    CONFIG = 78  # EX_CONFIG: retrying cannot help


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child: a name for logs, the command that runs it, its role."""

    name: str
    argv: Sequence[str]
    pass_fds: Sequence[int] = ()
    role: str = ""  # labels its restarts; the supervisor's role if empty


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0
    restart_at_s: float = 0.0
    delay_s: float = RESTART_DELAY_S
    restarts: int = 0


class RestartMetrics:
    """Counts restarts in the node's metrics, set up at the first restart.

    Most supervisors never restart anything, and prometheus_client with
    what it imports would be a third of their memory. So the metrics of
    this process are configured (`hyperlinkr.metrics.configure`) when it
    first restarts a child. The series exist before that all the same:
    every child exports its own role's restart counter at zero, so the
    node-wide sum reads 0 from the start and then the restarts counted.
    """

    def __init__(self, settings: Settings, roles: Sequence[str]) -> None:
        self._settings = settings
        self._roles = tuple(roles)
        self._configured = False

    def __call__(self, role: str) -> None:
        from hyperlinkr import metrics  # here, not at import: see above

        if not self._configured:
            try:
                metrics.configure(self._settings, self._roles)
            except ConfigError as exc:
                logger.warning("restart of a %s child not counted: %s", role, exc)
                return
            self._configured = True
        metrics.record_restart(role)


def _uncounted(role: str) -> None:
    """The default: restarts are logged, not counted."""


class Supervisor:
    """Runs `specs` until told to stop; returns the process exit code.

    `count_restart(role)` is called each time a child is started again.
    """

    def __init__(
        self,
        role: str,
        specs: Sequence[ChildSpec],
        count_restart: Callable[[str], None] = _uncounted,
    ) -> None:
        self.role = role
        self._children = [_Child(spec) for spec in specs]
        self._count_restart = count_restart
        self._stop_signal: int | None = None

    def run(self) -> int:
        self._install_signal_handlers()
        for child in self._children:
            self._start(child)
        code = ExitCode.OK
        while self._stop_signal is None:
            code = self._tick()
            if code is not ExitCode.OK:
                break
            time.sleep(_TICK_S)
        self._stop_all()
        return int(code)

    def _install_signal_handlers(self) -> None:
        def request_stop(signum: int, frame: FrameType | None) -> None:
            self._stop_signal = signum

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def _start(self, child: _Child) -> None:
        child.process = subprocess.Popen(
            list(child.spec.argv), pass_fds=tuple(child.spec.pass_fds)
        )
        child.started_s = time.monotonic()
        logger.info(
            "%s started (pid %d)",
            child.spec.name,
            child.process.pid,
            extra={"role": self.role, "pid": child.process.pid},
        )

    def _tick(self) -> ExitCode:
        now_s = time.monotonic()
        for child in self._children:
            if child.process is None:
                if now_s >= child.restart_at_s and self._stop_signal is None:
                    child.restarts += 1
                    self._start(child)
                    self._count_restart(child.spec.role or self.role)
                continue
            returncode = child.process.poll()
            if returncode is None:
                continue
            if returncode == ExitCode.CONFIG:
                logger.error(
                    "%s exited with %d (configuration); stopping %s",
                    child.spec.name,
                    returncode,
                    self.role,
                )
                return ExitCode.CONFIG
            self._schedule_restart(child, returncode, now_s)
        return ExitCode.OK

    def _schedule_restart(self, child: _Child, returncode: int, now_s: float) -> None:
        lived_s = now_s - child.started_s
        if lived_s >= HEALTHY_AFTER_S:
            child.delay_s = RESTART_DELAY_S
        logger.warning(
            "%s exited with %d after %.1f s; restarting in %.2f s",
            child.spec.name,
            returncode,
            lived_s,
            child.delay_s,
        )
        child.process = None
        child.restart_at_s = now_s + child.delay_s
        child.delay_s = min(child.delay_s * 2, MAX_RESTART_DELAY_S)

    def _stop_all(self) -> None:
        running = [c.process for c in self._children if c.process is not None]
        for process in running:
            if process.poll() is None:
                _signal(process, signal.SIGTERM)
        deadline_s = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            try:
                process.wait(max(0.0, deadline_s - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("pid %d did not stop in time; killing it", process.pid)
                _signal(process, signal.SIGKILL)
                process.wait()
        logger.info("%s stopped", self.role)

    @property
    def restarts(self) -> int:
        return sum(child.restarts for child in self._children)


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        pass


def die_with_parent(expected_parent_pid: int) -> None:
    """Have the kernel SIGTERM this process when its parent exits (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        logger.debug("prctl is unavailable; children may outlive a killed parent")
        return
    if os.getppid() != expected_parent_pid:
        # The parent died before prctl took effect.
        os.kill(os.getpid(), signal.SIGTERM)
