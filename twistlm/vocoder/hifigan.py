"""CodeHiFiGAN generator with textlesslib's exact module layout (so released checkpoints load).

Layout and forward pass follow, name for name:
- textlesslib ``textless/vocoders/hifigan/generator.py`` (``Generator``, ``CodeGenerator``,
  ``VariancePredictor``) and ``resblock.py`` (``ResBlock``, ``LRELU_SLOPE = 0.1``);
- fairseq ``fairseq/models/text_to_speech/codehifigan.py`` (same ``CodeGenerator``) with
  ``VariancePredictor`` from ``fastspeech2.py`` (same parameter names);
- both adapted from jik876/hifi-gan and facebookresearch/speech-resynthesis.

State-dict keys (weight norm on): ``conv_pre.weight_g/_v``, ``ups.I.weight_g/_v``,
``resblocks.J.convs{1,2}.K.weight_g/_v``, ``conv_post.weight_g/_v`` (+ biases), ``dict.weight``,
optional ``spkr.weight`` and ``dur_predictor.{conv1.0, ln1, conv2.0, ln2, proj}.*``.
We use the modern parametrization weight norm (keys ``X.parametrizations.weight.original0/1``)
and translate textless ``weight_g``/``weight_v`` keys with :func:`from_textless_keys`.

The model does no I/O; :mod:`twistlm.vocoder` (``Vocoder``) loads and saves.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

LRELU_SLOPE = 0.1  # textless resblock.py; note the generator's final leaky_relu uses torch's 0.01


def init_weights(m: nn.Module, std: float = 0.01) -> None:
    # hifi-gan init: N(0, 0.01) on every conv (applied before weight norm, as in textless)
    if "Conv" in type(m).__name__:
        m.weight.data.normal_(0.0, std)


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def _wn_conv(conv: nn.Module, init: bool = True) -> nn.Module:
    if init:
        init_weights(conv)
    return weight_norm(conv)


class ResBlock(nn.Module):
    """HiFi-GAN ResBlock1: three (dilated conv, conv) pairs with residuals. x: (B, C, T) -> same."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation=(1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList(
            _wn_conv(
                nn.Conv1d(
                    channels,
                    channels,
                    kernel_size,
                    1,
                    dilation=d,
                    padding=get_padding(kernel_size, d),
                )
            )
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            _wn_conv(
                nn.Conv1d(channels, channels, kernel_size, 1, padding=get_padding(kernel_size, 1))
            )
            for _ in dilation
        )

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = xt + x
        return x


class VariancePredictor(nn.Module):
    """Duration predictor (fairseq FastSpeech2 ``VariancePredictor``). x: (B, N, C) -> (B, N) log(1+dur)."""

    def __init__(
        self,
        encoder_embed_dim: int,
        var_pred_hidden_dim: int,
        var_pred_kernel_size: int,
        var_pred_dropout: float,
    ):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv1d(
                encoder_embed_dim,
                var_pred_hidden_dim,
                kernel_size=var_pred_kernel_size,
                padding=(var_pred_kernel_size - 1) // 2,
            ),
            nn.ReLU(),
        )
        self.ln1 = nn.LayerNorm(var_pred_hidden_dim)
        self.dropout = var_pred_dropout
        # padding=1 for conv2 regardless of kernel size: textless/fairseq do exactly this
        self.conv2 = nn.Sequential(
            nn.Conv1d(
                var_pred_hidden_dim,
                var_pred_hidden_dim,
                kernel_size=var_pred_kernel_size,
                padding=1,
            ),
            nn.ReLU(),
        )
        self.ln2 = nn.LayerNorm(var_pred_hidden_dim)
        self.proj = nn.Linear(var_pred_hidden_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x.transpose(1, 2)).transpose(1, 2)
        x = F.dropout(self.ln1(x), p=self.dropout, training=self.training)
        x = self.conv2(x.transpose(1, 2)).transpose(1, 2)
        x = F.dropout(self.ln2(x), p=self.dropout, training=self.training)
        return self.proj(x).squeeze(dim=2)


