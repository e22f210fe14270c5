"""Evaluate a SpeechLM on spoken-language benchmarks: sWUGGY, sBLIMP, sSC, tSC (+ generation).

Each pair is scored by the log-likelihood of its two utterances' units under the model; the
positive should score higher (a tie counts 0.5). Units come from the model's own tokenizer
(the one its meta names, or --tokenizer) and are cached on disk, so a rerun does not
re-tokenize. Both the mean (per unit, headline by default) and the summed log-likelihood are
reported; metrics follow the official definitions (sWUGGY per-id over voices, frequency bands,
all / in-vocab; sBLIMP per type/subtype/id; sSC / tSC accuracy) with 95 % intervals.

examples:
  twistlm eval --model runs/warm --bench swuggy=data/sLM21/lexical/dev \\
      --bench sblimp=data/sLM21/syntactic/dev --bench tsc=data/tSC --out results/warm
  twistlm eval --model TWIST-350M --tokenizer tok/mhubert25hz --bench ssc=sSC.parquet \\
      --topline --batch-size 32 --device cuda --bf16 --out results/twist350m

--bench KIND=PATH takes any layout the readers know: a ZeroSpeech 2021 sLM21 folder
(lexical/dev, syntactic/dev with gold.csv, or the dataset root), a sSC/tSC folder of wav pairs,
a `twistlm synth benchmarks` pairs.jsonl, or local HF parquet files (speed/sWUGGY etc.).

outputs in --out: results.json (stable schema, accuracies as fractions), results.md (table with
published TWIST / GSLM rows), submission/{lexical,syntactic,ssc,tsc}.txt ("<file-stem> <score>"),
pairs/<bench>.jsonl (per-pair scores), results.png, errors.jsonl (inputs that failed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from twistlm.eval.benchmarks import KINDS
from twistlm.eval.metrics import CI_METHODS
from twistlm.eval.results import SCORE_RULES


def parse_bench(text: str) -> tuple[str, str]:
    """'swuggy=PATH' -> ('swuggy', 'PATH'); raises argparse errors with the valid kinds."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--bench wants KIND=PATH, got {text!r}")
    kind, path = text.split("=", 1)
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise argparse.ArgumentTypeError(f"unknown benchmark {kind!r}; choose from {KINDS}")
    if not path:
        raise argparse.ArgumentTypeError(f"--bench {kind}= needs a path")
    return kind, path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", required=True, help="SpeechLM dir (ours, TWIST with config.offset, SlamKit)"
    )
    p.add_argument(
        "--bench",
        action="append",
        type=parse_bench,
        default=[],
        metavar="KIND=PATH",
        help=f"benchmark to run, KIND in {', '.join(KINDS)}; repeat for several",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--tokenizer",
        default=None,
        help="UnitTokenizer dir (default: the one named in the model's metadata)",
    )
    p.add_argument(
        "--convention",
        choices=("twistlm", "twist", "slamkit"),
        default=None,
        help="unit-id convention of the model dir (default: auto-detect)",
    )
    p.add_argument("--batch-size", type=int, default=16, help="utterances per forward pass (16)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps (cpu)")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 autocast (faster on GPUs and AMX CPUs, much slower elsewhere; ~1e-2 score noise)",
    )
    p.add_argument(
        "--score",
        choices=SCORE_RULES,
        default="mean",
        help="headline rule: mean log-likelihood per unit (default) or sum; both are reported",
    )
    p.add_argument(
        "--ci", choices=CI_METHODS, default="wilson", help="95%% interval method (wilson)"
    )
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="unit cache root (~/.cache/twistlm/units)"
    )
    p.add_argument(
        "--no-cache", action="store_true", help="tokenize everything afresh, store nothing"
    )
    p.add_argument(
        "--limit", type=int, default=None, help="only the first N pairs of each benchmark"
    )
    p.add_argument(
        "--topline", action="store_true", help="also score the pairs' texts with a text LM"
    )
    p.add_argument(
        "--text-lm",
        default=None,
        help="text LM for --topline: HF dir, hub name or .gguf (default SmolLM2-135M, offline)",
    )
    p.add_argument(
        "--gen-prompts",
        nargs="+",
        default=None,
        metavar="PATH",
        help="prompt wavs or folders of wavs: also run generation metrics (needs --vocoder)",
    )
    p.add_argument("--vocoder", default=None, help="vocoder dir for --gen-prompts")
    p.add_argument("--gen-n", type=int, default=None, help="use the first N prompts (all)")
    p.add_argument(
        "--gen-seconds",
        type=float,
        default=None,
        help="continuation length in seconds (default: TWIST's rule, min(250, 3 x prompt) tokens)",
    )
    p.add_argument(
        "--asr-model",
        default=None,
        help="faster-whisper model name/dir for generation metrics (default Whisper tiny.en, offline)",
    )
    p.add_argument(
        "--no-share-prefix",
        action="store_true",
        help="score both utterances of a pair separately even when they share a unit prefix",
    )
    p.add_argument(
        "--controls",
        default=None,
        metavar="UNITS_DIR",
        help="unit shards the model was trained on: add a unit 3-gram control fitted on them "
        "(the length-only control is always reported)",
    )
    p.add_argument("--no-plot", action="store_true", help="skip results.png")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from twistlm.eval.run import EvalConfig, evaluate

    benches: dict[str, str] = {}
    for kind, path in args.bench:
        if kind in benches:
            raise SystemExit(f"twistlm eval: --bench {kind} given twice")
        benches[kind] = path
    if not benches and not args.gen_prompts:
        raise SystemExit(
            "twistlm eval: nothing to do; give --bench KIND=PATH (and/or --gen-prompts)"
        )
    if args.batch_size < 1:
        raise SystemExit("twistlm eval: --batch-size must be >= 1")
    gen_options = {
        k: v
        for k, v in {
            "n_prompts": args.gen_n,
            "seconds": args.gen_seconds,
            "asr_model": args.asr_model,
            "text_lm": args.text_lm,
            "batch_size": args.batch_size,
            "progress": not args.quiet,
        }.items()
        if v is not None
    }
    config = EvalConfig(
        batch_size=args.batch_size,
        device=args.device,
        score=args.score,
        autocast=args.bf16,
        convention=args.convention,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        topline=args.topline,
        text_lm=args.text_lm,
        gen_prompts=args.gen_prompts,
        vocoder=args.vocoder,
        gen_options=gen_options,
        ci=args.ci,
        limit=args.limit,
        share_prefix=not args.no_share_prefix,
        progress=not args.quiet,
        plot=not args.no_plot,
        controls_train=args.controls,
    )
    result = evaluate(args.model, benches, args.tokenizer, args.out, config=config)
    print((args.out / "results.md").read_text())
    print(f"results: {args.out / 'results.json'}")
    return 0 if result.benchmarks or result.generation else 1
