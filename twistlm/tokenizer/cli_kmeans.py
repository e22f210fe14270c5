"""Fit k-means units on a corpus and save a UnitTokenizer dir.

  # offline, speaker-independent units: Whisper base encoder pooled to 25 Hz, 500 units
  twistlm fit-kmeans --audio WAVS --out TOK_DIR --features whisper --model base --n-units 500
  twistlm fit-kmeans --audio WAVS --out TOK_DIR --features whisper --preset whisper-base-25hz --n-units 500
  # spectral baseline: log-mel 80 pooled to 25 Hz, 200 units (encodes the voice, not the words)
  twistlm fit-kmeans --audio WAVS --out TOK_DIR --features logmel --n-units 200
  # HuBERT (local HF dir or hub name) with a preset's layer/hop/normalisation
  twistlm fit-kmeans --audio WAVS --out TOK_DIR --features hubert --model HF_DIR --preset mhubert-base-25hz
  # no fitting: wrap centroids imported with `twistlm import-kmeans`
  twistlm fit-kmeans --out TOK_DIR --features hubert --model HF_DIR --layer 11 --centroids km.safetensors

Frames are sampled uniformly (reservoir) into at most --max-frames rows, so memory is bounded by
max_frames x dim x 4 bytes whatever the corpus size. Bad files go to TOK_DIR/errors.jsonl.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--audio", help="folder of audio files or a manifest (not needed with --centroids)"
    )
    p.add_argument("--out", required=True, help="tokenizer dir to write")
    p.add_argument(
        "--features",
        default="logmel",
        choices=["logmel", "mfcc", "hubert", "whisper"],
        help="feature extractor (logmel)",
    )
    p.add_argument("--n-units", type=int, default=200, help="k (100-1000 typical; 200)")
    p.add_argument(
        "--frame-rate", type=float, default=25.0, help="spectral features: 25 or 50 Hz (25)"
    )
    p.add_argument(
        "--norm",
        default="utterance",
        choices=["utterance", "none"],
        help="spectral features: per-utterance mean/var norm",
    )
    p.add_argument(
        "--model",
        help="hubert: HF HubertModel dir or hub name; whisper: tiny.en | base (packaged, offline), "
        "a CTranslate2 Whisper dir, or a transformers Whisper dir / hub name",
    )
    p.add_argument("--layer", type=int, help="hubert: layer to read (hidden_states[layer])")
    p.add_argument(
        "--preset",
        help="hubert: take layer/hop/normalisation from a preset (e.g. mhubert-base-25hz); "
        "whisper: model/layer/frame rate from a preset (e.g. whisper-base-25hz)",
    )
    p.add_argument(
        "--normalize",
        choices=["auto", "yes", "no"],
        default="auto",
        help="hubert: waveform layer-norm (auto: from the checkpoint)",
    )
    p.add_argument(
        "--max-frames", type=int, default=200_000, help="frames sampled for fitting (200000)"
    )
    p.add_argument("--n-iter", type=int, default=50, help="k-means iterations (50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-dedup", action="store_true", help="keep frame units (no run-length dedup)")
    p.add_argument(
        "--standardize",
        choices=["auto", "yes", "no"],
        default="auto",
        help="fit k-means on per-dimension z-scores of the features (mean/std stored with the "
        "centroids). auto (default): yes for whisper features, whose raw units lose most of "
        "the sound (docs/tokenizer_whisper.md), no otherwise",
    )
    p.add_argument("--centroids", help="use these centroids (safetensors) instead of fitting")
    p.add_argument("--fast", action="store_true", help="hubert: bf16 autocast")
    p.add_argument("--device", default=None, help="hubert: device (cpu, cuda:0)")


def build_extractor_from_args(args: argparse.Namespace):
    from twistlm.tokenizer.features import build_extractor

    if args.features == "whisper":
        if args.preset:  # whisper presets carry model, layer and frame rate
            return build_extractor("whisper", preset=args.preset, device=args.device or "cpu")
        return build_extractor(
            "whisper",
            model=args.model or "base",
            layer=args.layer,
            frame_rate=args.frame_rate,
            device=args.device or "cpu",
        )
    if args.features != "hubert":
        return build_extractor(args.features, frame_rate=args.frame_rate, norm=args.norm)
    from twistlm import loaders

    if not args.model:
        raise SystemExit("--features hubert needs --model (HF dir or hub name)")
    layer, hop, normalize, pad_samples = args.layer, None, None, 0
    if args.preset:
        if args.preset not in loaders.TOKENIZER_PRESETS:
            raise SystemExit(
                f"unknown preset {args.preset!r}; known: {sorted(loaders.TOKENIZER_PRESETS)}"
            )
        spec = loaders.TOKENIZER_PRESETS[args.preset]
        if layer is not None and layer != spec["layer"]:
            raise SystemExit(f"preset {args.preset} is read at layer {spec['layer']}, not {layer}")
        layer, hop, normalize = spec["layer"], spec["hop"], spec["normalize"]
        pad_samples = spec.get("pad_samples", 0)  # SlamKit presets pad the waveform
    if layer is None:
        raise SystemExit("--features hubert needs --layer or --preset")
    if args.normalize != "auto":
        normalize = args.normalize == "yes"
    return build_extractor(
        "hubert",
        model=args.model,
        layer=layer,
        hop=hop,
        normalize=normalize,
        pad_samples=pad_samples,
        fast=args.fast,
        device=args.device,
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from twistlm.io import ErrorLog
    from twistlm.tokenizer.corpus import list_corpus
    from twistlm.tokenizer.kmeans import (
        fit_kmeans,
        fit_standardizer,
        load_centroids,
        load_standardizer,
        sample_frames,
        zscores,
    )
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

    extractor = build_extractor_from_args(args)
    out = Path(args.out)
    standardizer = None
    if args.centroids:
        centroids, _ = load_centroids(args.centroids)
        standardizer = load_standardizer(args.centroids)
        if args.standardize == "yes" and standardizer is None:
            raise SystemExit(f"--standardize: {args.centroids} has no feature_mean/feature_std")
    else:
        if not args.audio:
            raise SystemExit("--audio is required unless --centroids is given")
        files = [it.path for it in list_corpus(args.audio)]
        errors = ErrorLog(out / "errors.jsonl")
        frames = sample_frames(extractor, files, args.max_frames, seed=args.seed, errors=errors)
        print(f"fitting k={args.n_units} on {frames.shape[0]} frames of dim {frames.shape[1]}")
        standardize = args.standardize
        if standardize == "auto":
            standardize = "yes" if args.features == "whisper" else "no"
        if standardize == "yes":
            standardizer = fit_standardizer(frames)
            frames = zscores(frames, standardizer).numpy()
        centroids = fit_kmeans(frames, args.n_units, n_iter=args.n_iter, seed=args.seed)
        if errors.count:
            print(f"{errors.count} file(s) skipped; see {errors.path}")
    tag = (
        f"{args.features}{extractor.frame_rate:g}hz"
        if args.features != "hubert"
        else (args.preset or "hubert") + f"-L{extractor.layer}"
    )
    tok = UnitTokenizer(
        extractor,
        centroids,
        dedup=not args.no_dedup,
        name=f"{tag}-{'zkm' if standardizer is not None else 'km'}{centroids.shape[0]}",
        standardizer=standardizer,
    )
    tok.save_pretrained(out)
    print(f"saved tokenizer {tok.info()} to {out}")
    return 0
