"""Corpus tokenization: audio files -> Parquet unit shards (``twistlm.data.shards`` format).

Plan (deterministic, identical on every rank): list the files (a folder, or a manifest), read
each header for its duration, sort by (seconds, id) so a shard holds files of similar length, cut
the list into shards of ``files_per_shard`` files, and give shard i to rank ``i % world_size``.
A shard is written as ``shard-RRRRR-IIIII.parquet`` (writer rank, global shard index) atomically,
so a rerun skips every index already on disk whatever the rank count, and a killed run loses at
most the shards in flight. Bad files go to ``errors.jsonl`` (path and reason) and the run goes on.
Each rank writes ``summary-rank{r}.json`` at the end. Rank 0 writes the folder's metadata
(:func:`twistlm.data.shards.write_shard_metadata`): ``tokenizer.json`` (the tokenizer's
``info()``) and ``tokenizer-identity.json`` (:func:`tokenizer_identity`), which the trainer
copies into the model so a trained model names its tokenizer.

File names need not be UTF-8: files are read through file objects, and an id (shards,
errors.jsonl) shows a name's non-UTF-8 bytes as ``\\xNN`` escapes
(:func:`twistlm.audio.display_path`).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twistlm.data.shards import (
    TOKENIZER_INFO,
    read_shard_metadata,
    write_shard,
    write_shard_metadata,
)
from twistlm.io import ErrorLog, write_json

ERRORS = "errors.jsonl"


@dataclass
class TokenizeSummary:
    """What one rank did (totals include shards found already done on disk)."""

    rank: int
    world_size: int
    files: int = 0  # files tokenized
    failures: int = 0  # files that went to errors.jsonl
    seconds: float = 0.0  # audio seconds tokenized
    units: int = 0
    shards_written: int = 0
    shards_skipped: int = 0
    new_seconds: float = 0.0  # audio seconds tokenized by this run (for throughput)
    wall_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    errors: list[dict] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    @property
    def throughput(self) -> float:
        """Audio seconds per wall second (this run's work only)."""
        return self.new_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"rank {self.rank}/{self.world_size}: {self.files} files, {self.hours:.3f} h, "
            f"{self.units} units, {self.failures} failures, shards {self.shards_written} written "
            f"/ {self.shards_skipped} already done, {self.throughput:.1f} audio s per s, "
            f"peak RSS {self.peak_rss_mb:.0f} MB"
        )


@dataclass(frozen=True)
class AudioItem:
    id: str  # path relative to the corpus root (posix; non-UTF-8 bytes as \xNN escapes)
    path: Path
    seconds: float  # from the header; 0 when the header is unreadable (fails later, logged)


def list_corpus(audio: str | Path) -> list[AudioItem]:
    """Items of a folder (recursive) or a manifest, sorted by (seconds, id).

    Manifests: fairseq style (first line = root dir, then ``relpath<TAB>n_samples``), one path
    per line (relative to the manifest's folder, or absolute), or JSON lines with a ``path`` key
    (``*.jsonl``, as ``twistlm synth`` writes).
    """
    import soundfile as sf

    from twistlm.audio import display_path, list_audio

    audio = Path(audio)
    if audio.is_dir():
        pairs = [(p.relative_to(audio).as_posix(), p) for p in list_audio(audio)]
    elif audio.is_file() and audio.suffix == ".jsonl":
        import json

        pairs = []
        # surrogateescape: a manifest may name files whose names are not UTF-8
        for i, ln in enumerate(audio.read_text(errors="surrogateescape").splitlines(), 1):
            if not ln.strip():
                continue
            try:
                rel = json.loads(ln)["path"]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{audio}:{i}: not a JSON object with a 'path' ({e})") from e
            p = Path(rel) if Path(rel).is_absolute() else audio.parent / rel
            pairs.append((rel, p))
    elif audio.is_file():
        text = audio.read_text(errors="surrogateescape")
        lines = [ln.rstrip("\n") for ln in text.splitlines() if ln.strip()]
        root = audio.parent
        if lines and Path(lines[0]).is_dir() and all("\t" in ln for ln in lines[1:]):
            root, lines = Path(lines[0]), lines[1:]
        pairs = []
        for ln in lines:
            rel = ln.split("\t")[0]
            p = Path(rel) if Path(rel).is_absolute() else root / rel
            pairs.append((rel, p))
    else:
        raise FileNotFoundError(f"{audio}: no such folder or manifest")
    items = []
    for rel, p in pairs:
        try:
            with open(p, "rb") as fh:  # any name the OS accepts
                info = sf.info(fh)
            secs = info.frames / info.samplerate
        except Exception:
            secs = 0.0
        items.append(AudioItem(display_path(rel), p, secs))
    items.sort(key=lambda it: (it.seconds, it.id))
    return items


def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """--rank/--world-size, else torchrun's RANK/WORLD_SIZE, else (0, 1)."""
    r = rank if rank is not None else int(os.environ.get("RANK", 0))
    w = world_size if world_size is not None else int(os.environ.get("WORLD_SIZE", 1))
    if w < 1 or not 0 <= r < w:
        raise ValueError(f"rank {r} is not in [0, world_size={w})")
    return r, w


