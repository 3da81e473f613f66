"""Which models a sweep asks: the provider's catalogue filtered, a file, or a list.

OpenRouter's `GET /models` lists every model with its output modalities, prices and supported
parameters; a sweep of "every chat model" is that list filtered: text out, a chat endpoint (not
an image generator or an embedding model), `:free` variants only when asked (they share rate
limits and duplicate a paid model), the user's include/exclude glob patterns, and parameters the
experiment needs (`logprobs`…). The seed's exclusions (routers, guard models, very expensive
deep-research models) are the default exclude list. Every model left out says why, so a sweep
of 240 models can be checked by reading, not trusted.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flipbench.errors import FlipbenchError
from flipbench.providers.base import Pricing

#: The seed's exclusions (spec/sweep.md): routers that pick another model, guard models that
#: classify rather than answer, and deep-research models costing dollars a call.
DEFAULT_EXCLUDE = (
    "openrouter/auto",
    "switchpoint/router",
    "meta-llama/llama-guard-*",
    "perplexity/sonar-deep-research",
    "openai/o1-pro",
    "openai/o3-pro",
)


@dataclass(frozen=True)
class CatalogueModel:
    """One catalogue entry as a sweep needs it (`id` is OpenRouter's `author/slug`)."""

    id: str
    pricing: Pricing | None = None
    parameters: frozenset[str] = frozenset()
    context_length: int | None = None

    @property
    def model(self) -> str:
        """The flipbench model name of this entry."""
        return f"openrouter/{self.id}"


@dataclass
class Selection:
    """The models a sweep will ask, and every catalogue entry left out with its reason."""

    models: list[CatalogueModel]
    left_out: dict[str, str] = field(default_factory=dict)


#: The catalogue's `supported_parameters` that stand for a request feature an intervention
#: needs (`Intervention.needs`): a JSON-schema enum needs structured outputs, not just JSON mode.
FEATURE_PARAMETERS = {
    "response_format": frozenset({"structured_outputs"}),
    "tools": frozenset({"tools"}),
    "reasoning": frozenset({"reasoning", "include_reasoning"}),
}


def for_feature(selection: Selection, feature: str | None, intervention: str) -> Selection:
    """The selection without the models whose catalogue entry does not list what
    `intervention` sends (structured output where the catalogue lists it, and only there)."""
    if feature is None:
        return selection
    wanted = FEATURE_PARAMETERS[feature]
    kept = [m for m in selection.models if m.parameters & wanted]
    why = f"does not list {' or '.join(sorted(wanted))} (needed by --intervention {intervention})"
    left = {m.id: why for m in selection.models if not m.parameters & wanted}
    return Selection(kept, {**selection.left_out, **left})


def _pricing(entry: dict[str, Any]) -> Pricing | None:
    prices = entry.get("pricing")
    if not isinstance(prices, dict):
        return None
    try:
        return Pricing(float(prices["prompt"]), float(prices["completion"]))
    except (KeyError, TypeError, ValueError):
        return None


def read_entry(entry: Any) -> CatalogueModel | None:
    """A catalogue entry, or None when it has no usable id."""
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        return None
    model_id = entry["id"].strip()
    if model_id.count("/") != 1 or "" in model_id.split("/"):
        return None
    params = entry.get("supported_parameters")
    context = entry.get("context_length")
    return CatalogueModel(
        id=model_id,
        pricing=_pricing(entry),
        parameters=frozenset(p for p in params if isinstance(p, str))
        if isinstance(params, list)
        else frozenset(),
        context_length=context if isinstance(context, int) else None,
    )


def _not_chat(entry: dict[str, Any]) -> str | None:
    """Why an entry is not a text-out chat model (None: it is). An entry that does not say
    counts as one: older catalogue entries carry no `architecture`."""
    arch = entry.get("architecture")
    if not isinstance(arch, dict):
        return None
    outputs = arch.get("output_modalities")
    if isinstance(outputs, list) and "text" not in outputs:
        return f"outputs {', '.join(map(str, outputs)) or 'nothing'}, not text"
    modality = arch.get("modality")
    if isinstance(modality, str) and "->" in modality and "text" not in modality.split("->")[1]:
        return f"modality {modality}, not text out"
    if arch.get("endpoint") not in (None, "chat"):  # a catalogue that marks embeddings etc.
        return f"no chat endpoint ({arch.get('endpoint')})"
    return None


def _matches(model_id: str, patterns: Sequence[str]) -> str | None:
    return next((p for p in patterns if fnmatch.fnmatchcase(model_id, p)), None)


def select_models(
    entries: Sequence[Any],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    free: bool = False,
    require: Sequence[str] = (),
) -> Selection:
    """Filter a catalogue (`GET /models`' `data`) down to the models to sweep, in id order."""
    chosen: dict[str, CatalogueModel] = {}
    left_out: dict[str, str] = {}
    for raw in entries:
        entry = read_entry(raw)
        if entry is None:
            continue
        assert isinstance(raw, dict)
        reason = _not_chat(raw)
        if reason is None and entry.id.endswith(":free") and not free:
            reason = ":free variant (add --free to include them)"
        if reason is None and include and _matches(entry.id, include) is None:
            reason = "matches no --include pattern"
        if reason is None and (pattern := _matches(entry.id, exclude)) is not None:
            reason = f"excluded by {pattern!r}"
        missing = [p for p in require if p not in entry.parameters]
        if reason is None and missing:
            reason = f"does not list {', '.join(missing)} among its parameters"
        if reason is None:
            chosen[entry.id] = entry
        else:
            left_out[entry.id] = reason
    return Selection([chosen[k] for k in sorted(chosen)], left_out)


def models_from_names(names: Sequence[str], catalogue: Sequence[Any]) -> Selection:
    """Models named by the user (`author/slug` or `openrouter/author/slug`), priced from the
    catalogue where it lists them; a name it does not list is left out with that reason."""
    known = {e.id: e for e in (read_entry(raw) for raw in catalogue) if e is not None}
    models: list[CatalogueModel] = []
    left_out: dict[str, str] = {}
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        model_id = name.removeprefix("openrouter/")
        if model_id.count("/") != 1 or "" in model_id.split("/"):
            raise FlipbenchError(f"model {name!r} must look like author/slug")
        if known and model_id not in known:
            left_out[model_id] = "not in the provider's catalogue"
            continue
        models.append(known.get(model_id, CatalogueModel(model_id)))
    return Selection(models, left_out)


def read_model_file(path: Path) -> list[str]:
    """One model per line; blank lines and `#` comments are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FlipbenchError(f"cannot read model list {path}: {type(exc).__name__}") from None
    names = [line.split("#", 1)[0].strip() for line in lines]
    return [n for n in names if n]
