"""The per-sample rows a report shows: what each reply said and how it was read.

A report is meant to be opened and shared, so it holds a bounded sample of the journal rather
than all of it (a game run can hold thousands of replies of thousands of tokens): per
condition the first `per_condition` valid replies and, apart from them, the first
`per_condition` invalid ones — the invalid replies are what a reader most often wants to see.
Every row keeps its sample index, so the full row is one `flipbench export` away.
Text is returned as stored; the template escapes it (autoescape) and masks credentials.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from flipbench.store import Journal

__all__ = ["DEFAULT_SAMPLES", "MAX_REPLY_CHARS", "SampleRow", "SampleSet", "sample_rows"]

#: Replies shown per condition, valid and invalid each.
DEFAULT_SAMPLES = 20
#: A reply longer than this is cut in the report (the journal keeps it whole).
MAX_REPLY_CHARS = 20_000


@dataclass(frozen=True)
class SampleRow:
    """One journaled reply as the report's browser shows it."""

    condition: str
    sample_index: int
    valid: bool
    answer: str | None
    invalid_category: str | None
    finish_reason: str | None
    reply: str
    cut: int  # characters of the reply left out
    probs: str | None  # exact mode: the answer distribution, as stored


@dataclass(frozen=True)
class SampleSet:
    """The rows shown and how many the journal holds for the run."""

    rows: list[SampleRow]
    total: int
    per_condition: int

    @property
    def shown(self) -> int:
        return len(self.rows)


def sample_rows(journal: Journal, run_id: str, per_condition: int) -> SampleSet:
    """Up to `per_condition` valid and `per_condition` invalid replies of each condition, in
    the order they were recorded; `per_condition` < 0 keeps every row."""
    kept: Counter[tuple[str, bool]] = Counter()
    rows: list[SampleRow] = []
    total = 0
    for row in journal.samples(run_id):
        total += 1
        key = (str(row["condition"]), bool(row["valid"]))
        if 0 <= per_condition <= kept[key]:
            continue
        kept[key] += 1
        content = row["content"] if isinstance(row["content"], str) else ""
        rows.append(
            SampleRow(
                condition=key[0], sample_index=int(row["sample_index"]), valid=key[1],
                answer=_text(row["answer"]), invalid_category=_text(row["invalid_category"]),
                finish_reason=_text(row["finish_reason"]), reply=content[:MAX_REPLY_CHARS],
                cut=max(len(content) - MAX_REPLY_CHARS, 0), probs=_probs(row["probs_json"]),
            )
        )  # fmt: skip
    return SampleSet(rows, total, per_condition)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _probs(probs_json: object) -> str | None:
    """An exact row's distribution as `answer p` pairs; the raw text when it is not a dict."""
    if not isinstance(probs_json, str):
        return None
    try:
        probs = json.loads(probs_json)
    except (ValueError, RecursionError):
        return probs_json[:200]
    if not isinstance(probs, dict):
        return probs_json[:200]
    return ", ".join(
        f"{k}: {v:.4f}" if isinstance(v, int | float) else f"{k}: {v}" for k, v in probs.items()
    )
