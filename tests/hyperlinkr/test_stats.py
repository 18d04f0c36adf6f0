from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb
import orjson
import pytest

from hyperlinkr.clicks import Click
from hyperlinkr.stats import (
    StatsFormatError,
    StatsReader,
    empty_stats,
    load_stats,
    public_view,
)
from hyperlinkr.storage import STATS_DB, open_environment, open_stats_environment
from workers.aggregates import aggregate
from workers.statsmerge import merge_into

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
# 2024-05-01T00:00:00Z
MAY_1_MS = 1_714_521_600_000
DAY_MS = 86_400_000


@pytest.fixture
def env(tmp_path: Path) -> Iterator[lmdb.Environment]:
    environment = open_environment(tmp_path / "lmdb", 64 * 1024 * 1024)
    yield environment
    environment.close()


def _record(env: lmdb.Environment, clicks: list[Click]) -> None:
    db = env.open_db(STATS_DB)
    with env.begin(write=True) as txn:
        merge_into(txn, db, aggregate(clicks).items(), 20)


def test_unclicked_code_has_zeros_and_empty_lists(env: lmdb.Environment) -> None:
    assert StatsReader(env).get("nobody") == {
        "code": "nobody",
        "clicks": {"total": 0, "human": 0, "bot": 0},
        "first_click_at": None,
        "last_click_at": None,
        "per_day": [],
        "referrers": [],
        "browsers": [],
        "operating_systems": [],
        "devices": [],
        "recent": [],
    }


def test_public_view_of_recorded_clicks(env: lmdb.Environment) -> None:
    _record(
        env,
        [
            Click("a", MAY_1_MS + DAY_MS + 250, "https://x.io/p", IPHONE),
            Click("a", MAY_1_MS, None, "curl/8.5.0"),
        ],
    )

    view = StatsReader(env).get("a")

    assert view["clicks"] == {"total": 2, "human": 1, "bot": 1}
    assert view["first_click_at"] == "2024-05-01T00:00:00.000Z"
    assert view["last_click_at"] == "2024-05-02T00:00:00.250Z"
    assert view["per_day"] == [
        {"date": "2024-05-01", "clicks": 1},
        {"date": "2024-05-02", "clicks": 1},
    ]
    assert view["devices"] == [
        {"name": "bot", "clicks": 1},
        {"name": "mobile", "clicks": 1},
    ]
    assert view["recent"][0] == {
        "at": "2024-05-02T00:00:00.250Z",
        "referrer": "x.io",
        "browser": "Mobile Safari",
        "os": "iOS",
        "device": "mobile",
    }
    assert len(view["recent"]) == 2


def test_top_lists_are_ten_largest_descending(env: lmdb.Environment) -> None:
    clicks = [
        Click("a", MAY_1_MS, f"https://h{i:02}.io/", IPHONE)
        for i in range(15)
        for _ in range(i + 1)
    ]
    _record(env, clicks)

    referrers = StatsReader(env).get("a")["referrers"]

    assert [entry["host"] for entry in referrers] == [
        f"h{i:02}.io" for i in range(14, 4, -1)
    ]
    assert referrers[0]["clicks"] == 15


def test_view_is_plain_json(env: lmdb.Environment) -> None:
    _record(env, [Click("a", MAY_1_MS, None, IPHONE)])

    body = orjson.dumps(StatsReader(env).get("a"))

    assert orjson.loads(body)["code"] == "a"


def test_a_layout_1_value_shows_the_same_as_its_layout_2_rewrite(
    env: lmdb.Environment,
) -> None:
    _record(
        env,
        [
            Click("a", MAY_1_MS + 250, "https://x.io/p", IPHONE),
            Click("a", MAY_1_MS, None, "curl/8.5.0"),
        ],
    )
    current = StatsReader(env).stored("a")
    fields = ("ts_ms", "referrer", "browser", "os", "device")
    layout_1 = dict(current, version=1)
    layout_1["recent"] = [
        dict(zip(fields, row, strict=True)) for row in current["recent"]
    ]

    read = load_stats(orjson.dumps(layout_1))

    assert read["version"] == current["version"] == 2
    assert orjson.dumps(read) == orjson.dumps(current)
    assert public_view("a", read) == StatsReader(env).get("a")


_GOOD: dict[str, object] = {
    "total": 0,
    "human": 0,
    "bot": 0,
    "first_ts_ms": None,
    "last_ts_ms": None,
    "per_day": {},
    "referrers": {},
    "browsers": {},
    "operating_systems": {},
    "devices": {},
}


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"version": 2}',
        b'{"version": 1}',
        orjson.dumps(_GOOD | {"version": 3, "recent": []}),
        orjson.dumps(_GOOD | {"version": 2, "recent": {}}),
        orjson.dumps(_GOOD | {"version": 1, "recent": [1]}),
        orjson.dumps(_GOOD | {"version": 1, "recent": [{"ts_ms": 1}]}),
    ],
)
def test_unreadable_stored_value_raises_stats_format_error(raw: bytes) -> None:
    with pytest.raises(StatsFormatError):
        load_stats(raw)


def test_a_reader_before_the_actor_sees_no_stats_and_creates_nothing(
    tmp_path: Path,
) -> None:
    reader_env = open_stats_environment(tmp_path, 64 * 1024 * 1024)
    reader = StatsReader(reader_env)

    assert reader.stored("a") == empty_stats()
    with reader_env.begin() as txn:
        assert list(txn.cursor()) == []  # no database was made by the reader
    reader_env.close()

    writer_env = open_stats_environment(tmp_path, 64 * 1024 * 1024, writer=True)
    _record(writer_env, [Click("a", MAY_1_MS, None, IPHONE)])
    writer_env.close()
    reader_env = open_stats_environment(tmp_path, 64 * 1024 * 1024)
    assert StatsReader(reader_env).stored("a")["total"] == 1
    reader_env.close()
