"""Run synthesis jobs in worker processes with a progress bar; existing outputs are kept (resume)."""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

from twistlm.audio import audio_seconds
from twistlm.io import ErrorLog


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


def run_jobs(
    jobs: list[Job], errors: ErrorLog, workers: int = 2, desc: str = "synth"
) -> dict[str, float]:
    """Synthesize every job whose output is missing; returns key -> seconds for the ones that exist.

    Failures are written to ``errors`` (one line each) and left out of the result.
    """
    from tqdm import tqdm

    seconds: dict[str, float] = {}
    todo = []
    for j in jobs:
        p = Path(j.path)
        if p.is_file():
            try:
                seconds[j.key] = audio_seconds(p)
                continue
            except Exception:  # a broken leftover: redo it
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
            else:
                job = by_key[key]
                errors.add(job.path, err, voice=job.voice, text=job.text)
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    return seconds
