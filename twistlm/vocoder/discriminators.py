"""HiFi-GAN discriminators: multi-period (MPD) and multi-scale (MSD).

Follows jik876/hifi-gan ``models.py`` (DiscriminatorP, DiscriminatorS, periods 2/3/5/7/11,
three scales with the first under spectral norm). ``width`` scales every channel count
(1.0 = the paper's sizes; smaller for CPU budgets). Each discriminator returns its score
map and the list of intermediate feature maps (for the feature-matching loss).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

LRELU_SLOPE = 0.1


def _c(n: int, width: float) -> int:
    return max(4, int(round(n * width)))


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, width: float = 1.0, kernel_size: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        chans = [1] + [_c(n, width) for n in (32, 128, 512, 1024)]
        pad = (kernel_size - 1) // 2
        layers = [
            weight_norm(
                nn.Conv2d(chans[i], chans[i + 1], (kernel_size, 1), (stride, 1), padding=(pad, 0))
            )
            for i in range(4)
        ]
        layers.append(
            weight_norm(nn.Conv2d(chans[4], chans[4], (kernel_size, 1), 1, padding=(2, 0)))
        )
        self.convs = nn.ModuleList(layers)
        self.conv_post = weight_norm(nn.Conv2d(chans[4], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        # (B, 1, T) -> (B, 1, T/p, p): each column is one phase of the period
        b, c, t = x.shape
        if t % self.period:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), "reflect")
            t = t + n_pad
        x = x.view(b, c, t // self.period, self.period)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return x.flatten(1), fmap


class ScaleDiscriminator(nn.Module):
    def __init__(self, width: float = 1.0, use_spectral_norm: bool = False):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        # (in, out, kernel, stride, groups, padding) from hifi-gan DiscriminatorS
        spec = [
            (1, 128, 15, 1, 1, 7),
            (128, 128, 41, 2, 4, 20),
            (128, 256, 41, 2, 16, 20),
            (256, 512, 41, 4, 16, 20),
            (512, 1024, 41, 4, 16, 20),
            (1024, 1024, 41, 1, 16, 20),
            (1024, 1024, 5, 1, 1, 2),
        ]
        layers = []
        for cin, cout, k, s, g, p in spec:
            ci, co = (1 if cin == 1 else _c(cin, width)), _c(cout, width)
            g = min(g, ci, co)
            while ci % g or co % g:
                g -= 1
            layers.append(norm(nn.Conv1d(ci, co, k, s, groups=g, padding=p)))
        self.convs = nn.ModuleList(layers)
        self.conv_post = norm(nn.Conv1d(_c(1024, width), 1, 3, 1, padding=1))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return x.flatten(1), fmap


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods=(2, 3, 5, 7, 11), width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, width) for p in periods)

    def forward(self, y: Tensor, y_hat: Tensor):
        """Real and generated (B, 1, T) -> scores and feature maps for each sub-discriminator."""
        out = ([], [], [], [])
        for d in self.discriminators:
            r, fr = d(y)
            g, fg = d(y_hat)
            for lst, v in zip(out, (r, g, fr, fg), strict=True):
                lst.append(v)
        return out


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        self.discriminators = nn.ModuleList(
            [
                ScaleDiscriminator(width, use_spectral_norm=True),
                ScaleDiscriminator(width),
                ScaleDiscriminator(width),
            ]
        )
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, y: Tensor, y_hat: Tensor):
        out = ([], [], [], [])
        for i, d in enumerate(self.discriminators):
            if i:
                y, y_hat = self.pool(y), self.pool(y_hat)
            r, fr = d(y)
            g, fg = d(y_hat)
            for lst, v in zip(out, (r, g, fr, fg), strict=True):
                lst.append(v)
        return out
