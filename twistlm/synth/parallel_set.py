"""The same sentences spoken by several voices: the data a cross-voice tokenizer check needs.

Layout of ``out``::

    wavs/{voice}/{id}.wav      16 kHz mono
    manifest.jsonl             id, path (relative to out), text, voice, seconds
    errors.jsonl               failed utterances, if any (the job goes on)

Sentence ``id`` is shared by every voice that spoke it. Reruns keep the wavs that exist.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

from twistlm.io import ErrorLog, atomic_write_text
from twistlm.synth.parallel import Job, SynthIndex, run_jobs
from twistlm.synth.text import load_utterances
from twistlm.synth.tts import DEFAULT_HELDOUT_VOICES, resolve_voices, voice_slug


def pick_sentences(
    n: int,
    seed: int = 0,
    text_source: str = "auto",
    text_path=None,
    max_words: int = 20,
    exclude: Collection[str] = (),
) -> list[str]:
    """``n`` distinct sentences of 3 to ``max_words`` words from the text source, seeded.

    Taken from the *end* of the seeded order (a corpus made with the same seed takes from the
    start), and never one of ``exclude`` (compared case-insensitively), so held-out speech can be
    made disjoint in text from a training corpus.
    """
    pool = load_utterances(text_source, text_path, seed)
    banned = {t.strip().lower() for t in exclude}
    picked = [
        u for u in reversed(pool) if len(u.split()) <= max_words and u.strip().lower() not in banned
    ][:n]
    if len(picked) < 2:
        raise ValueError(f"text source gave {len(picked)} usable sentences; need at least 2")
    return picked


def synthesize_parallel_set(
    out: str | Path,
    voices: list[str] | tuple[str, ...] | None = None,
    n_sentences: int = 50,
    seed: int = 0,
    text_source: str = "auto",
    text_path: str | Path | None = None,
    workers: int = 2,
    exclude: Collection[str] = (),
) -> Path:
    """Speak ``n_sentences`` sentences with every voice (default: the held-out voices).

    Returns the manifest path. Only what both the text and the voice produced is listed.
    ``exclude``: texts that must not be spoken (e.g. a training corpus's).
    """
    out = Path(out)
    names = resolve_voices(list(voices or DEFAULT_HELDOUT_VOICES), "voices")
    if len(names) < 2:
        raise ValueError(f"a parallel set needs at least two voices, got {names}")
    sentences = pick_sentences(n_sentences, seed, text_source, text_path, exclude=exclude)
    jobs = [
        Job(f"{voice_slug(v)}/{i:04d}", v, text, str(out / "wavs" / voice_slug(v) / f"{i:04d}.wav"))
        for v in names
        for i, text in enumerate(sentences)
    ]
    errors = ErrorLog(out / "errors.jsonl")
    index = SynthIndex(out / ".synth_index.json")
    seconds = run_jobs(jobs, errors, workers, desc="parallel set", index=index)
    lines = [
        json.dumps(
            {
                "id": j.key.split("/")[1],
                "path": str(Path(j.path).relative_to(out)),
                "text": j.text,
                "voice": j.voice,
                "seconds": round(seconds[j.key], 3),
            }
        )
        for j in jobs
        if j.key in seconds
    ]
    manifest = out / "manifest.jsonl"
    atomic_write_text(manifest, "\n".join(lines) + "\n")
    return manifest
