"""The quickstart's report: warm vs cold vs text topline, loss curves, timings, samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from twistlm.config import to_dict
from twistlm.io import atomic_write_text, read_json, write_json
from twistlm.quickstart.config import QuickstartConfig

BENCH_NAMES = {"swuggy": "sWUGGY", "sblimp": "sBLIMP", "ssc": "sSC", "tsc": "tSC"}
# Published numbers (docs/formats.md; Hassid et al. 2023, Table 2): sBLIMP / sSC / tSC.
PUBLISHED = {
    "TWIST-1.3B (paper)": {"sblimp": 57.0, "ssc": 52.4, "tsc": 70.6},
    "TWIST-7B (paper)": {"sblimp": 59.0, "ssc": 55.3, "tsc": 74.1},
    "GSLM (paper)": {"sblimp": 54.2, "ssc": 53.3, "tsc": 66.6},
}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def val_curve(metrics: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(tokens, val_loss) points of a run, in order."""
    return [
        (int(m["tokens"]), float(m["val_loss"])) for m in metrics if m.get("val_loss") is not None
    ]


def warm_leads(warm: list[tuple[int, float]], cold: list[tuple[int, float]]) -> bool | None:
    """True when warm's val loss is below cold's at every shared evaluation point after the first."""
    cold_at = dict(cold)
    shared = [(t, v, cold_at[t]) for t, v in warm if t in cold_at]
    if len(shared) < 2:
        return None
    return all(w < c for _, w, c in shared[1:])


def tokens_to_reach(curve: list[tuple[int, float]], target: float | None) -> int | None:
    """Training tokens at the first validation point at or below ``target`` (None: never)."""
    if target is None:
        return None
    return next((t for t, v in curve if v <= target), None)


def sum_rule(benches: dict[str, Any]) -> dict[str, Any]:
    """The same benchmark entries read under the summed log-likelihood rule."""
    return {
        k: {"accuracy": e.get("accuracy_sum"), "ci95": e.get("ci95_sum")}
        for k, e in benches.items()
        if e and e.get("accuracy_sum") is not None and e.get("ci95_sum")
    }


def mean_accuracy(benches: dict[str, Any]) -> float | None:
    """Mean over the four benchmarks of the headline accuracy (None if one is missing)."""
    accs = [(benches.get(k) or {}).get("accuracy") for k in BENCH_NAMES]
    return None if any(a is None for a in accs) else sum(accs) / len(accs)


def _count_model_line(counts: dict[str, float], warm: float | None, cold: float | None) -> str:
    """The count-model controls of the loss headline, and where the two LMs stand against them."""
    if not counts:
        return "- Count-model controls: not computed."
    line = (
        "- Controls on the same validation tokens (count models fitted on the training units): "
        + ", ".join(f"{k} {v:.3f}" for k, v in counts.items())
        + " nats per unit."
    )
    bigram = counts.get("bigram")
    if bigram is not None and warm is not None and cold is not None:
        if min(warm, cold) > bigram:
            line += (
                " Both LMs are still above the bigram count model: at this budget neither has "
                "learned all that counting neighbouring units gives."
            )
        elif warm <= bigram < cold:
            line += " Warm is below the bigram count model, cold is not."
    return line


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x


def _tokenizer_line(cfg: QuickstartConfig) -> str:
    """What the tokenizer is, said plainly (TWIST's own tokenizer cannot be had offline)."""
    if cfg.features.startswith("whisper"):
        return (
            f"Units: k-means ({cfg.n_units}) on the encoder of the speech recognizer "
            f"Whisper {cfg.features.split('-', 1)[1]} at {cfg.frame_rate:g} Hz. TWIST uses "
            "mHuBERT-25Hz, a self-supervised encoder; no HuBERT weights can be had offline, so "
            "the offline default is a different kind of tokenizer, trained with text labels "
            "(`--features` and `twistlm fit-kmeans --preset mhubert-base-25hz` are the other "
            "options)."
        )
    return (
        f"Units: k-means ({cfg.n_units}) on {cfg.features} spectral features at "
        f"{cfg.frame_rate:g} Hz: a labelled baseline; spectral units encode the voice rather "
        "than the words (docs/measurements.md)."
    )


