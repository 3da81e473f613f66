"""`hf/…`: a Hugging Face transformers model read exactly, offline (the optional extra `[hf]`).

A model is a hub id already in the local cache (never downloaded: `local_files_only`), a model
directory, or a GGUF file (`hf/smollm2` names the embedded one). transformers dequantises a
GGUF at every load (~20 s for SmolLM2-135M on two cores), so the result is kept once as
safetensors under the cache (`hf_choices.cache_root`, keyed by the file's path, size and
mtime) and reloaded in a second or two. torch and transformers are imported inside functions
(the CLI starts without them; a missing extra is flipbench's one-line error with the install
hint) and typed `Any`, so the package type-checks with or without the extra.

The backend serves exact mode with whole answers (`hf_model.HFModel.whole_answers`), one
reading at a time in a worker thread; its own arguments (dtype, device, batch size) arrive as
`-B` backend options, never as request fields. Sampling is not built: `start` refuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import io
import json
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from flipbench.errors import FlipbenchError
from flipbench.providers.base import Backend, Message, Reply, SampleSettings
from flipbench.providers.hf_choices import (
    INSTALL_HINT,
    HFOptions,
    HFSource,
    cache_root,
    converted_key,
    parse_hf_options,
    resolve_source,
)
from flipbench.providers.hf_model import HFModel
from flipbench.providers.local import file_sha256
from flipbench.providers.whole_answer import WHOLE_ANSWER, reading_reply
from flipbench.safety import storable

if TYPE_CHECKING:
    from flipbench.config import RunConfig

_EXTRA = ("torch", "transformers")
_CONVERTED_META = "flipbench.json"


def missing_modules(source: HFSource | None = None) -> list[str]:
    """The modules of the extra that are not installed (found without importing them)."""
    names = [*_EXTRA, "gguf"] if source is not None and source.kind == "gguf" else list(_EXTRA)
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def require_extra(source: HFSource | None = None) -> tuple[Any, Any]:
    """torch and transformers, or flipbench's error with the install hint."""
    missing = missing_modules(source)
    try:
        torch = importlib.import_module("torch")
        transformers = importlib.import_module("transformers")
    except ImportError:
        missing = missing or ["torch/transformers"]
    if missing:
        raise FlipbenchError(f"hf/… models need {', '.join(missing)}: {INSTALL_HINT}")
    return torch, transformers


def load_model(
    source: HFSource, options: HFOptions | None = None, threads: int | None = None
) -> HFModel:
    """Load the model (a GGUF through its converted copy, converting it the first time)."""
    options = options or HFOptions()
    started = time.perf_counter()
    torch, transformers = require_extra(source)
    if threads:
        torch.set_num_threads(threads)
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise FlipbenchError(f"device {device} asked for, but torch sees no CUDA device")
    dtype = getattr(torch, options.dtype)
    info: dict[str, Any] = {"source": source.kind}
    try:
        with quiet_loading(transformers) as heard:
            tokenizer, model = _load(source, dtype, transformers, info)
    except OSError as exc:
        if source.kind == "hub":
            raise FlipbenchError(
                f"hf/{source.location} is not in the local Hugging Face cache and flipbench"
                f" never downloads: fetch it first (hf download {source.location}) or pass"
                " a model directory"
            ) from None
        raise FlipbenchError(f"transformers could not load {source.location}: {exc}") from None
    except (ValueError, KeyError, RuntimeError) as exc:
        raise FlipbenchError(f"transformers could not load {source.location}: {exc}") from None
    model = model.to(device=device, dtype=dtype).eval()
    loaded = HFModel(source, options, torch, tokenizer, model)
    loaded.load_seconds = time.perf_counter() - started
    loaded.versions = {
        **info,
        "runtime": "transformers",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "dtype": options.dtype,
        "device": str(loaded.device),
        "batch_size": options.batch_size,
        "n_params": sum(p.numel() for p in model.parameters()),
        "chat_template": tokenizer.chat_template is not None,
        "bos_token_id": tokenizer.bos_token_id,
        "load_seconds": round(loaded.load_seconds, 3),
    }
    if heard:
        loaded.versions["load_warnings"] = heard
    return loaded


