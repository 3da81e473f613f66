"""The pieces of OpenRouter's chat-completions wire format that the fault server writes.

Kept apart from the server (`fault_app`) so that what a reply looks like on the wire (the error
envelope, `usage`, `logprobs`) is read in one place and matches what clients parse, whatever
fault the server is playing. Only shapes live here; which one is sent is the server's choice.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

#: The prompt sentence that ``echo_p`` reads a requested probability from.
ECHO_RE = re.compile(r'returns "1" (\d+(?:\.\d+)?)% of the time')
#: The sweep's seed prompt asks `Write the output EXACTLY like "Output: A" or "Output: B"`.
LABELS_RE = re.compile(r'EXACTLY like "Output: (\S+)" or "Output: (\S+)"')
_ZERO_PROB_LOGPROB = -9999.0  # what OpenAI-style servers report for a zero-probability token
SERVER_ERROR_MESSAGES = {
    500: "Internal Server Error",
    502: "Upstream provider error",
    503: "No available provider meets your routing requirements",
}


def error_response(
    status: int,
    code: int,
    message: str,
    metadata: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """OpenRouter's error envelope; `status` differs from `code` for HTTP-200 errors."""
    err: dict[str, Any] = {"code": code, "message": message}
    if metadata is not None:
        err["metadata"] = metadata
    return json_response({"error": err}, status=status, headers=headers)


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(obj), status=status, headers=headers, content_type="application/json"
    )


def _logprob(p: float) -> float:
    return math.log(p) if p > 0 else _ZERO_PROB_LOGPROB


def prompt_text(body: dict[str, Any]) -> str:
    """All message text, whether `content` is a string or a list of typed parts."""
    parts: list[str] = []
    for msg in body.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def usage_json(
    prompt: int, completion: int, cost: float, reasoning_tokens: int = 0
) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": cost,
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


@dataclass(frozen=True)
class TopList:
    """How a top_logprobs list is cut (`FaultConfig`'s omit_from_top, top_extra, top_k_cap and
    top_filler_p); the default shows "1" then "0", cut to the requested count."""

    omit: frozenset[str] = frozenset()
    extra: tuple[tuple[str, float], ...] = ()
    cap: int = 0
    filler_p: float = 0.0

    def candidates(self, p1: float, requested: int) -> list[tuple[str, float]]:
        listed = [("1", p1), ("0", 1.0 - p1), *self.extra]
        if self == TopList():
            return listed[:requested]
        listed = [c for c in listed if c[0] not in self.omit]
        if self.filler_p > 0:  # a full list of them: an answer less probable falls out
            listed += [(f"<filler{i}>", self.filler_p) for i in range(requested)]
        listed.sort(key=lambda c: -c[1])  # stable: answers before fillers of equal probability
        return listed[: min(requested, self.cap) if self.cap else requested]


def logprobs_json(
    answer: str, p1: float, top: Any, top_list: TopList | None = None
) -> dict[str, Any] | None:
    """Exact log-probabilities of "1"/"0"; null for an empty reply, as providers do."""
    if not answer:
        return None
    n = top if isinstance(top, int) and top > 0 else 0
    alternatives = [
        {"token": token, "logprob": _logprob(p)}
        for token, p in (top_list or TopList()).candidates(p1, n)
    ]
    lp = _logprob(p1 if answer == "1" else 1.0 - p1)
    return {"content": [{"token": answer, "logprob": lp, "top_logprobs": alternatives}]}
