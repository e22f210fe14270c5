"""One sampling step on ``(B, V)`` logits, and the per-prompt randomness.

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from twistlm.lm.generation_presets import TWIST_TEMPERATURE


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