def _load(source: HFSource, dtype: Any, transformers: Any, info: dict[str, Any]) -> tuple[Any, Any]:
    """Tokenizer and model from a GGUF (through its converted copy), a directory or the cache."""
    if source.kind == "gguf":
        tokenizer, model, converted = _load_gguf(source.path, dtype, transformers)
        info.update(converted)
        return tokenizer, model
    auto_tok, auto_model = transformers.AutoTokenizer, transformers.AutoModelForCausalLM
    where = {"local_files_only": True} if source.kind == "hub" else {}
    tokenizer = auto_tok.from_pretrained(source.location, **where)
    model = auto_model.from_pretrained(source.location, dtype=dtype, **where)
    return tokenizer, model


@contextlib.contextmanager
def quiet_loading(transformers: Any) -> Iterator[list[str]]:
    """Loading without transformers' progress bars ("Loading weights", the GGUF's "Converting
    and de-quantizing" from plain tqdm) and info/warning log lines on the terminal, which
    broke flipbench's own progress display; the Python warnings raised meanwhile are kept
    (distinct, at most 5, made storable) for the run's versions instead of printed. Errors
    still raise. The library's settings are restored afterwards."""
    hub_utils: Any = importlib.import_module("huggingface_hub.utils")  # comes with transformers
    log = transformers.utils.logging
    bars, verbosity = log.is_progress_bar_enabled(), log.get_verbosity()
    hub_bars = not hub_utils.are_progress_bars_disabled()
    heard: list[str] = []
    log.disable_progress_bar()
    log.set_verbosity_error()
    hub_utils.disable_progress_bars()
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stderr(io.StringIO()),  # plain tqdm bars write to sys.stderr
        ):
            warnings.simplefilter("always")
            yield heard
        for w in caught:
            text = storable(f"{w.category.__name__}: {w.message}")[:300]
            if text not in heard and len(heard) < 5:
                heard.append(text)
    finally:
        log.set_verbosity(verbosity)
        if bars:
            log.enable_progress_bar()
        if hub_bars:
            hub_utils.enable_progress_bars()


