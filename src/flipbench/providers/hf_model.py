"""The readings of a loaded transformers model (`hf/…`): whole-continuation
log-probabilities with the prompt computed once, exact mode's whole answers, and the one-pass
reading of an in-context sequence.

Why these shapes: transformers gives the whole next-token distribution as one tensor, so every
reading is exact (no top-k list to widen, unlike llama.cpp's server) and, where the math allows,
shared: a prompt's forward pass is computed once and its key/value cache serves every choice
(`score_continuations`), and an in-context sequence is read at all its answer positions from
one pass over the longest prefix (`prefix_choice_probs`, the saving measured by
`bench/icl_cost.py`). Log-softmax is taken in float32 whatever the weights' dtype
(bf16 log-softmax quantises every probability to a few values).

Whole answers follow `whole_answer`'s definitions to the letter (surface forms, the stop rule,
the tokenization of a form after the prompt, the journaled shape), so `hf/…` and `local/…`
readings of one GGUF differ only by the runtimes' arithmetic. torch is handed in by the
loader (`providers.hf`) and typed `Any`: the package type-checks without the extra.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from flipbench.errors import FlipbenchError
from flipbench.providers.base import Message
from flipbench.providers.hf_choices import (
    ChoiceReading,
    HFOptions,
    HFSource,
    check_prefix_free,
    split_trailing_space,
)
from flipbench.providers.whole_answer import (
    FormReading,
    WholeAnswers,
    continuation_tokens,
    ends_word,
    surface_forms,
)

T = TypeVar("T")


def _sync(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (the shared tokenization rule of
    `whole_answer.continuation_tokens`, run on this module's synchronous tokenizer)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coro.close()
    raise RuntimeError("the tokenizer adapter suspended")


class _Tokens:
    """`whole_answer.Tokenizer` over the model's tokenizer (synchronous underneath)."""

    def __init__(self, model: HFModel) -> None:
        self.model = model

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        return self.model.encode(text) if add_special else self.model.encode_plain(text)

    async def detokenize(self, tokens: Sequence[int]) -> str:
        return self.model.decode(tokens)


