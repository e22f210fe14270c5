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

import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BENCHMARKS = ("swuggy", "sblimp", "ssc", "tsc")

# Folder names inside a root (sLM21 root or a `twistlm synth benchmarks` output).
ROOT_SUBDIRS = {
    "swuggy": ("lexical/dev", "lexical/test", "lexical"),
    "sblimp": ("syntactic/dev", "syntactic/test", "syntactic"),
    "ssc": ("sSC", "ssc", "sStoryCloze"),
    "tsc": ("tSC", "tsc", "tStoryCloze"),
}

LEXICAL_COLUMNS = ("filename", "voice", "frequency", "word", "id", "correct")
SYNTACTIC_COLUMNS = ("filename", "voice", "type", "subtype", "id", "transcription", "correct")

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


class BenchmarkFormatError(ValueError):
    """A benchmark file or folder that does not fit its layout (the message names file and row)."""


@dataclass(frozen=True)
class AudioRef:
    """One utterance: a file on disk or encoded bytes (from parquet).

    ``key`` is a stable unique id for caching and submission files (the file stem for files).
    """

    key: str
    path: str | None
    data: bytes | None = field(default=None, repr=False)

    def load(self) -> np.ndarray:
        """(T,) float32 16 kHz mono, validated (raises ``twistlm.audio.AudioError``)."""
        from twistlm.audio import AudioError, check_waveform, load_audio, to_mono_16k

        if self.data is None:
            if self.path is None:
                raise AudioError(f"{self.key}: neither a path nor audio bytes")
            return load_audio(self.path)
        import soundfile as sf

        try:
            wav, sr = sf.read(io.BytesIO(self.data), dtype="float32", always_2d=False)
        except Exception as e:
            raise AudioError(f"{self.key}: cannot decode audio bytes: {e}") from e
        wav = to_mono_16k(wav, sr)
        check_waveform(wav, what=self.key)
        return wav


@dataclass(frozen=True)
class PairRecord:
    """A (positive, negative) pair: the model should give ``positive`` the higher likelihood.

    ``meta`` -- swuggy: id, voice, frequency (int | None), word, non_word, and length (int, the
    word's gold.csv ``length``) when given; sblimp: id, voice,
    type, subtype; ssc/tsc: category (and whatever else the source gives).
    """

    benchmark: str
    pair_id: str
    positive: AudioRef
    negative: AudioRef
    positive_text: str | None
    negative_text: str | None
    meta: dict = field(default_factory=dict, hash=False)


# ---------------------------------------------------------------------------------------------
# ZeroSpeech 2021 sLM21: lexical (sWUGGY) and syntactic (sBLIMP) with gold.csv


