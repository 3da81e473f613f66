"""Tests for flipbench.parse: whole-token answer parsing and invalid categories."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flipbench.parse import InvalidCategory, ParsedAnswer, answer_regex, parse_answer, unwrap

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


# --- markdown and LaTeX wrappers ------------------------------------------------------------

WRAPPERS = ("**{}**", "*{}*", "__{}__", "_{}_", "`{}`", "``{}``", "$${}$$", "${}$", "**_{}_**",
            "`${}$`", "_**{}**_")  # fmt: skip


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize(
    "template", ["{}", "{}.", "Answer: {}", "The flip is {}!", "Result:\n\n{}\n", "({})"]
)
def test_wrapped_answers_parse_like_bare_ones(wrapper: str, template: str) -> None:
    content = template.format(wrapper.format("1"))
    assert parse_answer(content, BINARY).answer == "1", content
    assert parse_answer(template.format(wrapper.format("moon")), WORDS).answer == "moon"
    assert parse_last_answer(f"A or B? I choose {wrapper.format('B')}", ("A", "B")).answer == "B"
    assert parse_number(template.format(wrapper.format("103"))).answer == "103"
    assert parse_tokens(wrapper.format("1") + " " + wrapper.format("0"), BITS, 2).answer == "1 0"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("$1", U),  # a price, not an answer (chosen: a lone $ before a digit stays currency)
        ("costs $1 or $0", U),
        ("snake_1_case", U),  # underscores inside a word are not emphasis
        ("x_1_", U),
        ("_1_0", U),  # the closing _ is glued to a digit
        ("$1$2", U),
        ("__1_", U),  # unbalanced delimiters
        ("_ 1_ or _0 _", U),  # a space inside the delimiters: no emphasis, "1_" stays glued
        ("$p = 0.3$, so $1$", "1"),  # the math span holds no whole-token answer
        ("_0_ or _1_", A),
        ("\\_1\\_", "1"),  # markdown-escaped underscores
    ],
)  # fmt: skip
def test_wrappers_do_not_invent_answers(content: str, expected: str | InvalidCategory) -> None:
    parsed = parse_answer(content, BINARY)
    assert (parsed.category if isinstance(expected, InvalidCategory) else parsed.answer) == expected


def test_unwrap_leaves_text_without_underscore_or_dollar_untouched() -> None:
    assert unwrap("**1** and `0`") == "**1** and `0`"
    assert unwrap("_1_ $0$ __x__") == " 1   0   x "


# --- properties over untrusted replies --------------------------------------------------------

ANSWER_SPACES = (BINARY, TERNARY, WORDS, HEADS_TAILS, ("Luxury", "Affordable"), ("A", "B"))
reply_text = st.lists(
    st.one_of(
        st.characters(codec=None),  # any code point, lone surrogates included
        st.sampled_from(list("01AB_$*`-+.,/%\n ")),
        st.sampled_from(["sun", "moon", "Heads", "Tails", "**", "__", "$$", "0.5", "1/2"]),
    ),
    max_size=80,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(
    reply_text,
    st.sampled_from(ANSWER_SPACES),
    st.sampled_from([None, "stop", "length"]),
    st.integers(min_value=1, max_value=5),
)
def test_no_reply_makes_a_parser_raise(
    content: str, answers: tuple[str, ...], finish: str | None, d: int
) -> None:
    for parser in ("whole-token", "d-tokens", "number", "last-option"):
        parsed = parse_reply(content, answers, parser, d=d, finish_reason=finish)
        assert parsed.valid == (parsed.answer is not None)
        if parsed.valid and parser in ("whole-token", "last-option"):
            assert parsed.answer in answers
        if parsed.valid and parser == "d-tokens":
            assert parsed.answer is not None
            tokens = parsed.answer.split(" ")
            assert len(tokens) == d and set(tokens) <= set(answers)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(ANSWER_SPACES).flatmap(lambda space: st.tuples(st.just(space),
                                                                  st.sampled_from(space))),
    st.sampled_from(WRAPPERS),
    st.sampled_from(["{}", "{}.", "Answer: {}", "I flip: {}\n", "> {}", "Final answer - {}"]),
)  # fmt: skip
def test_any_wrapper_around_any_answer_reads_as_that_answer(
    space_answer: tuple[tuple[str, ...], str], wrapper: str, template: str
) -> None:
    answers, answer = space_answer
    content = template.format(wrapper.format(answer))
    assert parse_answer(content, answers).answer == answer
    assert parse_last_answer(content, answers).answer == answer


@settings(max_examples=300, deadline=None)
@given(reply_text, st.sampled_from(WRAPPERS))
def test_wrapping_a_reply_never_turns_an_invalid_one_into_another_answer(
    content: str, wrapper: str
) -> None:
    """Wrapping the whole reply changes nothing about which answers it names: a valid reply
    stays that answer or becomes ambiguous/unparseable, never a different answer."""
    bare = parse_answer(content, BINARY)
    wrapped = parse_answer(wrapper.format(content), BINARY)
    if bare.valid and wrapped.valid:
        assert wrapped.answer == bare.answer
