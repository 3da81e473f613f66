"""Interventions: what each sends, how each reply is read, how each is hashed, and that the
given-seed intervention fixes a model that can compute but cannot sample.

The model here is a scripted in-process stand-in (as in test_runner.py) with planted behaviour:
it answers the argmax of the requested coin unless the prompt hands it a number, which it then
turns into the requested distribution exactly (answer "1" when u < p). It answers in whatever
shape the request asks for (an `Answer:` line, stated probabilities, a JSON object, a tool
call), so each intervention's request and reader meet end to end through the real runner,
journal and metrics. The embedded model runs the given-seed intervention in the slow test.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from flipbench.api import RunOutcome, resume_run_async, run_results, start_run_async
from flipbench.config import RunConfig
from flipbench.errors import BudgetReached, FlipbenchError
from flipbench.interventions import INTERVENTIONS, get_intervention
from flipbench.interventions.reading import after_answer_line, read_reply, stated_distribution
from flipbench.interventions.seeding import given_number
from flipbench.parse import InvalidCategory, ParsedAnswer
from flipbench.providers.base import Message, Reply, SampleSettings
from flipbench.store import Journal
from flipbench.tasks import get_experiment
from tests.fake_backend import InProcessBackend

MODEL = "openrouter/fake/model"  # validated as OpenRouter's (a key is set); sent to the fake
_P = re.compile(r'returns "1" (?P<p>[\d.]+)% of the time')
_NUMBER = re.compile(r"source of randomness: (?P<u>0\.\d+)")


class PlantedModel(InProcessBackend):
    """Argmax of the requested coin, unless given a number u: then "1" exactly when u < p."""

    prefix = "openrouter"

    def __init__(self) -> None:
        super().__init__(MODEL)
        self.requests: list[tuple[list[dict[str, str]], SampleSettings]] = []

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        sent = [dict(m) for m in messages]
        self.requests.append((sent, settings))
        prompt = sent[-1]["content"]
        match = _P.search(prompt)
        assert match is not None, prompt
        p = float(match["p"]) / 100
        number = _NUMBER.search(prompt)
        answer = ("1" if float(number["u"]) < p else "0") if number else ("1" if p > 0.5 else "0")
        body = {"messages": sent, **settings.request_fields}
        message: dict[str, Any] = {"content": _shaped(answer, p, prompt, settings)}
        if "tools" in settings.request_fields:
            name = settings.request_fields["tools"][0]["function"]["name"]
            arguments = json.dumps({"answer": answer})
            message = {"content": None, "tool_calls": [{"type": "function", "id": "c1",
                       "function": {"name": name, "arguments": arguments}}]}  # fmt: skip
        response = {"choices": [{"message": message, "finish_reason": "stop"}]}
        return Reply(body, response, ok=True, http_status=200, content=message["content"],
                     finish_reason="stop")  # fmt: skip


def _shaped(answer: str, p: float, prompt: str, settings: SampleSettings) -> str:
    """The answer in the shape the request asks for."""
    if "response_format" in settings.request_fields:
        return json.dumps({"answer": answer})
    if "P(<answer>)" in prompt:  # verbalized: the right distribution, stated, then the answer
        return f'P("0") = {1 - p:.2f}\nP("1") = {p * 100:g}%\nAnswer: {answer}'
    if '"Answer: <answer>"' in prompt:
        return f"Let me think: 0 or 1, maybe 1.\n**Answer:** {answer}"
    return answer


def _meta(row: Any) -> dict[str, Any]:
    return dict(json.loads(row["meta_json"] or "{}"))


def _run(intervention: str, tmp_path: Path, **config: Any) -> tuple[RunOutcome, PlantedModel]:
    os.environ.setdefault("OPENROUTER_API_KEY", "sk-or-v1-interventions-test-0123456789")
    model = PlantedModel()
    run = RunConfig(model=MODEL, intervention=intervention, run_id=f"run-{intervention}",
                    **config)  # fmt: skip
    job = start_run_async(run, tmp_path / "j.db", make_backend=lambda _: model, results=True)
    return asyncio.run(job), model


def test_given_seed_fixes_an_argmax_model_that_can_compute(tmp_path: Path) -> None:
    direct, _ = _run("direct", tmp_path, n=100)
    seeded, model = _run("given-seed", tmp_path, n=100)
    assert direct.status == seeded.status == "complete"
    assert direct.results is not None and seeded.results is not None
    # The argmax model is a perfect step at 50 %: S = 1, and its interval is that point.
    assert direct.results.s == pytest.approx(1.0)
    ideal = seeded.results.s_noise_floor  # what a perfect sampler scores at this grid and n
    low, high = seeded.results.s_ci
    assert low <= ideal <= high, (seeded.results.s, ideal, (low, high))
    assert high < 0.5  # and nowhere near the step
    # One request per sample (each prompt differs), each number recorded and the one sent.
    with Journal(tmp_path / "j.db", create=False) as journal:
        rows = list(journal.samples("run-given-seed"))
    assert len(model.requests) == len(rows) == 21 * 100
    numbers = []
    for row in rows:
        number = _meta(row)["given_seed"]
        assert number == given_number("run-given-seed", row["condition"], row["sample_index"])
        assert f"source of randomness: {number}" in row["request_json"]
        numbers.append(float(number))
    assert stats.kstest(numbers, "uniform").pvalue > 0.001  # uniform on [0, 1)


class StopsAfter(PlantedModel):
    """The planted model, whose budget runs out after `calls` requests."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.left = calls

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        if self.left <= 0:
            raise BudgetReached(1.0, 1.0)
        self.left -= 1
        return await super().sample(messages, settings)


