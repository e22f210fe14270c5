"""Benchmark readers on hand-made fixtures in every layout (tests/fixtures, make_fixtures.py)."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from twistlm.eval.readers import (
    BenchmarkFormatError,
    detect_layout,
    read_benchmark,
)

FIX = Path(__file__).parent / "fixtures"
SLM21 = FIX / "slm21"


def _freq(path: str) -> float:
    """Dominant frequency of a fixture tone (tells the files apart)."""
    wav, sr = sf.read(path)
    spec = np.abs(np.fft.rfft(wav))
    return float(np.argmax(spec) * sr / len(wav))


def test_swuggy_joins_on_voice_and_id():
    recs = read_benchmark("swuggy", SLM21)  # root -> lexical/dev
    pairs = {r.pair_id: (r.positive.key, r.negative.key) for r in recs}
    assert pairs == {
        "2:Bella": ("wB2", "nwB2"),
        "1:Alex": ("wA1", "nwA1"),
        "2:Alex": ("wA2", "nwA2"),
        "1:Bella": ("wB1", "nwB1"),
    }
    r = next(r for r in recs if r.pair_id == "1:Alex")
    assert r.meta["frequency"] == 120 and r.meta["word"] == "brick"
    assert r.meta["length"] == 5  # gold.csv length as an int (sWUGGY by-length breakdown)
    assert r.meta["voice"] == "Alex" and r.meta["id"] == "1"
    assert (r.positive_text, r.negative_text) == ("brick", "brock")
    assert all(r.benchmark == "swuggy" for r in recs)


def test_sblimp_pairs_by_type_subtype_id_voice_not_position():
    recs = read_benchmark("sblimp", SLM21 / "syntactic" / "dev")
    pairs = {r.pair_id: (r.positive.key, r.negative.key) for r in recs}
    # positional pairing (the original tool's concat) would pair s2A with u1B: we must not
    assert pairs == {
        "agreement:np:1:Alex": ("s1A", "u1A"),
        "agreement:np:2:Alex": ("s2A", "u2A"),
        "agreement:np:1:Bella": ("s1B", "u1B"),
        "island:wh:1:Alex": ("q1A", "v1A"),
    }
    r = next(r for r in recs if r.pair_id == "agreement:np:2:Alex")
    assert r.positive_text == "the dogs run" and r.negative_text == "the dogs runs"
    assert r.meta == {"id": "2", "voice": "Alex", "type": "agreement", "subtype": "np"}


def test_storycloze_folder_and_texts():
    recs = read_benchmark("ssc", FIX / "storycloze")  # root -> sSC
    assert [r.pair_id for r in recs] == ["0", "1", "2"]
    assert [(r.positive.key, r.negative.key) for r in recs] == [
        (f"{k}_correct", f"{k}_incorrect") for k in range(3)
    ]
    assert recs[0].positive_text == "He went home. He slept."
    assert recs[1].positive_text is None
    tsc = read_benchmark("tsc", FIX / "storycloze" / "tSC")
    assert len(tsc) == 3 and tsc[0].benchmark == "tsc"
    # the audio really is the file named
    assert _freq(recs[0].positive.path) == pytest.approx(200 + 20 * 40, abs=15)


def test_audio_ref_load_is_16k_float32():
    r = read_benchmark("ssc", FIX / "storycloze" / "sSC")[0]
    wav = r.positive.load()
    assert wav.dtype == np.float32 and wav.shape == (1600,)


def test_pairs_jsonl(tmp_path):
    shutil.copytree(FIX / "storycloze" / "tSC", tmp_path / "tSC")
    lines = [
        {
            "pair_id": "a",
            "benchmark": "tsc",
            "positive": "tSC/0_correct.wav",
            "negative": "tSC/0_incorrect.wav",
            "positive_text": "p",
            "negative_text": "n",
            "category": "random-ending",
        }
    ]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    recs = read_benchmark("tsc", tmp_path)
    assert detect_layout("tsc", tmp_path)[0] == "pairs-jsonl"
    assert len(recs) == 1 and recs[0].meta["category"] == "random-ending"
    assert recs[0].positive.path == str(tmp_path / "tSC" / "0_correct.wav")
    with pytest.raises(BenchmarkFormatError, match="asked to read 'ssc'"):
        read_benchmark("ssc", tmp_path / "pairs.jsonl")
    lines[0]["negative"] = "tSC/missing.wav"
    (tmp_path / "pairs.jsonl").write_text(json.dumps(lines[0]) + "\n")
    with pytest.raises(BenchmarkFormatError, match=r"line 1: negative audio not found"):
        read_benchmark("tsc", tmp_path)


def _wav_bytes(freq: float) -> bytes:
    t = np.arange(3200) / 8000  # 8 kHz source: the reader must resample to 16 kHz
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 8000, format="WAV")
    return buf.getvalue()


def test_hf_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    audio = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "id": ["x1", "x2"],
            "positive": pa.array(
                [
                    {"bytes": _wav_bytes(300), "path": "a.wav"},
                    {"bytes": _wav_bytes(500), "path": None},
                ],
                type=audio,
            ),
            "negative": pa.array(
                [
                    {"bytes": _wav_bytes(400), "path": "b.wav"},
                    {"bytes": _wav_bytes(600), "path": None},
                ],
                type=audio,
            ),
            "positive_transcription": ["good", "fine"],
            "negative_transcription": ["bad", "worse"],
            "type": ["t1", "t2"],
        }
    )
    d = tmp_path / "speed_sBLIMP" / "data"
    d.mkdir(parents=True)
    pq.write_table(table, d / "test-00000.parquet")
    recs = read_benchmark("sblimp", tmp_path / "speed_sBLIMP")
    assert [r.pair_id for r in recs] == ["x1", "x2"]
    assert recs[0].positive_text == "good" and recs[1].negative_text == "worse"
    assert recs[1].meta["type"] == "t2"
    wav = recs[0].negative.load()
    assert wav.dtype == np.float32 and wav.shape == (6400,)  # 0.4 s at 16 kHz
    spec = np.abs(np.fft.rfft(wav))
    assert np.argmax(spec) * 16000 / len(wav) == pytest.approx(400, abs=5)
    bad = table.drop_columns(["negative"])
    pq.write_table(bad, d / "test-00000.parquet")
    with pytest.raises(BenchmarkFormatError, match=r"missing column\(s\) \['negative'\]"):
        read_benchmark("sblimp", d)


def _copy_lexical(tmp_path) -> Path:
    dst = tmp_path / "lexical" / "dev"
    shutil.copytree(SLM21 / "lexical" / "dev", dst)
    return dst


def test_gold_missing_column(tmp_path):
    d = _copy_lexical(tmp_path)
    gold = d / "gold.csv"
    lines = gold.read_text().splitlines()
    gold.write_text("\n".join(",".join(x.split(",")[:5] + x.split(",")[6:]) for x in lines))
    with pytest.raises(BenchmarkFormatError, match=r"gold.csv: missing column\(s\) \['id'\]"):
        read_benchmark("swuggy", d)


def test_gold_unpaired_row_names_line(tmp_path):
    d = _copy_lexical(tmp_path)
    gold = d / "gold.csv"
    lines = gold.read_text().splitlines()
    gold.write_text("\n".join(x for x in lines if not x.startswith("nwB2,")) + "\n")
    with pytest.raises(BenchmarkFormatError, match=r"line 3: unpaired correct row"):
        read_benchmark("swuggy", d)  # wB2 is on line 3


def test_gold_missing_wav_names_file_and_line(tmp_path):
    d = _copy_lexical(tmp_path)
    (d / "wA2.wav").unlink()
    with pytest.raises(BenchmarkFormatError, match=r"line 6: audio file not found: .*wA2.wav"):
        read_benchmark("swuggy", d)


def test_storycloze_unpaired_and_bad_names(tmp_path):
    d = tmp_path / "sSC"
    shutil.copytree(FIX / "storycloze" / "sSC", d)
    (d / "1_incorrect.wav").unlink()
    with pytest.raises(BenchmarkFormatError, match="unpaired: no matching file for id 1"):
        read_benchmark("ssc", d)
    shutil.copy(d / "0_correct.wav", d / "1_whatever.wav")
    with pytest.raises(BenchmarkFormatError, match="1_whatever.wav: name must be"):
        read_benchmark("ssc", d)


def test_unknown_layout(tmp_path):
    with pytest.raises(BenchmarkFormatError, match="no swuggy layout found"):
        read_benchmark("swuggy", tmp_path)
    with pytest.raises(ValueError, match="unknown benchmark"):
        read_benchmark("hellaswag", tmp_path)


def test_storycloze_label_first_and_label_subfolders(tmp_path):
    src = FIX / "storycloze" / "sSC"
    a = tmp_path / "a"
    a.mkdir()
    for k in range(3):  # {label}_{id}.wav
        shutil.copy(src / f"{k}_correct.wav", a / f"correct_{k}.wav")
        shutil.copy(src / f"{k}_incorrect.wav", a / f"incorrect_{k}.wav")
    b = tmp_path / "b"
    (b / "correct").mkdir(parents=True)
    (b / "incorrect").mkdir()
    for k in range(3):  # correct/{id}.wav, incorrect/{id}.wav
        shutil.copy(src / f"{k}_correct.wav", b / "correct" / f"{k}.wav")
        shutil.copy(src / f"{k}_incorrect.wav", b / "incorrect" / f"{k}.wav")
    ref = read_benchmark("ssc", src)
    for folder in (a, b):
        recs = read_benchmark("ssc", folder)
        assert [r.pair_id for r in recs] == ["0", "1", "2"]
        for r, want in zip(recs, ref, strict=True):  # same audio on the same side
            assert Path(r.positive.path).read_bytes() == Path(want.positive.path).read_bytes()
            assert Path(r.negative.path).read_bytes() == Path(want.negative.path).read_bytes()
    assert read_benchmark("ssc", b)[0].positive.key == "correct_0"


def test_gold_bad_length_names_line(tmp_path):
    d = _copy_lexical(tmp_path)
    gold = d / "gold.csv"
    gold.write_text(gold.read_text().replace("wB2,Bella,3,table,t ei b l,2,5,1",
                                             "wB2,Bella,3,table,t ei b l,2,five,1"))  # fmt: skip
    with pytest.raises(BenchmarkFormatError, match=r"line 3: length 'five'"):
        read_benchmark("swuggy", d)
