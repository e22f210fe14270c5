"""Compare tokenizers on the same speech: units/s, codebook use, cross-voice consistency.

  # offline: 50 sentences spoken by the two held-out TTS voices (synthesized once into --work)
  twistlm tokenizer-report --tokenizer TOK_A --tokenizer TOK_B --out reports/tok
  # your own data: a manifest.jsonl with path, voice, text (the same texts in several voices)
  twistlm tokenizer-report --tokenizer TOK --manifest data/parallel/manifest.jsonl --out reports/tok

Writes OUT/report.md (a table, one row per tokenizer), OUT/report.json and OUT/errors.jsonl
(files that failed; the report goes on without them). A tokenizer is a saved tokenizer dir or a
preset name. "same/diff" near 1.0 and "twin" near chance mean the units encode the voice rather
than the words, and an LM trained on them cannot transfer to a voice it never heard.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tokenizer", action="append", required=True, help="tokenizer dir or preset (repeatable)"
    )
    p.add_argument("--manifest", help="manifest.jsonl (path, voice, text) or a folder holding one")
    p.add_argument(
        "--voices",
        help="without --manifest: voices that speak the synthesized set (default: held-out)",
    )
    p.add_argument("--n-sentences", type=int, default=50, help="synthesized sentences (50)")
    p.add_argument("--seed", type=int, default=0, help="sentence choice (0)")
    p.add_argument("--work", help="where the synthesized set goes (default: OUT/parallel_set)")
    p.add_argument("--out", required=True, help="report folder")


def run(args: argparse.Namespace) -> int:
    from twistlm.io import ErrorLog
    from twistlm.synth.corpus import read_manifest
    from twistlm.tokenizer.report import measure_tokenizer, write_report
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

    out = Path(args.out)
    manifest = args.manifest
    if manifest is None:
        from twistlm.synth.parallel_set import synthesize_parallel_set

        voices = args.voices.split(",") if args.voices else None
        manifest = synthesize_parallel_set(
            args.work or out / "parallel_set", voices, args.n_sentences, args.seed
        )
    rows = read_manifest(manifest)
    missing = [k for k in ("path", "voice", "text") if rows and k not in rows[0]]
    if not rows or missing:
        print(f"error: {manifest}: need manifest lines with path, voice, text (missing {missing})")
        return 2
    errors = ErrorLog(out / "errors.jsonl")
    results = {}
    for name in args.tokenizer:
        tok = UnitTokenizer.from_pretrained(name)
        label = Path(name).name or name
        results[label if label not in results else name] = measure_tokenizer(tok, rows, errors)
    path = write_report(out, results, manifest)
    print(path.read_text())
    if errors.count:
        print(f"{errors.count} file(s) failed: see {errors.path}")
    return 0
