"""Scripted models for the matrix tests, registered under the `planted/` prefix.

`planted/argmax` answers the argmax of the requested coin unless the prompt hands it a number,
which it turns into the requested distribution exactly (as in test_interventions.py), and
reports token usage and a cost per reply, so that the matrix's overheads have numbers to read.
`planted/sampler` samples the requested coin itself (a calibrated model). Asked to state its
probabilities first (`verbalized`), every model states the requested ones exactly — so
`planted/argmax` is the model that knows the distribution but cannot sample it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from flipbench.config import RunConfig
from flipbench.errors import BudgetReached
from flipbench.providers.base import Backend, Message, Reply, SampleSettings
from flipbench.providers.limits import Budget
from tests.fake_backend import InProcessBackend

_P = re.compile(r'returns "1" (?P<p>[\d.]+)% of the time')
_NUMBER = re.compile(r"source of randomness: (?P<u>0\.\d+)")
COST = 0.0001  # USD per reply


class PlantedBackend(InProcessBackend):
    prefix = "planted"

    def __init__(self, model: str, max_cost: float | None = None) -> None:
        super().__init__(model)
        self.rng = random.Random(7)
        self.budget = Budget(max_cost)  # a paid model: it stops at the run's --max-cost

    @classmethod
    def from_config(cls, config: RunConfig) -> Backend:
        return cls(config.model, config.max_cost)

    def set_spent(self, usd: float) -> None:
        self.budget = Budget(self.budget.max_cost_usd, usd)

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        cap = self.budget.max_cost_usd
        if cap is not None and self.budget.spent + COST > cap + 1e-12:
            raise BudgetReached(self.budget.spent, cap)
        self.budget.add(COST)
        prompt = str(messages[-1]["content"])
        match = _P.search(prompt)
        assert match is not None, prompt
        p = float(match["p"]) / 100
        number = _NUMBER.search(prompt)
        if self.model.endswith("sampler"):
            answer = "1" if self.rng.random() < p else "0"
        elif number:
            answer = "1" if float(number["u"]) < p else "0"
        else:
            answer = "1" if p > 0.5 else "0"
        if "P(<answer>)" in prompt:  # verbalized: the right distribution, then the answer
            answer = f'P("0") = {1 - p:.3f}\nP("1") = {p:.3f}\nAnswer: {answer}'
        usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": 1}
        response = {
            "choices": [{"message": {"content": answer}, "finish_reason": "stop"}],
            "usage": usage,
        }
        body = {"messages": [dict(m) for m in messages]}
        return Reply(body, response, ok=True, http_status=200, content=answer,
                     finish_reason="stop", cost=COST)  # fmt: skip
