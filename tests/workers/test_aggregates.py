from __future__ import annotations

import random

import lmdb
import orjson
import pytest

from hyperlinkr.clicks import Click
from hyperlinkr.stats import OTHER_KEY, StoredStats, empty_stats, load_stats
from hyperlinkr.storage import STATS_DB
from workers.aggregates import ClickAggregator, aggregate, referrer_host
from workers.statsmerge import MAX_DAYS, MAX_MAP_ENTRIES, merge, merge_into

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
DAY_MS = 86_400_000
# 2024-05-01T00:00:00Z
MAY_1_MS = 1_714_521_600_000


def _merge(env: lmdb.Environment, clicks: list[Click], recent_limit: int = 5) -> None:
    db = env.open_db(STATS_DB)
    with env.begin(write=True) as txn:
        merge_into(txn, db, aggregate(clicks).items(), recent_limit)


def _stored(env: lmdb.Environment, code: str) -> StoredStats:
    db = env.open_db(STATS_DB)
    with env.begin(db=db) as txn:
        raw = txn.get(code.encode())
    assert raw is not None
    return load_stats(raw)


@pytest.mark.parametrize(
    ("referrer", "host"),
    [
        (None, "direct"),
        ("", "direct"),
        ("https://News.Example.com:8443/a?b=c", "news.example.com"),
        ("android-app://com.google.android.gm/", "com.google.android.gm"),
        ("not a url", "unknown"),
        ("http://[::1", "unknown"),
    ],
)
def test_referrer_is_reduced_to_its_host(referrer: str | None, host: str) -> None:
    assert referrer_host(referrer) == host


def test_batch_is_folded_per_code() -> None:
    deltas = aggregate(
        [
            Click("a", MAY_1_MS + 5, "https://x.io/p", FIREFOX),
            Click("a", MAY_1_MS + 1, None, GOOGLEBOT),
            Click("a", MAY_1_MS + DAY_MS, None, FIREFOX),
            Click("b", MAY_1_MS, None, None),
        ]
    )

    a = deltas["a"]
    assert (a.total, a.human, a.bot) == (3, 2, 1)
    assert (a.first_ts_ms, a.last_ts_ms) == (MAY_1_MS + 1, MAY_1_MS + DAY_MS)
    assert a.per_day == {"2024-05-01": 2, "2024-05-02": 1}
    assert a.referrers == {"x.io": 1, "direct": 2}
    assert a.browsers == {"Firefox": 2, "Googlebot": 1}
    assert a.operating_systems == {"Linux": 2, "Other": 1}
    assert a.devices == {"desktop": 2, "bot": 1}
    assert len(a.recent) == 3
    assert deltas["b"].bot == 1


def test_a_drain_gives_the_deltas_and_starts_a_new_batch() -> None:
    aggregator = ClickAggregator()
    for code in ("a", "b", "a"):
        aggregator.add(Click(code, MAY_1_MS, None, FIREFOX))
    expected = repr(aggregator.deltas())

    drain = aggregator.drain_deltas()
    first = next(drain)
    assert aggregator.pending_clicks == 1  # "b" is not reached yet
    drained = dict([first, *drain])

    assert repr(drained) == expected
    assert aggregator.pending_clicks == 0
    assert not aggregator.deltas()


def test_bounded_recent_clicks_keep_what_merge_keeps_from_all_of_them() -> None:
    """Out-of-order times with ties: the cut during a batch changes nothing."""
    rng = random.Random(5)
    clicks = [
        Click("a", MAY_1_MS + rng.randrange(40), f"https://h{i % 9}.io/", FIREFOX)
        for i in range(500)
    ]
    bounded = ClickAggregator(recent_limit=7)
    for click in clicks:
        bounded.add(click)

    held = bounded.deltas()["a"]
    assert len(held.recent) == 7
    stored = merge(empty_stats(), held, 7)
    assert stored == merge(empty_stats(), aggregate(clicks)["a"], 7)


def test_meaning_is_given_per_distinct_value_in_first_seen_order() -> None:
    deltas = aggregate(
        [
            Click("a", MAY_1_MS + DAY_MS, "https://y.io/1", GOOGLEBOT),
            Click("a", MAY_1_MS, "https://x.io/", FIREFOX),
            Click("a", MAY_1_MS, "https://y.io/2", FIREFOX),
        ]
    )

    a = deltas["a"]
    assert list(a.per_day.items()) == [("2024-05-02", 1), ("2024-05-01", 2)]
    assert list(a.referrers.items()) == [("y.io", 2), ("x.io", 1)]
    assert list(a.browsers.items()) == [("Googlebot", 1), ("Firefox", 2)]
    assert [browser for _, _, browser, _, _ in a.recent] == [
        "Googlebot",
        "Firefox",
        "Firefox",
    ]


