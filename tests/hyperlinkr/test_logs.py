"""The plain and JSON log formats."""

from __future__ import annotations

import json
import logging
import os
import sys

import pytest

from hyperlinkr.config import Settings
from hyperlinkr.errors import ConfigError
from hyperlinkr.logs import PLAIN_FORMAT, JsonFormatter, configure_logging


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(
        "hyperlinkr.test", logging.WARNING, __file__, 1, message, args, None
    )
    made.__dict__.update(extra)
    return made


def test_json_has_the_fields_and_the_extra_of_a_record() -> None:
    line = JsonFormatter().format(
        record("%s exited with %d", "web worker 0", 137, role="web", pid=99)
    )
    fields = json.loads(line)
    assert fields["message"] == "web worker 0 exited with 137"
    assert fields["level"] == "WARNING"
    assert fields["logger"] == "hyperlinkr.test"
    assert fields["ts"].endswith("Z") and "T" in fields["ts"]
    assert fields["role"] == "web"
    assert fields["pid"] == 99
    assert fields["process"] == os.getpid()


def test_an_extra_field_never_replaces_a_core_one() -> None:
    fields = json.loads(JsonFormatter().format(record("x", level="high")))
    assert fields["level"] == "WARNING"
    assert fields["extra.level"] == "high"


def test_json_keeps_a_traceback_in_one_field() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        failed = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    fields = json.loads(JsonFormatter().format(failed))
    assert fields["exc"].startswith("Traceback")
    assert "ValueError: bad" in fields["exc"]


def test_values_json_cannot_hold_are_written_as_text() -> None:
    fields = json.loads(JsonFormatter().format(record("x", path=object)))
    assert fields["path"] == "<class 'object'>"


def test_configure_logging_installs_one_handler_in_the_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", "json")
        configure_logging("INFO", "json")
        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        configure_logging("DEBUG", "plain")
        formatter = root.handlers[0].formatter
        assert formatter is not None and formatter._fmt == PLAIN_FORMAT
        assert root.level == logging.DEBUG
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one of plain, json"):
        configure_logging("INFO", "xml")


def test_the_log_format_setting_is_validated() -> None:
    assert Settings.from_env({}).log_format == "plain"
    assert Settings.from_env({"HYPERLINKR_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="HYPERLINKR_LOG_FORMAT='xml'"):
        Settings.from_env({"HYPERLINKR_LOG_FORMAT": "xml"})
