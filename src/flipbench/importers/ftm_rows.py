"""Failure to Mix release: how one CSV row of each figure becomes a condition and an answer.

Where a file releases the reply text (figs. 2, 3, 5) the answer is read from it with our own
parser, as our runs read theirs, and the authors' answer columns are only compared; where it
releases no text (figs. 1, 4, 6) the released answer column is the answer. Conditions come from
the exact numbers the prompt printed (counts, payoffs), never from rounded labels.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from flipbench.errors import FlipbenchError
from flipbench.importers.base import CsvRow
from flipbench.parse import InvalidCategory, ParsedAnswer, parse_answer, parse_tokens
from flipbench.tasks import games
from flipbench.tasks.definition import ConditionSpec, flip_point, format_percent, ternary_point
from flipbench.tasks.words import PAIRS, word_condition

#: What a spreadsheet made of the reply "1 1" in fig2_sequential_flips.csv.
SPREADSHEET_DATE = "2025-01-01 00:00:00"
DATE_REPAIR = f"the reply '1 1' had become the spreadsheet date '{SPREADSHEET_DATE}'; restored"
FLOAT_REPAIR = "answer stored as a float ('1.0'); read as its integer"
MOJIBAKE = "mojibake in the reply (UTF-8 read as GBK, lossy); kept verbatim"
BLANK = "answer blank in the release (the reply text is not released)"

_FLOAT_INT = re.compile(r"(\d+)\.0+")
_PROMPT_Q = re.compile(r"\W2\W\s*(\d+(?:\.\d+)?)%")
_PAIRS = {frozenset((r.casefold(), o.casefold())): (r, o) for r, o in PAIRS}


@dataclass
class Item:
    """A row on its way into a run: either a condition and a reading of it, or a drop reason."""

    file: str
    row: CsvRow
    model: str
    spec: ConditionSpec | None = None
    answer: str | None = None
    category: str | None = None
    content: str | None = None
    prompt: str | None = None
    drop: str | None = None
    repairs: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.spec.key if self.spec is not None else ""


Reader = Callable[[Item], None]


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise FlipbenchError(f"{what} {text!r} is not a number") from None
    if not value.is_finite():
        raise FlipbenchError(f"{what} {text!r} is not a finite number")
    return value


def _mojibake(text: str) -> bool:
    """UTF-8 punctuation (E2 80..BF …) decoded as GBK shows as 鈥, 鈮, 鈫… and U+FFFD."""
    if "\ufffd" in text:
        return True
    for ch in text:
        if "\u4e00" <= ch <= "\u9fff":
            try:
                raw = ch.encode("gbk")
            except UnicodeEncodeError:
                continue
            if raw[0] == 0xE2 and 0x80 <= raw[1] <= 0xBF:
                return True
    return False


def _column_choice(text: str, mapping: dict[str, str]) -> tuple[str | None, bool]:
    """A released answer cell as an answer (and whether it was a float), or None."""
    t = text.strip()
    if t.casefold() in mapping:
        return mapping[t.casefold()], False
    m = _FLOAT_INT.fullmatch(t)
    if m and m.group(1) in mapping:
        return mapping[m.group(1)], True
    return None, False


def _from_column(item: Item, text: str, mapping: dict[str, str]) -> None:
    """The released answer column is the answer (no reply text exists to read)."""
    answer, was_float = _column_choice(text, mapping)
    if was_float:
        item.repairs.append(FLOAT_REPAIR)
    if answer is not None:
        item.answer = answer
        return
    item.category = str(InvalidCategory.UNPARSEABLE)
    item.flags.append(BLANK if not text.strip() else f"answer {text.strip()!r} is not an option")


def _from_reply(item: Item, parsed: ParsedAnswer, released: str | None) -> None:
    """Our parser reads the reply; the authors' reading is compared and any difference noted."""
    if parsed.answer is not None:
        item.answer = parsed.answer
    else:
        item.category = str(parsed.category)
    if item.content and _mojibake(item.content):
        item.flags.append(MOJIBAKE)
    if released == parsed.answer:
        return
    if parsed.answer is None:
        why = f"the authors read an answer from a reply our parser counts as {parsed.category}"
    elif released is None:
        why = "the authors read no answer from a reply our parser reads"
    else:
        why = "the authors' answer column disagrees with the reply text; the reply is used"
    item.flags.append(why)


def read_flips(d: int, prefix: str) -> Reader:
    """Figs. 2 and 3: D flips in one reply; the release also split them into columns."""

    def read(item: Item) -> None:
        cells = item.row.cells
        item.spec = flip_point(cells["p"])
        digits = [
            _column_choice(cells[f"{prefix}{j}"], {"0": "0", "1": "1"})[0] for j in range(1, d + 1)
        ]
        released = None if None in digits else " ".join(str(x) for x in digits)
        raw = cells["raw_text"]
        item.content = raw
        if d == 2 and raw.strip() == SPREADSHEET_DATE and released == "1 1":
            item.content = "1 1"
            item.repairs.append(DATE_REPAIR)
            item.extra["released_raw_text"] = raw
        _from_reply(item, parse_tokens(item.content, ("0", "1"), d), released)

    return read


