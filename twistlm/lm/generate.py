"""Sampling unit continuations from a SpeechLM: temperature, top-k, top-p, repetition penalty,
batched left-padded prompts and a KV cache.

The filters are pure functions on ``(B, V)`` logits so they can be tested exactly. Their
definitions follow the common references: repetition penalty of CTRL (Keskar et al. 2019, as in
HF ``RepetitionPenaltyLogitsProcessor``: a logit ``l`` of an id already in the context becomes
``l / p`` if ``l > 0`` else ``l * p``), top-k (keep every id whose logit is >= the k-th largest,
as HF ``TopKLogitsWarper``) and nucleus sampling (Holtzman et al. 2020: keep the smallest set of
most likely ids whose mass reaches ``p``; an id is kept iff the mass strictly before it in
descending order is < ``p``, which is HF ``TopPLogitsWarper``'s rule).

Randomness: every prompt owns a ``torch.Generator`` seeded from ``(seed, prompt index)`` and
draws exactly one uniform number per generated unit, which picks the unit by inverse-CDF
sampling. So the result for a prompt does not depend on the batch it was put in, on the batch
size, or on whether the KV cache is used (cached == uncached is a tested invariant).

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

import inspect
import json
import math
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

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


# ---------------------------------------------------------------------------- pure helpers
def twist_max_new_units(
    prompt_len: int, max_total: int = TWIST_MAX_TOTAL, factor: int = TWIST_LENGTH_FACTOR
) -> int:
    """New units allowed by TWIST's rule: ``min(max_total, factor * prompt_len) - prompt_len``
    (total length includes the prompt), never negative."""
    return max(min(max_total, factor * prompt_len) - prompt_len, 0)


def apply_repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """(B, V) logits, (B, V) bool ``seen`` (id occurs in the context) -> penalized logits.

    CTRL's rule: seen ids with a positive logit are divided by ``penalty``, others multiplied,
    so ``penalty > 1`` always lowers their probability.
    """
    if penalty <= 0:
        raise ValueError(f"repetition_penalty must be > 0, got {penalty}")
    if penalty == 1.0:
        return logits
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def top_k_filter(logits: Tensor, k: int | None) -> Tensor:
    """(B, V) -> (B, V): logits below the k-th largest of each row set to -inf (ties kept)."""
    if k is None:
        return logits
    if k <= 0:
        raise ValueError(f"top_k must be >= 1, got {k}")
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, -math.inf)


def top_p_filter(logits: Tensor, p: float | None) -> Tensor:
    """(B, V) -> (B, V): nucleus filter. An id survives iff the probability mass of the ids
    ranked strictly above it is < ``p``; the most likely id always survives."""
    if p is None or p >= 1.0:
        return logits
    if not 0.0 < p:
        raise ValueError(f"top_p must lie in (0, 1], got {p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits.double(), dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # (B, V) mass of better-ranked ids
    remove_sorted = mass_before >= p
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, -math.inf)


def sample_inverse_cdf(logits: Tensor, uniforms: Tensor) -> Tensor:
    """(B, V) logits, (B,) uniforms in (0, 1] -> (B,) ids.

    Picks the first id whose cumulative probability reaches ``u * total``; ids with zero
    probability (-inf logits) are never picked because ``u > 0``.
    """
    probs = torch.softmax(logits.double(), dim=-1)
    cdf = torch.cumsum(probs, dim=-1)  # (B, V)
    target = uniforms.double().to(cdf.device).unsqueeze(-1) * cdf[..., -1:]
    idx = torch.searchsorted(cdf, target).squeeze(-1)
    return idx.clamp_(max=logits.shape[-1] - 1)


def filter_logits(
    logits: Tensor,
    allowed: Tensor,
    seen: Tensor | None = None,
    temperature: float = TWIST_TEMPERATURE,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
) -> Tensor:
    """The whole logits pipeline of one step, in HF's order: mask ids that may not be sampled,
    repetition penalty, temperature, top-k, top-p. (B, V) -> (B, V) float32.

    ``temperature == 0`` means greedy: only the argmax survives.
    """
    logits = logits.float().masked_fill(~allowed, -math.inf)
    if seen is not None:
        logits = apply_repetition_penalty(logits, seen, repetition_penalty)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        best = logits.argmax(-1, keepdim=True)
        return torch.full_like(logits, -math.inf).scatter(-1, best, 0.0)
    logits = logits / temperature
    logits = top_k_filter(logits, top_k)
    return top_p_filter(logits, top_p)


def left_pad(seqs: Sequence[Tensor], pad_id: int) -> tuple[Tensor, Tensor]:
    """Token-id sequences -> (B, L) ids left-padded with ``pad_id`` and (B, L) 0/1 mask."""
    length = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, length - len(s) :] = s
            mask[i, length - len(s) :] = 1
    return ids, mask


def positions_from_mask(mask: Tensor) -> Tensor:
    """(B, L) 0/1 mask -> (B, L) position ids: 0 at each row's first real token (pads get 0)."""
    return (mask.cumsum(-1) - 1).clamp_(min=0)


