"""The `twistlm` command: a thin dispatcher over the library.

Each subcommand lives in its stage's ``cli`` module as two plain functions:
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only for the
subcommand being run, so ``twistlm --help`` stays fast and optional dependencies stay optional.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). The module provides add_arguments(parser) and run(args).
COMMANDS: dict[str, tuple[str, str]] = {
    "tokenize": ("twistlm.tokenizer.cli_tokenize", "tokenize audio files into Parquet unit shards"),
    "fit-kmeans": (
        "twistlm.tokenizer.cli_kmeans",
        "fit k-means centroids and save a UnitTokenizer",
    ),
    "tokenizer-report": (
        "twistlm.tokenizer.cli_report",
        "compare tokenizers: units/s, codebook use, cross-voice consistency",
    ),
    "import-kmeans": (
        "twistlm.tokenizer.cli_import",
        "convert a textlesslib/sklearn k-means pickle (opt-in)",
    ),
    "import-hubert": (
        "twistlm.tokenizer.cli_import_hubert",
        "convert a fairseq HuBERT .pt to a HF HubertModel dir",
    ),
    "synth": ("twistlm.synth.cli", "synthesize an offline spoken corpus or spoken benchmarks"),
    "init-lm": ("twistlm.lm.cli", "build a warm- or cold-started SpeechLM from a text LM"),
    "train": ("twistlm.train.cli", "train a SpeechLM on unit shards (CONFIG.yaml key=value ...)"),
    "eval": ("twistlm.eval.cli", "evaluate a SpeechLM on sWUGGY / sBLIMP / sSC / tSC / generation"),
    "continue": (
        "twistlm.lm.cli_continue",
        "continue a spoken prompt (wav -> units -> LM -> vocoder -> wav)",
    ),
    "train-vocoder": (
        "twistlm.vocoder.cli_train",
        "train a unit HiFi-GAN vocoder with duration predictor",
    ),
    "resynth": ("twistlm.vocoder.cli_resynth", "resynthesize audio through tokenizer + vocoder"),
    "quickstart": ("twistlm.quickstart", "offline end-to-end TWIST in miniature: warm vs cold"),
    "demo": ("twistlm.demo.cli", "local web demo: continue, compare, resynthesize"),
}


def _top_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="twistlm",
        description="TWIST speech language models end to end. Run `twistlm COMMAND --help`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {n:<14} {h}" for n, (_, h) in COMMANDS.items()),
    )
    p.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    p.add_argument("--version", action="version", version=_version())
    return p


def _version() -> str:
    from twistlm import __version__

    return f"twistlm {__version__}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    if argv[0].startswith("-"):
        top.parse_args(argv)  # --version, or an error message
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.error(f"unknown command {name!r}")
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"twistlm {name}",
        description=(module.__doc__ or help_text).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
