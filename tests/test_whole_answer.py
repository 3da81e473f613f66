"""Whole-answer exact reading on a scripted next-token model (no llama.cpp)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from flipbench.config import RunConfig
from flipbench.progress import SilentReporter
from flipbench.providers.base import Message, Reply, SampleSettings, exact_distribution
from flipbench.providers.llama_reading import LlamaNextTokens, WordEnds
from flipbench.providers.local import LocalBackend
from flipbench.providers.openai_compat import ChatClient
from flipbench.providers.whole_answer import (
    TOLERANCE,
    NextTokens,
    WholeAnswers,
    ends_word,
    read_whole_answers,
    surface_forms,
    whole_answer_reply,
)
from flipbench.runner import Runner, RunSettings
from flipbench.store import Journal
from flipbench.tasks import get_experiment
from tests.fake_backend import InProcessBackend

LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
BASE_VOCAB = [
    "<eot>", "<unk>", "Q", ":", " ", ".", "!", "%", "\n", "0", "1", "3", "5", "7",
    *LETTERS, *(c.upper() for c in LETTERS),
    "dog", "Dog", "DOG", " dog", " Dog", "cat", " cat", "L", "ux", "ury", "og", "Sure",
]  # fmt: skip


class ScriptedModel:
    """A tokenizer (greedy longest match over `vocab`) and a table of next-token
    probabilities keyed by the token texts after the prompt (unlisted prefixes: end of turn).
    `top` cuts a list that is not asked to be complete to the `top` most probable tokens."""

    def __init__(
        self, table: Mapping[Any, Mapping[str, float]], *,
        vocab: Sequence[str] = BASE_VOCAB, top: int | None = None,
    ) -> None:  # fmt: skip
        self.vocab = list(dict.fromkeys(vocab))
        self.ids = {t: i for i, t in enumerate(self.vocab)}
        self.table, self.top = table, top
        self.prompt_len = 0
        self.calls: list[tuple[tuple[str, ...], bool]] = []

    def _encode(self, text: str) -> list[int]:
        out, i = [], 0
        while i < len(text):
            match = max((t for t in self.vocab if text.startswith(t, i)), key=len, default=None)
            out.append(self.ids[match or "<unk>"])
            i += len(match) if match else 1
        return out

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        return self._encode(text)

    async def detokenize(self, tokens: Sequence[int]) -> str:
        return "".join(self.vocab[t] for t in tokens)

    def set_prompt(self, prompt: str) -> str:
        self.prompt_len = len(self._encode(prompt))
        return prompt

    async def next_tokens(self, tokens: Sequence[int], *, complete: bool) -> NextTokens:
        after = tuple(self.vocab[t] for t in tokens[self.prompt_len :])
        self.calls.append((after, complete))
        probs = self.table.get(after, {"<eot>": 1.0})
        ranked = sorted(probs.items(), key=lambda kv: -kv[1])
        if not complete and self.top is not None:
            ranked = ranked[: self.top]
        listed = {self.ids[t]: math.log(p) for t, p in ranked if p > 0}
        whole = complete or self.top is None
        return NextTokens(listed, {i: self.vocab[i] for i in listed}, whole)

    def probability(self, tokens: Sequence[int], token: int) -> float:
        after = tuple(self.vocab[t] for t in tokens[self.prompt_len :])
        return self.table.get(after, {"<eot>": 1.0}).get(self.vocab[token], 0.0)

    async def token_logprob(self, tokens: Sequence[int], token: int) -> float:
        after = tuple(self.vocab[t] for t in tokens[self.prompt_len :])
        self.calls.append(((*after, f"forced:{self.vocab[token]}"), False))
        p = self.probability(tokens, token)
        return math.log(p) if p > 0 else -math.inf


def _read(model: ScriptedModel, answers: Sequence[str], prompt: str = "Q") -> WholeAnswers:
    return asyncio.run(read_whole_answers(model, model.set_prompt(prompt), answers))


def _probs(result: WholeAnswers) -> dict[str, float]:
    return {f.form: math.exp(f.logprob) for f in result.forms}


def test_surface_forms_are_case_variants_with_and_without_a_leading_space() -> None:
    assert surface_forms("dog") == ("dog", " dog", "Dog", " Dog", "DOG", " DOG")
    assert surface_forms("1") == ("1", " 1")
    assert surface_forms("Heads") == ("Heads", " Heads", "heads", " heads", "HEADS", " HEADS")
    assert [t for t in ("<|im_end|>", "", " is", ".", "\n", "%", "e", "0") if ends_word(t)] == [
        "<|im_end|>", "", " is", ".", "\n",
    ]  # fmt: skip


def test_the_probability_is_the_product_over_tokens_times_the_stop_factor() -> None:
    table = {
        (): {"L": 0.4, "Sure": 0.6},
        ("L",): {"ux": 0.5, "a": 0.5},
        ("L", "ux"): {"ury": 0.8, "e": 0.2},
        ("L", "ux", "ury"): {"<eot>": 0.6, ".": 0.2, "s": 0.2},
    }
    result = _read(ScriptedModel(table), ["luxury"])
    luxury = next(f for f in result.forms if f.form == "Luxury")
    assert [ScriptedModel(table).vocab[t] for t in luxury.tokens] == ["L", "ux", "ury"]
    assert math.exp(luxury.logprob) == pytest.approx(0.4 * 0.5 * 0.8 * 0.8)
    assert math.exp(luxury.stop_logprob) == pytest.approx(0.8)
    # "Sure" is not "sun", and "L" alone is not "Luxury": nothing else has mass
    assert sum(_probs(result).values()) == pytest.approx(0.128)


def test_the_stop_factor_keeps_doge_out_of_dog() -> None:
    table = {(): {"dog": 0.5, "cat": 0.5}, ("dog",): {"e": 0.3, "<eot>": 0.5, " ": 0.2}}
    result = _read(ScriptedModel(table), ["dog", "cat"])
    probs = _probs(result)
    assert probs["dog"] == pytest.approx(0.5 * 0.7)
    assert probs["cat"] == pytest.approx(0.5)
    raw = exact_distribution(result.answer_logprobs(["dog", "cat"]), 1.0)
    assert raw.raw == pytest.approx({"dog": 0.35, "cat": 0.5})


def test_case_and_leading_space_variants_are_summed_and_coverage_is_their_total() -> None:
    table = {(): {"dog": 0.2, "Dog": 0.1, " dog": 0.1, "DOG": 0.05, "cat": 0.3, "Sure": 0.25}}
    result = _read(ScriptedModel(table), ["dog", "cat"])
    assert {f.form for f in result.forms} == {*surface_forms("dog"), *surface_forms("cat")}
    dist = exact_distribution(result.answer_logprobs(["dog", "cat"]), 1.0)
    assert dist.raw == pytest.approx({"dog": 0.45, "cat": 0.3})
    assert dist.coverage == pytest.approx(0.75)
    assert dist.renormalised == pytest.approx({"dog": 0.6, "cat": 0.4})


def test_shared_prefixes_are_asked_once_and_counted() -> None:
    # "3" and "5" alone are not 37 and 50: they need the next digit, then a stop.
    table = {
        (): {"3": 0.5, "5": 0.3, " ": 0.2},
        ("3",): {"7": 0.5, "5": 0.25, "<eot>": 0.25},
        ("5",): {"0": 0.9, "<eot>": 0.1},
        (" ",): {"3": 1.0},
        (" ", "3"): {"7": 1.0},
    }
    model = ScriptedModel(table)
    result = _read(model, ["37", "35", "50"])
    # prefixes: (), 3, 37, 35, 5, 50, " ", " 3", " 37"; " 35" and " 5" stop where a
    # whole-vocabulary list gives their next token probability 0
    assert result.requests == len(model.calls) == 9
    assert len({c for c, _ in model.calls}) == 9  # each prefix once
    probs = _probs(result)
    assert probs["37"] == pytest.approx(0.25) and probs["35"] == pytest.approx(0.125)
    assert probs["50"] == pytest.approx(0.27) and probs[" 37"] == pytest.approx(0.2)
    assert probs[" 35"] == 0.0 and probs[" 50"] == 0.0
    dist = exact_distribution(result.answer_logprobs(["37", "35", "50"]), 1.0)
    assert dist.coverage == pytest.approx(0.25 + 0.125 + 0.27 + 0.2)
    assert result.tokenize_requests > 0 and result.prompt_tokens == 1


def test_a_top_list_is_widened_where_a_token_or_the_stop_mass_needs_the_vocabulary() -> None:
    table = {
        (): {"Sure": 0.5, "cat": 0.3, "dog": 0.15, "Dog": 0.05},
        ("dog",): {"e": 0.4, "s": 0.3, ".": 0.2, "<eot>": 0.1},
    }
    model = ScriptedModel(table, top=2)
    result = _read(model, ["dog", "cat"])
    probs = _probs(result)
    assert probs["dog"] == pytest.approx(0.15 * 0.3)  # stop tokens below the top 2 counted
    assert probs["Dog"] == pytest.approx(0.05)  # not in the top 2: asked for alone
    assert (("forced:Dog",), False) in model.calls and ((), True) not in model.calls
    # the list after "dog" leaves 0.3 of its mass unread: widened to the vocabulary
    assert model.calls.index((("dog",), False)) < model.calls.index((("dog",), True))
    assert result.widened == 1 and result.forced >= 1 and result.slack == 0.0


def test_a_top_list_is_kept_when_what_it_leaves_out_cannot_move_a_rate() -> None:
    # After "dog" the top 2 hold all but 1e-6 of the mass: the rest cannot move the rates
    # by the tolerance, so no whole-vocabulary list is asked for.
    after = {"<eot>": 0.9, ".": 0.099999, "e": 1e-6}
    model = ScriptedModel({(): {"dog": 0.6, "cat": 0.4}, ("dog",): after}, top=2)
    result = _read(model, ["dog", "cat"])
    assert result.widened == 0 and not any(complete for _, complete in model.calls)
    assert 0 < result.slack <= TOLERANCE * 1.0
    assert _probs(result)["dog"] == pytest.approx(0.6 * 0.999999)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.001, 1.0), min_size=6, max_size=6),
    st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5),
    st.integers(1, 5),
)
def test_rates_from_top_lists_are_within_the_tolerance_of_the_whole_vocabulary(
    root: list[float], after: list[float], top: int
) -> None:
    texts = ["dog", "Dog", "cat", " cat", "Sure", "L"]
    total = sum(root)
    first = {t: w / total for t, w in zip(texts, root, strict=True)}
    table: dict[Any, dict[str, float]] = {(): first}
    ends = ["<eot>", ".", "e", "s", "\n"]
    for form in ("dog", "cat", " cat"):
        weights = [w + 1e-9 for w in after]
        table[(form,)] = {t: w / sum(weights) for t, w in zip(ends, weights, strict=True)}
    whole = exact_distribution(_read(ScriptedModel(table), ["dog", "cat"]).answer_logprobs(
        ["dog", "cat"]), 1.0)  # fmt: skip
    read = _read(ScriptedModel(table, top=top), ["dog", "cat"])
    cut = exact_distribution(read.answer_logprobs(["dog", "cat"]), 1.0)
    assert read.slack <= TOLERANCE * cut.coverage + 1e-15
    for answer in ("dog", "cat"):
        expected = whole.renormalised[answer]
        assert cut.renormalised[answer] == pytest.approx(expected, abs=2 * TOLERANCE)


def test_a_merge_at_the_prompt_boundary_tokenises_the_form_alone() -> None:
    vocab = [*BASE_VOCAB, ": "]  # "Q: dog" → Q | ": " | dog: the prompt's ":" is gone
    table = {(): {" dog": 0.4, "dog": 0.2, "cat": 0.4}}
    model = ScriptedModel(table, vocab=vocab)
    result = _read(model, ["dog", "cat"], prompt="Q:")
    spaced = next(f for f in result.forms if f.form == " dog")
    assert spaced.tokenized == "alone" and [model.vocab[t] for t in spaced.tokens] == [" dog"]
    assert math.exp(spaced.logprob) == pytest.approx(0.4)
    assert next(f for f in result.forms if f.form == "dog").tokenized == "suffix"


def test_a_form_the_tokenizer_cannot_spell_is_listed_not_read() -> None:
    vocab = [t for t in BASE_VOCAB if t.lower() != "z"]
    result = _read(ScriptedModel({(): {"dog": 1.0}}, vocab=vocab), ["dog", "zoo"])
    assert set(result.untokenizable) == set(surface_forms("zoo"))
    assert {f.answer for f in result.forms} == {"dog"}


def test_the_reply_carries_every_form_in_its_meta() -> None:
    model = ScriptedModel({(): {"dog": 0.6, "cat": 0.2}})
    prompt = model.set_prompt("Q")
    reply = asyncio.run(whole_answer_reply(model, prompt, ["dog", "cat"], {"prompt": prompt}))
    assert reply.ok and reply.answer_logprobs is not None
    assert reply.answer_logprobs["dog"] == pytest.approx([math.log(0.6)])
    meta = reply.meta["whole_answer"]
    assert reply.meta["exact_reading"] == "whole-answer"
    assert {f["form"] for f in meta["forms"]} == {*surface_forms("dog"), *surface_forms("cat")}
    zero = next(f for f in meta["forms"] if f["form"] == "DOG")
    assert zero["logprob"] is None and zero["token_logprobs"] == [None]
    assert meta["requests"] >= 1 and reply.request["exact_reading"] == "whole-answer"


def _post_sampling(model: ScriptedModel, body: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp's `post_sampling_probs` step at temperature 1 with neutral samplers: the
    softmax after `logit_bias`, the end of turn removed under `ignore_eos` (and listed in the
    reply's settings with a null bias, as llama.cpp does)."""
    after = tuple(model.vocab[t] for t in body["prompt"][model.prompt_len :])
    probs = {model.ids[t]: p for t, p in model.table.get(after, {"<eot>": 1.0}).items() if p > 0}
    bias = {int(t): float(b) for t, b in body.get("logit_bias") or []}
    eog = [model.ids["<eot>"]] if body.get("ignore_eos") else []
    weights = {t: p * math.exp(bias.get(t, 0.0)) for t, p in probs.items() if t not in eog}
    total = sum(weights.values())
    ranked = sorted(weights.items(), key=lambda kv: -kv[1])[: body["n_probs"]]
    step = {"top_probs": [{"id": t, "token": model.vocab[t], "prob": w / total} for t, w in ranked]}
    settings = {"logit_bias": [{"bias": None, "token": t} for t in eog]}
    return {"completion_probabilities": [step], "generation_settings": settings}


