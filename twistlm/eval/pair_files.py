"""Readers of paired-audio layouts: sSC / tSC folders of wav pairs, the ``pairs.jsonl`` index
``twistlm synth benchmarks`` writes, and HF parquet re-packagings (``speed/sWUGGY`` etc.).
"""

from __future__ import annotations

import json
from pathlib import Path

from twistlm.eval.records import AudioRef, BenchmarkFormatError, PairRecord

# {id}_{label}.wav in sSC/tSC folders: label -> is the positive (true) ending
STORYCLOZE_LABELS = {
    "correct": True,
    "incorrect": False,
    "pos": True,
    "neg": False,
    "positive": True,
    "negative": False,
    "true": True,
    "false": False,
}


# ---------------------------------------------------------------------------------------------
# sSC / tSC folders of wav pairs


def _sidecar_text(wav: Path) -> str | None:
    txt = wav.with_suffix(".txt")
    return txt.read_text().strip() if txt.is_file() else None


def _label_of(wav: Path, label_dirs: bool) -> tuple[str, bool]:
    """(pair id, is positive) from ``{id}_{label}.wav`` / ``{label}_{id}.wav`` or ``{label}/{id}.wav``."""
    if label_dirs:
        return wav.stem, STORYCLOZE_LABELS[wav.parent.name.lower()]
    tokens = wav.stem.split("_")
    hits = [i for i, t in enumerate(tokens) if t.lower() in STORYCLOZE_LABELS]
    if len(hits) != 1 or len(tokens) < 2:
        raise BenchmarkFormatError(
            f"{wav}: name must be {{id}}_{{label}}.wav (or {{label}}_{{id}}.wav) with exactly one "
            f"label in {sorted(STORYCLOZE_LABELS)}"
        )
    label = tokens.pop(hits[0])
    return "_".join(tokens), STORYCLOZE_LABELS[label.lower()]


def read_storycloze_folder(kind: str, path: str | Path) -> list[PairRecord]:
    """sSC / tSC from a folder of wav pairs.

    Accepted names: ``{id}_correct.wav`` / ``{id}_incorrect.wav`` (label anywhere among the
    ``_``-separated parts; labels: correct/incorrect, pos/neg, positive/negative, true/false), or
    label sub-folders ``correct/{id}.wav`` / ``incorrect/{id}.wav``.
    """
    root = Path(path)
    if not root.is_dir():
        raise BenchmarkFormatError(f"{root}: not a folder")
    wavs = sorted(root.glob("*.wav"))
    label_dirs = False
    if not wavs:
        subs = [d for d in root.iterdir() if d.is_dir() and d.name.lower() in STORYCLOZE_LABELS]
        wavs = sorted(w for d in subs for w in d.glob("*.wav"))
        label_dirs = True
    if not wavs:
        raise BenchmarkFormatError(f"{root}: no .wav files (nor correct/ incorrect/ sub-folders)")
    groups: dict[str, dict[bool, Path]] = {}
    for wav in wavs:
        pid, is_pos = _label_of(wav, label_dirs)
        slot = groups.setdefault(pid, {})
        if is_pos in slot:
            raise BenchmarkFormatError(
                f"{wav}: a second {'positive' if is_pos else 'negative'} file for id {pid} "
                f"({slot[is_pos]})"
            )
        slot[is_pos] = wav
    records = []
    for pid in sorted(groups, key=_natural_key):
        slot = groups[pid]
        if len(slot) != 2:
            have = next(iter(slot.values()))
            raise BenchmarkFormatError(f"{have}: unpaired: no matching file for id {pid}")
        p, n = slot[True], slot[False]
        key = (lambda w: f"{w.parent.name}_{w.stem}") if label_dirs else (lambda w: w.stem)
        records.append(
            PairRecord(
                kind,
                pid,
                AudioRef(key(p), str(p)),
                AudioRef(key(n), str(n)),
                _sidecar_text(p),
                _sidecar_text(n),
                {"category": kind},
            )
        )
    return records


def _natural_key(s: str) -> tuple:
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


# ---------------------------------------------------------------------------------------------
# pairs.jsonl (written by `twistlm synth benchmarks`)


