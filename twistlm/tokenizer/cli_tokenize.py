"""Tokenize a corpus of audio files into Parquet unit shards.

  twistlm tokenize --tokenizer TOK_DIR --audio AUDIO_DIR_OR_MANIFEST --out UNITS_DIR

Writes UNITS_DIR/shard-RRRRR-IIIII.parquet (columns id, units, durations, seconds),
tokenizer.json, errors.jsonl (one line per bad file) and summary-rank{r}.json. Files are
sorted by length into shards; shard i goes to rank i % world_size (torchrun RANK/WORLD_SIZE or
--rank/--world-size). Rerunning the same command resumes: finished shards are skipped.
Files longer than --max-in-memory-seconds are streamed in chunks (bounded memory).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tokenizer", required=True, help="tokenizer dir (twistlm fit-kmeans) or preset name"
    )
    p.add_argument("--audio", required=True, help="folder of audio files (recursive) or a manifest")
    p.add_argument("--out", required=True, help="output folder for the unit shards")
    p.add_argument(
        "--rank", type=int, default=None, help="this process's rank (default: $RANK or 0)"
    )
    p.add_argument(
        "--world-size", type=int, default=None, help="number of ranks (default: $WORLD_SIZE or 1)"
    )
    p.add_argument("--files-per-shard", type=int, default=256, help="files per Parquet shard (256)")
    p.add_argument(
        "--max-shards", type=int, default=None, help="stop after writing this many new shards"
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="HuBERT in bf16 autocast (AMX CPUs, GPUs); default exact fp32",
    )
    p.add_argument(
        "--device",
        default=None,
        help="HuBERT device, e.g. cuda:0 (default: cuda:$LOCAL_RANK if available, else cpu)",
    )
    p.add_argument(
        "--chunk-seconds",
        type=float,
        default=None,
        help="chunk length for long files (extractor default 30 s)",
    )
    p.add_argument(
        "--max-in-memory-seconds",
        type=float,
        default=60.0,
        help="files longer than this are streamed (60)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _device(arg: str | None) -> str | None:
    if arg is not None:
        return arg
    import os

    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return None


def run(args: argparse.Namespace) -> int:
    import torch

    from twistlm.tokenizer.corpus import tokenize_corpus
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    tok = UnitTokenizer.from_pretrained(
        args.tokenizer, fast=args.fast or None, device=_device(args.device)
    )
    if args.chunk_seconds is not None:
        tok.extractor.chunk_seconds = float(args.chunk_seconds)
    s = tokenize_corpus(
        tok,
        args.audio,
        args.out,
        rank=args.rank,
        world_size=args.world_size,
        files_per_shard=args.files_per_shard,
        max_shards=args.max_shards,
        max_in_memory_seconds=args.max_in_memory_seconds,
        progress=not args.no_progress,
        tokenizer_dir=args.tokenizer if Path(args.tokenizer).is_dir() else None,
    )
    print(s.line())
    if s.failures:
        print(f"{s.failures} file(s) failed; see {args.out}/errors.jsonl")
    return 0
