"""Train a unit vocoder: a reproducible recipe, the acoustic-model vocoder, or CodeHiFiGAN.

  twistlm train-vocoder --recipe slt -o runs/vocoder-slt      # the packaged default (~25 min on 2 CPU cores)
  twistlm train-vocoder --kind acoustic --audio CORPUS --units UNITS -o RUN --voice flite-slt \
      --max-steps 4000
  twistlm train-vocoder --audio CORPUS --units UNITS -o RUN --max-minutes 4   # CodeHiFiGAN
  twistlm train-vocoder --audio CORPUS --units UNITS -o RUN --size full --max-steps 400000 \\
      gan_start_step=0 lr=2e-4 lr_decay=0.9999
  twistlm train-vocoder ... -o RUN --resume --max-steps 2000     # continue the same run

--recipe NAME makes its own single-voice corpus with `twistlm synth`, tokenizes it (the
packaged tokenizer unless --tokenizer is given) and trains the acoustic-model vocoder (units ->
WORLD features -> WORLD; docs/vocoder.md); recipes: slt (the packaged vocoder), smoke (a
one-minute check). --kind acoustic trains that model on your corpus: the utterances of one
voice (--voice, a corpus sub-folder) are learned, and it speaks every input in that voice.

UNITS are the shards `twistlm tokenize` wrote for CORPUS (ids = audio paths relative to
CORPUS, durations in frames at the tokenizer hop). The small size (default) trains mel-only
(no GAN) unless gan_start_step is set: on a CPU and a budget of minutes, mel-only gives the
more intelligible speech (docs/vocoder.md). The exported vocoder is RUN/vocoder
(twistlm resynth / continue --vocoder RUN/vocoder). Any VocoderTrainConfig field can be set
with key=value (see twistlm/vocoder/train.py), or from a YAML file with --config.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from twistlm.vocoder.recipes import RECIPES

    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="; ".join(f"{k}: {r.description}" for k, r in RECIPES.items()),
    )
    p.add_argument(
        "--kind",
        choices=["hifigan", "acoustic"],
        default="hifigan",
        help="without --recipe: CodeHiFiGAN (default) or the acoustic-model vocoder",
    )
    p.add_argument("--tokenizer", help="--recipe: tokenizer dir (default: the packaged one)")
    p.add_argument(
        "--voice", help="--kind acoustic: corpus sub-folder to learn (default: most audio)"
    )
    p.add_argument("--audio", dest="audio_dir", help="corpus root (audio files)")
    p.add_argument("--units", dest="units_dir", help="unit shards of the corpus (twistlm tokenize)")
    p.add_argument("-o", "--out", dest="out_dir", help="run folder")
    p.add_argument(
        "--size", choices=["small", "full", "tiny"], help="generator size (default small)"
    )
    p.add_argument("--max-steps", type=int, help="stop at this global step")
    p.add_argument(
        "--max-minutes", type=float, help="stop after this many minutes (this invocation)"
    )
    p.add_argument("--max-cpu-minutes", type=float, help="stop after this much process CPU time")
    p.add_argument(
        "--gan-start-step", type=int, help="mel-only warmup steps before GAN (-1: never)"
    )
    p.add_argument(
        "--multi-speaker", action="store_true", help="speaker embedding (speaker = parent folder)"
    )
    p.add_argument(
        "--no-duration-predictor", action="store_true", help="train without duration predictor"
    )
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--device", help="auto | cpu | cuda[:N]")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--config", help="YAML file with VocoderTrainConfig fields")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")


def build_config(args: argparse.Namespace):
    from twistlm.config import load_config
    from twistlm.vocoder.train import VocoderTrainConfig

    flags = {
        "audio_dir": args.audio_dir,
        "units_dir": args.units_dir,
        "out_dir": args.out_dir,
        "size": args.size,
        "max_steps": args.max_steps,
        "max_seconds": None if args.max_minutes is None else args.max_minutes * 60,
        "max_cpu_seconds": None if args.max_cpu_minutes is None else args.max_cpu_minutes * 60,
        "gan_start_step": args.gan_start_step,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "device": args.device,
        "threads": args.threads,
        "multi_speaker": True if args.multi_speaker else None,
        "duration_predictor": False if args.no_duration_predictor else None,
    }
    overrides = [f"{k}={v}" for k, v in flags.items() if v is not None] + list(args.overrides)
    if args.config is None:
        # load_config(None) would instantiate the defaults first; start from an empty file instead
        from twistlm.config import apply_overrides, from_dict

        return from_dict(VocoderTrainConfig, apply_overrides({}, overrides))
    return load_config(VocoderTrainConfig, args.config, overrides)


def _run_recipe(args: argparse.Namespace) -> int:
    from twistlm.io import write_json
    from twistlm.vocoder.recipes import run_recipe

    if not args.out_dir:
        print("error: --recipe needs -o RUN")
        return 2
    res = run_recipe(args.recipe, args.out_dir, tokenizer=args.tokenizer, threads=args.threads)
    write_json(f"{args.out_dir}/recipe.json", res)
    print(
        f"recipe {args.recipe}: {res['steps']} steps in {res['seconds']:.0f} s, held-out feature "
        f"L1 {res['val_feature_l1']:.4f}; vocoder: {args.out_dir}/vocoder"
    )
    for name, digest in res["sha256"].items():
        print(f"  sha256 {digest}  {name}")
    return 0


def _run_acoustic(args: argparse.Namespace) -> int:
    from twistlm.vocoder.acoustic_train import AcousticTrainConfig, train_acoustic_vocoder

    if not (args.audio_dir and args.units_dir and args.out_dir):
        print("error: --kind acoustic needs --audio, --units and -o")
        return 2
    kw = {"max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr}
    try:
        cfg = AcousticTrainConfig(
            args.audio_dir,
            args.units_dir,
            args.out_dir,
            voice=args.voice,
            max_seconds=None if args.max_minutes is None else args.max_minutes * 60,
            threads=args.threads,
            **{k: v for k, v in kw.items() if v is not None},
        )
        res = train_acoustic_vocoder(cfg)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}")
        return 2
    print(
        f"{res['steps']} steps in {res['seconds']:.0f} s on voice {res['voice']}; held-out "
        f"feature L1 {res['val_feature_l1']:.4f}; vocoder: {args.out_dir}/vocoder"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    from twistlm.vocoder.train import train_vocoder

    if args.recipe:
        return _run_recipe(args)
    if args.kind == "acoustic":
        return _run_acoustic(args)

    try:
        cfg = build_config(args)
    except (ValueError, TypeError) as e:
        print(f"error: {e}")
        return 2
    try:
        res = train_vocoder(cfg, resume=args.resume)
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}")
        return 2
    val = "-" if res.val_mel_l1 is None else f"{res.val_mel_l1:.4f}"
    print(
        f"step {res.step} in {res.seconds:.0f} s; held-out mel L1 {val} "
        f"({res.n_train} train / {res.n_val} held-out utterances); vocoder: {res.out_dir / 'vocoder'}"
    )
    return 0
