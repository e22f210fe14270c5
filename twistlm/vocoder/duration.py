"""Duration helpers for deduplicated units: the textless rounding rule, expansion, targets.

Sources: textlesslib ``CodeGenerator.forward`` (prediction rule) and speech-resynthesis
``models.py`` (training target ``log(1 + dur)`` with MSE), both facebookresearch.
"""

from __future__ import annotations

import torch
from torch import Tensor


def durations_from_log(log_dur: Tensor) -> Tensor:
    """textless rule: ``clamp(round(exp(log_dur) - 1), min=1)`` as int64 frames per unit."""
    return torch.clamp(torch.round(torch.exp(log_dur) - 1).long(), min=1)


def log_duration_targets(durations: Tensor) -> Tensor:
    """Frames per unit -> regression target ``log(1 + dur)`` (float)."""
    return torch.log1p(durations.float())


def expand_units(units: Tensor, durations: Tensor) -> Tensor:
    """(N,) units repeated by (N,) durations -> (sum(durations),) frame-level units."""
    if units.shape != durations.shape:
        raise ValueError(
            f"units {tuple(units.shape)} and durations {tuple(durations.shape)} differ"
        )
    if durations.numel() and int(durations.min()) < 1:
        raise ValueError("durations must be >= 1 frame")
    return torch.repeat_interleave(units, durations)


def masked_duration_loss(log_pred: Tensor, durations: Tensor, mask: Tensor) -> Tensor:
    """MSE between (B, N) predicted log durations and log(1 + durations), over mask==True."""
    err = (log_pred.float() - log_duration_targets(durations)) ** 2
    m = mask.float()
    return (err * m).sum() / m.sum().clamp(min=1.0)
