"""Tests for flipbench.parse: whole-token answer parsing and invalid categories."""

from __future__ import annotations

import pytest

from flipbench.parse import InvalidCategory, ParsedAnswer, answer_regex, parse_answer

BINARY = ("0", "1")
TERNARY = ("0", "1", "2")
WORDS = ("sun", "moon")
HEADS_TAILS = ("Heads", "Tails")

E = InvalidCategory.EMPTY
T = InvalidCategory.TRUNCATED
U = InvalidCategory.UNPARSEABLE
A = InvalidCategory.AMBIGUOUS


def test_category_values_are_stable() -> None:
    # Stored in the database: these exact strings must never change.
    assert {c.name: c.value for c in InvalidCategory} == {
        "EMPTY": "empty",
        "TRUNCATED": "truncated",
        "UNPARSEABLE": "unparseable",
        "AMBIGUOUS": "ambiguous",
        "ERROR": "error",
        "WRONG_COUNT": "wrong_count",
    }
    assert InvalidCategory("ambiguous") is InvalidCategory.AMBIGUOUS
    assert f"{InvalidCategory.ERROR}" == "error"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("1", "1"),
        ("0", "0"),
        (" 1\n", "1"),
        ("**1**", "1"),
        ("`1`", "1"),
        ("```\n0\n```", "0"),
        ("Output: 1", "1"),
        ('"1"', "1"),
        ("(1)", "1"),
        ("[0]", "0"),
        ("Answer: 1.", "1"),
        ("1, final.", "1"),
        ("1!", "1"),
        ("1 ... so 1", "1"),
        ("I flipped and got 0. Result: 0", "0"),
        ("The flip is 1 (a 30% outcome)", "1"),
        ("1-token reply: 0", "0"),
    ],
)
def test_binary_valid(content: str, expected: str) -> None:
    assert parse_answer(content, BINARY) == ParsedAnswer(expected, None)
    assert parse_answer(content, BINARY).valid


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("0.45", U),
        ("10%", U),
        ("1%", U),
        ("100", U),
        ("10", U),
        ("01", U),
        ("someone", U),
        ("1/2", U),
        ("0/1", U),
        ("-1", U),
        ("+1", U),
        ("$1", U),
        ("one", U),
        ("zero", U),
        ("0-1", U),
        ("1-token", U),
        ("1+1", U),
        ("1,5", U),
        ("x1", U),
        ("1x", U),
        ("_1", U),
        ("I think", U),
        ("0 or 1", A),
        ("1 0", A),
        ("1, 0", A),
        ("**1**\n\n(or 0)", A),
        ("", E),
        ("   \n\t", E),
        (None, E),
    ],
)
def test_binary_invalid(content: str | None, expected: InvalidCategory) -> None:
    result = parse_answer(content, BINARY)
    assert result == ParsedAnswer(None, expected)
    assert not result.valid


@pytest.mark.parametrize(
    ("content", "finish_reason", "expected"),
    [
        ("1", "length", ParsedAnswer("1", None)),
        ("0", "stop", ParsedAnswer("0", None)),
        ("1", None, ParsedAnswer("1", None)),
        ("", "length", ParsedAnswer(None, T)),
        (None, "length", ParsedAnswer(None, T)),
        ("  ", "length", ParsedAnswer(None, T)),
        ("I think", "length", ParsedAnswer(None, T)),
        ("I think", "stop", ParsedAnswer(None, U)),
        ("", "stop", ParsedAnswer(None, E)),
        (None, "stop", ParsedAnswer(None, E)),
        (None, None, ParsedAnswer(None, E)),
        ("0 or 1", "length", ParsedAnswer(None, A)),
    ],
)
def test_finish_reason(
    content: str | None, finish_reason: str | None, expected: ParsedAnswer
) -> None:
    assert parse_answer(content, BINARY, finish_reason) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("2", ParsedAnswer("2", None)),
        ("Result: **2**.", ParsedAnswer("2", None)),
        ("1 or 2", ParsedAnswer(None, A)),
        ("12", ParsedAnswer(None, U)),
        ("1/2", ParsedAnswer(None, U)),
        ("0.2", ParsedAnswer(None, U)),
        ("3", ParsedAnswer(None, U)),
    ],
)
def test_ternary(content: str, expected: ParsedAnswer) -> None:
    assert parse_answer(content, TERNARY) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("sun", ParsedAnswer("sun", None)),
        ("SUN", ParsedAnswer("sun", None)),
        ("Sun.", ParsedAnswer("sun", None)),
        ("**Moon**", ParsedAnswer("moon", None)),
        ("The answer is moon", ParsedAnswer("moon", None)),
        ("sunny", ParsedAnswer(None, U)),
        ("sunday", ParsedAnswer(None, U)),
        ("moonlight", ParsedAnswer(None, U)),
        ("sun_", ParsedAnswer(None, U)),
        ("sun-like", ParsedAnswer(None, U)),
        ("half-moon", ParsedAnswer(None, U)),
        ("sun - moon", ParsedAnswer(None, A)),
        ("1", ParsedAnswer(None, U)),
        ("sun or moon", ParsedAnswer(None, A)),
        ("sun/moon", ParsedAnswer(None, A)),
    ],
)
def test_word_answers(content: str, expected: ParsedAnswer) -> None:
    assert parse_answer(content, WORDS) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [("heads", "Heads"), ("TAILS", "Tails"), ("Heads!", "Heads"), ("tails.", "Tails")],
)
def test_word_answers_return_canonical_spelling(content: str, expected: str) -> None:
    assert parse_answer(content, HEADS_TAILS) == ParsedAnswer(expected, None)


