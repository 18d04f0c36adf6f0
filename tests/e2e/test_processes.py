"""What each process of a real node loads: only what its role uses.

Memory is the point: every library a process imports is resident in it,
and a node runs seven Python processes. C extensions show in
/proc/<pid>/maps, so a real node is asked what each process mapped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import MakeNode
from tests.e2e.nodes import RunningNode

# A package directory in site-packages, and what loading it brings.
WEB_STACK = ("/uvloop/", "/httptools/")  # Sanic's server
HTTP3_STACK = ("/aioquic/", "/cryptography/")  # HTTP/3, the h3 role only
STORES = ("/lmdb/", "/hiredis/")


def mapped_files(pid: int) -> set[str]:
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split()[-1] for line in lines if len(line.split()) >= 6}


def loaded(pid: int, packages: tuple[str, ...]) -> list[str]:
    return sorted(p for p in packages if any(p in f for f in mapped_files(pid)))


def test_web_workers_load_no_http3(node: RunningNode) -> None:
    workers = node.workers_of("web")
    assert len(workers) == 2
    for pid in workers:
        assert loaded(pid, WEB_STACK) == sorted(WEB_STACK)
        assert loaded(pid, HTTP3_STACK) == []


def test_actors_load_no_web_server(node: RunningNode) -> None:
    for role in ("persister", "analytics"):
        (pid,) = node.workers_of(role)
        assert loaded(pid, WEB_STACK + HTTP3_STACK) == [], role


def test_supervisors_load_neither_servers_nor_stores(node: RunningNode) -> None:
    for role, supervisor in node.supervisors.items():
        assert loaded(supervisor.pid, WEB_STACK + HTTP3_STACK + STORES) == [], role


def test_an_embedded_node_loads_no_redis_client(node: RunningNode) -> None:
    # redis-py loads hiredis (a C extension, so it shows in the maps) as
    # soon as it is imported; without HYPERLINKR_REDIS_URL nothing imports it.
    for role in ("web", "persister", "analytics"):
        for pid in node.workers_of(role):
            assert loaded(pid, ("/hiredis/",)) == [], role


def test_web_workers_are_pinned_to_cpus_of_their_own(node: RunningNode) -> None:
    usable = os.sched_getaffinity(0)
    if len(usable) < 2:
        pytest.skip("pinning needs two usable CPUs")
    pinned = [os.sched_getaffinity(pid) for pid in node.workers_of("web")]
    assert len(pinned) == 2
    assert all(len(cpus) == 1 and cpus <= usable for cpus in pinned)
    assert pinned[0] != pinned[1]
    # Everything else goes wherever a core is free.
    for role in ("persister", "analytics"):
        (pid,) = node.workers_of(role)
        assert os.sched_getaffinity(pid) == usable, role


def test_web_workers_go_unpinned_when_pinning_is_off(make_node: MakeNode) -> None:
    node = make_node(pin_workers="false")
    usable = os.sched_getaffinity(0)
    for pid in node.workers_of("web"):
        assert os.sched_getaffinity(pid) == usable