def test_a_resumed_given_seed_run_sends_each_sample_its_own_number(tmp_path: Path) -> None:
    os.environ.setdefault("OPENROUTER_API_KEY", "sk-or-v1-interventions-test-0123456789")
    db = tmp_path / "j.db"
    config = RunConfig(model=MODEL, intervention="given-seed", run_id="r", n=30, p_values=["30"],
                       max_concurrency=1)  # fmt: skip
    first = asyncio.run(start_run_async(config, db, make_backend=lambda _: StopsAfter(12)))
    assert first.status == "stopped"
    second = PlantedModel()
    resumed = asyncio.run(resume_run_async("r", db, make_backend=lambda _: second))
    assert resumed.status == "complete" and len(second.requests) == 18
    with Journal(db, create=False) as journal:
        rows = list(journal.samples("r"))
    assert sorted(r["sample_index"] for r in rows) == list(range(30))  # none lost, none twice
    numbers = [_meta(r)["given_seed"] for r in rows]
    assert numbers == [given_number("r", "p=30", r["sample_index"]) for r in rows]
    assert len(set(numbers)) == 30


def test_direct_keeps_the_definition_hash_and_each_intervention_has_its_own() -> None:
    single = get_experiment("single-flip")
    today = single.resolve().definition_hash()
    assert single.resolve(intervention=get_intervention("direct")).definition_hash() == today
    assert single.resolve(intervention=get_intervention("direct")).intervention is None
    hashes = {
        name: single.resolve(intervention=i).definition_hash() for name, i in INTERVENTIONS.items()
    }
    assert len(set(hashes.values())) == len(hashes)
    # A definition journaled before interventions (no such field) reads back as direct.
    stored = single.resolve().model_dump(mode="json")
    del stored["intervention"]
    reread = type(single.resolve())(**stored)
    assert reread.definition_hash() == today


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("direct", None),
        ("system-persona", "system"),
        ("cot", "Let's think step by step"),
        ("string-seed", "random string of at least 20 characters"),
        ("verbalized", "P(<answer>) = <probability between 0 and 1>"),
        ("rejection", "rejection sampling"),
        ("structured", "response_format"),
        ("tool-call", "tools"),
        ("reasoning-high", "reasoning"),
    ],
)
def test_each_intervention_sends_its_request_and_reads_its_reply(
    name: str, shape: str | None, tmp_path: Path
) -> None:
    outcome, model = _run(name, tmp_path, n=3, p_values=["20", "80"])
    assert outcome.status == "complete" and outcome.results is not None
    rates = [c.rate for c in outcome.results.conditions]
    assert rates == [0.0, 1.0]  # the argmax model, read right through every reply shape
    messages, settings = model.requests[0]
    prompt = messages[-1]["content"]
    assert prompt.startswith("I'd like you to flip a biased coin")  # the experiment's own
    fields = dict(settings.request_fields)
    if shape == "system":
        assert (
            messages[0]["role"] == "system" and "faithful random sampler" in messages[0]["content"]
        )
    elif shape in ("response_format", "tools", "reasoning"):
        assert shape in fields
    elif shape is not None:
        assert shape in prompt and '"0" or "1"' in prompt
    if name == "structured":
        schema = fields["response_format"]["json_schema"]["schema"]
        assert schema["properties"]["answer"]["enum"] == ["0", "1"]
    if name == "tool-call":
        assert fields["tool_choice"]["function"]["name"] == "submit_answer"
    if name == "reasoning-high":
        assert fields == {"reasoning": {"effort": "high"}} and settings.max_tokens >= 4096
    if shape is None or shape == "system":
        assert prompt.endswith("simulating a single flip.") and not fields
    if name == "verbalized":
        with Journal(tmp_path / "j.db", create=False) as journal:
            row = next(journal.samples("run-verbalized"))
        assert _meta(row)["stated"] == {"0": pytest.approx(0.8), "1": pytest.approx(0.2)}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"intervention": "nope"}, "unknown intervention 'nope'"),
        ({"intervention": "cot", "mode": "exact"}, "use --mode sample"),
        ({"intervention": "given-seed", "mode": "exact"}, "use --mode sample"),
        ({"intervention": "cot", "constrained": True}, "--constrained forces a bare answer"),
        ({"intervention": "tool-call", "model": "local/smollm2"}, "does not take"),
        ({"intervention": "verbalized", "experiment": "gaussian"}, "finite set"),
        ({"intervention": "tool-call", "experiment": "d-flips"}, "finite set"),
        ({"intervention": "structured", "model_options": {"tools": []}}, None),
        ({"intervention": "tool-call", "model_options": {"tools": []}}, "-M tools"),
    ],
)
def test_what_cannot_work_is_refused_before_anything_runs(
    config: dict[str, Any], message: str | None, tmp_path: Path
) -> None:
    from flipbench.api import _resolve

    os.environ.setdefault("OPENROUTER_API_KEY", "sk-or-v1-interventions-test-0123456789")
    run = RunConfig(**{"model": MODEL, **config})
    if message is None:
        _resolve(run)  # a field the intervention does not send may be added with -M
        return
    with pytest.raises(FlipbenchError, match=re.escape(message)):
        _resolve(run)


