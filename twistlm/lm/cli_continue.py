"""Continue a spoken prompt: PROMPT.wav -> units -> SpeechLM sampling -> vocoder -> OUT.wav.

TWIST's demo in one command. The first --prompt-seconds of the prompt are tokenized, the
SpeechLM samples a unit continuation, the vocoder turns the continuation into audio, and OUT.wav
gets the prompt audio followed by the continuation (--prompt-audio resynth puts the vocoded
prompt there instead, --continuation-only writes the continuation alone). OUT.json beside it
holds the prompt and continuation units and every setting, so a run can be reproduced.

Sampling defaults come from --preset (each equals its reference's generate call):
  twist    3 s prompt, temperature 0.8, top-k 50 (transformers' default), at most
           min(250, 3 x prompt units) units including the prompt  [textlesslib TWIST example]
  slamkit  3 s prompt, temperature 0.8, top-k 25, 150 new units, stop at <S>  [SlamKit]
With --preset twist a model dir's generation_config.json supplies top-k / top-p / repetition
penalty when it sets them (as transformers does for the TWIST example). Options given on the
command line win over both. A continuation that would not fit the model's positions is cut
(with a warning) to what fits.

The tokenizer and vocoder default to the ones recorded in the model's metadata.

examples:
  twistlm continue prompt.wav -o out.wav --model runs/warm/model --vocoder runs/vocoder
  twistlm continue prompt.wav -o out.wav --model M --seconds 6 --temperature 0.7 --top-p 0.95
  twistlm continue prompt.wav -o out.wav --model M --preset slamkit --top-k 0   (top-k off)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from twistlm.lm.components import check_compatible, load_components
from twistlm.lm.continuation import (
    FROM_PRESET,
    Continuation,
    PromptAudio,
    continuation_durations,
    continue_prompt,
    write_continuation,
)
from twistlm.lm.generate import DEFAULT_PRESET, PRESETS

# the library lives in twistlm.lm.continuation and twistlm.lm.components; these names stay
# importable from here (the README names twistlm.lm.cli_continue.continue_prompt)
__all__ = [
    "FROM_PRESET",
    "Continuation",
    "PromptAudio",
    "add_arguments",
    "check_compatible",
    "continuation_durations",
    "continue_prompt",
    "load_components",
    "run",
    "write_continuation",
]


# ---------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", type=Path, help="prompt audio (any format libsndfile reads)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output wav (OUT.json beside)")
    p.add_argument("--model", required=True, help="SpeechLM dir (ours, TWIST or SlamKit)")
    p.add_argument("--tokenizer", help="UnitTokenizer dir (default: from the model's meta)")
    p.add_argument("--vocoder", help="vocoder dir (default: from the model's meta)")
    tw, sk = PRESETS["twist"], PRESETS["slamkit"]
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help=(
            "defaults of the sampling options below, each equal to its reference: twist = "
            f"temperature {tw.temperature:g}, top-k {tw.top_k}, TWIST's length rule (textlesslib "
            f"TWIST example; top-k/top-p/repetition penalty from the model's "
            f"generation_config.json when it sets them); slamkit = temperature {sk.temperature:g}, "
            f"top-k {sk.top_k}, {sk.max_new_units} units, stop at <S> (SlamKit's generate "
            "config). Default %(default)s"
        ),
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument(
        "--seconds",
        type=float,
        help="continuation length in seconds (default: the preset's: TWIST's rule / 150 units)",
    )
    length.add_argument("--max-units", type=int, help="continuation length in units")
    p.add_argument(
        "--prompt-seconds",
        type=float,
        help=f"use the first N s of the prompt; 0 = all (default: the preset's, {tw.prompt_seconds:g})",
    )
    p.add_argument("--temperature", type=float, help="0 = greedy (default: the preset's, 0.8)")
    p.add_argument(
        "--top-k",
        type=int,
        help="sample among the k most likely units; 0 = off (default: the preset's, 50 / 25)",
    )
    p.add_argument(
        "--top-p", type=float, help="nucleus sampling mass in (0, 1]; 1 = off (default: off)"
    )
    p.add_argument("--repetition-penalty", type=float, help="CTRL penalty (>1); default: 1 = off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--prompt-audio",
        choices=["original", "resynth", "none"],
        default="original",
        help="what OUT.wav starts with (default: the original prompt audio)",
    )
    p.add_argument("--continuation-only", action="store_true", help="same as --prompt-audio none")
    p.add_argument(
        "--stop-at-eos",
        action=argparse.BooleanOptionalAction,
        help="end at the model's EOS (ours, SlamKit; TWIST models have none). Default: the "
        "preset's (twist: no, slamkit: yes)",
    )
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU with AMX, CUDA)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")


def run(args: argparse.Namespace) -> int:
    from twistlm.audio import AudioError

    # options left out on the command line (None) take the preset's value
    sampling = {
        k: getattr(args, k)
        for k in ("prompt_seconds", "temperature", "top_k", "top_p", "repetition_penalty")
        if getattr(args, k) is not None
    }
    if args.stop_at_eos is not None:
        sampling["stop_at_eos"] = args.stop_at_eos
    try:
        res = continue_prompt(
            args.prompt,
            args.model,
            args.tokenizer,
            args.vocoder,
            preset=args.preset,
            seconds=args.seconds,
            max_new_units=args.max_units,
            seed=args.seed,
            prompt_audio="none" if args.continuation_only else args.prompt_audio,
            autocast=args.bf16,
            device=args.device,
            out=args.out,
            **sampling,
        )
    except (AudioError, ValueError, FileNotFoundError) as e:
        print(f"error: {args.prompt}: {' '.join(str(e).split())}")
        return 1
    print(
        f"wrote {args.out} ({res.seconds:.2f} s: {res.prompt_samples / res.sample_rate:.2f} s "
        f"prompt + {len(res.units)} units) and {args.out.with_suffix('.json')}"
    )
    return 0
