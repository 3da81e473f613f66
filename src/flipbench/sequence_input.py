"""Sequences of outcomes as one integer matrix, and their segments of valid outcomes.

The serial tests (`sequence_tests`) take replies of D flips, chains of turns of any length,
and user data with gaps; all of it becomes one (sequences × longest) matrix of category
indices with −1 where a position is invalid or past a sequence's end. An integer matrix with no
gap (flipbench's own replies) takes a path with no Python loop per cell, and its rows are its
segments, so the runs and longest runs are computed on the matrix whole.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["IntArray", "Segments", "encode", "longest_runs", "segments_of"]

IntArray = npt.NDArray[np.int64]
#: Segments of valid outcomes: a list, or the whole matrix when no cell is invalid.
Segments = list[IntArray] | IntArray


def _invalid(value: object) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _label(value: object) -> str:
    """An outcome as its category's name: 1.0 (a float array with NaN gaps) reads as "1"."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def encode(
    sequences: Sequence[Sequence[Hashable | None]] | npt.NDArray[np.generic],
    categories: Sequence[str] | None = None,
) -> tuple[IntArray, list[str]]:
    """Sequences as an (n, longest) matrix of category indices, −1 where invalid or past a
    sequence's end. Outcomes compare as strings; one outside `categories` is an error."""
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2 and sequences.dtype.kind in "iub":
        return _encode_matrix(sequences, categories)
    rows = [[None if _invalid(v) else _label(v) for v in s] for s in sequences]
    seen = sorted({v for r in rows for v in r if v is not None})
    cats = list(categories) if categories is not None else seen
    unknown = set(seen) - set(cats)
    if unknown:
        raise ValueError(f"outcomes outside the categories {cats}: {sorted(unknown)[:5]}")
    index = {c: i for i, c in enumerate(cats)}
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = [-1 if v is None else index[v] for v in r]
    return out, cats


def _encode_matrix(
    matrix: npt.NDArray[np.generic], categories: Sequence[str] | None
) -> tuple[IntArray, list[str]]:
    """An integer matrix (every cell valid): the same encoding without a Python loop per cell."""
    values = np.unique(matrix)
    seen = sorted(str(v) for v in values)
    cats = list(categories) if categories is not None else seen
    unknown = set(seen) - set(cats)
    if unknown:
        raise ValueError(f"outcomes outside the categories {cats}: {sorted(unknown)[:5]}")
    out = np.empty(matrix.shape, dtype=np.int64)
    for v in values:
        out[matrix == v] = cats.index(str(v))
    return out, cats


def _row_longest(x: IntArray) -> IntArray:
    """The longest run of each row of a matrix with no invalid cell."""
    current = np.ones(len(x), dtype=np.int64)
    best = current.copy()
    for j in range(1, x.shape[1]):
        current = np.where(x[:, j] == x[:, j - 1], current + 1, 1)
        np.maximum(best, current, out=best)
    return best if x.shape[1] else np.zeros(len(x), dtype=np.int64)


def segments_of(x: IntArray) -> Segments:
    """Maximal stretches of valid outcomes, row by row (the matrix itself when all are valid:
    its rows are the segments, and the fast paths work on it whole)."""
    valid = x >= 0
    if valid.all():
        return x
    out: list[IntArray] = []
    for row, ok in zip(x, valid, strict=True):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.astype(np.int8), [0]))))
        out += [row[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return out


def _longest(segment: IntArray) -> int:
    if len(segment) == 0:
        return 0
    breaks = np.flatnonzero(np.diff(segment)) + 1
    bounds = np.concatenate(([0], breaks, [len(segment)]))
    return int(np.diff(bounds).max())


def longest_runs(segments: Segments) -> list[int]:
    """The longest run of each non-empty segment."""
    if isinstance(segments, np.ndarray):
        return [int(v) for v in _row_longest(segments)] if segments.shape[1] else []
    return [_longest(s) for s in segments if len(s)]
