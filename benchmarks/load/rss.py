"""`python -m benchmarks.load.rss`: a node's memory with 2 million links cached.

    python -m benchmarks.load.rss [--links N] [--hot N] [--duration S]
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

Which sum is the node's memory:

- RSS summed over the processes counts a shared page once per process
  that touched it, so it overstates what is shared and is not a total;
- PSS summed divides each shared page between its mappers, so it adds up,
  but a segment page that no node process has mapped (here, most of the
  table: the harness wrote it, the workers read only the hot set) is in
  no process's PSS at all, and the sum understates;
- the node total is each process's PSS without its shared-memory part,
  plus every page of the node's segments resident in /dev/shm: all the
  memory the node holds, each page once. That is the figure of record.

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
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import shm
from benchmarks.load.bars import Verdict
from benchmarks.load.client import ClientError, seed_links
from benchmarks.load.harness import signals_ignored
from benchmarks.load.processes import ProcessMemory, StartFailed, memory_of
from benchmarks.load.scripts import write_codes, write_script
from benchmarks.load.targets import LoadNode
from benchmarks.load.wrk import WrkFailed, WrkResult, run_wrk
from hyperlinkr.codes import BASE62
from hyperlinkr.links import Link, encode_l1
from hyperlinkr.node import open_table, segment_names

__all__ = ["MemoryReport", "main", "measure_memory"]

logger = logging.getLogger(__name__)

DEFAULT_LINKS = 2_000_000
DEFAULT_HOT = 10_000
DEFAULT_DURATION_S = 5
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


def segments_resident_mb(node: LoadNode) -> dict[str, float]:
    """Resident size of each of the node's segments in /dev/shm, in MB."""
    found = {}
    for name in segment_names(node.settings):
        try:
            found[name] = os.stat(f"/dev/shm/{name}").st_blocks * 512 / _MB
        except FileNotFoundError:
            found[name] = 0.0
    return found


@dataclass(slots=True)
class MemoryReport:
    fill: Fill
    capacity_entries: int
    hot_codes: int
    hot_missing: int  # hot codes the table lost before any redirect
    hot: WrkResult
    shortened: int
    processes: list[ProcessMemory]
    segments_mb: dict[str, float]

    @property
    def rss_sum_mb(self) -> float:
        return sum(p.rss_mb for p in self.processes)

    @property
    def pss_sum_mb(self) -> float:
        return sum(p.pss_mb for p in self.processes)

    @property
    def node_total_mb(self) -> float:
        """Each page once: PSS without shared memory, plus all segments."""
        private = sum(p.pss_mb - p.pss_shmem_mb for p in self.processes)
        return private + sum(self.segments_mb.values())

    def verdicts(self) -> list[Verdict]:
        return [
            Verdict(name, value, RSS_BAR_MB, "MB", False)
            for name, value in (
                ("RSS summed over processes", self.rss_sum_mb),
                ("PSS summed over processes", self.pss_sum_mb),
                ("node total (of record)", self.node_total_mb),
            )
        ]

    def text(self) -> str:
        f, h = self.fill, self.hot
        lines = [
            f"Hyperlinkr node memory: {f.links:,} links put into an L1 of "
            f"{self.capacity_entries:,} entries in {f.seconds:.1f} s "
            f"({f.refused:,} refused); table.statistics().entries = {f.entries:,}",
            f"  ({f.links - f.entries:,} fewer: a full index bucket evicts its "
            "oldest entry early); mean L1 value "
            f"{f.mean_value_bytes:.0f} bytes",
            f"{self.hot_codes:,} hot codes redirected: {h.requests:,} requests "
            f"at {h.requests_per_s:,.0f}/s, {h.status_errors:,} answered 400 "
            f"or more, {h.socket_errors:,} socket errors ({self.hot_missing} "
            "hot codes were missing from L1 after the fill, and answer 404: "
            f"LMDB has none of them); {self.shortened} links shortened",
            "",
            f"  {'pid':>7}  {'RSS MB':>7}  {'PSS MB':>7}  {'shm RSS':>7}  "
            f"{'shm PSS':>7}  process",
        ]
        for p in self.processes:
            lines.append(
                f"  {p.pid:>7}  {p.rss_mb:>7.1f}  {p.pss_mb:>7.1f}  "
                f"{p.rss_shmem_mb:>7.1f}  {p.pss_shmem_mb:>7.1f}  {p.label}"
            )
        lines += ["", "segments resident in /dev/shm:"]
        lines += [f"  {mb:>7.1f} MB  {name}" for name, mb in self.segments_mb.items()]
        lines += ["", f"bars (whole node at or under {RSS_BAR_MB:.0f} MB):"]
        lines += [f"  {v.line()}" for v in self.verdicts()]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fill": asdict(self.fill),
            "capacity_entries": self.capacity_entries,
            "hot_codes": self.hot_codes,
            "hot_missing": self.hot_missing,
            "hot": self.hot.as_dict(),
            "shortened": self.shortened,
            "processes": [asdict(p) for p in self.processes],
            "segments_mb": self.segments_mb,
            "rss_sum_mb": self.rss_sum_mb,
            "pss_sum_mb": self.pss_sum_mb,
            "node_total_mb": self.node_total_mb,
            "verdicts": [{**asdict(v), "met": v.met} for v in self.verdicts()],
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


def measure_memory(links: int, hot: int, duration_s: int) -> MemoryReport:
    cleanup = ExitStack()
    try:
        workdir = Path(tempfile.mkdtemp(prefix="hyperlinkr-rss-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        node = LoadNode(workdir, links, LMDB_MAP_SIZE_MB)
        cleanup.callback(node.close)
        logger.info("starting node %s on port %d", node.node_name, node.port)
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
            fill,
            node.settings.l1_capacity_entries,
            len(hot_codes),
            missing,
            served,
            SHORTENS,
            memory_of(node.pids()),
            segments_resident_mb(node),
        )
    finally:
        with signals_ignored():
            cleanup.close()


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinding through finally stops the node


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load.rss",
        description="A node's memory with its L1 filled with N links.",
    )
    parser.add_argument("--links", type=int, default=DEFAULT_LINKS)
    parser.add_argument("--hot", type=int, default=DEFAULT_HOT)
    parser.add_argument("--duration", type=int, default=DEFAULT_DURATION_S)
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
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        report = measure_memory(args.links, args.hot, args.duration)
    except KeyboardInterrupt:
        logger.warning("interrupted; everything the run started was stopped")
        return 130
    except StartFailed as exc:
        logger.error("%s", exc)
        return 2
    except (WrkFailed, ClientError, OSError) as exc:
        logger.error("the memory run failed: %s", exc)
        return 1
    args.json.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    print(report.text())
    print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
