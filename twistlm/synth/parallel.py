"""Run synthesis jobs in worker processes with a progress bar; existing outputs are kept (resume)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

from twistlm.audio import audio_seconds
from twistlm.io import ErrorLog, write_json


@dataclass(frozen=True)
class Job:
    """Speak ``text`` with ``voice`` into ``path`` (absolute)."""

    key: str
    voice: str
    text: str
    path: str


def _work(job: Job) -> tuple[str, float | None, str | None]:
    from twistlm.synth.tts import synthesize_to_file

    try:
        return job.key, synthesize_to_file(job.voice, job.text, job.path), None
    except Exception as e:  # one bad job never stops the batch
        return job.key, None, f"{type(e).__name__}: {e}"


def _init_worker() -> None:
    # audio resampling is tiny; keep each worker on one thread so N workers use N cores
    os.environ["OMP_NUM_THREADS"] = "1"


def job_stamp(job: Job) -> str:
    """What a wav was made from: an existing file is reused only if voice and text match."""
    return hashlib.sha1(f"{job.voice}\n{job.text}".encode()).hexdigest()[:16]


class SynthIndex:
    """``{path: stamp}`` of the wavs this folder's jobs wrote (``.synth_index.json``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.stamps: dict[str, str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.stamps = {}

    def save(self) -> None:
        write_json(self.path, self.stamps)


def run_jobs(
    jobs: list[Job],
    errors: ErrorLog,
    workers: int = 2,
    desc: str = "synth",
    index: SynthIndex | None = None,
) -> dict[str, float]:
    """Synthesize every job whose output is missing; returns key -> seconds for the ones that exist.

    With an ``index``, an existing wav is kept only if it was made from the same voice and text
    (so a rerun with another seed or size never reuses stale audio). Failures are written to
    ``errors`` (one line each) and left out of the result.
    """
    from tqdm import tqdm

    seconds: dict[str, float] = {}
    todo = []
    for j in jobs:
        p = Path(j.path)
        fresh = index is None or index.stamps.get(j.path) == job_stamp(j)
        if p.is_file() and fresh:
            try:
                seconds[j.key] = audio_seconds(p)
                continue
            except Exception:  # a broken leftover: redo it
                pass
        if p.is_file():
            p.unlink()
        todo.append(j)
    if not todo:
        return seconds
    bar = tqdm(total=len(todo), desc=desc, unit="utt")
    if workers <= 1:
        results = map(_work, todo)
        pool = None
    else:
        ctx = mp.get_context("spawn")  # no fork: safe with torch/ctypes state in the parent
        pool = ctx.Pool(workers, initializer=_init_worker)
        results = pool.imap_unordered(_work, todo, chunksize=4)
    by_key = {j.key: j for j in todo}
    try:
        for key, secs, err in results:
            if err is None:
                seconds[key] = secs
                if index is not None:
                    index.stamps[by_key[key].path] = job_stamp(by_key[key])
                    if len(seconds) % 200 == 0:
                        index.save()
            else:
                job = by_key[key]
                errors.add(job.path, err, voice=job.voice, text=job.text)
            bar.update(1)
    finally:
        bar.close()
        if index is not None:
            index.save()
        if pool is not None:
            pool.close()
            pool.join()
    return seconds