def test_readers_take_the_last_answer_line_and_nothing_else() -> None:
    cot = get_intervention("cot")

    def read(text: str, finish: str = "stop") -> ParsedAnswer:
        answers = ("0", "1")
        return read_reply(cot, text, None, answers, "whole-token", finish_reason=finish)[0]

    assert read("Maybe 1.\nAnswer: 0").answer == "0"
    assert read("Answer: 1\nOn reflection...\n**Final Answer:** 0").answer == "0"
    assert read("I pick 1.").category == InvalidCategory.UNPARSEABLE  # no Answer: line
    assert read("I pick 1 because", "length").category == InvalidCategory.TRUNCATED
    assert read("Answer: 0 or 1").category == InvalidCategory.AMBIGUOUS
    assert read("").category == InvalidCategory.EMPTY


def test_json_and_tool_readers_take_only_an_enum_answer() -> None:
    structured, tool = get_intervention("structured"), get_intervention("tool-call")
    answers = ("0", "1")

    def json_read(text: str | None) -> str | None:
        parsed = read_reply(structured, text, None, answers, "whole-token")[0]
        return parsed.answer or str(parsed.category)

    assert json_read('{"answer": "1"}') == "1"
    assert json_read('```json\n{"answer": "0"}\n```') == "0"
    assert json_read('{"answer": "2"}') == "unparseable"
    assert json_read('{"answer": 1}') == "unparseable"  # the schema's enum holds strings
    assert json_read("1") == "unparseable"
    assert json_read("[" * 5000) == "unparseable"
    call = {"choices": [{"message": {"tool_calls": [
        {"function": {"name": "submit_answer", "arguments": '{"answer": "1"}'}}]}}]}  # fmt: skip
    assert read_reply(tool, None, call, answers, "whole-token")[0].answer == "1"
    no_call = {"choices": [{"message": {"content": "1"}}]}
    assert read_reply(tool, "1", no_call, answers, "whole-token")[0].category == "unparseable"
    assert read_reply(tool, None, {"choices": []}, answers, "whole-token")[0].category == "empty"


def test_stated_distribution_needs_every_answer_and_no_unit_guessing() -> None:
    assert stated_distribution('P("0") = 0.7\nP("1") = 30%', ("0", "1")) == {"0": 0.7, "1": 0.3}
    assert stated_distribution("P(Heads): 0.25, P(tails) = 0.75", ("Heads", "Tails")) == {
        "Heads": 0.25,
        "Tails": 0.75,
    }
    assert stated_distribution('P("0") = 70\nP("1") = 30', ("0", "1")) is None  # not 70 %
    assert stated_distribution('P("0") = 0.7', ("0", "1")) is None  # one missing
    assert stated_distribution('P("0") = 0.7 … P("0") = 0.6, P("1") = 0.3', ("0", "1")) is None


@given(st.text(max_size=2000))
def test_readers_never_raise_on_any_text(text: str) -> None:
    for intervention in INTERVENTIONS.values():
        parsed, _ = read_reply(intervention, text, {"choices": text}, ("0", "1"), "whole-token")
        assert parsed.valid == (parsed.answer is not None)
    after_answer_line(text)
    stated_distribution(text, ("0", "1", "2"))


