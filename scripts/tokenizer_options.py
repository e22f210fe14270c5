"""Fit several offline tokenizers on one corpus and compare them with `tokenizer-report` metrics.

    python scripts/tokenizer_options.py --corpus data/corpus --parallel data/parallel --out runs/tokopts
    python scripts/tokenizer_options.py ... --options logmel-25hz-k200,whisper-base-k500

--corpus: a `twistlm synth corpus` folder (training voices; k-means is fitted on it).
--parallel: a parallel set (the same sentences by held-out voices; `twistlm tokenizer-report`
makes one, or twistlm.synth.parallel_set.synthesize_parallel_set).
Writes OUT/{option}/ (saved tokenizers) and OUT/report.md + report.json (one row per option,
with the seconds each took to fit), and prints the table.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

# option -> (features, build_extractor kwargs, k)
OPTIONS = {
    "logmel-25hz-k200": ("logmel", {"frame_rate": 25.0}, 200),
    "logmel-25hz-k500": ("logmel", {"frame_rate": 25.0}, 500),
    "whisper-tiny.en-50hz-k200": ("whisper", {"model": "tiny.en"}, 200),
    "whisper-tiny.en-50hz-k500": ("whisper", {"model": "tiny.en"}, 500),
    "whisper-tiny.en-25hz-k500": ("whisper", {"model": "tiny.en", "pool": 2}, 500),
    "whisper-base-50hz-k500": ("whisper", {"model": "base"}, 500),
    "whisper-base-25hz-k500": ("whisper", {"model": "base", "pool": 2}, 500),
    "whisper-base-25hz-k200": ("whisper", {"model": "base", "pool": 2}, 200),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--parallel", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--options", default=",".join(OPTIONS), help="comma-separated option names")
    ap.add_argument("--max-frames", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from twistlm.io import ErrorLog
    from twistlm.synth.corpus import read_manifest
    from twistlm.tokenizer.features import build_extractor
    from twistlm.tokenizer.kmeans import fit_kmeans, sample_frames
    from twistlm.tokenizer.report import measure_tokenizer, write_report
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

    out = Path(args.out)
    wavs = [r["path"] for r in read_manifest(args.corpus)]
    rows = read_manifest(args.parallel)
    errors = ErrorLog(out / "errors.jsonl")
    results = {}
    for name in args.options.split(","):
        features, kw, k = OPTIONS[name]
        tok_dir = out / name
        t0 = time.perf_counter()
        if (tok_dir / "tokenizer.json").is_file():
            tok = UnitTokenizer.from_pretrained(tok_dir)
            fit_s = None
        else:
            if features == "whisper":
                kw = {**kw, "threads": os.cpu_count() or 2}
            ex = build_extractor(features, **kw)
            frames = sample_frames(ex, wavs, args.max_frames, seed=args.seed, errors=errors)
            tok = UnitTokenizer(ex, fit_kmeans(frames, k, seed=args.seed), name=name)
            tok.save_pretrained(tok_dir)
            fit_s = round(time.perf_counter() - t0, 1)
        res = measure_tokenizer(tok, rows, errors)
        res["fit_seconds"] = fit_s
        results[name] = res
        print(name, res["units_per_second"], res["cross_voice"], flush=True)
    print(write_report(out, results, args.parallel).read_text())
    print("load average:", os.getloadavg())


if __name__ == "__main__":
    main()
