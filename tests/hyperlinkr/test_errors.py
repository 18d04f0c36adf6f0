"""The exception tree: one root, each class refining a builtin."""

from __future__ import annotations

import pickle

import pytest

from hyperlinkr.errors import (
    ConfigError,
    HyperlinkrError,
    InvalidCode,
    RecordError,
    StoreError,
    UrlRefused,
)


@pytest.mark.parametrize("cls", [ConfigError, UrlRefused, InvalidCode, RecordError])
def test_every_error_is_a_hyperlinkr_error_and_a_value_error(cls: type) -> None:
    assert issubclass(cls, HyperlinkrError)
    assert issubclass(cls, ValueError)


def test_url_refused_carries_rule_and_detail() -> None:
    exc = UrlRefused("scheme", "scheme 'ftp' is not allowed")
    assert exc.rule == "scheme"
    assert exc.detail == "scheme 'ftp' is not allowed"
    assert "scheme" in str(exc) and "ftp" in str(exc)


def test_invalid_code_carries_detail() -> None:
    exc = InvalidCode("alias 'x' is too short")
    assert exc.detail == "alias 'x' is too short"
    assert str(exc) == "alias 'x' is too short"


def test_errors_survive_pickling_across_processes() -> None:
    refused = pickle.loads(pickle.dumps(UrlRefused("length", "too long")))
    assert (refused.rule, refused.detail) == ("length", "too long")
    invalid = pickle.loads(pickle.dumps(InvalidCode("bad")))
    assert invalid.detail == "bad"


def test_store_error_is_an_os_error() -> None:
    assert issubclass(StoreError, HyperlinkrError)
    assert issubclass(StoreError, OSError)
