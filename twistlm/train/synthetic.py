"""Synthetic unit corpora with speech-like structure, for tests, benchmarks and pilots.

Not real speech: a lexicon of "words" (runs of 2-6 units, no unit repeated back to back, as
after dedup) and "sentences" drawn from a sparse word-bigram chain with Zipfian word
frequencies. Like deduplicated HuBERT units it has a fixed inventory of recurring multi-unit
patterns with local dependencies, so a count bigram over units is far from optimal and in-context
copying helps. Used when no tokenized speech is available; say so next to any number from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def synthetic_units(
    n_utterances: int,
    n_units: int = 200,
    n_words: int = 400,
    mean_words: float = 12.0,
    seed: int = 0,
) -> list[np.ndarray]:
    """``n_utterances`` int64 unit arrays drawn from a word-bigram "language" (see module doc)."""
    rng = np.random.default_rng(seed)
    words = []
    for _ in range(n_words):
        n = int(rng.integers(2, 7))
        w = [int(rng.integers(n_units))]
        while len(w) < n:
            u = int(rng.integers(n_units))
            if u != w[-1]:
                w.append(u)
        words.append(np.array(w, np.int64))
    zipf = 1.0 / np.arange(1, n_words + 1)
    # Each word is followed by one of 8 likely successors (80%) or any word by frequency (20%).
    succ = rng.integers(0, n_words, size=(n_words, 8))
    out = []
    for _ in range(n_utterances):
        n = max(1, int(rng.poisson(mean_words)))
        w = int(rng.choice(n_words, p=zipf / zipf.sum()))
        seq = [words[w]]
        for _ in range(n - 1):
            if rng.random() < 0.8:
                w = int(succ[w, int(rng.integers(8))])
            else:
                w = int(rng.choice(n_words, p=zipf / zipf.sum()))
            seq.append(words[w])
        units = np.concatenate(seq)
        keep = np.ones(units.size, bool)
        keep[1:] = units[1:] != units[:-1]  # dedup across word joins too
        out.append(units[keep])
    return out


def write_synthetic_shards(
    root: str | Path, n_utterances: int, n_units: int = 200, seed: int = 0, per_shard: int = 500
) -> Path:
    """Write a synthetic corpus in the unit-shard format (+ tokenizer.json). Returns ``root``."""
    from twistlm.data.shards import shard_name, write_shard, write_shard_metadata

    root = Path(root)
    utts = synthetic_units(n_utterances, n_units, seed=seed)
    for s in range(0, len(utts), per_shard):
        recs = [
            {
                "id": f"synth/{i:07d}",
                "units": u,
                "durations": np.ones_like(u),
                "seconds": u.size / 20.0,
            }
            for i, u in enumerate(utts[s : s + per_shard], start=s)
        ]
        write_shard(root / shard_name(0, s // per_shard), recs)
    write_shard_metadata(
        root,
        {"name": "synthetic-word-bigram", "n_units": n_units, "frame_rate": 20.0, "dedup": True},
    )
    return root
