"""The hostile half of the fault server: reply shapes a careless or malicious provider sends,
and what such a server echoes of a request (its credentials included).

Every shape is something a client must journal as a sample rather than crash on; see
`FaultConfig.hostile` and `FaultConfig.echo_secrets` in `fault_server`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import decimal
import json
import math
import uuid
from typing import Any

from aiohttp import web

#: Hostile reply shapes, in the order ``hostile="all"`` cycles through them.
HOSTILE_SHAPES = (
    "content_parts",
    "content_int",
    "content_null",
    "message_string",
    "message_missing",
    "choices_null",
    "choices_object",
    "usage_list",
    "cost_string",
    "cost_inf",
    "cost_nan",
    "cost_negative",
    "cost_huge",
    "deep_json",
    "surrogate",
    "huge",
    "ansi",
    "error_ansi",
    "content_formula",
    "content_markup",
    "not_json",
    "json_array",
    "empty_body",
)
DEEP_JSON_DEPTH = 200_000  # nesting depth of the ``deep_json`` shape's "x" member
EVIL_URL = "http://evil.example"
#: ``error_ansi``'s message: a CSV formula, terminal escapes (clear, OSC 8 link), rich markup.
ERROR_ANSI_MESSAGE = (
    f'=HYPERLINK("{EVIL_URL}","x") Upstream error \x1b[2J'
    f"\x1b]8;;{EVIL_URL}\x07click\x1b]8;;\x07 [/bold] [link={EVIL_URL}]x[/link]"
)
LITERAL_CONTENT = {
    "content_int": 1,
    "ansi": "\x1b[31m1\x1b[0m",
    "content_formula": f'=HYPERLINK("{EVIL_URL}","1")',
    "content_markup": f"[/bold] 1 [link={EVIL_URL}]x[/link]",
}
_ODD_COST: dict[str, Any] = {
    "cost_inf": math.inf,  # json.dumps writes the bare tokens Infinity and NaN
    "cost_nan": math.nan,
    "cost_negative": -4000,
    "cost_huge": 1e308,
}
RAW_BODIES = {
    "not_json": ("<html>oops</html>", "text/html"),
    "json_array": ("[1, 2]", "application/json"),
    "empty_body": ("", "application/json"),
}
#: Where a reply carries the ``usage.cost`` it was sent with (None: no readable usage).
COST_KEY = web.ResponseKey("fault_server.cost", object)


def hostile_reply(
    shape: str, reply: dict[str, Any], answer: str, huge_bytes: int, headers: dict[str, str]
) -> web.Response:
    """Bend a well-formed success ``reply`` into ``shape``; the response carries its cost."""
    (choice,) = reply["choices"]
    message = choice["message"]
    usage = reply["usage"]
    deep = ""
    if shape == "content_parts":
        message["content"] = [{"type": "text", "text": answer}]
    elif shape == "content_null":
        message["content"] = None
    elif shape in LITERAL_CONTENT:
        message["content"] = LITERAL_CONTENT[shape]
    elif shape == "message_string":
        choice["message"] = answer
    elif shape == "message_missing":
        del choice["message"]
    elif shape == "choices_null":
        reply["choices"] = [None]
    elif shape == "choices_object":
        reply["choices"] = {"0": choice}
    elif shape == "usage_list":
        reply["usage"] = [1, 2, 3]
    elif shape == "cost_string":
        usage["cost"] = _plain_decimal(usage["cost"])
    elif shape in _ODD_COST:
        usage["cost"] = _ODD_COST[shape]
    elif shape == "surrogate":
        message["content"] = f"{answer} \ud800"  # json.dumps writes the escape \ud800
    elif shape == "huge":
        filler = "lorem ipsum dolor sit amet " * (huge_bytes // 27 + 1)
        message["content"] = f"{answer} {filler[: max(0, huge_bytes - 1)]}"
    elif shape == "deep_json":
        deep = f"deep-{uuid.uuid4().hex}"
        message["x"] = deep
    else:  # pragma: no cover - every shape is handled above or before the reply is built
        raise AssertionError(shape)
    text = json.dumps(reply)
    if deep:  # json.dumps would recurse 200,000 deep: splice the nesting in as text
        text = text.replace(json.dumps(deep), "[" * DEEP_JSON_DEPTH + "]" * DEEP_JSON_DEPTH, 1)
    response = web.Response(text=text, headers=headers, content_type="application/json")
    return costed(response, reply["usage"]["cost"] if isinstance(reply["usage"], dict) else None)


def costed(response: web.Response, cost: Any) -> web.Response:
    response[COST_KEY] = cost
    return response


def billable(cost: Any) -> float | None:
    """The billed amount of a ``usage.cost`` as sent: finite and non-negative, else None."""
    if isinstance(cost, bool):
        return None
    if isinstance(cost, str):  # the server charged it, however it chose to spell it
        try:
            cost = float(cost)
        except ValueError:
            return None
    if not isinstance(cost, int | float):
        return None
    value = float(cost)
    return value if math.isfinite(value) and value >= 0 else None


def total(costs: list[float]) -> float:
    try:
        return math.fsum(costs)
    except OverflowError:
        return math.inf


def _plain_decimal(x: float) -> str:
    """``0.00001`` rather than ``1e-05``, as a provider that sends costs as strings writes it."""
    text = format(decimal.Decimal(repr(x)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def hostile_shapes(spec: str | None) -> tuple[str, ...]:
    if spec is None:
        return ()
    if spec.strip() == "all":
        return HOSTILE_SHAPES
    shapes = tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [s for s in shapes if s not in HOSTILE_SHAPES]
    if unknown or not shapes:
        raise ValueError(
            f"hostile must be 'all' or a comma-separated list of {', '.join(HOSTILE_SHAPES)}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    return shapes


def _header_value(value: str) -> str | None:
    """``value`` if it can go out as a header value unchanged, else None."""
    if any(c in value for c in "\r\n\x00"):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


class Echo:
    """What a careless server echoes of a request: its Authorization header and all headers."""

    def __init__(self, request: web.Request) -> None:
        self.authorization = request.headers.get("Authorization", "")
        scheme, _, credential = self.authorization.partition(" ")
        self.secret = credential or self.authorization
        self.basic: str | None = None
        if scheme.lower() == "basic" and credential:
            with contextlib.suppress(binascii.Error, ValueError):
                self.basic = base64.b64decode(credential, validate=True).decode("utf-8", "replace")
        version = f"HTTP/{request.version.major}.{request.version.minor}"
        lines = [f"{request.method} {request.path_qs} {version}"]
        lines += [f"{name}: {value}" for name, value in request.headers.items()]
        self.raw = "\r\n".join(lines)
        self.request_headers = dict(request.headers)

    @property
    def summary(self) -> str:
        basic = f"; basic credentials {self.basic}" if self.basic is not None else ""
        headers = "; ".join(f"{k}: {v}" for k, v in self.request_headers.items())
        return f"Authorization: {self.authorization}{basic}; headers: {headers}"

    @property
    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "provider_name": "FaultyProvider",
            "authorization": self.authorization,
            "headers": self.request_headers,
            "raw": self.raw,
        }
        if self.basic is not None:
            meta["basic"] = self.basic
        return meta

    @property
    def headers(self) -> dict[str, str]:
        out = {"X-Request-Id": f"req-{uuid.uuid4().hex}"}
        if (auth := _header_value(self.authorization)) is not None:
            out["X-Echo-Authorization"] = auth
        if self.secret and (secret := _header_value(self.basic or self.secret)) is not None:
            out["X-Request-Id"] = secret
        return out
