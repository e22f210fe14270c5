"""A unit vocoder without a GAN: units -> acoustic features of one voice -> a DSP synthesizer.

Aligned regression converges in CPU minutes where a GAN does not, so everything rests on
predicting the voice's acoustic features from the units. Two targets (``AcousticConfig.target``):

- ``"world"`` (the default): WORLD features (twistlm.vocoder.world: 40 coded envelope
  coefficients, coded aperiodicity, interpolated log f0, voicing) resynthesized by WORLD;
- ``"logmag"``: the 513-bin natural-log STFT magnitude (n_fft 1024, Hann, centred) inverted by
  Griffin-Lim (twistlm.vocoder.griffinlim; 32 iterations).

Model (non-autoregressive, FastSpeech-like without attention), all at 10 ms frames (hop 160):
- the deduplicated units are embedded and pass ``unit_layers`` residual conv blocks (or
  transformer encoder layers) over the unit sequence: the units of the offline tokenizer come
  from a contextual encoder, and one unit alone says little about its sound (measured: per-unit
  mean features resynthesize at 98% WER, docs/vocoder.md);
- each unit's vector is repeated over its frames (``hop // 160`` per unit frame) and gets a
  projection of (position inside the unit's run in [0, 1), log of the run's length in unit
  frames);
- ``layers`` residual blocks (Conv1d, GELU, LayerNorm, dropout) at the frame rate;
- a 1x1 conv to the target's features, normalized by the training set's per-dimension mean
  and standard deviation (buffers saved with the weights); L1 in the normalized space;
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
KINDS = {"world": "units-world", "logmag": "units-spectrogram-griffin-lim"}
LOG_FLOOR = 1e-5


@dataclass(frozen=True)
class AcousticConfig:
    """Shape of the acoustic model.

    Attributes:
        n_units: unit vocabulary (the tokenizer's k).
        hop: samples per unit frame (the tokenizer's hop: 640 at 25 Hz, 320 at 50 Hz).
        sample_rate: audio rate (16 kHz).
        target: ``"world"`` (WORLD features + WORLD synthesis) or ``"logmag"`` (log STFT
            magnitude + Griffin-Lim).
        dim / unit_layers / layers / kernel / dropout: width, layers over the unit sequence,
            conv blocks at the frame rate, their kernel and dropout.
        unit_encoder: the layers over the unit sequence: ``"conv"`` (residual conv blocks,
            kernel 3; the default) or ``"transformer"`` (pre-LN encoder layers, 4 heads,
            sinusoidal positions: the whole utterance as context; measured no better here).
        dur_hidden / dur_kernel: the duration predictor.
        gl_iters: Griffin-Lim iterations at synthesis (``logmag`` only).
    """

    n_units: int
    hop: int
    sample_rate: int = 16_000
    target: str = "world"
    dim: int = 256
    unit_layers: int = 3
    unit_encoder: str = "conv"
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
        if self.unit_encoder not in ("transformer", "conv"):
            raise ValueError(f"unit_encoder must be transformer or conv, got {self.unit_encoder!r}")
        if self.unit_encoder == "transformer" and self.dim % 4:
            raise ValueError(f"dim must be a multiple of 4 heads, got {self.dim}")
        if self.target not in KINDS:
            raise ValueError(f"target must be one of {sorted(KINDS)}, got {self.target!r}")

    @property
    def frames_per_unit_frame(self) -> int:
        return self.hop // STFT_HOP

    @property
    def n_out(self) -> int:
        if self.target == "logmag":
            return N_FFT // 2 + 1
        from twistlm.vocoder import world

        return world.n_features(self.sample_rate)


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


def frame_index(durations: Tensor, r: int) -> tuple[Tensor, Tensor]:
    """(N,) durations (unit frames) -> per 10 ms frame (T = sum * r): the index of its unit in
    the deduplicated sequence (T,) and [position inside the run in [0, 1), log(run length in
    unit frames)] (T, 2)."""
    steps = durations.long() * r
    index = torch.repeat_interleave(torch.arange(steps.numel()), steps)
    start = torch.repeat_interleave(torch.cumsum(steps, 0) - steps, steps)
    length = torch.repeat_interleave(steps, steps).float()
    pos = (torch.arange(index.numel()) - start).float() / length
    return index, torch.stack([pos, torch.log(length / r)], dim=1)


def frame_features(units: Tensor, durations: Tensor, r: int) -> tuple[Tensor, Tensor]:
    """(N,) units + durations -> the unit id per frame (T,) and the run features (T, 2)."""
    index, feats = frame_index(durations, r)
    return units.long()[index], feats


def sinusoidal_positions(n: int, dim: int) -> Tensor:
    """(n, dim) sine/cosine position table (Vaswani et al. 2017)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(n, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


class AcousticModel(nn.Module):
    """Units + durations -> (B, n_out, T) normalized acoustic features at 10 ms frames."""

    def __init__(self, cfg: AcousticConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.n_units, cfg.dim)
        if cfg.unit_encoder == "transformer":
            self.unit_blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(
                    cfg.dim, 4, 4 * cfg.dim, cfg.dropout, batch_first=True, norm_first=True
                )
                for _ in range(cfg.unit_layers)
            )
        else:
            self.unit_blocks = nn.ModuleList(
                _Block(cfg.dim, 3, cfg.dropout) for _ in range(cfg.unit_layers)
            )
        self.position = nn.Linear(2, cfg.dim)
        self.blocks = nn.ModuleList(
            _Block(cfg.dim, cfg.kernel, cfg.dropout) for _ in range(cfg.layers)
        )
        self.out = nn.Conv1d(cfg.dim, cfg.n_out, 1)
        self.register_buffer("feature_mean", torch.zeros(cfg.n_out))
        self.register_buffer("feature_std", torch.ones(cfg.n_out))
        self.dur_embed = nn.Embedding(cfg.n_units, cfg.dim)
        self.dur_predictor = VariancePredictor(cfg.dim, cfg.dur_hidden, cfg.dur_kernel, cfg.dropout)

    def forward(
        self, units: Tensor, unit_mask: Tensor, index: Tensor, feats: Tensor, mask: Tensor
    ) -> Tensor:
        """units / unit_mask (B, N); index (B, T) into the units, feats (B, T, 2), mask (B, T)
        -> (B, n_out, T) features in the normalized space."""
        u = self._encode_units(units, unit_mask)
        x = torch.gather(u, 2, index.unsqueeze(1).expand(-1, u.shape[1], -1))
        x = x + self.position(feats).transpose(1, 2)
        m = mask.unsqueeze(1).to(x.dtype)
        for block in self.blocks:
            x = block(x, m)
        return self.out(x * m)

    def _encode_units(self, units: Tensor, unit_mask: Tensor) -> Tensor:
        """(B, N) units -> (B, dim, N) unit vectors in context."""
        u = self.embed(units)
        if self.cfg.unit_encoder == "conv":
            u = u.transpose(1, 2)
            um = unit_mask.unsqueeze(1).to(u.dtype)
            for block in self.unit_blocks:
                u = block(u, um)
            return u
        u = u + sinusoidal_positions(units.shape[1], self.cfg.dim).to(u.dtype)
        for layer in self.unit_blocks:
            u = layer(u, src_key_padding_mask=~unit_mask)
        return u.transpose(1, 2)

    def normalize(self, features: Tensor) -> Tensor:
        """(..., n_out, T) raw features -> the normalized space the model predicts in."""
        return (features - self.feature_mean[:, None]) / self.feature_std[:, None]

    def denormalize(self, pred: Tensor) -> Tensor:
        return pred * self.feature_std[:, None] + self.feature_mean[:, None]

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


def analyze(audio: np.ndarray, cfg: AcousticConfig) -> np.ndarray:
    """(S,) float audio -> (S // 160 + 1, n_out) float32 raw target features."""
    if cfg.target == "world":
        from twistlm.vocoder import world

        return world.analyze(audio, cfg.sample_rate)
    window = torch.hann_window(N_FFT)
    return log_magnitude(torch.from_numpy(audio).float()[None], window)[0].T.numpy()


class AcousticVocoder:
    """Inference wrapper with the :class:`~twistlm.vocoder.Vocoder` interface (one voice)."""

    def __init__(self, model: AcousticModel, info: dict[str, Any] | None = None):
        self.model = model.eval()
        self.cfg = model.cfg
        self.info = dict(info or {})
        self.sample_rate = self.cfg.sample_rate
        self.hop = self.cfg.hop
        self.n_units = self.cfg.n_units
        self.has_duration_predictor = True
        self.speakers: list[str] = []
        self.window = torch.hann_window(N_FFT)
        self.label = (
            "acoustic model (units -> WORLD features) + WORLD"
            if self.cfg.target == "world"
            else "acoustic model (units -> log spectrogram) + Griffin-Lim"
        )

    @classmethod
    def from_pretrained(cls, path: str | Path) -> AcousticVocoder:
        from safetensors.torch import load_file

        path = Path(path)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (path / name).exists():
                raise FileNotFoundError(f"{path}: not an acoustic vocoder dir (missing {name})")
        meta = json.loads((path / CONFIG_FILE).read_text())
        if meta.get("kind") not in KINDS.values():
            raise ValueError(
                f"{path}: kind {meta.get('kind')!r}, expected one of {sorted(KINDS.values())}"
            )
        cfg = AcousticConfig(**meta["config"])
        if KINDS[cfg.target] != meta["kind"]:
            raise ValueError(f"{path}: kind {meta['kind']!r} does not match target {cfg.target!r}")
        model = AcousticModel(cfg)
        state = {k: v.float() for k, v in load_file(str(path / WEIGHTS_FILE)).items()}
        model.load_state_dict(state, strict=True)
        return cls(model, meta.get("info"))

    def save_pretrained(self, path: str | Path, half: bool = False) -> None:
        """Write acoustic.json + acoustic.safetensors (``half``: fp16 weights, half the size;
        loading casts back to fp32)."""
        from twistlm.io import write_json

        path = Path(path)
        save_weights(self.model, path / WEIGHTS_FILE, half=half)
        write_json(
            path / CONFIG_FILE,
            {"kind": KINDS[self.cfg.target], "config": asdict(self.cfg), "info": self.info},
        )

    def _check_units(self, units: Tensor) -> Tensor:
        return check_units(units, self.n_units)

    @torch.inference_mode()
    def predict_durations(self, units: Tensor) -> Tensor:
        """(N,) deduplicated units -> (N,) int64 frames per unit (textless rounding rule)."""
        units = self._check_units(units)
        return durations_from_log(self.model.predict_log_durations(units.unsqueeze(0))[0])

    @torch.inference_mode()
    def features(self, units: Tensor, durations: Tensor) -> Tensor:
        """(N,) units + (N,) durations -> (n_out, sum(durations) * r + 1) raw features (the
        last frame repeated: the centred analysis has one frame more than the unit frames)."""
        index, feats = frame_index(durations, self.cfg.frames_per_unit_frame)
        n = units.numel()
        pred = self.model(
            units.long().unsqueeze(0),
            torch.ones(1, n, dtype=torch.bool),
            index.unsqueeze(0),
            feats.unsqueeze(0),
            torch.ones(1, index.numel(), dtype=torch.bool),
        )[0]
        pred = self.model.denormalize(pred)
        return torch.cat([pred, pred[:, -1:]], dim=1)

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
        feats = self.features(units, durations).float()
        length = int(durations.sum()) * self.hop
        if self.cfg.target == "world":
            from twistlm.vocoder import world

            wav = world.synthesize(feats.T.numpy(), self.sample_rate, length)
        else:
            wav = griffin_lim(torch.exp(feats), length, self.cfg.gl_iters, self.window).numpy()
        peak = float(np.abs(wav).max()) if wav.size else 0.0
        if peak > 1.0:
            wav = wav / peak * 0.9
        return wav.astype(np.float32)

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return (
            f"AcousticVocoder(target={self.cfg.target}, n_units={self.n_units}, "
            f"hop={self.hop}, params={n / 1e6:.2f}M)"
        )


def collate(items: list[tuple[Tensor, Tensor, Tensor]], r: int) -> dict[str, Tensor]:
    """[(units (N,), durations (N,), raw target features (sum(durations) * r, n_out))] -> a
    padded batch: units / durations / unit_mask (B, N), index / feats / mask (B, T) and the
    target (B, n_out, T)."""
    per = [frame_index(d, r) for _, d, _ in items]
    t_max = max(idx.numel() for idx, _ in per)
    n_max = max(u.numel() for u, _, _ in items)
    n_out = items[0][2].shape[1]
    b = len(items)
    batch = {
        "units": torch.zeros(b, n_max, dtype=torch.long),
        "durations": torch.ones(b, n_max, dtype=torch.long),
        "unit_mask": torch.zeros(b, n_max, dtype=torch.bool),
        "index": torch.zeros(b, t_max, dtype=torch.long),
        "feats": torch.zeros(b, t_max, 2),
        "mask": torch.zeros(b, t_max, dtype=torch.bool),
        "target": torch.zeros(b, n_out, t_max),
    }
    for i, ((idx, ff), (u, d, tgt)) in enumerate(zip(per, items, strict=True)):
        t, n = idx.numel(), u.numel()
        if tgt.shape[0] != t:
            raise ValueError(f"target has {tgt.shape[0]} frames, durations give {t}")
        batch["units"][i, :n], batch["durations"][i, :n], batch["unit_mask"][i, :n] = u, d, True
        batch["index"][i, :t], batch["feats"][i, :t], batch["mask"][i, :t] = idx, ff, True
        batch["target"][i, :, :t] = tgt.T
    return batch


def losses(model: AcousticModel, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Masked L1 in the normalized feature space and the duration MSE of one batch."""
    from twistlm.vocoder.duration import masked_duration_loss

    pred = model(batch["units"], batch["unit_mask"], batch["index"], batch["feats"], batch["mask"])
    target = model.normalize(batch["target"])
    m = batch["mask"].unsqueeze(1).float()
    l1 = ((pred - target).abs() * m).sum() / (m.sum() * pred.shape[1]).clamp(min=1.0)
    dur = masked_duration_loss(
        model.predict_log_durations(batch["units"]), batch["durations"], batch["unit_mask"]
    )
    return {"feature_l1": l1, "dur_mse": dur}