def prompt_generator(seed: int, index: int) -> torch.Generator:
    """The RNG of prompt ``index``: independent of batch layout (see module docstring)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(2)
    g = torch.Generator()
    g.manual_seed(int(state[0]) << 32 | int(state[1]))
    return g


def sampling_mask(vocab: Any, n_vocab: int, eos: int | None = None) -> Tensor:
    """(n_vocab,) bool: the ids that may be sampled: units only, plus ``eos`` if given.

    Specials (pad, BOS) and leftover text rows of a warm-started model are never sampled.
    """
    if n_vocab < vocab.offset + vocab.n_units:
        raise ValueError(
            f"model outputs {n_vocab} logits but the vocab needs ids up to "
            f"{vocab.offset + vocab.n_units - 1}"
        )
    allowed = torch.zeros(n_vocab, dtype=torch.bool)
    allowed[vocab.offset : vocab.offset + vocab.n_units] = True
    if eos is not None:
        allowed[eos] = True
    return allowed


# ---------------------------------------------------------------------------- model calls
class _Forward:
    """Calls a HF causal LM with the keyword names its version uses.

    transformers 5 renamed ``past_key_values`` to ``cache`` (argument and output); older
    versions and some remote-code models still use ``past_key_values``. ``logits_to_keep=1``
    avoids computing logits for every position (used in both cached and uncached paths).
    """

    def __init__(self, model: Any):
        self.model = model
        params = inspect.signature(model.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.has_positions = "position_ids" in params
        self.has_keep = "logits_to_keep" in params

    def __call__(
        self, ids: Tensor, mask: Tensor, positions: Tensor, cache: Any, use_cache: bool
    ) -> tuple[Tensor, Any]:
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "use_cache": use_cache}
        if self.has_positions:
            kwargs["position_ids"] = positions
        if self.has_keep:
            kwargs["logits_to_keep"] = 1
        if cache is not None:
            kwargs[self.cache_kw] = cache
        out = self.model(**kwargs)
        new_cache = getattr(out, self.cache_kw, None) if use_cache else None
        return out.logits[:, -1], new_cache  # (B, V)


# ---------------------------------------------------------------------------- generation
def _max_positions(lm: Any) -> int | None:
    """Longest id sequence the model's position table allows (None: unbounded / unknown).

    HF OPT stores ``max_position_embeddings + 2`` learned positions (its positions start at 2),
    so ``max_position_embeddings`` is the usable count there too.
    """
    n = getattr(lm, "max_positions", None)
    if n is None:
        n = getattr(getattr(lm.model, "config", None), "max_position_embeddings", None)
    return None if n is None else int(n)


def _resolve_lengths(
    prompt_lens: list[int],
    max_new_units: int | Sequence[int] | None,
    max_seconds: float | None,
    units_per_second: float | None,
) -> list[int]:
    if max_new_units is not None and max_seconds is not None:
        raise ValueError("give max_new_units or max_seconds, not both")
    if max_seconds is not None:
        if not units_per_second or units_per_second <= 0:
            raise ValueError(
                "max_seconds needs units_per_second (the tokenizer's frame rate, or the "
                "prompt's deduplicated units per second)"
            )
        return [max(int(round(max_seconds * units_per_second)), 0)] * len(prompt_lens)
    if max_new_units is not None:
        if isinstance(max_new_units, int):
            max_new_units = [max_new_units] * len(prompt_lens)
        budgets = [int(n) for n in max_new_units]
        if len(budgets) != len(prompt_lens):
            raise ValueError(f"{len(budgets)} lengths for {len(prompt_lens)} prompts")
        if any(n < 0 for n in budgets):
            raise ValueError(f"max_new_units must be >= 0, got {budgets}")
        return budgets
    return [twist_max_new_units(n) for n in prompt_lens]


@torch.no_grad()
def generate_units(
    lm: Any,
    prompts: Sequence[Tensor],
    max_new_units: int | Sequence[int] | None = None,
    max_seconds: float | None = None,
    units_per_second: float | None = None,
    temperature: float = TWIST_TEMPERATURE,
    top_k: int | None = TWIST_TOP_K,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    seed: int = 0,
    use_cache: bool = True,
    batch_size: int = 8,
    stop_at_eos: bool = False,
    autocast: bool = False,
    progress: bool = False,
    indices: Sequence[int] | None = None,
) -> list[Tensor]:
    """Continue unit prompts with a SpeechLM. Returns the continuations only, as unit indices.

    Args:
        lm: a ``SpeechLM`` (anything with ``.model``, a HF causal LM, and ``.vocab``, a
            :class:`~twistlm.lm.vocab.UnitVocab`).
        prompts: 1-D LongTensors of unit indices in ``[0, n_units)`` (no offset, no BOS: the
            vocab adds its convention's prefix and offset).
        max_new_units: units to generate (one int, or one per prompt). With neither this nor ``max_seconds``,
            TWIST's rule applies per prompt: ``min(250, 3 * prompt_len) - prompt_len``.
        max_seconds, units_per_second: length in seconds, converted with the unit rate.
        temperature: softmax temperature (0 = greedy).
        top_k, top_p, repetition_penalty: filters (None / 1.0 disable them). The defaults are
            the ``twist`` preset (temperature 0.8, top-k 50, top-p off); see
            :func:`generation_settings` for presets and a checkpoint's generation_config.json.
        seed: base seed; prompt i samples from ``prompt_generator(seed, i)``.
        use_cache: reuse keys/values between steps (same output as without, much faster).
        batch_size: prompts per forward pass (sorted by length, left-padded).
        stop_at_eos: let the model emit its convention's EOS and end that continuation there
            (ignored for conventions without EOS, e.g. TWIST). Off by default, as in TWIST.
        autocast: run the model under bf16 autocast (CPU with AMX, or CUDA).
        progress: show a progress bar over generation steps.
        indices: RNG index of each prompt (default ``0..len(prompts)-1``), so a caller that
            splits a prompt list into chunks gets the same samples as one call on the list.

    Returns:
        one (N_i,) LongTensor of unit indices per prompt, in prompt order, on the CPU.

    Raises:
        ValueError: a prompt (with its BOS) plus its continuation would not fit the model's
            position table (``max_position_embeddings``); nothing is generated then. The check
            counts the whole sequence, as transformers' ``max_length`` does.
    """
    model, vocab = lm.model, lm.vocab
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    prompt_ids = []
    for i, p in enumerate(prompts):
        ids = vocab.utterance_ids(torch.as_tensor(p, dtype=torch.long).reshape(-1))
        if len(ids) == 0:
            raise ValueError(f"prompt {i} is empty and the {vocab.convention} vocab has no BOS")
        prompt_ids.append(ids)
    budgets = _resolve_lengths(
        [len(torch.as_tensor(p).reshape(-1)) for p in prompts],
        max_new_units,
        max_seconds,
        units_per_second,
    )
    max_pos = _max_positions(lm)
    if max_pos is not None:
        for i, (ids, n_new) in enumerate(zip(prompt_ids, budgets, strict=True)):
            if len(ids) + n_new > max_pos:
                n_prefix = len(vocab.prefix())
                raise ValueError(
                    f"prompt {i} has {len(ids) - n_prefix} units"
                    + (f" (+{n_prefix} BOS)" if n_prefix else "")
                    + f" and {n_new} new units were requested: {len(ids) + n_new} positions, "
                    f"but the model has {max_pos} (max_position_embeddings); ask for at most "
                    f"{max(max_pos - len(ids), 0)} new units or use a shorter prompt"
                )
    if getattr(lm, "meta", None) and lm.meta.get("n_units_inferred"):
        warnings.warn(
            f"the model's unit count ({vocab.n_units}) was inferred from its vocabulary size "
            "(the checkpoint records no n_units): units are sampled from ids "
            f"{vocab.offset}..{vocab.offset + vocab.n_units - 1}. Check the model against its "
            "tokenizer first (SpeechLM.adopt_n_units, done by `twistlm continue` / `eval`)",
            stacklevel=3,  # the caller of generate_units (torch.no_grad adds a frame)
        )
    if indices is None:
        indices = range(len(prompt_ids))
    elif len(indices) != len(prompt_ids):
        raise ValueError(f"{len(indices)} indices for {len(prompt_ids)} prompts")
    device = next(model.parameters()).device
    eos = vocab.eos_id if (stop_at_eos and vocab.eos_id is not None) else None
    forward = _Forward(model)
    was_training = model.training
    model.eval()

    # longest first: less padding per batch
    order = sorted(range(len(prompt_ids)), key=lambda i: -len(prompt_ids[i]))
    results: list[Tensor | None] = [None] * len(prompt_ids)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(budgets), unit="unit", desc="generate")
    ctx = (
        torch.autocast(device.type, dtype=torch.bfloat16) if autocast else nullcontext()
    )  # bf16 doubles CPU speed with AMX (docs/measurements.md)
    try:
        with ctx:
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                outs = _generate_batch(
                    forward,
                    [prompt_ids[i] for i in idx],
                    [budgets[i] for i in idx],
                    [prompt_generator(seed, indices[i]) for i in idx],
                    vocab,
                    eos,
                    device,
                    temperature,
                    top_k,
                    top_p,
                    repetition_penalty,
                    use_cache,
                    bar,
                )
                for i, o in zip(idx, outs, strict=True):
                    results[i] = o
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    return [r for r in results if r is not None]


def _generate_batch(
    forward: _Forward,
    prompt_ids: list[Tensor],
    budgets: list[int],
    generators: list[torch.Generator],
    vocab: Any,
    eos: int | None,
    device: torch.device,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    repetition_penalty: float,
    use_cache: bool,
    bar: Any,
) -> list[Tensor]:
    """One left-padded batch; returns each row's generated unit indices."""
    n_rows = len(prompt_ids)
    ids, mask = left_pad(prompt_ids, vocab.pad_id)
    ids, mask = ids.to(device), mask.to(device)
    positions = positions_from_mask(mask)
    allowed: Tensor | None = None
    seen: Tensor | None = None
    budget = torch.tensor(budgets, device=device)
    alive = budget > 0
    generated: list[list[int]] = [[] for _ in range(n_rows)]
    pad = torch.full((n_rows,), vocab.pad_id, dtype=torch.long, device=device)
    cache = None
    step = 0
    while bool(alive.any()):
        if step == 0 or not use_cache:
            logits, cache = forward(ids, mask, positions, None, use_cache)
        else:
            logits, cache = forward(ids[:, -1:], mask, positions[:, -1:], cache, True)
        if allowed is None:  # the output layer may have more rows than the vocab (text rows)
            allowed = sampling_mask(vocab, logits.shape[-1], eos).to(device)
            if repetition_penalty != 1.0:  # (B, V) which ids occur in each row's context
                seen = torch.zeros_like(logits, dtype=torch.bool)
                seen.scatter_(1, ids.clamp(max=logits.shape[-1] - 1), mask.bool())
        logits = filter_logits(
            logits, allowed, seen, temperature, top_k, top_p, repetition_penalty
        )  # (B, V)
        # one uniform in (0, 1] per live row, from that row's own generator
        u = torch.ones(n_rows, dtype=torch.float64)
        for r in range(n_rows):
            if alive[r]:
                u[r] = 1.0 - torch.rand((), generator=generators[r], dtype=torch.float64)
        nxt = torch.where(alive, sample_inverse_cdf(logits, u), pad)  # (B,)
        for r in range(n_rows):
            if alive[r]:
                generated[r].append(int(nxt[r]))
        if seen is not None:
            seen[torch.arange(n_rows, device=device), nxt] |= alive
        step += 1
        ended = step >= budget
        if eos is not None:
            ended |= nxt == eos
        if bar is not None:
            bar.update(int(alive.sum()))
        alive = alive & ~ended
        if not bool(alive.any()):
            break
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
    out = []
    for r in range(n_rows):
        toks = torch.tensor(generated[r], dtype=torch.long)
        if eos is not None and len(toks) and int(toks[-1]) == eos:
            toks = toks[:-1]
        out.append(vocab.ids_to_units(toks))
    return out
