"""A local model's request timeout: 120 s unless --timeout asks for more (long sampled replies
with several in flight on a slow CPU timed out at the fixed 120 s, whatever --timeout said)."""

from __future__ import annotations

from flipbench.config import RunConfig
from flipbench.providers.local import LOCAL_TIMEOUT_S, LocalBackend


def test_timeout_raises_the_local_floor_and_never_lowers_it() -> None:
    default = LocalBackend.from_config(RunConfig(model="local/smollm2"))
    assert isinstance(default, LocalBackend) and default.timeout_s == LOCAL_TIMEOUT_S == 120.0
    longer = LocalBackend.from_config(RunConfig(model="local/smollm2", timeout_s=900))
    assert isinstance(longer, LocalBackend) and longer.timeout_s == 900.0
    shorter = LocalBackend.from_config(RunConfig(model="local/smollm2", timeout_s=5))
    assert isinstance(shorter, LocalBackend) and shorter.timeout_s == LOCAL_TIMEOUT_S
