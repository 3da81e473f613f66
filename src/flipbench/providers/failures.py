"""Classify every reply of an OpenAI-compatible / OpenRouter chat-completions call.

OpenRouter sends most failures as HTTP 200 with an `{"error": {code, message, metadata}}` body
(the status equals the code only for invalid requests and credit problems), so the status alone
cannot tell success from failure. Each outcome maps to one of three actions: back off and shrink
concurrency (rate limit), retry with jittered backoff (transient), or stop the model (fatal).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum

from flipbench.safety import scrub

__all__ = ["Failure", "FailureKind", "classify", "parse_retry_after", "retires_the_key", "scrub"]


class FailureKind(StrEnum):
    RATE_LIMIT = "rate_limit"  # back off honouring Retry-After and shrink concurrency
    TRANSIENT = "transient"  # exponential backoff with jitter, then retry
    FATAL = "fatal"  # stop this model at once with one clear message


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    reason: str  # short stable code: "http_429", "error_body_502", "bad_key", …
    message: str  # one human line, secrets scrubbed
    retry_after_s: float | None = None


_TRANSIENT, _RATE, _FATAL = FailureKind.TRANSIENT, FailureKind.RATE_LIMIT, FailureKind.FATAL

_FATAL_REASONS = {401: "bad_key", 402: "no_credits", 403: "moderation", 404: "unknown_model"}
_FATAL_TEXT = {
    401: "rejected the API key",
    402: "reports insufficient credits",
    403: "refused the request (moderation or a key/guardrail budget)",
    404: "does not know this model or endpoint",
}


def retires_the_key(failure: Failure) -> bool:
    """A 402 out of credit (not the transient in-flight budget, which is a rate limit) and a
    401 (the key rejected: revoked, mistyped, its account gone) belong to the key, not to the
    model: with several keys that key is retired and the request goes on another
    (`keys.KeyRing`); one bad key among ten must not stop every model it is dealt to."""
    return failure.kind is FailureKind.FATAL and failure.reason in ("no_credits", "bad_key")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None if unusable."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT
            return None
        seconds = max(0.0, when.timestamp() - (time.time() if now is None else now))
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _int_code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None  # OpenAI-style string codes ("invalid_api_key"): fall back to the HTTP status


def _retry_after(headers: Mapping[str, str], metadata: Mapping[str, object]) -> float | None:
    """Retry-After from the headers, else from the error metadata (OpenRouter copies it there)."""
    found = parse_retry_after(headers.get("retry-after"))
    if found is None:
        seconds = metadata.get("retry_after_seconds")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
            found = float(seconds)
    inner = metadata.get("headers")
    if found is None and isinstance(inner, Mapping):
        lowered = {str(k).lower(): v for k, v in inner.items()}
        value = lowered.get("retry-after")
        found = parse_retry_after(value if isinstance(value, str) else None)
    return found


def _detail(message: object, metadata: Mapping[str, object]) -> str:
    """The server's message plus the metadata that says who failed and why."""
    parts = [str(message)] if message else []
    for key in ("provider_name", "limit_source", "reason", "reasons", "raw"):
        if metadata.get(key):
            parts.append(f"[{key} {metadata[key]}]")
    return scrub(" ".join(parts)) or "no message"


def _in_flight(metadata: Mapping[str, object]) -> bool:
    """The in-flight spending budget is transient; every other 402 is out of credits."""
    tags = f"{metadata.get('reason', '')} {metadata.get('limit_source', '')}".lower()
    return "in_flight" in tags and "weight_exceeds_budget" not in tags