def test_merges_add_up_across_transactions(env: lmdb.Environment) -> None:
    _merge(env, [Click("a", MAY_1_MS + 10, "https://x.io/", FIREFOX)])
    _merge(env, [Click("a", MAY_1_MS, None, GOOGLEBOT)])

    stats = _stored(env, "a")
    assert (stats["total"], stats["human"], stats["bot"]) == (2, 1, 1)
    assert (stats["first_ts_ms"], stats["last_ts_ms"]) == (MAY_1_MS, MAY_1_MS + 10)
    assert stats["per_day"] == {"2024-05-01": 2}
    assert stats["referrers"] == {"x.io": 1, "direct": 1}
    assert stats["devices"] == {"desktop": 1, "bot": 1}


def test_recent_list_keeps_the_newest_first_and_is_bounded(
    env: lmdb.Environment,
) -> None:
    _merge(env, [Click("a", MAY_1_MS + i, None, FIREFOX) for i in range(4)], 3)
    _merge(env, [Click("a", MAY_1_MS + 10 + i, None, FIREFOX) for i in (1, 0)], 3)

    recent = _stored(env, "a")["recent"]
    assert [click[0] - MAY_1_MS for click in recent] == [11, 10, 3]
    assert list(recent[0]) == [MAY_1_MS + 11, "direct", "Firefox", "Linux", "desktop"]


def test_a_layout_1_value_is_rewritten_as_layout_2_with_the_new_counts(
    env: lmdb.Environment,
) -> None:
    old: dict[str, object] = {**empty_stats(), "version": 1, "total": 5, "human": 5}
    old["recent"] = [
        {
            "ts_ms": MAY_1_MS,
            "referrer": "x.io",
            "browser": "Safari",
            "os": "iOS",
            "device": "mobile",
        }
    ]
    db = env.open_db(STATS_DB)
    with env.begin(write=True, db=db) as txn:
        txn.put(b"a", orjson.dumps(old))

    _merge(env, [Click("a", MAY_1_MS + 1, None, FIREFOX)])

    with env.begin(db=db) as txn:
        value = txn.get(b"a")
    assert value is not None
    raw = orjson.loads(value)
    assert (raw["version"], raw["total"], raw["human"]) == (2, 6, 6)
    assert raw["recent"] == [
        [MAY_1_MS + 1, "direct", "Firefox", "Linux", "desktop"],
        [MAY_1_MS, "x.io", "Safari", "iOS", "mobile"],
    ]


def test_referrer_map_is_bounded_and_overflow_is_summed(
    env: lmdb.Environment,
) -> None:
    popular = [Click("a", MAY_1_MS, "https://top.io/", FIREFOX)] * 10
    many = [
        Click("a", MAY_1_MS, f"https://h{i}.io/", FIREFOX)
        for i in range(MAX_MAP_ENTRIES * 2)
    ]
    _merge(env, popular + many)
    _merge(env, [Click("a", MAY_1_MS, "https://new.io/", FIREFOX)])

    referrers = _stored(env, "a")["referrers"]
    assert len(referrers) == MAX_MAP_ENTRIES
    assert referrers["top.io"] == 10
    assert sum(referrers.values()) == 10 + MAX_MAP_ENTRIES * 2 + 1
    assert referrers[OTHER_KEY] > 0


def test_per_day_keeps_the_newest_days(env: lmdb.Environment) -> None:
    clicks = [Click("a", MAY_1_MS + i * DAY_MS, None, FIREFOX) for i in range(450)]
    _merge(env, clicks)

    per_day = _stored(env, "a")["per_day"]
    assert len(per_day) == MAX_DAYS
    assert min(per_day) == "2024-06-20"


def test_unreadable_stored_value_restarts_that_link(
    env: lmdb.Environment, caplog: pytest.LogCaptureFixture
) -> None:
    db = env.open_db(STATS_DB)
    with env.begin(write=True, db=db) as txn:
        txn.put(b"a", orjson.dumps({"version": 99}))

    _merge(env, [Click("a", MAY_1_MS, None, FIREFOX)])

    assert _stored(env, "a")["total"] == 1
    assert "starting them again from zero" in caplog.text


def test_nothing_is_written_when_the_transaction_aborts(
    env: lmdb.Environment,
) -> None:
    db = env.open_db(STATS_DB)
    with pytest.raises(RuntimeError), env.begin(write=True) as txn:
        merge_into(txn, db, aggregate([Click("a", MAY_1_MS, None, None)]).items(), 5)
        raise RuntimeError("crash before commit")

    with env.begin(db=db) as txn:
        assert txn.get(b"a") is None