async def _llama_app(
    model: ScriptedModel, caches: list[bool], inflation: float = 1.0, post_sampling: bool = True
) -> web.Application:
    """llama.cpp's native endpoints, as `LlamaNextTokens` reads them, over the scripted model
    (each request's `cache_prompt` recorded in `caches`); raw lists are `inflation` times the
    probabilities, as llama.cpp's float32 normaliser makes them (1 + ~2e-4)."""

    async def apply_template(request: web.Request) -> web.Response:
        body = await request.json()
        text = "".join(f"{m['role']}:{m['content']}\n" for m in body["messages"])
        return web.json_response({"prompt": model.set_prompt(text + "Q")})

    async def tokenize(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {"tokens": await model.tokenize(body["content"], add_special=True)}
        )

    async def detokenize(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"content": await model.detokenize(body["tokens"])})

    async def completion(request: web.Request) -> web.Response:
        body = await request.json()
        caches.append(body["cache_prompt"])
        if body.get("post_sampling_probs") and post_sampling:
            return web.json_response(_post_sampling(model, body))
        nxt = await model.next_tokens(body["prompt"], complete=body["n_probs"] >= len(model.vocab))
        up, every = math.log(inflation), nxt.complete and body["n_probs"] >= len(model.vocab)
        listed = [
            {"id": i, "token": nxt.texts[i], "logprob": lp + up} for i, lp in nxt.logprobs.items()
        ] + [  # the whole vocabulary, as llama.cpp lists it (probability 0 as -1e30)
            {"id": i, "token": text, "logprob": -1e30}
            for i, text in enumerate(model.vocab)
            if every and i not in nxt.logprobs
        ]
        listed = listed[: body["n_probs"]]
        bias = dict(body.get("logit_bias") or [])
        chosen = next(iter(bias), next(iter(nxt.logprobs), 0))  # greedy, the bias wins
        p = model.probability(body["prompt"], chosen) * inflation
        step = {"id": chosen, "logprob": math.log(p) if p > 0 else -1e30, "top_logprobs": listed}
        return web.json_response({"completion_probabilities": [step]})

    app = web.Application()
    for path, handler in [("/apply-template", apply_template), ("/tokenize", tokenize),
                          ("/detokenize", detokenize), ("/completion", completion)]:  # fmt: skip
        app.router.add_post(path, handler)
    return app


