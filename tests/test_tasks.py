"""The single-flip definition resolves into exactly the prompts and grids of docs/experiments.md."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from flipbench.errors import FlipbenchError
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import format_percent, parse_percent

SPEC_PROMPT_30 = (
    'I\'d like you to flip a biased coin that returns "1" 30% of the time and "0" 70% of the '
    "time. Please return a 1 token response simulating a single flip."
)


@pytest.mark.parametrize(
    ("text", "printed"),
    [("45", "45"), ("45.0", "45"), ("49.5", "49.5"), ("49.999999", "49.999999"), ("100", "100"),
     ("0", "0"), ("0.000", "0"), ("1e1", "10"), ("50.000001", "50.000001")],
)  # fmt: skip
def test_format_percent_prints_shortest_exact_decimal(text: str, printed: str) -> None:
    assert format_percent(Decimal(text)) == printed


def test_default_grid_prompt_matches_spec_exactly() -> None:
    resolved = get_experiment("single-flip").resolve()
    conditions = resolved.conditions()
    assert [c.p_percent for c in conditions] == [str(p) for p in range(0, 101, 5)]
    by_key = {c.key: c for c in conditions}
    assert by_key["p=30"].messages == ({"role": "user", "content": SPEC_PROMPT_30},)
    assert by_key["p=30"].p == pytest.approx(0.30)
    assert resolved.n == 100 and resolved.temperature == 1.0
    assert resolved.answers == ("0", "1") and resolved.first == "1"


def test_complement_is_exact_for_logzoom_values() -> None:
    resolved = get_experiment("single-flip").resolve(grid="logzoom")
    texts = {c.p_percent: c.messages[-1]["content"] for c in resolved.conditions()}
    assert len(texts) == 20
    assert '"1" 49.999999% of the time and "0" 50.000001% of the time' in texts["49.999999"]
    assert '"1" 50.3% of the time and "0" 49.7% of the time' in texts["50.3"]


def test_named_grids_have_the_spec_sizes() -> None:
    exp = get_experiment("single-flip")
    sizes = {name: len(exp.resolve(grid=name).p_values) for name in exp.grids}
    assert sizes == {"default": 21, "fine": 31, "zoom": 5, "logzoom": 20, "t2": 7}


def test_overrides_change_the_hash_and_are_recorded() -> None:
    exp = get_experiment("single-flip")
    base = exp.resolve()
    assert base.definition_hash() == exp.resolve().definition_hash()
    other = exp.resolve(temperature=2.0, system_prompt="You are a fair coin.", n=50)
    assert other.definition_hash() != base.definition_hash()
    assert other.conditions()[0].messages[0] == {
        "role": "system",
        "content": "You are a fair coin.",
    }
    custom = exp.resolve(p_values=["10", "49.5", "10"], prompt="p={p} q={q}")
    assert custom.grid == "custom" and custom.p_values == ("10", "49.5")
    assert custom.conditions()[1].messages[-1]["content"] == "p=49.5 q=50.5"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": "nope"}, "unknown grid"),
        ({"n": 0}, "N must be"),
        ({"n": -5}, "N must be"),
        ({"p_values": ["101"]}, "outside [0, 100]"),
        ({"p_values": ["-0.5"]}, "outside [0, 100]"),
        ({"p_values": ["abc"]}, "not a number"),
        ({"p_values": ["nan"]}, "not a finite"),
        ({"p_values": []}, "no p values"),
        ({"temperature": -1.0}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"prompt": "flip {x}"}, "prompt template"),
        ({"grid": "zoom", "p_values": ["5"]}, "either"),
    ],
)
def test_bad_overrides_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(FlipbenchError, match=message.replace("[", r"\[")):
        get_experiment("single-flip").resolve(**kwargs)  # type: ignore[arg-type]


def test_unknown_experiment_names_the_known_ones() -> None:
    with pytest.raises(FlipbenchError, match="single-flip"):
        get_experiment("triple-flip")


def test_parse_percent_keeps_decimals_exact() -> None:
    assert Decimal(100) - parse_percent("49.999999") == Decimal("50.000001")


# --- the rest of the battery -------------------------------------------------------------------


def _prompt(name: str, key: str, **kwargs: object) -> str:
    conditions = get_experiment(name).resolve(**kwargs).conditions()  # type: ignore[arg-type]
    return {c.key: c.messages[-1]["content"] for c in conditions}[key]


def test_every_experiment_prints_the_spec_prompts() -> None:
    assert _prompt("d-flips", "p=30", d=10) == (
        'I\'d like you to flip a biased coin that returns "1" 30% of the time and "0" 70% of the '
        "time. Please return a 10 token response simulating 10 flips. Please return exactly 10 "
        "tokens (0 or 1) separated by a single space."
    )
    assert _prompt("ternary", "q=20") == (
        'I\'d like you to draw from a biased deck that returns "2" 20% of the time, "1" 40% of '
        'the time and "0" 40% of the time. Please return a 1 token response simulating a single '
        "draw."
    )
    assert _prompt("word-bias", "sun/moon:reverse") == (
        'I\'d like you to flip a biased coin that returns "moon" 50% of the time and "sun" 50% '
        "of the time. Please return a 1 token response simulating a single flip."
    )
    pennies = _prompt("matching-pennies", "hh=1.50")
    assert "you win $1.50 and your opponent loses $1.50" in pennies
    assert "you lose $1.00, and your opponent wins $1.00. What is your choice?" in pennies
    business = _prompt("business", "affordable=6.7M")
    assert "your payoff is $10M. If you choose Affordable" in business
    assert "then your payoff is $6.7M. If the incumbent" in business
    assert "So far, 1000 reads have been uniquely mapped to gene A, and 1500 reads" in _prompt(
        "bioinformatics", "b=1500"
    )
    assert get_experiment("chained-flips").resolve().followup == "Please do it one more time."


def test_battery_grids_targets_and_coordinates() -> None:
    sizes = {
        name: len(get_experiment(name).resolve().conditions())
        for name in ("d-flips", "chained-flips", "ternary", "gaussian", "word-bias",
                     "bioinformatics", "matching-pennies", "business")
    }  # fmt: skip
    assert sizes == {"d-flips": 21, "chained-flips": 21, "ternary": 7, "gaussian": 1,
                     "word-bias": 22, "bioinformatics": 10, "matching-pennies": 7,
                     "business": 7}  # fmt: skip
    ternary = {c.key: c for c in get_experiment("ternary").resolve().conditions()}
    assert ternary["q=20"].target == {"2": 0.2, "1": 0.4, "0": 0.4}
    bio = [round(c.x, 4) for c in get_experiment("bioinformatics").resolve().conditions()]
    assert bio == [0.0100, 0.4, 0.45, 0.4801, 0.49, 0.4950, 0.5, 0.5099, 0.5999, 0.9901]
    words = {c.key: c for c in get_experiment("word-bias").resolve().conditions()}
    assert words["37/50:reverse"].answers == ("50", "37") and words["37/50:reverse"].first == "50"
    assert get_experiment("d-flips").resolve(d=50).max_tokens == 116  # 2·D + 16
    assert get_experiment("d-flips").resolve(grid="fig3").p_values == ("15", "45")


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("ternary", {"p_values": ["70"]}, "use 0 ≤ q ≤ 60"),
        ("single-flip", {"d": 3}, "has no D"),
        ("d-flips", {"d": 0}, "D must be between"),
        ("business", {"p_values": ["50"]}, "fixed conditions"),
        ("word-bias", {"prompt": "flip {x}"}, "use only {p}, {q}, {w1}, {w2}"),
    ],
)
def test_battery_overrides_are_validated(
    name: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(FlipbenchError, match=re.escape(message)):
        get_experiment(name).resolve(**kwargs)  # type: ignore[arg-type]


# --- bounds and prompt templates ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 10**18}, "N must be at most 1,000,000"),
        ({"n": 10**400}, "N must be at most 1,000,000 samples, got 100000000000…(401 digits)"),
        ({"n": -(10**400)}, "N must be a positive number"),
        ({"temperature": float("nan")}, "temperature must be a finite number"),
        ({"temperature": 1e9}, "temperature must be a finite number in [0, 100]"),
        ({"max_tokens": 10**400}, "max_tokens must be between 1 and 1,000,000"),
    ],
)
def test_integers_and_floats_are_bounded(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(FlipbenchError, match=re.escape(message)):
        get_experiment("single-flip").resolve(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(FlipbenchError, match="D must be between 1 and 1000"):
        get_experiment("d-flips").resolve(d=10**400)


@pytest.mark.parametrize(
    "template",
    [
        "{p.__class__.__mro__}",  # attribute access
        "{p.__init__.__globals__}",
        "{p[0]}",  # index access
        "{}",  # positional
        "{0}",
        "{p!r}",  # conversion
        "{p:>999999999}",  # format spec (a memory bomb)
        "{p:{q}}",  # nested field in a spec
        "{x}",  # unknown name
        "{P}",  # names are case-sensitive
        "flip {p",  # unbalanced
        "flip p}",
    ],
)
def test_prompt_templates_accept_only_the_documented_fields(template: str) -> None:
    with pytest.raises(FlipbenchError, match=re.escape("use only {p}, {q}")):
        get_experiment("single-flip").resolve(prompt=template)


@pytest.mark.parametrize(
    ("name", "template", "fields"),
    [
        ("single-flip", "{p} then {q}", "{p}, {q}"),
        ("d-flips", "{D} flips at {p}/{q}", "{D}, {p}, {q}"),
        ("ternary", "{q} and {r}", "{q}, {r}"),
        ("word-bias", "{w1} {p} {w2} {q}", "{p}, {q}, {w1}, {w2}"),
        ("bioinformatics", "{a} vs {b}", "{a}, {b}"),
        ("matching-pennies", "{hh} {tt} {ht} {th}", "{hh}, {ht}, {th}, {tt}"),
        ("business", "{luxury_win} {affordable_win}", "{affordable_win}, {luxury_win}"),
    ],
)
def test_each_experiment_takes_its_own_fields(name: str, template: str, fields: str) -> None:
    resolved = get_experiment(name).resolve(prompt=template)
    assert "{" not in resolved.conditions()[0].messages[-1]["content"]
    with pytest.raises(FlipbenchError, match=re.escape(f"use only {fields}")):
        get_experiment(name).resolve(prompt=template + " {nope}")


def test_literal_braces_and_the_field_free_gaussian_prompt() -> None:
    resolved = get_experiment("single-flip").resolve(prompt='{{"p": {p}}}')
    assert resolved.conditions()[0].messages[-1]["content"] == '{"p": 0}'
    assert get_experiment("gaussian").resolve(prompt="N(100, 15) {{x}}").conditions()
    with pytest.raises(FlipbenchError, match="takes no fields"):
        get_experiment("gaussian").resolve(prompt="draw {p}")


def test_a_stored_template_is_checked_again_when_its_prompts_are_rebuilt() -> None:
    """A journal holding a hostile template (written by something else) cannot reach into
    Python objects when `show` rebuilds its conditions."""
    resolved = get_experiment("single-flip").resolve()
    hostile = resolved.model_copy(update={"prompt": "{p.__class__.__mro__}"})
    with pytest.raises(FlipbenchError, match="not allowed"):
        hostile.conditions()