def _cell(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("accuracy") is None:
        return "–"
    lo, hi = entry["ci95"]
    return f"{100 * entry['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _diff_cell(d: dict[str, Any] | None) -> str:
    if not d or d.get("difference") is None:
        return "–"
    lo, hi = d["ci95"]
    return f"{100 * d['difference']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def results_table(
    rows: dict[str, dict[str, Any]],
    val: dict[str, float | None],
    controls: dict[str, dict[str, Any]] | None = None,
    difference: dict[str, Any] | None = None,
) -> str:
    """Markdown table: one row per model and control, accuracy % [95% CI] per benchmark, their
    mean, val loss; then the paired warm - cold difference (points, paired bootstrap 95% CI)."""
    head = "| model | " + " | ".join(BENCH_NAMES.values()) + " | mean | val loss (nats/unit) |"
    lines = [head, "|" + "---|" * (len(BENCH_NAMES) + 3)]

    def row(name: str, benches: dict[str, Any], v: float | None) -> str:
        cells = [_cell(benches.get(k)) for k in BENCH_NAMES]
        m = mean_accuracy(benches)
        mean = "–" if m is None else f"{100 * m:.1f}"
        return (
            f"| {name} | " + " | ".join(cells) + f" | {mean} | {'–' if v is None else f'{v:.3f}'} |"
        )

    for name, benches in rows.items():
        lines.append(row(name, benches, val.get(name)))
    for name, benches in (controls or {}).items():
        lines.append(row(f"*control: {name}*", benches, None))
    if difference:
        cells = [_diff_cell(difference.get(k)) for k in BENCH_NAMES]
        lines.append(
            "| **warm - cold** (paired 95% CI, points) | "
            + " | ".join(cells)
            + f" | {_diff_cell(difference.get('mean'))} | – |"
        )
    for name, nums in PUBLISHED.items():
        cells = [f"{nums[k]:.1f}" if k in nums else "–" for k in BENCH_NAMES]
        lines.append(f"| *{name}* | " + " | ".join(cells) + " | – | – |")
    return "\n".join(lines) + "\n"


