"""The web supervisor's listening sockets: one per worker, on one port."""

from __future__ import annotations

import os
import socket

import pytest

from hyperlinkr.config import Settings
from hyperlinkr.server import bind_listeners, worker_cpus


def _accepted_by(listeners: list[socket.socket], connections: int) -> list[int]:
    """Connect `connections` times; how many each listener's queue got."""
    clients = [
        socket.create_connection(listeners[0].getsockname()) for _ in range(connections)
    ]
    counts = []
    for listener in listeners:
        listener.setblocking(False)
        accepted = 0
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                break
            conn.close()
            accepted += 1
        counts.append(accepted)
    for client in clients:
        client.close()
    return counts


def test_new_connections_are_spread_over_every_listener() -> None:
    listeners = bind_listeners("127.0.0.1", 0, 2)
    try:
        port = listeners[0].getsockname()[1]
        assert [sock.getsockname()[1] for sock in listeners] == [port, port]
        counts = _accepted_by(listeners, 64)
    finally:
        for sock in listeners:
            sock.close()
    # Binomial(64, 1/2): below 12 on one side about once in 10^7 runs.
    assert sum(counts) == 64
    assert min(counts) >= 12, counts


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_port_already_listened_on_is_refused(reuse_port: bool) -> None:
    taken = socket.socket()
    if reuse_port:  # a node of this user already there: not to be joined
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(OSError):
            bind_listeners("127.0.0.1", taken.getsockname()[1], 2)
    finally:
        taken.close()


def _settings(workers: int, pin: str = "true") -> Settings:
    return Settings.from_env(
        {"HYPERLINKR_WORKERS": str(workers), "HYPERLINKR_PIN_WORKERS": pin}
    )


def test_workers_are_pinned_one_per_usable_cpu_in_order() -> None:
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        pytest.skip("pinning needs two usable CPUs")
    assert worker_cpus(_settings(2)) == usable[:2]
    assert worker_cpus(_settings(len(usable))) == usable


def test_workers_are_not_pinned_when_off_alone_or_outnumbering_the_cpus() -> None:
    usable = len(os.sched_getaffinity(0))
    assert worker_cpus(_settings(2, pin="false")) == [None, None]
    assert worker_cpus(_settings(1)) == [None]
    assert worker_cpus(_settings(usable + 1)) == [None] * (usable + 1)
