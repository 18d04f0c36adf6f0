"""The command line of `python -m benchmarks.load`, as one frozen `Options`."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Options", "parse_options"]

DEFAULT_LINKS = 100_000
DEFAULT_DURATION_S = 10
QUICK_LINKS = 10_000
QUICK_DURATION_S = 3
DEFAULT_CONNECTIONS = 64
DEFAULT_THREADS = 2
MIN_LINKS = 100
# The hot set: the click check reads /stats of every code in it.
HOT_CODES = 1000
# The node's minimum L1 size (see hyperlinkr/config.py).
MIN_L1_ENTRIES = 1024


@dataclass(frozen=True, slots=True)
class Options:
    links: int
    duration_s: int
    connections: int
    threads: int
    json_path: Path
    baselines: bool

    @property
    def hot_codes(self) -> int:
        """Codes of the hot scenario: a tenth of the links, at most HOT_CODES."""
        return max(1, min(HOT_CODES, self.links // 10))

    @property
    def l1_capacity_entries(self) -> int:
        """A quarter of the links, so the Zipf scenario cannot all fit in L1."""
        return max(MIN_L1_ENTRIES, self.links // 4)

    @property
    def lmdb_map_size_mb(self) -> int:
        """Room for the seeded links and what shorten adds, about 2 KB each."""
        return max(1024, self.links // 500)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description="Load a fresh Hyperlinkr node with wrk, beside baselines.",
    )
    add = parser.add_argument
    add("--links", type=_positive_int, help=f"links to seed ({DEFAULT_LINKS:,})")
    add("--duration", type=_positive_int, help="whole seconds per scenario (10)")
    add(
        "--connections",
        type=_positive_int,
        default=DEFAULT_CONNECTIONS,
        help=f"wrk connections ({DEFAULT_CONNECTIONS})",
    )
    add(
        "--threads",
        type=_positive_int,
        default=DEFAULT_THREADS,
        help=f"wrk threads ({DEFAULT_THREADS})",
    )
    add(
        "--quick",
        action="store_true",
        help=f"{QUICK_DURATION_S} s per scenario and {QUICK_LINKS:,} links",
    )
    add(
        "--no-baselines",
        dest="baselines",
        action="store_false",
        help="load only the node",
    )
    add(
        "--json",
        type=Path,
        help="where to write the results "
        "(default: hyperlinkr-load.json in the temp directory)",
    )
    return parser


def parse_options(argv: Sequence[str] | None = None) -> Options:
    args = _parser().parse_args(argv)
    links = args.links or (QUICK_LINKS if args.quick else DEFAULT_LINKS)
    duration = args.duration or (QUICK_DURATION_S if args.quick else DEFAULT_DURATION_S)
    if links < MIN_LINKS:
        _parser().error(f"--links {links}: expected at least {MIN_LINKS}")
    json_path = args.json or Path(tempfile.gettempdir()) / "hyperlinkr-load.json"
    return Options(
        links=links,
        duration_s=duration,
        connections=args.connections,
        threads=args.threads,
        json_path=json_path,
        baselines=args.baselines,
    )
