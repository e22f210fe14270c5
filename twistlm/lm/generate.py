"""Sampling unit continuations from a SpeechLM: batched left-padded prompts and a KV cache.

The logits filters (temperature, top-k, top-p, repetition penalty) and the per-prompt RNG are
:mod:`twistlm.lm.sampling`'s; the presets and the resolution of a run's settings are
:mod:`twistlm.lm.generation_presets`'. Both are re-exported here, where they lived before.

Randomness: every prompt owns a ``torch.Generator`` seeded from ``(seed, prompt index)`` and
draws exactly one uniform number per generated unit, so the result for a prompt does not depend
on the batch it was put in, on the batch size, or on whether the KV cache is used (cached ==
uncached is a tested invariant). :func:`generate_units`' defaults are the ``twist`` preset.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor

from twistlm.lm.generation_presets import (
    DEFAULT_PRESET,
    GENERATION_CONFIG,
    PRESETS,
    SETTING_KEYS,
    TWIST_LENGTH_FACTOR,
    TWIST_MAX_TOTAL,
    TWIST_PROMPT_SECONDS,
    TWIST_TEMPERATURE,
    TWIST_TOP_K,
    GenerationPreset,
    generation_settings,
    get_preset,
    read_generation_config,
    twist_max_new_units,
    units_for_seconds,
)
from twistlm.lm.sampling import (
    apply_repetition_penalty,
    filter_logits,
    left_pad,
    positions_from_mask,
    prompt_generator,
    sample_inverse_cdf,
    sampling_mask,
    top_k_filter,
    top_p_filter,
)

__all__ = [
    "DEFAULT_PRESET",
    "GENERATION_CONFIG",
    "PRESETS",
    "SETTING_KEYS",
    "TWIST_LENGTH_FACTOR",
    "TWIST_MAX_TOTAL",
    "TWIST_PROMPT_SECONDS",
    "TWIST_TEMPERATURE",
    "TWIST_TOP_K",
    "GenerationPreset",
    "apply_repetition_penalty",
    "filter_logits",
    "generate_units",
    "generation_settings",
    "get_preset",
    "left_pad",
    "positions_from_mask",
    "prompt_generator",
    "read_generation_config",
    "sample_inverse_cdf",
    "sampling_mask",
    "top_k_filter",
    "top_p_filter",
    "twist_max_new_units",
]


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
        return [units_for_seconds(max_seconds, units_per_second)] * len(prompt_lens)
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


def _prompt_ids(vocab: Any, prompts: Sequence[Tensor]) -> list[Tensor]:
    """Each unit prompt as model ids (the vocab's prefix and offset added)."""
    prompt_ids = []
    for i, p in enumerate(prompts):
        ids = vocab.utterance_ids(torch.as_tensor(p, dtype=torch.long).reshape(-1))
        if len(ids) == 0:
            raise ValueError(f"prompt {i} is empty and the {vocab.convention} vocab has no BOS")
        prompt_ids.append(ids)
    return prompt_ids


def _check_positions(lm: Any, prompt_ids: list[Tensor], budgets: list[int]) -> None:
    """Raise before generating when a prompt plus its continuation would not fit the model's
    position table (the whole sequence counts, as transformers' ``max_length`` does)."""
    max_pos = _max_positions(lm)
    if max_pos is None:
        return
    for i, (ids, n_new) in enumerate(zip(prompt_ids, budgets, strict=True)):
        if len(ids) + n_new > max_pos:
            n_prefix = len(lm.vocab.prefix())
            raise ValueError(
                f"prompt {i} has {len(ids) - n_prefix} units"
                + (f" (+{n_prefix} BOS)" if n_prefix else "")
                + f" and {n_new} new units were requested: {len(ids) + n_new} positions, "
                f"but the model has {max_pos} (max_position_embeddings); ask for at most "
                f"{max(max_pos - len(ids), 0)} new units or use a shorter prompt"
            )


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
    prompt_ids = _prompt_ids(vocab, prompts)
    budgets = _resolve_lengths(
        [len(torch.as_tensor(p).reshape(-1)) for p in prompts],
        max_new_units,
        max_seconds,
        units_per_second,
    )
    _check_positions(lm, prompt_ids, budgets)
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
