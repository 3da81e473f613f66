"""Interventions as data, looked up by name: how a model is asked to randomise.

Each module of this package holds one group (`prompting`, `seeds`, `verbalized`, `requests`);
`get_intervention` finds one by name with a one-line error for a name it does not know, and
`check_intervention` refuses, before anything runs, a combination that cannot work (exact mode
with a reply that is no longer the bare answer, a request field the backend does not send).
See docs/interventions.md.
"""

from __future__ import annotations

from collections.abc import Iterable

from flipbench.errors import FlipbenchError
from flipbench.interventions import prompting, requests, seeds, verbalized
from flipbench.interventions.model import SEED_SLOT, TOOL_NAME, Intervention

__all__ = [
    "INTERVENTIONS",
    "SEED_SLOT",
    "TOOL_NAME",
    "Intervention",
    "check_intervention",
    "get_intervention",
]

#: Every intervention, by name, in the order `flipbench interventions` lists them.
INTERVENTIONS: dict[str, Intervention] = {
    i.name: i for group in (prompting, seeds, verbalized, requests) for i in group.INTERVENTIONS
}


def get_intervention(name: str) -> Intervention:
    """The intervention called `name`, or a one-line error naming the known ones."""
    found = INTERVENTIONS.get(name)
    if found is None:
        shown = name if len(name) <= 40 else name[:39] + "…"
        known = ", ".join(INTERVENTIONS)
        raise FlipbenchError(f"unknown intervention {shown!r} (known: {known})")
    return found


def check_intervention(
    intervention: Intervention,
    *,
    experiment: str,
    protocol: str,
    parser: str,
    mode: str,
    constrained: bool,
    model: str,
    features: Iterable[str],
    model_options: Iterable[str],
) -> None:
    """Refuse what this intervention cannot do with this run, in one line, before anything runs."""
    name = intervention.name
    if mode == "exact" and not intervention.bare_answer:
        raise FlipbenchError(
            f"--intervention {name} changes the reply (not the bare answer), and exact mode reads"
            " the probability of a bare answer; use --mode sample"
        )
    if mode == "exact" and intervention.seed:
        raise FlipbenchError(
            f"--intervention {name} gives each sample its own number: use --mode sample"
        )
    if constrained and not intervention.bare_answer:
        raise FlipbenchError(
            f"--constrained forces a bare answer; --intervention {name} asks for more: drop one"
        )
    if protocol not in intervention.protocols:
        raise FlipbenchError(
            f"--intervention {name} does not apply to {experiment} (its trials are {protocol!r};"
            f" it takes {', '.join(intervention.protocols)})"
        )
    if parser not in intervention.parsers:
        raise FlipbenchError(
            f"--intervention {name} needs one answer of a finite set per reply; {experiment}"
            f" answers with the {parser!r} parser"
        )
    if intervention.needs is not None and intervention.needs not in set(features):
        raise FlipbenchError(
            f"--intervention {name} sends the request field {intervention.needs!r}, which"
            f" {model} does not take (use an API model: openrouter/… or openai-api/…)"
        )
    sent = set(intervention.fields_for(("x",)))
    if clash := sorted(sent & {str(k) for k in model_options}):
        raise FlipbenchError(
            f"-M {clash[0]}=… would replace what --intervention {name} sends; drop one of them"
        )
