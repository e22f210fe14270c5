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

TWIST defaults (DESIGN.md section 3, TWIST example): 3 s prompt, temperature 0.8, and at most
``min(250, 3 * prompt_length)`` tokens including the prompt (:func:`twist_max_new_units`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import Tensor

TWIST_PROMPT_SECONDS = 3.0
TWIST_TEMPERATURE = 0.8
TWIST_MAX_TOTAL = 250
TWIST_LENGTH_FACTOR = 3


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
    top_k: int | None = None,
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
        top_k, top_p, repetition_penalty: filters (None / 1.0 disable them).
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
    )  # bf16 doubles CPU speed with AMX (DESIGN.md section 5)
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
