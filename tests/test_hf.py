"""`hf/…` on the embedded SmolLM2 GGUF for real (no mocks): the shared-prefix readings equal
readings computed separately, the one-pass in-context reading equals the N-prompt one, exactly
one BOS, prefix-free choice sets, exact mode end to end and its agreement with `local/…`.

The model is loaded once for the module (`hf_model`); the first load on a machine converts the
GGUF (~20 s) and caches safetensors that later loads take in ~2 s. The tests that do not load
it (the missing extra, option checks) are not marked slow."""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from flipbench.api import start_run
from flipbench.config import RunConfig, available_cores
from flipbench.errors import FlipbenchError
from flipbench.providers import backend_class
from flipbench.providers.hf import HFBackend, load_model, require_extra
from flipbench.providers.hf_choices import resolve_source
from flipbench.providers.hf_model import HFModel
from flipbench.providers.whole_answer import ends_word

# float32 readings of the same prompt through different pass shapes (one long pass against a
# prompt's own pass, a cache copied into a padded batch against one full pass) differ by up to
# ~3e-6 in probability (matmul blocking depends on the shapes; measured 3.2e-6 on the 21-prompt
# sequence below): 1e-5 is the bar the issue sets. Log-probabilities of very unlikely tokens
# differ more (2e-5 at log P ≈ -10), so probabilities are compared.
SAME = 1e-5
CHOICES = ("heads", "tails")
STEM = "I tossed a coin and it landed on "
SEPARATOR = ", then "
FLIPS = ("heads", "tails", "heads", "heads", "tails", "tails", "heads", "heads", "heads", "tails")


@pytest.fixture(scope="session")
def hf_model() -> Iterator[HFModel]:
    yield load_model(resolve_source("hf/smollm2"), threads=available_cores())


def _gguf() -> str:
    return str(resolve_source("hf/smollm2").path)


def _full_logprobs(model: HFModel, ids: list[int]) -> Any:
    """Every position's next-token log-probabilities from one plain pass (no cache reuse):
    the separate computation the shared ones are checked against."""
    with torch.inference_mode():
        logits = model.model(input_ids=torch.tensor([ids])).logits[0]
    return torch.log_softmax(logits.float(), dim=-1)


def _close(a: float, b: float) -> bool:
    return abs(math.exp(a) - math.exp(b)) <= SAME


@pytest.mark.slow
def test_rendered_chat_prompt_has_exactly_one_bos(hf_model: HFModel) -> None:
    bos = hf_model.tokenizer.bos_token_id
    prompt = hf_model.render(
        [{"role": "user", "content": "Toss a coin."}, {"role": "assistant", "content": "It is "}]
    )
    assert prompt.endswith("<|im_start|>assistant\nIt is ")  # the prefill's space kept
    ids = hf_model.encode(prompt)
    assert ids[0] == bos and ids[1] != bos
    # A raw text that spells the BOS itself gets no second one.
    raw = hf_model.encode(hf_model.tokenizer.bos_token + "hello")
    assert raw[0] == bos and raw[1] != bos


@pytest.mark.slow
def test_shared_prefix_scores_equal_separate_passes(hf_model: HFModel) -> None:
    """Choices of different lengths (a padded batch from one copied cache, batch size 2 so
    that two batches run) against one plain pass over prompt + choice each."""
    prompt = "The weather today is "
    choices = ["sunny", "cloudy with a chance of rain", "cold"]
    hf_model.options = type(hf_model.options)(batch_size=2)
    try:
        shared = hf_model.score_choices(prompt, choices)
        base, tokens = hf_model.choice_tokens(prompt, choices)
    finally:
        hf_model.options = type(hf_model.options)()
    assert len(tokens["cloudy with a chance of rain"]) > 3 and len(tokens["cold"]) >= 1
    for choice in choices:
        cont = tokens[choice]
        lps = _full_logprobs(hf_model, base + cont)
        separate = sum(float(lps[len(base) - 1 + j, t]) for j, t in enumerate(cont))
        assert _close(shared.logprobs[choice], separate), choice
    assert 0 < shared.coverage < 1
    assert math.isclose(sum(shared.renormalised.values()), 1.0, rel_tol=1e-9)


@pytest.mark.slow
def test_whole_answer_forms_equal_separate_passes(hf_model: HFModel) -> None:
    """Each form's tokens and stop mass from the batched reading against a plain pass; the
    stop mass counts end of turn and tokens starting with a non-word character."""
    prompt = hf_model.render([{"role": "user", "content": "Reply 0 or 1."}])
    whole = hf_model.whole_answers(prompt, ["0", "1"])
    assert [f.form for f in whole.forms] == ["0", " 0", "1", " 1"]
    assert whole.requests == 2  # the prompt's pass and one batch of four forms
    base = hf_model.encode(prompt)
    texts = {i: hf_model.decode([i]) for i in range(len(hf_model.tokenizer))}
    stop_ids = [i for i, t in texts.items() if ends_word(t)]
    for form in whole.forms:
        lps = _full_logprobs(hf_model, base + list(form.tokens))
        pos = len(base) - 1
        separate = [float(lps[pos + j, t]) for j, t in enumerate(form.tokens)]
        for got, want in zip(form.token_logprobs, separate, strict=True):
            assert _close(got, want), form.form
        stop = float(torch.logsumexp(lps[pos + len(form.tokens), stop_ids], dim=0))
        assert _close(form.stop_logprob, stop), form.form