def plot_loss(curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, pts in curves.items():
        if pts:
            ax.plot([t / 1000 for t, _ in pts], [v for _, v in pts], marker="o", label=name)
    ax.set_xlabel("training tokens (thousands)")
    ax.set_ylabel("validation loss, held-out voices (nats / unit)")
    ax.set_title("Warm (TWIST) vs cold start")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_accuracy(rows: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    kinds = list(BENCH_NAMES)
    x = np.arange(len(kinds))
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for i, (name, benches) in enumerate(rows.items()):
        acc, err_lo, err_hi = [], [], []
        for k in kinds:
            e = benches.get(k)
            a = 100 * e["accuracy"] if e and e.get("accuracy") is not None else np.nan
            lo, hi = (100 * e["ci95"][0], 100 * e["ci95"][1]) if e and e.get("ci95") else (a, a)
            acc.append(a)
            err_lo.append(a - lo)
            err_hi.append(hi - a)
        ax.bar(
            x + i * width - 0.4 + width / 2,
            acc,
            width,
            yerr=[err_lo, err_hi],
            capsize=3,
            label=name,
        )
    ax.axhline(50, color="k", lw=0.8, ls="--", label="chance")
    ax.set_xticks(x, [BENCH_NAMES[k] for k in kinds])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def scaling_table(points: list[dict[str, Any]]) -> str:
    """Markdown: one row per budget (tokens), val loss and mean accuracy of both, the paired
    warm - cold difference on the mean and per benchmark."""
    head = (
        "| training tokens | val loss warm | val loss cold | mean acc. warm | mean acc. cold | "
        "**warm - cold, mean** | " + " | ".join(f"warm - cold, {n}" for n in BENCH_NAMES.values())
    )
    lines = [head + " |", "|" + "---|" * (6 + len(BENCH_NAMES))]

    def num(x: float | None, spec: str) -> str:
        return "–" if x is None else format(x, spec)

    for p in points:
        v, a, d = p["val_loss"], p["mean_accuracy"], p["warm_minus_cold"]
        cells = [
            f"{p['tokens']:,}",
            num(v.get("warm"), ".3f"),
            num(v.get("cold"), ".3f"),
            num(_pct(a.get("warm")), ".1f"),
            num(_pct(a.get("cold")), ".1f"),
            f"**{_diff_cell(d.get('mean'))}**",
            *[_diff_cell(d.get(k)) for k in BENCH_NAMES],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_scaling(
    points: list[dict[str, Any]], curves: dict[str, list[tuple[int, float]]], path: Path
) -> None:
    """Left: validation loss vs tokens (whole curves, budgets marked). Right: mean accuracy of
    both models vs tokens, and the paired warm - cold difference with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    colors = {"warm": "C0", "cold": "C1"}
    for s, pts in curves.items():
        ax1.plot([t for t, _ in pts], [v for _, v in pts], color=colors[s], alpha=0.5, label=s)
        budget = [(p["tokens"], p["val_loss"].get(s)) for p in points]
        budget = [(t, v) for t, v in budget if v is not None]
        ax1.plot([t for t, _ in budget], [v for _, v in budget], "o", color=colors[s])
    ax1.set_xscale("log")
    ax1.set_xlabel("training tokens")
    ax1.set_ylabel("validation loss, held-out voices (nats / unit)")
    ax1.grid(alpha=0.3)
    ax1.legend()
    toks = [p["tokens"] for p in points]
    for s in ("warm", "cold"):
        acc = [_pct(p["mean_accuracy"].get(s)) for p in points]
        ax2.plot(toks, acc, "o-", color=colors[s], label=f"{s}: mean accuracy")
    diff = [(p["tokens"], p["warm_minus_cold"].get("mean")) for p in points]
    diff = [(t, d) for t, d in diff if d and d.get("difference") is not None]
    if diff:
        mid = [100 * d["difference"] + 50 for _, d in diff]
        lo = [100 * (d["difference"] - d["ci95"][0]) for _, d in diff]
        hi = [100 * (d["ci95"][1] - d["difference"]) for _, d in diff]
        ax2.errorbar([t for t, _ in diff], mid, yerr=[lo, hi], fmt="s--", color="C2", capsize=3,
                     label="50 + (warm - cold), paired 95% CI")  # fmt: skip
    ax2.axhline(50, color="k", lw=0.8, ls=":")
    ax2.set_xscale("log")
    ax2.set_xlabel("training tokens")
    ax2.set_ylabel("accuracy, mean of four benchmarks (%)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _scaling_lines(scaling: dict[str, Any] | None) -> list[str]:
    if not scaling or not scaling.get("points"):
        return []
    pts = scaling["points"]
    first = scaling.get("first_budget_warm_beats_cold")
    verdict = (
        f"Warm beats cold on the mean accuracy with the paired interval above 0 from "
        f"**{first:,} tokens** on."
        if first is not None
        else "Warm does **not** beat cold on the mean accuracy with the paired interval above 0 "
        f"at any budget up to {pts[-1]['tokens']:,} tokens."
    )
    return [
        "## Scaling study: loss and accuracy vs training tokens",
        "",
        "Both models scored at each budget. The earlier budgets are snapshots of the same two "
        "cosine runs (same data order), not separately annealed runs; the last row is the final "
        "models of the table above.",
        "",
        scaling_table(pts),
        verdict,
        "",
        "![scaling](scaling.png)",
        "",
    ]


def write_report(
    cfg: QuickstartConfig,
    out: Path,
    seconds: dict[str, float],
    corpus: dict[str, Any],
    benches: dict[str, Any],
) -> dict[str, Any]:
    rep = out / "report"
    rep.mkdir(parents=True, exist_ok=True)
    stages = read_json(out / "stages.json")
    ev = {s: read_json(out / "eval" / s / "results.json") for s in ("warm", "cold")}
    rows = {f"{s} (ours)": ev[s]["benchmarks"] for s in ("warm", "cold")}
    top = ev["warm"].get("topline")
    if top:
        name = Path(str(top.get("text_lm") or "SmolLM2-135M")).stem
        rows[f"text topline ({name}), mean rule"] = top["benchmarks"]
        rows[f"text topline ({name}), sum rule"] = sum_rule(top["benchmarks"])
    curves = {
        s: val_curve(read_metrics(out / "runs" / s / "metrics.jsonl")) for s in ("warm", "cold")
    }
    val = {f"{s} (ours)": (curves[s][-1][1] if curves[s] else None) for s in ("warm", "cold")}
    leads = warm_leads(curves["warm"], curves["cold"])
    ctrl = (stages.get("controls") or {}).get("result") or {}
    table = results_table(rows, val, ctrl.get("controls"), ctrl.get("warm_minus_cold"))
    w_final, c_final = val["warm (ours)"], val["cold (ours)"]
    cold_reaches = tokens_to_reach(curves["cold"], w_final)
    warm_reaches = tokens_to_reach(curves["warm"], c_final)
    atomic_write_text(rep / "table.md", table)
    plot_loss({"warm (TWIST)": curves["warm"], "cold": curves["cold"]}, rep / "loss.png")
    plot_accuracy(rows, rep / "accuracy.png")
    scaling = (stages.get("scaling") or {}).get("result")
    if scaling and scaling.get("points"):
        plot_scaling(scaling["points"], curves, rep / "scaling.png")

    gen = stages.get("generation", {}).get("result") or {}
    gen_cold = stages.get("generation-cold", {}).get("result") or {}
    from twistlm.eval.generation import generation_metric as gm  # old names read too

    samples_dir = rep / "samples"
    samples_dir.mkdir(exist_ok=True)
    copied = []
    for p in sorted((out / "generation" / "samples").glob("*.wav")):
        shutil.copy2(p, samples_dir / p.name)
        copied.append(f"samples/{p.name}")

    train = {s: stages[f"train-{s}"]["result"] for s in ("warm", "cold")}
    tok = stages["tokenize"]["result"]
    voc = stages["vocoder"]["result"]
    combined = {
        "config": to_dict(cfg),
        "stage_seconds": seconds,
        "corpus": {k: corpus.get(k) for k in ("hours", "n_utterances", "voices", "heldout_voices")},
        "tokenizer": stages["tokenizer"]["result"],
        "units": tok,
        "train": {s: {k: v for k, v in train[s].items() if k != "config"} for s in train},
        "val_curves": {s: curves[s] for s in curves},
        "warm_below_cold_after_first_eval": leads,
        "cold_tokens_to_warm_final_loss": cold_reaches,
        "warm_tokens_to_cold_final_loss": warm_reaches,
        "heldout": (stages.get("heldout-speech") or {}).get("result"),
        "tokenizer_report": (stages.get("tokenizer-report") or {}).get("result"),
        "controls": ctrl.get("controls"),
        "warm_minus_cold": ctrl.get("warm_minus_cold"),
        "val_loss_count_models": ctrl.get("val_loss_count_models"),
        "scaling": scaling,
        "eval": {s: ev[s]["benchmarks"] for s in ev},
        "topline": top,
        "vocoder": voc,
        "generation": {k: v for k, v in gen.items() if k != "records"},
        "generation_cold": {k: v for k, v in gen_cold.items() if k != "records"},
        "samples": copied,
    }
    write_json(rep / "results.json", combined)

    def fmt(x, spec=".3f"):
        return "–" if x is None else format(x, spec)

    hv = combined["heldout"] or {}
    tr = combined["tokenizer_report"] or {}
    cv, cb = tr.get("cross_voice") or {}, tr.get("codebook") or {}
    diff_mean = (ctrl.get("warm_minus_cold") or {}).get("mean")
    tokens = train["warm"]["tokens"]
    lines = [
        "# twistlm quickstart: TWIST in miniature",
        "",
        f"Warm start (SpeechLM initialised from the text LM "
        f"{cfg.text_lm or 'SmolLM2-135M'}) vs cold start (same architecture, random init), "
        f"same data order and token budget ({tokens:,} tokens, "
        f"{train['warm']['steps']} steps each).",
        "",
        "## Headline: validation loss on voices the models never heard",
        "",
        f"Validation set: {hv.get('n_utterances', '–')} utterances "
        f"({fmt(hv.get('seconds'), '.0f')} s) of sentences outside the training text, spoken by "
        f"the held-out voices {', '.join(hv.get('voices') or [])}.",
        "",
        f"- Final validation loss: warm **{fmt(w_final)}**, cold **{fmt(c_final)}** nats per unit "
        f"(warm - cold = {fmt(None if w_final is None or c_final is None else w_final - c_final)}).",
        f"- Warm below cold at every validation point after the first: **{leads}**.",
        "- Tokens cold needed to reach warm's final loss: "
        + (
            f"**{cold_reaches:,}**."
            if cold_reaches is not None
            else f"**never within the run** ({tokens:,} tokens)."
        ),
        "- Tokens warm needed to reach cold's final loss: "
        + (f"**{warm_reaches:,}**." if warm_reaches is not None else "never within the run."),
        _count_model_line(ctrl.get("val_loss_count_models") or {}, w_final, c_final),
        "",
        "![validation loss](loss.png)",
        "",
        "## Benchmarks, with their controls",
        "",
        "Accuracy % [95% CI] (mean log-likelihood per unit decides each pair; a tie counts 0.5). "
        "The controls score the same pairs, tokenized the same way: *length only* picks the "
        "utterance with fewer units; the *unit 3-gram* is a count model trained on the same "
        "training units. **warm - cold** is the paired difference (both models scored the same "
        "pairs; bootstrap over the benchmark's aggregation units). The text topline scores the "
        "pair texts with the text LM under the same mean-per-token rule and, as text benchmarks "
        "such as BLiMP do, under the summed log-probability: per token, a non-word split into "
        "more subword pieces looks *more* likely (its later pieces are predictable), which "
        "pulls the mean rule below chance on sWUGGY. Published rows are the paper's models at "
        "full scale, for orientation only.",
        "",
        table,
        "![accuracy](accuracy.png)",
        "",
        "## Reading it",
        "",
        "- The loss on held-out voices is the measurement this budget can resolve; the benchmark "
        "accuracies are read against the controls in the same table, and a warm - cold difference "
        "counts only where its paired interval excludes 0"
        + (
            f" (on the mean over the four benchmarks: {_diff_cell(diff_mean)} points)."
            if diff_mean
            else "."
        ),
        f"- At {corpus.get('hours')} h of synthetic speech and {tokens:,} training tokens per "
        "model, accuracies near chance for both models are what a pilot at this scale measured "
        "(docs/measurements.md). The text topline shows what the pairs allow with text.",
        "",
        *_scaling_lines(scaling),
        "## Tokenizer",
        "",
        f"{_tokenizer_line(cfg)} Measured on the held-out speech above "
        "(`twistlm tokenizer-report`): "
        f"{fmt(tr.get('units_per_second'), '.1f')} units/s, {cb.get('used', '–')}/"
        f"{cb.get('n_units', '–')} units used; same-sentence / different-sentence edit distance "
        f"across voices **{fmt(cv.get('ratio'))}** (1.0 = the units carry nothing across voices), "
        f"a sentence's twin in the other voice found **{fmt(_pct(cv.get('twin')), '.0f')}%** of "
        f"the time (chance {fmt(_pct(cv.get('chance')), '.0f')}%). See "
        "[tokenizer report](../tokenizer-report/report.md).",
        "",
        "## Speech continuation",
        "",
        _vocoder_line(voc),
        "",
        *generation_table(gen, gen_cold),
        "",
        *_transcript_lines(out / "generation" / "records.jsonl"),
        "",
        f"- ASR WER of resynthesis (tokenizer + vocoder): {fmt(gen.get('resynth_wer'), '.2%')}; "
        f"of the original TTS audio: {fmt(gen.get('original_wer'), '.2%')}.",
        f"- Continuations (docs/eval.md, generation metrics): token-weighted text-LM perplexity "
        f"of the continuation {fmt(gm(gen, 'text_ppl_token_weighted_continuation'), '.1f')}, "
        f"GSLM auto-BLEU-2 {fmt(gm(gen, 'auto_bleu2_gslm_continuation'))}; SlamKit GenPPL "
        f"(prompt + continuation) {fmt(gm(gen, 'genppl_slamkit'), '.1f')}, SlamKit auto-BLEU-2 "
        f"{fmt(gm(gen, 'auto_bleu2_slamkit'))}; unit bigram repetition "
        f"{fmt(gen.get('unit_bigram_repetition'))}."
        + (
            " Whisper heard no words in any continuation, so transcript metrics are undefined "
            "(a vocoder trained for minutes is not intelligible; docs/vocoder.md)."
            if gen.get("n_prompts") and gen.get("n_empty_transcripts") == gen.get("n_prompts")
            else ""
        ),
        "",
        *[f"- [{c}]({c})" for c in copied],
        "",
        "## Settings and timings",
        "",
        f"- Corpus: {corpus.get('hours')} h, {corpus.get('n_utterances')} utterances, voices "
        f"{', '.join(corpus.get('voices') or [])}; benchmarks by held-out voices "
        f"{', '.join(corpus.get('heldout_voices') or [])}.",
        f"- Tokenizer: {cfg.features} at {cfg.frame_rate:g} Hz, k-means {cfg.n_units}, "
        f"dedup; {fmt(tok.get('units_per_second'), '.1f')} units per second of speech.",
        f"- LM: {cfg.n_layers or 'all'} layers, blocks {cfg.batch_size} x {cfg.block_size}, "
        f"lr {cfg.lr:g} cosine, warm init `{cfg.init}` (scale {cfg.init_scale:g}, output "
        f"`{cfg.out_init}`).",
        f"- Precision: {train.get('warm', {}).get('precision', 'fp32')} (bf16 autocast only where "
        "the CPU has AMX, see docs/measurements.md); calibrated "
        f"{fmt(train.get('warm', {}).get('calibrated_tokens_per_s'), '.0f')} training tokens/s.",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.0f} |" for k, v in seconds.items()],
        f"| **total** | **{sum(seconds.values()):.0f}** |",
        "",
    ]
    atomic_write_text(rep / "report.md", "\n".join(lines))
    return {"report": str(rep / "report.md"), "warm_leads": leads}


def _vocoder_line(voc: dict[str, Any]) -> str:
    if voc.get("packaged"):
        return (
            "Vocoder: the packaged one (units -> WORLD features -> WORLD, voice flite:slt, "
            "trained by `twistlm train-vocoder --recipe slt`; its WER on held-out voices is in "
            "docs/vocoder.md)."
        )
    return (
        f"Vocoder: trained here on the corpus's flite:slt speech, {voc.get('steps')} steps in "
        f"{voc.get('seconds', 0):.0f} s (validation feature L1 "
        f"{voc.get('val_feature_l1', float('nan')):.3f})."
    )


def generation_table(gen: dict[str, Any], gen_cold: dict[str, Any]) -> list[str]:
    """Markdown rows: the continuations of both models beside the prompts' real speech
    (resynthesized and original), on the same text metrics (Whisper tiny.en transcripts)."""
    from twistlm.eval.generation import generation_metric as gm

    def num(x: float | None, spec: str) -> str:
        return "–" if x is None else format(x, spec)

    def words(g: dict[str, Any]) -> str:
        n = g.get("n_prompts")
        return "–" if not n else f"{n - (g.get('n_empty_transcripts') or 0)}/{n}"

    rows = [
        "| speech | transcripts with words | text-LM perplexity (token-weighted) | GSLM auto-BLEU-2 | WER vs the text |",
        "|---|---|---|---|---|",
    ]
    for name, g in (("warm continuation", gen), ("cold continuation", gen_cold)):
        if g:
            rows.append(
                f"| {name} | {words(g)} | "
                f"{num(gm(g, 'text_ppl_token_weighted_continuation'), '.1f')} | "
                f"{num(gm(g, 'auto_bleu2_gslm_continuation'), '.3f')} | – |"
            )
    for name, kind, wer in (
        ("prompts' real speech, resynthesized", "resynth", "resynth_wer"),
        ("prompts' real speech, original TTS audio", "original", "original_wer"),
    ):
        rows.append(
            f"| {name} | – | {num(gen.get(f'text_ppl_token_weighted_{kind}'), '.1f')} | "
            f"{num(gen.get(f'auto_bleu2_gslm_{kind}'), '.3f')} | "
            f"{num(None if gen.get(wer) is None else 100 * gen[wer], '.1f')}% |"
        )
    return rows


def _transcript_lines(records_path: Path, n: int = 3) -> list[str]:
    """The first ``n`` warm continuations' transcripts, quoted."""
    if not records_path.exists():
        return []
    lines = ["What Whisper heard in the warm model's first continuations:"]
    for line in records_path.read_text().splitlines()[:n]:
        rec = json.loads(line)
        text = (rec.get("continuation_transcript") or "").strip() or "(nothing)"
        lines.append(f'- {rec.get("key")}: "{text}"')
    return lines
