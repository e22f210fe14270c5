"""`evaluate(...)`: score sWUGGY / sBLIMP / sSC / tSC pairs with a SpeechLM and aggregate.

Pipeline (one pass over all benchmarks, so shared utterances are handled once):

1. read each benchmark into :class:`~twistlm.eval.readers.PairRecord` lists;
2. tokenize every distinct utterance with the model's own tokenizer, through the on-disk
   :class:`~twistlm.eval.cache.UnitCache` (a second run tokenizes nothing);
3. de-duplicate identical unit sequences (the same word spoken twice, a positive that
   tokenizes like its negative), sort them by length and score them with
   :func:`twistlm.lm.scoring.score_units` (batched, padded, exact);
4. per pair: positive vs negative log-likelihood under the *mean* rule (mean log-prob per
   scored unit = minus the mean NLL, the headline) and the *sum* rule; a tie counts 0.5;
5. aggregate with :mod:`twistlm.eval.metrics` and (with ``out_dir``) write results.json,
   results.md, the ZeroSpeech-style submission, per-pair scores and a bar plot.

Bad utterances (missing, undecodable, too short) are logged to ``out_dir/errors.jsonl`` and
their pairs dropped (counted in ``n_failed``); a benchmark that cannot be read at all is logged
and skipped. The job goes on either way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from twistlm.eval.cache import UnitCache, default_cache_root, tokenizer_fingerprint, utterance_key
from twistlm.eval.metrics import BenchmarkMetrics, benchmark_metrics, pair_outcomes

SCORE_RULES = ("mean", "sum")
RESULTS_SCHEMA = "twistlm.eval.results/1"


# ---------------------------------------------------------------- results
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


class _Errors:
    """Collects per-input errors in memory and, with an out_dir, in errors.jsonl."""

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


# ---------------------------------------------------------------- model and tokenizer
def load_speech_lm(model, device: str | None = None, convention: str | None = None):
    """A SpeechLM from a dir (any convention; on ``device`` or CPU) or an already-loaded
    SpeechLM (moved to ``device`` only when one is given), in eval mode."""
    from twistlm.lm.model import SpeechLM

    if isinstance(model, (str, Path)):
        return SpeechLM.from_pretrained(model, convention=convention, device=device or "cpu")
    return (model.to(device) if device is not None else model).eval()


def load_tokenizer(lm, tokenizer=None):
    """(tokenizer, its dir or None): ``tokenizer`` (dir or object) or the one the model names.

    The model's ``meta["tokenizer"]["path"]`` is tried as given and relative to the model dir.
    """
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

    if tokenizer is not None and not isinstance(tokenizer, (str, Path)):
        return tokenizer, None
    if tokenizer is None:
        info = lm.meta.get("tokenizer") or {}
        path = info.get("path") if isinstance(info, dict) else None
        if not path:
            raise ValueError(
                "the model does not name its tokenizer (meta['tokenizer']['path']); "
                "pass --tokenizer DIR (the UnitTokenizer its training units came from)"
            )
        candidates = [Path(path)]
        if lm.meta.get("path"):
            candidates.append(Path(lm.meta["path"]) / path)
        found = next((c for c in candidates if c.is_dir()), None)
        if found is None:
            raise FileNotFoundError(
                f"the model's tokenizer dir {path!r} does not exist; pass --tokenizer DIR"
            )
        tokenizer = found
    return UnitTokenizer.from_pretrained(tokenizer), Path(tokenizer)


def check_compatible(lm, tokenizer, tokenizer_path=None) -> None:
    """Raise if the tokenizer's units do not fit the model's vocabulary.

    A TWIST checkpoint that does not record its unit count (``meta["n_units_inferred"]``) takes
    the tokenizer's (:meth:`~twistlm.lm.model.SpeechLM.adopt_n_units`); a recorded count must
    equal the tokenizer's.
    """
    n_tok = getattr(tokenizer, "n_units", None)
    if n_tok is None:
        return
    if hasattr(lm, "adopt_n_units"):
        lm.adopt_n_units(int(n_tok), source="tokenizer", tokenizer_path=tokenizer_path)
    if int(n_tok) != lm.vocab.n_units:
        model_path = lm.meta.get("path", "<in memory>")
        raise ValueError(
            f"tokenizer has {n_tok} units but the model expects {lm.vocab.n_units}: "
            f"wrong --tokenizer for this model (model {model_path}, "
            f"tokenizer {tokenizer_path or '<object>'})"
        )


# ---------------------------------------------------------------- tokenization (cached)
def tokenize_refs(
    refs: Sequence,
    tokenizer,
    cache: UnitCache | None,
    errors: _Errors | None = None,
    progress: bool = True,
) -> tuple[dict[str, Tensor], dict[str, int]]:
    """Units of each distinct utterance -> ({utterance cache key: (N,) LongTensor}, counts).

    ``refs`` are AudioRefs; failures are reported to ``errors`` and left out of the dict.
    """
    units: dict[str, Tensor] = {}
    todo = []
    seen = set()
    for ref in refs:
        k = utterance_key(ref.key, ref.path, ref.data)
        if k in seen:
            continue
        seen.add(k)
        hit = cache.get(k) if cache is not None else None
        if hit is not None:
            units[k] = hit
        else:
            todo.append((k, ref))
    counts = {"utterances": len(seen), "cached": len(units), "tokenized": 0, "failed": 0}
    for k, ref in tqdm(todo, desc="tokenize", unit="utt", disable=not progress or not todo):
        try:
            wav = ref.load()
            with torch.inference_mode():
                tok = tokenizer.encode(wav)
            u = torch.as_tensor(tok.units, dtype=torch.long).reshape(-1).cpu()
            if u.numel() == 0:
                raise ValueError("tokenizer returned no units")
        except Exception as e:  # one bad file never stops the job
            counts["failed"] += 1
            if errors is not None:
                errors.add(ref.path or ref.key, e)
            continue
        units[k] = u
        counts["tokenized"] += 1
        if cache is not None:
            durs = getattr(tok, "durations", None)
            cache.put(k, u, None if durs is None else durs.cpu(), len(wav) / 16000)
    if cache is not None:
        cache.flush()
    return units, counts


# ---------------------------------------------------------------- scoring (deduplicated)
def score_unique(
    lm,
    seqs: Sequence[Tensor],
    batch_size: int = 16,
    device=None,
    autocast: bool = False,
    progress: bool = True,
    pairs: Sequence[tuple[int, int]] | None = None,
    min_shared: int = 8,
    info: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Score sequences once per distinct content -> ((S,) sum log-prob, (S,) n tokens, n unique).

    Distinct sequences go to ``score_units`` longest first, so the batches hold sequences of
    similar length (little padding) and the largest batch, the memory peak, comes first.

    With ``pairs`` (index pairs into ``seqs``), a pair whose two sequences share a unit prefix of
    at least ``min_shared`` units (and a quarter of the shorter one) is packed into one row that
    computes the prefix once (:func:`score_packed_pairs`); the first packed batch is checked
    against ``score_units`` and packing is dropped if the model does not honour the 4-D
    attention mask. ``info`` (if given) receives ``packed_pairs`` and ``packing``.
    """
    from twistlm.lm.scoring import score_units

    index: dict[tuple[int, ...], int] = {}
    unique: list[Tensor] = []
    where = np.empty(len(seqs), dtype=np.int64)
    for i, s in enumerate(seqs):
        key = tuple(s.tolist())
        j = index.get(key)
        if j is None:
            j = index[key] = len(unique)
            unique.append(s)
        where[i] = j
    sums = np.empty(len(unique))
    ns = np.empty(len(unique), dtype=np.int64)
    packed: list[tuple[int, int]] = []
    if pairs and min_shared > 0:
        taken: set[int] = set()
        for i, j in pairs:
            a, b = int(where[i]), int(where[j])
            if a == b or a in taken or b in taken:
                continue
            shared = common_prefix(unique[a], unique[b])
            if shared >= min_shared and 4 * shared >= min(len(unique[a]), len(unique[b])):
                packed.append((a, b))
                taken |= {a, b}
    mode = "packed" if packed else "off"
    if packed:
        got = score_packed_pairs(
            lm, [(unique[a], unique[b]) for a, b in packed], batch_size, device, autocast, progress
        )
        check = packed[: min(4, len(packed))]
        ref = score_units(
            lm, [unique[k] for ab in check for k in ab], device=device, autocast=autocast
        )
        err = max(
            abs(got[n][2 * side] - ref[2 * n + side].sum_logprob)
            / max(1, ref[2 * n + side].n_tokens)
            for n in range(len(check))
            for side in (0, 1)
        )
        if err > (5e-2 if autocast else 1e-3):  # model ignores 4-D masks: score normally
            tqdm.write(f"warning: shared-prefix packing disagrees by {err:.3g}/token; disabled")
            packed, mode = [], "disabled"
        else:
            for (a, b), (sa, na, sb, nb) in zip(packed, got, strict=True):
                sums[a], ns[a], sums[b], ns[b] = sa, na, sb, nb
    done = {k for ab in packed for k in ab}
    rest = sorted((j for j in range(len(unique)) if j not in done), key=lambda j: -len(unique[j]))
    if rest:
        scored = score_units(
            lm,
            [unique[j] for j in rest],
            batch_size=batch_size,
            device=device,
            autocast=autocast,
            progress=progress,
        )
        for j, s in zip(rest, scored, strict=True):
            sums[j], ns[j] = s.sum_logprob, s.n_tokens
    if info is not None:
        info.update(packed_pairs=len(packed), packing=mode)
    return sums[where], ns[where], len(unique)