def check_config(cfg: dict[str, Any]) -> None:
    """Raise ValueError for a generator config the model cannot be built from."""
    required = (
        "num_embeddings",
        "embedding_dim",
        "upsample_rates",
        "upsample_kernel_sizes",
        "upsample_initial_channel",
        "resblock_kernel_sizes",
        "resblock_dilation_sizes",
    )
    missing = [k for k in required if k not in cfg]
    if missing:
        raise ValueError(f"vocoder config misses {missing}")
    if len(cfg["upsample_rates"]) != len(cfg["upsample_kernel_sizes"]):
        raise ValueError("upsample_rates and upsample_kernel_sizes differ in length")
    if len(cfg["resblock_kernel_sizes"]) != len(cfg["resblock_dilation_sizes"]):
        raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes differ in length")
    if str(cfg.get("resblock", "1")) != "1":
        # textless builds ResBlock1 whatever this says; we refuse rather than silently differ
        raise ValueError(
            f"only resblock '1' (HiFi-GAN ResBlock1) is supported, got {cfg['resblock']!r}"
        )
    if cfg.get("f0") or cfg.get("multistyle") or cfg.get("embedder_params"):
        raise ValueError(
            "f0-, style- and embedder-conditioned CodeHiFiGAN variants are not supported"
        )
    for u, k in zip(cfg["upsample_rates"], cfg["upsample_kernel_sizes"], strict=True):
        if (k - u) % 2:
            raise ValueError(f"upsample kernel {k} - rate {u} must be even for exact hop lengths")


def model_in_dim(cfg: dict[str, Any]) -> int:
    """Input channels of conv_pre: explicit ``model_in_dim`` or embedding (+ speaker) dims."""
    if "model_in_dim" in cfg:
        return int(cfg["model_in_dim"])
    return cfg["embedding_dim"] * (2 if cfg.get("multispkr") else 1)


