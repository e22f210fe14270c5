"""Log-mel and MFCC features in torch, pooled to 25 or 50 Hz: the offline default tokenizer.

No pretrained HuBERT can be downloaded here, so the offline quickstart clusters spectral
features (docs/measurements.md pilot: log-mel 80 pooled to 25 Hz + k-means 200 gave 21.5 units/s after dedup).

Framing (chosen so chunked extraction is *exactly* the whole-file extraction):
a 25 ms Hann window (400 samples, FFT size 400) every 10 ms (160 samples). Short-time frame k
covers samples ``[160 k - 120, 160 k + 280)`` (centred on the 10 ms block ``[160 k, 160 k + 160)``);
samples outside the file are zeros. Output frame j (hop = 640 at 25 Hz, 320 at 50 Hz) is the
mean of short-time frames ``j * pool .. j * pool + pool - 1`` with ``pool = hop / 160``, so it
depends on samples ``[j hop - 120, (j + 1) hop + 120)`` only. ``n_frames = n_samples // hop``.

Normalisation (``norm``): ``"utterance"`` (default) subtracts the per-utterance mean and divides
by the per-utterance standard deviation of each feature dimension (speaker/channel invariance);
``"none"`` keeps raw log energies. The standard deviation is floored at ``std_floor`` (default
0.5, natural-log units for log-mel, about 2 dB): near-silent input (1e-5 noise, 16-bit dither)
has per-dimension standard deviations of 1e-6 .. 0.12 (measured), which plain division blows up
to unit variance, i.e. many random units (14 distinct units in 10 s of 1e-5 noise); with the
floor it stays near the utterance mean: one or a few stable units. Speech varies far more
(measured: log-mel >= 2.8 in every band of espeak-ng and recorded speech, MFCC >= 0.76 also for
flite), and where the standard deviation is above the floor the division is unchanged bit for
bit (``std.clamp_min(std_floor) + 1e-5``); band-limited audio's empty bands (std ~1e-6 above
4 kHz in 8 kHz flite) are no longer amplified to noise. Tokenizers saved before the floor
existed (no ``std_floor`` in their feature config) load with ``std_floor=0``: their old units.
For long files processed in chunks the utterance statistics are gathered in a first pass over
the chunks, so the result is still exactly the whole-file one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from twistlm.audio import SAMPLE_RATE
from twistlm.tokenizer.chunks import chunk_ranges

WIN = 400  # 25 ms
STEP = 160  # 10 ms
PAD = (WIN - STEP) // 2  # 120: context each side of a 10 ms block
# Output frames are computed in blocks of BLOCK frames aligned to multiples of BLOCK: a matmul's
# rounding can depend on its row count (BLAS blocking), so fixed block shapes are what make
# chunked extraction bit-identical to whole-file extraction. Chunks are multiples of BLOCK.
BLOCK = 50
# Floor of the per-utterance standard deviation (see the module docstring): silence must not be
# blown up to unit variance. Saved tokenizers without it load with 0 (their old units).
STD_FLOOR = 0.5


def mel_filterbank(
    n_mels: int, n_freqs: int, f_min: float, f_max: float, sample_rate: int
) -> Tensor:
    """(n_freqs, n_mels) triangular filters on the HTK mel scale (2595 log10(1 + f/700))."""

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_freqs)
    pts = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    fb = np.zeros((n_freqs, n_mels))
    for m in range(n_mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        up = (freqs - lo) / max(c - lo, 1e-9)
        down = (hi - freqs) / max(hi - c, 1e-9)
        fb[:, m] = np.clip(np.minimum(up, down), 0, None)
    return torch.tensor(fb, dtype=torch.float32)


def dct_matrix(n_mfcc: int, n_mels: int) -> Tensor:
    """(n_mels, n_mfcc) orthonormal DCT-II (as torchaudio.functional.create_dct, norm='ortho')."""
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    dct = torch.cos(math.pi / n_mels * (n + 0.5) * k)  # (n_mfcc, n_mels)
    dct[0] *= 1.0 / math.sqrt(2.0)
    dct *= math.sqrt(2.0 / n_mels)
    return dct.t().float()


class SpectralFeatures:
    """``logmel`` (n_mels dims) or ``mfcc`` (n_mfcc dims) frames at ``frame_rate`` (25 or 50 Hz)."""

    sample_rate = SAMPLE_RATE
    exact_chunks = True

    def __init__(
        self,
        kind: Literal["logmel", "mfcc"] = "logmel",
        frame_rate: float = 25.0,
        n_mels: int = 80,
        n_mfcc: int = 20,
        norm: Literal["utterance", "none"] = "utterance",
        f_min: float = 20.0,
        f_max: float = 7600.0,
        chunk_seconds: float = 30.0,
        std_floor: float = STD_FLOOR,
    ):
        if kind not in ("logmel", "mfcc"):
            raise ValueError(f"kind must be 'logmel' or 'mfcc', got {kind!r}")
        hop = SAMPLE_RATE / float(frame_rate)
        if not hop.is_integer() or int(hop) % STEP:
            raise ValueError(
                f"frame_rate {frame_rate} Hz must give a hop that is a multiple of {STEP} samples "
                "(e.g. 25 or 50 Hz)"
            )
        if norm not in ("utterance", "none"):
            raise ValueError(f"norm must be 'utterance' or 'none', got {norm!r}")
        self.kind, self.norm = kind, norm
        self.hop = int(hop)
        self.frame_rate = float(frame_rate)
        self.pool = self.hop // STEP
        self.n_mels, self.n_mfcc, self.f_min, self.f_max = n_mels, n_mfcc, f_min, f_max
        self.chunk_seconds = float(chunk_seconds)
        self.std_floor = float(std_floor)
        self.dim = n_mels if kind == "logmel" else n_mfcc
        self._window = torch.hann_window(WIN, periodic=True)
        self._fb = mel_filterbank(n_mels, WIN // 2 + 1, f_min, f_max, SAMPLE_RATE)
        self._dct = dct_matrix(n_mfcc, n_mels) if kind == "mfcc" else None

    # ---- interface ----
    def config(self) -> dict[str, Any]:
        return {
            "frame_rate": self.frame_rate,
            "n_mels": self.n_mels,
            "n_mfcc": self.n_mfcc,
            "norm": self.norm,
            "f_min": self.f_min,
            "f_max": self.f_max,
            "chunk_seconds": self.chunk_seconds,
            "std_floor": self.std_floor,
        }

    @property
    def name(self) -> str:
        return self.kind

    def n_frames(self, n_samples: int) -> int:
        return int(n_samples) // self.hop

    def __call__(self, wav: Tensor) -> Tensor:
        """(T,) float waveform -> (T // hop, dim) float32."""
        wav = torch.as_tensor(wav, dtype=torch.float32).reshape(-1)
        n = self.n_frames(wav.numel())
        feats = self._raw(self._segment(wav, 0, n))
        if self.norm == "utterance":
            return self._normalize(feats, *self._stats_of(feats))
        return feats

    def features_stream(self, source, chunk_seconds: float | None = None) -> Iterator[Tensor]:
        """Frames of an :class:`AudioSource` in chunks; identical to ``self(whole_wav)``."""
        n = self.n_frames(source.n_samples)
        chunk = int(round((chunk_seconds or self.chunk_seconds) * self.frame_rate))
        chunk = max(BLOCK, chunk - chunk % BLOCK)

        def raw_chunks():
            for a, b in chunk_ranges(n, chunk):
                seg = source.read(a * self.hop - PAD, b * self.hop + PAD)
                left = PAD if a == 0 else 0
                yield self._raw(self._pad_segment(torch.from_numpy(seg), a, b, left))

        if self.norm == "none":
            yield from raw_chunks()
            return
        # pass 1: per-dimension sums (float64) so the normalisation equals the whole-file one
        count, s, ss = 0, torch.zeros(self.dim, dtype=torch.float64), None
        for f in raw_chunks():
            f64 = f.double()
            count += f.shape[0]
            s += f64.sum(0)
            ss = f64.pow(2).sum(0) if ss is None else ss + f64.pow(2).sum(0)
        if count == 0:
            return
        mean = s / count
        std = (ss / count - mean.pow(2)).clamp_min(0).sqrt()
        for f in raw_chunks():
            yield self._normalize(f, mean, std)

    # ---- internals ----
    def _segment(self, wav: Tensor, a: int, b: int) -> Tensor:
        """Samples [a hop - PAD, b hop + PAD) of ``wav`` with zeros outside it."""
        seg = wav[max(0, a * self.hop - PAD) : b * self.hop + PAD]
        left = PAD if a == 0 else 0
        return self._pad_segment(seg, a, b, left)

    def _pad_segment(self, seg: Tensor, a: int, b: int, left: int) -> Tensor:
        need = (b - a) * self.hop + 2 * PAD
        right = need - left - seg.numel()
        return torch.nn.functional.pad(seg.float(), (left, max(0, right)))

    def _raw(self, seg: Tensor) -> Tensor:
        """Padded segment of (b - a) hop + 2 PAD samples -> (b - a, dim) un-normalised features.

        ``a`` must be a multiple of BLOCK; frames are computed BLOCK at a time.
        """
        n_out = (seg.numel() - 2 * PAD) // self.hop
        if n_out <= 0:
            return torch.zeros(0, self.dim)
        blocks = []
        for s in range(0, n_out, BLOCK):
            e = min(n_out, s + BLOCK)
            blocks.append(self._raw_block(seg[s * self.hop : e * self.hop + 2 * PAD]))
        return torch.cat(blocks)

    def _raw_block(self, seg: Tensor) -> Tensor:
        n_out = (seg.numel() - 2 * PAD) // self.hop
        spec = torch.stft(
            seg,
            n_fft=WIN,
            hop_length=STEP,
            win_length=WIN,
            window=self._window,
            center=False,
            return_complex=True,
        )  # (freqs, n_out * pool)
        power = spec.abs().pow(2).t()  # (n_out * pool, freqs)
        feats = torch.log(power @ self._fb + 1e-6)  # (n_out * pool, n_mels)
        if self._dct is not None:
            feats = feats @ self._dct
        return feats.reshape(n_out, self.pool, -1).mean(1)

    @staticmethod
    def _stats_of(feats: Tensor) -> tuple[Tensor, Tensor]:
        f64 = feats.double()
        mean = f64.mean(0)
        std = (f64.pow(2).mean(0) - mean.pow(2)).clamp_min(0).sqrt()
        return mean, std

    def _normalize(self, feats: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        return ((feats.double() - mean) / (std.clamp_min(self.std_floor) + 1e-5)).float()