class HFModel:
    """A loaded model and tokenizer with the readings flipbench needs; synchronous (the
    backend runs it in a worker thread, one reading at a time)."""

    def __init__(
        self, source: HFSource, options: HFOptions, torch: Any, tokenizer: Any, model: Any
    ) -> None:
        self.source, self.options = source, options
        self.torch, self.tokenizer, self.model = torch, tokenizer, model
        self.device = next(model.parameters()).device
        self.versions: dict[str, Any] = {}
        self.load_seconds = 0.0
        self.forward_passes = 0
        self._stop_mask: Any = None
        self._cache_arg = "cache" in inspect.signature(model.forward).parameters

    # -- loading ---------------------------------------------------------------------------

    # -- text ------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """The tokens of a whole prompt with exactly one BOS: the tokenizer's own when the
        text does not start with it (a raw prompt), none added when a chat template already
        wrote it."""
        tok = self.tokenizer
        bos = tok.bos_token
        add = not (isinstance(bos, str) and bos and text.startswith(bos))
        ids: list[int] = list(tok(text, add_special_tokens=add)["input_ids"])
        bos_id = tok.bos_token_id
        while bos_id is not None and ids[:2] == [bos_id, bos_id]:
            ids = ids[1:]
        return ids

    def encode_plain(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, tokens: Sequence[int]) -> str:
        text: str = self.tokenizer.decode(
            list(tokens), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        return text

    def render(self, messages: Sequence[Message]) -> str:
        """The chat prompt: the template with the user turn and, when the last message is the
        assistant's, that message continued as a prefill (`continue_final_message`), so the
        text ends exactly where the answer starts (whitespace a template strips from the
        prefill's end is put back); else the assistant turn opened."""
        tok = self.tokenizer
        if tok.chat_template is None:
            raise FlipbenchError(
                f"{self.source.location} has no chat template (a base model): use an"
                " experiment with a raw prompt"
            )
        sent = [dict(m) for m in messages]
        if sent and sent[-1].get("role") == "assistant":
            prefill = sent[-1].get("content", "")
            text: str = tok.apply_chat_template(sent, tokenize=False, continue_final_message=True)
            stripped = prefill.rstrip()
            if not text.endswith(prefill) and text.endswith(stripped):
                text += prefill[len(stripped) :]
            return text
        rendered: str = tok.apply_chat_template(sent, tokenize=False, add_generation_prompt=True)
        return rendered

    def form_tokens(self, prompt: str, base: Sequence[int], form: str) -> tuple[list[int], str]:
        """The form's tokens after the prompt (`whole_answer.continuation_tokens`'s rule)."""
        found, _ = _sync(continuation_tokens(_Tokens(self), prompt, base, form))
        if found is None:
            raise FlipbenchError(f"{form!r} does not tokenise as itself after the prompt")
        return found

    # -- forward passes --------------------------------------------------------------------

    @property
    def stop_mask(self) -> Any:
        """Over the vocabulary: the tokens that end a word (`whole_answer.ends_word` of the
        token's text, and every special token: end of turn, end of text)."""
        if self._stop_mask is None:
            torch, tok = self.torch, self.tokenizer
            width = int(self.model.get_output_embeddings().weight.shape[0])
            size = min(width, len(tok))
            single = [[i] for i in range(size)]
            fast = getattr(tok, "backend_tokenizer", None)  # Rust, ~50x batch_decode's speed
            if fast is not None:
                texts = fast.decode_batch(single, skip_special_tokens=False)
            else:
                texts = tok.batch_decode(
                    single, skip_special_tokens=False, clean_up_tokenization_spaces=False
                )
            mask = torch.zeros(width, dtype=torch.bool)
            mask[:size] = torch.tensor([ends_word(t) for t in texts])
            for special in tok.all_special_ids:
                if 0 <= special < width:
                    mask[special] = True
            self._stop_mask = mask.to(self.device)
        return self._stop_mask

    def _forward(self, ids: Any, cache: Any = None, keep: Any = 0) -> tuple[Any, Any]:
        """Logits (of the positions `keep` names: 0 all, n the last n, a tensor those
        indices; the language-model head is a tenth of a small model's work) and the key/value
        cache, under either name transformers gives it (`past_key_values` became `cache` in
        5.x)."""
        self.forward_passes += 1
        name = "cache" if self._cache_arg else "past_key_values"
        with self.torch.inference_mode():
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=keep, **{name: cache})
        found = getattr(out, "cache", None)
        return out.logits, found if found is not None else getattr(out, "past_key_values", None)

    def score_continuations(
        self, base: Sequence[int], continuations: Sequence[Sequence[int]], *, with_stop: bool
    ) -> list[tuple[list[float], float]]:
        """Each continuation's token log-probabilities after `base`, and (`with_stop`) the log
        of the stop mass after it; float32. The prompt is computed once and its cache copied
        for each batch of continuations (right-padded: causal attention never looks at the
        padding after a row's own tokens)."""
        torch = self.torch
        logits, prompt_cache = self._forward(torch.tensor([list(base)], device=self.device), keep=1)
        first = torch.log_softmax(logits[0, -1].float(), dim=-1)
        # Without the stop, a continuation's last token needs no pass of its own.
        fed = [list(c) if with_stop else list(c[:-1]) for c in continuations]
        rows: dict[int, Any] = {}
        order = [i for i, f in enumerate(fed) if f]
        size = self.options.batch_size
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            width = max(len(fed[i]) for i in chunk)
            pad = [fed[i] + [fed[i][-1]] * (width - len(fed[i])) for i in chunk]
            cache = copy.deepcopy(prompt_cache)
            cache.batch_repeat_interleave(len(chunk))
            logits, _ = self._forward(torch.tensor(pad, device=self.device), cache)
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            for row, i in enumerate(chunk):
                rows[i] = logprobs[row, : len(fed[i])]
        results: list[tuple[list[float], float]] = []
        for i, cont in enumerate(continuations):
            lps = [float(first[cont[0]])]
            after: Any = rows.get(i)
            lps += [float(after[j - 1, cont[j]]) for j in range(1, len(cont))]
            stop = float("nan")
            if with_stop:
                stop = float(torch.logsumexp(after[len(cont) - 1][self.stop_mask], dim=0))
            results.append((lps, stop))
        return results

    def whole_answers(self, prompt: str, answers: Sequence[str]) -> WholeAnswers:
        """Exact mode's whole-answer reading (`whole_answer`'s definition) from the full
        vocabulary: every surface form's tokens and the stop mass after it, the prompt computed
        once for all forms."""
        started, passes = time.perf_counter(), self.forward_passes
        result = WholeAnswers()
        base = self.encode(prompt)
        result.prompt_tokens = len(base)
        planned: list[tuple[str, str, list[int], str]] = []
        tokenizer = _Tokens(self)
        for answer in answers:
            for form in surface_forms(answer):
                found, requests = _sync(continuation_tokens(tokenizer, prompt, base, form))
                result.tokenize_requests += requests
                if found is None:
                    result.untokenizable.append(form)
                else:
                    planned.append((answer, form, *found))
        scores = self.score_continuations(base, [p[2] for p in planned], with_stop=True)
        result.forms = [
            FormReading(answer, form, tuple(tokens), tuple(lps), stop, how)
            for (answer, form, tokens, how), (lps, stop) in zip(planned, scores, strict=True)
        ]
        result.requests = self.forward_passes - passes
        result.seconds = time.perf_counter() - started
        return result

    def choice_tokens(
        self, prompt: str, choices: Sequence[str], delimiter: str = ""
    ) -> tuple[list[int], dict[str, list[int]]]:
        """The prompt's tokens (trailing whitespace moved into the choices) and each choice's
        tokens after it (with `delimiter` appended); a choice set that is not prefix-free at
        the token level is refused (`hf_choices.check_prefix_free`)."""
        context, space = split_trailing_space(prompt)
        base = self.encode(context)
        tokens = {c: self.form_tokens(context, base, space + c + delimiter)[0] for c in choices}
        check_prefix_free(tokens)
        return base, tokens

    def score_choices(
        self, prompt: str, choices: Sequence[str], delimiter: str = ""
    ) -> ChoiceReading:
        """log P(choice | prompt) summed over all of each choice's tokens, the prompt's pass
        shared by every choice; the renormalised distribution and the coverage."""
        base, tokens = self.choice_tokens(prompt, choices, delimiter)
        scores = self.score_continuations(base, [tokens[c] for c in choices], with_stop=False)
        return ChoiceReading.from_logprobs(
            {c: sum(lps) for c, (lps, _) in zip(choices, scores, strict=True)}
        )

    def prefix_choice_probs(
        self, text_prefix: str, items: Sequence[str], choices: Sequence[str], separator: str
    ) -> list[ChoiceReading]:
        """The choices' reading after every prefix of an in-context sequence, from ONE forward
        pass over the longest: prompt k is `text_prefix + Σ_{i<k} (items[i] + separator)`,
        k = 0…len(items), read from the logits at its last token. Exact when each prompt's
        tokens are a prefix of the longest one's (checked; a separator that merges with the
        items is refused) and each choice is one token after it (checked; score longer choices
        with `score_choices`)."""
        prompts = [text_prefix]
        for item in items:
            prompts.append(prompts[-1] + item + separator)
        contexts = [split_trailing_space(p) for p in prompts]
        ids = self.encode(contexts[-1][0])
        positions: list[int] = []
        choice_ids: list[list[int]] = []
        for k, (context, space) in enumerate(contexts):
            base = ids if k == len(contexts) - 1 else self.encode(context)
            if ids[: len(base)] != base:
                raise FlipbenchError(
                    f"the prompt after {k} item(s) does not tokenise as a prefix of the whole"
                    f" sequence (separator {separator!r} merges with the items): read these"
                    " prompts one by one with score_choices"
                )
            found = {c: self.form_tokens(context, base, space + c)[0] for c in choices}
            if any(len(t) != 1 for t in found.values()):
                raise FlipbenchError(
                    "prefix_choice_probs reads one-token choices; "
                    f"{[c for c, t in found.items() if len(t) != 1]} take several tokens here"
                    " (read them prompt by prompt with score_choices)"
                )
            check_prefix_free(found)
            positions.append(len(base) - 1)
            choice_ids.append([found[c][0] for c in choices])
        torch = self.torch
        keep = torch.tensor(positions, device=self.device)
        logits, _ = self._forward(torch.tensor([ids], device=self.device), keep=keep)
        logprobs = torch.log_softmax(logits[0].float(), dim=-1)
        return [
            ChoiceReading.from_logprobs(
                {c: float(logprobs[k, t]) for c, t in zip(choices, choice_ids[k], strict=True)}
            )
            for k in range(len(positions))
        ]
