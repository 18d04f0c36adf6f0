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
def read_clicks(
    records: list[bytes], /
) -> list[tuple[str, int, str | None, str | None, int | None] | None]: ...
