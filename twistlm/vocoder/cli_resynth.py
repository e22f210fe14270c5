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

import numpy as np


def check_pair(tokenizer, vocoder) -> None:
    """Raise ValueError when a tokenizer's units cannot drive this vocoder."""
    if tokenizer.hop != vocoder.hop:
        raise ValueError(
            f"tokenizer hop {tokenizer.hop} != vocoder hop {vocoder.hop} (different frame rates)"
        )
    if tokenizer.n_units != vocoder.n_units:
        raise ValueError(f"tokenizer has {tokenizer.n_units} units, vocoder {vocoder.n_units}")
    tok_name = (vocoder.info.get("tokenizer") or {}).get("name")
    if tok_name and getattr(tokenizer, "name", None) and tok_name != tokenizer.name:
        raise ValueError(f"vocoder was trained on tokenizer {tok_name!r}, not {tokenizer.name!r}")


def resynthesize(
    wav: np.ndarray, tokenizer, vocoder, durations: str = "true", speaker: int | None = None
) -> tuple[np.ndarray, dict]:
    """(T,) 16 kHz waveform -> (T',) resynthesized waveform and the units used."""
    if durations not in ("true", "predicted"):
        raise ValueError(f"durations must be 'true' or 'predicted', got {durations!r}")
    tok = tokenizer.encode(wav)
    durs = tok.durations if durations == "true" else None
    if durs is None and not vocoder.has_duration_predictor:
        raise ValueError("this vocoder has no duration predictor: use --durations true")
    out = vocoder.synthesize(tok.units, durs, speaker)
    meta = {
        "units": tok.units.tolist(),
        "durations": (
            tok.durations if durs is not None else vocoder.predict_durations(tok.units)
        ).tolist(),
        "frame_rate": tok.frame_rate,
        "duration_source": durations,
    }
    return out, meta


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
        check_pair(tokenizer, vocoder)
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
