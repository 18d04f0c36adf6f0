"""One load run, start to finish, and its cleanup whatever happens.

The order matters:

0. the pacer is built, and the machine's own stalls are measured with
   nothing else running (again at the very end): `measure_stalls`;
1. a fresh node (temporary data directory, unique node name, free port,
   L1 a quarter of the links) is started and seeded over HTTP;
2. the node's scenarios run one after another: `redirect-hot` first, then
   the click check on its codes, before anything else can touch them,
   then `redirect-half` on the same codes at half the rate `redirect-hot`
   reached (the latency bar is set at half the maximum throughput), sent
   open loop by the pacer;
3. the node's memory is read and the node is stopped, so its idle work
   does not steal CPU from the baselines;
4. each baseline is started, given the same redirect scenarios, stopped;
   nginx also gets `redirect-half` at the node's rate: the latency this
   machine and generator give a server that costs next to nothing.

Everything started is registered on one `ExitStack` the moment it exists,
so an exception or Ctrl-C at any step stops it by PID, unlinks the node's
shared memory and removes the temporary directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType

from benchmarks.load.baselines.nginx import nginx_path
from benchmarks.load.client import ClientError, seed_links
from benchmarks.load.measure import check_clicks, measure, warm_up
from benchmarks.load.options import Options
from benchmarks.load.pacer import PacerFailed, build_pacer, measure_stalls
from benchmarks.load.report import RunReport
from benchmarks.load.targets import LoadNode, Target, start_nginx, start_sanic
from benchmarks.load.workload import (
    BASELINE_SCENARIOS,
    NODE_SCENARIOS,
    PACED_SHARE,
    Workload,
    seed_urls,
)
from benchmarks.load.wrk import WrkFailed

__all__ = ["run", "signals_ignored", "unwind_on_signals"]

logger = logging.getLogger(__name__)

_NODE_HALF = ("node", "redirect-half")


def run(options: Options) -> RunReport:
    load_average_start = os.getloadavg()[0]
    cleanup = ExitStack()
    try:
        workdir = Path(tempfile.mkdtemp(prefix="hyperlinkr-load-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        pacer = build_pacer(workdir)
        stalls = [("before", measure_stalls(pacer))]
        node = LoadNode(workdir, options.l1_capacity_entries, options.lmdb_map_size_mb)
        cleanup.callback(node.close)
        logger.info("starting node %s on port %d", node.node_name, node.port)
        node.start()

        try:
            workload, report = _seed_and_load(node, workdir, pacer, options)
        except (ClientError, PacerFailed, WrkFailed):
            logger.error("the node's logs, for the failure below:\n%s", node.logs())
            raise
        report.load_average_start = load_average_start
        if options.baselines:
            _load_baselines(workdir, workload, options, report, cleanup)
        stalls.append(("after", measure_stalls(pacer)))
        report.host_stalls = stalls
        return report
    finally:
        with signals_ignored():
            cleanup.close()


def unwind_on_signals() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt in this process.

    A shell starts background jobs with SIGINT ignored, and SIGTERM would
    end the process where it stands; either way nodes, generators and
    temporary directories would be left behind. Unwinding through the
    callers' finally blocks is what stops them.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Let a second Ctrl-C not cut the cleanup short and leave processes."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; nothing to defer
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(signum, signal.SIG_IGN) for signum in signals]
    try:
        yield
    finally:
        for signum, handler in zip(signals, previous, strict=True):
            signal.signal(signum, handler)


def _seed_and_load(
    node: LoadNode, workdir: Path, pacer: Path, options: Options
) -> tuple[Workload, RunReport]:
    """Seed the node, run its scenarios, stop it; what the baselines need."""
    started = time.monotonic()
    urls = seed_urls(options.links)
    codes = seed_links(node.port, urls)
    seed_s = time.monotonic() - started
    workload = Workload.build(workdir, codes, urls, options.hot_codes, pacer)
    report = RunReport(options, workload.scenarios, node.node_name, seed_s)
    if options.l1_capacity_entries >= options.links:
        report.notes.append(
            f"the node's L1 ({options.l1_capacity_entries:,} entries, its "
            "minimum) holds every link: redirect-zipf cannot miss it; "
            f"use --links {4 * options.l1_capacity_entries:,} or more"
        )
    _load_node(node, workload, options, report)
    return workload, report


def _load_node(
    node: LoadNode, workload: Workload, options: Options, report: RunReport
) -> None:
    # Warm up with the Zipf codes: the hot codes must see no request before
    # their scenario, or the click check would count the warm-up's clicks.
    zipf = workload.scenarios["redirect-zipf"]
    warm_up(node, zipf, options.connections, options.threads)
    rate_per_s: float | None = None
    for name in NODE_SCENARIOS:
        scenario = workload.scenarios[name]
        if scenario.paced_connections is None:
            measurement = measure(
                node,
                scenario,
                options.duration_s,
                options.connections,
                options.threads,
            )
        else:
            offered = scenario.rate_per_s or rate_per_s
            assert offered is not None, "redirect-half runs after redirect-hot"
            measurement = measure(
                node,
                scenario,
                options.duration_s,
                scenario.paced_connections,
                options.threads,
                offered,
            )
        report.measurements.append(measurement)
        if name == "redirect-hot":
            report.clicks = check_clicks(node, workload.hot, measurement)
            rate_per_s = PACED_SHARE * measurement.wrk.requests_per_s
    report.node_memory = node.memory()
    node.close()


def _load_baselines(
    workdir: Path,
    workload: Workload,
    options: Options,
    report: RunReport,
    cleanup: ExitStack,
) -> None:
    starters: list[tuple[str, Callable[[], Target]]] = [
        ("sanic", lambda: start_sanic(workdir, workload.links)),
    ]
    nginx = nginx_path()
    if nginx is None:
        report.notes.append(
            "nginx baseline skipped: nginx is not installed "
            "(apt-get install nginx-light)"
        )
    else:
        starters.append(("nginx", lambda: start_nginx(nginx, workdir, workload.links)))
    for name, start in starters:
        logger.info("starting the %s baseline", name)
        target = start()
        cleanup.callback(target.stop)
        _load_baseline(target, workload, options, report)
        target.stop()


def _load_baseline(
    target: Target, workload: Workload, options: Options, report: RunReport
) -> None:
    zipf = workload.scenarios["redirect-zipf"]
    warm_up(target, zipf, options.connections, options.threads)
    for name in BASELINE_SCENARIOS:
        report.measurements.append(
            measure(
                target,
                workload.scenarios[name],
                options.duration_s,
                options.connections,
                options.threads,
            )
        )
    half = next(
        (m for m in report.measurements if (m.target, m.scenario) == _NODE_HALF),
        None,
    )
    if target.name == "nginx" and half is not None and half.offered_per_s:
        scenario = workload.scenarios["redirect-half"]
        assert scenario.paced_connections is not None
        report.measurements.append(
            measure(
                target,
                scenario,
                options.duration_s,
                scenario.paced_connections,
                options.threads,
                half.offered_per_s,
            )
        )
