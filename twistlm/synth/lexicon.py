"""sWUGGY-style word / non-word pairs: real words and pronounceable non-words one phoneme away.

Non-words are built by substituting one spelling unit of a real word (a vowel group, or a
consonant run) with another unit that occurs in the same position (onset / medial / coda) in
real words of the vocabulary, so they follow English phonotactics and are read aloud as
intended by every letter-to-sound engine. When espeak-ng is installed, each candidate is
transcribed (``espeak-ng -x``) and kept only if its phonemes differ from the word's by one or
two phoneme edits -- i.e. it is a phoneme edit of the word -- and it is not itself a word.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass

from twistlm.sequences import edit_distance  # the package's one edit distance (phone edits)

_RUN = re.compile(r"[aeiou]+|[^aeiou]+")
_STRESS = re.compile(r"[',%=]")

# frequency bands of the ZeroSpeech 2021 lexical task (count in the training text)
BANDS = ((1, 1), (2, 5), (6, 20), (21, 100), (101, 10**12))
MAX_CANDIDATES = 8


@dataclass(frozen=True)
class WordPair:
    word: str
    non_word: str
    frequency: int
    phones: str  # espeak-ng phonemes, space-separated ("" without espeak-ng)
    non_word_phones: str


def _runs(word: str) -> list[str]:
    return _RUN.findall(word)


def _slot(i: int, n: int) -> str:
    return "onset" if i == 0 else "coda" if i == n - 1 else "medial"


def phonotactic_inventory(vocab: Counter) -> dict[tuple[str, bool], Counter]:
    """Spelling runs seen at each (slot, is-vowel) position in the vocabulary, with counts."""
    inv: dict[tuple[str, bool], Counter] = {}
    for w in vocab:
        runs = _runs(w)
        for i, r in enumerate(runs):
            inv.setdefault((_slot(i, len(runs)), r[0] in "aeiou"), Counter())[r] += 1
    return inv


def candidates(word: str, inv: dict, vocab: Counter, min_seen: int | None = None) -> list[str]:
    """Every one-run substitution of ``word`` that is phonotactically attested and not a word.

    A replacement run must occur in at least ``min_seen`` vocabulary words at that position
    (default: 40 for a large vocabulary, fewer for a small one).
    """
    if min_seen is None:
        min_seen = max(1, min(40, len(vocab) // 500))
    runs = _runs(word)
    out = set()
    for i, r in enumerate(runs):
        key = (_slot(i, len(runs)), r[0] in "aeiou")
        for alt, c in inv.get(key, {}).items():
            if alt == r or c < min_seen or abs(len(alt) - len(r)) > 1:
                continue
            cand = "".join(runs[:i] + [alt] + runs[i + 1 :])
            if cand not in vocab and 4 <= len(cand) <= 10:
                out.add(cand)
    return sorted(out)


def espeak_phonemes(words: list[str]) -> list[list[str]] | None:
    """espeak-ng phoneme tokens (stress marks removed) per word, or None without the binary."""
    if not words or not shutil.which("espeak-ng"):
        return None
    proc = subprocess.run(
        ["espeak-ng", "-q", "-x", "--sep=_", "-v", "en-us"],
        input="\n".join(words) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or len(lines) != len(words):
        return None
    return [[t for t in _STRESS.sub("", ln).split("_") if t] for ln in lines]


def select_words(vocab: Counter, n: int, rng: random.Random) -> list[str]:
    """``n`` candidate words of 4-9 letters, spread evenly over the frequency bands."""
    pool = [w for w in sorted(vocab) if 4 <= len(w) <= 9 and re.fullmatch(r"[a-z]+", w)]
    by_band = [[w for w in pool if lo <= vocab[w] <= hi] for lo, hi in BANDS]
    for b in by_band:
        rng.shuffle(b)
    out: list[str] = []
    while len(out) < n and any(by_band):
        for b in by_band:
            if b and len(out) < n:
                out.append(b.pop())
    return out


def make_word_pairs(vocab: Counter, n: int, seed: int = 0) -> list[WordPair]:
    """``n`` (word, non-word) pairs; deterministic given ``vocab`` and ``seed``."""
    rng = random.Random(seed)
    inv = phonotactic_inventory(vocab)
    words = select_words(vocab, 3 * n, rng)  # some words find no good non-word
    cands = {}
    for w in words:  # a few random candidates per word keep the espeak-ng pass short
        cs = candidates(w, inv, vocab)
        cands[w] = sorted(rng.sample(cs, min(MAX_CANDIDATES, len(cs))))
    flat = sorted({w for w in words} | {c for cs in cands.values() for c in cs})
    phon = espeak_phonemes(flat)
    ph = dict(zip(flat, phon, strict=True)) if phon is not None else None
    pairs, used = [], set()
    for w in words:
        ok = [c for c in cands[w] if c not in used]
        if ph is not None:
            ok = [c for c in ok if 1 <= edit_distance(ph[w], ph[c]) <= 2 and ph[c] != ph[w]]
        if not ok:
            continue
        c = rng.choice(ok)
        used.add(c)
        pairs.append(
            WordPair(
                w,
                c,
                int(vocab[w]),
                " ".join(ph[w]) if ph else "",
                " ".join(ph[c]) if ph else "",
            )
        )
        if len(pairs) == n:
            break
    return pairs
