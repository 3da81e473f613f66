"""Interventions made of request fields: reasoning effort, structured output, a tool call.

They need an endpoint that takes the field (`Backend.request_features`): an OpenAI-compatible
API does; the embedded llama.cpp model and hf/… models are refused with one line rather than
silently sent a field they ignore. Structured output and the tool call enumerate the
condition's answers in a JSON schema, so they apply to experiments with one answer of a finite
set per reply.
"""

from __future__ import annotations

from flipbench.interventions.model import Intervention

#: One answer of a finite set per reply: what an enum can hold.
ONE_ANSWER = ("whole-token", "last-option")
EFFORTS = ("low", "medium", "high")
OPENROUTER_REASONING = "OpenRouter's unified `reasoning: {effort}` request field"


def _reasoning(effort: str) -> Intervention:
    return Intervention(
        name=f"reasoning-{effort}",
        summary=f"reasoning effort {effort} as a request field (`reasoning: {{effort}}`);"
        " prompt unchanged",
        source=OPENROUTER_REASONING,
        request_fields={"reasoning": {"effort": effort}},
        needs="reasoning",
        min_max_tokens=4096,
    )


STRUCTURED = Intervention(
    name="structured",
    summary='a JSON-schema response_format whose one field "answer" is an enum of the answers',
    source="OpenAI structured outputs (`response_format: json_schema`, strict)",
    wrapper=(
        '{prompt}\n\nReply with a JSON object {"answer": <answer>}, where <answer> is {answers}.'
    ),
    reader="json",
    request="json-schema",
    needs="response_format",
    min_max_tokens=64,
    parsers=ONE_ANSWER,
)

TOOL_CALL = Intervention(
    name="tool-call",
    summary="the answer as the argument of a forced `submit_answer` tool call",
    source="OpenAI function calling (`tools`, forced `tool_choice`)",
    wrapper="{prompt}\n\nSubmit your answer ({answers}) with the submit_answer tool.",
    reader="tool-call",
    request="tool",
    needs="tools",
    min_max_tokens=64,
    parsers=ONE_ANSWER,
)

INTERVENTIONS = (*(_reasoning(e) for e in EFFORTS), STRUCTURED, TOOL_CALL)