@asynccontextmanager
async def _llama_server(app: web.Application) -> AsyncIterator[ChatClient]:
    """The app on a loopback port, and a trusted client of it (both closed after)."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = ChatClient(f"http://127.0.0.1:{port}", trusted=True)
    await client.start()
    try:
        yield client
    finally:
        await client.close()
        await runner.cleanup()


def test_the_llama_cpp_adapter_reads_the_same_probabilities_over_http(tmp_path: Path) -> None:
    table = {
        (): {"dog": 0.3, " cat": 0.5, "Sure": 0.15, "Dog": 0.05},
        ("dog",): {"e": 0.5, ".": 0.5},
    }
    model = ScriptedModel(table)
    caches: list[bool] = []

    async def go() -> Any:
        async with _llama_server(await _llama_app(model, caches)) as client:
            llama = LlamaNextTokens(client, len(model.vocab), top=3)  # "Dog" below: forced
            prompt = await llama.render([{"role": "user", "content": "pick"}])
            return await whole_answer_reply(llama, prompt, ["dog", "cat"], {"prompt": prompt})

    reply = asyncio.run(go())
    assert reply.ok, reply.error
    dist = exact_distribution(reply.answer_logprobs, 1.0)
    assert dist.raw == pytest.approx({"dog": 0.15 + 0.05, "cat": 0.5})
    assert reply.meta["whole_answer"]["forced"] >= 1
    # the first request computes the prompt afresh, the rest extend it from the cache
    assert caches[0] is False and all(caches[1:]) and len(caches) > 1


def test_the_stop_factor_is_read_over_the_whole_vocabulary_without_widening_a_list() -> None:
    """llama.cpp's stop factor from two post-sampling requests (`LlamaNextTokens.stop_mass`):
    the same rates as lists widened to the whole vocabulary, in the raw lists' units (their
    normaliser off by 2e-4, as llama.cpp's is), with no list widened."""
    tail = {c: 0.004 for c in LETTERS}  # word-continuing mass below the top list
    table = {
        (): {" cat": 0.2, "dog": 0.5, "Dog": 0.1, "Sure": 0.2},
        ("dog",): {"<eot>": 0.6, ".": 0.2, "!": 0.05, "\n": 0.046, **tail},
        (" cat",): {"<eot>": 0.5, ".": 0.1, " ": 0.05, "%": 0.2, "s": 0.046, **tail},
        ("Dog",): {"<eot>": 0.7, "!": 0.196, **tail},
    }

    async def read(
        word_ends: WordEnds | None, post_sampling: bool = True
    ) -> tuple[WholeAnswers, dict[str, float]]:
        model = ScriptedModel(table, top=3)
        app = await _llama_app(model, [], inflation=1.0002, post_sampling=post_sampling)
        async with _llama_server(app) as client:
            llama = LlamaNextTokens(client, len(model.vocab), top=3, word_ends=word_ends)
            prompt = await llama.render([{"role": "user", "content": "pick"}])
            whole = await read_whole_answers(llama, prompt, ["dog", "cat"])
        return whole, exact_distribution(whole.answer_logprobs(["dog", "cat"]), 1.0).raw

    widened, by_lists = asyncio.run(read(None))
    massed, by_masses = asyncio.run(read(WordEnds()))
    assert widened.widened == 3 and widened.stop_masses == 0
    # one whole-vocabulary list, inside the first stop mass, learns the vocabulary's texts
    assert massed.widened == 0 and massed.stop_masses == 3
    assert by_masses == pytest.approx(by_lists, abs=1e-9)
    # a server without post-sampling lists: the lists are widened, the rates the same
    fallback, by_fallback = asyncio.run(read(WordEnds(), post_sampling=False))
    assert fallback.widened == 2 and fallback.stop_masses == 1  # the first learns the texts
    assert by_fallback == pytest.approx(by_lists, abs=1e-9)
    assert by_masses["dog"] == pytest.approx(0.5 * 0.896 + 0.1 * 0.896, rel=1e-3)


