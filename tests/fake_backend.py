"""A backend with nothing to start: the base of the scripted backends the runner tests use."""

from __future__ import annotations

from typing import Any

from flipbench.providers.base import Backend


class InProcessBackend(Backend):
    """No server, no session, no versions: subclasses script `sample` (and `distribution`)."""

    @classmethod
    def validate(cls, model: str) -> None:
        pass

    async def start(self, *, concurrency: int, exact: bool) -> None:
        pass

    async def close(self) -> None:
        pass

    def versions(self) -> dict[str, Any]:
        return {}
