"""Warm-start initialisations vs cold start at quickstart scale (which init leads from step one?).

Builds SpeechLMs from SmolLM2-135M (first N layers) with several initialisations of the new unit
rows, trains each with the same data order and budget, and prints validation loss (nats/unit)
at every evaluation point side by side. Data: real unit shards if given (--shards), else a
synthetic word-bigram unit corpus (twistlm.train.synthetic; stated in the output).

    python benchmarks/train_warm_init.py --layers 6 --steps 150 --out runs/warm_init
"""

# ruff: noqa: E402  (sys.path is fixed before the imports)
from __future__ import annotations

import os
import sys

# benchmarks/ holds tokenize.py etc.; keep this folder off sys.path so the stdlib wins.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse
import json
import os
import time
from pathlib import Path

import torch

VARIANTS = {
    # name: (start, init, tie, out_init, lr)
    "cold": ("cold", "random", None, "copy", 5e-4),
    "warm-random-tied": ("warm", "random", None, "copy", 5e-4),
    "warm-truncate-tied": ("warm", "truncate", None, "copy", 5e-4),
    "warm-mean-tied": ("warm", "mean", None, "copy", 5e-4),
    "warm-small-untied-zero": ("warm", "small", False, "zero", 5e-4),
    "warm-random-untied-zero": ("warm", "random", False, "zero", 5e-4),
    "warm-mean-untied-zero": ("warm", "mean", False, "zero", 5e-4),
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shards", default=None, help="unit shards (default: synthetic corpus)")
    ap.add_argument("--out", default="runs/warm_init")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--precision", default="auto", help="auto | fp32 | bf16 (bf16 only pays off with AMX)"
    )
    ap.add_argument("--val-max", type=int, default=200, help="held-out utterances")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from twistlm.config import load_config
    from twistlm.lm.textlm import load_text_lm
    from twistlm.lm.warm_start import build_speech_lm
    from twistlm.train import TrainConfig, train
    from twistlm.train.data import tokenizer_info
    from twistlm.train.synthetic import write_synthetic_shards

    out = Path(args.out)
    shards = args.shards
    if shards is None:
        shards = out / "synthetic_shards"
        if not shards.exists():
            write_synthetic_shards(shards, 4000, n_units=200, seed=0)
        data_desc = "SYNTHETIC word-bigram units (4000 utts, 200 units)"
    else:
        data_desc = f"real unit shards {shards}"
    n_units = int(tokenizer_info(shards).get("n_units", 200))
    text_lm, _ = load_text_lm(None, tokenizer=False)
    curves: dict[str, list[tuple[int, float]]] = {}
    for name in args.variants.split(","):
        start, init, tie, out_init, lr = VARIANTS[name]
        run = out / name
        model_dir = out / f"init-{name}"
        if not (model_dir / "twistlm.json").exists():
            lm = build_speech_lm(
                text_lm,
                n_units,
                start=start,
                init=init,
                n_layers=args.layers,
                tie=tie,
                out_init=out_init,
                seed=0,
            )
            lm.save_pretrained(model_dir)
        cfg = load_config(
            TrainConfig,
            None,
            [
                f"data.train={shards}",
                f"data.block_size={args.block}",
                f"data.val_max_utterances={args.val_max}",
                f"model.init_from={model_dir}",
                f"optim.batch_size={args.batch}",
                f"optim.lr={lr}",
                "schedule.warmup_steps=20",
                f"budget.max_steps={args.steps}",
                f"logging.run_dir={run}",
                f"logging.eval_every={args.eval_every}",
                "logging.checkpoint_every=0",
                "logging.progress=false",
                "logging.log_every=5",
                f"runtime.precision={args.precision}",
            ],
        )
        t = time.time()
        train(cfg)
        recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
        curves[name] = [(r["step"], r["val_loss"]) for r in recs if "val_loss" in r]
        print(
            f"{name}: {time.time() - t:.0f}s  " + " ".join(f"{s}:{v:.3f}" for s, v in curves[name]),
            flush=True,
        )

    steps = [s for s, _ in next(iter(curves.values()))]
    print(
        f"\nval loss (nats/unit), SmolLM2-135M first {args.layers} layers, batch {args.batch}x{args.block}, {args.precision}, data: {data_desc}"
    )
    print(f"{'variant':<26}" + "".join(f"{s:>8}" for s in steps))
    for name, c in curves.items():
        print(f"{name:<26}" + "".join(f"{v:>8.3f}" for _, v in c))
    if "cold" in curves:
        cold = dict(curves["cold"])
        for name, c in curves.items():
            if name != "cold":
                lead = all(v < cold[s] for s, v in c[1:])
                print(f"{name}: below cold at every eval after the first: {lead}")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
