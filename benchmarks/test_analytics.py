"""Micro benchmark of the analytics actor's CPU cost per click.

Group `analytics-actor` (one pytest-benchmark table), every call one round
of ROUND_CLICKS production-shaped clicks (see `_clicks`) pushed to a real
click-sized ring in chunks of ARRIVAL_CLICKS, the way a busy node hands
them to the actor between two of its polls:

    analytics_actor        the actor takes each chunk with run_once() and
                           flushes into a real LMDB every BATCH_RECORDS
                           clicks (and once at the end of the round)
    baseline_ring_only     the same pushes, each chunk drained with peek()
                           and advance(): what the ring itself costs
    baseline_ring_decode   the same, plus decode_click() of every record

and group `analytics-commits`, the same round with the ring freed every
COMMIT_RECORDS clicks, four times per merge, as a busy node's ring makes
the actor do (`workers/analytics.py`, Holding and Journaling):

    commits[merging]       each of those commits merges into the stats
    commits[journaling]    each goes to the click journal; the round's
                           clicks are merged once, at its end

The actor's own cost per click is its figure minus the ring's. Per-click
medians are printed at the end of the run and saved as
`extra_info.median_ns_per_record` (see conftest.py). The assertions only
check that each round measured what it claims: every click was taken,
counted in LMDB, and no push met a full ring. See benchmarks/README.md.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import lmdb
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks import workload
from hyperlinkr.clicks import decode_click, encode_click
from hyperlinkr.node import CLICK_RECORD_BYTES
from hyperlinkr.stats import StatsReader
from hyperlinkr.storage import open_environment, open_journal_environment
from shm import Ring
from workers.analytics import AnalyticsActor

ROUND_CLICKS = 8192
# About what the actor finds per poll at 25 000 clicks/s (3 ms idle sleep).
ARRIVAL_CLICKS = 64
BATCH_RECORDS = 4096  # the actor's default
COMMIT_RECORDS = ROUND_CLICKS // 4
RECENT_LIMIT = 50  # HYPERLINKR_RECENT_CLICKS' default
ROUNDS = 20
WARMUP_ROUNDS = 2  # fills the user-agent cache, as a running actor has
CODE_COUNT = 300
RING_CAPACITY_RECORDS = 16_384
MAP_SIZE_BYTES = 256 * 1024 * 1024
NEVER_MS = 3_600_000
# 2024-05-01T23:59:00Z: a round's clicks run past midnight into a second day.
START_MS = 1_714_607_940_000

_BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/"
    "605.1.15 (KHTML, like Gecko) Version/17.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel {m}) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S91{m}B) AppleWebKit/537.36 (KHTML, "
    "like Gecko) SamsungBrowser/24.0 Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.{m} Safari/605.1.15",
)
_BOTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "WhatsApp/2.23.20.0",
    "curl/8.5.0",
    "python-requests/2.31.0",
)
_REFERRER_ORIGINS = (
    "https://www.google.com/",
    "https://t.co/",
    "https://www.facebook.com/",
    "https://l.facebook.com/",
    "https://www.linkedin.com/",
    "https://news.ycombinator.com/",
    "https://www.reddit.com/",
    "https://duckduckgo.com/",
    "https://www.bing.com/",
    "android-app://com.slack/",
    "android-app://com.google.android.gm/",
)


def _user_agents(rng: random.Random) -> list[str | None]:
    """About 200 distinct strings, mostly browsers, with bots and a few Nones."""
    agents: list[str | None] = [
        template.format(v=rng.randint(118, 126), m=rng.randint(1, 9))
        for template in _BROWSERS
        for _ in range(18)
    ]
    return agents + list(_BOTS) * 3 + [None] * 2


def _referrers(rng: random.Random) -> list[str | None]:
    """Direct visits, bare origins (the default referrer policy), full URLs."""
    full = [
        f"https://blog{rng.randint(1, 40)}.example.net/posts/{rng.randint(1, 999)}"
        f"?utm_source=newsletter&utm_medium=email&id={rng.getrandbits(32):x}"
        for _ in range(150)
    ]
    return [None] * 120 + list(_REFERRER_ORIGINS) * 10 + full


def _clicks() -> list[bytes]:
    """ROUND_CLICKS encoded click records, the same every run.

    CODE_COUNT 7-character codes with Zipf-like popularity, user agents and
    referrers drawn from the lists above, a visitor hash on every click
    (as with the shared tier), and times 25 clicks a millisecond apart with
    a little disorder, as several web workers push them.
    """
    rng = random.Random(2024)
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    codes = ["".join(rng.choices(alphabet, k=7)) for _ in range(CODE_COUNT)]
    weights = [1 / (rank + 1) for rank in range(CODE_COUNT)]
    agents, referrers = _user_agents(rng), _referrers(rng)
    return [
        encode_click(
            rng.choices(codes, weights)[0],
            START_MS + i // 25 + rng.randint(-3, 0),
            rng.choice(referrers),
            rng.choice(agents),
            CLICK_RECORD_BYTES,
            rng.getrandbits(64),
        )
        for i in range(ROUND_CLICKS)
    ]


CLICKS = _clicks()
CHUNKS = [
    CLICKS[start : start + ARRIVAL_CLICKS]
    for start in range(0, ROUND_CLICKS, ARRIVAL_CLICKS)
]


@pytest.fixture
def click_ring() -> Iterator[Ring]:
    """An empty click-sized ring named `hlb-<pid>-<random>`, unlinked after."""
    ring = Ring.create_or_attach(
        workload.segment_name(), RING_CAPACITY_RECORDS, CLICK_RECORD_BYTES
    )
    try:
        yield ring
    finally:
        ring.close()
        ring.unlink()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[lmdb.Environment]:
    environment = open_environment(tmp_path / "lmdb", MAP_SIZE_BYTES)
    yield environment
    environment.close()


@pytest.fixture
def journal_env(tmp_path: Path) -> Iterator[lmdb.Environment]:
    environment = open_journal_environment(tmp_path, MAP_SIZE_BYTES)
    yield environment
    environment.close()


def _push(ring: Ring, chunk: list[bytes]) -> None:
    push = ring.push
    for record in chunk:
        if push(record) < 0:
            raise RuntimeError(f"ring {ring.name!r} is full; drain it first")


def _time_round(
    benchmark: BenchmarkFixture,
    consume_round: Callable[[], int],
    per_record: Callable[[int], None],
) -> None:
    taken = benchmark.pedantic(
        consume_round, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS
    )
    assert taken == ROUND_CLICKS
    per_record(ROUND_CLICKS)


@pytest.mark.benchmark(group="analytics-actor")
def test_analytics_actor(
    benchmark: BenchmarkFixture,
    click_ring: Ring,
    env: lmdb.Environment,
    per_record: Callable[[int], None],
) -> None:
    """One call: a round of chunks, run_once() after each, a final flush."""
    actor = AnalyticsActor(
        click_ring,
        env,
        flush_interval_ms=NEVER_MS,
        recent_limit=RECENT_LIMIT,
        batch_records=BATCH_RECORDS,
    )
    actor.recover()
    calls = 0

    def consume_round() -> int:
        nonlocal calls
        calls += 1
        taken = 0
        for chunk in CHUNKS:
            _push(click_ring, chunk)
            taken += actor.run_once()
        actor.flush()
        return taken

    _time_round(benchmark, consume_round, per_record)
    stats = StatsReader(env)
    counted = sum(
        stats.get(code)["clicks"]["total"]
        for code in {decode_click(record).code for record in CLICKS}
    )
    assert counted == ROUND_CLICKS * calls
    assert click_ring.statistics().depth == 0
    assert actor.statistics().bad_records == 0


@pytest.mark.benchmark(group="analytics-commits")
@pytest.mark.parametrize("journal", [False, True], ids=["merging", "journaling"])
def test_commits(
    benchmark: BenchmarkFixture,
    click_ring: Ring,
    env: lmdb.Environment,
    journal_env: lmdb.Environment,
    per_record: Callable[[int], None],
    journal: bool,
) -> None:
    """One call: a round of chunks, run_once() after each, a commit every
    COMMIT_RECORDS, and a final flush."""
    actor = AnalyticsActor(
        click_ring,
        env,
        flush_interval_ms=NEVER_MS,
        recent_limit=RECENT_LIMIT,
        batch_records=COMMIT_RECORDS,
        journal=journal_env if journal else None,
    )
    actor.recover()
    calls = 0

    def consume_round() -> int:
        nonlocal calls
        calls += 1
        taken = sum(_take_chunk(actor, click_ring, chunk) for chunk in CHUNKS)
        actor.flush()
        return taken

    _time_round(benchmark, consume_round, per_record)
    assert actor.statistics().flushes == (1 if journal else 4) * calls
    assert click_ring.statistics().depth == 0


def _take_chunk(actor: AnalyticsActor, click_ring: Ring, chunk: list[bytes]) -> int:
    _push(click_ring, chunk)
    return actor.run_once()


def _ring_round(click_ring: Ring, each: Callable[[bytes], object] | None) -> int:
    """The pushes of one round, each chunk taken with one peek() and advance()."""
    taken = 0
    for chunk in CHUNKS:
        _push(click_ring, chunk)
        records, end = click_ring.peek(ARRIVAL_CLICKS)
        if each is not None:
            for record in records:
                each(record)
        click_ring.advance(end)
        taken += len(records)
    return taken


@pytest.mark.benchmark(group="analytics-actor")
def test_baseline_ring_only(
    benchmark: BenchmarkFixture,
    click_ring: Ring,
    per_record: Callable[[int], None],
) -> None:
    """The same pushes, each chunk taken with one peek() and one advance()."""
    _time_round(benchmark, lambda: _ring_round(click_ring, None), per_record)


@pytest.mark.benchmark(group="analytics-actor")
def test_baseline_ring_decode(
    benchmark: BenchmarkFixture,
    click_ring: Ring,
    per_record: Callable[[int], None],
) -> None:
    """The ring-only round, plus decode_click() of every record taken."""
    _time_round(benchmark, lambda: _ring_round(click_ring, decode_click), per_record)
