"""`flipbench.safety`: the one place that cleans what comes from the network or the environment.

Unit cases for each helper, then properties over arbitrary text (hypothesis): nothing printed
can hold an escape sequence or another control character, nothing stored a lone surrogate, no
CSV cell starts a formula, and a registered secret never survives, whatever surrounds it.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flipbench import safety
from flipbench.safety import (
    MASK,
    clean_json,
    clean_url,
    csv_cell,
    mask_secrets,
    register_secret,
    scrub,
    storable,
    terminal_safe,
)

# What a terminal must never receive: C0 controls (tab and newline excepted), DEL, C1 controls
# (ESC, CSI, OSC introducers), bidi overrides, and lone surrogates.
UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SECRET = "Zq9xK2mP7vR4tL8wQ1nB"

hostile_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None),  # any code point, surrogates included
        st.sampled_from(["\x1b", "\x9b", "\x07", "\r", "\n", "\t", "=", "+", "-", "@", "[", "]"]),
    ),
    max_size=80,
)


@pytest.fixture
def secret() -> Iterator[str]:
    register_secret(SECRET)
    yield SECRET
    safety._registered.discard(SECRET)


# --- terminal_safe / storable -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        (
            "\x1b]8;;http://evil\x07click\x1b]8;;\x07",
            "\\x1b]8;;http://evil\\x07click\\x1b]8;;\\x07",
        ),
        ("over\rwrite", "over\\rwrite"),
        ("c1 \x9b31m", "c1 \\x9b31m"),
        ("bidi \u202eevil", "bidi \\u202eevil"),
        ("lone \ud800", "lone \\ud800"),
        ("tab\tand\nnewline stay", "tab\tand\nnewline stay"),
        (
            "[/bold] [link=http://x]y[/link] stays text",
            "[/bold] [link=http://x]y[/link] stays text",
        ),
    ],
)
def test_terminal_safe_makes_controls_visible(text: str, shown: str) -> None:
    assert terminal_safe(text) == shown


def test_storable_keeps_carriage_returns_and_sqlite_takes_it() -> None:
    text = "a\ud800b\x00c\r\n"
    stored = storable(text)
    assert stored == "a\\ud800b\\x00c\r\n"
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE t (x TEXT)")
        db.execute("INSERT INTO t VALUES (?)", (stored,))
        assert db.execute("SELECT x FROM t").fetchone()[0] == stored


@settings(max_examples=300, deadline=None)
@given(hostile_text)
def test_terminal_safe_output_holds_no_control_character(text: str) -> None:
    shown = terminal_safe(text)
    assert not UNSAFE.search(shown)
    assert "\r" not in shown
    shown.encode("utf-8")  # printable on any UTF-8 terminal: no lone surrogate left


@settings(max_examples=300, deadline=None)
@given(hostile_text)
def test_storable_output_is_valid_utf8_without_controls(text: str) -> None:
    stored = storable(text)
    stored.encode("utf-8")  # SQLite's UTF-8 takes it
    assert not UNSAFE.search(stored.replace("\r", ""))  # carriage returns are kept when stored


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"])))
def test_plain_text_passes_unchanged(text: str) -> None:
    text = re.sub(r"[\u202a-\u202e\u2066-\u2069]", "", text)
    assert terminal_safe(text) == storable(text) == text


# --- scrub / mask_secrets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abcdef123456",
        "bad key sk-or-v1-0123456789abcdef",
        '{"api_key": "abcdef123456"}',
        "https://user:hunter22@example.com/v1",
        "?key=abcdef123456&x=1",
    ],
)
def test_known_credential_shapes_are_masked(text: str) -> None:
    masked = mask_secrets(text)
    assert MASK in masked
    for value in ("abcdef123456", "0123456789abcdef", "hunter22"):
        assert value not in masked


def test_a_registered_key_of_any_shape_is_masked(secret: str) -> None:
    assert mask_secrets(f"invalid credential {secret}!") == f"invalid credential {MASK}!"
    assert secret not in scrub(f"401: {secret}")


def test_scrub_is_one_printable_line_within_its_limit() -> None:
    line = scrub("first\nsecond\r\nthird\x1b[2J " + "x" * 500, 100)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert len(line) == 100 and line.endswith("…")
    assert line.startswith("first second third\\x1b[2J")


@settings(max_examples=200, deadline=None)
@given(hostile_text, hostile_text)
def test_a_registered_secret_never_survives_scrub(before: str, after: str) -> None:
    register_secret(SECRET)
    try:
        line = scrub(before + SECRET + after, None)
        assert SECRET not in line
        assert not UNSAFE.search(line)
        assert "\n" not in line and "\r" not in line
    finally:
        safety._registered.discard(SECRET)


# --- clean_url / clean_json -------------------------------------------------------------------


def test_clean_url_drops_user_and_password() -> None:
    assert clean_url("https://me:pa55word99@host.example:8443/v1?x=1") == (
        "https://host.example:8443/v1?x=1"
    )
    assert clean_url("http://[::1") == "http://[::1"  # unparseable: returned scrubbed, no raise


def test_clean_json_masks_and_escapes_keys_and_values(secret: str) -> None:
    value = {"k\x1b": [secret, {"nested": "\ud800"}], "n": 1.5, "b": None}
    cleaned = clean_json(value)
    assert cleaned == {"k\\x1b": [MASK, {"nested": "\\ud800"}], "n": 1.5, "b": None}
    json.dumps(cleaned, ensure_ascii=False).encode("utf-8")


# --- csv_cell ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\t=1+1", "'\t=1+1"),
        ("  =1+1", "'  =1+1"),
        ("\r=1", "\\r=1"),  # CR made visible: no longer a trigger, nor a line break
        ("esc \x1b[31m", "esc \\x1b[31m"),
        ("-3", "-3"),  # a plain number is not a formula: negative answers stay numbers
        ("+1.5e3", "+1.5e3"),
        ("-.5", "-.5"),
        ("-1-1", "'-1-1"),
        ("-inf", "'-inf"),
        ("p=45", "p=45"),
        ("1", "1"),
    ],
)
def test_csv_cell_neutralises_formulas(value: str, cell: str) -> None:
    assert csv_cell(value) == cell


@pytest.mark.parametrize("value", [None, 3, -3, 2.5, float("nan"), True])
def test_csv_cell_leaves_non_text_alone(value: object) -> None:
    assert csv_cell(value) is value


@settings(max_examples=300, deadline=None)
@given(hostile_text)
def test_no_csv_cell_can_start_a_formula(text: str) -> None:
    cell = csv_cell(text)
    assert isinstance(cell, str)
    assert not UNSAFE.search(cell)
    if cell.lstrip(" ").startswith(FORMULA_START):
        assert re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", cell), cell
