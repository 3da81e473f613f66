"""Synthetic runs of every experiment kind, written to a real journal as the runner writes them.

Answers are drawn from a seeded generator that mimics the paper's findings (step-like coins,
under-dispersed replies, a narrow Gaussian), so the figures drawn from them look like real
ones and tests can check what the figures say.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from flipbench.results import RunResults, compute_results
from flipbench.store import Journal, SampleRecord
from flipbench.tasks import get_experiment
from flipbench.tasks.definition import Condition, ResolvedExperiment

Answer = Callable[[Condition, int, np.random.Generator], str]


def steep(p: float, sharpness: float) -> float:
    """A step-like response rate: the paper's models overshoot towards the likelier side."""
    return 1.0 / (1.0 + math.exp(-sharpness * (p - 0.5)))


def _flip(sharpness: float) -> Answer:
    def answer(c: Condition, i: int, rng: np.random.Generator) -> str:
        return "1" if rng.random() < steep(c.x, sharpness) else "0"

    return answer


def _flips(d: int, sharpness: float) -> Answer:
    """D flips with a fixed number of ones (under-dispersed), first position steeper."""

    def answer(c: Condition, i: int, rng: np.random.Generator) -> str:
        ones = round(c.x * d + rng.integers(-1, 2) * (0 < c.x < 1))
        ones = min(max(ones, 0), d)
        bits = [1] * ones + [0] * (d - ones)
        rng.shuffle(bits)
        bits[0] = int(rng.random() < steep(c.x, sharpness))
        return " ".join(str(b) for b in bits)

    return answer


def _ternary(c: Condition, i: int, rng: np.random.Generator) -> str:
    q = c.x
    probs = np.array([0.6 - q, 0.4, q]) ** 2
    return str(rng.choice(3, p=probs / probs.sum()))


def _gaussian(c: Condition, i: int, rng: np.random.Generator) -> str:
    return str(round(rng.normal(103.0, 6.0)))


def _words(c: Condition, i: int, rng: np.random.Generator) -> str:
    red = (c.group or "").split("/")[0]
    listed_first = 0.75 if c.answers[0] == red else 0.55  # position bias plus a red preference
    return c.answers[0] if rng.random() < listed_first else c.answers[1]


def _game(sharpness: float) -> Answer:
    def answer(c: Condition, i: int, rng: np.random.Generator) -> str:
        return c.answers[0] if rng.random() < steep(c.x, sharpness) else c.answers[1]

    return answer


def make_run(
    journal: Journal,
    run_id: str,
    experiment: ResolvedExperiment,
    answer: Answer,
    *,
    model: str = "synthetic/model",
    n: int | None = None,
    invalid: int = 0,
    seed: int = 0,
    skip: frozenset[str] = frozenset(),
) -> None:
    """Create the run; per condition (but skipped ones) journal `invalid` unparseable replies,
    then n valid answers, as the runner does when it tops a condition up to N valid."""
    journal.create_run(
        run_id=run_id, experiment=experiment.name, model=model, mode="sample", config={},
        definition=experiment.model_dump(mode="json"),
        definition_hash=experiment.definition_hash(), versions={},
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    for cond in experiment.conditions():
        if cond.key in skip:
            continue
        for i in range(invalid + (experiment.n if n is None else n)):
            bad = i < invalid
            text = None if bad else answer(cond, i, rng)
            journal.record(
                run_id,
                SampleRecord(
                    condition=cond.key, sample_index=i, status="ok", request={"messages": []},
                    response={"choices": []}, valid=not bad, content=text, answer=text,
                    invalid_category="unparseable" if bad else None,
                ),
            )  # fmt: skip


def empty_run(journal: Journal, run_id: str, name: str) -> None:
    """A run that has started but holds only invalid replies."""
    make_run(journal, run_id, get_experiment(name).resolve(n=2), _flip(8.0), n=0, invalid=2)


def kinds(sharpness: float = 10.0) -> dict[str, tuple[ResolvedExperiment, Answer]]:
    """name -> (experiment, answers) for one run of each kind, small grids; sharper = steeper.

    Ternary and word runs use N = 32: analysis multiplies shares back into counts, and only
    a power of two (or a friendly N such as 40) gives them back as exact integers.
    """
    return {
        "flip": (get_experiment("single-flip").resolve(grid="t2", n=40), _flip(sharpness)),
        "d-flips": (
            get_experiment("d-flips").resolve(grid="default", n=30),
            _flips(2, sharpness),
        ),
        "d-flips-10": (
            get_experiment("d-flips").resolve(p_values=["15", "30", "45", "55", "85"], n=40, d=10),
            _flips(10, sharpness),
        ),
        "d-flips-100": (
            get_experiment("d-flips").resolve(grid="fig3", n=30, d=100),
            _flips(100, sharpness),
        ),
        "chained": (get_experiment("chained-flips").resolve(n=30), _flips(2, sharpness)),
        "ternary": (get_experiment("ternary").resolve(n=32), _ternary),
        "gaussian": (get_experiment("gaussian").resolve(n=200), _gaussian),
        "word-pair": (get_experiment("word-bias").resolve(n=32), _words),
        "bioinformatics": (
            get_experiment("bioinformatics").resolve(n=30),
            _game(sharpness),
        ),
        "matching-pennies": (
            get_experiment("matching-pennies").resolve(n=30),
            _game(sharpness),
        ),
        "business": (get_experiment("business").resolve(n=30), _game(sharpness)),
    }


def run_id_of(name: str, model: str) -> str:
    """The id of the run of `name` on `model` in `journal_with` (a valid run id: no '/' or ':')."""
    return f"{name}.{model.replace('/', '.')}"


def journal_with(tmp: Path, names: list[str], models: tuple[str, ...] = ("model-a",)) -> Journal:
    """A journal holding, for each name and model, the run `run_id_of(name, model)`."""
    journal = Journal(tmp / "j.db")
    for m, model in enumerate(models):
        for name in names:
            experiment, answer = kinds(6.0 + 8.0 * m)[name]
            run_id = run_id_of(name, model)
            make_run(journal, run_id, experiment, answer, model=model, seed=m, invalid=1)
    return journal


def gaussian_results(journal: Journal, run_id: str) -> RunResults:
    """A Gaussian run's results without their raw answers, as results rebuilt elsewhere
    (an export, say) would come: the figures must fall back on the metric's histogram."""
    results = compute_results(journal, run_id)
    results.raw = []
    return results
