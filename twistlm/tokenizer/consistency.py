"""Do units mean the same thing in every voice? Cross-voice consistency and codebook use.

A SpeechLM trained on units can only transfer to a voice it never heard if the same words give
similar unit sequences in every voice. Measured on the same sentences spoken by several voices:

- ``same``: mean normalised edit distance (:func:`twistlm.sequences.normalized_edit_distance`)
  between two voices' unit sequences of the *same* sentence;
- ``different``: the same between two voices' sequences of *different* sentences;
- ``ratio = same / different``: 1.0 means the units say nothing about the words across voices;
  lower is more speaker-independent;
- ``twin``: how often a sentence's nearest sequence (smallest normalised edit distance) in the
  other voice is the same sentence, over both directions of every voice pair; ties share the
  credit (1/m when the twin is one of m nearest). Chance is 1 / number of sentences.

Codebook use: how many of the k units occur, and the perplexity ``exp(H)`` of their frequencies
(k when all are equally used).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from twistlm.sequences import normalized_edit_distance


@dataclass(frozen=True)
class CrossVoice:
    """Cross-voice consistency over the sentences that several voices spoke.

    Attributes:
        n_sentences: sentences spoken by every voice of at least one voice pair (mean over pairs).
        voices: the voices compared.
        same: mean normalised edit distance, same sentence, two voices.
        different: mean normalised edit distance, different sentences, two voices.
        ratio: same / different (lower = more speaker-independent; ~1 = none).
        twin: fraction of sentences whose nearest sequence in the other voice is their twin.
        chance: what ``twin`` is for units that carry no information (1 / sentences).
    """

    n_sentences: float
    voices: list[str]
    same: float
    different: float
    ratio: float
    twin: float
    chance: float

    def to_dict(self) -> dict:
        return asdict(self)


def distance_matrix(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]]) -> np.ndarray:
    """(len(a), len(b)) normalised edit distances between every sequence of a and of b."""
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i, j] = normalized_edit_distance(x, y)
    return out


def twin_credit(dist: np.ndarray) -> float:
    """Mean over rows of 1/m when the diagonal entry is one of the m row minima, else 0."""
    credit = 0.0
    for i, row in enumerate(dist):
        best = row.min()
        if row[i] == best:
            credit += 1.0 / int(np.sum(row == best))
    return credit / len(dist)


def cross_voice_consistency(by_voice: Mapping[str, Mapping[str, Sequence[int]]]) -> CrossVoice:
    """``{voice: {sentence key: units}}`` -> :class:`CrossVoice` over every voice pair.

    Each pair is compared on the sentences both voices spoke (at least 2 needed).
    """
    voices = sorted(by_voice)
    same, diff, twin, chance, sizes = [], [], [], [], []
    for va, vb in itertools.combinations(voices, 2):
        keys = sorted(set(by_voice[va]) & set(by_voice[vb]))
        if len(keys) < 2:
            continue
        d = distance_matrix([by_voice[va][k] for k in keys], [by_voice[vb][k] for k in keys])
        n = len(keys)
        off = ~np.eye(n, dtype=bool)
        same.append(float(np.mean(np.diag(d))))
        diff.append(float(np.mean(d[off])))
        twin += [twin_credit(d), twin_credit(d.T)]
        chance.append(1.0 / n)
        sizes.append(n)
    if not same:
        raise ValueError(
            "cross-voice consistency needs at least two voices that spoke at least two of the "
            f"same sentences; got voices {voices}"
        )
    s, df = float(np.mean(same)), float(np.mean(diff))
    return CrossVoice(
        n_sentences=float(np.mean(sizes)),
        voices=voices,
        same=s,
        different=df,
        ratio=s / df if df > 0 else math.nan,
        twin=float(np.mean(twin)),
        chance=float(np.mean(chance)),
    )


@dataclass(frozen=True)
class CodebookUse:
    """How much of the codebook a set of utterances uses.

    Attributes:
        n_units: k, the codebook size.
        used: distinct units that occur.
        fraction: used / k.
        perplexity: exp of the entropy (nats) of the unit frequencies.
    """

    n_units: int
    used: int
    fraction: float
    perplexity: float

    def to_dict(self) -> dict:
        return asdict(self)


def codebook_use(sequences: Sequence[Sequence[int]], n_units: int) -> CodebookUse:
    """Codebook use of deduplicated (or frame) unit sequences."""
    counts = Counter(int(u) for seq in sequences for u in seq)
    total = sum(counts.values())
    if total == 0:
        return CodebookUse(n_units, 0, 0.0, 0.0)
    p = np.array(list(counts.values()), dtype=np.float64) / total
    entropy = float(-(p * np.log(p)).sum())
    return CodebookUse(n_units, len(counts), len(counts) / n_units, math.exp(entropy))
