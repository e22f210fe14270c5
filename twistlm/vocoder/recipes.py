"""Reproducible vocoder recipes: ``twistlm train-vocoder --recipe NAME -o RUN``.

A recipe fixes everything a vocoder depends on: the voice and amount of speech (made offline by
`twistlm synth`), the text seed, the tokenizer (the packaged default unless another is given),
the acoustic model and its training steps, and the training seed. Running it writes

    RUN/corpus/   the vocoder voice's corpus (twistlm synth corpus)
    RUN/units/    its unit shards (twistlm tokenize)
    RUN/parallel/VOICE/  other voices reading the same text, with their unit shards
    RUN/          metrics.jsonl, result.json, features.safetensors (cache)
    RUN/vocoder/  the vocoder (acoustic.json + acoustic.safetensors), loadable by load_vocoder

Every step resumes: a rerun skips the speech and shards already made and reuses the feature
cache. The packaged vocoder (twistlm.packaged) is the output of the ``slt`` recipe. Bitwise
reproduction needs the same CPU kind: the Whisper encoder runs in int8, whose kernels differ
between AVX2 and AMX CPUs, and units can differ where a frame lies near two centroids.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class VocoderRecipe:
    """One recipe.

    Attributes:
        voice: the TTS voice the vocoder speaks in (``twistlm synth voices``).
        hours / text_seed: speech synthesized for it, and the seed of its text.
        parallel_voices / parallel_hours: other voices reading the first ``parallel_hours``
            of the same text (same seed): their units are learned with the voice's features
            time-warped onto them (twistlm.vocoder.parallel), so the vocoder knows how other
            voices' units sound in its voice.
        target / dim / unit_layers / layers: the acoustic model (AcousticConfig).
        max_steps / batch_size / lr / seed: training (AcousticTrainConfig).
        description: one line for ``--help``.
    """

    voice: str
    hours: float
    text_seed: int
    parallel_voices: tuple[str, ...]
    parallel_hours: float
    target: str
    dim: int
    unit_encoder: str
    unit_layers: int
    layers: int
    max_steps: int
    batch_size: int
    lr: float
    seed: int
    description: str


RECIPES: dict[str, VocoderRecipe] = {
    "slt": VocoderRecipe(
        voice="flite:slt",
        hours=2.0,
        text_seed=1,
        parallel_voices=(),
        parallel_hours=0.0,
        target="world",
        dim=256,
        unit_encoder="conv",
        unit_layers=3,
        layers=6,
        max_steps=2000,
        batch_size=8,
        lr=1e-3,
        seed=0,
        description="the packaged default: 2 h of flite:slt, WORLD target, 2000 steps",
    ),
    "slt-parallel": VocoderRecipe(
        voice="flite:slt",
        hours=2.0,
        text_seed=1,
        parallel_voices=(
            "flite:awb",
            "flite:rms",
            "festival:ked_diphone",
            "espeak-ng:us-m3",
            "espeak-ng:gb-m1",
        ),
        parallel_hours=1.0,
        target="world",
        dim=256,
        unit_encoder="transformer",
        unit_layers=4,
        layers=4,
        max_steps=2000,
        batch_size=8,
        lr=1e-3,
        seed=0,
        description="slt + 1 h each of 5 other voices reading the same text (their units "
        "learned with slt's time-warped features), transformer over units; measured worse "
        "than slt on held-out voices (docs/vocoder.md)",
    ),
    "smoke": VocoderRecipe(
        voice="flite:slt",
        hours=0.02,
        text_seed=1,
        parallel_voices=("flite:awb",),
        parallel_hours=0.01,
        target="world",
        dim=32,
        unit_encoder="transformer",
        unit_layers=1,
        layers=1,
        max_steps=20,
        batch_size=4,
        lr=1e-3,
        seed=0,
        description="a one-minute check of the whole recipe, parallel voices included "
        "(not a usable vocoder)",
    ),
}


def run_recipe(
    name: str,
    out: str | Path,
    tokenizer: str | Path | None = None,
    threads: int | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """Run recipe ``name`` into ``out`` (see the module docstring); returns the training
    result plus the sha256 of each vocoder file."""
    from twistlm.loaders import sha256_file
    from twistlm.synth.corpus import synthesize_corpus
    from twistlm.tokenizer.corpus import tokenize_corpus
    from twistlm.vocoder.acoustic_train import AcousticTrainConfig, train_acoustic_vocoder

    if name not in RECIPES:
        raise ValueError(f"unknown vocoder recipe {name!r}; known: {sorted(RECIPES)}")
    r = RECIPES[name]
    out = Path(out)
    if tokenizer is None:
        from twistlm.packaged import packaged_tokenizer_dir

        tokenizer = packaged_tokenizer_dir()
    corpus = out / "corpus"
    if not (corpus / "corpus.json").exists():
        synthesize_corpus(
            corpus, hours=r.hours, voices=[r.voice], seed=r.text_seed, workers=workers
        )
    tokenize_corpus(str(tokenizer), corpus / "wavs", out / "units")
    parallel = []
    for v in r.parallel_voices:
        d = out / "parallel" / v.replace(":", "-")
        if not (d / "corpus.json").exists():
            synthesize_corpus(
                d, hours=r.parallel_hours, voices=[v], seed=r.text_seed, workers=workers
            )
        tokenize_corpus(str(tokenizer), d / "wavs", d / "units")
        parallel.append(str(d))
    cfg = AcousticTrainConfig(
        audio_dir=str(corpus / "wavs"),
        units_dir=str(out / "units"),
        out_dir=str(out),
        voice=r.voice.replace(":", "-"),
        target=r.target,
        dim=r.dim,
        unit_encoder=r.unit_encoder,
        unit_layers=r.unit_layers,
        layers=r.layers,
        batch_size=r.batch_size,
        lr=r.lr,
        max_steps=r.max_steps,
        seed=r.seed,
        threads=threads,
        parallel=tuple(parallel),
        tokenizer=str(tokenizer) if parallel else None,
    )
    res = train_acoustic_vocoder(cfg)
    files = sorted(p for p in (out / "vocoder").iterdir() if p.is_file())
    return res | {
        "recipe": name,
        "recipe_config": dataclasses.asdict(r),
        "sha256": {p.name: sha256_file(p) for p in files},
    }
