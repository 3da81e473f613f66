"""Backends, registered by model-name prefix and imported only when used.

Heavy optional dependencies (the llama.cpp runtime, HTTP clients, transformers) load only
when a model with that prefix is asked for, the way lm-evaluation-harness registers models.
"""

from __future__ import annotations

import importlib

from flipbench.errors import FlipbenchError
from flipbench.providers.base import Backend

_REGISTRY: dict[str, str] = {
    "local": "flipbench.providers.local:LocalBackend",
    "openrouter": "flipbench.providers.openai_api:OpenRouterBackend",
    "openai-api": "flipbench.providers.openai_api:OpenAICompatibleBackend",
    "hf": "flipbench.providers.hf:HFBackend",
}


def backend_class(model: str) -> type[Backend]:
    """The backend class for a model name such as `local/smollm2`, validated by that backend."""
    prefix, _, rest = model.partition("/")
    if prefix not in _REGISTRY or not rest:
        known = ", ".join(f"{p}/…" for p in _REGISTRY)
        raise FlipbenchError(f"unknown model {model!r}: model names start with one of {known}")
    module_name, _, attr = _REGISTRY[prefix].partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), attr)
    cls.validate(model)
    return cls


__all__ = ["Backend", "backend_class"]
