"""Runs for the report and compare tests, made through the real run path (`api.start_run`, the
runner, the SQLite journal) with an in-process backend instead of a model.

`HostileBackend` answers a coin flip steeply by p, but every other reply is an attack on a
page that shows it: a `<script>`, an `<img onerror>`, a `javascript:` link, a tag that tries to
close the table it sits in. Its versions and one invalid category carry payloads too, so every
place a report shows a string from a backend is covered.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from flipbench import api
from flipbench.config import RunConfig
from flipbench.providers.base import Backend, Message, Reply, SampleSettings
from tests.fake_backend import InProcessBackend

#: Each sets `window.__pwned` or opens a dialog if it ever runs; the `img` ones would also
#: request `x` from the network.
PAYLOADS = (
    "<script>window.__pwned = 'script'; alert('script')</script>",
    "<img src=x onerror=\"window.__pwned = 'img'; alert('img')\">",
    "<a href=\"javascript:window.__pwned='link';alert('link')\">click for 1</a>",
    "</pre></td></tr></table><script>window.__pwned = 'breakout'</script><pre>",
    '"><svg onload="window.__pwned=\'svg\'"></svg><iframe src="javascript:alert(\'frame\')">',
)
#: A category a backend set on a reply that arrived but is no sample, in an attribute's way.
HOSTILE_CATEGORY = '"><img src=x onerror="window.__pwned=\'category\'">'
_P = re.compile(r"returns \"1\" ([0-9.]+)%")


class HostileBackend(InProcessBackend):
    """Steep coin flips; every other reply a payload (journaled as invalid)."""

    prefix = "hostile"
    hostile = True

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.calls = itertools.count()

    def versions(self) -> dict[str, Any]:
        return {"model": {"name": PAYLOADS[0], "build": PAYLOADS[2]}, "server": PAYLOADS[1]}

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        i = next(self.calls)
        found = _P.search(str(messages[-1].get("content", "")))
        p = float(found.group(1)) / 100 if found else 0.5
        body = {"messages": [dict(m) for m in messages]}
        if self.hostile and i % 2 == 1:
            text = PAYLOADS[(i // 2) % len(PAYLOADS)]
            category = HOSTILE_CATEGORY if (i // 2) % len(PAYLOADS) == 4 else None
            return Reply(body, {"text": text}, ok=True, http_status=200, content=text,
                         finish_reason=PAYLOADS[1], invalid_category=category)  # fmt: skip
        answer = "1" if p > 0.5 or (p == 0.5 and i % 4 == 0) else "0"
        return Reply(body, {"text": answer}, ok=True, http_status=200, content=answer,
                     finish_reason="stop")  # fmt: skip


class SteepBackend(HostileBackend):
    """The same steep coin, without the payloads: a plain run to compare."""

    prefix = "steep"
    hostile = False

    def versions(self) -> dict[str, Any]:
        return {"model": {"name": "steep"}}


def _backend_class(model: str) -> type[Backend]:
    return {"hostile": HostileBackend, "steep": SteepBackend}[model.partition("/")[0]]


def make_run(monkeypatch: pytest.MonkeyPatch, db: Path, **config: Any) -> str:
    """A completed single-flip run of an in-process backend in journal `db`; its id."""
    monkeypatch.setattr(api, "backend_class", _backend_class)
    settings = {"experiment": "single-flip", "grid": "t2", "n": 8, **config}
    outcome = api.start_run(RunConfig(**settings), db)
    assert outcome.status == "complete", outcome.message
    return outcome.run_id
