"""Convert a textlesslib / sklearn k-means pickle (joblib, e.g. km.bin) to safe centroids.

  twistlm import-kmeans km.bin --out km500.safetensors --trust-pickle

Pickles can run arbitrary code when loaded, so this refuses without --trust-pickle. The output is
a safetensors file (tensor "centroids", (k, dim) float32) usable with
`twistlm fit-kmeans --centroids FILE --features hubert --model DIR --layer L --out TOK_DIR`.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kmeans", help="joblib-pickled sklearn KMeans (textlesslib km.bin)")
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument(
        "--trust-pickle", action="store_true", help="allow unpickling (only for files you trust)"
    )


def run(args: argparse.Namespace) -> int:
    from twistlm.tokenizer.kmeans import UnsafeFileError, import_kmeans_pickle, save_centroids

    try:
        c = import_kmeans_pickle(args.kmeans, trust_pickle=args.trust_pickle)
    except UnsafeFileError as e:
        print(f"error: {e}")
        return 2
    save_centroids(args.out, c, {"source": str(args.kmeans)})
    print(f"wrote {tuple(c.shape)} centroids to {args.out}")
    return 0
