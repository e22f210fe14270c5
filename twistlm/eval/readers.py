"""Benchmark readers: every sWUGGY / sBLIMP / sSC / tSC layout -> the same :class:`PairRecord` list.

Layouts (``read_benchmark(kind, path)`` detects which one ``path`` is):

- ``zerospeech``: ZeroSpeech 2021 sLM21 ``lexical/{dev,test}`` (sWUGGY) and
  ``syntactic/{dev,test}`` (sBLIMP): one wav per utterance plus ``gold.csv``.
  sWUGGY pairs join ``correct == 1`` rows with ``correct == 0`` rows on ``(voice, id)``, as the
  ZeroSpeech evaluation does (zerospeech/benchmarks ``lexical`` task: ``pd.merge(words,
  non_words, left_on=['w_voice', 'w_id'], right_on=['nw_voice', 'nw_id'])``).
  sBLIMP pairs join on ``(type, subtype, id, voice)``; the original bootphon/zerospeech2021
  ``syntactic.py::load_data`` concatenates the correct and incorrect rows side by side in file
  order, which is the same pairing when gold.csv is well formed, and silently wrong when it is
  not, so we join on the keys and raise on anything unpaired.
- ``storycloze-folder``: sSC / tSC as folders of wav pairs ``{id}_correct.wav`` /
  ``{id}_incorrect.wav`` (also ``pos/neg``, ``positive/negative``, ``true/false``, the label
  anywhere among the ``_``-separated parts), or ``correct/{id}.wav`` / ``incorrect/{id}.wav``
  sub-folders, with optional ``.txt`` transcripts beside the wavs. (SlamKit's loader instead
  pairs files by sorting on the numeric prefix and trusting directory order for which is
  positive; we require the label in the name so a pair can never be flipped.)
- ``pairs-jsonl``: the ``pairs.jsonl`` index that ``twistlm synth benchmarks`` writes (one JSON
  object per line: ``pair_id, positive, negative, positive_text, negative_text, category, meta``;
  paths relative to the file).
- ``parquet``: HF re-packagings (``speed/sWUGGY``, ``speed/sBLIMP``, ``speed/sStoryCloze``,
  ``speed/tStoryCloze``) read from local parquet files: ``id``, ``positive``, ``negative`` as HF
  Audio structs ``{bytes, path}``, plus transcription / type / subtype columns.

A root folder also works: ``swuggy`` looks in ``lexical/dev``, ``sblimp`` in ``syntactic/dev``,
``ssc`` in ``sSC``, ``tsc`` in ``tSC`` (the layout ``twistlm synth benchmarks`` writes).
Malformed input raises :class:`BenchmarkFormatError` naming the file (and row).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from twistlm.eval.benchmarks import BENCHMARKS as REGISTRY
from twistlm.eval.benchmarks import KINDS as BENCHMARKS
from twistlm.eval.gold_csv import (
    LEXICAL_COLUMNS,
    SYNTACTIC_COLUMNS,
    read_lexical,
    read_syntactic,
    read_zerospeech,
)
from twistlm.eval.pair_files import (
    STORYCLOZE_LABELS,
    read_pairs_jsonl,
    read_parquet,
    read_storycloze_folder,
)
from twistlm.eval.records import AudioRef, BenchmarkFormatError, PairRecord

__all__ = [
    "BENCHMARKS",
    "LEXICAL_COLUMNS",
    "READERS",
    "ROOT_SUBDIRS",
    "STORYCLOZE_LABELS",
    "SYNTACTIC_COLUMNS",
    "AudioRef",
    "BenchmarkFormatError",
    "PairRecord",
    "detect_layout",
    "read_benchmark",
    "read_lexical",
    "read_pairs_jsonl",
    "read_parquet",
    "read_storycloze_folder",
    "read_syntactic",
    "read_zerospeech",
]

# Folder names inside a root (sLM21 root or a `twistlm synth benchmarks` output).
ROOT_SUBDIRS = {k: b.root_dirs for k, b in REGISTRY.items()}


# ---------------------------------------------------------------------------------------------
# registry and autodetection

READERS: dict[str, Callable[[str, str | Path], list[PairRecord]]] = {
    "zerospeech": read_zerospeech,
    "storycloze-folder": read_storycloze_folder,
    "pairs-jsonl": read_pairs_jsonl,
    "parquet": read_parquet,
}


def detect_layout(kind: str, path: str | Path) -> tuple[str, Path]:
    """(layout name, resolved path) for ``path``; a root folder is resolved to the benchmark's subfolder."""
    path = Path(path)
    if not path.exists():
        raise BenchmarkFormatError(f"{path}: not found")
    if path.is_file():
        if path.name == "gold.csv" or path.suffix == ".csv":
            return "zerospeech", path
        if path.suffix == ".jsonl":
            return "pairs-jsonl", path
        if path.suffix == ".parquet":
            return "parquet", path
        raise BenchmarkFormatError(
            f"{path}: unknown benchmark file type (gold.csv, .jsonl, .parquet)"
        )
    if (path / "gold.csv").is_file():
        return "zerospeech", path
    if (path / "pairs.jsonl").is_file():
        return "pairs-jsonl", path / "pairs.jsonl"
    if any(path.glob("*.wav")) or any(
        (path / d).is_dir() for d in ("correct", "incorrect", "pos", "neg", "positive", "negative")
    ):
        return "storycloze-folder", path
    if any(path.glob("*.parquet")) or any(path.glob("*/*.parquet")):
        return "parquet", path
    for sub in ROOT_SUBDIRS[kind]:
        if (path / sub).is_dir():
            return detect_layout(kind, path / sub)
    raise BenchmarkFormatError(
        f"{path}: no {kind} layout found (gold.csv, pairs.jsonl, *_correct.wav pairs, *.parquet, "
        f"or a root with {' / '.join(ROOT_SUBDIRS[kind])})"
    )


def read_benchmark(kind: str, path: str | Path, layout: str | None = None) -> list[PairRecord]:
    """All pairs of benchmark ``kind`` (swuggy | sblimp | ssc | tsc) at ``path``.

    ``layout`` (one of :data:`READERS`) skips autodetection.
    """
    if kind not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {kind!r}; one of {BENCHMARKS}")
    if layout is None:
        layout, path = detect_layout(kind, path)
    if layout not in READERS:
        raise ValueError(f"unknown layout {layout!r}; one of {sorted(READERS)}")
    return READERS[layout](kind, path)