# ---------------------------------------------------------------- shared-prefix pair packing
def common_prefix(a: Tensor, b: Tensor) -> int:
    """Length of the longest common prefix of two 1-D tensors."""
    n = min(len(a), len(b))
    diff = (a[:n] != b[:n]).nonzero()
    return int(diff[0]) if len(diff) else n


def pack_pair(ids_a: Tensor, ids_b: Tensor, shared: int):
    """One row holding both utterances, the shared prefix once: ``prefix | a-rest | b-rest``.

    Returns (ids (T,), position_ids (T,), allowed (T, T) bool attention, index_a, index_b):
    ``index_x`` are the row positions whose logits predict ``ids_x[1:]``. The b-branch attends
    to the prefix and itself, never to a's rest, and its positions continue from the prefix,
    so every logit equals the one of scoring the utterance alone (tree attention).
    """
    na, nb, L = len(ids_a), len(ids_b), shared
    ids = torch.cat([ids_a, ids_b[L:]])
    pos = torch.cat([torch.arange(na), torch.arange(L, nb)])
    branch = torch.cat([torch.zeros(L), torch.ones(na - L), torch.full((nb - L,), 2.0)])
    causal = torch.ones(len(ids), len(ids), dtype=torch.bool).tril()
    same = (branch[:, None] == branch[None, :]) | (branch[None, :] == 0)
    allowed = causal & same
    index_a = torch.arange(na - 1)
    index_b = torch.cat([torch.arange(min(L, nb - 1)), na + torch.arange(max(nb - L - 1, 0))])
    return ids, pos, allowed, index_a, index_b


