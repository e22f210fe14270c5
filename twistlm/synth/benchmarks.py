"""Spoken benchmark sets in the official layouts, spoken by held-out voices only.

Layout of ``out`` (what ``twistlm.eval.readers.read_benchmark(kind, out)`` reads)::

    lexical/dev/{file}.wav + gold.csv + pairs.jsonl     sWUGGY-style (ZeroSpeech 2021 sLM21)
    syntactic/dev/{file}.wav + gold.csv + pairs.jsonl   sBLIMP-style
    sSC/{id}_correct.wav, {id}_incorrect.wav (+ .txt) + pairs.jsonl
    tSC/{id}_correct.wav, {id}_incorrect.wav (+ .txt) + pairs.jsonl
    benchmarks.json                                     how it was made, pair counts

gold.csv columns follow sLM21: lexical ``filename,voice,frequency,word,phones,id,length,correct``
(frequency = count of the word in the text source; empty for non-words), syntactic
``filename,voice,type,subtype,id,transcription,correct``. File names in lexical/syntactic are
opaque (as in sLM21) so a model cannot read the label from them. ``n_pairs`` counts pairs
(ids x voices for sWUGGY/sBLIMP; one voice per story for sSC/tSC, alternating over voices).
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from twistlm.eval.metrics import aggregation_key
from twistlm.io import ErrorLog, atomic_write_text, write_json
from twistlm.synth.lexicon import make_word_pairs
from twistlm.synth.parallel import Job, SynthIndex, run_jobs
from twistlm.synth.templates import make_sentence_pairs, make_stories
from twistlm.synth.text import load_utterances
from twistlm.synth.tts import DEFAULT_HELDOUT_VOICES, resolve_voices, voice_slug

ALL = ("swuggy", "sblimp", "ssc", "tsc")
DIRS = {"swuggy": "lexical/dev", "sblimp": "syntactic/dev", "ssc": "sSC", "tsc": "tSC"}


@dataclass(frozen=True)
class BenchmarkSummary:
    out: str
    n_pairs: dict[str, int]
    voices: list[str]
    n_failed: int
    elapsed_s: float
    seed: int


@dataclass
class _Pair:
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


def _swuggy(out: Path, n: int, voices: list[str], seed: int, vocab: Counter) -> list[_Pair]:
    d = out / DIRS["swuggy"]
    rng, used = random.Random(seed + 1), set()
    pairs = []
    for k, wp in enumerate(make_word_pairs(vocab, _per_voice(n, voices), seed), start=1):
        for v in voices:
            fp, fn = _opaque(rng, used), _opaque(rng, used)
            pairs.append(
                _Pair(
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


def _sblimp(out: Path, n: int, voices: list[str], seed: int) -> list[_Pair]:
    d = out / DIRS["sblimp"]
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
                _Pair(
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


def _storycloze(out: Path, n: int, voices: list[str], seed: int) -> dict[str, list[_Pair]]:
    """sSC and tSC over the same stories (as released); the true-ending audio is shared."""
    stories = make_stories(n, seed)
    rng = random.Random(seed + 3)
    res: dict[str, list[_Pair]] = {"ssc": [], "tsc": []}
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
            d = out / DIRS[kind]
            res[kind].append(
                _Pair(
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
    kind: str, pairs: list[_Pair], seconds: dict[str, float], n: int
) -> list[_Pair]:
    """At most ``n`` pairs, chosen so that the positive is the shorter utterance (by audio
    duration, averaged over the unit's voices) in as many aggregation units as it is the longer.

    A likelihood favours shorter sequences, so without this a model (or the rule "fewer units
    wins") scores above chance on length alone. Units are taken alternately from the "positive
    shorter" and "positive longer" lists, in their generated order (so phenomena stay mixed);
    when one list runs out the rest come from the other. Pairs missing audio are dropped.
    """
    groups: dict[str, list[_Pair]] = {}
    for p in pairs:
        if p.pos.path in seconds and p.neg.path in seconds:
            groups.setdefault(aggregation_key(kind, p.meta, p.pair_id), []).append(p)
    shorter, longer = [], []
    for members in groups.values():
        d = sum(seconds[p.pos.path] - seconds[p.neg.path] for p in members) / len(members)
        (shorter if d < 0 else longer).append(members)
    picked: list[_Pair] = []
    si = li = 0
    while len(picked) < n and (si < len(shorter) or li < len(longer)):
        take_shorter = si < len(shorter) and (li >= len(longer) or si <= li)
        group = shorter[si] if take_shorter else longer[li]
        si, li = (si + 1, li) if take_shorter else (si, li + 1)
        picked += group[: n - len(picked)]
    return picked


def _write_pairs_jsonl(d: Path, kind: str, pairs: list[_Pair]) -> None:
    lines = []
    for p in pairs:
        lines.append(
            json.dumps(
                {
                    "pair_id": p.pair_id,
                    "benchmark": kind,
                    "positive": str(Path(p.pos.path).relative_to(d)),
                    "negative": str(Path(p.neg.path).relative_to(d)),
                    "positive_text": p.pos_text,
                    "negative_text": p.neg_text,
                    "category": p.category,
                    "meta": p.meta,
                }
            )
        )
    atomic_write_text(d / "pairs.jsonl", "\n".join(lines) + "\n")


def _write_gold(d: Path, kind: str, pairs: list[_Pair]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if kind == "swuggy":
        w.writerow(["filename", "voice", "frequency", "word", "phones", "id", "length", "correct"])
        for p in pairs:
            m = p.meta
            w.writerow([p.pos.key, m["voice"], m["frequency"], m["word"], m["phones"], m["id"],
                        len(m["phones"].split()) or len(m["word"]), 1])  # fmt: skip
            w.writerow([p.neg.key, m["voice"], "", m["non_word"], m["non_word_phones"], m["id"],
                        len(m["non_word_phones"].split()) or len(m["non_word"]), 0])  # fmt: skip
    else:
        w.writerow(["filename", "voice", "type", "subtype", "id", "transcription", "correct"])
        for p in pairs:
            m = p.meta
            w.writerow([p.pos.key, m["voice"], m["type"], m["subtype"], m["id"], p.pos_text, 1])
            w.writerow([p.neg.key, m["voice"], m["type"], m["subtype"], m["id"], p.neg_text, 0])
    atomic_write_text(d / "gold.csv", buf.getvalue())


def synthesize_benchmarks(
    out: str | Path,
    n_pairs: int = 500,
    voices: list[str] | tuple[str, ...] | None = None,
    seed: int = 0,
    benchmarks: list[str] | tuple[str, ...] = ALL,
    text_source: str = "auto",
    text_path: str | Path | None = None,
    workers: int = 2,
    balance_length: bool = True,
) -> BenchmarkSummary:
    """Write sWUGGY/sBLIMP/sSC/tSC-style sets (``n_pairs`` each) spoken by held-out ``voices``.

    The sWUGGY vocabulary (and its frequency column) comes from the same text source as the
    corpus. Pairs whose audio failed are left out of every index (see ``out/errors.jsonl``).
    Rerunning keeps existing wavs. ``balance_length``: sWUGGY and sBLIMP are synthesized with
    twice the candidates and cut to ``n_pairs`` by :func:`balance_by_length`, so that "the
    shorter utterance wins" sits near chance.
    """
    t0 = time.time()
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    bad = [b for b in benchmarks if b not in ALL]
    if bad:
        raise ValueError(f"unknown benchmark(s) {bad}; choose from {ALL}")
    out = Path(out)
    voices = resolve_voices(
        list(DEFAULT_HELDOUT_VOICES if voices is None else voices), "held-out voices"
    )
    sets: dict[str, list[_Pair]] = {}
    oversample = 2 if balance_length else 1
    if "swuggy" in benchmarks:
        utts = load_utterances(text_source, text_path, seed)
        vocab = Counter(w for u in utts for w in re.findall(r"\b[a-z]+\b", u))
        sets["swuggy"] = _swuggy(out, n_pairs * oversample, voices, seed, vocab)
    if "sblimp" in benchmarks:
        # the templates give ~800 distinct sentence pairs: past that, fewer spare candidates
        factors = [f for f in (2.0, 1.5, 1.25) if f <= oversample] + [1.0]
        for f in factors:
            try:
                sets["sblimp"] = _sblimp(out, int(n_pairs * f), voices, seed)
                break
            except ValueError:
                if f == 1.0:
                    raise
        if f < oversample:
            print(f"sblimp: the templates give only {f:g}x candidates: length balance is partial")
    if "ssc" in benchmarks or "tsc" in benchmarks:
        sc = _storycloze(out, n_pairs, voices, seed)
        sets.update({k: v for k, v in sc.items() if k in benchmarks})

    # synthesize: the sSC and tSC true endings are the same audio -> synthesize once, copy
    jobs: dict[str, Job] = {}
    for kind, pairs in sets.items():
        for p in pairs:
            for j in (p.pos, p.neg):
                if kind == "tsc" and "ssc" in sets and j.key.endswith("_correct"):
                    continue
                jobs[j.path] = j
    errors = ErrorLog(out / "errors.jsonl")
    index = SynthIndex(out / ".synth_index.json")
    keyed = [Job(path, j.voice, j.text, path) for path, j in jobs.items()]  # key by path: unique
    done = run_jobs(keyed, errors, workers, desc="benchmarks", index=index)
    for kind in ("swuggy", "sblimp"):
        if kind in sets:
            failed_candidates = [
                p for p in sets[kind] if p.pos.path not in done or p.neg.path not in done
            ]
            if failed_candidates:
                print(f"{kind}: {len(failed_candidates)} candidate pair(s) failed to synthesize")
            sets[kind] = (
                balance_by_length(kind, sets[kind], done, n_pairs)
                if balance_length
                else sets[kind][:n_pairs]
            )
    # wavs an earlier run of these benchmarks wrote that the current sets do not use (another
    # size or seed) would be read by the folder layouts: remove them (only files we made)
    current = {p.pos.path for ps in sets.values() for p in ps} | {
        p.neg.path for ps in sets.values() for p in ps
    }
    dirs = {str(out / DIRS[k]) for k in sets}
    for path in [x for x in index.stamps if x not in current and str(Path(x).parent) in dirs]:
        for f in (Path(path), Path(path).with_suffix(".txt")):
            f.unlink(missing_ok=True)
        del index.stamps[path]
    index.save()
    if "tsc" in sets and "ssc" in sets:
        for p in sets["tsc"]:
            src = str(Path(p.pos.path).parent.parent / DIRS["ssc"] / Path(p.pos.path).name)
            if src in done:
                Path(p.pos.path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, p.pos.path)
                done[p.pos.path] = done[src]
                index.stamps[p.pos.path] = index.stamps[src]
        index.save()

    counts, failed = {}, 0
    for kind, pairs in sets.items():
        ok = [p for p in pairs if p.pos.path in done and p.neg.path in done]
        failed += len(pairs) - len(ok)
        d = out / DIRS[kind]
        d.mkdir(parents=True, exist_ok=True)
        if kind in ("swuggy", "sblimp"):
            _write_gold(d, kind, ok)
        else:
            for p in ok:  # transcripts beside the wavs, as the storycloze-folder reader reads them
                for j, text in ((p.pos, p.pos_text), (p.neg, p.neg_text)):
                    atomic_write_text(Path(j.path).with_suffix(".txt"), text + "\n")
        _write_pairs_jsonl(d, kind, ok)
        counts[kind] = len(ok)
    summary = BenchmarkSummary(str(out), counts, voices, failed, round(time.time() - t0, 1), seed)
    write_json(out / "benchmarks.json", asdict(summary))
    if failed:
        print(f"{failed} pair(s) failed and were left out: see {errors.path}")
    return summary
