"""Train a SpeechLM on unit shards: twistlm train CONFIG.yaml [key=value ...] [--resume].

Every config field can be overridden on the command line with dotted keys, e.g.
  twistlm train configs/quickstart.yaml data.train=units/ optim.lr=3e-4 budget.max_steps=2000
  twistlm train configs/quickstart.yaml --resume          # continue from run_dir/checkpoints
  twistlm train --print-config                            # show every field with its default

Multi-process (DDP; runtime.distributed=fsdp for models that do not fit one GPU):
  torchrun --nproc_per_node 8 -m twistlm train cfg.yaml
  accelerate launch --num_processes 8 -m twistlm train cfg.yaml

Outputs in logging.run_dir: config.yaml, metrics.jsonl ({step, tokens, loss, val_loss, lr,
tokens_per_s, elapsed_s}), checkpoints/step-N/, model/ (the trained SpeechLM), result.json,
errors.jsonl (bad inputs that were skipped). See docs/train.md.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config", nargs="?", default=None, help="YAML config (default: built-in defaults)"
    )
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=3e-4")
    p.add_argument(
        "--resume", action="store_true", help="continue from the run dir's last checkpoint"
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    from twistlm.config import dump_yaml, load_config
    from twistlm.train import TrainConfig, train

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config:  # only overrides were given
        config, overrides = None, [config, *overrides]
    if args.resume:
        overrides.append("resume=true")
    cfg = load_config(TrainConfig, config, overrides)
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    result = train(cfg)
    print(
        f"done: {result.steps} steps, {result.tokens} tokens, loss {result.loss}, "
        f"val_loss {result.val_loss}, stopped by {result.stopped_by}; model in {result.model_dir}"
    )
    return 0