def test_given_numbers_are_reproducible_and_distinct() -> None:
    first = [given_number("run", "p=30", i) for i in range(2000)]
    assert first == [given_number("run", "p=30", i) for i in range(2000)]  # a resume's numbers
    assert len(set(first)) > 1990 and all(re.fullmatch(r"0\.\d{6}", n) for n in first)
    assert given_number("run", "p=30", 0) != given_number("other", "p=30", 0)


def test_cli_lists_interventions_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    cli = [str(Path(sys.executable).parent / "flipbench")]
    listed = subprocess.run([*cli, "interventions", "--format", "json"], capture_output=True,
                            text=True, check=True)  # fmt: skip
    assert [i["name"] for i in json.loads(listed.stdout)] == list(INTERVENTIONS)
    db = tmp_path / "j.db"
    refused = subprocess.run([*cli, "run", "single-flip", "--intervention", "nope", "--db",
                              str(db)], capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 2 and not db.exists()
    assert refused.stderr.startswith("error: unknown intervention 'nope'")
    assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_given_seed_runs_offline_on_the_embedded_model(tmp_path: Path) -> None:
    """`flipbench run single-flip --model local/smollm2 --intervention given-seed` end to end
    (p = 50 %, N = 5, at most 10 attempts; run under the model lock). SmolLM2-135M answers a
    seeded prompt with one digit only now and then (most replies are prose that names both or
    neither), so the run may end short of N: what is checked is the machinery, every attempt
    journaled with its own number in the request sent."""
    flipbench = str(Path(sys.executable).parent / "flipbench")
    db = tmp_path / "j.db"
    done = subprocess.run(
        [flipbench, "run", "single-flip", "--model", "local/smollm2", "--intervention",
         "given-seed", "--n", "5", "--max-attempts-factor", "2", "--p", "50", "--db", str(db),
         "--no-progress", "--run-id", "seeded"],
        capture_output=True, text=True, timeout=500,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = run_results("seeded", db)
    assert results.run.status in ("complete", "incomplete"), results.run.status
    assert results.experiment.intervention is not None
    assert results.experiment.intervention.name == "given-seed"
    with Journal(db, create=False) as journal:
        rows = list(journal.samples("seeded"))
    valid = sum(r["valid"] for r in rows)
    assert 5 <= len(rows) <= 10 and (valid == 5 or len(rows) == 10), (valid, len(rows))
    assert {r["status"] for r in rows} == {"ok"}
    for row in rows:
        number = _meta(row)["given_seed"]
        assert number == given_number("seeded", "p=50", row["sample_index"])
        assert f"source of randomness: {number}" in row["request_json"]


@pytest.mark.slow
def test_structured_output_runs_on_the_embedded_model(tmp_path: Path) -> None:
    """llama.cpp turns the JSON-schema `response_format` into a grammar: every reply is the
    JSON object with an enum answer, read as such (p = 30 and 70 %, N = 16)."""
    from flipbench.api import start_run

    config = RunConfig(
        experiment="single-flip", model="local/smollm2", intervention="structured", n=16,
        p_values=["30", "70"], run_id="structured",
    )  # fmt: skip
    outcome = start_run(config, tmp_path / "j.db")
    assert outcome.status == "complete", outcome.message
    with Journal(tmp_path / "j.db", create=False) as journal:
        rows = list(journal.samples("structured"))
    assert len(rows) == 32 and all(r["valid"] for r in rows)
    for row in rows:
        sent = json.loads(row["request_json"])
        assert sent["response_format"]["json_schema"]["schema"]["properties"]["answer"]["enum"]
        assert json.loads(row["content"]) == {"answer": row["answer"]}


def test_request_fields_go_over_the_wire_and_an_ignored_schema_is_invalid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On the loopback fault server (which answers a bare "0"/"1", ignoring the schema): the
    schema is in the request sent, and a reply that is not the JSON object asked for is
    counted invalid, never read as the bare digit."""
    from flipbench.api import start_run
    from flipbench.testing.fault_server import FaultConfig, running_in_thread

    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-interventions-test-0123456789")
    db = tmp_path / "j.db"
    with running_in_thread(FaultConfig()) as server:
        monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
        config = RunConfig(model="openrouter/fault/model", intervention="structured", n=2,
                           p_values=["30"], max_attempts_factor=1.0, run_id="wire")  # fmt: skip
        outcome = start_run(config, db)
    assert outcome.status == "incomplete"
    with Journal(db, create=False) as journal:
        rows = list(journal.samples("wire"))
    assert len(rows) == 2 and {r["invalid_category"] for r in rows} == {"unparseable"}
    sent = json.loads(rows[0]["request_json"])
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["answer"]["enum"] == ["0", "1"]
    assert sent["messages"][-1]["content"].endswith('where <answer> is "0" or "1".')
