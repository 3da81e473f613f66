"""The pure part of the `hf/…` backend: what a model name and backend options mean, where a
converted GGUF is cached, and the arithmetic of choice readings.

Kept apart from `providers.hf` so that it imports neither torch nor transformers: the CLI
validates `hf/…` names and options before anything heavy loads (and on machines without the
extra), and these rules are tested in milliseconds, with Hypothesis for the parsers of what
a user types.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from flipbench.errors import FlipbenchError

INSTALL_HINT = "pip install 'flipbench[hf]'"
DTYPES = ("float32", "bfloat16", "float16")
MAX_BATCH = 4096
#: Names after `hf/` that name a model embedded in a PyPI package (`providers.local.EMBEDDED`).
EMBEDDED_ALIASES = ("smollm2",)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?$")
_DEVICE = re.compile(r"^(cpu|cuda(:\d{1,2})?|mps)$")


@dataclass(frozen=True)
class HFOptions:
    """The backend's own arguments (`-B key=value`), never sent as request fields: `dtype`
    of the weights and the arithmetic (float32 by default: bf16 quantises every probability to
    a few values), `device` (None: cuda when available, else cpu) and `batch_size`, the
    continuations scored in one forward pass."""

    dtype: str = "float32"
    device: str | None = None
    batch_size: int = 16


def parse_hf_options(options: Mapping[str, Any]) -> HFOptions:
    """`HFOptions` from the run's backend options, or a `FlipbenchError` naming the bad one."""
    known = {"dtype", "device", "batch_size"}
    unknown = sorted(str(k)[:40] for k in options if k not in known)
    if unknown:
        raise FlipbenchError(
            f"unknown hf/… backend option(s) {', '.join(unknown)}: use dtype, device, batch_size"
        )
    dtype = options.get("dtype", "float32")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise FlipbenchError(f"hf/… dtype must be one of {', '.join(DTYPES)}")
    device = options.get("device")
    if device is not None and (
        not isinstance(device, str) or (device != "auto" and not _DEVICE.match(device))
    ):
        raise FlipbenchError("hf/… device must be auto, cpu, cuda, cuda:N or mps")
    batch = options.get("batch_size", 16)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise FlipbenchError(f"hf/… batch_size must be a whole number from 1 to {MAX_BATCH}")
    return HFOptions(dtype, None if device == "auto" else device, batch)


@dataclass(frozen=True)
class HFSource:
    """Where an `hf/…` model's weights are: a GGUF file, a model directory, or a Hugging Face
    id looked up in the local cache only (this tool never downloads)."""

    kind: Literal["gguf", "directory", "hub"]
    location: str  # the file, the directory, or the id

    @property
    def path(self) -> Path:
        return Path(self.location)


def resolve_source(model: str) -> HFSource:
    """The source behind `hf/<name>`: an embedded alias (`hf/smollm2`), a path ending in
    `.gguf`, an existing directory, or else a hub id (`org/name`); a clear error otherwise.
    Checks only what is cheap: files exist, an id is well formed."""
    name = model.partition("/")[2]
    if not name.strip():
        raise FlipbenchError("hf/… needs a model: hf/<hub id>, hf/<directory> or hf/<file.gguf>")
    if name in EMBEDDED_ALIASES:
        from flipbench.providers.local import resolve_gguf

        return HFSource("gguf", str(resolve_gguf(f"local/{name}")))
    try:
        path = Path(name).expanduser()
        if path.suffix.lower() == ".gguf":
            if not path.is_file():
                raise FlipbenchError(f"no GGUF file at {path}")
            return HFSource("gguf", str(path.resolve()))
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise FlipbenchError(f"{path} is not a model directory (no config.json)")
            return HFSource("directory", str(path.resolve()))
    except (OSError, ValueError, RuntimeError):  # no such file name or ~user: an id?
        pass
    if not _HUB_ID.match(name) or ".." in name:
        raise FlipbenchError(
            f"hf/{name[:80]!r} is neither a file, a directory nor a Hugging Face id (org/name)"
        )
    return HFSource("hub", name)


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """Where converted models are kept: `FLIPBENCH_CACHE`, else `$XDG_CACHE_HOME/flipbench`,
    else `~/.cache/flipbench`."""
    env = os.environ if environ is None else environ
    if env.get("FLIPBENCH_CACHE"):
        return Path(env["FLIPBENCH_CACHE"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "flipbench"
    return Path.home() / ".cache" / "flipbench"


def converted_key(gguf: Path, runtime_version: str) -> str:
    """The cache entry of a GGUF's dequantised safetensors copy, keyed by the file's name,
    size and modification time (hashing gigabytes at every load would cost more than the
    reload it saves; the file's sha256 is recorded inside the entry) and the transformers
    version that converted it. Not by its directory: the embedded model installed in another
    virtual environment (a fresh clone, a CI run) is the same file with the same wheel
    timestamps, and a per-path key left one ~0.5 GB copy behind for each."""
    stat = gguf.stat()
    ident = f"{gguf.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0{runtime_version}"
    digest = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    stem = re.sub(r"[^\w.\-]", "_", gguf.stem)[:60]
    return f"{stem}-{digest}"


def split_trailing_space(prompt: str) -> tuple[str, str]:
    """The prompt without its trailing whitespace, and that whitespace: it is scored as the
    start of every choice, so "… landed on " + "heads" is read as "… landed on" + " heads",
    the way the model would write it (a tokenizer puts the space at the start of a word; a
    prompt ending in a lone space token is off the model's distribution)."""
    stripped = prompt.rstrip()
    return stripped, prompt[len(stripped) :]


def check_prefix_free(tokens: Mapping[str, Sequence[int]]) -> None:
    """Refuse a choice set in which one choice's tokens begin another's ("1" and "10"): the
    probability of the shorter one would count every continuation into the longer. The user
    adds a delimiter to every choice (`delimiter=`: a closing quote, a comma) or reads whole
    answers, which end each one with a stop (exact mode's reading)."""
    items = sorted(tokens.items(), key=lambda kv: len(kv[1]))
    for i, (short, a) in enumerate(items):
        if not a:
            raise FlipbenchError(f"choice {short!r} has no tokens")
        for long, b in items[i + 1 :]:
            if list(b[: len(a)]) == list(a):
                raise FlipbenchError(
                    f"choices {short!r} and {long!r} are not prefix-free at the token level"
                    f" ({short!r} is a prefix of {long!r}): add a delimiter after each choice"
                    " (a closing quote, a comma) or read whole answers (--mode exact)"
                )


def logsumexp(values: Sequence[float]) -> float:
    top = max(values, default=-math.inf)
    if not math.isfinite(top):
        return top if top == math.inf else -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


@dataclass(frozen=True)
class ChoiceReading:
    """One condition's reading of a choice set: each choice's whole-continuation
    log-probability, the coverage (the choice set's total probability before renormalising)
    and the distribution renormalised over the choices."""

    logprobs: dict[str, float]
    coverage: float
    renormalised: dict[str, float]

    @classmethod
    def from_logprobs(cls, logprobs: Mapping[str, float]) -> ChoiceReading:
        total = logsumexp(list(logprobs.values()))
        coverage = math.exp(total) if math.isfinite(total) else 0.0
        if not math.isfinite(total):
            renorm = {c: math.nan for c in logprobs}
        else:
            renorm = {c: math.exp(lp - total) for c, lp in logprobs.items()}
        return cls(dict(logprobs), coverage, renorm)
