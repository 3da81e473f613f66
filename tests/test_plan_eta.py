"""Issue 12, points 3–5: every run's plan (its time on a local model), an ETA from attempts,
`--threads` (recorded, refused for API models), and a CLI that starts without heavy imports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from flipbench import api
from flipbench.config import RunConfig, available_cores
from flipbench.errors import FlipbenchError
from flipbench.plan import LOCAL_RATES, SLOW_RUN_S, Plan, local_seconds, slow_warning
from flipbench.progress import eta_seconds
from flipbench.providers.base import Backend, Message, Reply, SampleSettings
from flipbench.store import Journal
from tests.cli_helpers import assert_one_line_error, flipbench
from tests.fake_backend import InProcessBackend

HEAVY = ("pandas", "matplotlib", "scipy", "pyarrow", "xllamacpp", "jinja2", "numpy", "aiohttp")
#: The layers a listing does not need: runs are listed from the journal and its remembered S.
LISTING_UNNEEDED = ("flipbench.api", "flipbench.results", "flipbench.benchmark_models")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    """`runs`, `show`, `--help` must not pay for pandas, matplotlib, scipy… (~0.5 s each), nor
    for numpy and the statistics until a command has results to compute (issue 12 point 5)."""
    code = (
        "import json, sys, flipbench.cli;"
        f"print(json.dumps([m for m in {HEAVY + LISTING_UNNEEDED!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_the_eta_counts_attempts_not_only_valid_answers() -> None:
    # 600 requests in 60 s, 1 % valid: valid answers alone promise 2,094 / 0.1 per s = hours;
    # the attempt cap ends the run after the 9,900 attempts left, 990 s from now.
    assert eta_seconds(60.0, 600, 6, 2094, 9900) == pytest.approx(990.0)
    # All valid: the valid answers missing decide, at the rate seen.
    assert eta_seconds(10.0, 100, 100, 200, 10_000) == pytest.approx(20.0)
    # Nothing valid yet: every attempt left will be made.
    assert eta_seconds(10.0, 100, 0, 200, 400) == pytest.approx(40.0)
    assert eta_seconds(0.0, 0, 0, 200, 400) is None
    assert eta_seconds(5.0, 10, 10, 0, 400) == 0.0


def test_a_local_plan_says_how_long_and_warns_before_a_long_run() -> None:
    quick = local_seconds(21, exact=True, reply_tokens=(2, 2))
    plan = Plan(21, 21, 63, 50, 1, None, quick)
    assert "about" in plan.line() and "cost" not in plan.line()
    assert slow_warning(plan, exact_possible=True) is None
    # The README's old example: 4,200 replies of up to 16 tokens, unconstrained.
    slow = local_seconds(4200, exact=False, reply_tokens=(2, 16))
    assert slow[0] < slow[1] and slow[1] > SLOW_RUN_S
    warning = slow_warning(Plan(21, 4200, 21000, 50, 16, None, slow), exact_possible=True)
    assert warning is not None and warning.startswith("warning:") and "--mode exact" in warning
    # A constrained reply is its answer tokens: far quicker than an unconstrained one.
    assert local_seconds(4200, exact=False, reply_tokens=(2, 2))[1] < slow[1] / 4


def test_long_prompts_count_once_per_reading_and_per_slot_a_condition_lands_on() -> None:
    """An in-context run (a 1,500-token prompt) once said 1-40 s and took 616 s: each slot a
    sampled condition lands on computes its prompt (~4 ms a token here)."""
    rate = LOCAL_RATES.prompt_tokens_per_s
    short = local_seconds(100, exact=False, reply_tokens=(2, 40), prompt_tokens=60, conditions=1)
    long = local_seconds(100, exact=False, reply_tokens=(2, 40), prompt_tokens=1500, conditions=1)
    assert long[0] - short[0] == pytest.approx((1500 - 60) / rate)  # once per condition
    slots = min(100, LOCAL_RATES.slots)
    assert long[1] - short[1] == pytest.approx(slots * (1500 - 60) / rate)  # once per slot
    assert long[1] > 150  # the order of magnitude the 616 s run needed
    exact = local_seconds(21, exact=True, reply_tokens=(2, 2), prompt_tokens=1500)
    assert exact[0] == pytest.approx(21 * (LOCAL_RATES.exact_s_per_condition + 1500 / rate))


class _CpuBackend(InProcessBackend):
    """An in-process stand-in for a model on this machine's CPU."""

    prefix: ClassVar[str] = "cpu"
    uses_cpu_threads: ClassVar[bool] = True
    seen: ClassVar[list[int | None]] = []

    @classmethod
    def from_config(cls, config: RunConfig) -> Backend:
        cls.seen.append(config.threads)
        return cls(config.model)

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        body = {"messages": [dict(m) for m in messages]}
        return Reply(body, {"text": "1"}, ok=True, http_status=200, content="1")


