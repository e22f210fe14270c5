"""The quickstart's speech and unit stages: the tokenizer (fitted or packaged), the corpus's
unit shards, the benchmark sets balanced on unit counts, the held-out speech and the tokenizer's
cross-voice report."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from twistlm.quickstart.config import QuickstartConfig


def make_benchmarks(cfg: QuickstartConfig, out: Path, tok_dir: Path) -> dict[str, Any]:
    """sWUGGY/sBLIMP/sSC/tSC-style sets by held-out voices, balanced on the units of ``tok_dir``."""
    from twistlm.synth.benchmarks import DIRS, synthesize_benchmarks

    root = out / "benchmarks"
    lengths = _unit_counter(tok_dir, out / "cache" / "units")
    counts: dict[str, int] = {}
    for kinds, n in ((("swuggy", "sblimp"), cfg.n_pairs), (("ssc", "tsc"), cfg.n_story_pairs)):
        s = synthesize_benchmarks(
            root,
            n_pairs=n,
            seed=cfg.seed,
            benchmarks=kinds,
            workers=cfg.workers,
            lengths=lengths,
        )
        counts.update(s.n_pairs)
    return {"paths": {k: str(root / DIRS[k]) for k in counts}, "n_pairs": counts}


def _unit_counter(tok_dir: Path, cache_dir: Path):
    """paths -> number of (deduplicated) units, tokenized into the cache `twistlm eval` reads.

    The length-only control counts units, so the benchmarks are balanced on unit counts.
    """

    def lengths(paths: list[str]) -> dict[str, float]:
        from twistlm.eval.cache import (
            UnitCache,
            tokenize_refs,
            tokenizer_fingerprint,
            utterance_key,
        )
        from twistlm.eval.readers import AudioRef
        from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

        tok = UnitTokenizer.from_pretrained(tok_dir)
        info = tok.info()
        cache = UnitCache(cache_dir, tokenizer_fingerprint(info, tok_dir, tok.centroids), info)
        # the key is the file stem, as the benchmark readers name each utterance
        refs = {p: AudioRef(Path(p).stem, p) for p in paths}
        units, _ = tokenize_refs(list(refs.values()), tok, cache)
        keys = {p: utterance_key(r.key, r.path, None) for p, r in refs.items()}
        return {p: float(len(units[k])) for p, k in keys.items() if k in units}

    return lengths


def heldout_speech(cfg: QuickstartConfig, out: Path) -> dict[str, Any]:
    """Sentences outside the training text, spoken by every held-out voice."""
    from twistlm.synth.corpus import read_manifest
    from twistlm.synth.parallel_set import synthesize_parallel_set

    training_text = {r["text"] for r in read_manifest(out / "corpus" / "manifest.jsonl")}
    manifest = synthesize_parallel_set(
        out / "heldout",
        n_sentences=cfg.n_heldout_sentences,
        seed=cfg.seed,
        workers=cfg.workers,
        exclude=training_text,
    )
    rows = read_manifest(manifest)
    return {
        "manifest": str(manifest),
        "n_utterances": len(rows),
        "voices": sorted({r["voice"] for r in rows}),
        "seconds": round(sum(r["seconds"] for r in rows), 1),
    }


def tokenizer_report(out: Path, tok_dir: Path) -> dict[str, Any]:
    """Validation shards of the held-out speech, and the cross-voice report of the tokenizer."""
    from twistlm.io import ErrorLog
    from twistlm.synth.corpus import read_manifest
    from twistlm.tokenizer.corpus import tokenize_corpus
    from twistlm.tokenizer.report import measure_tokenizer, write_report
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

    manifest = out / "heldout" / "manifest.jsonl"
    tokenize_corpus(str(tok_dir), manifest, out / "units-heldout")
    tok = UnitTokenizer.from_pretrained(tok_dir)
    errors = ErrorLog(out / "tokenizer-report" / "errors.jsonl")
    res = measure_tokenizer(tok, read_manifest(manifest), errors)
    write_report(out / "tokenizer-report", {tok.name or "tokenizer": res}, manifest)
    return res


KMEANS_FIT_HOURS = 1.0  # k-means sees at most this much of the corpus (seeded, all voices)


def _fit_sample(rows: list[dict], hours: float, seed: int) -> list[str]:
    """Paths of a seeded sample of the corpus of at most ``hours`` (all of it when shorter)."""
    import random

    rows = list(rows)
    random.Random(seed).shuffle(rows)
    picked, total = [], 0.0
    for r in rows:
        if picked and total + float(r.get("seconds", 0.0)) > hours * 3600:
            break
        picked.append(r["path"])
        total += float(r.get("seconds", 0.0))
    return picked


def fit_tokenizer(cfg: QuickstartConfig, corpus: Path, tok_dir: Path) -> dict[str, Any]:
    from twistlm.quickstart.config import QUICKSTART_FEATURES
    from twistlm.synth.corpus import read_manifest
    from twistlm.tokenizer.unit_tokenizer import build_offline_tokenizer

    wavs = _fit_sample(read_manifest(corpus / "manifest.jsonl"), KMEANS_FIT_HOURS, cfg.seed)
    features, kw = QUICKSTART_FEATURES[cfg.features]
    tok = build_offline_tokenizer(
        wavs,
        n_units=cfg.n_units,
        features=features,
        frame_rate=cfg.frame_rate,
        seed=cfg.seed,
        **kw,
    )
    tok.save_pretrained(tok_dir)
    return tok.info()


def tokenize_units(tok_dir: Path, audio: Path, units: Path) -> dict[str, Any]:
    from twistlm.tokenizer.corpus import tokenize_corpus

    s = tokenize_corpus(str(tok_dir), audio, units)
    d = dataclasses.asdict(s) if dataclasses.is_dataclass(s) else dict(s)
    d["units_per_second"] = (
        d["units"] / max(d["seconds"], 1e-9) if "units" in d and "seconds" in d else None
    )
    return d


def copy_packaged_tokenizer(tok_dir: Path) -> dict[str, Any]:
    from twistlm.packaged import packaged_tokenizer_dir
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

    if tok_dir.exists():
        shutil.rmtree(tok_dir)
    shutil.copytree(packaged_tokenizer_dir(), tok_dir)
    return UnitTokenizer.from_pretrained(tok_dir).info() | {"packaged": True}