def _read_gold(gold: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Rows of gold.csv as (line number, row dict); checks the header."""
    try:
        with gold.open(newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise BenchmarkFormatError(
                    f"{gold}: missing column(s) {missing}; header is {header}, "
                    f"expected at least {list(required)}"
                )
            rows = [(i + 2, row) for i, row in enumerate(reader)]  # line 1 is the header
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BenchmarkFormatError(f"{gold}: cannot read: {e}") from e
    if not rows:
        raise BenchmarkFormatError(f"{gold}: no rows")
    return rows


def _correct_flag(gold: Path, line: int, value: str) -> bool:
    v = (value or "").strip()
    if v not in ("0", "1"):
        raise BenchmarkFormatError(
            f"{gold}, line {line}: column 'correct' must be 0 or 1, got {v!r}"
        )
    return v == "1"


def _wav_ref(gold: Path, line: int, filename: str) -> AudioRef:
    name = (filename or "").strip()
    if not name:
        raise BenchmarkFormatError(f"{gold}, line {line}: empty filename")
    path = gold.parent / (name if Path(name).suffix else f"{name}.wav")
    if not path.is_file():
        raise BenchmarkFormatError(f"{gold}, line {line}: audio file not found: {path}")
    return AudioRef(key=path.stem, path=str(path))


def _join_pairs(
    gold: Path, rows: list[tuple[int, dict[str, str]]], keys: tuple[str, ...]
) -> list[tuple[tuple[str, ...], tuple[int, dict], tuple[int, dict]]]:
    """Inner-join correct==1 with correct==0 rows on ``keys``; every row must find a partner.

    Returns (key, (line, positive row), (line, negative row)) in gold.csv order of the positives.
    Several negatives for one positive (or vice versa) give one pair each (a merge's product).
    """
    pos: dict[tuple, list] = defaultdict(list)
    neg: dict[tuple, list] = defaultdict(list)
    order: list[tuple] = []
    for line, row in rows:
        key = tuple((row.get(k) or "").strip() for k in keys)
        if _correct_flag(gold, line, row.get("correct", "")):
            if key not in pos:
                order.append(key)
            pos[key].append((line, row))
        else:
            neg[key].append((line, row))
    for key, items in neg.items():
        if key not in pos:
            line = items[0][0]
            raise BenchmarkFormatError(
                f"{gold}, line {line}: unpaired incorrect row: no correct==1 row with "
                f"{dict(zip(keys, key, strict=True))}"
            )
    out = []
    for key in order:
        if key not in neg:
            line = pos[key][0][0]
            raise BenchmarkFormatError(
                f"{gold}, line {line}: unpaired correct row: no correct==0 row with "
                f"{dict(zip(keys, key, strict=True))}"
            )
        for p in pos[key]:
            for n in neg[key]:
                out.append((key, p, n))
    return out


def _find_gold(path: Path) -> Path:
    gold = path if path.is_file() else path / "gold.csv"
    if not gold.is_file():
        raise BenchmarkFormatError(f"{path}: no gold.csv (expected the sLM21 layout)")
    return gold


def read_lexical(path: str | Path) -> list[PairRecord]:
    """sWUGGY from an sLM21 ``lexical/{dev,test}`` folder (or its gold.csv)."""
    gold = _find_gold(Path(path))
    rows = _read_gold(gold, LEXICAL_COLUMNS)
    joined = _join_pairs(gold, rows, ("voice", "id"))
    multi = defaultdict(int)
    for key, _, _ in joined:
        multi[key] += 1
    records = []
    for key, (pl, prow), (nl, nrow) in joined:
        voice, pid = key
        positive = _wav_ref(gold, pl, prow["filename"])
        negative = _wav_ref(gold, nl, nrow["filename"])
        freq_raw = (prow.get("frequency") or "").strip()
        try:
            frequency = int(float(freq_raw)) if freq_raw else None
        except ValueError as e:
            raise BenchmarkFormatError(
                f"{gold}, line {pl}: frequency {freq_raw!r} is not a number"
            ) from e
        pair_id = f"{pid}:{voice}" if multi[key] == 1 else f"{pid}:{voice}:{negative.key}"
        meta = {
            "id": pid,
            "voice": voice,
            "frequency": frequency,
            "word": prow["word"],
            "non_word": nrow["word"],
        }
        len_raw = (prow.get("length") or "").strip()
        if len_raw:  # the word's length in phones (zerospeech2021 lexical.py: by_length)
            try:
                meta["length"] = int(float(len_raw))
            except ValueError as e:
                raise BenchmarkFormatError(
                    f"{gold}, line {pl}: length {len_raw!r} is not a number"
                ) from e
        if prow.get("phones") is not None:
            meta["phones"] = prow["phones"]
            meta["non_word_phones"] = nrow.get("phones")
        records.append(
            PairRecord("swuggy", pair_id, positive, negative, prow["word"], nrow["word"], meta)
        )
    return records


def read_syntactic(path: str | Path) -> list[PairRecord]:
    """sBLIMP from an sLM21 ``syntactic/{dev,test}`` folder (or its gold.csv)."""
    gold = _find_gold(Path(path))
    rows = _read_gold(gold, SYNTACTIC_COLUMNS)
    joined = _join_pairs(gold, rows, ("type", "subtype", "id", "voice"))
    multi = defaultdict(int)
    for key, _, _ in joined:
        multi[key] += 1
    records = []
    for key, (pl, prow), (nl, nrow) in joined:
        typ, sub, pid, voice = key
        positive = _wav_ref(gold, pl, prow["filename"])
        negative = _wav_ref(gold, nl, nrow["filename"])
        pair_id = f"{typ}:{sub}:{pid}:{voice}"
        if multi[key] > 1:
            pair_id += f":{negative.key}"
        meta = {"id": pid, "voice": voice, "type": typ, "subtype": sub}
        records.append(
            PairRecord(
                "sblimp",
                pair_id,
                positive,
                negative,
                prow["transcription"],
                nrow["transcription"],
                meta,
            )
        )
    return records


def read_zerospeech(kind: str, path: str | Path) -> list[PairRecord]:
    if kind == "swuggy":
        return read_lexical(path)
    if kind == "sblimp":
        return read_syntactic(path)
    raise BenchmarkFormatError(
        f"{path}: the sLM21 gold.csv layout holds swuggy or sblimp, not {kind}"
    )


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
