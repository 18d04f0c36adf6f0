"""Short codes: randomness, alias rules and the redirect-path sieve."""

from __future__ import annotations

import collections

import pytest

from hyperlinkr.codes import (
    BASE62,
    RESERVED,
    check_alias,
    could_be_code,
    new_code,
)
from hyperlinkr.errors import InvalidCode


def test_base62_has_62_distinct_ascii_alphanumerics() -> None:
    assert len(BASE62) == len(set(BASE62)) == 62
    assert BASE62.isascii() and BASE62.isalnum()


@pytest.mark.parametrize("length", [1, 5, 7, 16, 32])
def test_new_code_has_the_requested_length_and_alphabet(length: int) -> None:
    code = new_code(length)
    assert len(code) == length
    assert set(code) <= set(BASE62)
    assert could_be_code(code)


@pytest.mark.parametrize("length", [0, -1, 33])
def test_new_code_refuses_impossible_lengths(length: int) -> None:
    with pytest.raises(ValueError, match=r"expected 1\.\.32"):
        new_code(length)


def test_new_codes_do_not_repeat() -> None:
    codes = {new_code(7) for _ in range(10_000)}
    assert len(codes) == 10_000


def test_new_code_characters_are_roughly_uniform() -> None:
    """Every symbol appears near its expected share: no modulo bias."""
    counts = collections.Counter("".join(new_code(32) for _ in range(4000)))
    expected = 4000 * 32 / 62
    assert set(counts) == set(BASE62)
    assert all(0.8 * expected < n < 1.2 * expected for n in counts.values())


@pytest.mark.parametrize("alias", ["abc", "my-link", "A_b-9", "x" * 32, "Docs2"])
def test_valid_aliases_are_returned_unchanged(alias: str) -> None:
    assert check_alias(alias) == alias


@pytest.mark.parametrize(
    "alias",
    [
        None,
        123,
        b"abc",
        "ab",
        "x" * 33,
        "has space",
        "slash/es",
        "dot.ted",
        "ümlaut",
        "emoji\U0001f600",
        "\u0661\u0662\u0663",
        "stats",
        "STATS",
        "Shorten",
        "openapi.json",
        "robots.txt",
        ".well-known",
        "api",
    ],
)
def test_invalid_or_reserved_aliases_are_refused(alias: object) -> None:
    with pytest.raises(InvalidCode) as caught:
        check_alias(alias)
    assert caught.value.detail


def test_every_reserved_word_is_refused_in_any_case() -> None:
    for word in RESERVED:
        for variant in (word, word.upper(), word.title()):
            with pytest.raises(InvalidCode):
                check_alias(variant)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", True),
        ("aZ09_-", True),
        ("x" * 32, True),
        ("", False),
        ("x" * 33, False),
        ("a.b", False),
        ("a/b", False),
        ("a b", False),
        ("ab\n", False),
        ("ünï", False),
        ("\u0661", False),
        ("favicon.ico", False),
    ],
)
def test_could_be_code_accepts_only_the_code_shape(text: str, expected: bool) -> None:
    assert could_be_code(text) is expected
