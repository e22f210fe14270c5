"""The quickstart pipeline: one resumable stage after another, each writing its own folder.

Layout of ``cfg.out``::

    corpus/       synthetic training speech (wavs/, manifest.jsonl)        twistlm synth corpus
    tokenizer/    offline tokenizer (Whisper-base encoder + k-means)       twistlm fit-kmeans
    units/        unit shards of the corpus                                twistlm tokenize
    benchmarks/   sWUGGY / sBLIMP / sSC / tSC-style sets, held-out voices  twistlm synth benchmarks
                  (2x candidates, cut so "fewer units wins" sits at chance: needs the tokenizer)
    heldout/      other sentences spoken by every held-out voice (validation, tokenizer report)
    units-heldout/ unit shards of heldout/ (the validation set of both LMs)
    tokenizer-report/ cross-voice consistency of the units                 twistlm tokenizer-report
    runs/warm, runs/cold   training runs (metrics.jsonl, checkpoints/, model/)   twistlm train
    models/warm, models/cold -> the trained SpeechLM dirs (copies of runs/*/model)
    eval/warm, eval/cold   results.json, results.md, submission/           twistlm eval
    controls/     length-only and unit n-gram rules, paired warm - cold differences
    scaling/      (--recipe long) both models scored at earlier budgets: runs/*/snapshots/
    vocoder/      vocoder training run; vocoder/vocoder is the exported model  twistlm train-vocoder
    generation/   continuations of held-out prompts by the warm model, ASR, PPL, auto-BLEU,
                  and the same metrics for the prompts' real speech (resynthesized, original)
    generation-cold/  the cold model's continuations of the same prompts
    cache/units/  units of every benchmark utterance (made while balancing, reused by eval)
    report/       report.md, loss.png, accuracy.png, scaling.png, results.json, samples/*.wav
    stages.json   finished stages with their timings and results (rerun skips them)

The stages live by what they make: :mod:`~twistlm.quickstart.speech` (tokenizer, units,
benchmarks, held-out speech), :mod:`~twistlm.quickstart.training`,
:mod:`~twistlm.quickstart.evaluation` (benchmarks, controls, scaling),
:mod:`~twistlm.quickstart.continuations` (vocoder, continuations) and
:mod:`~twistlm.quickstart.report`; :mod:`~twistlm.quickstart.stages` runs each once.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from twistlm.config import ConfigError, save_config, to_dict
from twistlm.eval.benchmarks import KINDS as BENCH_KINDS
from twistlm.io import read_json
from twistlm.quickstart.config import QuickstartConfig
from twistlm.quickstart.continuations import (
    VOCODER_VOICE,
    continue_heldout_prompts,
    copy_packaged_vocoder,
    train_vocoder,
)
from twistlm.quickstart.evaluation import evaluate_model, run_controls, scaling_study
from twistlm.quickstart.speech import (
    KMEANS_FIT_HOURS,
    copy_packaged_tokenizer,
    fit_tokenizer,
    heldout_speech,
    make_benchmarks,
    tokenize_units,
    tokenizer_report,
)
from twistlm.quickstart.stages import STAGES, Stages, stage_names
from twistlm.quickstart.training import measure_tokens_per_s, train_model, train_warm

# names that lived here before the stages moved to their own modules
__all__ = [
    "BENCH_KINDS",
    "KMEANS_FIT_HOURS",
    "STAGES",
    "VOCODER_VOICE",
    "Stages",
    "check_same_settings",
    "link_components",
    "measure_tokens_per_s",
    "run_quickstart",
    "stage_names",
]


def run_quickstart(cfg: QuickstartConfig) -> dict[str, Any]:
    """Run (or resume) every stage; returns the combined results (also report/results.json)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    check_same_settings(cfg, out / "quickstart.yaml")
    save_config(cfg, out / "quickstart.yaml")
    st = Stages(out, stage_names(cfg))
    t_start = time.time()

    corpus, benches = _speech_stages(cfg, st, out)
    bench_paths = benches["paths"]
    _training_stages(cfg, st, out)
    _evaluation_stages(cfg, st, out, bench_paths)
    _output_stages(cfg, st, out, bench_paths)

    # 11. report
    from twistlm.quickstart.report import write_report

    def _report():
        return write_report(cfg, out, st.seconds(), corpus, benches)

    if st.ran_any:  # a stage ran in this invocation (e.g. one added since): write it again
        st.done.pop("report", None)
    st.run("report", "writing report/", _report)
    combined = read_json(out / "report" / "results.json")
    print(f"\nquickstart finished in {(time.time() - t_start) / 60:.1f} min (this invocation)")
    print((out / "report" / "table.md").read_text())
    print(f"report: {out / 'report' / 'report.md'}")
    return combined


