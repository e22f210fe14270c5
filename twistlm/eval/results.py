"""What `evaluate` returns: per-benchmark results, the run's result, its error log, aggregation.

:func:`aggregate` turns per-pair scores (summed log-probability and scored-token count of each
positive and negative) into a :class:`BenchmarkResult` with metrics under both score rules;
the SpeechLM, the text topline and the controls all aggregate through it, so their numbers
compare. :func:`aggregate_scored` does it for every benchmark of one scoring pass
(:class:`ScoredPairs`). :meth:`EvalResult.to_dict` is the results.json schema
(``RESULTS_SCHEMA``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from twistlm.eval.metrics import BenchmarkMetrics, benchmark_metrics, pair_outcomes

if TYPE_CHECKING:
    from torch import Tensor

SCORE_RULES = ("mean", "sum")
RESULTS_SCHEMA = "twistlm.eval.results/1"


@dataclass
class BenchmarkResult:
    """Scores and metrics of one benchmark (for a SpeechLM or the text topline).

    Per scored pair (arrays of shape (P,)): summed log-probability and number of scored tokens
    of the positive and the negative. ``metrics`` maps a score rule to its aggregate.
    """

    kind: str
    path: str
    pairs: list  # list[PairRecord], the scored pairs, aligned with the arrays
    pos_sum: np.ndarray
    pos_n: np.ndarray
    neg_sum: np.ndarray
    neg_n: np.ndarray
    metrics: dict[str, BenchmarkMetrics]
    n_failed: int = 0

    def scores(self, rule: str) -> tuple[np.ndarray, np.ndarray]:
        """(P,) positive and (P,) negative scores under ``rule`` (higher = more likely)."""
        if rule == "mean":
            return self.pos_sum / self.pos_n, self.neg_sum / self.neg_n
        if rule == "sum":
            return self.pos_sum, self.neg_sum
        raise ValueError(f"unknown score rule {rule!r}; choose from {SCORE_RULES}")

    def outcomes(self, rule: str) -> np.ndarray:
        return pair_outcomes(*self.scores(rule))

    def accuracy(self, rule: str = "mean") -> float:
        return self.metrics[rule].overall.accuracy

    def to_dict(self, headline: str = "mean") -> dict[str, Any]:
        """The results.json entry: mean-rule numbers plain, sum-rule ones suffixed ``_sum``."""
        mean, summ = self.metrics["mean"], self.metrics["sum"]

        def pair(a, b) -> dict[str, Any]:
            return {
                "accuracy": _num(a.accuracy),
                "accuracy_sum": _num(b.accuracy),
                "n": a.n,
                "ci95": [_num(v) for v in a.ci95],
                "ci95_sum": [_num(v) for v in b.ci95],
            }

        pos_mean, neg_mean = self.scores("mean")
        out = {
            "path": self.path,
            "n_pairs": mean.n_pairs,
            "n_failed": self.n_failed,
            "unit": mean.unit,
            **pair(mean.overall, summ.overall),
            "headline": _num(self.metrics[headline].overall.accuracy),
            "mean_nll_positive": _num(-float(np.mean(pos_mean))) if len(pos_mean) else None,
            "mean_nll_negative": _num(-float(np.mean(neg_mean))) if len(neg_mean) else None,
            "extra": {k: pair(v, summ.extra[k]) for k, v in mean.extra.items()},
            "breakdowns": {
                name: {g: pair(a, summ.breakdowns[name][g]) for g, a in groups.items()}
                for name, groups in mean.breakdowns.items()
            },
        }
        return out


def _num(x: float) -> float | None:
    """JSON-safe float (NaN -> None)."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


@dataclass
class EvalResult:
    """Everything `evaluate` measured. ``to_dict()`` is the results.json schema."""

    benchmarks: dict[str, BenchmarkResult]
    score_rule: str = "mean"
    ci: str = "wilson"
    topline: dict[str, BenchmarkResult] = field(default_factory=dict)
    topline_model: str | None = None
    controls: dict[str, dict[str, BenchmarkResult]] = field(default_factory=dict)
    generation: dict[str, Any] | None = None
    model: dict[str, Any] = field(default_factory=dict)
    tokenizer: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": RESULTS_SCHEMA,
            "score_rule": self.score_rule,
            "ci_method": self.ci,
            "model": self.model,
            "tokenizer": self.tokenizer,
            "benchmarks": {k: b.to_dict(self.score_rule) for k, b in self.benchmarks.items()},
            "topline": (
                {
                    "text_lm": self.topline_model,
                    "benchmarks": {k: b.to_dict(self.score_rule) for k, b in self.topline.items()},
                }
                if self.topline
                else None
            ),
            "controls": {
                name: {k: b.to_dict(self.score_rule) for k, b in by_kind.items()}
                for name, by_kind in self.controls.items()
            },
            "generation": self.generation,
            "stats": self.stats,
            "errors": self.errors,
        }


