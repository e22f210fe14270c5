"""Audio loading for every stage: decode with soundfile, downmix, resample with soxr, validate.

torchaudio is deliberately not used: it has no build for torch 2.13 (docs/measurements.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000


def display_path(path: str | Path) -> str:
    """``path`` as valid UTF-8 text for logs, JSON and Parquet ids.

    POSIX file names are bytes; Python decodes the non-UTF-8 ones with ``surrogateescape``
    (``b"caf\\xe9.wav"`` -> ``"caf\\udce9.wav"``), which cannot be encoded as UTF-8. Those bytes
    are shown as ``\\xNN`` escapes (``caf\\xe9.wav``); UTF-8 names are returned unchanged.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class AudioError(ValueError):
    """A file that cannot be used as speech input (the message says why)."""


def to_mono_16k(wav: np.ndarray, sample_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(T,) or (T, C) float array at ``sample_rate`` -> (T',) float32 mono at ``target_rate``."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    elif wav.ndim != 1:
        raise AudioError(f"expected 1-D or 2-D audio, got shape {wav.shape}")
    if sample_rate != target_rate:
        import soxr

        wav = soxr.resample(wav, sample_rate, target_rate, quality="HQ").astype(np.float32)
    return wav


def check_waveform(wav: np.ndarray, min_samples: int = 400, what: str = "audio") -> None:
    """Raise :class:`AudioError` for empty, too short, non-finite or all-zero audio."""
    if wav.size == 0:
        raise AudioError(f"{what} is empty")
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{what} contains NaN or infinite samples")
    if wav.size < min_samples:
        raise AudioError(
            f"{what} is too short: {wav.size} samples ({wav.size / SAMPLE_RATE * 1000:.0f} ms) "
            f"< {min_samples} needed for one frame"
        )
    if not np.any(wav):
        raise AudioError(f"{what} is all zeros (silent)")


def load_audio(
    path: str | Path, target_rate: int = SAMPLE_RATE, min_samples: int = 400
) -> np.ndarray:
    """Read any format libsndfile reads -> (T,) float32 mono at ``target_rate``, validated."""
    import soundfile as sf

    path = Path(path)
    try:
        # through a file object: soundfile encodes str names as strict UTF-8, so a valid file
        # whose name is not UTF-8 (latin-1 b"caf\xe9.wav") would fail to open by name
        with open(path, "rb") as fh:
            wav, sr = sf.read(fh, dtype="float32", always_2d=False)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(f"cannot decode audio: {' '.join(str(e).split())}") from e
    if wav.size == 0:
        raise AudioError("audio is empty")
    wav = to_mono_16k(wav, sr, target_rate)
    check_waveform(wav, min_samples)
    return wav


def audio_seconds(path: str | Path) -> float:
    """Duration from the header only (no decoding)."""
    import soundfile as sf

    with open(path, "rb") as fh:  # any name the OS accepts (see load_audio)
        info = sf.info(fh)
    return info.frames / info.samplerate


def write_wav(path: str | Path, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Atomically write 16-bit PCM wav."""
    import soundfile as sf

    from twistlm.io import atomic_path

    with atomic_path(path) as tmp:
        sf.write(
            str(tmp), np.asarray(wav, dtype=np.float32), sample_rate, format="WAV", subtype="PCM_16"
        )


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")


def list_audio(root: str | Path) -> list[Path]:
    """Audio files under ``root`` (recursive), sorted for determinism."""
    root = Path(root)
    return sorted(
        p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
    )
