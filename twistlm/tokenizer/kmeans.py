"""K-means for speech units: memory-bounded frame sampling, faiss fitting, exact batched
nearest-centroid assignment, safe centroid files, opt-in import of sklearn/textlesslib pickles.

Centroid file: safetensors with one tensor ``centroids`` (k, dim) float32; string metadata
(``n_units``, ``dim``, plus whatever the caller adds, e.g. features / layer / source). A
tokenizer that standardizes its features before k-means also stores ``feature_mean`` and
``feature_std`` (dim,) float32 there; files without them (textlesslib, SlamKit) assign raw
features.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

CENTROIDS_KEY = "centroids"
MEAN_KEY, STD_KEY = "feature_mean", "feature_std"


class UnsafeFileError(PermissionError):
    """Refusing to unpickle a file without an explicit opt-in."""


# ---------------------------------------------------------------- sampling
class FrameReservoir:
    """Uniform sample of at most ``capacity`` frames from a stream (reservoir sampling, Algorithm R).

    Memory is bounded by ``capacity * dim`` float32 whatever the corpus size.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = int(capacity)
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._buf: np.ndarray | None = None
        self._n = 0

    def add(self, frames: Tensor | np.ndarray) -> None:
        x = np.asarray(frames.detach().cpu() if isinstance(frames, Tensor) else frames, np.float32)
        if x.ndim != 2 or x.shape[0] == 0:
            return
        if self._buf is None:
            self._buf = np.empty((self.capacity, x.shape[1]), np.float32)
        free = min(self.capacity - self._n, x.shape[0])
        if free > 0:  # fill phase
            self._buf[self._n : self._n + free] = x[:free]
            self._n += free
            self.seen += free
            x = x[free:]
        if x.shape[0]:
            t = self.seen + np.arange(x.shape[0])  # global index of each incoming frame
            j = (self._rng.random(x.shape[0]) * (t + 1)).astype(np.int64)
            keep = j < self.capacity
            self._buf[j[keep]] = x[keep]  # later duplicates win, as in the sequential algorithm
            self.seen += x.shape[0]

    def frames(self) -> np.ndarray:
        if self._buf is None:
            raise ValueError("no frames were added")
        return self._buf[: self._n]


# ---------------------------------------------------------------- fitting
def fit_kmeans(
    frames: np.ndarray | Tensor,
    n_units: int,
    n_iter: int = 50,
    seed: int = 0,
    n_redo: int = 1,
    max_points_per_centroid: int = 1024,
    verbose: bool = False,
) -> Tensor:
    """faiss k-means on (N, dim) frames -> (n_units, dim) float32 centroids.

    faiss subsamples to ``n_units * max_points_per_centroid`` points (its default is 256).
    """
    import faiss

    x = np.ascontiguousarray(
        frames.detach().cpu().numpy() if isinstance(frames, Tensor) else frames, dtype=np.float32
    )
    if x.ndim != 2:
        raise ValueError(f"frames must be (N, dim), got shape {x.shape}")
    if x.shape[0] < n_units:
        raise ValueError(f"need at least n_units={n_units} frames to fit k-means, got {x.shape[0]}")
    km = faiss.Kmeans(
        x.shape[1],
        int(n_units),
        niter=int(n_iter),
        nredo=int(n_redo),
        seed=int(seed),
        verbose=verbose,
        max_points_per_centroid=int(max_points_per_centroid),
        spherical=False,
    )
    km.train(x)
    return torch.from_numpy(np.array(km.centroids, dtype=np.float32))


# ---------------------------------------------------------------- assignment
def assign(
    feats: Tensor, centroids: Tensor, batch_size: int = 8192, c_sq: Tensor | None = None
) -> Tensor:
    """(n, dim) features -> (n,) int64 index of the nearest centroid in squared L2.

    Uses ``||c||^2 - 2 x.c`` (one matmul per batch), then re-checks in float64 every row whose
    best and second-best distances are within float32 rounding, so the result equals a float64
    brute-force argmin.
    """
    feats = torch.as_tensor(feats).float()
    centroids = torch.as_tensor(centroids).float().to(feats.device)
    if feats.ndim != 2 or feats.shape[1] != centroids.shape[1]:
        raise ValueError(
            f"features {tuple(feats.shape)} do not match centroids {tuple(centroids.shape)}"
        )
    if c_sq is None:
        c_sq = centroids.pow(2).sum(1)
    out = torch.empty(feats.shape[0], dtype=torch.long, device=feats.device)
    for s in range(0, feats.shape[0], batch_size):
        x = feats[s : s + batch_size]
        d = torch.addmm(c_sq[None, :], x, centroids.t(), beta=1.0, alpha=-2.0)  # (b, k)
        if centroids.shape[0] == 1:
            out[s : s + x.shape[0]] = 0
            continue
        two = d.topk(2, dim=1, largest=False)
        idx = two.indices[:, 0]
        # float32 error of ||x||^2 + ||c||^2 - 2x.c is ~1e-6 * scale: recheck close calls exactly
        scale = x.pow(2).sum(1) + c_sq.max()
        close = (two.values[:, 1] - two.values[:, 0]) <= 1e-5 * scale + 1e-6
        if bool(close.any()):
            rows = close.nonzero().squeeze(1)
            exact = torch.cdist(x[rows].double(), centroids.double()).argmin(1)
            idx[rows] = exact
        out[s : s + x.shape[0]] = idx
    return out


