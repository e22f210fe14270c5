"""The quickstart's evaluation stages: both models on the benchmarks, the controls and paired
warm - cold differences, and (``--recipe long``) the scaling study over earlier budgets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twistlm.eval.benchmarks import KINDS as BENCH_KINDS
from twistlm.hardware import bf16_is_fast
from twistlm.io import read_json, write_json
from twistlm.quickstart.config import QuickstartConfig


def run_controls(out: Path) -> dict[str, Any]:
    """The controls `twistlm eval` scored beside the warm model (same pairs, same units), and
    the paired warm - cold difference per benchmark and on the mean."""
    from twistlm.data.shards import read_shard_metadata
    from twistlm.eval.controls import ngram_cross_entropy, paired_benchmark_differences
    from twistlm.train.data import read_units

    diff = paired_benchmark_differences(
        pair_records(out / "eval" / "warm"), pair_records(out / "eval" / "cold")
    )
    n_units = read_shard_metadata(out / "units").n_units
    train = [u.tolist() for u in read_units(out / "units").units]
    val = [u.tolist() for u in read_units(out / "units-heldout").units]
    res = {
        # what counting alone reaches on the validation set (same tokens as the LMs' val loss)
        "val_loss_count_models": {
            name: ngram_cross_entropy(train, val, n_units, order)
            for name, order in (("unigram", 1), ("bigram", 2), ("trigram", 3))
        },
        "controls": read_json(out / "eval" / "warm" / "results.json").get("controls") or {},
        "warm_minus_cold": {k: d.to_dict() for k, d in diff.items()},
    }
    write_json(out / "controls" / "controls.json", res)
    return res


def pair_records(eval_dir: Path) -> dict[str, list[dict]]:
    """Per-pair outcomes `twistlm eval` wrote (eval_dir/pairs/{kind}.jsonl)."""
    import json

    d = eval_dir / "pairs"
    return {
        k: [json.loads(ln) for ln in (d / f"{k}.jsonl").read_text().splitlines() if ln.strip()]
        for k in BENCH_KINDS
        if (d / f"{k}.jsonl").is_file()
    }


def scaling_study(
    cfg: QuickstartConfig, out: Path, bench_paths: dict[str, str], tok_dir: Path
) -> dict[str, Any]:
    """Both models at every budget: validation loss, benchmark accuracy, paired warm - cold.

    The earlier budgets are the snapshots of the two runs (same steps, same data order); the
    last is the final models, already scored by eval-warm / eval-cold.
    """
    from twistlm.eval.controls import paired_benchmark_differences
    from twistlm.quickstart.report import mean_accuracy, read_metrics

    def snaps(start: str) -> dict[int, Path]:
        d = out / "runs" / start / "snapshots"
        found = sorted(d.glob("step-*")) if d.is_dir() else []
        return {int(p.name.split("-")[1]): p for p in found}

    warm, cold = snaps("warm"), snaps("cold")
    val = {
        s: {
            int(m["step"]): float(m["val_loss"])
            for m in read_metrics(out / "runs" / s / "metrics.jsonl")
            if m.get("val_loss") is not None
        }
        for s in ("warm", "cold")
    }
    stages = read_json(out / "stages.json")
    final_step = int(stages["train-cold"]["result"]["steps"])
    tokens_per_step = cfg.block_size * cfg.batch_size
    points = []
    budgets = sorted(step for step in set(warm) & set(cold) if step < final_step)
    for step in [*budgets, final_step]:
        if step == final_step:
            dirs = {s: out / "eval" / s for s in ("warm", "cold")}
        else:
            dirs = {s: out / "scaling" / f"{s}-step{step:08d}" for s in ("warm", "cold")}
            for start, path in (("warm", warm[step]), ("cold", cold[step])):
                evaluate_model(
                    cfg, out, start, bench_paths, tok_dir, topline=False,
                    model_dir=path, out_dir=dirs[start],
                )  # fmt: skip
        diff = paired_benchmark_differences(pair_records(dirs["warm"]), pair_records(dirs["cold"]))
        acc = {s: read_json(dirs[s] / "results.json")["benchmarks"] for s in dirs}
        points.append(
            {
                "step": step,
                "tokens": step * tokens_per_step,
                "val_loss": {s: val[s].get(step) for s in val},
                "mean_accuracy": {s: mean_accuracy(acc[s]) for s in acc},
                "accuracy": {s: {k: v.get("accuracy") for k, v in acc[s].items()} for s in acc},
                "warm_minus_cold": {k: d.to_dict() for k, d in diff.items()},
            }
        )
    first = next((p["tokens"] for p in points if _interval_above_zero(p)), None)
    res = {"points": points, "first_budget_warm_beats_cold": first}
    write_json(out / "scaling" / "scaling.json", res)
    return res


def _interval_above_zero(point: dict[str, Any]) -> bool:
    mean = point["warm_minus_cold"].get("mean") or {}
    return bool(mean.get("ci95")) and mean["ci95"][0] > 0


def evaluate_model(
    cfg: QuickstartConfig,
    out: Path,
    start: str,
    bench_paths: dict[str, str],
    tok_dir: Path,
    topline: bool,
    controls_train: Path | None = None,
    model_dir: Path | None = None,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    from twistlm.eval.run import evaluate

    out_dir = out_dir or out / "eval" / start
    res = evaluate(
        model_dir or out / "models" / start,
        {k: bench_paths[k] for k in BENCH_KINDS if k in bench_paths},
        tokenizer=str(tok_dir),
        out_dir=out_dir,
        autocast=bf16_is_fast("cpu"),
        cache_dir=out / "cache" / "units",
        topline=topline,
        text_lm=cfg.text_lm,
        controls_train=controls_train,
    )
    return {"results": str(out_dir / "results.json"), "stats": res.stats}
