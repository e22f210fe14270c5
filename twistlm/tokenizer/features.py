"""The feature-extractor interface and registry.

A feature extractor turns a 16 kHz mono waveform into frame features at a fixed frame rate:

- ``sample_rate: int`` (16000), ``frame_rate: float`` (Hz), ``hop: int`` (samples per frame),
  ``dim: int``, ``__call__(wav: Tensor (T,)) -> Tensor (n_frames, dim)`` float32.

Extractors also provide what bounded-memory chunking needs:

- ``n_frames(n_samples) -> int``: frames produced for a waveform of that length.
- ``features_stream(source: AudioSource, chunk_seconds) -> Iterator[Tensor]``: the same
  frames in chunks, reading only a chunk (plus context) of audio at a time.
- ``exact_chunks: bool``: whether chunked frames are identical to whole-file frames.
- ``config() -> dict``: what ``build_extractor`` needs to rebuild it (plus saved weights).

Registry: ``FEATURE_EXTRACTORS = {"hubert": ..., "logmel": ..., "mfcc": ...}`` maps a name to
a builder ``(**config) -> extractor``; :func:`build_extractor` calls it. The extractors import
nothing from here (their chunking helper is :mod:`twistlm.tokenizer.chunks`), so the registry
can import them without a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from twistlm.tokenizer.chunks import chunk_ranges  # re-export: its old home

__all__ = ["FEATURE_EXTRACTORS", "FeatureExtractor", "build_extractor", "chunk_ranges"]


@runtime_checkable
class FeatureExtractor(Protocol):
    sample_rate: int
    frame_rate: float
    hop: int
    dim: int

    def __call__(self, wav: Tensor) -> Tensor: ...


def _logmel(**kw: Any):
    from twistlm.tokenizer.spectral import SpectralFeatures

    return SpectralFeatures(kind="logmel", **kw)


def _mfcc(**kw: Any):
    from twistlm.tokenizer.spectral import SpectralFeatures

    return SpectralFeatures(kind="mfcc", **kw)


def _hubert(**kw: Any):
    from twistlm.tokenizer.hubert import HubertFeatures

    return HubertFeatures.from_pretrained(**kw)


def _whisper(**kw: Any):
    from twistlm.tokenizer.whisper import WhisperFeatures

    return WhisperFeatures.from_pretrained(**kw)


FEATURE_EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {
    "hubert": _hubert,
    "logmel": _logmel,
    "mfcc": _mfcc,
    "whisper": _whisper,
}


def build_extractor(name: str, **config: Any) -> FeatureExtractor:
    """Build a registered extractor by name (``hubert`` needs ``model=`` dir or hub name)."""
    if name not in FEATURE_EXTRACTORS:
        raise ValueError(f"unknown feature extractor {name!r}; known: {sorted(FEATURE_EXTRACTORS)}")
    return FEATURE_EXTRACTORS[name](**config)