def _speech_stages(
    cfg: QuickstartConfig, st: Stages, out: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stages 1-4: corpus, tokenizer, unit shards, benchmarks, held-out speech and the
    tokenizer report. Returns the corpus and benchmark stage results."""
    from twistlm.synth.corpus import synthesize_corpus

    # 1. speech: training corpus (training voices)
    corpus = st.run(
        "corpus",
        f"synthesizing {cfg.hours:g} h of multi-speaker speech",
        lambda: dataclasses.asdict(
            synthesize_corpus(out / "corpus", hours=cfg.hours, seed=cfg.seed, workers=cfg.workers)
        ),
    )
    # 2-3. tokenizer: features + k-means, then the corpus to unit shards
    tok_dir = out / "tokenizer"
    st.run(
        "tokenizer",
        "the packaged offline tokenizer (Whisper base layer 6, 25 Hz, k=500)"
        if cfg.uses_packaged_tokenizer
        else f"fitting the offline tokenizer ({cfg.features}, k={cfg.n_units})",
        lambda: (
            copy_packaged_tokenizer(tok_dir)
            if cfg.uses_packaged_tokenizer
            else fit_tokenizer(cfg, out / "corpus", tok_dir)
        ),
    )
    st.run(
        "tokenize",
        "tokenizing the corpus into unit shards",
        lambda: tokenize_units(tok_dir, out / "corpus" / "wavs", out / "units"),
    )
    # 4. benchmarks by held-out voices, balanced on the units the models will score
    benches = st.run(
        "benchmarks",
        "synthesizing sWUGGY/sBLIMP/sSC/tSC-style pairs with held-out voices",
        lambda: make_benchmarks(cfg, out, tok_dir),
    )
    st.run(
        "heldout-speech",
        f"synthesizing {cfg.n_heldout_sentences} other sentences with every held-out voice",
        lambda: heldout_speech(cfg, out),
    )
    st.run(
        "tokenizer-report",
        "held-out voices: validation units and the tokenizer's cross-voice consistency",
        lambda: tokenizer_report(out, tok_dir),
    )
    return corpus, benches


def _training_stages(cfg: QuickstartConfig, st: Stages, out: Path) -> None:
    """Stages 5-6: warm and cold SpeechLMs, identical architecture, data order and token budget."""
    units = out / "units"
    warm = st.run(
        "train-warm",
        f"training the warm-started SpeechLM (~{cfg.train_seconds_per_model / 60:.1f} min)",
        lambda: train_warm(cfg, units, out),
    )
    st.run(
        "train-cold",
        f"training the cold-started twin for the same {warm['steps']} steps",
        lambda: train_model(cfg, "cold", units, out, warm["steps"], warm["planned_steps"], None),
    )


def _evaluation_stages(
    cfg: QuickstartConfig, st: Stages, out: Path, bench_paths: dict[str, str]
) -> None:
    """Stages 7-8: likelihood benchmarks (+ the text topline once), controls, scaling study."""
    tok_dir, units = out / "tokenizer", out / "units"
    for start in ("warm", "cold"):
        st.run(
            f"eval-{start}",
            f"scoring the benchmarks with the {start} model",
            lambda start=start: evaluate_model(
                cfg,
                out,
                start,
                bench_paths,
                tok_dir,
                topline=cfg.topline and start == "warm",
                controls_train=units if start == "warm" else None,
            ),
        )

    st.run(
        "controls",
        "controls on the same pairs (length only, unit 3-gram) and paired warm - cold differences",
        lambda: run_controls(out),
    )

    if cfg.scaling_points:
        st.run(
            "scaling",
            f"scoring both models at {cfg.scaling_points - 1} earlier budgets",
            lambda: scaling_study(cfg, out, bench_paths, tok_dir),
        )


def _output_stages(
    cfg: QuickstartConfig, st: Stages, out: Path, bench_paths: dict[str, str]
) -> None:
    """Stages 9-10: the vocoder, then spoken continuations by each model."""
    tok_dir = out / "tokenizer"
    # 9. vocoder
    st.run(
        "vocoder",
        "the packaged vocoder (units -> WORLD features -> WORLD, voice flite:slt)"
        if cfg.uses_packaged_vocoder
        else f"training a unit vocoder on the corpus's flite:slt speech "
        f"(~{cfg.vocoder_seconds / 60:.1f} min)",
        lambda: (
            copy_packaged_vocoder(out)
            if cfg.uses_packaged_vocoder
            else train_vocoder(cfg, out, out / "units")
        ),
    )

    # the trained models name their tokenizer and vocoder, so `twistlm continue --model
    # quickstart/models/warm` and `twistlm eval` need no extra flags
    for start in ("warm", "cold"):
        link_components(out / "models" / start, tok_dir, out / "vocoder" / "vocoder")

    # 10. spoken continuations of held-out prompts + generation metrics (warm, then cold)
    st.run(
        "generation",
        f"continuing {cfg.n_prompts} held-out spoken prompts with the warm model",
        lambda: continue_heldout_prompts(cfg, out, bench_paths, tok_dir, "warm"),
    )
    st.run(
        "generation-cold",
        f"continuing the same {cfg.n_prompts} prompts with the cold model",
        lambda: continue_heldout_prompts(cfg, out, bench_paths, tok_dir, "cold"),
    )


def check_same_settings(cfg: QuickstartConfig, path: Path) -> None:
    """A rerun resumes only with the settings the folder was made with (stages are skipped)."""
    import yaml

    if not path.exists():
        return
    old = yaml.safe_load(path.read_text()) or {}
    new = to_dict(cfg)
    diff = sorted(k for k in new if k in old and old[k] != new[k])
    if diff:
        changes = ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in diff)
        raise ConfigError(
            f"{path.parent} was made with other settings ({changes}); "
            "rerun with the same options to resume, or use a new --out"
        )


def link_components(model_dir: Path, tok_dir: Path, vocoder_dir: Path) -> None:
    """Record the tokenizer and vocoder dirs in a SpeechLM dir's metadata (paths relative to
    the model dir, :mod:`twistlm.lm.components`), atomically."""
    from twistlm.lm.components import record_components
    from twistlm.lm.model import read_metadata, update_metadata

    meta = record_components(
        dict(read_metadata(model_dir).get("meta", {})), model_dir, tok_dir, vocoder_dir
    )
    update_metadata(model_dir, {k: meta[k] for k in ("tokenizer", "vocoder")})
