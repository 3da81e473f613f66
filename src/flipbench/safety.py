"""Everything from the network or the environment is hostile until cleaned; this is the one place
that cleans it.

* `scrub` removes credentials from text: the actual key values in use (whatever their shape —
  a server may echo a key that looks like nothing we could pattern-match), URL passwords,
  `Authorization`/`Bearer`/`key=` forms and `sk-…` tokens. Error lines, journaled error bodies,
  kept headers and stored URLs all pass through it.
* `storable` makes text safe to store: lone surrogates (which SQLite's UTF-8 refuses) and
  control characters become visible escapes.
* `terminal_safe` makes text safe to print: no escape sequences, no other control characters.
* `csv_cell` neutralises spreadsheet formulas (OWASP's CSV-injection rule).

Keys are registered by the code that reads them (`register_secret`); every environment
variable whose name says it holds a secret is treated as one too, so a key loaded from an
`.env` file or set for another provider is caught as well (the environment is read again at
each registration and `refresh_environment_secrets`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

MASK = "***"
# Shorter values are too likely to be ordinary words or digits: masking them would mangle text.
_MIN_SECRET_LEN = 6
_SECRET_NAME = re.compile(r"(?i)(API_?KEY|_KEY|TOKEN|SECRET|PASSWORD|PASSWD)(_\d+)?$")
_BASE_URL_NAME = re.compile(r"(?i)_BASE_URL$")

_KEY_VALUE = (
    r"(?i)\b(authorization|(?:x-)?(?:api[_-]?)?key|token|password|secret)"
    r"([\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"
)
# Basic credentials are base64 with at least one digit, '+' or '/' (a word after "basic" is not).
_BASIC = r"(?i)\b(basic)\s+(?=[A-Za-z0-9+/]*[0-9+/])[A-Za-z0-9+/]{6,}={0,2}"
_PATTERNS = (
    # An auth scheme followed by something credential-like: "the basic server" is no credential.
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]{6,}"), r"\1 " + MASK),
    (re.compile(_BASIC), r"\1 " + MASK),
    # An Authorization header's whole value (scheme and credential), up to the next separator.
    (re.compile(r"(?i)\b(authorization)([\"']?\s*[:=]\s*[\"']?)[^\"',;\n]+"), r"\1\2" + MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{4,}"), "sk-" + MASK),
    (re.compile(_KEY_VALUE), r"\1\2" + MASK),
    # user:password@ in any URL
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:]*:[^\s/@]*@"), r"\1" + MASK + "@"),
)

_registered: set[str] = set()

# C0 controls but tab and newline, DEL, C1 controls; lone surrogates; bidi overrides that make a
# terminal show text in another order than it is.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_LINE_BREAKS = re.compile(r"[\r\n\t\u2028\u2029\x85]+")
_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def register_secret(value: str | None) -> None:
    """Mask this value wherever it appears from now on (an API key, a URL password)."""
    if value and len(value.strip()) >= _MIN_SECRET_LEN:
        _registered.add(value.strip())
    refresh_environment_secrets()


def _environment_secrets() -> Iterable[str]:
    for name, value in os.environ.items():
        if _SECRET_NAME.search(name):
            yield value.strip()
        elif _BASE_URL_NAME.search(name):
            password = _url_password(value)
            if password:
                yield password


def _url_password(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
        return parts.password
    except ValueError:
        return None


_secrets: frozenset[str] | None = None


def refresh_environment_secrets() -> None:
    """Read the environment's secrets again (after a `.env` file is loaded, when a backend is
    made); scanning the environment for every string cleaned would cost more than the request."""
    global _secrets
    found = {v for v in _environment_secrets() if len(v) >= _MIN_SECRET_LEN}
    _secrets = frozenset(found | _registered)  # one set, built here, not per string cleaned


def secret_values() -> frozenset[str]:
    """Every value currently treated as a secret (registered keys and the environment's)."""
    if _secrets is None:
        refresh_environment_secrets()
    assert _secrets is not None
    return _secrets


@lru_cache(maxsize=16)
def _values_pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    forms: set[str] = set()
    for value in values:
        forms.update({value, quote(value, safe=""), quote(value)})
    if not forms:
        return None
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def mask_secrets(text: str) -> str:
    """Credentials out, nothing else changed (no reflowing): for text that is stored whole."""
    pattern = _values_pattern(secret_values())
    if pattern is not None:
        text = pattern.sub(MASK, text)
    for regex, repl in _PATTERNS:
        text = regex.sub(repl, text)
    return text


def scrub(text: str, limit: int | None = 300) -> str:
    """One printable line, no credentials, at most `limit` characters: for messages."""
    line = " ".join(terminal_safe(_LINE_BREAKS.sub(" ", mask_secrets(text))).split())
    if limit is not None and len(line) > limit:
        line = line[: limit - 1] + "…"
    return line


def storable(text: str) -> str:
    """Text SQLite will take and a terminal cannot be hijacked by: lone surrogates and control
    characters (but tab, newline and carriage return) become visible escapes."""
    text = _SURROGATE.sub(_escape, text)
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """Text safe to print: control characters (carriage return too: it overwrites a line),
    escape sequences and surrogates made visible."""
    return storable(text).replace("\r", "\\r")


#: Deeper parts of a value are replaced by a marker (replies are parsed with a lower limit).
MAX_CLEAN_DEPTH = 100


def clean_json(value: Any, *, depth: int = 0) -> Any:
    """A JSON-like value with every string masked and made storable (keys included)."""
    if depth > MAX_CLEAN_DEPTH:
        return "[nested too deep]"
    if isinstance(value, str):
        return storable(mask_secrets(value))
    if isinstance(value, dict):
        return {
            storable(mask_secrets(str(k))): clean_json(v, depth=depth + 1) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [clean_json(v, depth=depth + 1) for v in value]
    return value


def clean_url(url: str) -> str:
    """A URL fit to store or print: no user name or password, secrets masked."""
    try:
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            host = parts.hostname or ""
            if parts.port is not None:
                host = f"{host}:{parts.port}"
            url = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    except ValueError:
        pass
    return scrub(url, None)


_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet will not run: text starting with = + - @ tab or CR (after any
    leading spaces) gets a leading apostrophe (OWASP), and control characters are made
    visible. A plain number ("-3", "+1.5e3") is left as it is: it cannot be a formula, and
    the apostrophe would turn a negative answer into text. Non-text values pass unchanged."""
    if not isinstance(value, str):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    value = terminal_safe(value)
    if value.lstrip(" ").startswith(_CSV_TRIGGERS):
        return "'" + value
    return value
