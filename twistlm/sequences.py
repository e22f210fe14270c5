"""Edit distance between sequences (unit ids, words, phones): one implementation for the package.

Levenshtein distance with unit costs for insertion, deletion and substitution. Rows of the
dynamic programme are computed with numpy: the insertion term ``d[i][j-1] + 1`` is the only
left-to-right dependency, and ``min_k<=j (t[k] + j - k) = j + cummin(t[k] - k)`` resolves it with
one ``np.minimum.accumulate`` per row, so a 300 x 300 pair costs 300 vector operations.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def _as_codes(a: Sequence[Hashable], b: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    """Map both sequences to int64 codes (equal items -> equal codes)."""
    arr_a, arr_b = np.asarray(a), np.asarray(b)
    if arr_a.dtype.kind in "iub" and arr_b.dtype.kind in "iub":
        return arr_a.astype(np.int64).reshape(-1), arr_b.astype(np.int64).reshape(-1)
    table: dict[Hashable, int] = {}
    ca = np.array([table.setdefault(x, len(table)) for x in a], dtype=np.int64)
    cb = np.array([table.setdefault(x, len(table)) for x in b], dtype=np.int64)
    return ca, cb


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance between two sequences of hashable items (ints, strings, ...)."""
    ca, cb = _as_codes(a, b)
    if len(ca) < len(cb):
        ca, cb = cb, ca  # the shorter one spans the row
    n = len(cb)
    if n == 0:
        return int(len(ca))
    cols = np.arange(n + 1, dtype=np.int64)
    prev = cols.copy()  # d[0][j] = j
    for i, x in enumerate(ca, start=1):
        t = np.empty(n + 1, dtype=np.int64)
        t[0] = i
        # deletion d[i-1][j] + 1, substitution d[i-1][j-1] + (x != b[j-1])
        t[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (cb != x))
        # insertion chain: d[i][j] = min_k<=j (t[k] + j - k)
        prev = np.minimum.accumulate(t - cols) + cols
    return int(prev[-1])


def normalized_edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Edit distance divided by the longer length (0 for two empty sequences), in [0, 1]."""
    longest = max(len(a), len(b))
    return 0.0 if longest == 0 else edit_distance(a, b) / longest
