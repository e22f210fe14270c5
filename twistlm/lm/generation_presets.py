"""Sampling presets of the reference implementations, and how one run's settings resolve.

Defaults and presets (:data:`PRESETS`, :func:`generation_settings`): each named preset equals
the sampling call of its reference implementation.

- ``twist`` (facebookresearch/textlesslib ``examples/twist/speech_lm.py``,
  ``generate_with_offset``: ``lm_model.generate(offset + input_ids, max_length=min(250, 3 *
  input_len), do_sample=True, temperature=0.8)``; ``examples/twist/twist_generation.py``:
  ``--prompt_duration_sec`` 3.0): 3 s prompt, temperature 0.8, at most
  ``min(250, 3 * prompt_length)`` tokens including the prompt (:func:`twist_max_new_units`).
  top-k, top-p and the repetition penalty are not passed, so transformers takes them from the
  checkpoint's ``generation_config.json`` or its own defaults (``top_k=50``, ``top_p=1.0``,
  ``repetition_penalty=1.0``). :func:`generate_units`' defaults are this preset.
- ``slamkit`` (slp-rl/slamkit ``config/metric/generate.yaml``, the same ``generate_kwargs`` in
  ``asr_perplexity.yaml`` and ``llm_as_judge.yaml``: ``temperature: 0.8, top_k: 25,
  max_new_tokens: 150, do_sample: true``, ``prompt_length: 3``): 150 new units, stopping at
  ``<S>`` (``UnitLM.__init__`` in ``slamkit/model/unit_lm.py`` sets the inner LM's
  ``generation_config.eos_token_id`` to ``<S>``). ``UnitLM.generate`` calls the inner LM, whose
  generation config is built from ``base_config`` and never from the checkpoint's
  ``generation_config.json``, so nothing is read from that file (top-p and repetition penalty
  keep transformers' defaults, off).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TWIST_PROMPT_SECONDS = 3.0
TWIST_TEMPERATURE = 0.8
TWIST_TOP_K = 50  # transformers' GenerationConfig default, which the TWIST example relies on
TWIST_MAX_TOTAL = 250
TWIST_LENGTH_FACTOR = 3


# ---------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class GenerationPreset:
    """The sampling call of one reference implementation (sources in the module docstring).

    Attributes:
        name: preset name (``twistlm continue --preset``).
        temperature: softmax temperature (0 = greedy).
        top_k, top_p: filters (None = off).
        repetition_penalty: CTRL penalty (1.0 = off).
        prompt_seconds: the prompt is the first N seconds of the audio.
        max_new_units: fixed continuation length in units, or None for TWIST's rule.
        stop_at_eos: end a continuation at the model's EOS (conventions that have one).
        from_checkpoint: settings the reference does not pass to ``generate`` itself, so
            transformers takes them from the checkpoint's ``generation_config.json`` when it has
            them (the preset's value is transformers' default otherwise).
        source: where the values come from.
    """

    name: str
    temperature: float
    top_k: int | None
    top_p: float | None
    repetition_penalty: float
    prompt_seconds: float
    max_new_units: int | None
    stop_at_eos: bool
    from_checkpoint: tuple[str, ...]
    source: str


PRESETS: dict[str, GenerationPreset] = {
    "twist": GenerationPreset(
        name="twist",
        temperature=TWIST_TEMPERATURE,
        top_k=TWIST_TOP_K,
        top_p=None,
        repetition_penalty=1.0,
        prompt_seconds=TWIST_PROMPT_SECONDS,
        max_new_units=None,
        stop_at_eos=False,
        from_checkpoint=("top_k", "top_p", "repetition_penalty"),
        source="facebookresearch/textlesslib examples/twist/speech_lm.py generate_with_offset",
    ),
    "slamkit": GenerationPreset(
        name="slamkit",
        temperature=0.8,
        top_k=25,
        top_p=None,
        repetition_penalty=1.0,
        prompt_seconds=3.0,
        max_new_units=150,
        stop_at_eos=True,
        from_checkpoint=(),
        source="slp-rl/slamkit config/metric/generate.yaml generate_kwargs",
    ),
}
DEFAULT_PRESET = "twist"

#: the settings :func:`generation_settings` resolves
SETTING_KEYS = (
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "prompt_seconds",
    "max_new_units",
    "stop_at_eos",
)
GENERATION_CONFIG = "generation_config.json"


def get_preset(preset: str | GenerationPreset) -> GenerationPreset:
    """A preset by name (``twist``, ``slamkit``) or the preset itself."""
    if isinstance(preset, GenerationPreset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown generation preset {preset!r}; known: {', '.join(PRESETS)}")
    return PRESETS[preset]


def read_generation_config(model_dir: str | Path | None) -> dict[str, Any]:
    """The sampling fields (top_k, top_p, temperature, do_sample, repetition_penalty,
    max_length, max_new_tokens) a model dir's ``generation_config.json`` sets; {} without one."""
    if model_dir is None:
        return {}
    path = Path(model_dir) / GENERATION_CONFIG
    if not path.is_file():
        return {}
    cfg = json.loads(path.read_text())
    keys = (
        "top_k",
        "top_p",
        "temperature",
        "do_sample",
        "repetition_penalty",
        "max_length",
        "max_new_tokens",
    )
    return {k: cfg[k] for k in keys if cfg.get(k) is not None}


