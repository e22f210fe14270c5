"""Log-mel spectrogram for the HiFi-GAN mel loss (jik876/hifi-gan ``meldataset.mel_spectrogram``).

Filterbank: Slaney mel scale with Slaney area normalisation (librosa's default, which
hifi-gan uses). STFT: Hann window, reflect padding of (n_fft - hop) / 2 on each side and
``center=False``, magnitude with a 1e-9 floor, ``log(clamp(mel, 1e-5))``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(
        f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp
    )


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, Slaney-normalised (area ~ 1 per filter)."""
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_pts = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    hz_pts = mel_to_hz(mel_pts)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_pts[2 : n_mels + 2] - hz_pts[:n_mels]))[:, None]
    return weights.astype(np.float32)


class LogMel(nn.Module):
    """(B, T) waveform -> (B, n_mels, frames) natural-log mel magnitudes."""

    def __init__(
        self,
        sample_rate: int = 16_000,
        n_fft: int = 1024,
        hop: int = 256,
        win: int = 1024,
        n_mels: int = 80,
        fmin: float = 0.0,
        fmax: float | None = 8000.0,
    ):
        super().__init__()
        self.n_fft, self.hop, self.win = n_fft, hop, win
        fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax or sample_rate / 2)
        self.register_buffer("fb", torch.from_numpy(fb), persistent=False)
        self.register_buffer("window", torch.hann_window(win), persistent=False)

    def magnitude(self, wav: Tensor) -> Tensor:
        """(B, T) -> (B, n_fft // 2 + 1, frames) linear STFT magnitude."""
        pad = (self.n_fft - self.hop) // 2
        x = torch.nn.functional.pad(wav.float().unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            x,
            self.n_fft,
            hop_length=self.hop,
            win_length=self.win,
            window=self.window,
            center=False,
            return_complex=True,
        )
        return torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9)

    def forward(self, wav: Tensor) -> Tensor:
        return torch.log(torch.clamp(self.fb @ self.magnitude(wav), min=1e-5))