# ---------------------------------------------------------------- files
def save_centroids(
    path: str | Path,
    centroids: Tensor,
    meta: dict[str, Any] | None = None,
    standardizer: tuple[Tensor, Tensor] | None = None,
) -> None:
    """Atomically write (k, dim) centroids as safetensors with string metadata (and, if given,
    the (mean, std) the features are standardized with before assignment)."""
    from safetensors.torch import save_file

    from twistlm.io import atomic_path

    c = torch.as_tensor(centroids).float().contiguous()
    if c.ndim != 2:
        raise ValueError(f"centroids must be (k, dim), got {tuple(c.shape)}")
    md = {"n_units": str(c.shape[0]), "dim": str(c.shape[1])}
    for k, v in (meta or {}).items():
        md[str(k)] = v if isinstance(v, str) else json.dumps(v)
    tensors = {CENTROIDS_KEY: c}
    if standardizer is not None:
        mean, std = (torch.as_tensor(t).float().reshape(-1).contiguous() for t in standardizer)
        if mean.numel() != c.shape[1] or std.numel() != c.shape[1]:
            raise ValueError(f"standardizer must be ({c.shape[1]},) vectors")
        tensors[MEAN_KEY], tensors[STD_KEY] = mean, std
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=md)


def load_centroids(path: str | Path) -> tuple[Tensor, dict[str, str]]:
    """(k, dim) float32 centroids and the file's metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        if CENTROIDS_KEY not in f.keys():
            raise ValueError(f"{path}: no {CENTROIDS_KEY!r} tensor (keys: {list(f.keys())})")
        return f.get_tensor(CENTROIDS_KEY).float(), dict(f.metadata() or {})


def load_standardizer(path: str | Path) -> tuple[Tensor, Tensor] | None:
    """The (mean, std) a centroid file standardizes features with, or None (raw features)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        if not {MEAN_KEY, STD_KEY} & keys:
            return None
        if not {MEAN_KEY, STD_KEY} <= keys:
            raise ValueError(f"{path}: has only one of {MEAN_KEY!r} / {STD_KEY!r}")
        return f.get_tensor(MEAN_KEY).float(), f.get_tensor(STD_KEY).float()


def zscores(feats: Tensor | np.ndarray, standardizer: tuple[Tensor, Tensor]) -> Tensor:
    """(n, dim) features -> float32 per-dimension z-scores ``(x - mean) / std`` (on the
    features' device). The one place the standardizer is applied: fitting and assignment."""
    x = torch.as_tensor(feats).float()
    mean, std = standardizer
    return (x - mean.to(x.device)) / std.to(x.device)


def fit_standardizer(frames: np.ndarray | Tensor, floor: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and std of (N, dim) frames (std floored so no dimension divides by 0)."""
    x = torch.as_tensor(np.asarray(frames), dtype=torch.float64)
    return x.mean(0).float(), x.std(0).clamp_min(floor).float()


def import_kmeans_pickle(path: str | Path, trust_pickle: bool = False) -> Tensor:
    """Centroids (``cluster_centers_``) of a joblib-pickled sklearn KMeans (textlesslib ``km.bin``).

    Unpickling runs arbitrary code, so it is refused unless ``trust_pickle=True``.
    """
    if not trust_pickle:
        raise UnsafeFileError(
            f"{path}: k-means files from textlesslib/sklearn are pickles, which can run "
            "arbitrary code when loaded; pass trust_pickle=True (CLI: --trust-pickle) only "
            "for files from a source you trust. They are converted once to safetensors."
        )
    import joblib

    km = joblib.load(str(path))
    centers = getattr(km, "cluster_centers_", None)
    if centers is None:
        raise ValueError(f"{path}: unpickled {type(km).__name__} has no cluster_centers_")
    return torch.from_numpy(np.asarray(centers, dtype=np.float32))


def sample_frames(
    extractor,
    files: Iterable[str | Path],
    max_frames: int,
    seed: int = 0,
    errors=None,
    progress=True,
) -> np.ndarray:
    """Features of ``files`` sampled uniformly into at most ``max_frames`` frames (bounded memory).

    Bad files are logged to ``errors`` (an :class:`twistlm.io.ErrorLog`) and skipped.
    """
    from tqdm import tqdm

    from twistlm.tokenizer.stream import AudioSource

    files = list(files)
    res = FrameReservoir(max_frames, seed=seed)
    for path in tqdm(files, desc="features", unit="file", disable=not progress):
        try:
            with AudioSource.open(path) as src:
                for block in extractor.features_stream(src):
                    res.add(block)
        except Exception as e:  # one bad file never stops the fit
            if errors is None:
                raise
            from twistlm.audio import display_path

            errors.add(display_path(path), e)
    if res.seen == 0:
        raise ValueError("no usable audio frames in the given files")
    return res.frames()
