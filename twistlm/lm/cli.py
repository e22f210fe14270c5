"""Build a warm- or cold-started SpeechLM dir from a text LM (TWIST initialisation).

Examples:
  twistlm init-lm out/warm --n-units 200 --tokenizer tok/            # SmolLM2-135M, recommended init
                                                                     # (random rows, zero untied output)
  twistlm init-lm out/cold --n-units 200 --start cold
  twistlm init-lm out/opt --text-lm facebook/opt-125m --n-units 500 --init truncate --out-init copy
  twistlm init-lm out/w6 --n-units 500 --layers 6                    # first 6 layers only

The output is a plain HF dir (AutoModelForCausalLM loads it) plus twistlm.json with the unit
vocabulary (pad 0, bos 1, eos 2, unit i at i+3), the tokenizer info and how it was initialised.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="output model dir")
    p.add_argument(
        "--text-lm", default=None, help="HF dir, hub name or .gguf (default: SmolLM2-135M GGUF)"
    )
    p.add_argument(
        "--n-units", type=int, default=None, help="unit vocabulary size (default: from --tokenizer)"
    )
    p.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="speech tokenizer dir or unit shard dir (its info is recorded)",
    )
    p.add_argument("--start", choices=["warm", "cold"], default="warm")
    p.add_argument(
        "--init",
        choices=["random", "truncate", "mean", "small"],
        default="random",
        help="new unit-row init for warm starts (default random, with --out-init zero: measured best, docs/lm.md)",
    )
    p.add_argument(
        "--init-scale", type=float, default=0.1, help="noise scale x source std for mean/small"
    )
    p.add_argument(
        "--tie",
        choices=["source", "yes", "no"],
        default="source",
        help="tie input/output embeddings",
    )
    p.add_argument(
        "--out-init", choices=["copy", "zero"], default="copy", help="untied output layer init"
    )
    p.add_argument(
        "--layers", type=int, default=None, help="keep only the first N transformer layers"
    )
    p.add_argument("--seed", type=int, default=0)


def _tokenizer_info(path: Path | None) -> dict:
    if path is None:
        return {}
    for name in ("tokenizer.json", "unit_tokenizer.json", "config.json"):
        f = path / name
        if f.exists():
            try:
                info = json.loads(f.read_text())
            except ValueError:
                continue
            if isinstance(info, dict) and "n_units" in info:
                return {**info, "path": str(path)}
    raise SystemExit(f"{path}: no tokenizer info with n_units found")


def run(args: argparse.Namespace) -> int:
    from twistlm.lm.warm_start import build_speech_lm

    info = _tokenizer_info(args.tokenizer)
    n_units = args.n_units or info.get("n_units")
    if not n_units:
        raise SystemExit("give --n-units or --tokenizer")
    tie = {"source": None, "yes": True, "no": False}[args.tie]
    lm = build_speech_lm(
        args.text_lm,
        int(n_units),
        start=args.start,
        init=args.init,
        n_layers=args.layers,
        tie=tie,
        seed=args.seed,
        init_scale=args.init_scale,
        out_init=args.out_init,
        tokenizer_info=info,
    )
    lm.save_pretrained(args.out)
    print(f"wrote {lm} to {args.out}")
    return 0