class CodeGenerator(nn.Module):
    """Units (B, T_frames) -> waveform (B, 1, T_frames * hop) in [-1, 1]."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        check_config(cfg)
        ch0 = cfg["upsample_initial_channel"]
        self.num_kernels = len(cfg["resblock_kernel_sizes"])
        self.num_upsamples = len(cfg["upsample_rates"])
        # textless defaults model_in_dim to 80 (mel input); unit configs set it, else we derive it
        self.conv_pre = _wn_conv(nn.Conv1d(model_in_dim(cfg), ch0, 7, 1, padding=3), init=False)
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(
            zip(cfg["upsample_rates"], cfg["upsample_kernel_sizes"], strict=True)
        ):
            self.ups.append(
                _wn_conv(
                    nn.ConvTranspose1d(ch0 // 2**i, ch0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)
                )
            )
        self.resblocks = nn.ModuleList()
        ch = ch0
        for i in range(self.num_upsamples):
            ch = ch0 // 2 ** (i + 1)
            for k, d in zip(
                cfg["resblock_kernel_sizes"], cfg["resblock_dilation_sizes"], strict=True
            ):
                self.resblocks.append(ResBlock(ch, k, d))
        self.conv_post = _wn_conv(nn.Conv1d(ch, 1, 7, 1, padding=3))

        self.dict = nn.Embedding(cfg["num_embeddings"], cfg["embedding_dim"])
        self.multispkr = bool(cfg.get("multispkr"))
        if self.multispkr:
            self.spkr = nn.Embedding(cfg.get("num_speakers", 200), cfg["embedding_dim"])
        self.dur_predictor = None
        if cfg.get("dur_predictor_params"):
            p = cfg["dur_predictor_params"]
            self.dur_predictor = VariancePredictor(
                p["encoder_embed_dim"],
                p["var_pred_hidden_dim"],
                p["var_pred_kernel_size"],
                p["var_pred_dropout"],
            )
        self.hop = 1
        for u in cfg["upsample_rates"]:
            self.hop *= u

    # ---- pieces ---------------------------------------------------------------------------
    def predict_log_durations(self, units: Tensor) -> Tensor:
        """(B, N) deduplicated units -> (B, N) predicted log(1 + frames)."""
        if self.dur_predictor is None:
            raise ValueError("this vocoder has no duration predictor")
        return self.dur_predictor(self.dict(units))

    def decode(self, x: Tensor) -> Tensor:
        """HiFi-GAN body: (B, C_in, T) conditioning -> (B, 1, T * hop)."""
        x = self.conv_pre(x)
        for i in range(self.num_upsamples):
            x = self.ups[i](F.leaky_relu(x, LRELU_SLOPE))
            xs = self.resblocks[i * self.num_kernels](x)
            for j in range(1, self.num_kernels):
                xs = xs + self.resblocks[i * self.num_kernels + j](x)
            x = xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01, as in hifi-gan / textless
        return torch.tanh(x)

    def forward(self, units: Tensor, speaker: Tensor | None = None) -> Tensor:
        """units: (B, T_frames) frame-level (already expanded) ids; speaker: (B,) ids -> (B, 1, T*hop)."""
        x = self.dict(units).transpose(1, 2)  # (B, E, T)
        if self.multispkr:
            if speaker is None:
                raise ValueError("multi-speaker vocoder needs a speaker id")
            s = self.spkr(speaker.view(-1)).unsqueeze(2).expand(-1, -1, x.shape[2])  # (B, E, T)
            x = torch.cat([x, s], dim=1)
        return self.decode(x)

    # ---- weight norm -------------------------------------------------------------------------
    def remove_weight_norm(self) -> None:
        """Fold weight norm into plain ``weight`` tensors (inference; textless does this at load)."""
        for m in self.modules():
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)

    @property
    def has_weight_norm(self) -> bool:
        return any(parametrize.is_parametrized(m, "weight") for m in self.modules())


_G, _V = "parametrizations.weight.original0", "parametrizations.weight.original1"


def from_textless_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename legacy weight-norm keys (``X.weight_g``/``X.weight_v``) to parametrization keys."""
    out = {}
    for k, v in state.items():
        if k.endswith(".weight_g"):
            out[k[: -len("weight_g")] + _G] = v
        elif k.endswith(".weight_v"):
            out[k[: -len("weight_v")] + _V] = v
        else:
            out[k] = v
    return out


def to_textless_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Inverse of :func:`from_textless_keys` (write checkpoints textlesslib can load)."""
    out = {}
    for k, v in state.items():
        if k.endswith(_G):
            out[k[: -len(_G)] + "weight_g"] = v
        elif k.endswith(_V):
            out[k[: -len(_V)] + "weight_v"] = v
        else:
            out[k] = v
    return out


def upsample_plan(hop: int, max_rate: int = 5) -> tuple[list[int], list[int]]:
    """Upsample rates (product == hop, largest first, each <= max_rate) and kernels.

    Kernels follow textlesslib's configs (rate 5 -> 11, 4 -> 8, 2 -> 4: 2u, or 2u+1 when u is
    odd), which keep ``kernel - rate`` even so every stage multiplies the length exactly.
    320 -> [5, 4, 4, 4], 640 -> [5, 4, 4, 4, 2]; with max_rate 8: 640 -> [8, 5, 4, 4].
    textless's own 50 Hz config uses [5, 4, 4, 2, 2] (the ``full`` preset keeps it).
    """
    rates, rest = [], hop
    for f in sorted(range(2, max_rate + 1), reverse=True):
        while rest % f == 0 and rest > 1:
            rates.append(f)
            rest //= f
    if rest != 1 or not rates:
        raise ValueError(
            f"hop {hop} has a prime factor > {max_rate}; pass upsample_rates explicitly"
        )
    rates.sort(reverse=True)
    kernels = [2 * u if u % 2 == 0 else 2 * u + 1 for u in rates]
    return rates, kernels
