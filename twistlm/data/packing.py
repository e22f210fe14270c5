"""BOS/EOS wrapping and packing of utterances into fixed-length training blocks (pure functions).

A stream ``BOS u u u EOS BOS u u EOS ...`` is cut into blocks of ``block_size`` ids, so no
position is wasted on padding except at the very end of the stream. The BOS/EOS ids mark the
utterance boundaries inside a block; :func:`pack` also returns, per position, which utterance
it came from (``-1`` on padding) so callers can check or mask boundaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twistlm.lm.vocab import UnitVocab


@dataclass(frozen=True)
class Packed:
    """Blocks of token ids.

    Attributes:
        ids: (n_blocks, block_size) int64 token ids; the last block is padded with ``pad_id``.
        segment: (n_blocks, block_size) int64 index of the source utterance, -1 on padding.
        n_tokens: number of non-padding ids.
    """

    ids: np.ndarray
    segment: np.ndarray
    n_tokens: int


def wrap(units: np.ndarray, vocab: UnitVocab) -> np.ndarray:
    """Unit indices (N,) -> ids ``[BOS] u+offset [EOS]`` (BOS/EOS only where the vocab has them)."""
    ids = np.asarray(units, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab.n_units):
        raise ValueError(
            f"unit ids must lie in [0, {vocab.n_units}); got [{ids.min()}, {ids.max()}]"
        )
    parts = []
    if vocab.bos_id is not None:
        parts.append(np.array([vocab.bos_id], np.int64))
    parts.append(ids + vocab.offset)
    if vocab.eos_id is not None:
        parts.append(np.array([vocab.eos_id], np.int64))
    return np.concatenate(parts)


def pack(utterances: Sequence[np.ndarray], vocab: UnitVocab, block_size: int) -> Packed:
    """Wrap each utterance and pack them, in the given order, into ``block_size`` blocks.

    Utterances longer than a block simply continue into the next block.
    """
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2, got {block_size}")
    wrapped = [wrap(u, vocab) for u in utterances]
    if not wrapped:
        empty = np.zeros((0, block_size), np.int64)
        return Packed(empty, empty.copy(), 0)
    stream = np.concatenate(wrapped)
    seg = np.repeat(np.arange(len(wrapped), dtype=np.int64), [len(w) for w in wrapped])
    n = stream.size
    n_blocks = -(-n // block_size)
    ids = np.full(n_blocks * block_size, vocab.pad_id, np.int64)
    segment = np.full(n_blocks * block_size, -1, np.int64)
    ids[:n], segment[:n] = stream, seg
    return Packed(ids.reshape(n_blocks, block_size), segment.reshape(n_blocks, block_size), n)


def unpack(packed: Packed, vocab: UnitVocab) -> list[np.ndarray]:
    """Inverse of :func:`pack`: the unit indices of each utterance, in order."""
    ids, seg = packed.ids.reshape(-1), packed.segment.reshape(-1)
    keep = seg >= 0
    ids, seg = ids[keep], seg[keep]
    n_utt = int(seg.max()) + 1 if seg.size else 0
    out = []
    for i in range(n_utt):
        u = ids[seg == i]
        out.append(u[(u >= vocab.offset) & (u < vocab.offset + vocab.n_units)] - vocab.offset)
    return out


def unit_targets(ids: np.ndarray, vocab: UnitVocab) -> np.ndarray:
    """Labels for the loss 'per unit': ids where the id is a unit, -100 elsewhere (BOS/EOS/pad)."""
    ids = np.asarray(ids)
    is_unit = (ids >= vocab.offset) & (ids < vocab.offset + vocab.n_units)
    return np.where(is_unit, ids, -100)


def lm_targets(ids: np.ndarray, vocab: UnitVocab) -> np.ndarray:
    """Training labels: every id except padding (-100); BOS after EOS is cheap to learn."""
    ids = np.asarray(ids)
    return np.where(ids == vocab.pad_id, -100, ids)
