"""Bounded-memory access to one audio file as 16 kHz mono float32 samples.

:class:`AudioSource` gives random access ``read(start, stop)`` to the converted waveform without
holding it in memory: 16 kHz mono files are read in place with ``soundfile`` (seek + read);
anything else (other rate, several channels) is converted once, block by block, with
``soxr.ResampleStream`` into a temporary raw float32 file that is memory-mapped. Opening the
source makes one validation pass (finite, not all zero, long enough) that also accumulates the
waveform mean and variance (fairseq's ``task.normalize`` needs them for long files).

Files are opened as Python file objects and handed to soundfile, so any file name the OS accepts
works (soundfile encodes ``str`` names as strict UTF-8, which fails on latin-1 names).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twistlm.audio import SAMPLE_RATE, AudioError, check_waveform, load_audio

BLOCK = 1 << 18  # samples per I/O block (~1 MB of float32)


@dataclass
class AudioSource:
    """A 16 kHz mono waveform readable by range. Use as a context manager (closes temp files).

    Attributes:
        n_samples: length in samples at 16 kHz.
        mean, var: waveform mean and (biased) variance, float64.
    """

    n_samples: int
    mean: float
    var: float
    _array: np.ndarray | None = None
    _sf: object | None = None
    _fh: object | None = None
    _tmp: str | None = None

    # ---- constructors ----
    @classmethod
    def from_array(cls, wav: np.ndarray) -> AudioSource:
        wav = np.ascontiguousarray(wav, dtype=np.float32).reshape(-1)
        check_waveform(wav, min_samples=1)
        w = wav.astype(np.float64)
        return cls(int(wav.size), float(w.mean()), float(w.var()), _array=wav)

    @classmethod
    def open(
        cls, path: str | Path, max_in_memory_seconds: float = 60.0, tmp_dir: str | None = None
    ) -> AudioSource:
        """Open ``path``; files up to ``max_in_memory_seconds`` are simply loaded in memory."""
        import soundfile as sf

        path = Path(path)
        try:
            with open(path, "rb") as fh:
                info = sf.info(fh)
        except Exception as e:
            raise AudioError(f"cannot decode audio: {' '.join(str(e).split())}") from e
        if info.frames == 0:
            raise AudioError("audio is empty")
        if info.frames / info.samplerate <= max_in_memory_seconds:
            return cls.from_array(load_audio(path, min_samples=1))
        if info.samplerate == SAMPLE_RATE and info.channels == 1:
            return cls._open_in_place(path)
        return cls._convert(path, info, tmp_dir)

    @classmethod
    def _open_in_place(cls, path: Path) -> AudioSource:
        import soundfile as sf

        fh = open(path, "rb")
        f = None
        n, s, ss, nonzero = 0, 0.0, 0.0, False
        try:
            f = sf.SoundFile(fh)
            for block in f.blocks(blocksize=BLOCK, dtype="float32", always_2d=False):
                n, s, ss, nonzero = _accumulate(block, n, s, ss, nonzero)
            stats = _finish(n, s, ss, nonzero)  # same checks as an in-memory file
        except Exception as e:
            if f is not None:
                f.close()
            fh.close()
            if isinstance(e, AudioError):
                raise
            raise AudioError(f"cannot decode audio: {' '.join(str(e).split())}") from e
        return cls(n, *stats, _sf=f, _fh=fh)

    @classmethod
    def _convert(cls, path: Path, info, tmp_dir: str | None) -> AudioSource:
        import soundfile as sf
        import soxr

        fd, tmp = tempfile.mkstemp(prefix="twistlm-audio-", suffix=".f32", dir=tmp_dir)
        n, s, ss, nonzero = 0, 0.0, 0.0, False
        try:
            rs = None
            if info.samplerate != SAMPLE_RATE:
                rs = soxr.ResampleStream(
                    info.samplerate, SAMPLE_RATE, 1, dtype="float32", quality="HQ"
                )
            with os.fdopen(fd, "wb") as out, open(path, "rb") as fh, sf.SoundFile(fh) as f:
                blocks = f.blocks(blocksize=BLOCK, dtype="float32", always_2d=True)
                for block in blocks:
                    mono = block.mean(axis=1).astype(np.float32)
                    last = f.tell() >= info.frames
                    if rs is not None:
                        mono = rs.resample_chunk(mono, last=last)
                    n, s, ss, nonzero = _accumulate(mono, n, s, ss, nonzero)
                    out.write(mono.tobytes())
            mean, var = _finish(n, s, ss, nonzero)
            arr = np.memmap(tmp, dtype=np.float32, mode="r", shape=(n,))
            return cls(n, mean, var, _array=arr, _tmp=tmp)
        except AudioError:
            os.unlink(tmp)
            raise
        except Exception as e:
            os.unlink(tmp)
            raise AudioError(f"cannot decode audio: {' '.join(str(e).split())}") from e

    # ---- access ----
    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) clipped to [0, n_samples), float32 (a copy)."""
        start, stop = max(0, start), min(self.n_samples, stop)
        if stop <= start:
            return np.zeros(0, np.float32)
        if self._array is not None:
            return np.array(self._array[start:stop], dtype=np.float32)
        self._sf.seek(start)
        return self._sf.read(stop - start, dtype="float32", always_2d=False)

    def close(self) -> None:
        if self._sf is not None:
            self._sf.close()
            self._sf = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tmp is not None:
            self._array = None
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)
            self._tmp = None

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def seconds(self) -> float:
        return self.n_samples / SAMPLE_RATE


def _accumulate(block: np.ndarray, n: int, s: float, ss: float, nonzero: bool):
    if block.size and not np.all(np.isfinite(block)):
        raise AudioError("audio contains NaN or infinite samples")
    b = block.astype(np.float64)
    return n + block.size, s + float(b.sum()), ss + float((b * b).sum()), nonzero or bool(b.any())


def _finish(n: int, s: float, ss: float, nonzero: bool) -> tuple[float, float]:
    if n == 0:
        raise AudioError("audio is empty")
    if not nonzero:
        raise AudioError("audio is all zeros (silent)")
    mean = s / n
    return mean, max(ss / n - mean * mean, 0.0)
