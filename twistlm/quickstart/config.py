"""Settings of the offline quickstart (TWIST in miniature)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from twistlm.config import ConfigError

# quickstart tokenizer option -> (feature extractor, its keyword arguments)
QUICKSTART_FEATURES: dict[str, tuple[str, dict]] = {
    "whisper-base": ("whisper", {"model": "base"}),
    "whisper-tiny.en": ("whisper", {"model": "tiny.en"}),
    "logmel": ("logmel", {}),
    "mfcc": ("mfcc", {}),
}


# Auto-compile threshold (seconds of training per model): about twice the measured break-even.
COMPILE_MIN_SECONDS = 600.0


@dataclass(frozen=True)
class QuickstartConfig:
    """One quickstart run.

    Attributes:
        out: output folder (every stage writes a subfolder; rerunning resumes).
        minutes: wall-clock target for the whole run; scales the training and vocoder budgets.
        hours: hours of training speech to synthesize (training voices).
        n_pairs: pairs per short benchmark (sWUGGY, sBLIMP).
        n_story_pairs: pairs per StoryCloze-style benchmark (sSC, tSC; long utterances).
        n_units: k-means units of the offline tokenizer.
        features / frame_rate: the offline tokenizer's features, at this frame rate:
            ``whisper-base`` (default: Whisper base's encoder, packaged offline; measured the most
            speaker-independent offline option, docs/tokenizer.md), ``whisper-tiny.en``, or the
            spectral baselines ``logmel`` / ``mfcc`` (they encode the voice, not the words).
        text_lm: text LM to warm-start from (HF dir, hub name, .gguf); None = SmolLM2-135M.
        n_layers: keep the first N layers (None = full depth, the default).
        block_size / batch_size / lr: training blocks, blocks per step, peak learning rate.
        init / init_scale / out_init: warm-start initialisation of the unit rows (see
            twistlm.lm.warm_start). Default: random rows + untied zero output layer, the
            measured winner (docs/lm.md: leads cold from the first evaluation).
        train_share: fraction of ``minutes`` given to LM training (split between warm and cold).
        packaged: use the tokenizer + vocoder pair shipped with twistlm (twistlm.packaged)
            when the tokenizer settings are its own (``whisper-base``, 25 Hz, k=500; the
            default); otherwise (or with ``packaged=False``) fit a tokenizer on the corpus and
            train a vocoder for it.
        train_vocoder: train a vocoder on the corpus even when the packaged one fits.
        vocoder_share: fraction of ``minutes`` given to vocoder training (when one is trained).
        eval_points: validation evaluations per training run (for the loss-vs-tokens figure).
        scaling_points: budgets of the scaling study (0 = none, the default; ``--recipe long``
            uses 4): both models are also saved and scored at 1/2, 1/4, ... of the planned
            steps of one cosine run, beside the final models (see :func:`budget_steps`).
        n_prompts: held-out spoken prompts continued with the warm model.
        n_heldout_sentences: sentences (not in the training text) spoken by every held-out voice:
            the validation set of the loss curves and the tokenizer's cross-voice report.
        topline: also score the pair texts with the text LM.
        asr: transcribe continuations and resyntheses with Whisper tiny.en (if installed).
        compile: ``torch.compile`` the training model: True, False, or None (the default) for
            auto: compile when each model trains for at least ``COMPILE_MIN_SECONDS`` and a C
            compiler is found. Measured on the 2-core AMX Xeon at full depth (docs/train.md):
            compiling costs about 50 s once and makes a step about 20% faster, so it pays off
            after about 4 minutes of training; the default 20-minute run trains each model 3.5.
        workers: parallel synthesis processes.
        seed: one seed for data, models and sampling.
        smoke: tiny settings for a first look (under 3 minutes); see :func:`smoke_config`.
    """

    out: str = "quickstart"
    minutes: float = 20.0
    hours: float = 1.0
    n_pairs: int = 1000
    n_story_pairs: int = 60
    n_units: int = 500
    features: str = "whisper-base"
    frame_rate: float = 25.0
    text_lm: str | None = None
    n_layers: int | None = None
    block_size: int = 512
    batch_size: int = 4
    lr: float = 5e-4
    init: str = "random"
    init_scale: float = 0.1
    out_init: str = "zero"
    train_share: float = 0.35
    packaged: bool = True
    train_vocoder: bool = False
    vocoder_share: float = 0.1
    eval_points: int = 8
    scaling_points: int = 0
    n_prompts: int = 10
    n_heldout_sentences: int = 60
    topline: bool = True
    asr: bool = True
    compile: bool | None = None
    workers: int = 2
    seed: int = 0
    smoke: bool = False

    def __post_init__(self) -> None:
        if self.minutes <= 0 or self.hours <= 0:
            raise ConfigError("minutes and hours must be > 0")
        if not 0 < self.train_share + self.vocoder_share < 1:
            raise ConfigError("train_share + vocoder_share must be in (0, 1)")
        if self.n_heldout_sentences < 2:
            raise ConfigError("n_heldout_sentences must be >= 2")
        if self.n_pairs < 1 or self.n_story_pairs < 1 or self.n_prompts < 0:
            raise ConfigError("n_pairs, n_story_pairs must be >= 1 and n_prompts >= 0")
        if not 0 <= self.scaling_points <= 6:
            raise ConfigError(f"scaling_points must be in 0..6, got {self.scaling_points}")
        if self.features not in QUICKSTART_FEATURES:
            raise ConfigError(
                f"features must be one of {sorted(QUICKSTART_FEATURES)}, got {self.features!r}"
            )

    @property
    def uses_packaged_tokenizer(self) -> bool:
        """The packaged tokenizer serves this run (settings equal to its own)."""
        return (
            self.packaged
            and self.features == "whisper-base"
            and self.frame_rate == 25.0
            and self.n_units == 500
        )

    @property
    def uses_packaged_vocoder(self) -> bool:
        return self.uses_packaged_tokenizer and not self.train_vocoder

    def uses_compile(self) -> bool:
        """Whether training compiles the model (see ``compile``)."""
        if self.compile is not None:
            return self.compile
        import shutil

        have_cc = any(shutil.which(c) for c in ("cc", "gcc", "clang", "g++"))
        return have_cc and self.train_seconds_per_model >= COMPILE_MIN_SECONDS

    # ---- derived budgets (computed, never stored) ----
    @property
    def train_seconds_per_model(self) -> float:
        return self.minutes * 60 * self.train_share / 2

    @property
    def vocoder_seconds(self) -> float:
        return self.minutes * 60 * self.vocoder_share

    def planned_steps(self, tokens_per_s: float, warmup_s: float = 0.0) -> int:
        """Optimizer steps one model reaches in its time budget at ``tokens_per_s`` after a
        ``warmup_s`` start-up (at most half the budget is given to it)."""
        seconds = max(self.train_seconds_per_model - warmup_s, self.train_seconds_per_model / 2)
        tokens = seconds * tokens_per_s
        return max(4, int(tokens // (self.block_size * self.batch_size)))


def budget_steps(planned: int, points: int) -> tuple[int, ...]:
    """Steps of the scaling study's earlier budgets: ``planned / 2**k`` for k = points-1 .. 1.

    The last budget is the full run (the final model), so it is not listed. Budgets are
    checkpoints of one cosine run over ``planned`` steps, not separately annealed runs.
    """
    steps = {max(1, round(planned / 2**k)) for k in range(1, max(points, 1))}
    return tuple(sorted(s for s in steps if s < planned))


def smoke_config(out: str = "quickstart-smoke", **overrides) -> QuickstartConfig:
    """Tiny settings that run every stage in under 3 minutes on 2 CPU cores."""
    base = QuickstartConfig(
        out=out,
        minutes=2.0,
        hours=0.04,
        n_pairs=24,
        n_story_pairs=12,
        n_units=64,
        n_layers=2,
        block_size=128,
        batch_size=4,
        lr=1e-3,
        train_share=0.3,
        vocoder_share=0.1,
        eval_points=4,
        n_prompts=1,
        n_heldout_sentences=8,
        smoke=True,
    )
    return dataclasses.replace(base, **overrides)


def long_config(out: str = "quickstart-long", **overrides) -> QuickstartConfig:
    """The scaling study (``twistlm quickstart --recipe long``): 70-90 minutes on 2 CPU cores
    (measured 90 minutes with other jobs beside it for ~15 of them).

    5 h of speech, the full-depth text LM as in the default, 1000 sWUGGY/sBLIMP pairs and 100
    story pairs, 17.5 minutes of training per model (about 5x the default's tokens), and warm
    and cold scored at 4 budgets (1/8, 1/4, 1/2 and all of the run's tokens).
    """
    base = QuickstartConfig(
        out=out,
        minutes=70.0,
        hours=5.0,
        n_pairs=1000,
        n_story_pairs=100,
        train_share=0.5,
        vocoder_share=0.02,
        eval_points=16,
        scaling_points=4,
    )
    return dataclasses.replace(base, **overrides)


RECIPES = {"default": QuickstartConfig, "smoke": smoke_config, "long": long_config}
