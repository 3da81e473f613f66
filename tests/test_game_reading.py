"""The games reason, then choose: their first-token reading runs only when asked for by name,
and the benchmark samples them without a grammar (issue 11, point 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flipbench.api import start_run
from flipbench.benchmark import PART_RUNS, part_mode
from flipbench.config import RunConfig
from flipbench.errors import FlipbenchError
from tests.cli_helpers import assert_one_line_error, flipbench, snapshot

GAMES = ("bioinformatics", "matching-pennies", "business")


@pytest.mark.parametrize("mode", ["auto", "exact", "sample"])
def test_the_benchmark_samples_the_games_freely_in_every_mode(mode: str) -> None:
    chosen = {run.experiment: part_mode(run, "local/smollm2", mode) for run in PART_RUNS}
    for game in GAMES:
        assert chosen[game] == ("sample", False), (mode, game)
    assert chosen["d-flips"] == ("sample", True)  # no exact reading: sampled under a grammar
    expected = ("sample", True) if mode == "sample" else ("exact", False)
    for other in ("single-flip", "ternary", "word-bias"):
        assert chosen[other] == expected, (mode, other)


def test_exact_mode_refuses_a_game_unless_the_first_token_is_asked_for(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    with pytest.raises(FlipbenchError, match="--first-token"):
        start_run(RunConfig(experiment="business", mode="exact"), db)
    with pytest.raises(FlipbenchError, match="use it with --mode exact"):
        start_run(RunConfig(experiment="single-flip", first_token=True), db)
    with pytest.raises(FlipbenchError, match="use it with --mode exact"):
        start_run(RunConfig(experiment="business", first_token=True), db)
    assert not db.exists()  # refused before anything was written


def test_the_cli_says_so_in_one_line(tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    proc = flipbench("run", "matching-pennies", "--mode", "exact", cwd=tmp_path)
    assert "--first-token" in assert_one_line_error(proc)
    assert snapshot(tmp_path) == before
