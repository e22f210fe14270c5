"""Candidate pairs of the spoken benchmarks, and the cut that balances them on length.

:func:`candidate_sets` builds the sWUGGY / sBLIMP / sSC / tSC candidates (twice the pairs asked
for where the templates allow, so the length balance has spares); :func:`balance_by_length`
keeps the ones that put the rule "the shorter utterance wins" at chance.
:mod:`twistlm.synth.benchmarks` speaks and writes them.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from twistlm.eval.benchmarks import BENCHMARKS as REGISTRY
from twistlm.eval.metrics import aggregation_key
from twistlm.synth.lexicon import make_word_pairs
from twistlm.synth.parallel import Job
from twistlm.synth.templates import make_sentence_pairs, make_stories
from twistlm.synth.text import load_utterances
from twistlm.synth.tts import voice_slug

T = TypeVar("T")


@dataclass
class CandidatePair:
    """A positive / negative pair of utterances still to be spoken (``Job`` = voice, text, wav path)."""

    pair_id: str
    pos: Job
    neg: Job
    pos_text: str
    neg_text: str
    category: str
    meta: dict


def _opaque(rng: random.Random, used: set[str]) -> str:
    while True:
        name = "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(11)
        )
        if name not in used:
            used.add(name)
            return name


def _per_voice(n_pairs: int, voices: list[str]) -> int:
    return -(-n_pairs // len(voices))  # ceil: ids so that ids x voices >= n_pairs


def swuggy_candidates(
    out: Path, n: int, voices: list[str], seed: int, vocab: Counter
) -> list[CandidatePair]:
    d = out / REGISTRY["swuggy"].root_dirs[0]
    rng, used = random.Random(seed + 1), set()
    pairs = []
    for k, wp in enumerate(make_word_pairs(vocab, _per_voice(n, voices), seed), start=1):
        for v in voices:
            fp, fn = _opaque(rng, used), _opaque(rng, used)
            pairs.append(
                CandidatePair(
                    f"{k}:{voice_slug(v)}",
                    Job(fp, v, wp.word, str(d / f"{fp}.wav")),
                    Job(fn, v, wp.non_word, str(d / f"{fn}.wav")),
                    wp.word,
                    wp.non_word,
                    "lexical",
                    {
                        "id": str(k),
                        "voice": voice_slug(v),
                        "frequency": wp.frequency,
                        "word": wp.word,
                        "non_word": wp.non_word,
                        "phones": wp.phones,
                        "non_word_phones": wp.non_word_phones,
                    },
                )
            )
    return pairs[:n]


def sblimp_candidates(out: Path, n: int, voices: list[str], seed: int) -> list[CandidatePair]:
    d = out / REGISTRY["sblimp"].root_dirs[0]
    rng, used = random.Random(seed + 2), set()
    counters: Counter = Counter()
    pairs = []
    for sp in make_sentence_pairs(_per_voice(n, voices), seed):
        counters[(sp.type, sp.subtype)] += 1
        k = counters[(sp.type, sp.subtype)]
        for v in voices:
            fp, fn = _opaque(rng, used), _opaque(rng, used)
            meta = {"id": str(k), "voice": voice_slug(v), "type": sp.type, "subtype": sp.subtype}
            pairs.append(
                CandidatePair(
                    f"{sp.type}:{sp.subtype}:{k}:{voice_slug(v)}",
                    Job(fp, v, sp.good, str(d / f"{fp}.wav")),
                    Job(fn, v, sp.bad, str(d / f"{fn}.wav")),
                    sp.good,
                    sp.bad,
                    f"{sp.type}/{sp.subtype}",
                    meta,
                )
            )
    return pairs[:n]


def storycloze_candidates(
    out: Path, n: int, voices: list[str], seed: int
) -> dict[str, list[CandidatePair]]:
    """sSC and tSC candidates over the same ``n`` stories; pair id = story index ``k``.

    The true-ending audio is shared (as released). After length balance each kind keeps its own
    subset of the stories, so a story may be in one kind only.
    """
    stories = make_stories(n, seed)
    rng = random.Random(seed + 3)
    res: dict[str, list[CandidatePair]] = {"ssc": [], "tsc": []}
    for k, st in enumerate(stories):
        v = voices[k % len(voices)]
        pos_text = f"{st.context} {st.ending}"
        # tSC: ending of a random story from another family
        other = rng.choice([s for s in stories if s.family != st.family])
        category = "contradiction" if k % 2 == 0 else "wrong-person"
        wrong = st.contradiction if category == "contradiction" else st.wrong_person
        for kind, neg_end, cat in (
            ("ssc", wrong, category),
            ("tsc", other.ending, "random-ending"),
        ):
            d = out / REGISTRY[kind].root_dirs[0]
            res[kind].append(
                CandidatePair(
                    str(k),
                    Job(f"{k}_correct", v, pos_text, str(d / f"{k}_correct.wav")),
                    Job(
                        f"{k}_incorrect",
                        v,
                        f"{st.context} {neg_end}",
                        str(d / f"{k}_incorrect.wav"),
                    ),
                    pos_text,
                    f"{st.context} {neg_end}",
                    cat,
                    {
                        "voice": voice_slug(v),
                        "family": st.family,
                        "context": st.context,
                        "ending": st.ending,
                        "wrong_ending": neg_end,
                    },
                )
            )
    return res


def balance_by_length(
    kind: str, pairs: list[CandidatePair], lengths: dict[str, float], n: int
) -> list[CandidatePair]:
    """At most ``n`` pairs, chosen so that the rule "the shorter utterance wins" (by ``lengths``,
    wav path -> audio seconds or unit count; a tie scores 0.5) scores 50% over the benchmark's
    aggregation units, as the length-only control counts it.

    A likelihood favours shorter sequences, so without this a model (or the rule "fewer units
    wins") scores above chance on length alone. Each aggregation unit (all voices of an item)
    scores the mean of the rule over its pairs; units are taken in their generated order (so
    phenomena stay mixed) whenever the running sum of (score - 0.5) stays within +-0.5, and set
    aside otherwise. Ties are neutral. Only when the candidates run out are set-aside units used
    (the balance is then partial). Pairs without a length are dropped.
    """
    groups: dict[str, list[CandidatePair]] = {}
    for p in pairs:
        if p.pos.path in lengths and p.neg.path in lengths:
            groups.setdefault(aggregation_key(kind, p.meta, p.pair_id), []).append(p)

    def rule(p: CandidatePair) -> float:
        a, b = lengths[p.pos.path], lengths[p.neg.path]
        return 1.0 if a < b else 0.5 if a == b else 0.0

    picked: list[CandidatePair] = []
    aside: list[list[CandidatePair]] = []
    imbalance = 0.0
    for members in groups.values():
        if len(picked) >= n:
            break
        excess = sum(rule(p) for p in members) / len(members) - 0.5
        if abs(imbalance + excess) <= 0.5 + 1e-9:
            imbalance += excess
            picked += members[: n - len(picked)]
        else:
            aside.append(members)
    for members in aside:
        if len(picked) >= n:
            break
        picked += members[: n - len(picked)]
    return picked


def _with_spares(kind: str, build: Callable[[int], T], n_pairs: int, oversample: int) -> T:
    """``build(m)`` with ``m = oversample * n_pairs`` candidates, else fewer spares.

    The templates give a limited number of distinct items: when ``build`` raises ``ValueError``
    it is retried with 1.5x, 1.25x, then 1x ``n_pairs`` (and a line says the balance is partial).
    """
    factors = [f for f in (2.0, 1.5, 1.25) if f <= oversample] + [1.0]
    for f in factors:
        try:
            res = build(int(n_pairs * f))
        except ValueError:
            if f == 1.0:
                raise
            continue
        if f < oversample:
            print(f"{kind}: the templates give only {f:g}x candidates: length balance is partial")
        return res
    raise AssertionError("unreachable")  # the 1.0 factor returns or raises


def candidate_sets(
    out: Path,
    n_pairs: int,
    voices: list[str],
    seed: int,
    benchmarks: list[str] | tuple[str, ...],
    oversample: int,
    vocab: Callable[[], Counter],
) -> dict[str, list[CandidatePair]]:
    """Candidate pairs of every requested kind: ``oversample`` x ``n_pairs`` where possible."""
    sets: dict[str, list[CandidatePair]] = {}
    if "swuggy" in benchmarks:
        sets["swuggy"] = swuggy_candidates(out, n_pairs * oversample, voices, seed, vocab())
    if "sblimp" in benchmarks:
        sets["sblimp"] = _with_spares(
            "sblimp", lambda m: sblimp_candidates(out, m, voices, seed), n_pairs, oversample
        )
    if "ssc" in benchmarks or "tsc" in benchmarks:
        kinds = "/".join(k for k in ("ssc", "tsc") if k in benchmarks)
        sc = _with_spares(
            kinds, lambda m: storycloze_candidates(out, m, voices, seed), n_pairs, oversample
        )
        sets.update({k: v for k, v in sc.items() if k in benchmarks})
    return sets


def word_counts(text_source: str, text_path: str | Path | None, seed: int) -> Counter:
    """Word counts of the text source (the sWUGGY words and their frequency column)."""
    utts = load_utterances(text_source, text_path, seed)
    return Counter(w for u in utts for w in re.findall(r"\b[a-z]+\b", u))
