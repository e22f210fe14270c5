"""Outputs of `twistlm eval`: results.json, a Markdown table with published reference rows,
ZeroSpeech-style submission files, per-pair scores and a bar plot.

Files written into ``out_dir`` (all atomically):

- ``results.json``: :meth:`EvalResult.to_dict` (schema ``twistlm.eval.results/1``; accuracies
  are fractions in [0, 1]).
- ``results.md``: headline table (ours under both rules, the text topline, published rows),
  then per-benchmark breakdowns (sWUGGY frequency bands and word lengths, sBLIMP types), then
  the generation metrics under names that say their definition (docs/eval.md).
- ``submission/{lexical,syntactic,ssc,tsc}.txt``: ``<file-stem> <score>`` per utterance, the
  ZeroSpeech 2021 submission line format (score = log-likelihood under the headline rule,
  higher = more likely).
- ``pairs/<benchmark>.jsonl``: one line per scored pair (scores, counts, outcome, meta).
- ``results.png``: bar plot of accuracies with 95 % intervals, published numbers and chance.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from twistlm.eval.benchmarks import KINDS, PUBLISHED, PUBLISHED_SOURCE, SUBMISSION_FILES, TITLES
from twistlm.io import atomic_path, atomic_write_text, write_json

# Generation metrics in the order of the report table: (results.json name, short definition).
# Sources: fairseq examples/textless_nlp/gslm/metrics/asr_metrics/self_auto_bleu.py (GSLM
# auto-BLEU); slp-rl/slamkit slamkit/metric/generative_metric.py::asr_perplexity and
# slamkit/utils/calculation_utils.py (SlamKit GenPPL and auto-BLEU).
GENERATION_METRICS: tuple[tuple[str, str], ...] = (
    ("text_ppl_token_weighted_continuation", "exp(sum NLL / sum tokens), continuation transcripts"),
    ("text_ppl_median_continuation", "median per-transcript perplexity, continuation"),
    ("auto_bleu2_gslm_continuation", "GSLM auto-BLEU, n = 1, 2 arithmetic mean, continuation"),
    ("bigram_repetition_gslm_continuation", "its n = 2 term alone, continuation"),
    ("unit_bigram_repetition", "the same n = 2 term on the generated units"),
    ("genppl_slamkit", "SlamKit GenPPL: exp(mean per-transcript mean NLL), prompt + continuation"),
    ("auto_bleu2_slamkit", "SlamKit auto-BLEU-2 (bigrams, overlaps count), prompt + continuation"),
)


def _generation_table(gen: dict[str, Any]) -> list[str]:
    from twistlm.eval.generation import generation_metric

    lines = ["| metric | value | definition |", "|---|---|---|"]
    for name, definition in GENERATION_METRICS:
        v = generation_metric(gen, name)
        cell = f"{v:.4g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"
        lines.append(f"| `{name}` | {cell} | {definition} |")
    return lines


def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _count(n: int | None) -> str:
    n = n or 0
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def _cell(entry: dict[str, Any] | None, rule: str) -> str:
    """'61.2 (58.0–64.3)' from a results.json accuracy entry."""
    if not entry:
        return "–"
    acc = entry["accuracy" if rule == "mean" else "accuracy_sum"]
    lo, hi = entry["ci95" if rule == "mean" else "ci95_sum"]
    if acc is None:
        return "–"
    return f"{_pct(acc)} ({_pct(lo)}–{_pct(hi)})"


def _columns() -> list[tuple[str, str, str | None]]:
    """(header, kind, extra) of the headline table: each benchmark in registry order, sWUGGY
    as "all" plus its in-vocab number (``extra``)."""
    cols: list[tuple[str, str, str | None]] = []
    for k in KINDS:
        if k == "swuggy":
            cols += [(f"{TITLES[k]} all", k, None), (f"{TITLES[k]} in-vocab", k, "in_vocab")]
        else:
            cols.append((TITLES[k], k, None))
    return cols


def _row(name: str, benches: dict[str, Any], rule: str) -> str:
    cells = []
    for _, kind, extra in _columns():
        entry = benches.get(kind)
        if extra is not None and entry:
            entry = entry["extra"].get(extra)
        cells.append(_cell(entry, rule))
    return f"| {name} | " + " | ".join(cells) + " |"


def _published_row(name: str, ref: dict[str, float]) -> str:
    cells = [f"{ref[k]:.1f}" if extra is None and k in ref else "–" for _, k, extra in _columns()]
    return f"| {name} (published) | " + " | ".join(cells) + " |"


def markdown_report(results: dict[str, Any]) -> str:
    """The Markdown report of a results.json dict."""
    rule = results["score_rule"]
    other = "sum" if rule == "mean" else "mean"
    benches = results["benchmarks"]
    model = results.get("model") or {}
    lines = [
        "# twistlm eval",
        "",
        f"Model: `{model.get('path')}` ({model.get('architecture')}, "
        f"{_count(model.get('n_params'))} params, {model.get('convention')} ids, "
        f"{model.get('n_units')} units). Headline score: **{rule}** log-likelihood "
        f"({'per unit, length-normalized' if rule == 'mean' else 'summed over units'}); "
        "a tie counts 0.5. Accuracy in %, 95 % interval in brackets "
        f"({results.get('ci_method')}; over per-id means for sWUGGY/sBLIMP, over pairs for sSC/tSC).",
        "",
        "| model | " + " | ".join(h for h, _, _ in _columns()) + " |",
        "|---|" + "---|" * len(_columns()),
        _row(f"ours ({rule})", benches, rule),
        _row(f"ours ({other})", benches, other),
    ]
    top = results.get("topline")
    if top and top.get("benchmarks"):
        lines.append(_row(f"text topline: {top['text_lm']} ({rule})", top["benchmarks"], rule))
    for name, by_kind in (results.get("controls") or {}).items():
        lines.append(_row(f"*control: {name}*", by_kind, rule))
    lines += [_published_row(name, ref) for name, ref in PUBLISHED.items()]
    published_kinds = [k for k in KINDS if any(k in ref for ref in PUBLISHED.values())]
    lines += [
        "",
        f"Published rows: {PUBLISHED_SOURCE}, {' / '.join(TITLES[k] for k in published_kinds)}. "
        "Numbers are comparable only on the same benchmark data. Controls score the same "
        "pairs with the same units: *length only* picks the utterance with fewer units (a model "
        "that beats it is not only counting units); the *unit n-gram* (`--controls UNITS`) is a "
        "count model trained on the model's training units.",
        "",
        "| benchmark | pairs scored | pairs failed | units | mean NLL (pos / neg) |",
        "|---|---|---|---|---|",
    ]
    for k in KINDS:
        if k in benches:
            b = benches[k]
            nll = (
                f"{b['mean_nll_positive']:.3f} / {b['mean_nll_negative']:.3f}"
                if b["mean_nll_positive"] is not None
                else "–"
            )
            lines.append(
                f"| {TITLES[k]} | {b['n_pairs']} | {b['n_failed']} | {b['n']} {b['unit']} | {nll} |"
            )
    for k in KINDS:
        b = benches.get(k)
        if not b:
            continue
        for name, groups in b["breakdowns"].items():
            if not groups:
                continue
            lines += [
                "",
                f"### {TITLES[k]} by {name}",
                "",
                f"| {name} | n | accuracy ({rule}) | accuracy ({other}) |",
                "|---|---|---|---|",
            ]
            for g, e in groups.items():
                lines.append(f"| {g} | {e['n']} | {_cell(e, rule)} | {_cell(e, other)} |")
    gen = results.get("generation")
    if gen:
        lines += ["", "### Generation", "", *_generation_table(gen), ""]
        lines += ["```", json.dumps(gen, indent=2, default=str), "```"]
    if results.get("errors"):
        lines += ["", f"{len(results['errors'])} input(s) failed: see errors.jsonl."]
    return "\n".join(lines) + "\n"


def _stem(ref) -> str:
    return Path(ref.path).stem if ref.path else ref.key


def submission_lines(bench, rule: str) -> list[str]:
    """``<file-stem> <score>`` for every distinct utterance of a BenchmarkResult."""
    pos, neg = bench.scores(rule)
    seen: dict[str, float] = {}
    for p, sp, sn in zip(bench.pairs, pos, neg, strict=True):
        seen.setdefault(_stem(p.positive), float(sp))
        seen.setdefault(_stem(p.negative), float(sn))
    return [f"{stem} {score!r}" for stem, score in seen.items()]


def write_submission(result, out_dir: str | Path) -> list[Path]:
    """Write ``submission/<lexical|syntactic|ssc|tsc>.txt``; returns the files written."""
    written = []
    for kind, bench in result.benchmarks.items():
        path = Path(out_dir) / "submission" / SUBMISSION_FILES[kind]
        atomic_write_text(path, "\n".join(submission_lines(bench, result.score_rule)) + "\n")
        written.append(path)
    return written


def write_pairs(result, out_dir: str | Path) -> None:
    for prefix, group in (("", result.benchmarks), ("topline-", result.topline)):
        for kind, b in group.items():
            pm, nm = b.scores("mean")
            om, os_ = b.outcomes("mean"), b.outcomes("sum")
            lines = []
            for i, p in enumerate(b.pairs):
                lines.append(
                    json.dumps(
                        {
                            "pair_id": p.pair_id,
                            "positive": p.positive.key,
                            "negative": p.negative.key,
                            "pos_mean": pm[i],
                            "neg_mean": nm[i],
                            "pos_sum": b.pos_sum[i],
                            "neg_sum": b.neg_sum[i],
                            "pos_n": int(b.pos_n[i]),
                            "neg_n": int(b.neg_n[i]),
                            "outcome_mean": om[i],
                            "outcome_sum": os_[i],
                            "meta": p.meta,
                        },
                        default=str,
                    )
                )
            atomic_write_text(
                Path(out_dir) / "pairs" / f"{prefix}{kind}.jsonl", "\n".join(lines) + "\n"
            )


def plot_results(results: dict[str, Any], path: str | Path) -> None:
    """Bar plot: ours (headline rule, 95 % CI), text topline, published rows, chance line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rule = results["score_rule"]
    key_acc, key_ci = ("accuracy", "ci95") if rule == "mean" else ("accuracy_sum", "ci95_sum")
    kinds = [k for k in KINDS if k in results["benchmarks"]]
    top = (results.get("topline") or {}).get("benchmarks") or {}
    series = [("ours", results["benchmarks"])] + ([("text topline", top)] if top else [])
    fig, ax = plt.subplots(figsize=(3.2 + 1.5 * len(kinds), 3.6))
    # each benchmark spans [i - 0.4, i + 0.4]: bars on the left 0.55, published points after
    width = 0.55 / len(series)
    for s, (label, benches) in enumerate(series):
        xs, ys, errs = [], [], [[], []]
        for i, k in enumerate(kinds):
            e = benches.get(k)
            if not e or e[key_acc] is None:
                continue
            acc, (lo, hi) = 100 * e[key_acc], e[key_ci]
            xs.append(i - 0.4 + width * (s + 0.5))
            ys.append(acc)
            errs[0].append(acc - 100 * lo)
            errs[1].append(100 * hi - acc)
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=f"{label} ({rule})")
    markers = "os^D"
    step = 0.25 / max(1, len(PUBLISHED) - 1)
    for j, (name, ref) in enumerate(PUBLISHED.items()):
        pts = [(i + 0.15 + j * step, ref[k]) for i, k in enumerate(kinds) if k in ref]
        if pts:
            ax.scatter(
                *zip(*pts, strict=True),
                marker=markers[j % 4],
                s=22,
                zorder=3,
                label=f"{name} (published)",
            )
    ax.axhline(50, color="grey", ls="--", lw=1, label="chance")
    ax.set_xticks(range(len(kinds)), [TITLES[k] for k in kinds])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_outputs(result, out_dir: str | Path, plot: bool = True) -> dict[str, Path]:
    """Write every output of an EvalResult into ``out_dir``; returns {name: path}."""
    out = Path(out_dir)
    d = result.to_dict()
    paths = {"results": out / "results.json", "table": out / "results.md"}
    write_json(paths["results"], d)
    atomic_write_text(paths["table"], markdown_report(d))
    write_submission(result, out)
    write_pairs(result, out)
    if plot and result.benchmarks:
        paths["plot"] = out / "results.png"
        plot_results(d, paths["plot"])
    return paths