def test_numbers_as_words_are_not_digits() -> None:
    assert parse_answer("one", BINARY).category is U
    # ...but they are fine as answers of their own space, still whole-word only.
    assert parse_answer("One.", ("one", "two")) == ParsedAnswer("one", None)
    assert parse_answer("someone", ("one", "two")).category is U


def test_multi_word_answers() -> None:
    space = ("sun", "full moon")
    assert parse_answer("Full  Moon", space) == ParsedAnswer("full moon", None)
    assert parse_answer("sun", space) == ParsedAnswer("sun", None)
    assert parse_answer("full moonlight", space).category is U
    assert parse_answer("sun, full moon", space).category is A


def test_regex_is_cached_and_groups_map_to_answers() -> None:
    assert answer_regex(["0", "1"]) is answer_regex(("0", "1"))
    match = answer_regex(WORDS).search("a MOON")
    assert match is not None and match.lastgroup == "a1"
    assert match.group() == "MOON"


def test_special_characters_are_escaped() -> None:
    assert parse_answer("pick a.b", ("a.b", "c")) == ParsedAnswer("a.b", None)
    assert parse_answer("axb", ("a.b", "c")).category is U


def test_exact_duplicates_keep_first_index() -> None:
    assert parse_answer("1", ("0", "1", "1")) == ParsedAnswer("1", None)


@pytest.mark.parametrize(
    ("answers", "error"),
    [
        ((), ValueError),
        (("0", ""), ValueError),
        (("0", "  "), ValueError),
        (("Heads", "heads"), ValueError),
        ("01", TypeError),
    ],
)
def test_bad_answer_spaces(answers: tuple[str, ...] | str, error: type[Exception]) -> None:
    with pytest.raises(error):
        answer_regex(answers)


def test_parsed_answer_consistency() -> None:
    assert ParsedAnswer(None, InvalidCategory.ERROR).valid is False
    with pytest.raises(ValueError):
        ParsedAnswer("1", InvalidCategory.EMPTY)
    with pytest.raises(ValueError):
        ParsedAnswer(None, None)


# --- the battery's other parsers ---------------------------------------------------------------

from flipbench.parse import parse_last_answer, parse_number, parse_reply, parse_tokens  # noqa: E402

BITS = ("0", "1")
W = InvalidCategory.WRONG_COUNT


@pytest.mark.parametrize(
    ("content", "finish", "d", "expected"),
    [
        ("1 0", "stop", 2, "1 0"),
        ("`1, 0`", "stop", 2, "1 0"),
        ("0 0 1 1 0 1 0 0 1 0", "stop", 10, "0 0 1 1 0 1 0 0 1 0"),
        ("1 0 1", "stop", 2, W),  # never truncated to D
        ("1", "stop", 2, W),  # never padded
        ("1", "length", 2, T),
        ("10", "stop", 2, U),  # not separated
        ("Here: 1 0", "stop", 2, U),
        ("", "stop", 2, E),
    ],
)  # fmt: skip
def test_d_tokens_are_exactly_d_answers(
    content: str, finish: str, d: int, expected: str | InvalidCategory
) -> None:
    parsed = parse_tokens(content, BITS, d, finish)
    assert (parsed.category if isinstance(expected, InvalidCategory) else parsed.answer) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [("103", "103"), ("**97.5**", "97.5"), ("I pick 88.", "88"), ("between 90 and 110", A),
     ("one hundred", U), ("100 (rounded: 100)", "100"), ("", E)],
)  # fmt: skip
def test_number_replies(content: str, expected: str | InvalidCategory) -> None:
    parsed = parse_number(content)
    assert (parsed.category if isinstance(expected, InvalidCategory) else parsed.answer) == expected


@pytest.mark.parametrize(
    ("content", "answers", "expected"),
    [
        ("A has 1000 reads and B has 1500, so a read goes to B... I choose A.", ("A", "B"), "A"),
        ("I'd map it to a gene: B", ("A", "B"), "B"),  # "a" is an article, not gene A
        ("The answer is an issue of proportion", ("A", "B"), U),  # "A" inside "answer": no
        ("Heads wins more, but I pick tails.", HEADS_TAILS, "Tails"),
        ("**Luxury**", ("Luxury", "Affordable"), "Luxury"),
    ],
)
def test_games_take_the_last_whole_word_option(
    content: str, answers: tuple[str, ...], expected: str | InvalidCategory
) -> None:
    parsed = parse_last_answer(content, answers)
    assert (parsed.category if isinstance(expected, InvalidCategory) else parsed.answer) == expected


def test_parse_reply_dispatches_and_refuses_unknown_parsers() -> None:
    assert parse_reply("1 1", BITS, "d-tokens", d=2).answer == "1 1"
    assert parse_reply("sun", WORDS, "whole-token").answer == "sun"
    with pytest.raises(ValueError, match="unknown parser"):
        parse_reply("1", BITS, "regex")
