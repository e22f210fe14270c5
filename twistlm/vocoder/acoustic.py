"""A unit vocoder without a GAN: units -> log-magnitude spectrogram (one voice) -> Griffin-Lim.

A CANDIDATE for an intelligible offline vocoder (not yet the default; its WER is not measured
here yet). The idea: aligned regression converges in minutes on a CPU where a GAN does not,
and Griffin-Lim from a true magnitude is as intelligible as the original audio (measured:
Whisper WER 22.8% vs 23.7%, docs/measurements.md), so everything rests on predicting the
spectrum from the units.

Model (non-autoregressive, FastSpeech-like without attention):
- deduplicated units and their durations (frames at the tokenizer hop) are expanded to STFT
  frames (``hop // 160`` per unit frame, STFT hop 160 = 10 ms at 16 kHz);
- input per STFT frame: the unit's embedding plus a projection of (position inside the unit's
  run in [0, 1), log of the run's length in unit frames);
- ``layers`` residual blocks (Conv1d, GELU, LayerNorm, dropout) at the STFT frame rate;
- a 1x1 conv to ``n_fft // 2 + 1`` natural-log magnitudes, trained with L1 against the STFT of
  the voice's audio (n_fft 1024, Hann window, centred);
- a duration predictor on the deduplicated units (fairseq FastSpeech2 ``VariancePredictor``,
  MSE on ``log(1 + frames)``, textless rounding rule), so ``synthesize(units)`` works without
  durations, as the HiFi-GAN vocoder's does.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from twistlm.vocoder.duration import durations_from_log
from twistlm.vocoder.griffinlim import N_FFT, STFT_HOP, griffin_lim
from twistlm.vocoder.hifigan import VariancePredictor
from twistlm.vocoder.unit_vocoder import check_durations, check_units, save_weights

CONFIG_FILE = "acoustic.json"
WEIGHTS_FILE = "acoustic.safetensors"
KIND = "units-spectrogram-griffin-lim"
LOG_FLOOR = 1e-5


@dataclass(frozen=True)
class AcousticConfig:
    """Shape of the acoustic model.

    Attributes:
        n_units: unit vocabulary (the tokenizer's k).
        hop: samples per unit frame (the tokenizer's hop: 640 at 25 Hz, 320 at 50 Hz).
        sample_rate: audio rate (16 kHz).
        dim / layers / kernel / dropout: the residual conv stack at the STFT frame rate.
        dur_hidden / dur_kernel: the duration predictor.
        gl_iters: Griffin-Lim iterations at synthesis.
    """

    n_units: int
    hop: int
    sample_rate: int = 16_000
    dim: int = 256
    layers: int = 6
    kernel: int = 5
    dropout: float = 0.1
    dur_hidden: int = 128
    dur_kernel: int = 3
    gl_iters: int = 32

    def __post_init__(self) -> None:
        if self.n_units < 1:
            raise ValueError(f"n_units must be >= 1, got {self.n_units}")
        if self.hop < STFT_HOP or self.hop % STFT_HOP:
            raise ValueError(f"hop {self.hop} must be a positive multiple of {STFT_HOP}")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {self.kernel}")

    @property
    def frames_per_unit_frame(self) -> int:
        return self.hop // STFT_HOP

    @property
    def n_freq(self) -> int:
        return N_FFT // 2 + 1


class _Block(nn.Module):
    def __init__(self, dim: int, kernel: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim)
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # x (B, C, T), mask (B, 1, T)
        y = F.gelu(self.conv(x * mask))
        y = self.norm(y.transpose(1, 2)).transpose(1, 2)
        return x + F.dropout(y, self.dropout, self.training)


def frame_features(units: Tensor, durations: Tensor, r: int) -> tuple[Tensor, Tensor]:
    """(N,) deduplicated units and (N,) durations (unit frames) -> per STFT frame (T = sum * r):
    the unit id (T,) and [position inside its run in [0, 1), log(run length)] (T, 2)."""
    steps = durations.long() * r
    ids = torch.repeat_interleave(units.long(), steps)
    start = torch.repeat_interleave(torch.cumsum(steps, 0) - steps, steps)
    length = torch.repeat_interleave(steps, steps).float()
    pos = (torch.arange(ids.numel()) - start).float() / length
    log_len = torch.log(length / r)
    return ids, torch.stack([pos, log_len], dim=1)


class UnitSpectrogramModel(nn.Module):
    """Units + durations -> (B, n_freq, T) natural-log magnitudes at the STFT frame rate."""

    def __init__(self, cfg: AcousticConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.n_units, cfg.dim)
        self.position = nn.Linear(2, cfg.dim)
        self.blocks = nn.ModuleList(
            _Block(cfg.dim, cfg.kernel, cfg.dropout) for _ in range(cfg.layers)
        )
        self.out = nn.Conv1d(cfg.dim, cfg.n_freq, 1)
        self.dur_embed = nn.Embedding(cfg.n_units, cfg.dim)
        self.dur_predictor = VariancePredictor(cfg.dim, cfg.dur_hidden, cfg.dur_kernel, cfg.dropout)

    def forward(self, ids: Tensor, feats: Tensor, mask: Tensor) -> Tensor:
        """ids (B, T), feats (B, T, 2), mask (B, T) -> (B, n_freq, T) log magnitudes."""
        x = (self.embed(ids) + self.position(feats)).transpose(1, 2)
        m = mask.unsqueeze(1).to(x.dtype)
        for block in self.blocks:
            x = block(x, m)
        return self.out(x * m)

    def predict_log_durations(self, units: Tensor) -> Tensor:
        """(B, N) deduplicated units -> (B, N) predicted log(1 + frames)."""
        return self.dur_predictor(self.dur_embed(units))


def log_magnitude(wav: Tensor, window: Tensor) -> Tensor:
    """(B, S) audio -> (B, n_freq, S // STFT_HOP + 1) natural-log STFT magnitudes (centred,
    zero-padded at the edges, as Griffin-Lim's STFT here)."""
    spec = torch.stft(
        wav.float(), N_FFT, STFT_HOP, window=window, return_complex=True, pad_mode="constant"
    )
    return torch.log(spec.abs().clamp(min=LOG_FLOOR))


class AcousticVocoder:
    """Inference wrapper with the :class:`~twistlm.vocoder.Vocoder` interface (one voice)."""

    label = "acoustic model (units -> log spectrogram) + Griffin-Lim"

    def __init__(self, model: UnitSpectrogramModel, info: dict[str, Any] | None = None):
        self.model = model.eval()
        self.cfg = model.cfg
        self.info = dict(info or {})
        self.sample_rate = self.cfg.sample_rate
        self.hop = self.cfg.hop
        self.n_units = self.cfg.n_units
        self.has_duration_predictor = True
        self.speakers: list[str] = []
        self.window = torch.hann_window(N_FFT)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> AcousticVocoder:
        from safetensors.torch import load_file

        path = Path(path)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (path / name).exists():
                raise FileNotFoundError(f"{path}: not an acoustic vocoder dir (missing {name})")
        meta = json.loads((path / CONFIG_FILE).read_text())
        if meta.get("kind") != KIND:
            raise ValueError(f"{path}: kind {meta.get('kind')!r}, expected {KIND!r}")
        model = UnitSpectrogramModel(AcousticConfig(**meta["config"]))
        model.load_state_dict(load_file(str(path / WEIGHTS_FILE)), strict=True)
        return cls(model, meta.get("info"))

    def save_pretrained(self, path: str | Path) -> None:
        from twistlm.io import write_json

        path = Path(path)
        save_weights(self.model, path / WEIGHTS_FILE)
        write_json(
            path / CONFIG_FILE, {"kind": KIND, "config": asdict(self.cfg), "info": self.info}
        )

    def _check_units(self, units: Tensor) -> Tensor:
        return check_units(units, self.n_units)

    @torch.inference_mode()
    def predict_durations(self, units: Tensor) -> Tensor:
        """(N,) deduplicated units -> (N,) int64 frames per unit (textless rounding rule)."""
        units = self._check_units(units)
        return durations_from_log(self.model.predict_log_durations(units.unsqueeze(0))[0])

    @torch.inference_mode()
    def log_spectrogram(self, units: Tensor, durations: Tensor) -> Tensor:
        """(N,) units + (N,) durations -> (n_freq, sum(durations) * r + 1) log magnitudes."""
        ids, feats = frame_features(units, durations, self.cfg.frames_per_unit_frame)
        mask = torch.ones(1, ids.numel(), dtype=torch.bool)
        logmag = self.model(ids.unsqueeze(0), feats.unsqueeze(0), mask)[0]
        return torch.cat([logmag, logmag[:, -1:]], dim=1)  # centred STFT: one frame more

    @torch.inference_mode()
    def synthesize(
        self, units: Tensor, durations: Tensor | None = None, speaker: int | None = None
    ) -> np.ndarray:
        """(N,) units (+ (N,) frames per unit) -> (sum(durations) * hop,) float32 waveform.

        ``durations=None``: predicted. ``speaker`` must be None (one voice).
        """
        if speaker is not None:
            raise ValueError("this vocoder speaks in one voice: speaker must be None")
        units = self._check_units(units)
        durations = (
            self.predict_durations(units)
            if durations is None
            else check_durations(units, durations)
        )
        mag = torch.exp(self.log_spectrogram(units, durations).float())
        length = int(durations.sum()) * self.hop
        wav = griffin_lim(mag, length, self.cfg.gl_iters, self.window)
        peak = float(wav.abs().max())
        if peak > 1.0:
            wav = wav / peak * 0.9
        return wav.numpy().astype(np.float32)

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return (
            f"AcousticVocoder(n_units={self.n_units}, hop={self.hop}, "
            f"params={n / 1e6:.2f}M, griffin_lim_iters={self.cfg.gl_iters})"
        )


def collate(
    items: list[tuple[Tensor, Tensor, Tensor]], r: int, window: Tensor
) -> dict[str, Tensor]:
    """[(units, durations, audio float (sum(durations) * hop,))] -> a padded training batch:
    ids (B, T), feats (B, T, 2), mask (B, T), target log magnitudes (B, n_freq, T), and the
    deduplicated units / durations / unit mask for the duration loss."""
    per = [frame_features(u, d, r) for u, d, _ in items]
    t_max = max(ids.numel() for ids, _ in per)
    n_max = max(u.numel() for u, _, _ in items)
    ids = torch.zeros(len(items), t_max, dtype=torch.long)
    feats = torch.zeros(len(items), t_max, 2)
    mask = torch.zeros(len(items), t_max, dtype=torch.bool)
    target = torch.full((len(items), N_FFT // 2 + 1, t_max), math.log(LOG_FLOOR))
    units = torch.zeros(len(items), n_max, dtype=torch.long)
    durs = torch.ones(len(items), n_max, dtype=torch.long)
    umask = torch.zeros(len(items), n_max, dtype=torch.bool)
    for b, ((fi, ff), (u, d, wav)) in enumerate(zip(per, items, strict=True)):
        t = fi.numel()
        ids[b, :t], feats[b, :t], mask[b, :t] = fi, ff, True
        target[b, :, :t] = log_magnitude(wav.unsqueeze(0), window)[0, :, :t]
        units[b, : u.numel()], durs[b, : u.numel()], umask[b, : u.numel()] = u, d, True
    return {
        "ids": ids,
        "feats": feats,
        "mask": mask,
        "target": target,
        "units": units,
        "durations": durs,
        "unit_mask": umask,
    }


def losses(model: UnitSpectrogramModel, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Masked L1 on log magnitudes and the duration MSE of one batch."""
    from twistlm.vocoder.duration import masked_duration_loss

    pred = model(batch["ids"], batch["feats"], batch["mask"])
    m = batch["mask"].unsqueeze(1).float()
    l1 = ((pred - batch["target"]).abs() * m).sum() / (m.sum() * pred.shape[1]).clamp(min=1.0)
    dur = masked_duration_loss(
        model.predict_log_durations(batch["units"]), batch["durations"], batch["unit_mask"]
    )
    return {"spec_l1": l1, "dur_mse": dur}
