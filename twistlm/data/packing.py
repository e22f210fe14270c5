"""BOS/EOS wrapping and packing of utterances into fixed-length training blocks (pure functions).

A stream ``BOS u u u EOS BOS u u EOS ...`` is cut into blocks of ``block_size`` ids, so no
position is wasted on padding except at the very end of the stream. The BOS/EOS ids mark the
utterance boundaries inside a block; :func:`pack` also returns, per position, which utterance
it came from (``-1`` on padding) so callers can check or mask boundaries.

How a block is attended (``PACKING_MODES``):

- ``document`` (the default): each utterance sees only itself. Positions restart at every
  utterance (:func:`document_positions`) and attention is causal within the utterance
  (:func:`document_attention_mask`, a block-diagonal mask; with FlashAttention-2 the restarting
  ``position_ids`` alone tell transformers where the sequences start, its varlen path, as
  SlamKit trains). A tail carried over from the previous block is a document of its own,
  starting again at position 0. Boundaries come from the ids: a document starts at each BOS (or,
  in a vocabulary without BOS, after each EOS), so the blocks on disk and their order do not
  change.
- ``stream``: the model attends across utterance boundaries inside a block, with positions
  counting across them (what twistlm did before document masks; kept to reproduce such runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twistlm.lm.vocab import UnitVocab

PACKING_MODES = ("document", "stream")


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


def document_index(ids: np.ndarray, vocab: UnitVocab) -> np.ndarray:
    """(B, L) ids -> (B, L) index of the document each position belongs to within its block
    (0, 1, ...; -1 on padding). A document starts at position 0, at each BOS, or (without a
    BOS id in the vocabulary) right after each EOS."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"ids must be (B, L), got shape {ids.shape}")
    if vocab.bos_id is not None:
        start = ids == vocab.bos_id
    elif vocab.eos_id is not None:
        start = np.zeros_like(ids, dtype=bool)
        start[:, 1:] = ids[:, :-1] == vocab.eos_id
    else:
        raise ValueError(
            "document masks need a BOS or EOS id in the vocabulary to find where utterances "
            "start; use packing 'stream'"
        )
    start = start.copy()
    start[:, 0] = True
    doc = np.cumsum(start, axis=1) - 1
    return np.where(ids == vocab.pad_id, -1, doc).astype(np.int64)


def document_positions(doc: np.ndarray) -> np.ndarray:
    """(B, L) document index -> (B, L) position within the document (0 on padding)."""
    doc = np.asarray(doc)
    L = doc.shape[1]
    idx = np.broadcast_to(np.arange(L), doc.shape)
    new = np.ones_like(doc, dtype=bool)
    new[:, 1:] = doc[:, 1:] != doc[:, :-1]
    start = np.maximum.accumulate(np.where(new, idx, 0), axis=1)
    return np.where(doc >= 0, idx - start, 0).astype(np.int64)


def document_attention_mask(doc, dtype=None):
    """(B, L) document index -> (B, 1, L, L) additive float mask: 0 where query i may attend key
    j (j <= i, same document), the dtype's minimum elsewhere. Padding attends only to itself."""
    import torch

    doc = torch.as_tensor(doc)
    dtype = dtype or torch.float32
    L = doc.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool, device=doc.device).tril()
    allowed = causal & (doc[:, :, None] == doc[:, None, :]) & (doc[:, :, None] >= 0)
    allowed |= torch.eye(L, dtype=torch.bool, device=doc.device)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=doc.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]


def attention_inputs(ids, vocab: UnitVocab, mode: str = "document", flash: bool = False):
    """Extra forward arguments that make a packed (B, L) id tensor attend as ``mode`` says.

    ``stream``: none. ``document``: ``position_ids`` restarting at each utterance, plus the
    block-diagonal ``attention_mask`` unless ``flash`` (FlashAttention-2 finds the sequences
    from the positions; its varlen kernel needs no mask).
    """
    import torch

    if mode not in PACKING_MODES:
        raise ValueError(f"packing must be one of {PACKING_MODES}, got {mode!r}")
    if mode == "stream":
        return {}
    ids = torch.as_tensor(ids)
    doc = document_index(ids.cpu().numpy(), vocab)
    out = {"position_ids": torch.from_numpy(document_positions(doc)).to(ids.device)}
    if not flash:
        out["attention_mask"] = document_attention_mask(torch.from_numpy(doc).to(ids.device))
    return out
