"""The records every benchmark reader returns: :class:`PairRecord` of two :class:`AudioRef`.

The readers (:mod:`twistlm.eval.readers` and the layouts it dispatches to) build them; the
scorer, the cache and the reports read them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np


class BenchmarkFormatError(ValueError):
    """A benchmark file or folder that does not fit its layout (the message names file and row)."""


@dataclass(frozen=True)
class AudioRef:
    """One utterance: a file on disk or encoded bytes (from parquet).

    ``key`` is a stable unique id for caching and submission files (the file stem for files).
    """

    key: str
    path: str | None
    data: bytes | None = field(default=None, repr=False)

    def load(self) -> np.ndarray:
        """(T,) float32 16 kHz mono, validated (raises ``twistlm.audio.AudioError``)."""
        from twistlm.audio import AudioError, check_waveform, load_audio, to_mono_16k

        if self.data is None:
            if self.path is None:
                raise AudioError(f"{self.key}: neither a path nor audio bytes")
            return load_audio(self.path)
        import soundfile as sf

        try:
            wav, sr = sf.read(io.BytesIO(self.data), dtype="float32", always_2d=False)
        except Exception as e:
            raise AudioError(f"{self.key}: cannot decode audio bytes: {e}") from e
        wav = to_mono_16k(wav, sr)
        check_waveform(wav, what=self.key)
        return wav


@dataclass(frozen=True)
class PairRecord:
    """A (positive, negative) pair: the model should give ``positive`` the higher likelihood.

    ``meta`` -- swuggy: id, voice, frequency (int | None), word, non_word, and length (int, the
    word's gold.csv ``length``) when given; sblimp: id, voice,
    type, subtype; ssc/tsc: category (and whatever else the source gives).
    """

    benchmark: str
    pair_id: str
    positive: AudioRef
    negative: AudioRef
    positive_text: str | None
    negative_text: str | None
    meta: dict = field(default_factory=dict, hash=False)
