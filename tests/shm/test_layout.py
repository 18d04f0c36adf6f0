from __future__ import annotations

import os
from collections.abc import Callable

import posix_ipc
import pytest

import shm
from shm import LayoutMismatch, Ring, SegmentNotReady, Table
from shm.layout import LAYOUT_VERSION

Names = Callable[[], str]


def test_attach_with_another_size_names_both(segment_name: Names) -> None:
    name = segment_name()
    Table.create_or_attach(name, 100).close()
    with pytest.raises(LayoutMismatch) as caught:
        Table.create_or_attach(name, 5000)
    message = str(caught.value)
    assert name in message and "holds table" in message and "expects" in message


def test_attach_with_another_kind_is_refused(segment_name: Names) -> None:
    name = segment_name()
    Ring.create_or_attach(name, 8, 8).close()
    with pytest.raises(LayoutMismatch, match="holds ring"):
        Table.create_or_attach(name, 100)


def test_a_segment_of_an_older_layout_version_is_refused(
    segment_name: Names,
) -> None:
    """An older process's segment of the same sizes is never attached."""
    name = segment_name()
    Table.create_or_attach(name, 100).close()
    with open(f"/dev/shm/{name}", "r+b") as raw:
        raw.seek(8)
        raw.write((LAYOUT_VERSION - 1).to_bytes(4, "little"))
    with pytest.raises(LayoutMismatch, match=f"holds table v{LAYOUT_VERSION - 1} "):
        Table.create_or_attach(name, 100)


def test_foreign_segment_is_refused(segment_name: Names) -> None:
    name = segment_name()
    memory = posix_ipc.SharedMemory("/" + name, posix_ipc.O_CREX, size=8192)
    with open(f"/dev/shm/{name}", "r+b") as raw:
        raw.write(b"NOTOURS!" + b"\x00" * 48 + b"\x01" + b"\x00" * 7)
    memory.close_fd()
    with pytest.raises(LayoutMismatch, match="unknown layout"):
        Table.create_or_attach(name, 100)


def test_never_initialised_segment_times_out(
    segment_name: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = segment_name()
    memory = posix_ipc.SharedMemory("/" + name, posix_ipc.O_CREX, size=8192)
    memory.close_fd()
    monkeypatch.setattr("shm.layout._ATTACH_TIMEOUT_S", 0.1)
    with pytest.raises(SegmentNotReady, match="never initialised"):
        Table.create_or_attach(name, 100)


def test_unlink_leaves_nothing_in_dev_shm(segment_name: Names) -> None:
    name = segment_name()
    table = Table.create_or_attach(name, 100)
    assert os.path.exists(f"/dev/shm/{name}")
    table.close()
    assert shm.unlink(name)
    assert not os.path.exists(f"/dev/shm/{name}")
    assert not shm.unlink(name)
