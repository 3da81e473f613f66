"""The whole-answer reading on llama.cpp's native endpoints (`whole_answer.NextTokenModel`).

Requests: `/apply-template`, `/tokenize`, `/detokenize` and one-step `/completion` on a token
prompt with `n_probs` (raw log-probabilities, before any sampler). A top list of 1,000 entries
costs ~20 ms with the prompt cached; the whole vocabulary ~0.33 s, almost all of it the JSON of
49,152 entries (measured on SmolLM2, 2 cores).

The stop factor without the vocabulary (`stop_mass`). After a form, P(stop) is the mass of the
tokens that end a word, and a top list leaves out a few per cent of the mass (SmolLM2: 1.5-3.4 %
below the top 1,000), so it used to be widened to the whole vocabulary. Instead, two cheap
requests with `post_sampling_probs` (probabilities after the sampler chain: with neutral
samplers at temperature 1, the softmax over the whole vocabulary, normalised in full) and
`ignore_eos` (the end-of-generation tokens set to -inf, so the step always comes back with its
probabilities; the server lists those tokens in the reply's `logit_bias`):

* plain: for a listed token r, raw p_r / post p_r = (1 + ε)(1 − P_eog) = (1 + ε) − raw P_eog,
  where 1 + ε is the raw list's own normaliser (llama.cpp's raw lists sum to 1 + ε with
  ε ≈ 0.5-2.8e-4: a float32 sum over the sorted vocabulary, measured the same for every token);
* with a bias β on every word-continuing token (the set C; SmolLM2: 15,905 of 49,152), the same
  ratio grows by (e^β − 1) · raw S_C.

So raw S_C is the difference over (e^β − 1), and the stop mass (1 + ε) − raw S_C, in the raw
lists' units so that it multiplies the raw token log-probabilities exactly as the
whole-vocabulary sum would (an end-of-generation token below the top list is read alone).
Where the server does not answer this way, the reading widens the list as before. Measured on
SmolLM2 (tests/test_whole_answer_local.py): rates equal to the widened reading's within 1e-6,
each stop factor ~0.13 s instead of ~0.33 s; a die's six faces 1.6 s instead of 5.0 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from flipbench.providers.base import Message
from flipbench.providers.openai_compat import ChatClient
from flipbench.providers.whole_answer import NextTokens, ReadingFailed, ends_word

# n_probs asking for the whole vocabulary when the model's size is unknown (the server clamps).
WHOLE_VOCABULARY = 1 << 18
# The top list asked after each prefix, and the bias that makes greedy decoding take a token
# whose probability is read alone.
TOP_LIST = 1000
FORCE_BIAS = 1000.0
NEUTRAL_SAMPLERS: dict[str, Any] = {"top_k": 0, "top_p": 1.0, "min_p": 0.0}
# The stop mass's bias on word-continuing tokens (any β of order 1 keeps the ratios precise).
STOP_BIAS = 2.0
# Two estimates of the normaliser from different reference tokens must agree this closely
# (measured spread ≤ 2e-6), else the server is not computing what this module assumes.
AGREEMENT = 1e-4


class WordEnds:
    """The vocabulary split by `whole_answer.ends_word`, read once per model (one whole-vocabulary
    list) and shared by every reading of a run."""

    def __init__(self) -> None:
        self.ends: frozenset[int] | None = None
        self.continuing: list[int] = []

    def learn(self, texts: dict[int, str]) -> None:
        self.ends = frozenset(t for t, text in texts.items() if ends_word(text))
        self.continuing = sorted(t for t in texts if t not in self.ends)


class LlamaNextTokens:
    """`whole_answer.NextTokenModel` (and its `stop_mass`) on llama.cpp's native endpoints."""

    def __init__(
        self,
        client: ChatClient,
        n_vocab: int | None,
        top: int = TOP_LIST,
        word_ends: WordEnds | None = None,
    ) -> None:
        self.client, self.top = client, top
        self.n_vocab = n_vocab or WHOLE_VOCABULARY
        self.word_ends = word_ends
        self._warm = False  # the first request of a reading skips the prompt cache
        self.stop_requests = 0  # requests spent on stop masses (the vocabulary's split included)

    async def _post(self, endpoint: str, body: dict[str, Any], *, bulk: bool = False) -> Any:
        exchange = await self.client.post(body, endpoint, bulk=bulk)
        if exchange.error is not None:
            raise ReadingFailed(f"/{endpoint}: {type(exchange.error).__name__}: {exchange.error}")
        if exchange.status != 200 or not isinstance(exchange.data, dict):
            raise ReadingFailed(f"/{endpoint}: HTTP {exchange.status}, not a JSON object")
        return exchange.data

    async def render(self, messages: Sequence[Message]) -> str:
        """The chat prompt as the chat endpoint builds it: a final assistant message is taken
        off, the rest rendered with the assistant turn opened, and its text appended."""
        sent = [dict(m) for m in messages]
        prefill = sent.pop()["content"] if sent and sent[-1].get("role") == "assistant" else ""
        data = await self._post("apply-template", {"messages": sent})
        prompt = data.get("prompt")
        if not isinstance(prompt, str):
            raise ReadingFailed("/apply-template returned no prompt")
        return prompt + prefill

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        body = {"content": text, "add_special": add_special, "parse_special": True}
        tokens = (await self._post("tokenize", body)).get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise ReadingFailed("/tokenize returned no token list")
        return tokens

    async def detokenize(self, tokens: Sequence[int]) -> str:
        content = (await self._post("detokenize", {"tokens": list(tokens)})).get("content")
        if not isinstance(content, str):
            raise ReadingFailed("/detokenize returned no text")
        return content

    async def _completion(self, tokens: Sequence[int], n_probs: int, **extra: Any) -> Any:
        """One `/completion` step after `tokens`: `n_probs` raw log-probabilities (before any
        sampler; `logit_bias` moves only the sampled token). The first request of a reading
        computes the prompt afresh, the later ones extend it from the prompt cache, so a
        condition's numbers do not depend on what the server read before (the batch shape
        moves this quantised model's log-probabilities by up to ~0.1, measured)."""
        body = {
            "prompt": list(tokens), "n_predict": 1, "n_probs": n_probs, "temperature": 0.0,
            "cache_prompt": self._warm, "post_sampling_probs": False, **extra,
        }  # fmt: skip
        data = await self._post("completion", body, bulk=True)
        self._warm = True
        try:
            return data["completion_probabilities"][0]
        except (KeyError, IndexError, TypeError):
            raise ReadingFailed("/completion returned no n_probs list") from None

    async def next_tokens(self, tokens: Sequence[int], *, complete: bool) -> NextTokens:
        n_probs = self.n_vocab if complete else self.top
        step = await self._completion(tokens, n_probs)
        try:
            listed = step["top_logprobs"]
            logprobs = {int(c["id"]): float(c["logprob"]) for c in listed}
            texts = {int(c["id"]): str(c.get("token", "")) for c in listed}
        except (KeyError, TypeError, ValueError):
            raise ReadingFailed("/completion returned no n_probs list") from None
        whole = complete or len(listed) < n_probs or len(listed) >= self.n_vocab
        words = self.word_ends
        if len(texts) >= self.n_vocab and words is not None and words.ends is None:
            words.learn(texts)  # every token listed: learn their split, once
        return NextTokens(logprobs, texts, whole)

    async def token_logprob(self, tokens: Sequence[int], token: int) -> float:
        """The token forced with `logit_bias`: the sampled token's reported log-probability
        is its raw one, wherever it ranks."""
        step = await self._completion(tokens, 1, logit_bias=[[token, FORCE_BIAS]])
        try:
            chosen, logprob = int(step["id"]), float(step["logprob"])
        except (KeyError, TypeError, ValueError):
            raise ReadingFailed("/completion returned no sampled token") from None
        if chosen != token:
            raise ReadingFailed(f"/completion did not take the forced token {token}")
        return logprob

    async def _post_sampling(
        self, tokens: Sequence[int], continuing: Sequence[int] = ()
    ) -> tuple[dict[int, float], set[int]] | None:
        """The top probabilities after the sampler chain (neutral samplers, temperature 1, the
        end-of-generation tokens removed), with `STOP_BIAS` on the `continuing` tokens, and the
        end-of-generation tokens the server removed; None when the reply has no such list (a
        server without post-sampling probabilities: the caller widens instead)."""
        extra: dict[str, Any] = {
            "temperature": 1.0, **NEUTRAL_SAMPLERS, "post_sampling_probs": True,
            "ignore_eos": True, "seed": 0,
        }  # fmt: skip
        if continuing:
            extra["logit_bias"] = [[t, STOP_BIAS] for t in continuing]
        self.stop_requests += 1
        body = {"prompt": list(tokens), "n_predict": 1, "n_probs": 16, "cache_prompt": True}
        data = await self._post("completion", {**body, **extra}, bulk=True)
        try:
            listed = data["completion_probabilities"][0]["top_probs"]
            probs = {int(c["id"]): float(c["prob"]) for c in listed}
            removed = data["generation_settings"]["logit_bias"]
            eog = {int(b["token"]) for b in removed if b.get("bias") is None}
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        return probs, eog

    async def stop_mass(self, tokens: Sequence[int]) -> float | None:
        """P(the next token ends the word | tokens) over the whole vocabulary, in the raw
        lists' units, from two post-sampling requests (module docstring); None when it cannot
        be read this way (the caller widens the list instead).

        The raw list it compares with is read again here, just before: re-reading a prefix
        recomputes its last token alone, and what the server read in between (a token read
        alone recomputes the one before it) moves this quantised model's numbers by a few per
        cent (measured: 0.237 then 0.241 for one token), so all the requests of one stop mass
        come in one cache state — the one a whole-vocabulary list read in its place would see."""
        words = self.word_ends
        if words is None:
            return None
        if words.ends is None:  # the vocabulary's texts, once: this stop factor from its list
            self.stop_requests += 1
            whole = await self.next_tokens(tokens, complete=True)
            if words.ends is None:
                return None
            return sum(math.exp(lp) for t, lp in whole.logprobs.items() if t in words.ends)
        self.stop_requests += 1
        listed = await self.next_tokens(tokens, complete=False)
        raw = {t: math.exp(lp) for t, lp in listed.logprobs.items()}
        first = await self._post_sampling(tokens)
        if first is None or not first[1]:
            return None
        (plain, eog), ends = first, words.ends
        if not eog <= ends:
            return None  # an end of generation that reads as a word: not this split
        for token in sorted(eog - raw.keys()):  # below the top list: read alone
            self.stop_requests += 1
            raw[token] = math.exp(await self.token_logprob(tokens, token))
        second = await self._post_sampling(tokens, words.continuing)
        if second is None:
            return None
        pushed = second[0]
        base = _ratios({t: raw[t] / p for t, p in plain.items() if t in raw and p > 0})
        grown = _ratios({
            t: raw[t] * (math.exp(STOP_BIAS) if t not in ends else 1.0) / p
            for t, p in pushed.items()
            if t in raw and p > 0
        })  # fmt: skip
        if base is None or grown is None:
            return None
        continuing = max(0.0, (grown - base) / math.expm1(STOP_BIAS))
        normaliser = base + sum(raw.get(t, 0.0) for t in eog)
        return max(0.0, normaliser - continuing)


def _ratios(values: dict[int, float]) -> float | None:
    """The common value of per-token ratios (their median), or None when there is none or
    they disagree beyond `AGREEMENT` (the server computed something else)."""
    if not values:
        return None
    ordered = sorted(values.values())
    middle = ordered[len(ordered) // 2]
    if ordered[-1] - ordered[0] > AGREEMENT * middle:
        return None
    return middle
