"""The load harness: a real node under wrk, beside two baselines.

    python -m benchmarks.load [--links N] [--duration S] [--connections C]
                              [--threads T] [--quick] [--no-baselines]
                              [--json out.json]

One command starts a Hyperlinkr node from nothing (temporary data
directory, unique node name, free loopback port, 2 web workers, an L1 a
quarter the size of the link set), seeds it with N links over HTTP, and
puts bounded load on it (wrk, or the open-loop pacer for the paced
scenarios), scenario by scenario:

    redirect-hot    GET /{code} over a small hot set, the L1 hit path;
                    its clicks are then compared with /stats (loss)
    redirect-half   the same codes at half the requests/s that
                    redirect-hot reached, open loop on 64 connections:
                    latency at half the maximum throughput, from each
                    request's due time
    redirect-zipf   GET /{code}, Zipf-distributed over a set four times
                    larger than L1, with the L1 hit ratio it produced
    stats           GET /stats/{code}
    shorten         POST /shorten, each URL new (fsync'd before 201)
    shorten-paced   the same at 5,000/s, open loop on 64 connections:
                    p99 at the rate the shorten bar names
    mixed           90% redirect, 5% shorten, 5% stats

For each it reports requests/s, latency percentiles, errors, CPU per
request (utime + stime of every node process, from /proc) and memory.
The same redirect scenarios then run against a minimal Sanic app and,
when installed, nginx with a map of the same codes; node / baseline
ratios are the headline figures, and the issue's bars are judged at the
end (`bars`). Everything runs on 127.0.0.1, is bounded in time, and is
stopped by PID at the end, on errors and on Ctrl-C alike (see `harness`).

The memory bar needs a node of its own, with 2 million links in L1:

    python -m benchmarks.load.rss [--links N] [--hot N] [--duration S]

fills a node's L1 through the shared-memory API, serves a hot set, and
reports every process's RSS and PSS and the node's total (see `rss`).

Modules, one role each: `options` (command line), `workload` (codes and
scenarios), `scripts` (wrk Lua), `wrk` (running and parsing it),
`pacer` (the open-loop generator, and the host stall probe),
`client` (seeding and /stats), `processes` (services and /proc),
`targets` (node and baselines), `measure` (a scenario's cost, the click
check), `bars` (the issue's bars), `report` (table and JSON), `harness`
(the run), `rss` (the memory run), `baselines/`.
"""