@torch.inference_mode()
def score_packed_pairs(
    lm,
    pairs: Sequence[tuple[Tensor, Tensor]],
    batch_size: int = 16,
    device=None,
    autocast: bool = False,
    progress: bool = False,
) -> list[tuple[float, int, float, int]]:
    """(sum, n) of both utterances of each pair, computing a shared unit prefix once.

    Rows are sorted by packed length and right-padded (padding attends only to itself); scores
    equal one-by-one scoring within float rounding (checked at run time by ``score_unique``).
    """
    device = torch.device(device) if device is not None else lm.device
    vocab = lm.vocab
    rows = []
    for a, b in pairs:
        # the ids scoring feeds (SlamKit: `<S> units <S>`, the trailing <S> scored too)
        ia, ib = vocab.scoring_ids(a.reshape(-1)), vocab.scoring_ids(b.reshape(-1))
        rows.append((ia, ib, *pack_pair(ia, ib, common_prefix(ia, ib))))
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][2]))
    out: list = [None] * len(rows)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else _null()
    for batch in tqdm(batches, desc="scoring pairs", unit="batch", disable=not progress):
        T = max(len(rows[i][2]) for i in batch)
        ids = torch.full((len(batch), T), vocab.pad_id, dtype=torch.long)
        pos = torch.zeros((len(batch), T), dtype=torch.long)
        mask = torch.eye(T, dtype=torch.bool).repeat(len(batch), 1, 1)  # pads see themselves
        for r, i in enumerate(batch):
            _, _, pid, ppos, allowed, _, _ = rows[i]
            n = len(pid)
            ids[r, :n], pos[r, :n], mask[r, :n, :n] = pid, ppos, allowed
        with ctx:
            logits = lm.model(
                input_ids=ids.to(device),
                attention_mask=mask[:, None].to(device),
                position_ids=pos.to(device),
            ).logits
        logp = logits.float().log_softmax(-1)  # (B, T, V)
        for r, i in enumerate(batch):
            ia, ib, _, _, _, xa, xb = rows[i]
            sa = logp[r, xa.to(device), ia[1:].to(device)].sum()
            sb = logp[r, xb.to(device), ib[1:].to(device)].sum()
            out[i] = (float(sa), len(xa), float(sb), len(xb))
    return out


