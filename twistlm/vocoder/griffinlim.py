"""BASELINE ONLY: units -> per-unit mean mel spectrum -> Griffin-Lim phase reconstruction.

Not a vocoder anyone should use for listening: it is the floor a trained unit vocoder must
beat, reported beside it (scripts/vocoder_wer.py --griffin-lim-baseline). It is never used
as a silent fallback: `Vocoder` never falls back to it.

Fitting: for every unit, the mean (linear) 80-band mel magnitude of all STFT frames
(hop 160) that fall inside that unit's frames in the training corpus. Synthesis: repeat each
unit's mean mel over its frames, invert the mel filterbank by least squares (clamped >= 0),
and run Griffin-Lim (Griffin & Lim 1984; the "fast" momentum variant of Perraudin et al. 2013).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from twistlm.vocoder.mel import mel_filterbank

N_FFT, STFT_HOP, N_MELS = 1024, 160, 80


def griffin_lim(mag: Tensor, length: int, n_iter: int, window: Tensor, seed: int = 0) -> Tensor:
    """(N_FFT // 2 + 1, frames) linear magnitude -> (length,) waveform: fast Griffin-Lim
    (momentum 0.99, Perraudin et al. 2013) from seeded random phases, STFT hop ``STFT_HOP``.

    Measured (docs/measurements.md): from a true magnitude, 32 iterations are as intelligible
    as the original audio (Whisper WER 22.8% vs 23.7%).
    """
    gen = torch.Generator().manual_seed(seed)
    angles = torch.exp(2j * torch.pi * torch.rand(mag.shape, generator=gen))
    prev = torch.zeros_like(angles)
    for _ in range(n_iter):
        wav = torch.istft(mag * angles, N_FFT, STFT_HOP, window=window, length=length)
        # zero padding at the edges: also valid for inputs shorter than N_FFT // 2
        spec = torch.stft(
            wav, N_FFT, STFT_HOP, window=window, return_complex=True, pad_mode="constant"
        )
        new = spec - 0.99 * prev  # fast Griffin-Lim momentum
        prev = spec
        angles = new / new.abs().clamp(min=1e-8)
    return torch.istft(mag * angles, N_FFT, STFT_HOP, window=window, length=length)


class UnitMelGriffinLim:
    """Baseline unit-to-speech: mean mel per unit + Griffin-Lim. ``synthesize`` like Vocoder's."""

    label = "baseline: unit mean-mel + Griffin-Lim"

    def __init__(self, unit_mels: Tensor, hop: int, sample_rate: int = 16_000, n_iter: int = 32):
        if hop % STFT_HOP:
            raise ValueError(f"unit hop {hop} must be a multiple of {STFT_HOP}")
        self.unit_mels = unit_mels.float()  # (n_units, n_mels) linear magnitudes
        self.hop, self.sample_rate, self.n_iter = hop, sample_rate, n_iter
        self.n_units = unit_mels.shape[0]
        fb = torch.from_numpy(mel_filterbank(sample_rate, N_FFT, N_MELS, 0.0, sample_rate / 2))
        self.fb_pinv = torch.linalg.pinv(fb)  # (n_freq, n_mels)
        self.fb = fb
        self.window = torch.hann_window(N_FFT)

    def _stft(self, wav: Tensor) -> Tensor:
        return torch.stft(wav, N_FFT, STFT_HOP, window=self.window, return_complex=True)

    @classmethod
    def fit(
        cls, utterances, hop: int, n_units: int, sample_rate: int = 16_000
    ) -> UnitMelGriffinLim:
        """``utterances``: iterable of (frames (F,) unit ids, wav (F * hop,) float array)."""
        model = cls(torch.zeros(n_units, N_MELS), hop, sample_rate)
        sums = torch.zeros(n_units, N_MELS, dtype=torch.float64)
        counts = torch.zeros(n_units, dtype=torch.float64)
        k = hop // STFT_HOP
        for frames, wav in utterances:
            mag = model._stft(torch.as_tensor(np.asarray(wav), dtype=torch.float32)).abs()
            mel = (model.fb @ mag).T.double()  # (stft frames, n_mels)
            n = min(mel.shape[0], frames.numel() * k)
            owner = torch.as_tensor(frames).long().repeat_interleave(k)[:n]
            sums.index_add_(0, owner, mel[:n])
            counts.index_add_(0, owner, torch.ones(n, dtype=torch.float64))
        seen = counts > 0
        mean = torch.zeros_like(sums)
        mean[seen] = sums[seen] / counts[seen, None]
        mean[~seen] = sums[seen].sum(0) / counts[seen].sum()  # unseen units: global mean
        model.unit_mels = mean.float()
        return model

    @torch.no_grad()
    def synthesize(
        self, units: Tensor, durations: Tensor | None = None, speaker=None
    ) -> np.ndarray:
        units = torch.as_tensor(units).long().view(-1)
        durations = (
            torch.ones_like(units) if durations is None else torch.as_tensor(durations).long()
        )
        frames = torch.repeat_interleave(units, durations)
        k = self.hop // STFT_HOP
        mel = self.unit_mels[frames].repeat_interleave(k, dim=0).T  # (n_mels, F * k)
        mag = torch.clamp(self.fb_pinv @ mel, min=0.0)
        mag = torch.cat([mag, mag[:, -1:]], dim=1)  # centred STFT of F*hop samples has F*k+1 frames
        length = frames.numel() * self.hop
        wav = griffin_lim(mag, length, self.n_iter, self.window)
        peak = wav.abs().max().clamp(min=1e-8)
        return (
            (wav / peak * 0.9).numpy().astype(np.float32)
            if peak > 1
            else wav.numpy().astype(np.float32)
        )