def read_single(item: Item) -> None:
    """Fig. 1: one flip; only the authors' answer column is released."""
    item.spec = flip_point(item.row.cells["p"])
    _from_column(item, item.row.cells["answer"], {"0": "0", "1": "1"})


def read_ternary(item: Item) -> None:
    """Fig. 4: p is q = P("2"); the one file that releases its prompt."""
    cells = item.row.cells
    item.spec = ternary_point(cells["p"])
    item.prompt = cells["prompt"] or None
    m = _PROMPT_Q.search(cells["prompt"])
    if m is None or Decimal(m.group(1)) != Decimal(item.spec.value):
        item.flags.append("the released prompt does not print this row's q")
    _from_column(item, cells["answer"], {"0": "0", "1": "1", "2": "2"})


def read_word(item: Item) -> None:
    """Fig. 5: v is the word listed first; the answer column's 1 is the pair's red word."""
    cells = item.row.cells
    v, v2 = cells["v"].strip(), cells["v2"].strip()
    pair = _PAIRS.get(frozenset((v.casefold(), v2.casefold())))
    if pair is None:
        item.drop = f"unknown word pair {v!r}/{v2!r}"
        return
    red, other = pair
    order = "forward" if v.casefold() == red.casefold() else "reverse"
    p = _decimal(cells["p"], "p")
    if p != p.to_integral_value():
        raise FlipbenchError(f"word-bias p {cells['p']!r} is not a whole percent")
    spec = word_condition(red, other, order, format_percent(p))
    if (v, v2) != (spec.fields["w1"], spec.fields["w2"]):  # same words, released spelling
        spec = spec.model_copy(
            update={
                "fields": {**spec.fields, "w1": v, "w2": v2},
                "answers": (v, v2),
                "first": v,
                "target": {v: spec.x, v2: 1 - spec.x},
            }
        )
        item.flags.append(f"words kept as the release spells them ({v!r}, {v2!r})")
    item.spec = spec
    red_word, other_word = (v, v2) if order == "forward" else (v2, v)
    released = _column_choice(cells["answer"], {"1": red_word, "0": other_word})[0]
    item.content = cells["raw_text"]
    _from_reply(item, parse_answer(item.content, (v, v2)), released)


def _label(item: Item, label: str, what: str) -> None:
    """Note a rounded (or wrong) optimal_p label; x always comes from the printed numbers."""
    assert item.spec is not None
    if not label.strip():
        return
    implied = 100 * item.spec.x
    if abs(float(_decimal(label, "optimal_p")) - implied) > 0.25:
        item.flags.append(
            f"optimal_p label {label.strip()} is not the {implied:.1f} % that {what} implies;"
            " x comes from the latter"
        )


def read_bioinformatics(item: Item) -> None:
    """Answer 1 = gene A; x = a / (a + b) with a = 1000."""
    cells = item.row.cells
    b = _decimal(cells["b_count"], "b_count")
    if b != b.to_integral_value() or b <= 0:
        raise FlipbenchError(f"b_count {cells['b_count']!r} is not a positive count")
    item.spec = games.bioinformatics_condition(int(b))
    _label(item, cells["optimal_p"], f"b_count {int(b)}")
    _from_column(item, cells["answer"], {"1": "A", "0": "B"})


def read_pennies(item: Item) -> None:
    """Answer 1 = Heads; payoff_ratio is hh (tt = 1.00), printed with two decimals."""
    cells = item.row.cells
    ratio = _decimal(cells["payoff_ratio"], "payoff_ratio")
    hh = ratio.quantize(Decimal("0.01"))
    if hh != ratio or hh <= 0:
        raise FlipbenchError(f"payoff_ratio {cells['payoff_ratio']!r} is not a price in cents")
    item.spec = games.pennies_condition(str(hh))
    _label(item, cells["optimal_p"], f"payoff_ratio {hh}")
    _from_column(item, cells["answer"], {"1": "Heads", "0": "Tails"})


def read_business(item: Item) -> None:
    """Answer 1 / "luxury" = Luxury; affordable_payoff in millions against a 10M luxury win."""
    cells = item.row.cells
    payoff = _decimal(cells["affordable_payoff"], "affordable_payoff")
    if payoff <= 0:
        raise FlipbenchError(f"affordable_payoff {cells['affordable_payoff']!r} is not positive")
    item.spec = games.business_condition(f"{format_percent(payoff)}M")
    _label(item, cells["optimal_p"], f"affordable_payoff {format_percent(payoff)}M")
    mapping = {"1": "Luxury", "0": "Affordable", "luxury": "Luxury", "affordable": "Affordable"}
    _from_column(item, cells["answer"], mapping)
