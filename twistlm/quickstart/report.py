"""The quickstart's report: warm vs cold vs text topline, loss curves, timings, samples.

:func:`write_report` gathers the stages' outputs into ``report/results.json`` and writes
``report/report.md`` from the sections of :mod:`twistlm.quickstart.report_sections`; the tables
are :mod:`twistlm.quickstart.tables`', the figures :mod:`twistlm.quickstart.plots`'.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from twistlm.config import to_dict
from twistlm.io import atomic_write_text, read_json, write_json
from twistlm.quickstart.config import QuickstartConfig
from twistlm.quickstart.plots import plot_accuracy, plot_loss, plot_scaling
from twistlm.quickstart.report_sections import (
    benchmark_lines,
    continuation_lines,
    headline_lines,
    scaling_lines,
    settings_lines,
    tokenizer_lines,
)
from twistlm.quickstart.tables import (
    BENCH_NAMES,
    PUBLISHED,
    generation_table,
    mean_accuracy,
    results_table,
    scaling_table,
    sum_rule,
)

# the tables and plots lived here before; their old import paths keep working
__all__ = [
    "BENCH_NAMES",
    "PUBLISHED",
    "generation_table",
    "mean_accuracy",
    "plot_accuracy",
    "plot_loss",
    "plot_scaling",
    "read_metrics",
    "results_table",
    "scaling_table",
    "sum_rule",
    "tokens_to_reach",
    "val_curve",
    "warm_leads",
    "write_report",
]


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


def write_report(
    cfg: QuickstartConfig,
    out: Path,
    seconds: dict[str, float],
    corpus: dict[str, Any],
    benches: dict[str, Any],
) -> dict[str, Any]:
    """Write ``out/report/``: table.md, the figures, samples/, results.json and report.md."""
    rep = out / "report"
    rep.mkdir(parents=True, exist_ok=True)
    stages = read_json(out / "stages.json")
    ev = {s: read_json(out / "eval" / s / "results.json") for s in ("warm", "cold")}
    rows = _benchmark_rows(ev)
    curves = {
        s: val_curve(read_metrics(out / "runs" / s / "metrics.jsonl")) for s in ("warm", "cold")
    }
    val = {f"{s} (ours)": _final_loss(curves[s]) for s in ("warm", "cold")}
    ctrl = (stages.get("controls") or {}).get("result") or {}
    table = results_table(rows, val, ctrl.get("controls"), ctrl.get("warm_minus_cold"))
    atomic_write_text(rep / "table.md", table)
    plot_loss({"warm (TWIST)": curves["warm"], "cold": curves["cold"]}, rep / "loss.png")
    plot_accuracy(rows, rep / "accuracy.png")
    scaling = (stages.get("scaling") or {}).get("result")
    if scaling and scaling.get("points"):
        plot_scaling(scaling["points"], curves, rep / "scaling.png")
    copied = _copy_samples(out / "generation" / "samples", rep / "samples")
    combined = _combined_results(cfg, stages, ev, curves, seconds, corpus, copied)
    write_json(rep / "results.json", combined)
    lines = [
        *headline_lines(cfg, combined),
        *benchmark_lines(table, combined),
        *scaling_lines(scaling),
        *tokenizer_lines(cfg, combined),
        *continuation_lines(out, stages, copied),
        *settings_lines(cfg, combined),
    ]
    atomic_write_text(rep / "report.md", "\n".join(lines))
    return {"report": str(rep / "report.md"), "warm_leads": combined[LEADS]}


LEADS = "warm_below_cold_after_first_eval"  # results.json key


def _benchmark_rows(ev: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Table rows: both models, and the text topline under both rules where it was scored."""
    rows = {f"{s} (ours)": ev[s]["benchmarks"] for s in ("warm", "cold")}
    top = ev["warm"].get("topline")
    if top:
        name = Path(str(top.get("text_lm") or "SmolLM2-135M")).stem
        rows[f"text topline ({name}), mean rule"] = top["benchmarks"]
        rows[f"text topline ({name}), sum rule"] = sum_rule(top["benchmarks"])
    return rows


def _final_loss(curve: list[tuple[int, float]]) -> float | None:
    return curve[-1][1] if curve else None


def _copy_samples(src: Path, dst: Path) -> list[str]:
    """Copy the warm continuations' wavs into the report; their links relative to it."""
    dst.mkdir(exist_ok=True)
    copied = []
    for p in sorted(src.glob("*.wav")):
        shutil.copy2(p, dst / p.name)
        copied.append(f"{dst.name}/{p.name}")
    return copied


def _combined_results(
    cfg: QuickstartConfig,
    stages: dict[str, Any],
    ev: dict[str, dict[str, Any]],
    curves: dict[str, list[tuple[int, float]]],
    seconds: dict[str, float],
    corpus: dict[str, Any],
    copied: list[str],
) -> dict[str, Any]:
    """report/results.json: every stage's numbers in one dict."""
    ctrl = (stages.get("controls") or {}).get("result") or {}
    gen = stages.get("generation", {}).get("result") or {}
    gen_cold = stages.get("generation-cold", {}).get("result") or {}
    train = {s: stages[f"train-{s}"]["result"] for s in ("warm", "cold")}
    w_final, c_final = _final_loss(curves["warm"]), _final_loss(curves["cold"])
    return {
        "config": to_dict(cfg),
        "stage_seconds": seconds,
        "corpus": {k: corpus.get(k) for k in ("hours", "n_utterances", "voices", "heldout_voices")},
        "tokenizer": stages["tokenizer"]["result"],
        "units": stages["tokenize"]["result"],
        "train": {s: {k: v for k, v in train[s].items() if k != "config"} for s in train},
        "val_curves": {s: curves[s] for s in curves},
        LEADS: warm_leads(curves["warm"], curves["cold"]),
        "cold_tokens_to_warm_final_loss": tokens_to_reach(curves["cold"], w_final),
        "warm_tokens_to_cold_final_loss": tokens_to_reach(curves["warm"], c_final),
        "heldout": (stages.get("heldout-speech") or {}).get("result"),
        "tokenizer_report": (stages.get("tokenizer-report") or {}).get("result"),
        "controls": ctrl.get("controls"),
        "warm_minus_cold": ctrl.get("warm_minus_cold"),
        "val_loss_count_models": ctrl.get("val_loss_count_models"),
        "scaling": (stages.get("scaling") or {}).get("result"),
        "eval": {s: ev[s]["benchmarks"] for s in ev},
        "topline": ev["warm"].get("topline"),
        "vocoder": stages["vocoder"]["result"],
        "generation": {k: v for k, v in gen.items() if k != "records"},
        "generation_cold": {k: v for k, v in gen_cold.items() if k != "records"},
        "samples": copied,
    }