def _load_gguf(gguf: Path, dtype: Any, transformers: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Tokenizer and model of a GGUF file from its converted safetensors copy; the first
    time, dequantised by transformers (~20 s for SmolLM2) and saved (atomically: written
    beside, then renamed). Where the cache cannot be written, the model is used as loaded."""
    auto_tok, auto_model = transformers.AutoTokenizer, transformers.AutoModelForCausalLM
    target = cache_root() / "hf-gguf" / converted_key(gguf, transformers.__version__)
    meta_file = target / _CONVERTED_META
    if meta_file.is_file():
        info: dict[str, Any] = json.loads(meta_file.read_text())
        tokenizer = auto_tok.from_pretrained(str(target), local_files_only=True)
        model = auto_model.from_pretrained(str(target), dtype=dtype, local_files_only=True)
        return tokenizer, model, {**info, "converted": str(target), "converted_now": False}
    started = time.perf_counter()
    torch = importlib.import_module("torch")
    tokenizer = auto_tok.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = auto_model.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # Dequantised, the weights are plain tensors; only the quantizer's marks forbid saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    info = {
        "gguf_file": gguf.name,
        "gguf_sha256": file_sha256(gguf),
        "gguf_bytes": gguf.stat().st_size,
        "converted_by": f"transformers {transformers.__version__}",
        "convert_seconds": round(time.perf_counter() - started, 2),
    }
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / _CONVERTED_META).write_text(json.dumps(info, indent=1))
        os.rename(tmp, target)
    except OSError:  # read-only cache, or another process renamed its copy first
        shutil.rmtree(tmp, ignore_errors=True)
    return tokenizer, model, {**info, "converted": str(target), "converted_now": True}


class HFBackend(Backend):
    """A transformers model read exactly (whole answers, full vocabulary, float32)."""

    prefix: ClassVar[str] = "hf"
    supports_exact: ClassVar[bool] = True
    supports_raw: ClassVar[bool] = True
    # torch's CPU threads (`--threads`); readings run one at a time on one model.
    uses_cpu_threads: ClassVar[bool] = True
    default_concurrency: ClassVar[int] = 1
    # The plan's exact seconds per condition: whole answers from one cached prompt pass,
    # measured on the embedded SmolLM2 (2 threads, loaded 2-core machine): the 21-point single
    # flip 0.46 s a condition (0.53 s mean latency), the coin needles ~0.9 s; llama.cpp's 2 s
    # (`plan.LOCAL_RATES`) overstated an hf/ run ~4×.
    exact_s_per_condition: ClassVar[float | None] = 0.5

    def __init__(
        self, model: str, options: HFOptions | None = None, threads: int | None = None
    ) -> None:
        super().__init__(model)
        self.source = resolve_source(model)
        self.options = options or HFOptions()
        self.threads = threads
        self.hf: HFModel | None = None
        self._reading = asyncio.Lock()

    @classmethod
    def from_config(cls, config: RunConfig) -> Backend:
        if config.first_token:
            raise FlipbenchError(
                "hf/… reads whole answers from the full vocabulary: drop --first-token"
            )
        options = parse_hf_options(config.backend_options)
        return cls(config.model, options, config.threads)

    @classmethod
    def validate(cls, model: str) -> None:
        source = resolve_source(model)
        if missing := missing_modules(source):
            raise FlipbenchError(f"hf/… models need {', '.join(missing)}: {INSTALL_HINT}")

    @classmethod
    def check_backend_options(cls, options: Mapping[str, Any]) -> None:
        parse_hf_options(options)

    async def start(self, *, concurrency: int, exact: bool) -> None:
        if not exact:
            raise FlipbenchError(
                "hf/… models read probabilities: use --mode exact (sampling is not built for"
                " hf/…; sample a GGUF with local/<file.gguf>)"
            )
        self.hf = await asyncio.to_thread(load_model, self.source, self.options, self.threads)

    async def close(self) -> None:
        self.hf = None

    def versions(self) -> dict[str, Any]:
        found = dict(self.hf.versions) if self.hf is not None else {}
        return {"model": self.model, **found}

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        raise FlipbenchError("hf/… models read probabilities only: use --mode exact")

    async def distribution(self, messages: Sequence[Message], answers: Sequence[str]) -> Reply:
        hf = self._model()
        request: dict[str, Any] = {"messages": [dict(m) for m in messages]}
        try:
            prompt = hf.render(messages)
        except FlipbenchError as exc:
            return Reply(request, None, ok=False, error=str(exc))
        return await self._read({**request, "prompt": prompt}, prompt, answers)

    async def distribution_raw(self, prompt: str, answers: Sequence[str]) -> Reply:
        return await self._read({"prompt": prompt}, prompt, answers)

    async def _read(self, request: dict[str, Any], prompt: str, answers: Sequence[str]) -> Reply:
        hf = self._model()
        body = {**request, "exact_reading": WHOLE_ANSWER, "answers": list(answers)}
        started = time.perf_counter()
        async with self._reading:
            try:
                whole = await asyncio.to_thread(hf.whole_answers, prompt, answers)
            except FlipbenchError as exc:
                return Reply(body, None, ok=False, error=str(exc),
                             latency_s=time.perf_counter() - started)  # fmt: skip
        return reading_reply(whole, answers, body, time.perf_counter() - started)

    def _model(self) -> HFModel:
        assert self.hf is not None, "backend not started"
        return self.hf