def test_threads_default_to_this_process_cores_and_are_recorded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(api, "backend_class", lambda model: _CpuBackend)
    notes: list[str] = []
    config = RunConfig(model="cpu/x", experiment="single-flip", grid="t2", n=2, run_id="r")
    outcome = api.start_run(config, tmp_path / "j.db", notify=notes.append)
    assert outcome.status == "complete"
    assert _CpuBackend.seen[-1] == available_cores()
    with Journal(tmp_path / "j.db", create=False) as journal:
        assert journal.get_run("r").config["threads"] == available_cores()
    assert any(n.startswith("plan: 14 calls") and "about" in n for n in notes), notes
    config = config.model_copy(update={"threads": 1, "run_id": "one"})
    api.start_run(config, tmp_path / "j.db")
    assert _CpuBackend.seen[-1] == 1


def test_threads_are_refused_for_api_models(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test-not-a-key")
    config = RunConfig(model="openrouter/openai/gpt-5", threads=2)
    with pytest.raises(FlipbenchError, match="--threads"):
        api.start_run(config, tmp_path / "j.db")
    proc = flipbench(
        "run", "single-flip", "--model", "openrouter/openai/gpt-5", "--threads", "2",
        cwd=tmp_path,
    )  # fmt: skip
    assert "--threads" in assert_one_line_error(proc)
    assert not (tmp_path / "flipbench.db").exists()


def test_a_journal_reads_only_the_columns_asked(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal, pytest.raises(ValueError, match="unknown"):
        list(journal.samples("r", ["condition; DROP TABLE runs"]))


class _ExactCpuBackend(_CpuBackend):
    """Reads exactly on this machine's CPU at its own measured rate (as `hf/` does)."""

    prefix: ClassVar[str] = "cpu-exact"
    supports_exact: ClassVar[bool] = True
    exact_s_per_condition: ClassVar[float | None] = 0.25

    async def distribution(self, messages: Sequence[Message], answers: Sequence[str]) -> Reply:
        reply = Reply({"messages": [dict(m) for m in messages]}, {}, ok=True, http_status=200)
        reply.answer_logprobs = {a: [-0.7] for a in answers}
        return reply


class _ExactLlamaRate(_ExactCpuBackend):
    prefix: ClassVar[str] = "cpu-llama"
    exact_s_per_condition: ClassVar[float | None] = None  # the plan's llama.cpp rate


def test_an_exact_plan_uses_the_backend_own_reading_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`hf/` reads a condition ~10× faster than llama.cpp: its plan must not say llama.cpp's."""
    from flipbench.providers.hf import HFBackend
    from flipbench.providers.local import LocalBackend

    plans: dict[str, str] = {}
    for backend in (_ExactCpuBackend, _ExactLlamaRate):
        monkeypatch.setattr(api, "backend_class", lambda model, b=backend: b)
        notes: list[str] = []
        config = RunConfig(model=f"{backend.prefix}/x", experiment="single-flip", grid="t2",
                           mode="exact", run_id=backend.prefix)  # fmt: skip
        assert api.start_run(config, tmp_path / "j.db", notify=notes.append).status == "complete"
        plans[backend.prefix] = next(n for n in notes if n.startswith("plan: 7 calls"))
    assert "about 2 s " in plans["cpu-exact"]  # 7 × 0.25 s
    # llama.cpp's rate: the reading and its prompt afresh (~100 tokens at ~4 ms a token)
    said = re.search(r"about (\d+) s ", plans["cpu-llama"])
    assert said is not None, plans["cpu-llama"]
    reading = 7 * LOCAL_RATES.exact_s_per_condition
    prompts = 7 * 100 / LOCAL_RATES.prompt_tokens_per_s
    assert reading < int(said.group(1)) <= round(reading + prompts)
    assert LocalBackend.exact_s_per_condition is None
    hf_rate = HFBackend.exact_s_per_condition
    assert hf_rate is not None and hf_rate < LOCAL_RATES.exact_s_per_condition / 2
