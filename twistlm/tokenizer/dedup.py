"""Run-length deduplication of frame units (GSLM / TWIST "dedup") and its inverse."""

from __future__ import annotations

import torch
from torch import Tensor


def dedup(units: Tensor) -> tuple[Tensor, Tensor]:
    """Collapse runs of equal consecutive units.

    Args:
        units: (n_frames,) integer frame units.
    Returns:
        (units, durations): (N,) the first unit of each run and (N,) its length in frames,
        both int64; ``durations.sum() == n_frames``.
    """
    units = torch.as_tensor(units).reshape(-1).long()
    if units.numel() == 0:
        return units.clone(), torch.zeros(0, dtype=torch.long)
    out, counts = torch.unique_consecutive(units, return_counts=True)
    return out, counts.long()


def expand(units: Tensor, durations: Tensor) -> Tensor:
    """Inverse of :func:`dedup`: repeat each unit ``durations[i]`` times -> (sum(durations),)."""
    units = torch.as_tensor(units).reshape(-1).long()
    durations = torch.as_tensor(durations).reshape(-1).long()
    if units.shape != durations.shape:
        raise ValueError(
            f"units {tuple(units.shape)} and durations {tuple(durations.shape)} differ"
        )
    if durations.numel() and int(durations.min()) < 1:
        raise ValueError("durations must be >= 1")
    return torch.repeat_interleave(units, durations)
