"""Parallel training data for a one-voice vocoder: other voices' units -> the target voice's sound.

The offline tokenizer's units depend on the voice more than a vocoder can ignore: for the same
sentence spoken by two held-out voices, 74% of the units differ (the tokenizer report's
cross-voice edit distance, docs/tokenizer.md). A vocoder that learns only from its own voice's
units then meets mostly unfamiliar unit sequences when it resynthesizes anyone else. The TTS
voices give parallel speech for free: every training voice reads the same sentences as the
target voice. Each source utterance keeps its own units and durations (what the vocoder will
be given), and its target features are the target voice's features of the same sentence,
time-warped onto the source's unit frames by dynamic time warping (DTW) on the tokenizer's
centroid vectors (cosine distance; steps (1,0), (0,1), (1,1), Sakoe & Chiba 1978).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def dtw_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost monotone path through an (n, m) cost matrix from (0, 0) to (n-1, m-1)."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        row, prev = acc[i], acc[i - 1]
        c = cost[i - 1]
        # (i-1, j-1) and (i-1, j) are known for the whole row; (i, j-1) is the running left term
        best_up = np.minimum(prev[:-1], prev[1:]) + c  # candidates without the left move
        for j in range(1, m + 1):
            v = best_up[j - 1]
            left = row[j - 1] + c[j - 1]
            row[j] = v if v < left else left
    path = [(n - 1, m - 1)]
    i, j = n, m
    while (i, j) != (1, 1):
        moves = (
            (acc[i - 1, j - 1], i - 1, j - 1),
            (acc[i - 1, j], i - 1, j),
            (acc[i, j - 1], i, j - 1),
        )
        _, i, j = min(moves, key=lambda t: t[0])
        path.append((i - 1, j - 1))
    return path[::-1]


def frame_vectors(units: Tensor, durations: Tensor, centroids: np.ndarray) -> np.ndarray:
    """Unit frames (units repeated by durations) -> (F, D) unit-normalized centroid vectors."""
    frames = torch.repeat_interleave(units.long(), durations.long()).numpy()
    v = centroids[frames]
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-8)


def warp_map(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """(F_src, D), (F_tgt, D) unit-normalized vectors -> for each source frame the target frame
    it is aligned to (the rounded mean of its DTW partners), int64 (F_src,)."""
    path = dtw_path(1.0 - src @ tgt.T)
    sums = np.zeros(src.shape[0])
    counts = np.zeros(src.shape[0])
    for i, j in path:
        sums[i] += j
        counts[i] += 1
    return np.rint(sums / counts).astype(np.int64)


def warped_features(mapping: np.ndarray, tgt_features: Tensor, r: int) -> Tensor:
    """Target features at 10 ms (``r`` rows per unit frame) re-timed onto the source's unit
    frames: source frame i takes the ``r`` rows of its aligned target frame."""
    rows = (mapping[:, None] * r + np.arange(r)[None, :]).reshape(-1)
    rows = np.minimum(rows, tgt_features.shape[0] - 1)
    return tgt_features[torch.from_numpy(rows)]
