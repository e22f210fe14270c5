"""``UnitTokenizer`` = feature extractor + (optional per-dimension standardization) + k-means
centroids + dedup flag.

Saved layout (``save_pretrained(dir)``)::

    dir/tokenizer.json          how units are made (see ``info()``) + the extractor's config
    dir/centroids.safetensors   (n_units, dim) float32 (+ feature_mean / feature_std when the
                                features are standardized before assignment)
    dir/encoder/                HF HubertModel truncated to ``layer`` (hubert features only)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from twistlm.audio import AudioError
from twistlm.tokenizer.dedup import dedup as _dedup
from twistlm.tokenizer.kmeans import (
    assign,
    load_centroids,
    load_standardizer,
    save_centroids,
    zscores,
)

FORMAT = "twistlm-unit-tokenizer"
TOKENIZER_JSON = "tokenizer.json"
CENTROIDS_FILE = "centroids.safetensors"
ENCODER_DIR = "encoder"


@dataclass
class TokenizedUtterance:
    """Units of one utterance.

    Attributes:
        units: (N,) int64 unit ids (deduplicated when the tokenizer dedups).
        durations: (N,) int64 frames per unit (all ones without dedup).
        frame_rate: frames per second of the underlying frames.
    """

    units: Tensor
    durations: Tensor
    frame_rate: float

    @property
    def n_frames(self) -> int:
        return int(self.durations.sum())

    @property
    def seconds(self) -> float:
        """Duration covered by the frames (n_frames / frame_rate)."""
        return self.n_frames / self.frame_rate


class UnitTokenizer:
    """Audio -> units. ``extractor`` follows :mod:`twistlm.tokenizer.features`."""

    def __init__(
        self,
        extractor,
        centroids: Tensor,
        dedup: bool = True,
        name: str | None = None,
        standardizer: tuple[Tensor, Tensor] | None = None,
    ):
        """``standardizer``: (mean, std) per feature dimension; features become
        ``(x - mean) / std`` before the nearest centroid is taken (centroids live in that space).
        """
        centroids = torch.as_tensor(centroids).float()
        if centroids.ndim != 2 or centroids.shape[1] != extractor.dim:
            raise ValueError(
                f"centroids {tuple(centroids.shape)} do not fit {extractor.dim}-dim features"
            )
        self.standardizer = None
        if standardizer is not None:
            mean, std = (torch.as_tensor(t).float().reshape(-1) for t in standardizer)
            if mean.numel() != extractor.dim or std.numel() != extractor.dim:
                raise ValueError(f"standardizer must be two ({extractor.dim},) vectors")
            if not bool((std > 0).all()):
                raise ValueError("standardizer std must be > 0 in every dimension")
            self.standardizer = (mean, std)
        self.extractor = extractor
        self.centroids = centroids.contiguous()
        self._c_sq = self.centroids.pow(2).sum(1)
        self.dedup = bool(dedup)
        self.name = name or f"{extractor.name}-km{centroids.shape[0]}"

    # ---- properties ----
    @property
    def n_units(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def frame_rate(self) -> float:
        return float(self.extractor.frame_rate)

    @property
    def hop(self) -> int:
        return int(self.extractor.hop)

    # ---- encoding ----
    def frame_units(self, wav: Tensor | np.ndarray) -> Tensor:
        """(T,) 16 kHz waveform -> (n_frames,) frame units (no dedup)."""
        feats = self.extractor(torch.as_tensor(np.asarray(wav), dtype=torch.float32).reshape(-1))
        return self.assign_features(feats)

    def encode(self, wav: Tensor | np.ndarray) -> TokenizedUtterance:
        """(T,) 16 kHz mono float waveform -> units, durations, frame rate."""
        wav = torch.as_tensor(np.asarray(wav), dtype=torch.float32).reshape(-1)
        if self.extractor.n_frames(wav.numel()) == 0:
            raise AudioError(self._too_short(wav.numel()))
        return self._finish(self.frame_units(wav))

    def encode_file(
        self, path: str | Path, max_in_memory_seconds: float = 60.0
    ) -> TokenizedUtterance:
        """Decode, downmix, resample and tokenize a file; long files in bounded-memory chunks."""
        from twistlm.tokenizer.stream import AudioSource

        with AudioSource.open(path, max_in_memory_seconds=max_in_memory_seconds) as src:
            return self.encode_source(src)

    def encode_source(self, source) -> TokenizedUtterance:
        """Tokenize an :class:`~twistlm.tokenizer.stream.AudioSource` chunk by chunk."""
        if self.extractor.n_frames(source.n_samples) == 0:
            raise AudioError(self._too_short(source.n_samples))
        parts = [self.assign_features(f) for f in self.extractor.features_stream(source)]
        return self._finish(torch.cat(parts))

    def assign_features(self, feats: Tensor) -> Tensor:
        """(n, dim) extractor features -> (n,) frame units (standardized first if set)."""
        if self.standardizer is not None:
            feats = zscores(feats, self.standardizer)
        return assign(
            feats, self.centroids.to(feats.device), c_sq=self._c_sq.to(feats.device)
        ).cpu()

    def _finish(self, frames: Tensor) -> TokenizedUtterance:
        if self.dedup:
            units, durations = _dedup(frames)
        else:
            units, durations = frames, torch.ones_like(frames)
        return TokenizedUtterance(units, durations, self.frame_rate)

    def _too_short(self, n_samples: int) -> str:
        return (
            f"audio is too short for one {self.frame_rate:g} Hz frame: {n_samples} samples "
            f"({n_samples / 16000 * 1000:.0f} ms)"
        )

    # ---- metadata and files ----
    def info(self) -> dict[str, Any]:
        """What a unit dataset needs to know about its units (stored as tokenizer.json).

        ``pad_samples`` (HuBERT edge padding, SlamKit style) is listed only when non-zero, so
        the info of every unpadded tokenizer (and the unit folders made with it) is unchanged.
        """
        info = {
            "name": self.name,
            "features": self.extractor.name,
            "layer": getattr(self.extractor, "layer", None),
            "frame_rate": self.frame_rate,
            "hop": self.hop,
            "n_units": self.n_units,
            "dedup": self.dedup,
        }
        if getattr(self.extractor, "pad_samples", 0):
            info["pad_samples"] = int(self.extractor.pad_samples)
        if self.standardizer is not None:
            info["standardize"] = True  # listed only when on: older infos stay as they were
        return info

    def save_pretrained(self, path: str | Path) -> None:
        from twistlm.io import write_json

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.extractor.name in ("hubert", "whisper"):
            self.extractor.save(path / ENCODER_DIR)
        save_centroids(
            path / CENTROIDS_FILE, self.centroids, {"name": self.name}, self.standardizer
        )
        cfg = dict(self.extractor.config())
        cfg.pop("source", None)
        write_json(
            path / TOKENIZER_JSON,
            {"format": FORMAT, "version": 1, **self.info(), "feature_config": cfg},
        )

    @classmethod
    def from_pretrained(
        cls, path: str | Path, fast: bool | None = None, device: str | None = None, **kw: Any
    ) -> UnitTokenizer:
        """Load a saved tokenizer dir, or a released preset by name (see :mod:`twistlm.loaders`).

        ``fast`` / ``device`` override the HuBERT extractor's precision and device.
        """
        from twistlm.io import read_json
        from twistlm.tokenizer.features import build_extractor

        p = Path(path)
        if not (p / TOKENIZER_JSON).is_file():
            from twistlm import loaders

            if str(path) in loaders.TOKENIZER_PRESETS:
                return load_tokenizer_preset(str(path), fast=fast, device=device, **kw)
            raise FileNotFoundError(
                f"{path}: not a tokenizer dir (no {TOKENIZER_JSON}) and not a preset "
                f"({', '.join(sorted(loaders.TOKENIZER_PRESETS))})"
            )
        meta = read_json(p / TOKENIZER_JSON)
        if meta.get("format") != FORMAT:
            raise ValueError(f"{p / TOKENIZER_JSON}: not a {FORMAT} file")
        cfg = dict(meta.get("feature_config", {}))
        if meta["features"] in ("logmel", "mfcc"):
            cfg.setdefault("std_floor", 0.0)  # saved before the std floor existed: old units
        if meta["features"] == "hubert":
            cfg["model"] = p / ENCODER_DIR
            if fast is not None:
                cfg["fast"] = fast
            if device is not None:
                cfg["device"] = device
        elif meta["features"] == "whisper":
            if (p / ENCODER_DIR).is_dir():  # packaged models are found again by name + sha256
                cfg["model"] = str(p / ENCODER_DIR)
            if device is not None:
                cfg["device"] = device
        extractor = build_extractor(meta["features"], **cfg)
        centroids, _ = load_centroids(p / CENTROIDS_FILE)
        standardizer = load_standardizer(p / CENTROIDS_FILE)
        if bool(meta.get("standardize", False)) != (standardizer is not None):
            raise ValueError(
                f"{p}: tokenizer.json says standardize={meta.get('standardize', False)} but "
                f"{CENTROIDS_FILE} {'has' if standardizer is not None else 'lacks'} "
                "feature_mean/feature_std"
            )
        tok = cls(
            extractor,
            centroids,
            dedup=meta.get("dedup", True),
            name=meta.get("name"),
            standardizer=standardizer,
        )
        if abs(tok.frame_rate - float(meta["frame_rate"])) > 1e-6 or tok.hop != int(meta["hop"]):
            raise ValueError(
                f"{p}: extractor gives {tok.frame_rate} Hz / hop {tok.hop}, metadata says "
                f"{meta['frame_rate']} Hz / hop {meta['hop']}"
            )
        return tok


def load_tokenizer_preset(
    name: str,
    n_units: int | None = None,
    trust_pickle: bool = False,
    fast: bool | None = None,
    device: str | None = None,
    cache_dir: str | Path | None = None,
) -> UnitTokenizer:
    """Build a released tokenizer (HuBERT from the HF hub + textlesslib k-means).

    The presets and downloads are :mod:`twistlm.loaders`' (``TOKENIZER_PRESETS``,
    :func:`~twistlm.loaders.tokenizer_preset_parts`). Needs the network (or a warm HF / torch
    hub cache). The k-means file is a pickle, so this refuses unless ``trust_pickle=True``; save
    the result with ``save_pretrained`` to convert once.
    """
    from twistlm.loaders import tokenizer_preset_parts

    extractor, centroids, label = tokenizer_preset_parts(
        name, n_units, trust_pickle=trust_pickle, fast=fast, device=device, cache_dir=cache_dir
    )
    return UnitTokenizer(extractor, centroids, dedup=True, name=label)


def _feature_label(features: str, kw: dict) -> str:
    return f"whisper-{kw.get('model', 'tiny.en')}-" if features == "whisper" else features


def build_offline_tokenizer(
    wavs: list[str | Path],
    n_units: int = 200,
    features: str = "logmel",
    frame_rate: float = 25.0,
    norm: str = "utterance",
    max_frames: int = 200_000,
    n_iter: int = 50,
    seed: int = 0,
    dedup: bool = True,
    standardize: bool | None = None,
    errors=None,
    progress: bool = True,
    **feature_kw: Any,
) -> UnitTokenizer:
    """Fit an offline tokenizer (k-means on ``features``) on ``wavs``.

    ``features``: ``logmel`` / ``mfcc`` (spectral, normalised per utterance with ``norm``) or
    ``whisper`` (a Whisper encoder: pass ``model="base"`` or ``"tiny.en"``, the packaged
    CTranslate2 models; ``frame_rate`` 25 pools pairs of its 50 Hz frames).
    Features of all files are sampled into at most ``max_frames`` frames (reservoir sampling),
    k-means runs with faiss, and the result is a ready :class:`UnitTokenizer` (not yet saved).
    ``standardize``: fit k-means on per-dimension z-scores of the sampled frames (the mean and
    std are stored with the centroids and applied at assignment), so no few high-variance
    dimensions decide the clusters; None (default): on for Whisper features, whose raw units
    lose most of the sound (docs/tokenizer_whisper.md), off for the spectral ones (already
    normalised per utterance). A standardized tokenizer's name says ``zkm`` instead of ``km``.
    """
    from twistlm.tokenizer.features import build_extractor
    from twistlm.tokenizer.kmeans import fit_kmeans, fit_standardizer, sample_frames

    if features == "whisper":
        extractor = build_extractor(features, frame_rate=frame_rate, **feature_kw)
    else:
        extractor = build_extractor(features, frame_rate=frame_rate, norm=norm, **feature_kw)
    frames = sample_frames(extractor, wavs, max_frames, seed=seed, errors=errors, progress=progress)
    if standardize is None:
        standardize = features == "whisper"
    standardizer = None
    if standardize:
        standardizer = fit_standardizer(frames)
        frames = zscores(frames, standardizer).numpy()
    centroids = fit_kmeans(frames, n_units, n_iter=n_iter, seed=seed)
    return UnitTokenizer(
        extractor,
        centroids,
        dedup=dedup,
        standardizer=standardizer,
        name=f"{_feature_label(features, feature_kw)}{frame_rate:g}hz-"
        f"{'zkm' if standardize else 'km'}{n_units}",
    )
