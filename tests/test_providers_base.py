"""Exact mode: the answer distribution a sampler would produce, from raw log-probabilities."""

from __future__ import annotations

import math

import pytest

from flipbench.providers.base import exact_distribution
from flipbench.providers.openai_compat import answer_logprobs


def test_renormalises_over_answer_tokens_at_temperature_one() -> None:
    dist = exact_distribution({"0": [math.log(0.01)], "1": [math.log(0.03)]}, 1.0)
    assert dist.coverage == pytest.approx(0.04)
    assert dist.raw == pytest.approx({"0": 0.01, "1": 0.03})
    assert dist.renormalised == pytest.approx({"0": 0.25, "1": 0.75})


def test_temperature_sharpens_and_flattens() -> None:
    lps = {"0": [math.log(0.2)], "1": [math.log(0.6)]}
    # p_i^(1/T) renormalised: T = 0.5 → 0.04 : 0.36; T = 2 → sqrt(.2) : sqrt(.6)
    assert exact_distribution(lps, 0.5).renormalised["1"] == pytest.approx(0.36 / 0.40)
    two = math.sqrt(0.6) / (math.sqrt(0.2) + math.sqrt(0.6))
    assert exact_distribution(lps, 2.0).renormalised["1"] == pytest.approx(two)
    assert exact_distribution(lps, 0.0).renormalised == {"0": 0.0, "1": 1.0}


def test_several_tokens_of_one_answer_add_up() -> None:
    dist = exact_distribution({"0": [math.log(0.1)], "1": [math.log(0.1), math.log(0.2)]}, 1.0)
    assert dist.renormalised["1"] == pytest.approx(0.75)


def test_no_answer_tokens_gives_zero_coverage() -> None:
    dist = exact_distribution({"0": [], "1": []}, 1.0)
    assert dist.coverage == 0.0
    assert all(math.isnan(v) for v in dist.renormalised.values())


def test_answer_logprobs_reads_stripped_tokens_and_reports_missing() -> None:
    data = {
        "choices": [
            {
                "logprobs": {
                    "content": [
                        {
                            "token": "I",
                            "logprob": -0.1,
                            "top_logprobs": [
                                {"token": "I", "logprob": -0.1},
                                {"token": "1", "logprob": -3.0},
                                {"token": " 1", "logprob": -5.0},
                                {"token": "10", "logprob": -6.0},
                            ],
                        }
                    ]
                }
            }
        ]
    }
    found, missing = answer_logprobs(data, ["0", "1"])
    assert found == {"0": [], "1": [-3.0, -5.0]}
    assert missing == {"0"}
