"""Controls beside every accuracy: what trivial rules score on the same pairs, and paired
differences between two models with their interval.

- :func:`length_rule_outcomes`: "the utterance with fewer units wins" (an LM's summed
  log-likelihood favours shorter sequences, so a benchmark whose negatives are longer rewards any
  model for length alone; this rule shows how much).
- :class:`NgramUnitLM`: an interpolated Witten-Bell n-gram model over units, trained on the same
  unit shards as the SpeechLMs: what counting alone achieves.
- :func:`paired_difference`: model A minus model B on the same aggregation units, with a paired
  percentile bootstrap 95 % interval (both models scored the very same pairs, so the pairs'
  difficulty cancels and the interval is much tighter than two independent intervals).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twistlm.eval.metrics import aggregation_key, bootstrap_interval


def length_rule_outcomes(
    positive: Sequence[Sequence[int]], negative: Sequence[Sequence[int]]
) -> np.ndarray:
    """(N,) outcomes of "fewer units wins": 1 if the positive is shorter, 0.5 on a tie, else 0."""
    if len(positive) != len(negative):
        raise ValueError(f"{len(positive)} positives for {len(negative)} negatives")
    lp = np.array([len(p) for p in positive], dtype=np.float64)
    ln = np.array([len(n) for n in negative], dtype=np.float64)
    return 0.5 * (lp == ln) + (lp < ln)


class NgramUnitLM:
    """Interpolated Witten-Bell n-gram LM over unit ids (with utterance start/end symbols).

    ``p(w | h) = (c(h, w) + T(h) * p(w | h')) / (c(h) + T(h))`` where ``T(h)`` is the number of
    distinct words seen after ``h`` and ``h'`` drops the oldest unit; the recursion ends in a
    uniform distribution over ``n_units + 1`` symbols (units and end). Unseen histories back off
    entirely. Witten & Bell (1991); the interpolated form as in Chen & Goodman (1998), sec. 2.5.
    """

    def __init__(self, n_units: int, order: int = 3):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.n_units = int(n_units)
        self.order = int(order)
        self.end = self.n_units  # end-of-utterance symbol
        self.start = self.n_units + 1  # padding before the first unit (never predicted)
        # counts[k][history tuple of length k] -> Counter of next symbols
        self.counts: list[dict[tuple[int, ...], Counter]] = [
            defaultdict(Counter) for _ in range(self.order)
        ]

    def fit(self, utterances: Iterable[Sequence[int]]) -> NgramUnitLM:
        for utt in utterances:
            seq = [self.start] * (self.order - 1) + [int(u) for u in utt] + [self.end]
            for i in range(self.order - 1, len(seq)):
                for k in range(self.order):
                    self.counts[k][tuple(seq[i - k : i])][seq[i]] += 1
        return self

    def prob(self, history: Sequence[int], symbol: int) -> float:
        """p(symbol | last order-1 symbols of history)."""
        p = 1.0 / (self.n_units + 1)
        for k in range(self.order):  # from the unigram up to the full history
            if k > len(history):
                break
            h = tuple(history[len(history) - k :]) if k else ()
            c = self.counts[k].get(h)
            if not c:
                continue
            total, types = sum(c.values()), len(c)
            p = (c.get(symbol, 0) + types * p) / (total + types)
        return p

    def logprobs(self, units: Sequence[int], with_end: bool = False) -> list[float]:
        """Natural-log probability of each unit (and the end symbol if ``with_end``)."""
        hist = [self.start] * (self.order - 1)
        out = []
        targets = [int(u) for u in units] + ([self.end] if with_end else [])
        for u in targets:
            out.append(math.log(self.prob(hist, u)))
            hist = hist[1:] + [u] if self.order > 1 else hist
        return out

    def score(self, units: Sequence[int], rule: str = "mean") -> float:
        """Utterance score as the SpeechLM rules define it: ``mean`` or ``sum`` log-prob."""
        lp = self.logprobs(units)
        if not lp:
            return float("nan")
        if rule == "mean":
            return float(np.mean(lp))
        if rule == "sum":
            return float(np.sum(lp))
        raise ValueError(f"unknown rule {rule!r}; mean or sum")


@dataclass(frozen=True)
class PairedDifference:
    """Mean of A minus mean of B over the same units, with a paired bootstrap 95 % interval."""

    difference: float
    ci95: tuple[float, float]
    n: int

    def to_dict(self) -> dict:
        return {"difference": self.difference, "ci95": list(self.ci95), "n": self.n}


def paired_difference(
    a: Sequence[float], b: Sequence[float], n_resamples: int = 2000, seed: int = 0
) -> PairedDifference:
    """``mean(a) - mean(b)`` where ``a[i]`` and ``b[i]`` score the same unit (pair or id).

    The interval resamples units with replacement and takes the same units for both models
    (percentile bootstrap of the per-unit differences), seeded so it is reproducible.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    x = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if x.size == 0:
        return PairedDifference(math.nan, (math.nan, math.nan), 0)
    lo, hi = bootstrap_interval(x, n_resamples=n_resamples, seed=seed)
    return PairedDifference(float(x.mean()), (lo, hi), int(x.size))


# ---------------------------------------------------------------- per-unit outcomes, paired
def unit_outcomes(kind: str, records: Sequence[dict], rule: str = "mean") -> dict[str, float]:
    """Per aggregation unit mean outcome, as the benchmark aggregates (twistlm.eval.metrics):
    sWUGGY by ``id``, sBLIMP by (type, subtype, id), sSC / tSC by pair.

    ``records``: the ``pairs/{kind}.jsonl`` lines that ``twistlm eval`` writes.
    """
    groups: dict[str, list[float]] = defaultdict(list)
    for r in records:
        key = aggregation_key(kind, r.get("meta"), r["pair_id"])
        groups[key].append(float(r[f"outcome_{rule}"]))
    return {k: float(np.mean(v)) for k, v in groups.items()}


def paired_benchmark_differences(
    a: dict[str, Sequence[dict]],
    b: dict[str, Sequence[dict]],
    rule: str = "mean",
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, PairedDifference]:
    """Model A minus model B per benchmark and on the mean over benchmarks (``"mean"``).

    ``a``, ``b``: ``{kind: pair records}`` of the two models on the same pairs. Only units both
    scored count. The interval of the mean resamples each benchmark's units independently (the
    benchmarks are independent samples) and averages the per-benchmark means of each draw.
    """
    out: dict[str, PairedDifference] = {}
    draws = []
    rng = np.random.default_rng(seed)
    for kind in sorted(set(a) & set(b)):
        ua, ub = unit_outcomes(kind, a[kind], rule), unit_outcomes(kind, b[kind], rule)
        keys = sorted(set(ua) & set(ub))
        if not keys:
            continue
        x = np.array([ua[k] - ub[k] for k in keys])
        out[kind] = paired_difference(x, np.zeros_like(x), n_resamples, seed)
        draws.append(x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1))
    if draws:
        mean_draws = np.mean(draws, axis=0)
        lo, hi = np.quantile(mean_draws, [0.025, 0.975])
        diff = float(np.mean([out[k].difference for k in out]))
        out["mean"] = PairedDifference(diff, (float(lo), float(hi)), sum(d.n for d in out.values()))
    return out


# ---------------------------------------------------------------- controls on benchmarks
LENGTH_ONLY = "length only (fewer units wins)"


def ngram_name(order: int) -> str:
    return f"unit {order}-gram (Witten-Bell)"


def controls_from_units(
    per_kind: dict[str, tuple[str, Sequence, Sequence[Sequence[int]], Sequence[Sequence[int]]]],
    ngram: NgramUnitLM | None = None,
    ci: str = "wilson",
) -> dict[str, dict[str, Any]]:
    """Controls on already tokenized pairs: ``{kind: (path, pairs, positive units, negative
    units)}`` -> ``{control name: {kind: BenchmarkResult}}``.

    The length-only rule always; the n-gram rule when ``ngram`` is given. Both go through the
    models' aggregation (``twistlm.eval.results.aggregate``), so the numbers compare.
    """
    from twistlm.eval.results import aggregate

    out: dict[str, dict[str, Any]] = {LENGTH_ONLY: {}}
    if ngram is not None:
        out[ngram_name(ngram.order)] = {}
    for kind, (path, pairs, pos, neg) in per_kind.items():
        if not pairs:
            continue
        lp = np.array([len(u) for u in pos], dtype=np.float64)
        ln = np.array([len(u) for u in neg], dtype=np.float64)
        ones = np.ones_like(lp)
        # score = -length: the mean rule then prefers the shorter utterance
        out[LENGTH_ONLY][kind] = aggregate(kind, path, pairs, -lp, ones, -ln, ones, ci=ci)
        if ngram is not None:
            sp = np.array([ngram.score(u, "sum") for u in pos])
            sn = np.array([ngram.score(u, "sum") for u in neg])
            out[ngram_name(ngram.order)][kind] = aggregate(kind, path, pairs, sp, lp, sn, ln, ci=ci)
    return out


def ngram_cross_entropy(
    train: Sequence[Sequence[int]], val: Sequence[Sequence[int]], n_units: int, order: int
) -> float:
    """Nats per token of an n-gram count model fitted on ``train``, on ``val`` (units and the
    end of each utterance: the tokens a SpeechLM's validation loss covers)."""
    lm = NgramUnitLM(n_units, order).fit(train)
    lp = [x for u in val for x in lm.logprobs(u, with_end=True)]
    return float(-np.mean(lp)) if lp else math.nan


def fit_ngram_on_shards(units_dir: str, n_units: int, order: int = 3) -> NgramUnitLM:
    """A unit n-gram LM on every utterance of a unit-shard folder (what a SpeechLM trained on)."""
    from twistlm.train.data import read_units

    return NgramUnitLM(n_units, order).fit(u.tolist() for u in read_units(units_dir).units)
