"""Continue spoken prompts: prompt audio -> units -> SpeechLM sampling -> durations -> vocoder.

One implementation for every caller: ``twistlm continue`` and the demo (:func:`continue_prompt`,
a batch of one) and the generation metrics (:func:`sample_continuations` per chunk of prompts,
then :func:`finish_continuation` per prompt). The steps:

1. :func:`encode_prompt`: the first ``prompt_seconds`` of the audio -> (P,) units, durations.
2. :func:`continuation_budget`: how many units to sample (seconds -> units by
   :func:`continuation_units` (through ``generation_presets.units_for_seconds``, the one place
   that converts); a fixed count; the preset's; or
   TWIST's rule), cut to the model's positions.
3. :func:`sample_continuations`: one seeded ``generate_units`` call for the batch (prompt ``i``
   samples from its own RNG, so a batch equals its prompts one by one).
4. :func:`finish_continuation`: durations (:func:`continuation_durations`), vocoding, the
   prompt audio in front, settings.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from twistlm.audio import SAMPLE_RATE
from twistlm.lm.components import tokenizer_info
from twistlm.lm.generate import (
    DEFAULT_PRESET,
    generate_units,
    generation_settings,
    twist_max_new_units,
)
from twistlm.lm.generation_presets import units_for_seconds


class _FromPreset:
    """Default of :func:`continue_prompt`'s sampling arguments: take the preset's value (or the
    checkpoint's generation_config.json). An explicit None keeps meaning off / all."""

    def __repr__(self) -> str:
        return "FROM_PRESET"


FROM_PRESET: Any = _FromPreset()

PromptAudio = Literal["original", "resynth", "none"]
PROMPT_AUDIO = ("original", "resynth", "none")


@dataclass
class Continuation:
    """Result of :func:`continue_prompt` / :func:`finish_continuation`.

    Attributes:
        wav: (T,) float32 at ``sample_rate``: prompt part (``prompt_samples`` samples) then the
            continuation, scaled down together when its peak exceeds 1.
        prompt_units, prompt_durations: (P,) units of the prompt and frames per unit.
        units: (N,) continuation units; ``durations``: (N,) frames per unit used to vocode it.
        settings: every option used (JSON-safe), including how durations were obtained.
        continuation_wav: (sum(durations) * hop,) the vocoded continuation as the vocoder made
            it (not scaled with the prompt part).
    """

    wav: np.ndarray
    sample_rate: int
    prompt_samples: int
    prompt_units: Tensor
    prompt_durations: Tensor
    units: Tensor
    durations: Tensor
    settings: dict[str, Any] = field(default_factory=dict)
    continuation_wav: np.ndarray | None = field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        return len(self.wav) / self.sample_rate

    def to_json(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate,
            "seconds": round(self.seconds, 4),
            "prompt_samples": self.prompt_samples,
            "continuation_seconds": round(
                (len(self.wav) - self.prompt_samples) / self.sample_rate, 4
            ),
            "prompt_units": self.prompt_units.tolist(),
            "prompt_durations": self.prompt_durations.tolist(),
            "continuation_units": self.units.tolist(),
            "continuation_durations": self.durations.tolist(),
            "settings": self.settings,
        }


def write_continuation(result: Continuation, out: str | Path) -> tuple[Path, Path]:
    """Write OUT.wav and OUT.json (both atomic). Returns their paths."""
    from twistlm.audio import write_wav
    from twistlm.io import write_json

    out = Path(out)
    json_path = out.with_suffix(".json")
    write_wav(out, result.wav, result.sample_rate)
    write_json(json_path, result.to_json())
    return out, json_path


# ---------------------------------------------------------------------------- the prompt
@dataclass
class EncodedPrompt:
    """A prompt's head and its units.

    Attributes:
        wav: (T,) float32 16 kHz: the whole prompt audio.
        head: (H,) its first ``prompt_seconds`` (all of it when not cut): what was tokenized.
        units, durations: (P,) units of ``head`` and frames per unit.
        source: the prompt file, or ``<array>``.
    """

    wav: np.ndarray
    head: np.ndarray
    units: Tensor
    durations: Tensor
    source: str = "<array>"

    @property
    def seconds(self) -> float:  # of audio tokenized (the head)
        return len(self.head) / SAMPLE_RATE

    @property
    def units_per_second(self) -> float:
        return len(self.units) / self.seconds


def encode_prompt(
    wav: np.ndarray,
    tokenizer: Any,
    prompt_seconds: float | None = None,
    source: str = "<array>",
    what: str = "the prompt",
) -> EncodedPrompt:
    """Tokenize the first ``prompt_seconds`` (None or 0: all) of a (T,) 16 kHz waveform.

    Raises:
        AudioError: the audio (or its head) is empty, too short, silent or not finite.
        ValueError: the head produced no units.
    """
    from twistlm.audio import check_waveform

    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    check_waveform(wav, what=what)
    head = wav
    if prompt_seconds:
        head = wav[: int(round(prompt_seconds * SAMPLE_RATE))]
        check_waveform(head, what=f"first {prompt_seconds} s of {what}")
    enc = tokenizer.encode(torch.from_numpy(head))
    units = torch.as_tensor(enc.units).long().reshape(-1)
    if len(units) == 0:
        raise ValueError(f"{what} produced no units")
    durations = torch.as_tensor(enc.durations).long().reshape(-1)
    return EncodedPrompt(wav, head, units, durations, source)


# ---------------------------------------------------------------------------- length
def continuation_units(seconds: float, n_prompt_units: int, prompt_seconds: float) -> int:
    """Continuation length in units for ``seconds`` of speech, at the prompt's own rate
    (``n_prompt_units / prompt_seconds`` units per second: deduplicated units vary per
    speaker); at least 1."""
    return units_for_seconds(seconds, n_prompt_units / prompt_seconds)


def continuation_budget(
    lm: Any,
    prompt: EncodedPrompt,
    gen: dict[str, Any],
    seconds: float | None = None,
    max_new_units: int | None = None,
) -> tuple[int, str]:
    """(units to sample, the rule that set it) for one prompt.

    The first that applies: ``seconds`` (:func:`continuation_units`), ``max_new_units``, the
    preset's fixed count (``gen["max_new_units"]``), TWIST's rule (min(250, 3 x P) - P). Cut,
    with a warning, to what fits the model's positions.
    """
    if seconds is not None and max_new_units is not None:
        raise ValueError("give seconds or max_new_units, not both")
    n_prompt = len(prompt.units)
    if seconds is not None:
        budget = continuation_units(seconds, n_prompt, prompt.seconds)
        rule = f"{seconds} s at the prompt's {prompt.units_per_second:.2f} units/s"
    elif max_new_units is not None:
        budget, rule = int(max_new_units), f"{max_new_units} units"
    elif gen.get("max_new_units") is not None:
        budget = int(gen["max_new_units"])
        rule = f"{gen['preset']}: {budget} units"
    else:
        budget = twist_max_new_units(n_prompt)
        rule = "TWIST: min(250, 3 x prompt units) including the prompt"
    max_pos = getattr(lm, "max_positions", None)
    n_prefix = len(lm.vocab.prefix())
    if max_pos and n_prefix + n_prompt + budget > max_pos:
        new_budget = max(max_pos - n_prefix - n_prompt, 0)
        warnings.warn(
            f"the model allows {max_pos} positions: continuation cut from {budget} to "
            f"{new_budget} units",
            stacklevel=3,
        )
        budget = new_budget
    return budget, rule


# ---------------------------------------------------------------------------- durations
def continuation_durations(
    vocoder: Any, tokenizer: Any, units: Tensor, prompt_durations: Tensor
) -> tuple[Tensor, str]:
    """Frames per continuation unit and how they were obtained.

    With a duration predictor: predicted (TWIST's setup). Without one, frame-level units get 1
    each; deduplicated units get the prompt's mean duration (a labelled fallback).
    """
    if len(units) == 0:
        return torch.zeros(0, dtype=torch.long), "none"
    if vocoder.has_duration_predictor:
        return vocoder.predict_durations(units), "predicted"
    dedups = tokenizer_info(tokenizer).get("dedup", getattr(tokenizer, "dedup", True))
    if not dedups:
        return torch.ones_like(units), "frame-level"
    mean = float(prompt_durations.float().mean()) if len(prompt_durations) else 1.0
    d = max(int(round(mean)), 1)
    warnings.warn(
        "the vocoder has no duration predictor and the units are deduplicated: using the "
        f"prompt's mean duration ({d} frames) for every continuation unit",
        stacklevel=2,
    )
    return torch.full_like(units, d), f"prompt mean ({d} frames; no duration predictor)"


# ---------------------------------------------------------------------------- the batch
def sampling_settings(preset: str, lm: Any, **given: Any) -> dict[str, Any]:
    """``generation_settings`` for ``lm`` (its dir's generation_config.json is read); arguments
    left at :data:`FROM_PRESET` take the preset's / checkpoint's value."""
    for key in ("temperature", "repetition_penalty", "stop_at_eos"):
        if key in given and given[key] is None:
            raise ValueError(f"{key} must be a value (leave it out for the preset's)")
    return generation_settings(
        preset,
        (getattr(lm, "meta", None) or {}).get("path"),
        **{k: v for k, v in given.items() if v is not FROM_PRESET},
    )


def sample_continuations(
    lm: Any,
    prompts: Sequence[EncodedPrompt],
    gen: dict[str, Any],
    *,
    seconds: float | None = None,
    max_new_units: int | None = None,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    batch_size: int = 8,
    autocast: bool = False,
) -> tuple[list[Tensor], list[tuple[int, str]]]:
    """Sample a unit continuation of each prompt in one ``generate_units`` call.

    Args:
        gen: the sampling settings (``generation_settings`` / :func:`sampling_settings`).
        indices: RNG index of each prompt (default 0..B-1): prompt i samples from
            ``prompt_generator(seed, indices[i])`` whatever the batch.

    Returns:
        (one (N_i,) unit tensor per prompt, one (budget, length rule) per prompt).
    """
    budgets = [continuation_budget(lm, p, gen, seconds, max_new_units) for p in prompts]
    units = generate_units(
        lm,
        [p.units for p in prompts],
        max_new_units=[b for b, _ in budgets],
        temperature=gen["temperature"],
        top_k=gen["top_k"],
        top_p=gen["top_p"],
        repetition_penalty=gen["repetition_penalty"],
        seed=seed,
        batch_size=batch_size,
        stop_at_eos=gen["stop_at_eos"],
        autocast=autocast,
        indices=indices,
    )
    return units, budgets


def finish_continuation(
    prompt: EncodedPrompt,
    units: Tensor,
    budget: tuple[int, str],
    lm: Any,
    tokenizer: Any,
    vocoder: Any,
    gen: dict[str, Any],
    seed: int = 0,
    prompt_audio: PromptAudio = "original",
) -> Continuation:
    """Durations, vocoding and the prompt part of one sampled continuation."""
    if prompt_audio not in PROMPT_AUDIO:
        raise ValueError(f"prompt_audio must be original | resynth | none, got {prompt_audio!r}")
    durs, dur_rule = continuation_durations(vocoder, tokenizer, units, prompt.durations)
    c_wav = vocoder.synthesize(units, durs) if len(units) else np.zeros(0, np.float32)
    if prompt_audio == "original":
        head = prompt.head
    elif prompt_audio == "resynth":
        head = vocoder.synthesize(prompt.units, prompt.durations)
    else:
        head = np.zeros(0, np.float32)
    out_wav = np.concatenate([head.astype(np.float32), c_wav.astype(np.float32)])
    peak = float(np.abs(out_wav).max()) if out_wav.size else 0.0
    if peak > 1.0:  # keep 16-bit PCM from clipping
        out_wav = out_wav / peak * 0.99
    settings = {
        "prompt": prompt.source,
        "prompt_file_seconds": round(len(prompt.wav) / SAMPLE_RATE, 4),
        "prompt_seconds_used": round(prompt.seconds, 4),
        "prompt_audio": prompt_audio,
        "length_rule": budget[1],
        "max_new_units": budget[0],
        "units_per_second_prompt": round(prompt.units_per_second, 4),
        "preset": gen["preset"],
        "temperature": gen["temperature"],
        "top_k": gen["top_k"],
        "top_p": gen["top_p"],
        "repetition_penalty": gen["repetition_penalty"],
        "seed": seed,
        "stop_at_eos": gen["stop_at_eos"],
        "settings_origin": gen["origin"],
        "durations": dur_rule,
        "model": str((getattr(lm, "meta", None) or {}).get("path", "<object>")),
        "convention": lm.vocab.convention,
        "tokenizer": tokenizer_info(tokenizer),
        "vocoder": dict(getattr(vocoder, "info", {}) or {}) | {"hop": vocoder.hop},
    }
    return Continuation(
        wav=out_wav,
        sample_rate=int(vocoder.sample_rate),
        prompt_samples=len(head),
        prompt_units=prompt.units,
        prompt_durations=prompt.durations,
        units=units,
        durations=durs,
        settings=settings,
        continuation_wav=c_wav,
    )


def continue_batch(
    prompts: Sequence[EncodedPrompt],
    lm: Any,
    tokenizer: Any,
    vocoder: Any,
    gen: dict[str, Any],
    *,
    seconds: float | None = None,
    max_new_units: int | None = None,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    batch_size: int = 8,
    prompt_audio: PromptAudio = "original",
    autocast: bool = False,
) -> list[Continuation]:
    """Continue encoded prompts (:func:`sample_continuations` then :func:`finish_continuation`
    for each). Components must already be checked compatible (``load_components``)."""
    units, budgets = sample_continuations(
        lm, prompts, gen, seconds=seconds, max_new_units=max_new_units, seed=seed,
        indices=indices, batch_size=batch_size, autocast=autocast,
    )  # fmt: skip
    return [
        finish_continuation(p, u, b, lm, tokenizer, vocoder, gen, seed, prompt_audio)
        for p, u, b in zip(prompts, units, budgets, strict=True)
    ]


# ---------------------------------------------------------------------------- one prompt
def continue_prompt(
    prompt: str | Path | np.ndarray,
    model: Any,
    tokenizer: Any = None,
    vocoder: Any = None,
    *,
    preset: str = DEFAULT_PRESET,
    seconds: float | None = None,
    max_new_units: int | None = None,
    prompt_seconds: float | None = FROM_PRESET,
    temperature: float = FROM_PRESET,
    top_k: int | None = FROM_PRESET,
    top_p: float | None = FROM_PRESET,
    repetition_penalty: float = FROM_PRESET,
    seed: int = 0,
    prompt_audio: PromptAudio = "original",
    stop_at_eos: bool = FROM_PRESET,
    autocast: bool = False,
    device: str = "cpu",
    out: str | Path | None = None,
) -> Continuation:
    """Continue a spoken prompt. Library form of ``twistlm continue`` (see its help).

    Args:
        prompt: a wav path or a (T,) float32 16 kHz waveform.
        model, tokenizer, vocoder: objects or directories (tokenizer/vocoder: None = from the
            model's meta).
        preset: ``twist`` or ``slamkit`` (:data:`twistlm.lm.generate.PRESETS`): the defaults
            of every sampling argument left out. With ``twist`` the model dir's
            generation_config.json supplies top-k / top-p / repetition penalty when it sets them.
        seconds: continuation length in seconds (converted with the prompt's units per second);
            ``max_new_units``: in units. Neither: the preset's (twist: min(250, 3 x P) - P
            units; slamkit: 150). Cut, with a warning, to what fits the model's positions.
        prompt_seconds: use only the first N seconds of the prompt (None or 0: all of it).
        temperature, top_k, top_p, repetition_penalty, stop_at_eos: left out = the preset's;
            None (top_k 0, top_p 1) = off.
        prompt_audio: what OUT.wav starts with: the ``original`` prompt audio, the ``resynth``
            (vocoded prompt units with their true durations), or ``none``.
        out: write ``out`` (wav) and ``out.with_suffix('.json')`` atomically.
    """
    from twistlm.lm.components import load_components

    if prompt_audio not in PROMPT_AUDIO:
        raise ValueError(f"prompt_audio must be original | resynth | none, got {prompt_audio!r}")
    lm, tok, voc = load_components(model, tokenizer, vocoder, device)
    gen = sampling_settings(
        preset, lm, prompt_seconds=prompt_seconds, temperature=temperature, top_k=top_k,
        top_p=top_p, repetition_penalty=repetition_penalty, stop_at_eos=stop_at_eos,
    )  # fmt: skip
    if seconds is not None and max_new_units is not None:
        raise ValueError("give seconds or max_new_units, not both")
    if isinstance(prompt, (str, Path)):
        from twistlm.audio import load_audio

        encoded = encode_prompt(load_audio(prompt), tok, gen["prompt_seconds"], str(prompt))
    else:
        encoded = encode_prompt(prompt, tok, gen["prompt_seconds"])
    [result] = continue_batch(
        [encoded], lm, tok, voc, gen, seconds=seconds, max_new_units=max_new_units, seed=seed,
        prompt_audio=prompt_audio, autocast=autocast,
    )  # fmt: skip
    if out is not None:
        write_continuation(result, out)
    return result
