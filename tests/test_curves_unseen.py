"""Mean(r) of identical replies: an interval that says what n replies cannot rule out."""

from __future__ import annotations

import pytest
from scipy import stats

from flipbench.curves import position_curves, unseen_reply_bounds


def test_identical_replies_never_give_a_zero_width_mean_interval() -> None:
    pc = position_curves({0.0: [[0, 0]] * 100, 0.5: [[1, 0]] * 50 + [[0, 1]] * 50,
                          1.0: [[1, 1]] * 100})  # fmt: skip
    for e in pc.mean_rate:
        assert e.low < e.high and e.low <= e.value <= e.high
    # 0 of 100 replies unlike those seen: their mass is at most the Clopper–Pearson bound
    u = stats.beta.ppf(0.975, 1, 100)
    assert pc.mean_rate[0].high == pytest.approx(u)
    assert pc.mean_rate[2].low == pytest.approx(1 - u)
    assert (pc.mean_rate[1].low, pc.mean_rate[1].high) == pytest.approx((0.5 - u / 2, 0.5 + u / 2))
    assert unseen_reply_bounds(0.3, 1000, 0.95)[1] - 0.3 < 0.01  # shrinks with n


def test_varied_replies_keep_their_bootstrap_interval() -> None:
    pc = position_curves({0.5: [[1, 1]] * 30 + [[0, 0]] * 30 + [[1, 0]] * 40})
    e = pc.mean_rate[0]
    assert e.value == pytest.approx(0.5) and 0.40 < e.low < 0.5 < e.high < 0.60