@pytest.mark.slow
def test_prefix_pass_equals_separate_prompts(hf_model: HFModel) -> None:
    one = hf_model.prefix_choice_probs(STEM, FLIPS, CHOICES, SEPARATOR)
    assert len(one) == len(FLIPS) + 1
    passes = hf_model.forward_passes
    for k, reading in enumerate(one):
        prompt = STEM + "".join(item + SEPARATOR for item in FLIPS[:k])
        separate = hf_model.score_choices(prompt, CHOICES)
        for c in CHOICES:
            assert _close(reading.logprobs[c], separate.logprobs[c]), (k, c)
            assert abs(reading.renormalised[c] - separate.renormalised[c]) <= SAME, (k, c)
        assert abs(reading.coverage - separate.coverage) <= SAME
    assert hf_model.forward_passes - passes == len(FLIPS) + 1  # one-token choices: one each


@pytest.mark.slow
def test_choice_sets_must_be_prefix_free_unless_delimited(hf_model: HFModel) -> None:
    with pytest.raises(FlipbenchError, match="not prefix-free at the token level"):
        hf_model.score_choices("Pick a number: ", ["1", "10"])
    delimited = hf_model.score_choices("Pick a number: ", ["1", "10"], delimiter=",")
    assert delimited.coverage > 0 and set(delimited.renormalised) == {"1", "10"}
    with pytest.raises(FlipbenchError, match="one-token choices"):
        hf_model.prefix_choice_probs(STEM, ["heads"], ["heads", "on its edge"], SEPARATOR)


@pytest.mark.slow
def test_exact_run_agrees_with_local_whole_answers(tmp_path: Path) -> None:
    """`hf/<the embedded GGUF>` against `local/smollm2`, both whole answers, exact mode. The
    runtimes' arithmetic differs (llama.cpp's Q4_1 kernels quantise activations; transformers
    dequantises to float32): over all 21 single-flip conditions the renormalised P("1") differed
    by at most 0.0035 (0.976–0.984) and the coverage by up to 18 % relative (0.020 vs 0.024).
    Tolerances: 0.01 absolute on the rate, a factor 1.35 on the coverage."""
    db = tmp_path / "j.db"
    values = ["0", "50", "100"]
    hf = start_run(
        RunConfig(model=f"hf/{_gguf()}", mode="exact", p_values=values, run_id="hf",
                  backend_options={"batch_size": 2}),
        db,
    )  # fmt: skip
    local = start_run(RunConfig(mode="exact", p_values=values, run_id="local"), db)
    assert hf.results is not None and local.results is not None
    for h, lo in zip(hf.results.conditions, local.results.conditions, strict=True):
        print(f"p={h.condition}: hf {h.rate:.4f} ({h.coverage:.4f}), local {lo.rate:.4f}"
              f" ({lo.coverage:.4f})")  # fmt: skip
        assert abs(h.rate - lo.rate) <= 0.01
        assert 1 / 1.35 <= h.coverage / lo.coverage <= 1.35
    with sqlite3.connect(db) as con:
        (versions,) = con.execute("SELECT versions_json FROM runs WHERE run_id = 'hf'").fetchone()
        (request,) = con.execute(
            "SELECT request_json FROM samples WHERE run_id = 'hf' LIMIT 1"
        ).fetchone()
    recorded = json.loads(versions)["model"]
    assert recorded["batch_size"] == 2 and recorded["dtype"] == "float32"
    assert len(recorded["gguf_sha256"]) == 64
    body = json.loads(request)
    assert body["exact_reading"] == "whole-answer" and body["prompt"].startswith("<|im_start|>")
    assert "batch_size" not in body  # backend options are no request fields


def test_sampling_and_bad_backend_options_are_refused_before_loading(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    with pytest.raises(FlipbenchError, match="use --mode exact"):
        start_run(RunConfig(model="hf/smollm2", p_values=["50"], n=1), db)
    with pytest.raises(FlipbenchError, match="dtype must be one of"):
        start_run(RunConfig(model="hf/smollm2", mode="exact", backend_options={"dtype": "x"}), db)
    with pytest.raises(FlipbenchError, match="take no backend options"):
        start_run(RunConfig(mode="exact", backend_options={"dtype": "float32"}), db)


def test_missing_extra_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(FlipbenchError, match=r"need transformers: pip install 'flipbench\[hf\]'"):
        backend_class("hf/smollm2")
    with pytest.raises(FlipbenchError, match=r"pip install 'flipbench\[hf\]'"):
        require_extra()
    assert HFBackend.prefix == "hf"


def test_importing_the_backend_loads_no_torch() -> None:
    import subprocess

    code = (
        "import sys, flipbench.providers.hf, flipbench.providers.hf_model;"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_loading_prints_no_progress_bars_or_warnings(capfd: pytest.CaptureFixture[str]) -> None:
    """transformers draws a "Loading weights" bar (and logs warnings) on stderr, through
    flipbench's own progress line; `quiet_loading` keeps the terminal clean and restores the
    library's settings. Without it the same load prints the bar (so the check can fail)."""
    import transformers

    from flipbench.providers.hf import quiet_loading
    from flipbench.providers.hf_choices import cache_root

    converted = next((cache_root() / "hf-gguf").iterdir(), None)
    if converted is None:  # the first load converts the GGUF and caches it
        load_model(resolve_source("hf/smollm2"), threads=1)
        converted = next((cache_root() / "hf-gguf").iterdir())
    log: Any = transformers.utils.logging
    log.enable_progress_bar()
    capfd.readouterr()
    auto = transformers.AutoModelForCausalLM
    auto.from_pretrained(str(converted), local_files_only=True)
    assert "Loading weights" in capfd.readouterr().err
    verbosity = log.get_verbosity()
    with quiet_loading(transformers):
        auto.from_pretrained(str(converted), local_files_only=True)
    load_model(resolve_source("hf/smollm2"), threads=1)
    assert capfd.readouterr().err == ""
    assert log.is_progress_bar_enabled() and log.get_verbosity() == verbosity  # restored
