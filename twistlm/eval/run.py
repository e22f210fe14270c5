"""`evaluate(...)`: score sWUGGY / sBLIMP / sSC / tSC pairs with a SpeechLM and aggregate.

This module orchestrates; each step has its own home:

1. read each benchmark into :class:`~twistlm.eval.readers.PairRecord` lists
   (:mod:`twistlm.eval.readers`; kinds, titles and metrics in :mod:`twistlm.eval.benchmarks`);
2. tokenize every distinct utterance with the model's own tokenizer, through the on-disk
   :class:`~twistlm.eval.cache.UnitCache` (:func:`~twistlm.eval.cache.tokenize_refs`; a second
   run tokenizes nothing);
3. de-duplicate identical unit sequences (the same word spoken twice, a positive that
   tokenizes like its negative), sort them by length and score them, a pair's shared prefix
   once (:func:`twistlm.lm.scoring.score_unique`: batched, padded, exact);
4. per pair: positive vs negative log-likelihood under the *mean* rule (mean log-prob per
   scored unit = minus the mean NLL, the headline) and the *sum* rule; a tie counts 0.5;
5. aggregate (:func:`twistlm.eval.results.aggregate`, :mod:`twistlm.eval.metrics`), add the
   controls, the text topline and generation metrics when asked, and (with ``out_dir``) write
   results.json, results.md, the ZeroSpeech-style submission, per-pair scores and a bar plot
   (:mod:`twistlm.eval.report`).

Bad utterances (missing, undecodable, too short) are logged to ``out_dir/errors.jsonl`` and
their pairs dropped (counted in ``n_failed``); a benchmark that cannot be read at all is logged
and skipped. The job goes on either way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from twistlm.config import ConfigError
from twistlm.eval.cache import (
    UnitCache,
    default_cache_root,
    tokenize_refs,
    tokenizer_fingerprint,
    utterance_key,
)
from twistlm.eval.metrics import CI_METHODS
from twistlm.eval.results import (
    RESULTS_SCHEMA,
    SCORE_RULES,
    BenchmarkResult,
    EvalErrors,
    EvalResult,
    ScoredPairs,
    aggregate,
    aggregate_scored,
)
from twistlm.lm import components
from twistlm.lm.scoring import score_unique

__all__ = [
    "EvalConfig",
    "evaluate",
    "load_speech_lm",
    "load_tokenizer",
    "check_compatible",
    "read_benchmarks",
    # moved to twistlm.eval.results, .cache and twistlm.lm.scoring; re-exported here so the
    # old import paths keep working for one release
    "RESULTS_SCHEMA",
    "SCORE_RULES",
    "BenchmarkResult",
    "EvalErrors",
    "EvalResult",
    "aggregate",
    "tokenize_refs",
    "score_unique",
]


@dataclass(frozen=True)
class EvalConfig:
    """How :func:`evaluate` scores, what it adds and what it writes. Every field is also a
    keyword of :func:`evaluate` (``evaluate(m, b, batch_size=32)`` ==
    ``evaluate(m, b, config=EvalConfig(batch_size=32))``).

    Attributes:
        batch_size: utterances per forward pass (SpeechLM scoring and the text topline).
        device: torch device; None keeps a loaded model where it is (a dir loads on CPU).
        score: headline rule, "mean" (mean log-prob per unit) or "sum"; both are always
            computed and reported.
        autocast: bf16 autocast for the forward passes (CPU or GPU; ~1e-2 score noise).
        convention: unit-id convention of a model dir (twistlm | twist | slamkit); None
            detects it.
        cache_dir: unit cache root (default ``~/.cache/twistlm/units``).
        use_cache: False tokenizes everything afresh and stores nothing.
        topline: also score the pairs' texts with a text LM.
        text_lm: the topline's text LM (HF dir, hub name, .gguf; None = SmolLM2-135M, offline).
        gen_prompts: prompt wavs, folders of wavs or AudioRefs: also run generation metrics.
        vocoder: vocoder dir or loaded Vocoder for the generation metrics.
        gen_options: keyword options of ``eval.generation.evaluate_generation``.
        ci: confidence interval method, "wilson" or "bootstrap".
        limit: keep only the first ``limit`` pairs of each benchmark (quick checks).
        share_prefix: compute a unit prefix shared by a pair's two utterances once (exact;
            pays on StoryCloze-like pairs with a common context).
        progress: show progress bars.
        plot: write results.png (with an out_dir).
        controls_train: unit shards the model was trained on: adds a unit 3-gram control
            fitted on them. The length-only control (fewer units wins) is always computed.
    """

    batch_size: int = 16
    device: str | None = None
    score: str = "mean"
    autocast: bool = False
    convention: str | None = None
    cache_dir: str | Path | None = None
    use_cache: bool = True
    topline: bool = False
    text_lm: str | Path | None = None
    gen_prompts: Sequence[Any] | None = None
    vocoder: Any = None
    gen_options: dict[str, Any] | None = None
    ci: str = "wilson"
    limit: int | None = None
    share_prefix: bool = True
    progress: bool = True
    plot: bool = True
    controls_train: str | Path | None = None

    def __post_init__(self) -> None:
        if self.score not in SCORE_RULES:
            raise ConfigError(f"score must be one of {SCORE_RULES}, got {self.score!r}")
        if self.ci not in CI_METHODS:
            raise ConfigError(f"ci must be one of {CI_METHODS}, got {self.ci!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 0:
            raise ConfigError(f"limit must be >= 0 or None, got {self.limit}")


# ---------------------------------------------------------------- model and tokenizer
def load_speech_lm(model, device: str | None = None, convention: str | None = None, dtype=None):
    """A SpeechLM from a dir (any convention; on ``device`` or CPU; weights in ``dtype`` when
    given) or an already-loaded SpeechLM (moved to ``device`` only when one is given, its
    dtype left alone), in eval mode."""
    from twistlm.lm.model import SpeechLM

    if isinstance(model, (str, Path)):
        return SpeechLM.from_pretrained(
            model, convention=convention, device=device or "cpu", dtype=dtype
        )
    return (model.to(device) if device is not None else model).eval()


def load_tokenizer(lm, tokenizer=None, model_dir=None):
    """(tokenizer, its dir or None): :func:`twistlm.lm.components.resolve_tokenizer`."""
    return components.resolve_tokenizer(lm, tokenizer, model_dir)


def check_compatible(lm, tokenizer, tokenizer_path=None) -> None:
    """:func:`twistlm.lm.components.check_compatible` for a model and its tokenizer."""
    components.check_compatible(lm, tokenizer, paths={"tokenizer": tokenizer_path})


# ---------------------------------------------------------------- evaluate
def read_benchmarks(benches: dict[str, str | Path], errors: EvalErrors, limit: int | None = None):
    """{kind: path} -> {kind: (path, [PairRecord])}; unreadable benchmarks are logged, skipped."""
    from twistlm.eval.readers import read_benchmark

    out = {}
    for kind, path in benches.items():
        try:
            pairs = read_benchmark(kind, path)
        except Exception as e:
            errors.add(str(path), e, benchmark=kind)
            continue
        if limit is not None:
            pairs = pairs[:limit]
        if not pairs:
            errors.add(str(path), "no pairs found", benchmark=kind)
            continue
        out[kind] = (str(path), pairs)
    return out


def evaluate(
    model,
    benches: dict[str, str | Path],
    tokenizer=None,
    out_dir: str | Path | None = None,
    *,
    config: EvalConfig | None = None,
    **options: Any,
) -> EvalResult:
    """Evaluate a SpeechLM on benchmarks (and optionally a text topline and generation).

    Args:
        model: SpeechLM dir (ours, TWIST offset, SlamKit; auto-detected) or a loaded SpeechLM.
        benches: {kind: path} with kind in swuggy | sblimp | ssc | tsc (any layout the
            readers know: sLM21 folders, sSC/tSC folders, pairs.jsonl, HF parquet).
        tokenizer: UnitTokenizer dir or object; default: the one the model's meta names.
        out_dir: where to write results.json, results.md, submission/, pairs/, results.png,
            errors.jsonl (nothing is written when None).
        config: the settings (:class:`EvalConfig`; default ``EvalConfig()``).
        **options: any :class:`EvalConfig` field as a keyword (``batch_size=32``,
            ``score="sum"``, ...); overrides ``config``'s value.

    Returns:
        :class:`EvalResult` (``.to_dict()`` is results.json).
    """
    cfg = replace(config or EvalConfig(), **options)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "errors.jsonl").unlink(missing_ok=True)  # every output describes this run only
    errors = EvalErrors(out)
    clock = {"start": time.perf_counter()}
    lm = load_eval_model(model, cfg)
    tok, tok_dir = load_tokenizer(lm, tokenizer, model if isinstance(model, (str, Path)) else None)
    check_compatible(lm, tok, tok_dir)
    info = tok.info() if hasattr(tok, "info") else {}
    fingerprint = tokenizer_fingerprint(info, tok_dir, getattr(tok, "centroids", None))
    cache = None
    if cfg.use_cache:
        cache = UnitCache(cfg.cache_dir or default_cache_root(), fingerprint, info)

    loaded = read_benchmarks(benches, errors, cfg.limit)
    clock["read"] = time.perf_counter()
    all_refs = [r for _, pairs in loaded.values() for p in pairs for r in (p.positive, p.negative)]
    units, tok_counts = tokenize_refs(all_refs, tok, cache, errors, cfg.progress)
    clock["tokenize"] = time.perf_counter()
    scored = _score_pairs(lm, loaded, units, cfg)
    clock["score"] = time.perf_counter()

    paths = {kind: path for kind, (path, _) in loaded.items()}
    results, control_units = aggregate_scored(scored, paths, errors, cfg.ci)
    result = EvalResult(
        results,
        score_rule=cfg.score,
        ci=cfg.ci,
        model=_model_info(lm),
        tokenizer={"path": str(tok_dir) if tok_dir else None, "fingerprint": fingerprint, **info},
        out_dir=out,
    )
    _add_controls(result, control_units, lm, cfg)
    _add_topline(result, loaded, lm, cfg, errors)
    if cfg.gen_prompts:
        t = time.perf_counter()
        result.generation = _run_generation(
            lm, tok, cfg.vocoder, cfg.gen_prompts, out, cfg.gen_options or {}, errors
        )
        result.stats["generation_s"] = time.perf_counter() - t
    result.stats.update(_stats(clock, tok_counts, scored, lm, cfg))
    result.errors = errors.items
    if out is not None:
        from twistlm.eval.report import write_outputs

        write_outputs(result, out, plot=cfg.plot)
    if errors.items:
        tqdm.write(
            f"{len(errors.items)} input(s) failed"
            + (f"; see {out / 'errors.jsonl'}" if out is not None else "")
        )
    return result


def load_eval_model(model, cfg: EvalConfig):
    """The SpeechLM, with a warning when bf16 autocast would be emulated (slow) on its device.

    With ``autocast`` a model loaded from a dir gets bf16 *weights* too (scoring keeps no
    master weights, and autocast then has no weight to cast on every forward): measured 1.4x
    the pairs/s of autocast over fp32 weights on the 6-layer model (docs/train.md). A model
    passed in memory keeps its dtype.
    """
    dtype = torch.bfloat16 if cfg.autocast else None
    lm = load_speech_lm(model, device=cfg.device, convention=cfg.convention, dtype=dtype)
    if cfg.autocast:
        from twistlm.hardware import bf16_is_fast

        if not bf16_is_fast(lm.device):
            tqdm.write(
                f"warning: bf16 is emulated on this {lm.device.type} (no AMX / bf16 support): "
                "scoring will be several times slower than fp32; drop --bf16"
            )
    return lm


def _score_pairs(lm, loaded: dict[str, tuple], units: dict[str, Tensor], cfg: EvalConfig):
    """Keep the pairs whose two utterances tokenized and score all their sequences at once."""
    kept: dict[str, list] = {}
    failed: dict[str, int] = {}
    seqs: list[Tensor] = []
    for kind, (_, pairs) in loaded.items():
        kept[kind], failed[kind] = [], 0
        for p in pairs:
            kp = utterance_key(p.positive.key, p.positive.path, p.positive.data)
            kn = utterance_key(p.negative.key, p.negative.path, p.negative.data)
            if kp in units and kn in units:
                kept[kind].append(p)
                seqs += [units[kp], units[kn]]
            else:
                failed[kind] += 1
    scored = ScoredPairs(kept, failed, seqs, np.empty(0), np.empty(0, dtype=np.int64))
    if seqs:
        scored.sums, scored.ns, scored.n_unique = score_unique(
            lm,
            seqs,
            cfg.batch_size,
            lm.device,
            cfg.autocast,
            cfg.progress,
            pairs=[(2 * k, 2 * k + 1) for k in range(len(seqs) // 2)],
            min_shared=8 if cfg.share_prefix else 0,
            info=scored.info,
        )
    return scored


def _add_controls(result: EvalResult, control_units, lm, cfg: EvalConfig) -> None:
    """Length-only (always) and unit n-gram (with ``controls_train``) on the same pairs."""
    from twistlm.eval.controls import controls_from_units, fit_ngram_on_shards

    ngram = None
    if cfg.controls_train is not None:
        ngram = fit_ngram_on_shards(str(cfg.controls_train), lm.vocab.n_units)
    result.controls = controls_from_units(control_units, ngram, cfg.ci)


def _add_topline(result: EvalResult, loaded, lm, cfg: EvalConfig, errors: EvalErrors) -> None:
    """The text topline on the pairs the SpeechLM scored (with ``topline``)."""
    if not cfg.topline:
        return
    from twistlm.eval.topline import text_topline

    t = time.perf_counter()
    result.topline, result.topline_model = text_topline(
        {k: (loaded[k][0], b.pairs) for k, b in result.benchmarks.items()},
        text_lm=cfg.text_lm,
        batch_size=cfg.batch_size,
        device=lm.device,
        ci=cfg.ci,
        errors=errors,
        progress=cfg.progress,
    )
    result.stats["topline_s"] = time.perf_counter() - t


def _stats(clock: dict[str, float], tok_counts, scored: ScoredPairs, lm, cfg: EvalConfig):
    """Timings and counts of a run (``EvalResult.stats``)."""
    score_s = clock["score"] - clock["tokenize"]
    return {
        "read_s": clock["read"] - clock["start"],
        "tokenize_s": clock["tokenize"] - clock["read"],
        "score_s": score_s,
        "total_s": time.perf_counter() - clock["start"],
        "utterances": tok_counts["utterances"],
        "utterances_cached": tok_counts["cached"],
        "utterances_tokenized": tok_counts["tokenized"],
        "utterances_failed": tok_counts["failed"],
        "sequences_scored": len(scored.seqs),
        "sequences_unique": scored.n_unique,
        **scored.info,
        "pairs_per_s": (len(scored.seqs) / 2) / max(score_s, 1e-9),
        "batch_size": cfg.batch_size,
        "device": str(lm.device),
        "autocast": cfg.autocast,
    }


def _model_info(lm) -> dict[str, Any]:
    n = sum(p.numel() for p in lm.model.parameters())
    return {
        "path": lm.meta.get("path"),
        "convention": lm.vocab.convention,
        "n_units": lm.vocab.n_units,
        "architecture": type(lm.model).__name__,
        "n_params": int(n),
        "init": lm.meta.get("init"),
    }


def _run_generation(lm, tok, vocoder, prompts, out: Path | None, options, errors: EvalErrors):
    """Generation metrics (``eval.generation.evaluate_generation``) on the prompts, folders
    expanded to their audio files; a failure is logged and gives None."""
    from twistlm.eval.generation import evaluate_generation

    if vocoder is None:
        errors.add("generation", "generation metrics need a vocoder (--vocoder DIR)")
        return None
    prompt_list = []
    for p in prompts:
        if isinstance(p, (str, Path)) and Path(p).is_dir():
            from twistlm.audio import list_audio

            prompt_list += list_audio(p)
        else:
            prompt_list.append(p)
    gen_dir = (out / "generation") if out is not None else None
    try:
        res = evaluate_generation(lm, tok, vocoder, prompt_list, gen_dir, **options)
    except Exception as e:
        errors.add("generation", e)
        return None
    return res.to_dict() if hasattr(res, "to_dict") else dict(res)