class EvalErrors:
    """Collects per-input errors in memory and, with an out_dir, in errors.jsonl.

    One bad input never stops the job: readers, tokenization, scoring, the topline and
    generation report here and go on; ``items`` becomes ``EvalResult.errors``.
    """

    def __init__(self, out_dir: Path | None):
        from twistlm.io import ErrorLog

        self.log = ErrorLog(out_dir / "errors.jsonl") if out_dir is not None else None
        self.items: list[dict[str, Any]] = []

    def add(self, item: str, error: BaseException | str, **extra: Any) -> None:
        msg = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        msg = " ".join(str(msg).split())
        self.items.append({"path": str(item), "error": msg, **extra})
        if self.log is not None:
            self.log.add(item, msg, **extra)
        else:
            tqdm.write(f"error: {item}: {msg}")


def aggregate(
    kind: str,
    path: str,
    pairs: Sequence,
    pos_sum,
    pos_n,
    neg_sum,
    neg_n,
    n_failed: int = 0,
    ci: str = "wilson",
) -> BenchmarkResult:
    """Build a :class:`BenchmarkResult` (metrics under both rules) from per-pair scores."""
    res = BenchmarkResult(
        kind,
        str(path),
        list(pairs),
        np.asarray(pos_sum, dtype=np.float64),
        np.asarray(pos_n, dtype=np.float64),
        np.asarray(neg_sum, dtype=np.float64),
        np.asarray(neg_n, dtype=np.float64),
        {},
        n_failed,
    )
    metas = [p.meta for p in res.pairs]
    ids = [p.pair_id for p in res.pairs]
    for rule in SCORE_RULES:
        res.metrics[rule] = benchmark_metrics(kind, res.outcomes(rule), metas, ids, ci)
    return res


@dataclass
class ScoredPairs:
    """The pairs whose two utterances both tokenized, and their scores.

    ``seqs`` holds the positive and negative units of every kept pair, benchmark after
    benchmark in ``kept`` order (2P sequences); ``sums`` / ``ns`` are their (2P,) summed
    log-probabilities and scored-token counts.
    """

    kept: dict[str, list]  # kind -> [PairRecord]
    failed: dict[str, int]  # kind -> pairs dropped because an utterance did not tokenize
    seqs: list[Tensor]
    sums: np.ndarray
    ns: np.ndarray
    n_unique: int = 0
    info: dict[str, Any] = field(default_factory=lambda: {"packed_pairs": 0, "packing": "off"})


def aggregate_scored(
    scored: ScoredPairs, paths: dict[str, str], errors: EvalErrors | None = None, ci: str = "wilson"
) -> tuple[dict[str, BenchmarkResult], dict[str, tuple]]:
    """Per-benchmark results of scored pairs (``paths``: kind -> benchmark path) ->
    ({kind: BenchmarkResult}, {kind: (path, pairs, positive units, negative units)}).

    A pair with an utterance that has no scored token (1 unit without BOS) is dropped and
    logged; the second dict feeds the controls, on exactly the pairs the model scored.
    """
    results: dict[str, BenchmarkResult] = {}
    control_units: dict[str, tuple] = {}
    i = 0
    for kind, pairs in scored.kept.items():
        k = len(pairs)
        s, n = scored.sums[i : i + 2 * k], scored.ns[i : i + 2 * k]
        seqs = scored.seqs[i : i + 2 * k]
        i += 2 * k
        ok = (n[0::2] > 0) & (n[1::2] > 0)  # a 1-unit utterance without BOS has nothing scored
        for p, good in zip(pairs, ok, strict=True):
            if not good and errors is not None:
                errors.add(
                    p.pair_id, "an utterance has no scored token (too short)", benchmark=kind
                )
        pairs = [p for p, good in zip(pairs, ok, strict=True) if good]
        kept_seqs = [u.tolist() for u, good in zip(seqs, ok.repeat(2), strict=True) if good]
        path = paths[kind]
        control_units[kind] = (path, pairs, kept_seqs[0::2], kept_seqs[1::2])
        if not pairs:
            if errors is not None:
                errors.add(path, "no pair could be scored", benchmark=kind)
            continue
        results[kind] = aggregate(
            kind,
            path,
            pairs,
            s[0::2][ok],
            n[0::2][ok],
            s[1::2][ok],
            n[1::2][ok],
            n_failed=scored.failed[kind] + int((~ok).sum()),
            ci=ci,
        )
    return results, control_units
