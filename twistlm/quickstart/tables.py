"""The quickstart report's tables: benchmark accuracies beside their controls and the
published numbers, the scaling study, and the continuation metrics (markdown strings)."""

from __future__ import annotations

from typing import Any

from twistlm.eval.benchmarks import PUBLISHED as PAPER
from twistlm.eval.benchmarks import TITLES as BENCH_NAMES

# Published numbers of the registry (Hassid et al. 2023, Table 2): sBLIMP / sSC / tSC.
PUBLISHED = {f"{m} (paper)": PAPER[m] for m in ("TWIST-1.3B", "TWIST-7B", "GSLM")}


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


def pct(x: float | None) -> float | None:
    """A fraction as percent (None stays None)."""
    return None if x is None else 100 * x


def accuracy_cell(entry: dict[str, Any] | None) -> str:
    """``accuracy [95% CI]`` in percent, or a dash."""
    if not entry or entry.get("accuracy") is None:
        return "–"
    lo, hi = entry["ci95"]
    return f"{100 * entry['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def diff_cell(d: dict[str, Any] | None) -> str:
    """A paired difference ``+x.x [lo, hi]`` in points, or a dash."""
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
        cells = [accuracy_cell(benches.get(k)) for k in BENCH_NAMES]
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
        cells = [diff_cell(difference.get(k)) for k in BENCH_NAMES]
        lines.append(
            "| **warm - cold** (paired 95% CI, points) | "
            + " | ".join(cells)
            + f" | {diff_cell(difference.get('mean'))} | – |"
        )
    for name, nums in PUBLISHED.items():
        cells = [f"{nums[k]:.1f}" if k in nums else "–" for k in BENCH_NAMES]
        lines.append(f"| *{name}* | " + " | ".join(cells) + " | – | – |")
    return "\n".join(lines) + "\n"


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
            num(pct(a.get("warm")), ".1f"),
            num(pct(a.get("cold")), ".1f"),
            f"**{diff_cell(d.get('mean'))}**",
            *[diff_cell(d.get(k)) for k in BENCH_NAMES],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def generation_table(gen: dict[str, Any], gen_cold: dict[str, Any]) -> list[str]:
    """Markdown rows: the continuations of both models beside the prompts' real speech
    (resynthesized and original), on the same text metrics (Whisper tiny.en transcripts)."""
    from twistlm.eval.genmetrics import generation_metric as gm

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
