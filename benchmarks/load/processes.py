"""Processes the harness starts, and what /proc says about them.

A `Service` is one command started in its own session (so a Ctrl-C in the
terminal reaches only the harness, which then stops everything in order),
with its output in a log file. Everything about cost is read from /proc:
CPU time is utime + stime of every live process in the tree under the PIDs
we started (children found through /proc/<pid>/task/<pid>/children), and
memory is VmRSS from /proc/<pid>/status and the proportional sizes of
/proc/<pid>/smaps_rollup. Only PIDs from those trees are ever signalled.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ProcessMemory",
    "Service",
    "StartFailed",
    "cpu_seconds",
    "descendants",
    "free_port",
    "machine_busy_seconds",
    "memory_of",
    "wait_for_status",
]

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 20.0
_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


class StartFailed(RuntimeError):
    """A service exited or never answered while the harness waited for it."""


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    """One process's memory, in MB.

    VmRSS counts every shared page the process touched; PSS divides each
    shared page between the processes mapping it. So PSS adds up across
    processes, and a sum of RSS counts the shared segments once per process.
    PSS is the sum of its anonymous part (heap, Python objects), its file
    part (libraries, the LMDB map) and its shared-memory part (the node's
    segments): a segment page no process has mapped is in none of them.
    """

    pid: int
    label: str
    rss_mb: float
    pss_mb: float
    rss_shmem_mb: float = 0.0
    pss_shmem_mb: float = 0.0
    pss_anon_mb: float = 0.0
    pss_file_mb: float = 0.0

    @property
    def private_mb(self) -> float:
        """PSS without shared memory: what this process adds to the node."""
        return self.pss_mb - self.pss_shmem_mb


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            return [int(p) for p in file.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def descendants(roots: Iterable[int]) -> list[int]:
    """The roots and every process below them, parents before children."""
    found: list[int] = []
    pending = list(roots)
    while pending:
        pid = pending.pop(0)
        if pid not in found and Path(f"/proc/{pid}").exists():
            found.append(pid)
            pending.extend(_children(pid))
    return found


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: fields[0] is field 3, state."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _cpu_ticks(pid: int) -> int:
    fields = _stat_fields(pid)
    # utime and stime are fields 14 and 15.
    return 0 if fields is None else int(fields[11]) + int(fields[12])


def _start_ticks(pid: int) -> int | None:
    """Field 22, starttime: with the PID, names one process for good."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def cpu_seconds(roots: Iterable[int]) -> float:
    """utime + stime of every live process in the trees under roots."""
    ticks = sum(_cpu_ticks(pid) for pid in descendants(roots))
    return ticks / _CLOCK_TICKS_PER_S


def machine_busy_seconds() -> float:
    """CPU time all cores spent running processes (or stolen), since boot.

    Interrupt time is left out: on loopback it is mostly the kernel moving
    the run's own packets, which belongs to no process.
    """
    with open("/proc/stat") as file:
        fields = [int(f) for f in file.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal; guest is within user.
    user, nice, system, steal = fields[0], fields[1], fields[2], fields[7]
    return (user + nice + system + steal) / _CLOCK_TICKS_PER_S


def _kib_fields_mb(path: str) -> dict[str, float]:
    """Every `Field:  123 kB` line of a /proc file, in MB; {} when gone."""
    found = {}
    try:
        with open(path) as file:
            for line in file:
                name, _, rest = line.partition(":")
                words = rest.split()
                if len(words) == 2 and words[1] == "kB":
                    found[name] = int(words[0]) / 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return found


def _label(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return "?"
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    return " ".join([Path(words[0]).name, *words[1:6]]) if words else "?"


def _memory(pid: int) -> ProcessMemory:
    status = _kib_fields_mb(f"/proc/{pid}/status")
    rollup = _kib_fields_mb(f"/proc/{pid}/smaps_rollup")
    return ProcessMemory(
        pid,
        _label(pid),
        status.get("VmRSS", 0.0),
        rollup.get("Pss", 0.0),
        status.get("RssShmem", 0.0),
        rollup.get("Pss_Shmem", 0.0),
        rollup.get("Pss_Anon", 0.0),
        rollup.get("Pss_File", 0.0),
    )


def memory_of(roots: Iterable[int]) -> list[ProcessMemory]:
    """VmRSS and PSS of every live process in the trees under roots."""
    return [_memory(pid) for pid in descendants(roots)]


def wait_for_status(
    port: int,
    path: str,
    statuses: Sequence[int],
    timeout_s: float,
    *alive: Service,
) -> None:
    """Poll GET path on 127.0.0.1:port until it answers one of statuses.

    Fails early, with its log, if one of the `alive` services exits.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for service in alive:
            service.check_alive()
        if _status(port, path) in statuses:
            return
        time.sleep(0.1)
    raise StartFailed(
        f"127.0.0.1:{port}{path} did not answer {list(statuses)} "
        f"within {timeout_s:.0f} s"
    )


def _status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class Service:
    """One command we started; `stop()` ends it and everything below it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                list(argv),
                env=None if env is None else dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self._proc.pid
        # PID -> start time, so a PID reused by a stranger is never signalled.
        self._known: dict[int, int | None] = {}
        logger.info("started %s as pid %d", name, self.pid)

    def tree(self) -> list[int]:
        """This service's live PIDs; also remembered for `stop()`."""
        pids = descendants([self.pid])
        for pid in pids:
            self._known.setdefault(pid, _start_ticks(pid))
        return pids

    def wait_for_children(self, timeout_s: float) -> bool:
        """Wait until this process has started a child; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if len(self.tree()) > 1:
                return True
            time.sleep(0.05)
        return False

    def check_alive(self) -> None:
        if self._proc.poll() is not None:
            raise StartFailed(
                f"{self.name} exited with {self._proc.returncode}; "
                f"its log:\n{self.log_tail()}"
            )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; also any stragglers."""
        self.tree()
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        try:
            code = self._proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("%s ignored SIGTERM; sending SIGKILL", self.name)
            self._proc.kill()
            code = self._proc.wait()
        self._known.pop(self.pid, None)
        _kill_stragglers(self.name, self._known)
        logger.info("stopped %s (exit %s)", self.name, code)
        return code


def _kill_stragglers(name: str, known: Mapping[int, int | None]) -> None:
    """SIGKILL children that outlived their parent, after a grace period."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    alive = list(known)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _is_same_and_running(p, known[p])]
        if alive:
            time.sleep(0.05)
    for pid in alive:
        logger.warning("%s left pid %d running; sending SIGKILL", name, pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _is_same_and_running(pid: int, start_ticks: int | None) -> bool:
    fields = _stat_fields(pid)
    if fields is None or int(fields[19]) != start_ticks:
        return False
    return fields[0] not in ("Z", "X")
