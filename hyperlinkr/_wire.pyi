from collections.abc import Callable
from typing import Literal, TypeVar

_T = TypeVar("_T", bound=tuple[object, ...])

def scan_plain(
    data: bytes, start: int, code_max: int, cls: type[_T], /
) -> _T | Literal[True] | None: ...
def encode_click(
    code: str,
    ts_ms: int,
    referrer: str | None,
    user_agent: str | None,
    record_bytes: int,
    visitor: int | None,
    /,
) -> bytes | None: ...

class Tally:
    first_ts_ms: int
    last_ts_ms: int
    total: int
    @property
    def days(self) -> dict[int, int]: ...
    @property
    def referrers(self) -> dict[str | None, int]: ...
    @property
    def agents(self) -> dict[str | None, int]: ...
    @property
    def recent(self) -> list[tuple[int, str | None, str | None]]: ...
    @property
    def visitors(self) -> dict[int, set[int]]: ...
    def __init__(self, first_ts_ms: int, last_ts_ms: int) -> None: ...

def tally_clicks(
    records: list[bytes],
    start: int,
    tallies: dict[str, Tally],
    recent_held: int,
    cut: Callable[[list[tuple[int, str | None, str | None]], int], None],
    /,
) -> int: ...
