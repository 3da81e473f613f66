"""Several API keys for one service: read them, spread requests over them, retire the spent ones.

Users with separate accounts, or one account with per-key credit limits, set
`OPENROUTER_API_KEY` and/or `OPENROUTER_API_KEY_0` … `_9` (the Failure-to-Mix code rotated the
same ten variables). Requests go round-robin over the keys still live; a key whose account is
out of credit (a 402 that is not the transient in-flight budget) or that the service rejects (a
401: revoked or mistyped) is retired for the rest of the process, and the request that met it
goes on another key. When every key is retired the run or
sweep stops with a message that names the keys by their variable names.

A key is known everywhere by its *label* (the variable it came from), which is what is journaled
with each reply and printed in messages; its value leaves this module only as an HTTP header.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from flipbench.errors import BackendFatalError, FlipbenchError

__all__ = ["KEY_SLOTS", "ApiKey", "KeyRing", "KeysExhausted", "key_variables", "read_keys"]

#: `<BASE>_0` … `<BASE>_9`, after `<BASE>` itself.
KEY_SLOTS = 10


@dataclass(frozen=True)
class ApiKey:
    """One key: `label` is the variable it came from (safe to store), `value` is the secret."""

    label: str
    value: str = field(repr=False)

    def __str__(self) -> str:
        return self.label


def key_variables(base: str) -> tuple[str, ...]:
    """The variables a key may come from, in the order they are read."""
    return (base, *(f"{base}_{i}" for i in range(KEY_SLOTS)))


def read_keys(environ: Mapping[str, str], base: str) -> list[ApiKey]:
    """The keys set under `base` and `base_0` … `base_9`, in that order.

    Surrounding whitespace is dropped and a blank variable is no key. The same value under two
    names is one key (labelled by the first name), so that one account is not counted twice
    nor retried on itself. A value with whitespace or control characters inside cannot be an
    HTTP header: refused, naming the variable only.
    """
    keys: list[ApiKey] = []
    seen: set[str] = set()
    for name in key_variables(base):
        value = (environ.get(name) or "").strip()
        if not value:
            continue
        if any(ch.isspace() or not ch.isprintable() for ch in value):
            raise FlipbenchError(
                f"{name} holds whitespace or control characters inside the key; set it to the"
                " key alone"
            )
        if value not in seen:
            seen.add(value)
            keys.append(ApiKey(name, value))
    return keys


class KeysExhausted(BackendFatalError):
    """Every key is retired: nothing can be sent until a key is added or topped up.

    A `BackendFatalError` (no request can succeed), but a sweep tells it apart: it is no fault
    of the model, so the model is left to resume rather than skipped.
    """

    def __init__(self, message: str, labels: Sequence[str]) -> None:
        super().__init__(message)
        self.labels = list(labels)


class KeyRing:
    """The keys of one process (a run, or all the models of a sweep) and which are retired.

    Lives on one event loop; `pick` and `retire` never await, so they need no lock.
    """

    def __init__(
        self, keys: Sequence[ApiKey], *, service: str = "OpenRouter", base: str = ""
    ) -> None:
        self.keys = list(keys)
        self.service = service
        self.base = base
        self._retired: dict[str, tuple[str, str]] = {}  # label -> (why, failure reason)
        self._turn = itertools.count()

    @classmethod
    def from_env(
        cls, base: str, *, service: str = "OpenRouter", environ: Mapping[str, str] | None = None
    ) -> KeyRing:
        return cls(
            read_keys(os.environ if environ is None else environ, base), service=service, base=base
        )

    @property
    def live(self) -> list[ApiKey]:
        return [k for k in self.keys if k.label not in self._retired]

    @property
    def retired(self) -> dict[str, str]:
        """Label -> why, in the order the keys were retired."""
        return {label: why for label, (why, _) in self._retired.items()}

    @property
    def exhausted(self) -> bool:
        """True when there were keys and none is left (an empty ring: a server without keys)."""
        return bool(self.keys) and not self.live

    def pick(self) -> ApiKey | None:
        """The next live key, round-robin (None when none is live)."""
        live = self.live
        return live[next(self._turn) % len(live)] if live else None

    def retire(self, key: ApiKey, why: str, reason: str = "no_credits") -> bool:
        """Never use `key` again in this process (`reason`: the failure's, `no_credits` or
        `bad_key`); False when it was already retired."""
        if key.label in self._retired:
            return False
        self._retired[key.label] = (why, reason)
        return True

    def exhausted_error(self, resume_hint: str) -> KeysExhausted:
        """The stop once every key is retired: names the keys and why, never their values."""
        labels = list(self._retired)
        base = self.base or (labels[0] if labels else "the key")
        groups: dict[str, list[str]] = {}
        for label, (_, reason) in self._retired.items():
            groups.setdefault(reason, []).append(label)
        said = "; ".join(
            f"{', '.join(names)} retired"
            f" ({_RETIRED_AS.get(reason, reason).format(service=self.service)})"
            for reason, names in groups.items()
        )
        message = (
            f"{self.service}: no key left: {said};"
            f" add credit or set another key ({base} or {base}_0 … _{KEY_SLOTS - 1}),"
            f" then {resume_hint}"
        )
        return KeysExhausted(message, labels)


#: What retired a key, by the failure's reason (`failures.retires_the_key`).
_RETIRED_AS = {
    "no_credits": "out of credit, HTTP 402",
    "bad_key": "{service} rejected the API key, HTTP 401",
}
