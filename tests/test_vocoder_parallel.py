"""Parallel vocoder data: DTW against a brute-force reference, warping of a stretched copy."""

import numpy as np
import torch

from twistlm.vocoder.parallel import dtw_path, frame_vectors, warp_map, warped_features


def _reference_cost(cost: np.ndarray) -> float:
    """Textbook O(nm) DTW recursion (steps (1,0), (0,1), (1,1))."""
    n, m = cost.shape
    acc = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            prev = [
                acc[i - 1, j] if i else np.inf,
                acc[i, j - 1] if j else np.inf,
                acc[i - 1, j - 1] if i and j else np.inf,
            ]
            acc[i, j] = cost[i, j] + (0.0 if i == j == 0 else min(prev))
    return float(acc[-1, -1])


def test_dtw_path_is_optimal_monotone_and_complete():
    rng = np.random.default_rng(0)
    for n, m in ((1, 1), (1, 5), (7, 3), (30, 41)):
        cost = rng.random((n, m))
        path = dtw_path(cost)
        assert path[0] == (0, 0) and path[-1] == (n - 1, m - 1)
        steps = {(b[0] - a[0], b[1] - a[1]) for a, b in zip(path, path[1:], strict=False)}
        assert steps <= {(1, 0), (0, 1), (1, 1)}
        assert np.isclose(sum(cost[i, j] for i, j in path), _reference_cost(cost))


def test_warp_map_recovers_a_time_stretch():
    rng = np.random.default_rng(1)
    centroids = rng.standard_normal((12, 16)).astype(np.float32)
    units = torch.tensor([3, 7, 1, 9, 4, 0, 11])
    target = frame_vectors(units, torch.ones(7, dtype=torch.long), centroids)
    source = frame_vectors(units, torch.full((7,), 2, dtype=torch.long), centroids)  # 2x slower
    mapping = warp_map(source, target)
    assert mapping.tolist() == [i // 2 for i in range(14)]
    feats = torch.arange(7 * 4 + 1, dtype=torch.float32)[:, None].repeat(1, 3)  # row index
    warped = warped_features(mapping, feats, r=4)
    assert warped.shape == (14 * 4, 3)
    assert warped[:8, 0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]  # frame 0 twice
    assert warped[-4:, 0].tolist() == [24, 25, 26, 27]
