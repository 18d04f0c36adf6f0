"""`python -m benchmarks.load.rss`: a node's memory with 2 million links cached.

    python -m benchmarks.load.rss [--links N] [--hot N] [--duration S]
                                  [--layout procfile|run|both]
                                  [--json out.json]

Seeding two million links over HTTP would take most of an hour (every
create waits for an fsync), so this starts a node whose L1 holds `--links`
entries and fills that L1 directly, through the same shared-memory API the
web workers use: entries built as the node builds them (`Link`, then
`encode_l1`), 7-character base62 codes, URLs of 60 to 100 bytes. The node
then serves `--duration` seconds of redirects over a hot set of `--hot`
codes spread over the whole table (every one an L1 hit, or wrk counts the
404 as an error), and a few real shortens go through the persister, so
each process has mapped and touched what it uses in service. Then the
harness detaches from the table, so that its own mapping shares no page,
and reads every node process's memory.

A node is measured in the two ways it is started (`--layout`, both by
default, one after the other): `procfile`, one supervisor per role as
the Procfile starts them (honcho's own process is not counted: it is the
process manager, like systemd), and `run`, every role under the one
supervisor of `hyperlinkr run`. Each has 2 web workers, one persister and
one analytics actor.

Which sum is the node's memory:

- RSS summed over the processes counts a shared page once per process
  that touched it, so it overstates what is shared and is not a total;
- PSS summed divides each shared page between its mappers, so it adds up,
  but a segment page that no node process has mapped (here, most of the
  table: the harness wrote it, the workers read only the hot set) is in
  no process's PSS at all, and the sum understates;
- the node total, the figure of record and the one the bar judges, is
  each process's PSS without its shared-memory part (its anonymous
  memory and its share of the files it maps: libraries, the LMDB map),
  plus every node segment at its full size. A segment is counted whole
  because in service it is wholly resident: the rings' cells are all
  written when a ring is created, and the table's log is written all
  the way round once it wraps, which any node serving for a while does
  (new links, misses filled, hits promoted to the head). The fill here
  stops short of wrapping, so what is resident at the end is shown
  beside each segment's size, and the total with resident pages only is
  printed too, but not judged.

What this leaves out, so the figure is not read for more than it is:
libraries shared with processes outside the node (another Python
program) lower its PSS a little; and the LMDB here holds only the
shortens, so the page cache of a node whose LMDB holds 2 million links
is not in it (clean file pages the kernel drops under pressure, shared
by every process that maps them).

Everything runs on 127.0.0.1, bounded in time, and is stopped by PID and
unlinked at the end, as in `benchmarks.load.harness`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import shm
from benchmarks.load.bars import Verdict
from benchmarks.load.client import ClientError, seed_links
from benchmarks.load.harness import signals_ignored, unwind_on_signals
from benchmarks.load.processes import (
    ProcessMemory,
    Service,
    StartFailed,
    memory_of,
    wait_for_status,
)
from benchmarks.load.scripts import write_codes, write_script
from benchmarks.load.targets import START_TIMEOUT_S, WORKERS, LoadNode
from benchmarks.load.wrk import WrkFailed, WrkResult, run_wrk
from hyperlinkr.codes import BASE62
from hyperlinkr.links import Link, encode_l1
from hyperlinkr.node import open_table, segment_names

__all__ = ["LAYOUTS", "MemoryReport", "RunNode", "main", "measure_memory"]

logger = logging.getLogger(__name__)

DEFAULT_LINKS = 2_000_000
DEFAULT_HOT = 10_000
DEFAULT_DURATION_S = 5
LAYOUTS = ("procfile", "run")
RSS_BAR_MB = 600.0
SHORTENS = 200
URL_BYTES = (60, 100)
LMDB_MAP_SIZE_MB = 1024
CODE_LENGTH = 7
# Codes are i * _CODE_STRIDE mod 62**7 in base62: distinct for every i
# below 62**7 (the stride is prime to 62), and scattered over the index.
_CODE_STRIDE = 2_654_435_761
_CODE_SPACE = len(BASE62) ** CODE_LENGTH
_URL_SEED = 20240601
_MB = 1024 * 1024
_WRK_CONNECTIONS = 16
_WRK_THREADS = 2


def link_code(index: int) -> str:
    """The code of the index-th link; distinct for every index."""
    value = index * _CODE_STRIDE % _CODE_SPACE
    chars = []
    for _ in range(CODE_LENGTH):
        value, digit = divmod(value, len(BASE62))
        chars.append(BASE62[digit])
    return "".join(chars)


def _url(index: int, length: int) -> str:
    base = f"https://www.example.com/articles/{index}/"
    filler = "how-to-read-a-short-link-" * 4
    return base + filler[: max(0, length - len(base))]


@dataclass(frozen=True, slots=True)
class Fill:
    links: int
    refused: int
    seconds: float
    entries: int
    mean_value_bytes: float


def fill_table(table: shm.Table, count: int) -> Fill:
    """Put `count` links into table as the node would cache them."""
    rng = random.Random(_URL_SEED)
    now_ms = int(time.time() * 1000)
    refused = value_bytes = 0
    started = time.monotonic()
    for index in range(count):
        code = link_code(index)
        link = Link(code, _url(index, rng.randint(*URL_BYTES)), now_ms, None, 302)
        entry = encode_l1(link)
        value_bytes += len(entry)
        if not table.put(code.encode(), entry):
            refused += 1
        if index and index % 500_000 == 0:
            logger.info("filled %d of %d L1 entries", index, count)
    seconds = time.monotonic() - started
    entries = table.statistics().entries
    return Fill(count, refused, seconds, entries, value_bytes / max(count, 1))


@dataclass(frozen=True, slots=True)
class SegmentMemory:
    """One node segment in /dev/shm: its full size and what is resident."""

    name: str
    size_mb: float
    resident_mb: float


def segments_of(node: LoadNode) -> list[SegmentMemory]:
    found = []
    for name in segment_names(node.settings):
        try:
            stat = os.stat(f"/dev/shm/{name}")
        except FileNotFoundError:
            continue
        resident_mb = stat.st_blocks * 512 / _MB
        found.append(SegmentMemory(name, stat.st_size / _MB, resident_mb))
    return found


class RunNode(LoadNode):
    """The node as `hyperlinkr run` starts it: one supervisor, every role."""

    def start(self) -> RunNode:
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "hyperlinkr", "run"]
        service = self._start("node", argv, self.workdir / "node-run.log", self.env)
        try:
            wait_for_status(self.port, "/healthz", (200,), START_TIMEOUT_S, service)
            _wait_for_processes(service, 1 + WORKERS + 2)
        except StartFailed as exc:
            raise StartFailed(f"the node did not start: {exc}\n{self.logs()}") from exc
        return self


def _wait_for_processes(service: Service, count: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(service.tree()) < count:
        service.check_alive()
        if time.monotonic() > deadline:
            raise StartFailed(
                f"{service.name} runs {len(service.tree())} processes after "
                f"{START_TIMEOUT_S:.0f} s, expected {count}"
            )
        time.sleep(0.05)


@dataclass(slots=True)
class MemoryReport:
    layout: str
    fill: Fill
    capacity_entries: int
    hot_codes: int
    hot_missing: int  # hot codes the table lost before any redirect
    hot: WrkResult
    shortened: int
    processes: list[ProcessMemory]
    segments: list[SegmentMemory]

    @property
    def rss_sum_mb(self) -> float:
        return sum(p.rss_mb for p in self.processes)

    @property
    def pss_sum_mb(self) -> float:
        return sum(p.pss_mb for p in self.processes)

    @property
    def private_mb(self) -> float:
        return sum(p.private_mb for p in self.processes)

    @property
    def node_total_mb(self) -> float:
        """The figure of record: PSS without shared memory, plus segments."""
        return self.private_mb + sum(s.size_mb for s in self.segments)

    @property
    def resident_total_mb(self) -> float:
        """As node_total_mb, with only the segment pages resident now."""
        return self.private_mb + sum(s.resident_mb for s in self.segments)

    def verdict(self) -> Verdict:
        name = f"whole node, {self.layout} layout"
        return Verdict(name, self.node_total_mb, RSS_BAR_MB, "MB", False)

    def text(self) -> str:
        f, h = self.fill, self.hot
        lines = [
            f"Hyperlinkr node memory, {self.layout} layout: {f.links:,} links "
            f"put into an L1 of {self.capacity_entries:,} entries in "
            f"{f.seconds:.1f} s ({f.refused:,} refused); "
            f"table.statistics().entries = {f.entries:,}",
            f"  ({f.links - f.entries:,} fewer: a full index bucket evicts its "
            "oldest entry early); mean L1 value "
            f"{f.mean_value_bytes:.0f} bytes",
            f"{self.hot_codes:,} hot codes redirected: {h.requests:,} requests "
            f"at {h.requests_per_s:,.0f}/s, {h.status_errors:,} answered 400 "
            f"or more, {h.socket_errors:,} socket errors ({self.hot_missing} "
            "hot codes were missing from L1 after the fill, and answer 404: "
            f"LMDB has none of them); {self.shortened} links shortened",
            "",
            f"  {'pid':>7}  {'RSS':>6}  {'PSS':>6}  {'shm PSS':>7}  "
            f"{'private':>7}  {'anon':>6}  {'file':>6}  process (MB)",
        ]
        for p in self.processes:
            lines.append(
                f"  {p.pid:>7}  {p.rss_mb:>6.1f}  {p.pss_mb:>6.1f}  "
                f"{p.pss_shmem_mb:>7.1f}  {p.private_mb:>7.1f}  "
                f"{p.pss_anon_mb:>6.1f}  {p.pss_file_mb:>6.1f}  {p.label}"
            )
        lines.append(f"  {'':>7}  {'':>6}  {'':>6}  {'':>7}  {self.private_mb:>7.1f}")
        lines += ["", f"  {'size':>7}  {'resident':>8}  segment (MB)"]
        lines += [
            f"  {s.size_mb:>7.1f}  {s.resident_mb:>8.1f}  {s.name}"
            for s in self.segments
        ]
        size = sum(s.size_mb for s in self.segments)
        resident = sum(s.resident_mb for s in self.segments)
        lines += [
            f"  {size:>7.1f}  {resident:>8.1f}",
            "",
            f"node total: {self.private_mb:.1f} MB private to its processes + "
            f"{size:.1f} MB of segments = {self.node_total_mb:.1f} MB",
            f"  (with only the segment pages resident now: "
            f"{self.resident_total_mb:.1f} MB; not totals: RSS summed "
            f"{self.rss_sum_mb:.1f} MB, PSS summed {self.pss_sum_mb:.1f} MB)",
            f"  {self.verdict().line()}",
        ]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "fill": asdict(self.fill),
            "capacity_entries": self.capacity_entries,
            "hot_codes": self.hot_codes,
            "hot_missing": self.hot_missing,
            "hot": self.hot.as_dict(),
            "shortened": self.shortened,
            "processes": [
                {**asdict(p), "private_mb": p.private_mb} for p in self.processes
            ],
            "segments": [asdict(s) for s in self.segments],
            "rss_sum_mb": self.rss_sum_mb,
            "pss_sum_mb": self.pss_sum_mb,
            "private_mb": self.private_mb,
            "resident_total_mb": self.resident_total_mb,
            "node_total_mb": self.node_total_mb,
            "verdict": {**asdict(self.verdict()), "met": self.verdict().met},
        }


def _hot_codes(links: int, count: int) -> list[str]:
    """`count` codes spread evenly over the links put into the table."""
    step = max(1, links // count)
    return [link_code(i) for i in range(0, links, step)][:count]


def _serve_hot(
    node: LoadNode, workdir: Path, hot: Sequence[str], duration_s: int
) -> WrkResult:
    """wrk over the hot codes; a code missing from L1 answers 404."""
    codes_file = write_codes(workdir / "rss-hot-codes.txt", hot)
    script = write_script(
        workdir, "rss-hot", "cycle", codes_file, path_prefix="/", kind="redirect"
    )
    logger.info("redirecting %d hot codes for %d s", len(hot), duration_s)
    return run_wrk(script, node.port, duration_s, _WRK_CONNECTIONS, _WRK_THREADS)


def measure_memory(
    links: int, hot: int, duration_s: int, layout: str = "procfile"
) -> MemoryReport:
    cleanup = ExitStack()
    try:
        workdir = Path(tempfile.mkdtemp(prefix="hyperlinkr-rss-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        kind = RunNode if layout == "run" else LoadNode
        node = kind(workdir, links, LMDB_MAP_SIZE_MB)
        cleanup.callback(node.close)
        logger.info(
            "starting node %s (%s layout) on port %d",
            node.node_name,
            layout,
            node.port,
        )
        node.start()
        hot_codes = _hot_codes(links, hot)
        table = open_table(node.settings)
        try:
            fill = fill_table(table, links)
            missing = sum(table.get(code.encode()) is None for code in hot_codes)
        finally:
            table.close()  # the harness's mapping must share no page
        served = _serve_hot(node, workdir, hot_codes, duration_s)
        urls = [f"https://example.com/rss/{i}" for i in range(SHORTENS)]
        seed_links(node.port, urls)
        time.sleep(1.0)  # an analytics flush, so its memory is in use too
        return MemoryReport(
            layout,
            fill,
            node.settings.l1_capacity_entries,
            len(hot_codes),
            missing,
            served,
            SHORTENS,
            memory_of(node.pids()),
            segments_of(node),
        )
    finally:
        with signals_ignored():
            cleanup.close()


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load.rss",
        description="A node's memory with its L1 filled with N links: every "
        "process's PSS without shared memory, plus every segment at its full "
        "size (see the module docstring for why).",
    )
    parser.add_argument(
        "--links", type=int, default=DEFAULT_LINKS, help="L1 capacity and fill"
    )
    parser.add_argument(
        "--hot", type=int, default=DEFAULT_HOT, help="codes redirected by wrk"
    )
    parser.add_argument(
        "--duration", type=int, default=DEFAULT_DURATION_S, help="wrk seconds"
    )
    parser.add_argument(
        "--layout",
        choices=(*LAYOUTS, "both"),
        default="both",
        help="procfile: a supervisor per role; run: `hyperlinkr run`",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(tempfile.gettempdir()) / "hyperlinkr-rss.json",
    )
    args = parser.parse_args(argv)
    if args.links < 1024 or args.hot < 1 or args.duration < 1:
        parser.error("expected --links >= 1024, --hot >= 1 and --duration >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    unwind_on_signals()
    layouts = LAYOUTS if args.layout == "both" else (args.layout,)
    try:
        reports = [
            measure_memory(args.links, args.hot, args.duration, layout)
            for layout in layouts
        ]
    except KeyboardInterrupt:
        logger.warning("interrupted; everything the run started was stopped")
        return 130
    except StartFailed as exc:
        logger.error("%s", exc)
        return 2
    except (WrkFailed, ClientError, OSError) as exc:
        logger.error("the memory run failed: %s", exc)
        return 1
    found = {report.layout: report.as_dict() for report in reports}
    args.json.write_text(json.dumps(found, indent=2) + "\n")
    print("\n\n".join(report.text() for report in reports))
    print(f"\nbars (whole node at or under {RSS_BAR_MB:.0f} MB):")
    for report in reports:
        print(f"  {report.verdict().line()}")
    print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
