"""Unit shards: the file format between `twistlm tokenize` and everything downstream.

A unit dataset is a folder of Parquet files ``shard-RRRRR-SSSSS.parquet`` (rank, shard index),
each with the columns

============  ==============  ===========================================================
column        type            meaning
============  ==============  ===========================================================
id            string          the audio file's path relative to the corpus root
units         list<int32>     deduplicated unit ids (or frame units when dedup is off)
durations     list<int32>     frames per unit (same length as ``units``)
seconds       float64         audio duration in seconds
============  ==============  ===========================================================

plus ``tokenizer.json`` (how the units were made: name, layer, frame rate, hop, n_units, dedup)
and ``tokenizer-identity.json`` (which tokenizer made them: name, content fingerprint, dir path),
both read by :func:`read_shard_metadata`. Shards are written atomically, so any ``*.parquet``
present is complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("units", pa.list_(pa.int32())),
        ("durations", pa.list_(pa.int32())),
        ("seconds", pa.float64()),
    ]
)
TOKENIZER_INFO = "tokenizer.json"


def shard_name(rank: int, index: int) -> str:
    return f"shard-{rank:05d}-{index:05d}.parquet"


def write_shard(path: str | Path, records: Sequence[dict[str, Any]]) -> None:
    """Atomically write records (keys id, units, durations, seconds) as one Parquet shard."""
    from twistlm.io import atomic_path

    table = pa.Table.from_pylist(
        [
            {
                "id": str(r["id"]),
                "units": [int(u) for u in r["units"]],
                "durations": [int(d) for d in r["durations"]],
                "seconds": float(r["seconds"]),
            }
            for r in records
        ],
        schema=SCHEMA,
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def shard_files(root: str | Path) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    files = sorted(root.glob("shard-*.parquet"))
    if not files:
        raise FileNotFoundError(f"{root}: no unit shards (shard-*.parquet); run `twistlm tokenize`")
    return files


def read_table(root: str | Path) -> pa.Table:
    """All shards of a unit dataset as one table, sorted by id (deterministic across ranks)."""
    tables = [pq.read_table(f, schema=SCHEMA) for f in shard_files(root)]
    table = pa.concat_tables(tables)
    return table.sort_by("id")


def iter_records(root: str | Path) -> Iterator[dict[str, Any]]:
    """Yield ``{"id", "units", "durations", "seconds"}`` dicts, sorted by id."""
    yield from read_table(root).to_pylist()


# ---------------------------------------------------------------- shard metadata
TOKENIZER_IDENTITY = "tokenizer-identity.json"


@dataclass(frozen=True)
class ShardMetadata:
    """What a unit-shard folder says about its units (read by :func:`read_shard_metadata`).

    Attributes:
        folder: the unit-shard folder.
        info: ``tokenizer.json``: the tokenizer's ``info()`` (name, features, layer,
            frame_rate, hop, n_units, dedup, ...), exactly as ``twistlm tokenize`` wrote it.
        identity: ``tokenizer-identity.json``: ``{"name", "fingerprint", "path"}`` of the
            tokenizer that made the units (``path`` absolute, or None when it was given as an
            object); None for folders tokenized before the identity was recorded.
    """

    folder: Path
    info: dict[str, Any]
    identity: dict[str, Any] | None

    @property
    def n_units(self) -> int:
        return int(self.info["n_units"])


def shard_folder(root: str | Path) -> Path:
    """The folder of a unit dataset given as a folder or as one of its shard files."""
    root = Path(root)
    return root.parent if root.is_file() else root


def _read_object(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_shard_metadata(root: str | Path, require: Sequence[str] = ()) -> ShardMetadata:
    """The metadata of a unit dataset (a shard folder, or one shard file inside it). Strict.

    ``tokenizer.json`` must exist, be a JSON object and hold a positive integer ``n_units``
    (and ``hop`` when present); every key in ``require`` (e.g. ``("hop",)``) must be present.
    ``tokenizer-identity.json`` is optional (older folders lack it) but, when present, must be
    a JSON object.

    An old unit folder without ``tokenizer.json`` gets a :class:`FileNotFoundError` naming the
    file: nothing guesses the unit count from the data. Rerun ``twistlm tokenize`` into a new
    folder, or write the file by hand (at least ``{"n_units": N}``; ``hop`` too for a vocoder).

    Raises:
        FileNotFoundError: no ``tokenizer.json`` in the folder.
        ValueError: a file is not a JSON object, or a required field is missing or invalid.
    """
    folder = shard_folder(root)
    path = folder / TOKENIZER_INFO
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} missing: unit shards must come from `twistlm tokenize`, which writes it "
            '(for older folders write it by hand: {"n_units": N, "hop": H})'
        )
    info = _read_object(path)
    for key in ("n_units", *require):
        if key not in info:
            raise ValueError(f"{path}: no {key!r} field")
    for key in ("n_units", "hop"):
        v = info.get(key)
        if key in info and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            raise ValueError(f"{path}: {key!r} must be a positive integer, got {v!r}")
    ident_path = folder / TOKENIZER_IDENTITY
    identity = _read_object(ident_path) if ident_path.is_file() else None
    return ShardMetadata(folder, info, identity)


def write_shard_metadata(
    folder: str | Path, info: dict[str, Any], identity: dict[str, Any] | None = None
) -> None:
    """Atomically write ``tokenizer.json`` (and ``tokenizer-identity.json`` when given)."""
    from twistlm.io import write_json

    folder = Path(folder)
    write_json(folder / TOKENIZER_INFO, info)
    if identity is not None:
        write_json(folder / TOKENIZER_IDENTITY, identity)
