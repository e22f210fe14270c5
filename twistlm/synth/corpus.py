"""A multi-speaker synthetic spoken corpus: text source -> training voices -> wavs + manifest.jsonl.

Layout of ``out``::

    wavs/{voice}/{id}.wav      16 kHz mono 16-bit
    manifest.jsonl             one line per utterance: id, path (relative to out), text, voice, seconds
    corpus.json                how it was made (source, seed, voices, held-out voices, hours)
    errors.jsonl               failed utterances, if any (the job goes on)

Held-out voices (benchmarks) are never used here. Rerunning with the same arguments keeps the
existing wavs and only synthesizes what is missing.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from twistlm.io import ErrorLog, atomic_write_text, write_json
from twistlm.synth.parallel import Job, SynthIndex, run_jobs
from twistlm.synth.text import estimate_seconds, load_utterances
from twistlm.synth.tts import (
    DEFAULT_HELDOUT_VOICES,
    DEFAULT_TRAIN_VOICES,
    TTSError,
    resolve_voices,
    voice_slug,
)


@dataclass(frozen=True)
class CorpusSummary:
    out: str
    manifest: str
    n_utterances: int
    hours: float
    voices: list[str]
    heldout_voices: list[str]
    seconds_per_voice: dict[str, float]
    n_failed: int
    elapsed_s: float
    text_source: str
    seed: int


def check_disjoint(
    train: list[str] | tuple[str, ...], heldout: list[str] | tuple[str, ...]
) -> None:
    both = sorted(set(train) & set(heldout))
    if both:
        raise TTSError(f"voice(s) {both} are both training and held-out voices; pick disjoint sets")


def synthesize_corpus(
    out: str | Path,
    hours: float = 1.0,
    voices: list[str] | tuple[str, ...] | None = None,
    seed: int = 0,
    text_source: str = "auto",
    text_path: str | Path | None = None,
    heldout_voices: list[str] | tuple[str, ...] | None = None,
    workers: int = 2,
) -> CorpusSummary:
    """Synthesize about ``hours`` of speech from ``text_source`` with ``voices`` into ``out``.

    Utterances are spread over the voices round-robin in a seeded order; planning uses an
    estimate of words per second and tops up until the measured total reaches the target.
    Returns a :class:`CorpusSummary` (also written to ``out/corpus.json``).
    """
    t0 = time.time()
    if hours <= 0:
        raise ValueError(f"hours must be > 0, got {hours}")
    out = Path(out)
    heldout = list(DEFAULT_HELDOUT_VOICES if heldout_voices is None else heldout_voices)
    wanted = list(DEFAULT_TRAIN_VOICES if voices is None else voices)
    check_disjoint(wanted, heldout)
    train = resolve_voices(wanted, "training voices")
    utts = load_utterances(text_source, text_path, seed)
    source = text_source if text_source != "auto" else ("file" if text_path else "default")
    rng = random.Random(seed)
    order: list[str] = []
    errors = ErrorLog(out / "errors.jsonl")
    index = SynthIndex(out / ".synth_index.json")
    target = hours * 3600.0
    jobs: list[Job] = []
    seconds: dict[str, float] = {}
    i = 0
    while True:
        planned = sum(seconds.values())
        budget = target - planned
        if budget <= 0.01 * target or i >= len(utts):
            break
        new = []
        est = 0.0
        while est < budget and i < len(utts):
            if not order:
                order = list(train)
                rng.shuffle(order)
            voice = order.pop()
            key = f"{i:07d}"
            path = out / "wavs" / voice_slug(voice) / f"{key}.wav"
            new.append(Job(key, voice, utts[i], str(path)))
            est += estimate_seconds(utts[i])
            i += 1
        jobs += new
        got = run_jobs(new, errors, workers, desc=f"corpus {hours:g} h", index=index)
        seconds.update(got)
        if not got:
            raise TTSError(f"every utterance of a round failed: see {errors.path}")
    if i >= len(utts) and sum(seconds.values()) < 0.99 * target:
        print(f"note: text source ran out after {len(utts)} utterances")

    lines, per_voice = [], {}
    for j in jobs:
        if j.key not in seconds:
            continue
        rel = str(Path(j.path).relative_to(out))
        secs = round(seconds[j.key], 3)
        lines.append(
            json.dumps(
                {"id": j.key, "path": rel, "text": j.text, "voice": j.voice, "seconds": secs}
            )
        )
        per_voice[j.voice] = per_voice.get(j.voice, 0.0) + secs
    manifest = out / "manifest.jsonl"
    atomic_write_text(manifest, "\n".join(lines) + "\n")
    summary = CorpusSummary(
        out=str(out),
        manifest=str(manifest),
        n_utterances=len(lines),
        hours=round(sum(per_voice.values()) / 3600, 4),
        voices=train,
        heldout_voices=heldout,
        seconds_per_voice={k: round(v, 1) for k, v in sorted(per_voice.items())},
        n_failed=len(jobs) - len(lines),
        elapsed_s=round(time.time() - t0, 1),
        text_source=source,
        seed=seed,
    )
    write_json(out / "corpus.json", asdict(summary))
    if summary.n_failed:
        print(f"{summary.n_failed} utterance(s) failed: see {errors.path}")
    return summary


def read_manifest(path: str | Path) -> list[dict]:
    """Manifest lines with ``path`` made absolute."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            row["path"] = str(path.parent / row["path"])
            rows.append(row)
    return rows
