"""The quickstart's speech-output stages: the vocoder (packaged or trained on the corpus) and
spoken continuations of held-out prompts by each model, with their generation metrics."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from twistlm.quickstart.config import QuickstartConfig


def copy_packaged_vocoder(out: Path) -> dict[str, Any]:
    from twistlm.packaged import packaged_vocoder_dir

    dst = out / "vocoder" / "vocoder"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(packaged_vocoder_dir(), dst)
    return {"vocoder_dir": str(dst), "packaged": True}


# the corpus voice a vocoder trained by the quickstart speaks in (a training voice)
VOCODER_VOICE = "flite-slt"


def train_vocoder(cfg: QuickstartConfig, out: Path, units: Path) -> dict[str, Any]:
    """An acoustic-model vocoder (WORLD target) on the corpus's flite:slt utterances, for
    ``cfg.vocoder_seconds`` (the step count that fills it is estimated at 1 step/s)."""
    from twistlm.vocoder.acoustic_train import AcousticTrainConfig, train_acoustic_vocoder

    small = dict(dim=64, unit_layers=1, layers=2) if cfg.smoke else {}
    vcfg = AcousticTrainConfig(
        audio_dir=str(out / "corpus" / "wavs"),
        units_dir=str(units),
        out_dir=str(out / "vocoder"),
        voice=VOCODER_VOICE,
        max_steps=max(20, int(cfg.vocoder_seconds)),
        max_seconds=cfg.vocoder_seconds,
        seed=cfg.seed,
        **small,
    )
    res = train_acoustic_vocoder(vcfg)
    return {
        "vocoder_dir": str(out / "vocoder" / "vocoder"),
        "packaged": False,
        "steps": res["steps"],
        "seconds": res["seconds"],
        "val_feature_l1": res["val_feature_l1"],
    }


def heldout_prompts(bench_paths: dict[str, str], n: int) -> list:
    """Held-out prompts: the first ``n`` true-ending passages of the tSC-style set (held-out voices)."""
    from twistlm.eval.readers import read_benchmark

    kind = "tsc" if "tsc" in bench_paths else next(iter(bench_paths))
    pairs = read_benchmark(kind, bench_paths[kind])
    return [p.positive for p in pairs[:n]]


def continue_heldout_prompts(
    cfg: QuickstartConfig, out: Path, bench_paths: dict[str, str], tok_dir: Path, start: str
) -> dict[str, Any]:
    """Continue the held-out prompts with model ``start``; the warm run also measures the
    prompts' real speech (resynthesis WER, and its transcripts' text metrics)."""
    from twistlm.eval.generation import evaluate_generation
    from twistlm.eval.readers import read_benchmark

    prompts = heldout_prompts(bench_paths, cfg.n_prompts)
    kind = "tsc" if "tsc" in bench_paths else next(iter(bench_paths))
    refs = {
        p.positive.key: p.positive_text
        for p in read_benchmark(kind, bench_paths[kind])[: cfg.n_prompts]
        if p.positive_text
    }
    asr = None
    if not cfg.asr:
        asr = _no_asr
    res = evaluate_generation(
        str(out / "models" / start),
        str(tok_dir),
        str(out / "vocoder" / "vocoder"),
        prompts,
        out_dir=out / ("generation" if start == "warm" else f"generation-{start}"),
        seed=cfg.seed,
        asr_model=asr,
        text_lm=cfg.text_lm,
        references=refs,
        n_samples=cfg.n_prompts,
        score="continuation",
        resynth=cfg.asr and start == "warm",  # resynthesis needs transcripts; once
    )
    return res.to_dict() | {"records": None}


def _no_asr(wav) -> str:  # ASR switched off: empty transcripts (metrics then read None)
    return ""
