"""Trial protocols as data: what each renders into a condition, and the hashes they keep."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from flipbench.errors import FlipbenchError
from flipbench.providers.base import Backend
from flipbench.providers.local import LocalBackend
from flipbench.providers.openai_api import OpenAICompatibleBackend, OpenRouterBackend
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import ExperimentDefinition, ResolvedExperiment
from flipbench.tasks.protocols import (
    AssistantPrefill,
    ChainedTurns,
    HistoryTurns,
    RawText,
    SingleTurn,
    Turn,
)

# Every definition that existed before protocols, hashed before they were added: the hashes
# recorded with their runs (and compared on resume) must never change.
PINNED_HASHES = {
    ("single-flip", "default"): "9959d424855ee1fe",
    ("single-flip", "fine"): "e4adfc47f30834cd",
    ("single-flip", "zoom"): "895efd5eee5dc01d",
    ("single-flip", "logzoom"): "8a4ade6ebac69f22",
    ("single-flip", "t2"): "1a90ac8b7985873d",
    ("d-flips", "default"): "bff6e95275cd2f94",
    ("d-flips", "fig3"): "e0c36dfaa0c4e51d",
    ("chained-flips", "default"): "ae96b9bbfb1841d7",
    ("ternary", "default"): "9c50cdbada9af19e",
    ("ternary", "paper"): "a73f2d77d08a4630",
    ("gaussian", "default"): "e454993e816b84fb",
    ("word-bias", "default"): "ab1531f950f11326",
    ("word-bias", "p49"): "10037ce6a9f1e553",
    ("bioinformatics", "default"): "e31b303582f2ce81",
    ("matching-pennies", "default"): "a170d6dc2e7fcb1e",
    ("business", "default"): "25e10db16fd75804",
}
PROMPT_30 = (
    'I\'d like you to flip a biased coin that returns "1" 30% of the time and "0" 70% of the '
    "time. Please return a 1 token response simulating a single flip."
)


@pytest.mark.parametrize(("name", "grid"), sorted(PINNED_HASHES))
def test_the_hash_of_every_existing_definition_is_unchanged(name: str, grid: str) -> None:
    resolved = get_experiment(name).resolve(grid=grid)
    assert resolved.definition_hash() == PINNED_HASHES[name, grid]
    # as journaled now, and as journaled before protocols (`followup`, no `protocol`)
    stored = resolved.model_dump(mode="json")
    assert ResolvedExperiment(**stored).definition_hash() == PINNED_HASHES[name, grid]
    legacy = {k: v for k, v in stored.items() if k != "protocol"}
    legacy["followup"] = resolved.followup
    reread = ResolvedExperiment(**legacy)
    assert reread.definition_hash() == PINNED_HASHES[name, grid]
    assert reread.protocol == resolved.protocol


def test_followup_is_the_chained_protocol_old_and_new() -> None:
    chained = get_experiment("chained-flips")
    assert chained.protocol == ChainedTurns(followups=("Please do it one more time.",))
    resolved = chained.resolve()
    assert resolved.followup == "Please do it one more time."
    assert get_experiment("single-flip").resolve().protocol == SingleTurn()
    assert get_experiment("single-flip").resolve().followup is None


def _flip(protocol: Any = None, **changes: Any) -> ExperimentDefinition:
    """single-flip with another protocol (validated, as a new definition would be)."""
    data = get_experiment("single-flip").model_dump(exclude={"protocol", "followup"})
    if protocol is not None:
        data["protocol"] = protocol
    return ExperimentDefinition.model_validate({**data, **changes})


HISTORY = HistoryTurns(
    turns=(
        Turn(role="user", content="Flip a coin that shows 1 {p}% of the time."),
        Turn(role="assistant", content="1"),
    )
)
PROTOCOLS = {
    "chained-2": ChainedTurns(followups=("Again.", "Once more at {p}%.")),
    "history": HISTORY,
    "prefill": AssistantPrefill(prefill="My flip:"),
    "prefill-history": AssistantPrefill(prefill="My flip:", turns=HISTORY.turns),
    "raw": RawText(),
}


def test_new_protocols_enter_the_hash_and_only_they() -> None:
    base = _flip().resolve(grid="zoom").definition_hash()
    assert base == PINNED_HASHES["single-flip", "zoom"]
    hashes = {}
    for name, protocol in PROTOCOLS.items():
        d = 3 if name == "chained-2" else 1
        exact = name != "chained-2"
        resolved = _flip(protocol, d=d, exact=exact).resolve(grid="zoom")
        hashes[name] = resolved.definition_hash()
        assert ResolvedExperiment(**resolved.model_dump(mode="json")) == resolved
    assert len(set(hashes.values())) == len(hashes) and base not in hashes.values()
    other = _flip(AssistantPrefill(prefill="My flip is")).resolve(grid="zoom")
    assert other.definition_hash() != hashes["prefill"]


def test_single_and_chained_render_the_prompt_and_the_followups() -> None:
    single = _flip().resolve(p_values=["30"], system_prompt="Be a coin.").conditions()[0]
    assert single.messages == (
        {"role": "system", "content": "Be a coin."},
        {"role": "user", "content": PROMPT_30},
    )
    assert (single.followups, single.prefill, single.raw_prompt) == ((), None, None)
    chained = _flip(PROTOCOLS["chained-2"], d=3, exact=False).resolve(p_values=["30"])
    cond = chained.conditions()[0]
    assert cond.messages == ({"role": "user", "content": PROMPT_30},)
    assert cond.followups == ("Again.", "Once more at 30%.")


def test_history_goes_between_the_system_prompt_and_the_prompt() -> None:
    resolved = _flip(HISTORY).resolve(p_values=["30"], system_prompt="Be a coin.")
    assert resolved.conditions()[0].messages == (
        {"role": "system", "content": "Be a coin."},
        {"role": "user", "content": "Flip a coin that shows 1 30% of the time."},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": PROMPT_30},
    )


def test_a_prefill_is_the_last_message_a_partial_assistant_reply() -> None:
    protocol = AssistantPrefill(prefill="At {p}% my flip is", turns=HISTORY.turns)
    cond = _flip(protocol).resolve(p_values=["30"]).conditions()[0]
    assert cond.messages[-1] == {"role": "assistant", "content": "At 30% my flip is"}
    assert cond.messages[-2] == {"role": "user", "content": PROMPT_30}
    assert cond.messages[0]["content"] == "Flip a coin that shows 1 30% of the time."
    assert cond.prefill == "At 30% my flip is" and cond.raw_prompt is None


def test_a_raw_prompt_is_the_filled_text_verbatim() -> None:
    text = "Coin flips (1 = heads, {p}% heads):\n1 0 1 1"
    cond = _flip(RawText(), prompt=text).resolve(p_values=["30"]).conditions()[0]
    # nothing added, no BOS, no chat template: the backend adds the model's one BOS
    assert cond.raw_prompt == "Coin flips (1 = heads, 30% heads):\n1 0 1 1"
    assert cond.messages == () and cond.prefill is None
    overridden = _flip(RawText()).resolve(p_values=["30"], prompt="p={p} q={q} ->")
    assert overridden.conditions()[0].raw_prompt == "p=30 q=70 ->"


@pytest.mark.parametrize(
    ("protocol", "kwargs", "message"),
    [
        (RawText(), {"system_prompt": "Be a coin."}, "no system prompt"),
        (RawText(), {"prompt": "<s>Flip: {p}"}, "BOS"),
        (RawText(), {"prompt": "<|begin_of_text|> {p}"}, "BOS"),
        (AssistantPrefill(prefill="{nope}"), {}, "prompt template field"),
        (ChainedTurns(followups=("{p.__class__}",)), {"d": 2}, "not allowed"),
        (HistoryTurns(turns=(Turn(role="user", content="{x}"), HISTORY.turns[1])), {}, "{x}"),
    ],
)  # fmt: skip
def test_bad_protocol_text_fails_at_resolve(
    protocol: Any, kwargs: dict[str, Any], message: str
) -> None:
    definition = _flip(protocol, d=kwargs.pop("d", 1), exact=protocol.kind != "chained")
    with pytest.raises(FlipbenchError, match=message.replace("{", r"\{").replace("}", r"\}")):
        definition.resolve(p_values=["30"], **kwargs)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"protocol": {"kind": "history", "turns": [{"role": "assistant", "content": "1"}]}},
         "turn 1 must be a user message"),
        ({"protocol": {"kind": "history", "turns": [{"role": "user", "content": "x"}]}},
         "last turn must be an assistant"),
        ({"protocol": {"kind": "history", "turns": []}}, "at least 1"),
        ({"protocol": {"kind": "prefill", "prefill": ""}}, "at least 1"),
        ({"protocol": {"kind": "chained", "followups": []}}, "at least 1"),
        ({"protocol": {"kind": "chained", "followups": ["a"]}, "exact": False},
         "answers d=2 tokens"),
        ({"protocol": {"kind": "chained", "followups": ["a"]}, "d": 2}, "exact mode"),
        ({"protocol": {"kind": "raw"}, "followup": "again"}, "either followup or protocol"),
        ({"protocol": {"kind": "sideways"}}, "does not match any of the expected tags"),
    ],
)  # fmt: skip
def test_malformed_protocols_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _flip(**data)


@pytest.mark.parametrize(
    ("backend", "raw_ok"),
    [(LocalBackend, True), (OpenAICompatibleBackend, True), (OpenRouterBackend, False)],
)
def test_which_backends_send_raw_prompts(backend: type[Backend], raw_ok: bool) -> None:
    for kind in ("single", "chained", "history", "prefill"):
        backend.check_protocol(kind)
    if raw_ok:
        backend.check_protocol("raw")
    else:
        with pytest.raises(FlipbenchError, match="raw prompt needs a completions endpoint"):
            backend.check_protocol("raw")


def test_a_definition_reads_back_its_own_dump() -> None:
    for name in ("single-flip", "chained-flips"):
        definition = get_experiment(name)
        again = ExperimentDefinition.model_validate(definition.model_dump())
        assert (
            again == definition
            and again.resolve().definition_hash() == PINNED_HASHES[name, "default"]
        )
