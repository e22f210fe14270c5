"""Synthesize offline spoken data with the installed TTS engines (flite, festival, espeak-ng).

  twistlm synth corpus --hours 1 --out data/corpus
      a multi-speaker spoken corpus from natural text (Debian fortunes by default):
      wavs/{voice}/{id}.wav (16 kHz mono) + manifest.jsonl (path, text, voice, seconds)

  twistlm synth benchmarks --out data/bench --n-pairs 500
      sWUGGY / sBLIMP / sSC / tSC-style pairs spoken by held-out voices, in the official
      layouts (lexical/dev + gold.csv, syntactic/dev + gold.csv, sSC/, tSC/) plus pairs.jsonl

  twistlm synth voices
      list the voices, which are installed, and the default train / held-out split

Both jobs run in parallel worker processes, skip outputs that already exist (rerun to resume),
log failures to OUT/errors.jsonl and go on. See docs/synth.md.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def _voices(s: str | None) -> list[str] | None:
    return [v.strip() for v in s.split(",") if v.strip()] if s else None


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", required=True, metavar="{corpus,benchmarks,voices}")
    c = sub.add_parser("corpus", help="synthesize a training corpus (training voices)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--hours", type=float, default=1.0, help="hours of speech (default 1)")
    c.add_argument("--voices", help="comma-separated training voices (default: the train split)")
    c.add_argument("--heldout", help="comma-separated held-out voices that must not be used")
    c.add_argument(
        "--text-source",
        default="auto",
        choices=["auto", "fortunes", "file", "generator"],
        help="auto: --text if given, else fortunes if installed, else the built-in generator",
    )
    c.add_argument("--text", help="a plain-text file or folder of *.txt (text source 'file')")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    b = sub.add_parser("benchmarks", help="synthesize sWUGGY/sBLIMP/sSC/tSC-style sets")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--n-pairs", type=int, default=500, help="pairs per benchmark (default 500)")
    b.add_argument("--voices", help="comma-separated held-out voices (default: the held-out split)")
    b.add_argument(
        "--only", help="comma-separated subset of swuggy,sblimp,ssc,tsc (default: all four)"
    )
    b.add_argument(
        "--text-source", default="auto", choices=["auto", "fortunes", "file", "generator"]
    )
    b.add_argument("--text", help="text file/folder for the sWUGGY vocabulary and frequencies")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--workers", type=int, default=2)
    sub.add_parser("voices", help="list voices and the default split")


def run(args: argparse.Namespace) -> int:
    from twistlm.synth.tts import TTSError

    try:
        if args.what == "voices":
            from twistlm.synth.tts import (
                DEFAULT_HELDOUT_VOICES,
                DEFAULT_TRAIN_VOICES,
                VOICES,
                is_available,
            )

            for name in VOICES:
                role = (
                    "train"
                    if name in DEFAULT_TRAIN_VOICES
                    else "held-out"
                    if name in DEFAULT_HELDOUT_VOICES
                    else "-"
                )
                print(f"{name:<24} {'installed' if is_available(name) else 'missing':<10} {role}")
            return 0
        if args.what == "corpus":
            from twistlm.synth.corpus import synthesize_corpus

            s = synthesize_corpus(
                args.out,
                hours=args.hours,
                voices=_voices(args.voices),
                seed=args.seed,
                text_source=args.text_source,
                text_path=args.text,
                heldout_voices=_voices(args.heldout),
                workers=args.workers,
            )
        else:
            from twistlm.synth.benchmarks import ALL, synthesize_benchmarks

            s = synthesize_benchmarks(
                args.out,
                n_pairs=args.n_pairs,
                voices=_voices(args.voices),
                seed=args.seed,
                benchmarks=_voices(args.only) or ALL,
                text_source=args.text_source,
                text_path=args.text,
                workers=args.workers,
            )
    except (TTSError, ValueError) as e:
        print(f"error: {e}")
        return 2
    print(json.dumps(asdict(s), indent=2))
    return 1 if s.n_failed else 0
