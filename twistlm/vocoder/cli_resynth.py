"""Resynthesize speech through a tokenizer + vocoder pair: audio -> units -> vocoder -> audio.

  twistlm resynth IN.wav -o OUT.wav --tokenizer TOK_DIR --vocoder RUN/vocoder
  twistlm resynth a.wav b.flac -o OUT_DIR --tokenizer TOK_DIR --vocoder VOC_DIR --durations predicted

The natural check of a tokenizer + vocoder pair (what the units keep of the speech).
--durations true (default) uses the tokenizer's run lengths; predicted uses the vocoder's
duration predictor on the deduplicated units (what `twistlm continue` does for generated
units). A units JSON (units, durations, frame_rate) is written beside each output wav.
Bad input files are logged (OUT_DIR/errors.jsonl or beside OUT.wav) and skipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from twistlm.lm.components import check_compatible
from twistlm.vocoder.resynth import resynthesize

# the library lives in twistlm.vocoder.resynth; ``resynthesize`` stays importable from here
# (the README names twistlm.vocoder.cli_resynth.resynthesize)
__all__ = ["add_arguments", "check_pair", "resynthesize", "run"]


def check_pair(tokenizer, vocoder) -> None:
    """Raise ValueError when a tokenizer's units cannot drive this vocoder (unit count, hop,
    the tokenizer the vocoder was trained on). Old name of
    ``twistlm.lm.components.check_compatible(tokenizer=..., vocoder=...)``."""
    check_compatible(tokenizer=tokenizer, vocoder=vocoder)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="audio files (any format libsndfile reads)")
    p.add_argument("-o", "--out", required=True, help="output .wav (one input) or folder")
    p.add_argument(
        "--tokenizer", required=True, help="tokenizer dir (twistlm fit-kmeans) or preset"
    )
    p.add_argument("--vocoder", required=True, help="vocoder dir (train-vocoder's RUN/vocoder)")
    p.add_argument("--durations", choices=["true", "predicted"], default="true")
    p.add_argument("--speaker", help="speaker id or name (multi-speaker vocoders; default 0)")
    p.add_argument("--device", default="cpu")


def _speaker(vocoder, value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    if value not in vocoder.speakers:
        raise ValueError(f"unknown speaker {value!r}; known: {vocoder.speakers}")
    return vocoder.speakers.index(value)


def run(args: argparse.Namespace) -> int:
    from twistlm.audio import AudioError, load_audio, write_wav
    from twistlm.io import ErrorLog, write_json
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer
    from twistlm.vocoder import load_vocoder

    tokenizer = UnitTokenizer.from_pretrained(args.tokenizer)
    vocoder = load_vocoder(args.vocoder, device=args.device)
    try:
        check_compatible(
            tokenizer=tokenizer,
            vocoder=vocoder,
            paths={"tokenizer": args.tokenizer, "vocoder": args.vocoder},
        )
        speaker = _speaker(vocoder, args.speaker)
    except ValueError as e:
        print(f"error: {e}")
        return 2
    out = Path(args.out)
    single = len(args.inputs) == 1 and out.suffix.lower() == ".wav"
    errors = ErrorLog((out.parent if single else out) / "errors.jsonl")
    n_ok = 0
    for src in args.inputs:
        dst = out if single else out / (Path(src).stem + ".wav")
        try:
            wav, meta = resynthesize(load_audio(src), tokenizer, vocoder, args.durations, speaker)
        except (AudioError, ValueError, OSError) as e:
            errors.add(src, e)
            continue
        write_wav(dst, wav, vocoder.sample_rate)
        write_json(dst.with_suffix(".units.json"), {"source": str(src), **meta})
        n_ok += 1
    print(f"resynthesized {n_ok}/{len(args.inputs)} file(s) -> {out}")
    if errors.count:
        print(f"{errors.count} failed, see {errors.path}")
    return 0 if n_ok else 1