def read_pairs_jsonl(kind: str, path: str | Path) -> list[PairRecord]:
    """Our pairs index. ``path`` is the .jsonl file or a folder holding ``pairs.jsonl``."""
    path = Path(path)
    if path.is_dir():
        path = path / "pairs.jsonl"
    if not path.is_file():
        raise BenchmarkFormatError(f"{path}: not found")
    records, seen = [], set()
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise BenchmarkFormatError(f"{path}, line {line_no}: invalid JSON: {e}") from e
        missing = [k for k in ("pair_id", "positive", "negative") if k not in obj]
        if missing:
            raise BenchmarkFormatError(f"{path}, line {line_no}: missing key(s) {missing}")
        bench = obj.get("benchmark", kind)
        if bench != kind:
            raise BenchmarkFormatError(
                f"{path}, line {line_no}: benchmark is {bench!r}, asked to read {kind!r}"
            )
        pair_id = str(obj["pair_id"])
        if pair_id in seen:
            raise BenchmarkFormatError(f"{path}, line {line_no}: duplicate pair_id {pair_id!r}")
        seen.add(pair_id)
        refs = []
        for side in ("positive", "negative"):
            p = Path(obj[side])
            p = p if p.is_absolute() else path.parent / p
            if not p.is_file():
                raise BenchmarkFormatError(f"{path}, line {line_no}: {side} audio not found: {p}")
            refs.append(AudioRef(p.stem, str(p)))
        meta = dict(obj.get("meta") or {})
        if obj.get("category") is not None:
            meta["category"] = obj["category"]
        records.append(
            PairRecord(
                kind,
                pair_id,
                refs[0],
                refs[1],
                obj.get("positive_text"),
                obj.get("negative_text"),
                meta,
            )
        )
    if not records:
        raise BenchmarkFormatError(f"{path}: no pairs")
    return records


# ---------------------------------------------------------------------------------------------
# HF parquet re-packagings (speed/sWUGGY, speed/sBLIMP, speed/sStoryCloze, speed/tStoryCloze)

# Text columns as they may be named in a re-packaging: first match wins.
_POS_TEXT = ("positive_text", "positive_transcription", "text_positive", "correct_text", "word")
_NEG_TEXT = (
    "negative_text",
    "negative_transcription",
    "text_negative",
    "incorrect_text",
    "non_word",
)


def _parquet_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(path.rglob("*.parquet"))
    if not files:
        raise BenchmarkFormatError(f"{path}: no .parquet files")
    return files


def _audio_bytes(file: Path, row: int, side: str, value) -> tuple[bytes, str | None]:
    if isinstance(value, dict):
        data, src = value.get("bytes"), value.get("path")
    elif isinstance(value, (bytes, bytearray)):
        data, src = bytes(value), None
    else:
        data, src = None, None
    if not data:
        raise BenchmarkFormatError(
            f"{file}, row {row}: column {side!r} holds no audio bytes (HF Audio struct "
            f"{{bytes, path}} expected, got {type(value).__name__})"
        )
    return bytes(data), src


def read_parquet(kind: str, path: str | Path) -> list[PairRecord]:
    """HF parquet files (a file or a folder of them) with ``positive`` / ``negative`` audio."""
    import pyarrow.parquet as pq

    records, seen = [], set()
    for file in _parquet_files(Path(path)):
        try:
            table = pq.read_table(file)
        except Exception as e:
            raise BenchmarkFormatError(f"{file}: cannot read parquet: {e}") from e
        cols = table.column_names
        missing = [c for c in ("positive", "negative") if c not in cols]
        if missing:
            raise BenchmarkFormatError(f"{file}: missing column(s) {missing}; columns are {cols}")
        pos_text = next((c for c in _POS_TEXT if c in cols), None)
        neg_text = next((c for c in _NEG_TEXT if c in cols), None)
        meta_cols = [c for c in cols if c not in ("positive", "negative", pos_text, neg_text)]
        for i, row in enumerate(table.to_pylist()):
            pid = str(row["id"]) if row.get("id") is not None else f"{file.stem}:{i}"
            if pid in seen:
                raise BenchmarkFormatError(f"{file}, row {i}: duplicate id {pid!r}")
            seen.add(pid)
            refs = []
            for side, tag in (("positive", "pos"), ("negative", "neg")):
                data, _src = _audio_bytes(file, i, side, row[side])
                refs.append(AudioRef(key=f"{pid}_{tag}", path=None, data=data))
            meta = {c: row[c] for c in meta_cols}
            meta.setdefault("category", kind)
            records.append(
                PairRecord(
                    kind,
                    pid,
                    refs[0],
                    refs[1],
                    row.get(pos_text) if pos_text else None,
                    row.get(neg_text) if neg_text else None,
                    meta,
                )
            )
    if not records:
        raise BenchmarkFormatError(f"{path}: no rows")
    return records
