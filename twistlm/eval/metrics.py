"""Benchmark metrics as the benchmarks define them: pure functions over per-pair outcomes.

A *pair outcome* is 1 when the positive (real word, grammatical sentence, coherent ending)
scores higher than the negative, 0 when lower and 0.5 on a tie (the official ZeroSpeech 2021
rule: ``0.5 * (w == nw) + (w > nw)``).

Aggregation follows the official ZeroSpeech 2021 evaluation code (zerospeech/zerospeech2021,
``lexical.py``, ``syntactic.py``, ``leaderboard.py``):

- sWUGGY: pair outcomes are averaged per ``id`` over voices; "all" is the mean of these per-id
  scores; frequency bands come from ``pandas.cut(freq, [0, 1, 5, 20, 100, inf], right=False)``
  with labels oov / 1-5 / 6-20 / 21-100 / >100, i.e. 0 | 1-4 | 5-19 | 20-99 | >=100 occurrences
  (the labels are the official tool's, off by one against its bins; we keep its bins so our
  numbers match it); "in-vocab" is the n-weighted mean of the non-oov bands (= the mean over
  in-vocabulary ids).
  By length (``lexical.py::evaluate_by_length``): ``by_pair.score.groupby(by_pair.length)``, one
  group per distinct ``length`` value of gold.csv (the word's length in phones, taken from the
  first pair of each id, as ``evaluate_by_pair`` does), the mean of the per-id scores; ids
  without a length are left out (pandas drops NaN group keys).
- sBLIMP: outcomes averaged per (type, subtype, id) over voices; overall = mean of those;
  by type (official) and by subtype (ours, same rule).
- sSC / tSC: plain accuracy over pairs.

Confidence intervals (95 %): Wilson score interval on the mean of the aggregation units
(per-id means for sWUGGY/sBLIMP, pairs for sSC/tSC), with n = number of units. Averaging over
voices and ties makes the per-unit variance at most the binomial one, so Wilson is slightly
conservative there. A seeded percentile bootstrap over units is available as an alternative.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twistlm.eval.benchmarks import BENCHMARKS

Z95 = 1.959963984540054  # two-sided 95 % normal quantile

# official sWUGGY bins: pandas.cut(..., [0, 1, 5, 20, 100, inf], right=False)
FREQUENCY_EDGES = (0, 1, 5, 20, 100, math.inf)
FREQUENCY_BANDS = ("oov", "1-5", "6-20", "21-100", ">100")


# ---------------------------------------------------------------- pair outcomes
def pair_outcomes(positive: Sequence[float], negative: Sequence[float]) -> np.ndarray:
    """(N,) positive scores, (N,) negative scores (higher = more likely) -> (N,) in {0, 0.5, 1}."""
    pos = np.asarray(positive, dtype=np.float64)
    neg = np.asarray(negative, dtype=np.float64)
    if pos.shape != neg.shape or pos.ndim != 1:
        raise ValueError(f"need two 1-D arrays of equal length, got {pos.shape} and {neg.shape}")
    return 0.5 * (pos == neg) + (pos > neg)


# ---------------------------------------------------------------- intervals
def wilson_interval(mean: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``mean`` observed over ``n`` units."""
    if n <= 0:
        return (math.nan, math.nan)
    p = min(max(float(mean), 0.0), 1.0)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(
    scores: Sequence[float], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``scores`` (seeded, so reproducible)."""
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // x.size)  # bound memory: chunk x N indices at a time
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


CI_METHODS = ("wilson", "bootstrap")


@dataclass(frozen=True)
class Accuracy:
    """Accuracy over ``n`` aggregation units (ids or pairs) with a 95 % interval."""

    accuracy: float
    n: int
    ci95: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "n": self.n, "ci95": list(self.ci95)}


def accuracy_of(unit_scores: Sequence[float], ci: str = "wilson", seed: int = 0) -> Accuracy:
    """Mean of per-unit scores in [0, 1] with its 95 % interval (``ci``: wilson | bootstrap)."""
    x = np.asarray(unit_scores, dtype=np.float64)
    if x.size == 0:
        return Accuracy(math.nan, 0, (math.nan, math.nan))
    mean = float(x.mean())
    if ci == "wilson":
        interval = wilson_interval(mean, x.size)
    elif ci == "bootstrap":
        interval = bootstrap_interval(x, seed=seed)
    else:
        raise ValueError(f"unknown CI method {ci!r}; choose from {CI_METHODS}")
    return Accuracy(mean, int(x.size), interval)


# ---------------------------------------------------------------- grouping helpers
def group_means(outcomes: Sequence[float], keys: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """Mean outcome per distinct key, keys in first-seen order -> (keys, (K,) means)."""
    sums: dict[Any, float] = {}
    counts: dict[Any, int] = {}
    for o, k in zip(outcomes, keys, strict=True):
        sums[k] = sums.get(k, 0.0) + float(o)
        counts[k] = counts.get(k, 0) + 1
    order = list(sums)
    return order, np.array([sums[k] / counts[k] for k in order], dtype=np.float64)


def word_length(length: float | int | str | None) -> int | None:
    """The integer ``length`` column of sWUGGY's gold.csv (None when missing or not a number)."""
    if length is None or isinstance(length, bool):
        return None
    try:
        f = float(str(length).strip()) if isinstance(length, str) else float(length)
    except (TypeError, ValueError):
        return None
    if math.isnan(f) or not f.is_integer():
        return None
    return int(f)


def frequency_band(frequency: float | int | None) -> str | None:
    """Official sWUGGY band of a word's LibriSpeech count (None/NaN -> None, as pandas.cut)."""
    if frequency is None or frequency == "":
        return None
    try:
        f = float(frequency)
    except (TypeError, ValueError):
        return None
    if math.isnan(f) or f < FREQUENCY_EDGES[0]:
        return None
    for band, lo, hi in zip(
        FREQUENCY_BANDS, FREQUENCY_EDGES[:-1], FREQUENCY_EDGES[1:], strict=True
    ):
        if lo <= f < hi:
            return band
    return None


# ---------------------------------------------------------------- per-benchmark metrics
@dataclass(frozen=True)
class BenchmarkMetrics:
    """Aggregated metrics of one benchmark under one score rule.

    ``overall`` is the headline; ``extra`` holds other headline-like numbers (sWUGGY
    ``in_vocab``); ``breakdowns[name][group]`` holds per-group accuracies (sWUGGY frequency band
    and word length, sBLIMP type and subtype).
    """

    overall: Accuracy
    n_pairs: int
    unit: str  # what one aggregation unit is ("id", "type/subtype/id", "pair")
    extra: dict[str, Accuracy] = field(default_factory=dict)
    breakdowns: dict[str, dict[str, Accuracy]] = field(default_factory=dict)


def swuggy_metrics(
    outcomes: Sequence[float],
    ids: Sequence[Any],
    frequencies: Sequence[float | int | None],
    ci: str = "wilson",
    lengths: Sequence[float | int | str | None] | None = None,
) -> BenchmarkMetrics:
    """sWUGGY: per-id mean over voices, "all", "in_vocab", frequency bands and, when
    ``lengths`` is given, the breakdown by word length (official rules, zerospeech2021
    ``lexical.py``: ``evaluate_by_frequency`` and ``evaluate_by_length``).

    ``frequencies`` / ``lengths`` are the word frequency and the word length (gold.csv
    ``length``, in phones) of each pair; the first pair of an id gives the id's values (as the
    official ``evaluate_by_pair``, which takes them from the id's first row). Length groups are
    keyed ``str(length)`` in increasing length order; ids without a length are left out of it.
    """
    keys, per_id = group_means(outcomes, ids)
    first_freq: dict[Any, Any] = {}
    for k, f in zip(ids, frequencies, strict=True):
        first_freq.setdefault(k, f)
    bands = [frequency_band(first_freq[k]) for k in keys]
    by_band = {
        b: accuracy_of([s for s, bb in zip(per_id, bands, strict=True) if bb == b], ci)
        for b in FREQUENCY_BANDS
        if b in bands
    }
    in_vocab = [s for s, b in zip(per_id, bands, strict=True) if b is not None and b != "oov"]
    breakdowns = {"frequency": by_band}
    if lengths is not None:
        first_len: dict[Any, Any] = {}
        for k, n in zip(ids, lengths, strict=True):
            first_len.setdefault(k, n)
        by_len: dict[int, list[float]] = {}
        for k, s in zip(keys, per_id, strict=True):
            n = word_length(first_len[k])
            if n is not None:
                by_len.setdefault(n, []).append(s)
        if by_len:
            breakdowns["length"] = {str(n): accuracy_of(by_len[n], ci) for n in sorted(by_len)}
    return BenchmarkMetrics(
        overall=accuracy_of(per_id, ci),
        n_pairs=len(outcomes),
        unit="id",
        extra={"in_vocab": accuracy_of(in_vocab, ci)},
        breakdowns=breakdowns,
    )


def sblimp_metrics(
    outcomes: Sequence[float],
    ids: Sequence[Any],
    types: Sequence[str],
    subtypes: Sequence[str],
    ci: str = "wilson",
) -> BenchmarkMetrics:
    """sBLIMP: per (type, subtype, id) mean over voices; overall, by type and by subtype."""
    unit_keys = [(t, s, i) for t, s, i in zip(types, subtypes, ids, strict=True)]
    keys, per_unit = group_means(outcomes, unit_keys)
    by_type: dict[str, list[float]] = {}
    by_subtype: dict[str, list[float]] = {}
    for (t, s, _), score in zip(keys, per_unit, strict=True):
        by_type.setdefault(str(t), []).append(score)
        by_subtype.setdefault(f"{t}/{s}", []).append(score)
    return BenchmarkMetrics(
        overall=accuracy_of(per_unit, ci),
        n_pairs=len(outcomes),
        unit="type/subtype/id",
        breakdowns={
            "type": {k: accuracy_of(v, ci) for k, v in sorted(by_type.items())},
            "subtype": {k: accuracy_of(v, ci) for k, v in sorted(by_subtype.items())},
        },
    )


def storycloze_metrics(outcomes: Sequence[float], ci: str = "wilson") -> BenchmarkMetrics:
    """sSC / tSC: accuracy over pairs."""
    return BenchmarkMetrics(overall=accuracy_of(outcomes, ci), n_pairs=len(outcomes), unit="pair")


def _meta_column(metas: Sequence[dict], key: str, fallback: Sequence[Any]) -> list[Any]:
    return [m[key] if m.get(key) is not None else fb for m, fb in zip(metas, fallback, strict=True)]


def _swuggy_from_meta(outcomes, metas, pair_ids, ci):
    ids = _meta_column(metas, "id", pair_ids)
    freqs = [m.get("frequency") for m in metas]
    return swuggy_metrics(outcomes, ids, freqs, ci, lengths=[m.get("length") for m in metas])


def _sblimp_from_meta(outcomes, metas, pair_ids, ci):
    ids = _meta_column(metas, "id", pair_ids)
    types = _meta_column(metas, "type", ["unknown"] * len(metas))
    subtypes = _meta_column(metas, "subtype", ["unknown"] * len(metas))
    return sblimp_metrics(outcomes, ids, types, subtypes, ci)


def _storycloze_from_meta(outcomes, metas, pair_ids, ci):
    return storycloze_metrics(outcomes, ci)


def aggregation_key(kind: str, meta: dict | None, pair_id: str) -> str:
    """The unit a benchmark averages over: sWUGGY ``id``, sBLIMP (type, subtype, id), else the
    pair (sSC / tSC, or pairs without ids), as the metrics above aggregate."""
    m = meta or {}
    family = BENCHMARKS[kind].metric if kind in BENCHMARKS else None
    if family == "swuggy" and m.get("id") is not None:
        return str(m["id"])
    if family == "sblimp" and m.get("id") is not None:
        return f"{m.get('type')}|{m.get('subtype')}|{m['id']}"
    return str(pair_id)


# metric family -> f(outcomes, metas, pair_ids, ci) -> BenchmarkMetrics (one signature each)
METRIC_FAMILIES: dict[str, Callable[..., BenchmarkMetrics]] = {
    "swuggy": _swuggy_from_meta,
    "sblimp": _sblimp_from_meta,
    "storycloze": _storycloze_from_meta,
}
# kind -> its metric, as the benchmark registry (twistlm.eval.benchmarks) assigns it
METRICS: dict[str, Callable[..., BenchmarkMetrics]] = {
    kind: METRIC_FAMILIES[b.metric] for kind, b in BENCHMARKS.items()
}


def benchmark_metrics(
    kind: str,
    outcomes: Sequence[float],
    metas: Sequence[dict],
    pair_ids: Sequence[str],
    ci: str = "wilson",
) -> BenchmarkMetrics:
    """Metrics of benchmark ``kind`` from per-pair outcomes and the pairs' ``meta`` dicts.

    Missing meta falls back to one unit per pair (``pair_id`` as the id), so re-packagings
    without voice/id columns still aggregate sensibly.
    """
    if kind not in METRICS:
        raise ValueError(f"unknown benchmark {kind!r}; choose from {sorted(METRICS)}")
    if not (len(outcomes) == len(metas) == len(pair_ids)):
        raise ValueError("outcomes, metas and pair_ids must have the same length")
    return METRICS[kind](outcomes, metas, pair_ids, ci)