def _from_code(
    code: int,
    *,
    via_body: bool,
    detail: str,
    metadata: Mapping[str, object],
    headers: Mapping[str, str],
    service: str,
) -> Failure:
    where = f"HTTP {code}" if not via_body else f"code {code} in an HTTP 200 error body"
    tag = f"error_body_{code}" if via_body else f"http_{code}"
    retry_after = _retry_after(headers, metadata)
    if code == 429:
        return Failure(_RATE, tag, f"rate limited by {service} ({where}): {detail}", retry_after)
    if code == 402 and _in_flight(metadata):
        text = f"{service} in-flight spending budget exhausted ({where}): {detail}"
        return Failure(_RATE, "in_flight_402", text, retry_after)
    if code in _FATAL_REASONS:
        text = f"{service} {_FATAL_TEXT[code]} ({where}): {detail}"
        return Failure(_FATAL, _FATAL_REASONS[code], text)
    if 400 <= code < 500 and code != 408:
        text = f"{service} rejected the request as invalid ({where}): {detail}"
        return Failure(_FATAL, "bad_request", text)
    text = f"{service} failed transiently ({where}): {detail}"
    return Failure(_TRANSIENT, tag, text, retry_after)


def _from_exception(error: BaseException, service: str) -> Failure:
    name = type(error).__name__
    said = scrub(f"{name}: {error}" if str(error) else name)
    if isinstance(error, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return Failure(_TRANSIENT, "timeout", f"request to {service} timed out ({said})")
    # aiohttp's ServerDisconnectedError/ClientPayloadError are not OSErrors; match by name so
    # this module does not import aiohttp.
    names = {cls.__name__ for cls in type(error).__mro__}
    if isinstance(error, OSError) or names & {"ClientConnectionError", "ClientPayloadError"}:
        return Failure(_TRANSIENT, "connection", f"connection to {service} failed: {said}")
    return Failure(_TRANSIENT, "client_error", f"request to {service} failed: {said}")


def classify(
    *,
    status: int | None,
    data: object | None,
    text: str | None,
    headers: Mapping[str, str] | None,
    error: BaseException | None,
    service: str = "OpenRouter",
) -> Failure | None:
    """None for a usable reply (2xx, JSON object, non-empty `choices`, no `error`), else why not."""
    if error is not None:
        return _from_exception(error, service)
    hdrs = {str(k).lower(): v for k, v in (headers or {}).items()}
    ok_status = status is None or 200 <= status < 300
    body_error = data.get("error") if isinstance(data, dict) else None
    if body_error is None and isinstance(data, dict) and isinstance(data.get("choices"), list):
        # A mid-generation failure can sit on a choice rather than at the top level.
        choice_errors = [c.get("error") for c in data["choices"] if isinstance(c, dict)]
        body_error = next((e for e in choice_errors if e), None)
    if body_error:
        err = body_error if isinstance(body_error, dict) else {"message": body_error}
        meta = err.get("metadata")
        metadata: Mapping[str, object] = meta if isinstance(meta, dict) else {}
        detail = _detail(err.get("message"), metadata)
        code = _int_code(err.get("code"))
        if code is None and not ok_status:
            code = status
        if code is None or 200 <= code < 300:
            text_ = f"{service} returned an error body without a usable code: {detail}"
            return Failure(_TRANSIENT, "error_body", text_)
        return _from_code(
            code,
            via_body=ok_status and code != status,
            detail=detail,
            metadata=metadata,
            headers=hdrs,
            service=service,
        )
    if status is not None and not ok_status:
        detail = scrub(text or "", 200) or "empty body"
        return _from_code(
            status, via_body=False, detail=detail, metadata={}, headers=hdrs, service=service
        )
    if data is None:
        if status is None and not text:
            return Failure(_TRANSIENT, "no_response", f"no response from {service}")
        shown = scrub(text or "", 120) or "empty body"
        return Failure(_TRANSIENT, "malformed_json", f"{service} sent a non-JSON body: {shown}")
    if not isinstance(data, dict):
        kind = type(data).__name__
        return Failure(_TRANSIENT, "malformed_json", f"{service} sent JSON {kind}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return Failure(_TRANSIENT, "no_choices", f"{service} replied without choices (warm-up?)")
    return None