def _normalise(key: str, value: Any) -> Any:
    """One convention for "off": top_k 0 (as in transformers) and top_p >= 1 become None;
    prompt_seconds 0 becomes None (the whole prompt)."""
    if value is None:
        return None
    if key == "top_k":
        return int(value) or None
    if key == "top_p":
        return None if float(value) >= 1.0 else float(value)
    if key == "prompt_seconds":
        return float(value) or None
    if key == "max_new_units":
        return int(value)
    if key == "stop_at_eos":
        return bool(value)
    return float(value)


def generation_settings(
    preset: str | GenerationPreset = DEFAULT_PRESET,
    model_dir: str | Path | None = None,
    **given: Any,
) -> dict[str, Any]:
    """Resolve the sampling settings of one run: explicit arguments > the checkpoint's
    ``generation_config.json`` (only the settings the preset leaves to it, as its reference
    does) > the preset.

    Args:
        preset: ``twist`` or ``slamkit`` (see :data:`PRESETS`).
        model_dir: the model's dir; its ``generation_config.json`` is read when present.
        given: explicit values of :data:`SETTING_KEYS`; a key that is absent takes the
            checkpoint's / preset's value. ``top_k=0``, ``top_p=1`` and ``prompt_seconds=0``
            (or None) mean off / the whole prompt.

    Returns:
        {key: value for key in SETTING_KEYS} plus ``preset`` (the name) and ``origin``
        ({key: "argument" | "generation_config.json" | "preset <name>"}).
    """
    p = get_preset(preset)
    unknown = set(given) - set(SETTING_KEYS)
    if unknown:
        raise TypeError(f"unknown generation settings {sorted(unknown)}")
    ckpt = read_generation_config(model_dir)
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key in SETTING_KEYS:
        if key in given:
            out[key], origin[key] = _normalise(key, given[key]), "argument"
        elif key in p.from_checkpoint and key in ckpt:
            out[key], origin[key] = _normalise(key, ckpt[key]), GENERATION_CONFIG
        else:
            out[key], origin[key] = _normalise(key, getattr(p, key)), f"preset {p.name}"
    out["preset"] = p.name
    out["origin"] = origin
    return out


def units_for_seconds(seconds: float, units_per_second: float) -> int:
    """Units that last ``seconds`` at ``units_per_second``; at least 1. The one seconds -> units
    rule of generation (``twistlm continue``, generation metrics, the demo, ``generate_units``).
    """
    return max(int(round(seconds * units_per_second)), 1)


def twist_max_new_units(
    prompt_len: int, max_total: int = TWIST_MAX_TOTAL, factor: int = TWIST_LENGTH_FACTOR
) -> int:
    """New units allowed by TWIST's rule: ``min(max_total, factor * prompt_len) - prompt_len``
    (total length includes the prompt), never negative."""
    return max(min(max_total, factor * prompt_len) - prompt_len, 0)
