"""Training data: unit shards -> deterministic train/val split -> packed blocks in a fixed order.

The order of blocks depends only on (seed, epoch): epoch ``e`` shuffles the training
utterances with ``numpy.random.default_rng([seed, e])`` and packs them. Global block ``g`` is
block ``g % n`` of epoch ``g // n``. Optimizer step ``s`` uses global blocks
``[s*G, (s+1)*G)`` (G = batch x accum x world), and rank ``r`` takes its own contiguous slice of
each micro-batch, so a resumed run or a run on a different number of processes sees the same
global batches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twistlm.data.packing import lm_targets, pack, unit_targets
from twistlm.io import ErrorLog
from twistlm.lm.vocab import UnitVocab


@dataclass(frozen=True)
class Utterances:
    ids: list[str]
    units: list[np.ndarray]


def _hash01(key: str, seed: int) -> float:
    h = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def read_units(root: str | Path, errors: ErrorLog | None = None, min_units: int = 1) -> Utterances:
    """All utterances of a shard folder, sorted by id. Unreadable shards are logged and skipped."""
    import pyarrow.parquet as pq

    from twistlm.data.shards import SCHEMA, shard_files

    ids: list[str] = []
    units: list[np.ndarray] = []
    for f in shard_files(root):
        try:
            table = pq.read_table(f, schema=SCHEMA, columns=["id", "units"])
        except Exception as e:  # a corrupt shard must not stop training on the rest
            if errors is None:
                raise
            errors.add(f, e)
            continue
        col = table.column("units").combine_chunks()
        offsets = col.offsets.to_numpy()
        flat = col.values.to_numpy(zero_copy_only=False).astype(np.int64)
        for i, name in enumerate(table.column("id").to_pylist()):
            u = flat[offsets[i] : offsets[i + 1]]
            if u.size >= min_units:
                ids.append(name)
                units.append(u)
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return Utterances([ids[i] for i in order], [units[i] for i in order])


def split(
    utts: Utterances, val_fraction: float, max_val: int, seed: int
) -> tuple[Utterances, Utterances]:
    """Deterministic split by utterance id: the ``val_fraction`` smallest id hashes (<= max_val)."""
    if val_fraction <= 0 or len(utts.ids) < 2:
        return utts, Utterances([], [])
    h = np.array([_hash01(i, seed) for i in utts.ids])
    n_val = min(max_val, max(1, int(round(val_fraction * len(h)))), len(h) - 1)
    val_idx = set(np.argsort(h, kind="stable")[:n_val].tolist())
    tr = [i for i in range(len(h)) if i not in val_idx]
    va = sorted(val_idx)
    return (
        Utterances([utts.ids[i] for i in tr], [utts.units[i] for i in tr]),
        Utterances([utts.ids[i] for i in va], [utts.units[i] for i in va]),
    )


def drop_bad_units(
    utts: Utterances, n_units: int, errors: ErrorLog | None, source: str
) -> Utterances:
    """Drop (and log) utterances with unit ids outside ``[0, n_units)``."""
    keep_ids, keep_units = [], []
    for name, u in zip(utts.ids, utts.units, strict=True):
        if u.size and (u.min() < 0 or u.max() >= n_units):
            msg = f"unit ids [{u.min()}, {u.max()}] outside [0, {n_units})"
            if errors is None:
                raise ValueError(f"{source}:{name}: {msg}")
            errors.add(f"{source}:{name}", msg)
            continue
        keep_ids.append(name)
        keep_units.append(u)
    return Utterances(keep_ids, keep_units)


class BlockOrder:
    """Training blocks of every epoch in a deterministic order (see module doc)."""

    def __init__(self, units: list[np.ndarray], vocab: UnitVocab, block_size: int, seed: int):
        if not units:
            raise ValueError("no training utterances")
        self.units, self.vocab, self.block_size, self.seed = units, vocab, block_size, seed
        self._epoch: int | None = None
        self._blocks: np.ndarray | None = None
        total = sum(u.size + (vocab.bos_id is not None) + (vocab.eos_id is not None) for u in units)
        # Full blocks only (the padded tail is dropped) unless the data is smaller than a block.
        self.blocks_per_epoch = max(1, total // block_size)

    def _epoch_blocks(self, epoch: int) -> np.ndarray:
        if self._epoch != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            perm = rng.permutation(len(self.units))
            packed = pack([self.units[i] for i in perm], self.vocab, self.block_size)
            self._blocks = packed.ids[: self.blocks_per_epoch]
            self._epoch = epoch
        return self._blocks  # type: ignore[return-value]

    def blocks(self, start: int, count: int) -> np.ndarray:
        """(count, block_size) ids of global blocks ``start .. start+count-1``."""
        out = []
        for g in range(start, start + count):
            epoch, i = divmod(g, self.blocks_per_epoch)
            out.append(self._epoch_blocks(epoch)[i])
        return np.stack(out)

    def labels(self, ids: np.ndarray) -> np.ndarray:
        return lm_targets(ids, self.vocab)


def val_blocks(
    units: list[np.ndarray], vocab: UnitVocab, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validation blocks (every held-out utterance once, padded tail kept) and per-unit labels."""
    packed = pack(units, vocab, block_size)
    return packed.ids, unit_targets(packed.ids, vocab)
