"""What a request may send and where its results go: input checks, limits, output folders.

:func:`read_audio_input` turns an upload (file path) or a recording (``(rate, array)``) into
16 kHz mono float32, or raises :class:`DemoInputError` with the message the page shows.
"""

from __future__ import annotations

import math
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twistlm.audio import SAMPLE_RATE, AudioError


class DemoInputError(ValueError):
    """Input the demo cannot use; the message is shown in the page as is."""


# ---------------------------------------------------------------------------- input checks
@dataclass(frozen=True)
class Limits:
    """What one request may send (all configurable from the CLI).

    Attributes:
        max_upload_mb: largest uploaded file, checked before decoding.
        max_seconds: longest input audio (prompt or utterance), from the header before decoding.
        min_seconds: shortest input audio.
        min_sample_rate: lowest sample rate accepted (anything else is resampled to 16 kHz).
        silence_dbfs: audio whose peak is below this level counts as silent.
        max_continue_seconds: longest continuation a request may ask for.
    """

    max_upload_mb: float = 20.0
    max_seconds: float = 30.0
    min_seconds: float = 0.25
    min_sample_rate: int = 4000
    silence_dbfs: float = -60.0
    max_continue_seconds: float = 20.0

    def __post_init__(self):
        if self.max_upload_mb <= 0 or self.max_seconds <= 0 or self.max_continue_seconds <= 0:
            raise ValueError("limits must be positive")
        if self.min_seconds > self.max_seconds:
            raise ValueError(f"min_seconds {self.min_seconds} > max_seconds {self.max_seconds}")


@dataclass
class AudioInput:
    """Validated input audio: ``wav`` (T,) float32 mono 16 kHz, plus what was done to it."""

    wav: np.ndarray
    source_rate: int
    channels: int
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.wav) / SAMPLE_RATE


def _duration_check(seconds: float, limits: Limits, what: str) -> None:
    if seconds > limits.max_seconds:
        raise DemoInputError(
            f"{what} is {seconds:.1f} s long; the limit is {limits.max_seconds:g} s "
            "(--max-seconds): trim it or raise the limit"
        )
    if seconds < limits.min_seconds:
        raise DemoInputError(
            f"{what} is only {seconds * 1000:.0f} ms long; at least "
            f"{limits.min_seconds * 1000:.0f} ms of speech is needed"
        )


def read_audio_input(audio: Any, limits: Limits = Limits(), what: str = "prompt") -> AudioInput:
    """An uploaded / recorded file path or a ``(sample_rate, array)`` tuple -> :class:`AudioInput`.

    Checks, in order: something was given; file size (before reading); the header decodes and the
    duration is within limits (before decoding the samples); sample rate; finite, non-silent
    samples. Multi-channel audio is averaged; other sample rates are resampled to 16 kHz (noted).
    """
    from twistlm.audio import to_mono_16k

    if audio is None or (isinstance(audio, str) and not audio.strip()):
        raise DemoInputError(f"no {what} audio: upload a file or record one")
    if isinstance(audio, tuple):
        sr, data = audio
        data = np.asarray(data)
        if np.issubdtype(data.dtype, np.integer):  # Gradio's numpy form is int16 PCM
            data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
        sr, n = int(sr), data.shape[0] if data.ndim else 0
        if sr <= 0:
            raise DemoInputError(f"{what}: invalid sample rate {sr}")
        _duration_check(n / sr, limits, what)
        channels = 1 if data.ndim == 1 else int(data.shape[1])
    else:
        import soundfile as sf

        path = Path(audio)
        if not path.is_file():
            raise DemoInputError(f"{what}: file not found")
        size_mb = path.stat().st_size / 2**20
        if size_mb > limits.max_upload_mb:
            raise DemoInputError(
                f"{what} file is {size_mb:.1f} MB; the limit is {limits.max_upload_mb:g} MB "
                "(--max-upload-mb)"
            )
        if path.stat().st_size == 0:
            raise DemoInputError(f"{what} file is empty")
        try:
            with open(path, "rb") as fh:  # file object: any name the OS accepts
                info = sf.info(fh)
        except Exception as e:  # libsndfile: "Format not recognised", ...
            raise DemoInputError(
                f"{what} ({path.name}) is not audio this demo can read "
                f"({' '.join(str(e).split()).split(': ')[-1]}); use wav, flac, ogg or mp3"
            ) from e
        sr, channels = int(info.samplerate), int(info.channels)
        if info.frames <= 0:
            raise DemoInputError(f"{what} ({path.name}) has no samples")
        _duration_check(info.frames / sr, limits, what)
        try:
            with open(path, "rb") as fh:
                data, sr = sf.read(fh, dtype="float32", always_2d=False)
        except Exception as e:
            raise DemoInputError(f"{what} ({path.name}) cannot be decoded: {e}") from e
    if sr < limits.min_sample_rate:
        raise DemoInputError(
            f"{what} is sampled at {sr} Hz; at least {limits.min_sample_rate} Hz is needed"
        )
    notes = []
    if channels > 1:
        notes.append(f"{what}: {channels} channels averaged to mono")
    if sr != SAMPLE_RATE:
        notes.append(f"{what}: resampled from {sr} Hz to {SAMPLE_RATE} Hz")
    try:
        wav = to_mono_16k(data, sr)
    except AudioError as e:
        raise DemoInputError(f"{what}: {e}") from e
    if not np.all(np.isfinite(wav)):
        raise DemoInputError(f"{what} contains NaN or infinite samples")
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak <= 10 ** (limits.silence_dbfs / 20):
        level = "-inf" if peak == 0 else f"{20 * math.log10(peak):.0f}"
        raise DemoInputError(
            f"{what} is silent (peak {level} dBFS, below {limits.silence_dbfs:g} dBFS): "
            "check the microphone or the file"
        )
    return AudioInput(wav.astype(np.float32), sr, channels, notes)


# ---------------------------------------------------------------------------- output files
class OutputStore:
    """Per-request folders under ``root`` (the only place the demo writes); keeps the newest
    ``keep`` of them and deletes older ones."""

    def __init__(self, root: str | Path, keep: int = 200):
        self.root = Path(root).resolve()
        self.keep = keep
        self.root.mkdir(parents=True, exist_ok=True)

    def new_run(self, kind: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run = self.root / "runs" / f"{stamp}-{kind}-{uuid.uuid4().hex[:8]}"
        run.mkdir(parents=True)
        self._prune()
        return run

    def _prune(self) -> None:
        runs = sorted((self.root / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
        for old in runs[: max(len(runs) - self.keep, 0)]:
            shutil.rmtree(old, ignore_errors=True)


DEFAULT_LIMITS = Limits()
