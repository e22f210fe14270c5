"""Frame ranges for bounded-memory chunking, shared by the feature extractors.

Plain arithmetic with no twistlm imports, so :mod:`twistlm.tokenizer.features` (the registry,
which imports the extractors) and the extractors themselves can both use it.
"""

from __future__ import annotations

from collections.abc import Iterator


def chunk_ranges(n_frames: int, chunk_frames: int) -> Iterator[tuple[int, int]]:
    """[a, b) frame ranges of at most ``chunk_frames`` covering ``range(n_frames)``."""
    chunk_frames = max(1, int(chunk_frames))
    for a in range(0, n_frames, chunk_frames):
        yield a, min(n_frames, a + chunk_frames)
