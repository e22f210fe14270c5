"""Spoken benchmark sets in the official layouts, spoken by held-out voices only.

Layout of ``out`` (what ``twistlm.eval.readers.read_benchmark(kind, out)`` reads)::

    lexical/dev/{file}.wav + gold.csv + pairs.jsonl     sWUGGY-style (ZeroSpeech 2021 sLM21)
    syntactic/dev/{file}.wav + gold.csv + pairs.jsonl   sBLIMP-style
    sSC/{id}_correct.wav, {id}_incorrect.wav (+ .txt) + pairs.jsonl
    tSC/{id}_correct.wav, {id}_incorrect.wav (+ .txt) + pairs.jsonl
    benchmarks.json                                     how it was made, pair counts, balanced_by

gold.csv columns follow sLM21: lexical ``filename,voice,frequency,word,phones,id,length,correct``
(frequency = count of the word in the text source; empty for non-words), syntactic
``filename,voice,type,subtype,id,transcription,correct``. File names in lexical/syntactic are
opaque (as in sLM21) so a model cannot read the label from them. ``n_pairs`` counts pairs
(ids x voices for sWUGGY/sBLIMP; one voice per story for sSC/tSC, alternating over voices).
sSC/tSC pair ids are story indices; with length balance the two kinds keep different subsets of
the candidate stories, and a story in both shares its true-ending audio.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from twistlm.eval.benchmarks import BENCHMARKS as REGISTRY
from twistlm.eval.benchmarks import KINDS as ALL
from twistlm.io import ErrorLog, atomic_write_text, write_json
from twistlm.synth.candidates import (
    CandidatePair,
    balance_by_length,
    candidate_sets,
    word_counts,
)
from twistlm.synth.parallel import Job, SynthIndex, run_jobs
from twistlm.synth.tts import DEFAULT_HELDOUT_VOICES, resolve_voices

__all__ = [
    "ALL",
    "DIRS",
    "BenchmarkSummary",
    "CandidatePair",
    "balance_by_length",
    "synthesize_benchmarks",
]

# the folder each kind is written to (the first a reader tries in a root)
DIRS = {k: b.root_dirs[0] for k, b in REGISTRY.items()}


@dataclass(frozen=True)
class BenchmarkSummary:
    out: str
    n_pairs: dict[str, int]
    voices: list[str]
    n_failed: int
    elapsed_s: float
    seed: int
    balanced_by: str | None = None  # "seconds", the name of the given lengths, or None


def _record(path: Path, summary: BenchmarkSummary) -> None:
    """Write benchmarks.json; sets made by an earlier call into the same folder (other kinds,
    e.g. sWUGGY/sBLIMP at one size and sSC/tSC at another) stay listed under ``sets``."""
    sets: dict = {}
    if path.exists():
        try:
            sets = json.loads(path.read_text()).get("sets") or {}
        except (OSError, ValueError):
            sets = {}
    this = asdict(summary)
    for kind, n in summary.n_pairs.items():
        sets[kind] = {"n_pairs": n, "seed": summary.seed, "balanced_by": summary.balanced_by,
                      "voices": summary.voices}  # fmt: skip
    write_json(path, this | {"sets": dict(sorted(sets.items()))})


def _write_pairs_jsonl(d: Path, kind: str, pairs: list[CandidatePair]) -> None:
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


def _write_gold(d: Path, kind: str, pairs: list[CandidatePair]) -> None:
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


def _report_failed_candidates(
    sets: dict[str, list[CandidatePair]], done: dict[str, float], sources: dict[str, str]
) -> None:
    """Print how many candidate wavs per kind lack audio (a copied tSC positive: its source)."""
    for kind, pairs in sets.items():
        n_bad = sum(sources.get(j.path, j.path) not in done for p in pairs for j in (p.pos, p.neg))
        if n_bad:
            print(f"{kind}: {n_bad} candidate wav(s) failed to synthesize")


def _tsc_sources(out: Path, sets: dict[str, list[CandidatePair]]) -> dict[str, str]:
    """tSC positive path -> the sSC wav it is copied from (empty unless both kinds are made).

    The true ending of a story is the same audio in sSC and tSC (as released): it is spoken once
    into ``sSC/{k}_correct.wav`` and copied to ``tSC/{k}_correct.wav``.
    """
    if "tsc" not in sets or "ssc" not in sets:
        return {}
    return {p.pos.path: str(out / DIRS["ssc"] / Path(p.pos.path).name) for p in sets["tsc"]}


def _measure(
    sets: dict[str, list[CandidatePair]],
    done: dict[str, float],
    sources: dict[str, str],
    lengths: Callable[[list[str]], dict[str, float]] | None,
) -> dict[str, float]:
    """Length of every candidate wav: ``lengths(paths)`` of the synthesized ones, or their audio
    seconds (``lengths=None``); a copied tSC positive gets the length of its sSC source."""
    paths = [
        j.path
        for ps in sets.values()
        for p in ps
        for j in (p.pos, p.neg)
        if j.path not in sources and j.path in done
    ]
    paths = list(dict.fromkeys(paths))
    measured = done if lengths is None else lengths(paths)
    lens = {x: float(measured[x]) for x in paths if x in measured}
    lens.update({dst: lens[src] for dst, src in sources.items() if src in lens})
    return lens


def _copy_tsc_positives(
    sets: dict[str, list[CandidatePair]],
    sources: dict[str, str],
    done: dict[str, float],
    index: SynthIndex,
) -> None:
    """Copy the kept tSC true endings from their sSC source (before any cleanup)."""
    for p in sets.get("tsc", []) if sources else []:
        src = sources[p.pos.path]
        if src in done:
            Path(p.pos.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, p.pos.path)
            done[p.pos.path] = done[src]
            index.stamps[p.pos.path] = index.stamps[src]
    index.save()


def _remove_stale(out: Path, sets: dict[str, list[CandidatePair]], index: SynthIndex) -> None:
    """Delete the wavs (and transcripts) of these benchmark folders that we made earlier (another
    size or seed, or candidates not kept) and the current sets do not use: the folder layouts
    would read them."""
    current = {j.path for ps in sets.values() for p in ps for j in (p.pos, p.neg)}
    dirs = {str(out / DIRS[k]) for k in sets}
    for path in [x for x in index.stamps if x not in current and str(Path(x).parent) in dirs]:
        for f in (Path(path), Path(path).with_suffix(".txt")):
            f.unlink(missing_ok=True)
        del index.stamps[path]
    index.save()


def _write_sets(
    out: Path, sets: dict[str, list[CandidatePair]], done: dict[str, float]
) -> dict[str, int]:
    """Write each kind's index (gold.csv / transcripts + pairs.jsonl); pairs with missing audio
    are left out. Returns the pair count per kind."""
    counts = {}
    for kind, pairs in sets.items():
        ok = [p for p in pairs if p.pos.path in done and p.neg.path in done]
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
    return counts


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
    lengths: Callable[[list[str]], dict[str, float]] | None = None,
    lengths_name: str = "units",
) -> BenchmarkSummary:
    """Write sWUGGY/sBLIMP/sSC/tSC-style sets (``n_pairs`` each) spoken by held-out ``voices``.

    The sWUGGY vocabulary (and its frequency column) comes from the same text source as the
    corpus. Pairs whose audio failed are left out of every index (see ``out/errors.jsonl``).
    Rerunning keeps existing wavs. ``n_failed`` counts the pairs a set is short of ``n_pairs``
    because audio failed (spare candidates make up for failures where they can).

    ``balance_length``: every kind is synthesized with twice the candidates (sSC/tSC: twice the
    stories) and cut to ``n_pairs`` by :func:`balance_by_length`, so that "the shorter utterance
    wins" sits near chance. Lengths are audio seconds, or ``lengths(paths)`` (wav path -> length,
    e.g. unit counts of a tokenizer) when given; ``benchmarks.json`` records ``balanced_by``
    (``"seconds"``, ``lengths_name``, or null without balance).
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

    sets = candidate_sets(
        out,
        n_pairs,
        voices,
        seed,
        benchmarks,
        2 if balance_length else 1,
        lambda: word_counts(text_source, text_path, seed),
    )
    sources = _tsc_sources(out, sets)
    # synthesize (a tSC true ending that is copied from sSC is not spoken twice)
    jobs = {j.path: j for ps in sets.values() for p in ps for j in (p.pos, p.neg)}
    errors = ErrorLog(out / "errors.jsonl")
    index = SynthIndex(out / ".synth_index.json")
    keyed = [Job(path, j.voice, j.text, path) for path, j in jobs.items() if path not in sources]
    done = run_jobs(keyed, errors, workers, desc="benchmarks", index=index)
    _report_failed_candidates(sets, done, sources)
    wanted = {k: min(n_pairs, len(ps)) for k, ps in sets.items()}
    if balance_length:
        lens = _measure(sets, done, sources, lengths)
        sets = {k: balance_by_length(k, ps, lens, n_pairs) for k, ps in sets.items()}
        for k in {"ssc", "tsc"} & sets.keys():  # in story order, as the folder layout lists them
            sets[k].sort(key=lambda p: int(p.pair_id))
    else:
        sets = {k: ps[:n_pairs] for k, ps in sets.items()}
    _copy_tsc_positives(sets, sources, done, index)  # copy first: the cleanup may drop sources
    _remove_stale(out, sets, index)

    counts = _write_sets(out, sets, done)
    failed = sum(max(0, wanted[k] - counts[k]) for k in sets)  # pairs short of n_pairs
    balanced_by = None if not balance_length else ("seconds" if lengths is None else lengths_name)
    summary = BenchmarkSummary(
        str(out), counts, voices, failed, round(time.time() - t0, 1), seed, balanced_by
    )
    _record(out / "benchmarks.json", summary)
    if failed:
        print(f"{failed} pair(s) failed and were left out: see {errors.path}")
    return summary