def tokenizer_identity(tokenizer, directory: str | Path | None = None) -> dict[str, Any]:
    """``{"name", "fingerprint", "path"}`` of a :class:`UnitTokenizer`.

    ``fingerprint`` is :func:`twistlm.eval.cache.tokenizer_fingerprint` of its info, dir and
    centroids, the key ``twistlm eval`` caches units under for that tokenizer. ``path`` is the
    absolute tokenizer dir, or None when the tokenizer came as an object without its dir.
    """
    from twistlm.eval.cache import tokenizer_fingerprint

    path = Path(directory).resolve() if directory is not None else None
    info = tokenizer.info()
    return {
        "name": info.get("name"),
        "fingerprint": tokenizer_fingerprint(info, path, getattr(tokenizer, "centroids", None)),
        "path": str(path) if path is not None else None,
    }


def _done_indices(out: Path) -> set[int]:
    done = set()
    for f in out.glob("shard-*-*.parquet"):
        try:
            done.add(int(f.stem.split("-")[2]))
        except (IndexError, ValueError):
            continue
    return done


def _shard_stats(path: Path) -> tuple[int, float, int]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["units", "seconds"])
    units = int(pc.sum(pc.list_value_length(t["units"])).as_py() or 0)
    return t.num_rows, float(pc.sum(t["seconds"]).as_py() or 0.0), units


def _peak_rss_mb() -> float:
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def tokenize_corpus(
    tokenizer,
    audio: str | Path,
    out: str | Path,
    rank: int | None = None,
    world_size: int | None = None,
    files_per_shard: int = 256,
    max_shards: int | None = None,
    max_in_memory_seconds: float = 60.0,
    progress: bool = True,
    tokenizer_dir: str | Path | None = None,
) -> TokenizeSummary:
    """Tokenize every audio file under ``audio`` (folder or manifest) into unit shards in ``out``.

    Args:
        tokenizer: a :class:`UnitTokenizer` or a path/preset for ``UnitTokenizer.from_pretrained``.
        rank, world_size: this process's share (default: torchrun env vars, else 0 of 1).
        files_per_shard: files per Parquet shard (a killed run redoes at most one shard per rank).
        max_shards: stop after writing this many new shards (to process a corpus in slices).
        max_in_memory_seconds: longer files are streamed in bounded-memory chunks.
        tokenizer_dir: the dir ``tokenizer`` was loaded from, recorded in the folder's
            ``tokenizer-identity.json`` (taken from ``tokenizer`` itself when that is a dir).
    Returns:
        :class:`TokenizeSummary` for this rank (also written to ``summary-rank{r}.json``).
    """
    from tqdm import tqdm

    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

    if not isinstance(tokenizer, UnitTokenizer):
        if tokenizer_dir is None and Path(tokenizer).is_dir():
            tokenizer_dir = tokenizer
        tokenizer = UnitTokenizer.from_pretrained(tokenizer)
    r, w = resolve_rank(rank, world_size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    info = tokenizer.info()
    old = read_shard_metadata(out) if (out / TOKENIZER_INFO).exists() else None
    if old is not None and old.info != info:
        raise ValueError(
            f"{out} holds units from another tokenizer ({old.info}); use a new --out folder"
        )
    if (r == 0 or w == 1) and (old is None or old.identity is None):
        write_shard_metadata(out, info, tokenizer_identity(tokenizer, tokenizer_dir))

    start = time.perf_counter()
    items = list_corpus(audio)
    shards = [items[i : i + files_per_shard] for i in range(0, len(items), files_per_shard)]
    mine = [i for i in range(len(shards)) if i % w == r]
    done = _done_indices(out)
    todo = [i for i in mine if i not in done]
    if max_shards is not None:
        todo = todo[:max_shards]
    summary = TokenizeSummary(rank=r, world_size=w)
    for i in mine:
        if i in done:
            for f in out.glob(f"shard-*-{i:05d}.parquet"):
                n, secs, units = _shard_stats(f)
                summary.files += n
                summary.seconds += secs
                summary.units += units
            summary.shards_skipped += 1
    errors = ErrorLog(out / ERRORS)
    n_files = sum(len(shards[i]) for i in todo)
    bar = tqdm(total=n_files, desc=f"tokenize r{r}", unit="file", disable=not progress)
    for i in todo:
        records, failed = [], []
        for item in shards[i]:
            try:
                utt = tokenizer.encode_file(item.path, max_in_memory_seconds=max_in_memory_seconds)
                secs = _audio_seconds(item)
                records.append(
                    {
                        "id": item.id,
                        "units": utt.units.tolist(),
                        "durations": utt.durations.tolist(),
                        "seconds": secs,
                    }
                )
                summary.files += 1
                summary.seconds += secs
                summary.new_seconds += secs
                summary.units += len(utt.units)
            except Exception as e:  # a bad file never stops the job
                failed.append((item, e))
            bar.update(1)
        for item, e in failed:  # logged just before the shard lands (a rerun redoes both)
            errors.add(item.id, e, shard=i)
        summary.failures += len(failed)
        write_shard(out / f"shard-{r:05d}-{i:05d}.parquet", records)
        summary.shards_written += 1
        bar.set_postfix(units=summary.units, fail=summary.failures)
    bar.close()
    summary.wall_seconds = time.perf_counter() - start
    summary.peak_rss_mb = _peak_rss_mb()
    summary.errors = [e for e in errors.read() if e.get("shard", -1) % w == r]
    summary.failures = len({e["path"] for e in summary.errors})
    d = asdict(summary)
    d.update(hours=summary.hours, throughput=summary.throughput)
    write_json(out / f"summary-rank{r}.json", d)
    return summary


def _audio_seconds(item: AudioItem) -> float:
    """Audio duration from the header (what was tokenized, before frame rounding)."""
    if item.seconds > 0:
        return item.seconds
    from twistlm.audio import audio_seconds

    return audio_seconds(item.path)
