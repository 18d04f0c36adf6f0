"""Log output: plain lines for people, or one JSON object per line.

`configure_logging(level, fmt)` sets up the root logger of a process
(supervisors and children alike); `fmt` is HYPERLINKR_LOG_FORMAT.

    plain   2026-01-02 03:04:05,678 INFO hyperlinkr.supervisor[42]: ...
    json    {"ts":"2026-01-02T03:04:05.678Z","level":"INFO",
             "logger":"hyperlinkr.supervisor","process":42,
             "message":"web worker 0 started (pid 43)","role":"web","pid":43}

In json, the fields a call passes in `extra` become keys of the object
(one that would replace a field above is kept as "extra.<key>"), and a
traceback arrives as one string under "exc", so a log pipeline never has
to reassemble lines. Sanic's loggers go through the same
handler; its access log (HYPERLINKR_ACCESS_LOG, off by default) then
brings host, request, status and byte count as fields.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["FORMATS", "JsonFormatter", "configure_logging"]

FORMATS = ("plain", "json")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"

# Everything a LogRecord carries by itself; the rest came in `extra`.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the record's `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES:
                fields[f"extra.{key}" if key in fields else key] = value
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exc"] = record.exc_text
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(fields, default=str).decode()


def _iso(created_s: float) -> str:
    stamp = datetime.fromtimestamp(created_s, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def configure_logging(level: str, fmt: str = "plain") -> None:
    """Send every log record of this process to stderr, at `level`, as `fmt`."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(PLAIN_FORMAT)
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler], force=True)
