"""ZeroSpeech 2021 sLM21 readers: lexical (sWUGGY) and syntactic (sBLIMP), one wav per
utterance plus ``gold.csv``.

sWUGGY pairs join ``correct == 1`` rows with ``correct == 0`` rows on ``(voice, id)``, as the
ZeroSpeech evaluation does; sBLIMP pairs join on ``(type, subtype, id, voice)`` and anything
unpaired raises (see :mod:`twistlm.eval.readers` for why).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from twistlm.eval.records import AudioRef, BenchmarkFormatError, PairRecord

LEXICAL_COLUMNS = ("filename", "voice", "frequency", "word", "id", "correct")
SYNTACTIC_COLUMNS = ("filename", "voice", "type", "subtype", "id", "transcription", "correct")


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
