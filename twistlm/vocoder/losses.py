"""HiFi-GAN losses (jik876/hifi-gan ``models.py``): LSGAN adversarial terms and feature matching.

Weights used by the trainer (hifi-gan): mel L1 x 45, feature matching x 2, adversarial x 1.
"""

from __future__ import annotations

import torch
from torch import Tensor


def feature_loss(fmap_r: list[list[Tensor]], fmap_g: list[list[Tensor]]) -> Tensor:
    """Sum over discriminators and layers of mean |real - generated| feature maps (x 2 as hifi-gan)."""
    loss = torch.zeros(())
    for dr, dg in zip(fmap_r, fmap_g, strict=True):
        for r, g in zip(dr, dg, strict=True):
            loss = loss + torch.mean(torch.abs(r.detach().float() - g.float()))
    return loss * 2


def discriminator_loss(real: list[Tensor], fake: list[Tensor]) -> Tensor:
    """LSGAN: sum of mean (1 - D(y))^2 + mean D(G(x))^2 over sub-discriminators."""
    loss = torch.zeros(())
    for r, g in zip(real, fake, strict=True):
        loss = loss + torch.mean((1 - r.float()) ** 2) + torch.mean(g.float() ** 2)
    return loss


def generator_loss(fake: list[Tensor]) -> Tensor:
    """LSGAN generator term: sum of mean (1 - D(G(x)))^2."""
    loss = torch.zeros(())
    for g in fake:
        loss = loss + torch.mean((1 - g.float()) ** 2)
    return loss