def _null():
    import contextlib

    return contextlib.nullcontext()


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


# ---------------------------------------------------------------- evaluate
def read_benchmarks(benches: dict[str, str | Path], errors: _Errors, limit: int | None = None):
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
    batch_size: int = 16,
    device: str | None = None,
    score: str = "mean",
    autocast: bool = False,
    convention: str | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    topline: bool = False,
    text_lm: str | Path | None = None,
    gen_prompts: Sequence | None = None,
    vocoder=None,
    gen_options: dict[str, Any] | None = None,
    ci: str = "wilson",
    limit: int | None = None,
    share_prefix: bool = True,
    progress: bool = True,
    plot: bool = True,
    controls_train: str | Path | None = None,
) -> EvalResult:
    """Evaluate a SpeechLM on benchmarks (and optionally a text topline and generation).

    Args:
        model: SpeechLM dir (ours, TWIST offset, SlamKit; auto-detected) or a loaded SpeechLM.
        benches: {kind: path} with kind in swuggy | sblimp | ssc | tsc (any layout the
            readers know: sLM21 folders, sSC/tSC folders, pairs.jsonl, HF parquet).
        tokenizer: UnitTokenizer dir or object; default: the one the model's meta names.
        out_dir: where to write results.json, results.md, submission/, pairs/, results.png,
            errors.jsonl (nothing is written when None).
        batch_size, device, autocast: passed to ``score_units`` (autocast = bf16 on CPU/GPU);
            ``device=None`` keeps a loaded model where it is (a dir loads on CPU).
        score: headline rule, "mean" (mean log-prob per unit; default) or "sum"; both are
            always computed and reported.
        cache_dir: unit cache root (default ``~/.cache/twistlm/units``); ``use_cache=False``
            tokenizes everything afresh and stores nothing.
        topline: also score the pairs' texts with a text LM (``text_lm``: HF dir, hub name,
            .gguf; None = SmolLM2-135M offline).
        gen_prompts, vocoder, gen_options: run ``eval.generation.evaluate_generation`` on
            these prompts (wav paths or AudioRefs) with this vocoder (dir or Vocoder).
        ci: confidence interval method, "wilson" or "bootstrap".
        limit: keep only the first ``limit`` pairs of each benchmark (quick checks).
        share_prefix: compute a unit prefix shared by a pair's two utterances once (exact;
            pays on StoryCloze-like pairs with a common context).
        controls_train: unit shards the model was trained on: adds a unit 3-gram control
            fitted on them. The length-only control (fewer units wins) is always computed.

    Returns:
        :class:`EvalResult` (``.to_dict()`` is results.json).
    """
    if score not in SCORE_RULES:
        raise ValueError(f"score must be one of {SCORE_RULES}, got {score!r}")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "errors.jsonl").unlink(missing_ok=True)  # every output describes this run only
    errors = _Errors(out)
    t0 = time.perf_counter()
    lm = load_speech_lm(model, device=device, convention=convention)
    device = lm.device
    if autocast:
        from twistlm.hardware import bf16_is_fast

        if not bf16_is_fast(device):
            tqdm.write(
                f"warning: bf16 is emulated on this {device.type} (no AMX / bf16 support): "
                "scoring will be several times slower than fp32; drop --bf16"
            )
    tok, tok_dir = load_tokenizer(lm, tokenizer)
    check_compatible(lm, tok, tok_dir)
    info = tok.info() if hasattr(tok, "info") else {}
    fingerprint = tokenizer_fingerprint(info, tok_dir, getattr(tok, "centroids", None))
    cache = None
    if use_cache:
        cache = UnitCache(cache_dir or default_cache_root(), fingerprint, info)

    loaded = read_benchmarks(benches, errors, limit)
    t_read = time.perf_counter()

    all_refs = [r for _, pairs in loaded.values() for p in pairs for r in (p.positive, p.negative)]
    units, tok_counts = tokenize_refs(all_refs, tok, cache, errors, progress)
    t_tok = time.perf_counter()

    # one flat list of (kind, pair) whose two utterances both tokenized
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
    n_unique = 0
    sums, ns = np.empty(0), np.empty(0, dtype=np.int64)
    score_info: dict[str, Any] = {"packed_pairs": 0, "packing": "off"}
    if seqs:
        pair_index = [(2 * k, 2 * k + 1) for k in range(len(seqs) // 2)]
        sums, ns, n_unique = score_unique(
            lm,
            seqs,
            batch_size,
            device,
            autocast,
            progress,
            pairs=pair_index,
            min_shared=8 if share_prefix else 0,
            info=score_info,
        )
    t_score = time.perf_counter()

    results: dict[str, BenchmarkResult] = {}
    control_units: dict[str, tuple] = {}
    i = 0
    for kind, pairs in kept.items():
        k = len(pairs)
        s, n = sums[i : i + 2 * k], ns[i : i + 2 * k]
        i += 2 * k
        ok = (n[0::2] > 0) & (n[1::2] > 0)  # a 1-unit utterance without BOS has nothing scored
        for p, good in zip(pairs, ok, strict=True):
            if not good:
                errors.add(
                    p.pair_id, "an utterance has no scored token (too short)", benchmark=kind
                )
        pairs = [p for p, good in zip(pairs, ok, strict=True) if good]
        kept_seqs = [
            u.tolist() for u, good in zip(seqs[i - 2 * k : i], ok.repeat(2), strict=True) if good
        ]
        control_units[kind] = (loaded[kind][0], pairs, kept_seqs[0::2], kept_seqs[1::2])
        if not pairs:
            errors.add(loaded[kind][0], "no pair could be scored", benchmark=kind)
            continue
        results[kind] = aggregate(
            kind,
            loaded[kind][0],
            pairs,
            s[0::2][ok],
            n[0::2][ok],
            s[1::2][ok],
            n[1::2][ok],
            n_failed=failed[kind] + int((~ok).sum()),
            ci=ci,
        )

    result = EvalResult(
        results,
        score_rule=score,
        ci=ci,
        model=_model_info(lm),
        tokenizer={"path": str(tok_dir) if tok_dir else None, "fingerprint": fingerprint, **info},
        out_dir=out,
    )
    from twistlm.eval.controls import controls_from_units, fit_ngram_on_shards

    ngram = (
        fit_ngram_on_shards(str(controls_train), lm.vocab.n_units)
        if controls_train is not None
        else None
    )
    result.controls = controls_from_units(control_units, ngram, ci)
    if topline:
        from twistlm.eval.topline import text_topline

        t = time.perf_counter()
        result.topline, result.topline_model = text_topline(
            {k: (loaded[k][0], b.pairs) for k, b in results.items()},
            text_lm=text_lm,
            batch_size=batch_size,
            device=device,
            ci=ci,
            errors=errors,
            progress=progress,
        )
        result.stats["topline_s"] = time.perf_counter() - t
    if gen_prompts:
        t = time.perf_counter()
        result.generation = _run_generation(
            lm, tok, vocoder, gen_prompts, out, gen_options or {}, errors
        )
        result.stats["generation_s"] = time.perf_counter() - t

    n_scored_utts = len(seqs)
    result.stats.update(
        {
            "read_s": t_read - t0,
            "tokenize_s": t_tok - t_read,
            "score_s": t_score - t_tok,
            "total_s": time.perf_counter() - t0,
            "utterances": tok_counts["utterances"],
            "utterances_cached": tok_counts["cached"],
            "utterances_tokenized": tok_counts["tokenized"],
            "utterances_failed": tok_counts["failed"],
            "sequences_scored": n_scored_utts,
            "sequences_unique": n_unique,
            **score_info,
            "pairs_per_s": (n_scored_utts / 2) / max(t_score - t_tok, 1e-9),
            "batch_size": batch_size,
            "device": str(device),
            "autocast": autocast,
        }
    )
    result.errors = errors.items
    if out is not None:
        from twistlm.eval.report import write_outputs

        write_outputs(result, out, plot=plot)
    if errors.items:
        tqdm.write(
            f"{len(errors.items)} input(s) failed"
            + (f"; see {out / 'errors.jsonl'}" if out is not None else "")
        )
    return result


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


def _run_generation(lm, tok, vocoder, prompts, out: Path | None, options, errors: _Errors):
    """Generation metrics through the generation engineer's ``evaluate_generation``."""
    from twistlm.eval.generation import evaluate_generation

    if vocoder is None:
        errors.add("generation", "generation metrics need a vocoder (--vocoder DIR)")
        return None
    if isinstance(vocoder, (str, Path)):
        from twistlm.vocoder import load_vocoder

        vocoder = load_vocoder(vocoder)
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
