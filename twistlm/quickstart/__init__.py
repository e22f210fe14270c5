"""Offline quickstart: TWIST's main result in miniature, on a laptop CPU, with no download.

Synthesizes a multi-speaker spoken corpus and four spoken benchmarks (held-out voices),
tokenizes it with the packaged tokenizer (k-means on Whisper base's encoder: TWIST's
mHuBERT-25Hz cannot be had offline, so units come from a speech recognizer's encoder, a
different kind of tokenizer), trains a SpeechLM warm-started from SmolLM2-135M and a
cold-started twin on the same token budget, evaluates both (plus a text topline), continues
held-out spoken prompts with the packaged vocoder (one voice, flite:slt) and writes report/
(table, plots, wavs). With other tokenizer settings (or --no-packaged) it fits its own
tokenizer and trains its own vocoder. Rerunning resumes: finished
stages are skipped.

recipes (every option below overrides the recipe's value):
  default   ~20 min on 2 CPU cores: 1 h of speech, full-depth SmolLM2, 1000 sWUGGY/sBLIMP pairs
  smoke     every stage in under 3 minutes (tiny settings; a first look, not a result)
  long      the scaling study, 70-90 min: 5 h of speech, ~5x the default's training tokens, warm
            and cold scored at four budgets (1/8, 1/4, 1/2, all of the run): accuracy and loss vs
            tokens (report/scaling.png)

examples:
  twistlm quickstart
  twistlm quickstart --smoke
  twistlm quickstart --recipe long              # writes quickstart-long/
  twistlm quickstart --minutes 60 --hours 3 --out qs-60
"""

from __future__ import annotations

import argparse
import dataclasses

from twistlm.quickstart.config import (
    QUICKSTART_FEATURES,
    RECIPES,
    QuickstartConfig,
    long_config,
    smoke_config,
)
from twistlm.quickstart.pipeline import run_quickstart

__all__ = [
    "QuickstartConfig",
    "smoke_config",
    "long_config",
    "run_quickstart",
    "add_arguments",
    "run",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = QuickstartConfig()
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default: quickstart, quickstart-smoke or quickstart-long)",
    )
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="default",
        help="settings to start from (see above; default: default)",
    )
    p.add_argument("--smoke", action="store_true", help="same as --recipe smoke")
    p.add_argument(
        "--minutes",
        type=float,
        help=f"wall-clock target; scales training budgets (default {d.minutes:g})",
    )
    p.add_argument("--hours", type=float, help=f"hours of training speech (default {d.hours:g})")
    p.add_argument(
        "--pairs", type=int, dest="n_pairs", help=f"sWUGGY/sBLIMP pairs (default {d.n_pairs})"
    )
    p.add_argument(
        "--story-pairs",
        type=int,
        dest="n_story_pairs",
        help=f"sSC/tSC pairs (default {d.n_story_pairs})",
    )
    p.add_argument("--units", type=int, dest="n_units", help=f"k-means units (default {d.n_units})")
    p.add_argument(
        "--features",
        choices=sorted(QUICKSTART_FEATURES),
        help=f"tokenizer features (default {d.features}; logmel/mfcc: spectral baselines)",
    )
    p.add_argument(
        "--frame-rate", type=float, help=f"unit frame rate, 25 or 50 Hz (default {d.frame_rate:g})"
    )
    p.add_argument(
        "--text-lm",
        help="text LM to warm-start from: HF dir, hub name or .gguf (default SmolLM2-135M)",
    )
    p.add_argument(
        "--layers", type=int, dest="n_layers", help="keep only the first N layers (default: all)"
    )
    p.add_argument(
        "--prompts",
        type=int,
        dest="n_prompts",
        help=f"held-out prompts to continue (default {d.n_prompts})",
    )
    p.add_argument(
        "--no-packaged",
        action="store_true",
        help="fit a tokenizer on the corpus and train a vocoder for it instead of using the "
        "packaged pair (twistlm.packaged)",
    )
    p.add_argument(
        "--train-vocoder",
        action="store_true",
        default=None,
        help="train a vocoder on the corpus's flite:slt speech even where the packaged one fits",
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the training model (default: only when each model trains for 10 "
        "minutes or more; compiling costs about 50 s once and saves about 20%% per step)",
    )
    p.add_argument("--no-topline", action="store_true", help="skip the text-LM topline")
    p.add_argument(
        "--no-asr", action="store_true", help="skip Whisper transcription of continuations"
    )
    p.add_argument("--seed", type=int, help="seed for data, models and sampling (default 0)")
    p.add_argument("--workers", type=int, help="parallel synthesis processes (default 2)")


def config_from_args(args: argparse.Namespace) -> QuickstartConfig:
    fields = {f.name for f in dataclasses.fields(QuickstartConfig)}
    over = {
        k: v
        for k, v in vars(args).items()
        if k in fields and v is not None and k not in ("smoke", "recipe")
    }
    if getattr(args, "no_packaged", False):
        over["packaged"] = False
    if args.no_topline:
        over["topline"] = False
    if args.no_asr:
        over["asr"] = False
    if args.out is None:
        over.pop("out", None)
    recipe = "smoke" if args.smoke else getattr(args, "recipe", "default")
    if args.smoke and getattr(args, "recipe", "default") not in ("default", "smoke"):
        raise SystemExit("--smoke and --recipe long are two different recipes: pick one")
    return RECIPES[recipe](**over)


def run(args: argparse.Namespace) -> int:
    run_quickstart(config_from_args(args))
    return 0
