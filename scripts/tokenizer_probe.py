"""Diagnostic: what decides a tokenizer's k-means clusters, and how much sound its units keep.

    python scripts/tokenizer_probe.py --tokenizer TOK [--tokenizer TOK2 ...] --corpus SET \\
        [--fit 400] [--test 100] [--features RUN/features.safetensors]

SET is one voice's folder with manifest.jsonl + wavs (e.g. the `--recipe slt` corpus). For the
first tokenizer's extractor it prints the fraction of the frame features' variance that the
absolute frame index explains (the mean feature vector per position, over the first
`--fit + --test` utterances; the same with the positions shuffled is the chance level) and the
share of the 5 highest-variance dimensions. For each tokenizer it prints R^2: how much of the
voice's WORLD features (4 x 10 ms frames per 40 ms unit frame, per-dimension normalized) the
per-unit mean explains on `--test` utterances after fitting the means on `--fit` others. A
vocoder cannot use what the units do not carry, so a low R^2 bounds intelligibility from above
(a diagnostic, not a WER: docs/vocoder.md). `--features` reuses a recipe's WORLD cache.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def position_share(frames: list[np.ndarray], rng: np.random.Generator) -> tuple[float, float]:
    """Fraction of the variance explained by the frame index, and by a shuffled index."""
    x = np.concatenate(frames).astype(np.float64)
    pos = np.concatenate([np.arange(len(f)) for f in frames])
    total = ((x - x.mean(0)) ** 2).sum()

    def explained(p: np.ndarray) -> float:
        n = np.bincount(p)
        sums = np.zeros((len(n), x.shape[1]))
        np.add.at(sums, p, x)
        means = sums[n > 0] / n[n > 0, None]
        return float((n[n > 0, None] * (means - x.mean(0)) ** 2).sum() / total)

    return explained(pos), explained(rng.permutation(pos))


def unit_r2(units: list[np.ndarray], targets: list[np.ndarray], n_fit: int) -> float:
    """R^2 of per-unit means (fitted on the first n_fit utterances) on the rest."""
    xs = [u[: min(len(u), len(t))] for u, t in zip(units, targets, strict=True)]
    ys = [t[: len(x)] for x, t in zip(xs, targets, strict=True)]
    xa, ya = np.concatenate(xs[:n_fit]), np.concatenate(ys[:n_fit])
    xb, yb = np.concatenate(xs[n_fit:]), np.concatenate(ys[n_fit:])
    mu, sd = ya.mean(0), ya.std(0) + 1e-6
    ya, yb = (ya - mu) / sd, (yb - mu) / sd
    k = int(max(xa.max(), xb.max())) + 1
    table, count = np.zeros((k, ya.shape[1])), np.zeros(k)
    np.add.at(table, xa, ya)
    np.add.at(count, xa, 1)
    table /= np.maximum(count, 1)[:, None]  # unseen units predict the mean (0)
    return float(1 - ((yb - table[xb]) ** 2).sum() / ((yb - yb.mean(0)) ** 2).sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tokenizer", action="append", required=True, help="tokenizer dir (repeat)")
    p.add_argument("--corpus", required=True, help="one voice: manifest.jsonl + wavs")
    p.add_argument("--fit", type=int, default=400, help="utterances the unit means are fit on")
    p.add_argument("--test", type=int, default=100, help="utterances R^2 is measured on")
    p.add_argument("--features", help="WORLD feature cache of a `train-vocoder` recipe run")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from tqdm import tqdm

    from twistlm.audio import load_audio
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer
    from twistlm.vocoder import world

    corpus = Path(args.corpus)
    rows = [json.loads(line) for line in open(corpus / "manifest.jsonl")]
    rows = rows[: args.fit + args.test]
    if len(rows) < args.fit + 2:
        raise SystemExit(f"{corpus}: {len(rows)} utterances, need more than --fit {args.fit}")
    cache = None
    if args.features:
        from safetensors import safe_open

        cache = safe_open(args.features, "pt")
    toks = [UnitTokenizer.from_pretrained(t) for t in args.tokenizer]
    wavs = [load_audio(corpus / r["path"]) for r in tqdm(rows, desc="audio", unit="file")]
    targets = []
    for r, wav in zip(tqdm(rows, desc="WORLD", unit="file"), wavs, strict=True):
        key = f"world/{Path(r['path']).relative_to('wavs')}"
        if cache is not None and key in cache.keys():
            f = cache.get_tensor(key).numpy()
        else:
            f = world.analyze(wav, 16000)
        n = len(f) // 4
        targets.append(f[: n * 4].reshape(n, -1))  # 4 x 10 ms per 40 ms unit frame
    feats = [toks[0].extractor(torch.as_tensor(w)).float().numpy() for w in wavs]
    pos, chance = position_share(feats, np.random.default_rng(0))
    var = np.concatenate(feats).var(0)
    print(
        f"{args.tokenizer[0]} features: frame index explains {pos:.1%} of the variance "
        f"(shuffled index: {chance:.1%}); top 5 of {len(var)} dimensions hold "
        f"{np.sort(var)[-5:].sum() / var.sum():.1%}"
    )
    for path, tok in zip(args.tokenizer, toks, strict=True):
        if tok.extractor.config() != toks[0].extractor.config():
            feats_t = [tok.extractor(torch.as_tensor(w)).float().numpy() for w in wavs]
        else:
            feats_t = feats
        units = [tok.assign_features(torch.as_tensor(f)).numpy() for f in feats_t]
        r2 = unit_r2(units, targets, args.fit)
        std = "standardized" if tok.standardizer is not None else "raw"
        print(f"{path}: k={tok.n_units} ({std}) per-unit-mean R^2 of WORLD features {r2:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
