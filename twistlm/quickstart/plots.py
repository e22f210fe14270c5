"""The quickstart report's figures: validation loss, benchmark accuracy, the scaling study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twistlm.quickstart.tables import BENCH_NAMES, pct


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
        acc = [pct(p["mean_accuracy"].get(s)) for p in points]
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
