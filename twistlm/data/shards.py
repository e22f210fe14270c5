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

plus ``tokenizer.json`` (how the units were made: name, layer, frame rate, n_units, dedup).
Shards are written atomically, so any ``*.parquet`` present is complete.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
