"""Exact mode over a truncated candidate list: bounds on each answer's rate, never a silent 0.

An API returns only the k most probable next tokens (`top_logprobs` 20). Two things can then
stay unknown about the answers' first-token probabilities, and a reading that ignored them would
print a number that is not there (a missing answer at 0, its rival at 1):

* **missing**: no listed candidate begins the answer. Its probability is unknown but at most
  p_k, the smallest listed probability: the list holds the k most probable tokens.
* **shared**: a listed candidate may begin two or more answers ("3" of "30" and "37", "1" of
  "1" and "10" where numbers are split into digits). Which answer its mass belongs to (if any:
  the reply may also continue into a non-answer) depends on the next tokens, which are not read.

`Censoring` records both, read from one reply (`replies.read_exact`), and `bounds` gives the
interval each answer's renormalised rate lies in (derivation in `bounds`). The local backend
widens its list to the vocabulary instead, and is never censored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Bounds narrower than this are a point: the unknowns cannot move the rate.
EXACT_WIDTH = 1e-12


@dataclass(frozen=True)
class SharedToken:
    """A listed candidate that may begin each of `answers` (two or more)."""

    token: str
    logprob: float
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Censoring:
    """What a reply's top-k list leaves unknown about the answers' first-token probabilities.

    `unique`: per answer, the log-probabilities of the listed candidates that begin it and no
    other answer; `shared`: the listed candidates that may begin several; `missing`: the answers
    no listed candidate begins; `kth_logprob`: the smallest listed log-probability (an upper
    bound on every token that was not listed); `top_logprobs`: the k asked for; `listed`: how
    many candidates came.
    """

    unique: Mapping[str, tuple[float, ...]]
    shared: tuple[SharedToken, ...]
    missing: tuple[str, ...]
    kth_logprob: float
    top_logprobs: int
    listed: int

    @property
    def censored(self) -> bool:
        """Whether anything is unknown (else the point reading is exact)."""
        return bool(self.missing or self.shared)

    def bounds(self, temperature: float) -> dict[str, tuple[float, float]]:
        """[low, high] of each answer's renormalised rate at `temperature`.

        At T > 0 the sampler draws a token with weight p^(1/T); restricted to the answers, the
        rate of answer a is its weight over the answers' total. With u = p_k^(1/T) (each
        missing answer's weight lies in [0, u]), w_a the summed weight of a's unique candidates,
        W = Σ w, s_j the weight of shared candidate j (a share c_j,b ≥ 0 of it goes to answer b,
        Σ_b c_j,b ≤ 1: the rest continues into a non-answer), S = Σ_j s_j, S_a = Σ_{j ∋ a} s_j,
        and m missing answers:

            rate_a = (w_a + Σ_j c_j,a s_j + x_a) / (W + Σ_j Σ_b c_j,b s_j + Σ_{b missing} x_b)

        is linear-fractional in the unknowns and monotone in each: it rises with a's own share
        and weight (while below 1) and falls with every rival's. So

            high_a = (w_a + S_a + [a missing] u) / (W + S_a + [a missing] u)
            low_a  =  w_a / (W + S + (m − [a missing]) u)

        high: every shared candidate a may begin goes to a, a missing a sits at u, every other
        unknown at 0; low: a gets nothing, each shared candidate goes to a rival, every other
        missing answer sits at u. The point reading (missing at 0, a shared candidate given to
        the answer it spells exactly, else dropped) lies inside. An answer that can hold no
        mass has [0, 0]; a missing answer alone has [1, 1] wherever a reading exists; when no
        answer can hold any mass every rate is [0, 1].

        At T = 0 the sampler takes the argmax (ties split evenly between answers): high_a puts
        the same unknowns at a's side and is a's share of the top; low_a is 0 when a rival can
        pass a's best candidate, else 1 / (1 + the most answers that can tie it) — a bound,
        conservative when unknown candidates tie exactly.
        """
        if temperature == 0:
            return self._argmax_bounds()
        return self._weighted_bounds(temperature)

    def _weighted_bounds(self, temperature: float) -> dict[str, tuple[float, float]]:
        lps = [lp for lps in self.unique.values() for lp in lps]
        lps += [s.logprob for s in self.shared]
        if self.missing:
            lps.append(self.kth_logprob)
        finite = [lp / temperature for lp in lps if lp != -math.inf]
        if not finite:
            return {a: (0.0, 1.0) for a in self.unique}
        top = max(finite)

        def weight(lp: float) -> float:
            return 0.0 if lp == -math.inf else math.exp(lp / temperature - top)

        w = {a: math.fsum(weight(lp) for lp in lps) for a, lps in self.unique.items()}
        total_w = math.fsum(w.values())
        shared = [(weight(s.logprob), s.answers) for s in self.shared]
        total_s = math.fsum(s for s, _ in shared)
        u = weight(self.kth_logprob) if self.missing else 0.0
        m = len(self.missing)
        if total_w + total_s + m * u == 0:
            return {a: (0.0, 1.0) for a in self.unique}
        out: dict[str, tuple[float, float]] = {}
        for a, wa in w.items():
            own = u if a in self.missing else 0.0
            s_a = math.fsum(s for s, answers in shared if a in answers)
            num_hi = wa + s_a + own
            high = num_hi / (total_w + s_a + own) if num_hi > 0 else 0.0
            den_lo = total_w + total_s + (m - (a in self.missing)) * u
            low = wa / den_lo if den_lo > 0 else 1.0
            out[a] = (min(low, high), high)
        return out

    def _argmax_bounds(self) -> dict[str, tuple[float, float]]:
        best = {a: max(lps, default=-math.inf) for a, lps in self.unique.items()}
        n = len(best)
        out: dict[str, tuple[float, float]] = {}
        for a in best:
            # high: every unknown that may be a's goes to a; rivals keep their listed best
            mine = [best[a], *(s.logprob for s in self.shared if a in s.answers)]
            if a in self.missing:
                mine.append(self.kth_logprob)
            value = max(mine)
            rivals = [best[b] for b in best if b != a]
            peak = max([value, *rivals])
            if peak == -math.inf:
                high = 1.0  # nothing anywhere: no reading, nothing known
            else:
                high = 1.0 / (1 + sum(r == peak for r in rivals)) if value == peak else 0.0
            # low: a keeps its listed best; every unknown goes to a rival
            v = best[a]
            threats = [*rivals, *(s.logprob for s in self.shared)]
            threats += [self.kth_logprob for b in self.missing if b != a]
            if v == -math.inf or any(t > v for t in threats):
                low = 0.0
            else:
                fixed = sum(r == v for r in rivals)
                extra = sum(s.logprob == v for s in self.shared)
                extra += sum(self.kth_logprob == v for b in self.missing if b != a)
                low = 1.0 / (1 + min(n - 1, fixed + extra))
            out[a] = (min(low, high), high)
        return out

    def report(self, point: Mapping[str, float], temperature: float) -> dict[str, Any] | None:
        """What the journal keeps (`meta.censored`): the unknowns, the bounds of every answer's
        rate, and the point a reading that set them to 0 would have shown (null: undefined).
        None when the unknowns cannot move any rate (at T = 0, a missing answer below the
        winner): the point is then exact."""
        bounds = self.bounds(temperature)
        if all(high - low <= EXACT_WIDTH for low, high in bounds.values()):
            return None
        return {
            "top_logprobs": self.top_logprobs,
            "listed": self.listed,
            "kth_logprob": _finite_or_none(self.kth_logprob),
            "kth_prob": _finite_or_none(math.exp(self.kth_logprob)),
            "missing": list(self.missing),
            "shared": [
                {
                    "token": s.token,
                    "logprob": _finite_or_none(s.logprob),
                    "answers": list(s.answers),
                }
                for s in self.shared
            ],
            "bounds": {a: list(b) for a, b in bounds.items()},
            "point": {a: _finite_or_none(p) for a, p in point.items()},
        }


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
