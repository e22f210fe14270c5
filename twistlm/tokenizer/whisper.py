"""Whisper encoder features: the output of a Whisper encoder layer as frames for k-means units.

Pipeline per window (at most 30 s): 16 kHz waveform -> Whisper's log-mel front end -> encoder
(conv1 + GELU, conv2 stride 2 + GELU, sinusoidal positions, transformer layers) -> 50 Hz frames
(hop 320 samples), optionally averaged over ``pool`` consecutive frames (pool=2: 25 Hz).

Front end (:func:`~twistlm.tokenizer.whisper_frontend.log_mel`): Whisper's log-mel
spectrogram, a numpy copy of faster-whisper's (see :mod:`twistlm.tokenizer.whisper_frontend`).

No padding to 30 s: the encoder takes any number of mel frames up to ``2 * max_source_positions``
(3000); conv2 halves them, and the first ``n_samples // 320`` output frames are kept. Utterances are
encoded one per window (never several in one window: the output depends on position and on what
else is in the window). ``tail_seconds`` appends that much silence to every window before the
front end (frames of the tail are dropped); 0 by default.

Back ends (:mod:`twistlm.tokenizer.whisper_encoders`): ``ct2`` (CTranslate2: the packaged
``tiny.en`` / ``base`` or any converted dir; the final layer only) and ``transformers`` (any
encoder layer of a Whisper checkpoint).

Long inputs: a waveform of N samples gives ``N // hop`` frames (a trailing part shorter than one
hop is dropped). When it is longer than one window (``chunk_seconds``, at most 30 s minus the tail)
it is cut into the fewest windows of equal length (multiples of ``hop``) and each window is encoded
alone: frames near a join see no audio across it, and the log-mel dynamic-range floor
(``max - 8``) is per window. ``__call__`` and ``features_stream`` use the same windows, so they agree
exactly.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from twistlm.audio import SAMPLE_RATE
from twistlm.tokenizer.whisper_encoders import (
    CT2Encoder,
    HFEncoder,
    load_hf_encoder,
    read_ct2_header,
)
from twistlm.tokenizer.whisper_frontend import ENC_HOP, MEL_HOP, N_FFT, log_mel, mel_filters

# the front end and back ends lived here before; their old import paths keep working
__all__ = [
    "ENC_HOP",
    "MEL_HOP",
    "N_FFT",
    "PACKAGED",
    "CT2Encoder",
    "HFEncoder",
    "WhisperFeatures",
    "log_mel",
    "mel_filters",
    "read_ct2_header",
]

PACKAGED = ("tiny.en", "base")  # CTranslate2 models located by twistlm.loaders


class WhisperFeatures:
    """Frames (n_frames, dim) of a Whisper encoder layer at 50 Hz / ``pool``.

    Build with :meth:`from_pretrained` (or ``build_extractor("whisper", ...)``).
    """

    sample_rate = SAMPLE_RATE
    exact_chunks = True  # features_stream == __call__ (both use the same windows)
    name = "whisper"

    def __init__(
        self,
        encoder: CT2Encoder | HFEncoder,
        model: str,
        backend: str,
        pool: int = 1,
        chunk_seconds: float = 30.0,
        tail_seconds: float = 0.0,
        compute_type: str | None = None,
        threads: int = 0,
        sha256: str | None = None,
    ):
        if int(pool) < 1:
            raise ValueError(f"pool must be >= 1, got {pool}")
        self.encoder = encoder
        self.model, self.backend = str(model), backend
        self.layer = encoder.layer if backend == "transformers" else encoder.n_layers
        self.n_layers = encoder.n_layers
        self.pool = int(pool)
        self.hop = ENC_HOP * self.pool
        self.frame_rate = SAMPLE_RATE / self.hop
        self.dim = int(encoder.dim)
        self.n_mels = int(encoder.n_mels)
        self.chunk_seconds = float(chunk_seconds)
        self.tail_seconds = float(tail_seconds)
        self.compute_type, self.threads, self.sha256 = compute_type, int(threads), sha256
        if self._window_frames() < 1:
            raise ValueError("tail_seconds leaves no room for audio in a Whisper window")

    # ---- construction ----
    @classmethod
    def from_pretrained(
        cls,
        model: str | Path | None = None,
        layer: int | None = None,
        backend: str | None = None,
        pool: int | None = None,
        frame_rate: float | None = None,
        preset: str | None = None,
        compute_type: str = "int8",
        device: str = "cpu",
        threads: int = 0,
        chunk_seconds: float = 30.0,
        tail_seconds: float = 0.0,
        sha256: str | None = None,
        hop: int | None = None,
        n_layers: int | None = None,
        norm: str | None = None,
    ) -> WhisperFeatures:
        """Whisper features from a packaged model, a CTranslate2 dir or a transformers checkpoint.

        Args:
            model: ``"tiny.en"`` / ``"base"`` (packaged CTranslate2 models, default tiny.en), a
                CTranslate2 Whisper dir (has ``model.bin``), or a transformers Whisper hub name / dir.
            layer: encoder layer (1..encoder_layers; transformers only, CTranslate2 gives the last).
            backend: ``"ct2"`` or ``"transformers"`` (default: from ``model``).
            pool / frame_rate: average ``pool`` frames (1: 50 Hz, 2: 25 Hz); give either.
            preset: a name in ``twistlm.loaders.WHISPER_PRESETS`` (model, layer, frame rate).
            compute_type, threads: CTranslate2 ``compute_type`` and ``intra_threads`` (0: its default).
            device: ``cpu`` / ``cuda`` (both back ends).
            chunk_seconds: window length for long inputs (capped at the model's 30 s).
            tail_seconds: silence appended to each window before the front end.
            sha256: expected sha256 of a CTranslate2 ``model.bin`` (checked).
            hop, n_layers: checked against the model when given (saved configs carry them).
            norm: only ``None`` / ``"none"`` (accepted so spectral-style calls fail clearly).
        """
        if norm not in (None, "none"):
            raise ValueError("whisper features are not normalised; pass norm='none'")
        if preset is not None:
            model, layer, frame_rate = _preset_values(preset, model, layer, frame_rate)
        model = "tiny.en" if model is None else str(model)
        pool = _pool_of(pool, frame_rate)
        if backend is None:
            is_ct2 = model in PACKAGED or (Path(model) / "model.bin").is_file()
            backend = "ct2" if is_ct2 else "transformers"
        if backend == "ct2":
            enc, sha256 = _ct2_encoder(model, layer, sha256, compute_type, device, threads)
            # requested type is saved (portable); enc.compute_type is what CTranslate2 runs
        elif backend == "transformers":
            hf = load_hf_encoder(model)
            total = int(n_layers or hf.config.encoder_layers)
            if layer is None:
                layer = total
            enc = HFEncoder(hf, int(layer), total, device)
            compute_type, threads, sha256 = None, 0, None
        else:
            raise ValueError(f"backend must be 'ct2' or 'transformers', got {backend!r}")
        if n_layers is not None and int(n_layers) != enc.n_layers:
            raise ValueError(f"{model}: {enc.n_layers} encoder layers, expected {n_layers}")
        out = cls(
            enc,
            model=model,
            backend=backend,
            pool=pool,
            chunk_seconds=chunk_seconds,
            tail_seconds=tail_seconds,
            compute_type=compute_type,
            threads=threads,
            sha256=sha256,
        )
        if hop is not None and int(hop) != out.hop:
            raise ValueError(f"whisper features have hop {out.hop}, expected {hop}")
        return out

    def config(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "layer": self.layer,
            "n_layers": self.n_layers,
            "pool": self.pool,
            "frame_rate": self.frame_rate,
            "hop": self.hop,
            "compute_type": self.compute_type,
            "threads": self.threads,
            "chunk_seconds": self.chunk_seconds,
            "tail_seconds": self.tail_seconds,
            "sha256": self.sha256,
        }

    def save(self, path: str | Path) -> None:
        """Write the weights a saved tokenizer needs into ``path`` (nothing for packaged models,
        which are found again by name and sha256): a CTranslate2 dir is copied, a transformers
        encoder is saved truncated to ``layer`` (as a ``WhisperEncoder`` dir)."""
        if self.backend == "ct2" and self.model in PACKAGED:
            return
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.backend == "ct2":
            for f in self.encoder.path.iterdir():
                if f.is_file():
                    shutil.copyfile(f, path / f.name)
        else:
            self.encoder.encoder.save_pretrained(str(path))

    # ---- interface ----
    def n_frames(self, n_samples: int) -> int:
        return int(n_samples) // self.hop

    def __call__(self, wav: Tensor) -> Tensor:
        """(T,) 16 kHz waveform -> (T // hop, dim) float32, windowed beyond ``chunk_seconds``."""
        wav = torch.as_tensor(wav, dtype=torch.float32).reshape(-1).cpu().numpy()
        parts = [
            self.encode_window(wav[a * self.hop : b * self.hop]) for a, b in self.windows(wav.size)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, self.dim)

    def features_stream(self, source, chunk_seconds: float | None = None) -> Iterator[Tensor]:
        """Frames of an :class:`AudioSource`, one window at a time (equal to ``self(wav)``)."""
        for a, b in self.windows(source.n_samples, chunk_seconds):
            yield self.encode_window(source.read(a * self.hop, b * self.hop))

    def windows(self, n_samples: int, chunk_seconds: float | None = None) -> list[tuple[int, int]]:
        """[a, b) output-frame ranges of the windows a waveform is encoded in."""
        n = self.n_frames(n_samples)
        if n == 0:
            return []
        per = self._window_frames(chunk_seconds)
        k = math.ceil(n / per)
        bounds = [(i * n) // k for i in range(k + 1)]  # k windows of equal length (+- 1 frame)
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def encode_window(self, seg: np.ndarray) -> Tensor:
        """One window (at most 30 s) encoded alone -> (len // hop, dim)."""
        seg = np.asarray(seg, dtype=np.float32).reshape(-1)
        n_out = seg.size // self.hop
        if n_out == 0:
            return torch.zeros(0, self.dim)
        seg = seg[: n_out * self.hop]
        tail = int(round(self.tail_seconds * SAMPLE_RATE))
        if tail:
            seg = np.concatenate([seg, np.zeros(tail, np.float32)])
        feats = self.encoder.encode(log_mel(seg, self.n_mels))[: n_out * self.pool]
        if self.pool > 1:
            feats = feats.reshape(n_out, self.pool, self.dim).mean(1)
        return feats.float().contiguous()

    def _window_frames(self, chunk_seconds: float | None = None) -> int:
        """Output frames per window: chunk_seconds capped by the model's positions and the tail."""
        max_samples = 2 * self.encoder.n_positions * MEL_HOP - int(
            round(self.tail_seconds * SAMPLE_RATE)
        )
        want = int(round((chunk_seconds or self.chunk_seconds) * SAMPLE_RATE))
        return min(want, max_samples) // self.hop


def _pool_of(pool: int | None, frame_rate: float | None) -> int:
    if frame_rate is None:
        return int(pool or 1)
    p = SAMPLE_RATE / ENC_HOP / float(frame_rate)
    if p < 1 or abs(p - round(p)) > 1e-9:
        raise ValueError(
            f"whisper frame_rate must be 50 Hz / an integer (50, 25, ...), got {frame_rate}"
        )
    if pool is not None and int(pool) != round(p):
        raise ValueError(f"pool {pool} does not give frame_rate {frame_rate}")
    return int(round(p))


def _preset_values(
    preset: str, model: Any, layer: int | None, frame_rate: float | None
) -> tuple[str, int, float]:
    """(model, layer, frame_rate) of a ``twistlm.loaders.WHISPER_PRESETS`` entry; an explicit
    value that disagrees with the preset raises."""
    from twistlm import loaders

    if preset not in loaders.WHISPER_PRESETS:
        raise ValueError(
            f"unknown whisper preset {preset!r}; known: {sorted(loaders.WHISPER_PRESETS)}"
        )
    spec = loaders.WHISPER_PRESETS[preset]
    for key, val in (("model", model), ("layer", layer), ("frame_rate", frame_rate)):
        if val is not None and val != spec[key]:
            raise ValueError(f"preset {preset} has {key}={spec[key]!r}, not {val!r}")
    return spec["model"], spec["layer"], spec["frame_rate"]


def _ct2_encoder(
    model: str,
    layer: int | None,
    sha256: str | None,
    compute_type: str,
    device: str,
    threads: int,
) -> tuple[CT2Encoder, str]:
    """The CTranslate2 encoder of a packaged model or a dir, and its checked sha256."""
    from twistlm import loaders

    if model in PACKAGED:
        path = loaders.whisper_ct2_path(model)
        pinned = (
            loaders.WHISPER_TINY_EN_SHA256 if model == "tiny.en" else loaders.WHISPER_BASE_SHA256
        )
        if sha256 is not None and sha256 != pinned:
            raise ValueError(f"{model}: saved sha256 {sha256} != packaged {pinned}")
        sha256 = pinned
    else:
        path = Path(model)
        got = loaders.sha256_file(path / "model.bin")
        if sha256 is not None and got != sha256:
            raise ValueError(f"{path}/model.bin has sha256 {got}, expected {sha256}")
        sha256 = got
    enc = CT2Encoder(path, compute_type, device, threads)
    if layer is not None and int(layer) != enc.n_layers:
        raise ValueError(
            f"{model}: the CTranslate2 back end gives only the last encoder layer "
            f"({enc.n_layers}), not {layer}; use backend='transformers' for other layers"
        )
    return enc, sha256