class WholeAnswerBackend(InProcessBackend):
    """A fake backend whose exact mode is the whole-answer reading of a scripted model."""

    prefix = "scripted"
    supports_exact = True

    def __init__(self, model: ScriptedModel) -> None:
        super().__init__("scripted/test")
        self.scripted = model

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        raise AssertionError("exact mode only")

    async def distribution(self, messages: Sequence[Message], answers: Sequence[str]) -> Reply:
        prompt = self.scripted.set_prompt("Q")
        return await whole_answer_reply(self.scripted, prompt, answers, {"prompt": prompt})


def test_the_runner_journals_renormalised_rates_coverage_and_the_forms(tmp_path: Path) -> None:
    table = {
        (): {"1": 0.3, " ": 0.1, "0": 0.2, "Sure": 0.4},
        ("1",): {"0": 0.5, "<eot>": 0.5},  # "10" is not "1"
        (" ",): {"1": 1.0},
    }
    experiment = get_experiment("single-flip").resolve(p_values=["30"], n=3)
    journal = Journal(tmp_path / "j.db")
    journal.create_run(
        run_id="r", experiment=experiment.name, model="scripted/test", mode="exact", config={},
        definition=experiment.model_dump(mode="json"),
        definition_hash=experiment.definition_hash(), versions={},
    )  # fmt: skip
    backend = WholeAnswerBackend(ScriptedModel(table))
    settings = RunSettings("exact", 1, False, 5.0, None)
    asyncio.run(Runner(journal, "r", experiment, backend, settings, SilentReporter()).run())
    (row,) = [dict(r) for r in journal.samples("r")]
    assert row["valid"] == 1
    assert json.loads(row["probs_json"]) == pytest.approx({"1": 0.25 / 0.45, "0": 0.2 / 0.45})
    assert row["coverage"] == pytest.approx(0.45)
    meta = json.loads(row["meta_json"])
    assert meta["exact_reading"] == "whole-answer"
    assert {f["form"] for f in meta["whole_answer"]["forms"]} == {"1", " 1", "0", " 0"}


def test_local_exact_mode_reads_whole_answers_unless_the_first_token_is_asked_for() -> None:
    plain = LocalBackend.from_config(RunConfig(model="local/smollm2", mode="exact"))
    assert isinstance(plain, LocalBackend) and not plain.first_token
    config = RunConfig(model="local/smollm2", mode="exact", first_token=True,
                       experiment="business")  # fmt: skip
    first = LocalBackend.from_config(config)
    assert isinstance(first, LocalBackend) and first.first_token
