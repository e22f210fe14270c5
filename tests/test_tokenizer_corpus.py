"""Corpus tokenization: bad inputs, resume == uninterrupted, rank sharding, streaming, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from twistlm.cli import main
from twistlm.data.shards import read_table
from twistlm.tokenizer.corpus import list_corpus, tokenize_corpus
from twistlm.tokenizer.spectral import SpectralFeatures
from twistlm.tokenizer.unit_tokenizer import UnitTokenizer, build_offline_tokenizer


def speechlike(seconds: float, seed: int, sr: int = 16000) -> np.ndarray:
    """Noise through a changing resonance: enough spectral variety for k-means."""
    g = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + seed)
    x = np.sin(2 * np.pi * np.cumsum(f0) / sr) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * x + 0.05 * g.normal(size=n)).astype(np.float32)


def make_corpus(root, n_good=7):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_good):
        sf.write(root / f"good{i}.wav", speechlike(0.5 + 0.2 * i, i), 16000)
    return root


def add_bad_files(root):
    (root / "bad").mkdir()
    (root / "bad/empty.wav").write_bytes(b"")
    sf.write(root / "bad/trunc_src.wav", speechlike(1.0, 9), 16000)
    data = (root / "bad/trunc_src.wav").read_bytes()
    (root / "bad/trunc_src.wav").unlink()
    (root / "bad/truncated.wav").write_bytes(data[:30])  # header cut off
    (root / "bad/text.wav").write_text("this is not audio\n" * 20)
    nan = speechlike(1.0, 10)
    nan[100:200] = np.nan
    sf.write(root / "bad/nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(root / "bad/short10ms.wav", speechlike(0.01, 11), 16000)
    # unusual but valid: 8 kHz stereo is downmixed and resampled, then tokenized
    st = np.stack([speechlike(1.5, 12, 8000), speechlike(1.5, 13, 8000)], 1)
    sf.write(root / "stereo8k.wav", st, 8000)


@pytest.fixture
def tok():
    torch.manual_seed(0)
    return UnitTokenizer(SpectralFeatures(frame_rate=25), torch.randn(16, 80), name="t16")


def test_bad_inputs_logged_and_run_finishes(tmp_path, tok):
    audio = make_corpus(tmp_path / "a")
    add_bad_files(audio)
    s = tokenize_corpus(tok, audio, tmp_path / "u", files_per_shard=3, progress=False)
    errors = {e["path"]: e["error"] for e in s.errors}
    assert set(errors) == {
        "bad/empty.wav",
        "bad/truncated.wav",
        "bad/text.wav",
        "bad/nan.wav",
        "bad/short10ms.wav",
    }
    assert "NaN" in errors["bad/nan.wav"] and "too short" in errors["bad/short10ms.wav"]
    assert "decode" in errors["bad/text.wav"] or "empty" in errors["bad/text.wav"]
    lines = (tmp_path / "u/errors.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(x)["error"] for x in lines)
    table = read_table(tmp_path / "u")
    assert sorted(table["id"].to_pylist()) == sorted(
        [f"good{i}.wav" for i in range(7)] + ["stereo8k.wav"]
    )
    assert s.files == 8 and s.failures == 5
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows["stereo8k.wav"]["seconds"] == pytest.approx(1.5)
    assert sum(rows["stereo8k.wav"]["durations"]) == int(1.5 * 16000) // 640
    assert json.loads((tmp_path / "u/tokenizer.json").read_text()) == tok.info()


def test_resume_equals_uninterrupted_and_ranks_split(tmp_path, tok):
    audio = make_corpus(tmp_path / "a", n_good=9)
    add_bad_files(audio)
    full = tokenize_corpus(tok, audio, tmp_path / "full", files_per_shard=2, progress=False)
    # interrupted: two shards, plus a temp file left by a killed writer, then resume
    out = tmp_path / "resumed"
    first = tokenize_corpus(tok, audio, out, files_per_shard=2, max_shards=2, progress=False)
    assert first.shards_written == 2
    (out / ".tmp-shard-00000-00003.parquet.abc").write_bytes(b"partial")
    second = tokenize_corpus(tok, audio, out, files_per_shard=2, progress=False)
    assert second.shards_skipped == 2 and second.shards_written == full.shards_written - 2
    assert read_table(out).equals(read_table(tmp_path / "full"))
    assert second.files == full.files and second.units == full.units

    def errs(d):
        return sorted(json.loads(x)["path"] for x in (d / "errors.jsonl").read_text().splitlines())

    assert errs(out) == errs(tmp_path / "full")
    # two ranks writing into one folder give the same dataset
    ranks = tmp_path / "ranks"
    for r in (0, 1):
        tokenize_corpus(tok, audio, ranks, rank=r, world_size=2, files_per_shard=2, progress=False)
    assert read_table(ranks).equals(read_table(tmp_path / "full"))
    names = sorted(p.name for p in ranks.glob("shard-*.parquet"))
    assert names[0].startswith("shard-00000-00000") and any(
        n.startswith("shard-00001-") for n in names
    )
    # a different tokenizer may not write into the same folder
    other = UnitTokenizer(SpectralFeatures(frame_rate=50), torch.randn(4, 80))
    with pytest.raises(ValueError, match="another tokenizer"):
        tokenize_corpus(other, audio, out, progress=False)


def test_files_grouped_by_length_and_manifest(tmp_path):
    audio = make_corpus(tmp_path / "a", n_good=5)
    items = list_corpus(audio)
    assert [it.seconds for it in items] == sorted(it.seconds for it in items)
    manifest = tmp_path / "train.tsv"
    manifest.write_text(
        str(audio) + "\n" + "".join(f"good{i}.wav\t{8000 + 3200 * i}\n" for i in (3, 1))
    )
    assert [it.id for it in list_corpus(manifest)] == ["good1.wav", "good3.wav"]
    plain = tmp_path / "list.txt"
    plain.write_text("a/good2.wav\n")
    assert [it.path for it in list_corpus(plain)] == [audio / "good2.wav"]
    # JSON lines, as `twistlm synth corpus` writes manifest.jsonl
    jsonl = tmp_path / "manifest.jsonl"
    jsonl.write_text('{"id": "x", "path": "a/good4.wav", "text": "t"}\n\n')
    assert [(it.id, it.path) for it in list_corpus(jsonl)] == [("a/good4.wav", audio / "good4.wav")]
    jsonl.write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match="manifest.jsonl:1"):
        list_corpus(jsonl)


def test_streamed_long_file_equals_in_memory(tmp_path, tok):
    wav = speechlike(6.0, 3)
    sf.write(tmp_path / "long.wav", wav, 16000)
    whole = tok.encode(wav)
    streamed = tok.encode_file(tmp_path / "long.wav", max_in_memory_seconds=1.0)
    tok.extractor.chunk_seconds = 2.0
    chunked = tok.encode_file(tmp_path / "long.wav", max_in_memory_seconds=1.0)
    for out in (streamed, chunked):
        assert torch.equal(out.units, whole.units) and torch.equal(out.durations, whole.durations)
    # a 44.1 kHz stereo file is converted in blocks to a temporary file
    st = np.stack([wav, wav], 1)
    import soxr

    sf.write(tmp_path / "long44.wav", soxr.resample(st, 16000, 44100), 44100)
    conv = tok.encode_file(tmp_path / "long44.wav", max_in_memory_seconds=1.0)
    ref = tok.encode_file(tmp_path / "long44.wav")  # one-shot soxr resample in memory
    a = torch.repeat_interleave(conv.units, conv.durations)
    b = torch.repeat_interleave(ref.units, ref.durations)
    assert a.shape == b.shape and (a == b).float().mean() > 0.9


def test_cli_fit_kmeans_then_tokenize(tmp_path, capsys):
    audio = make_corpus(tmp_path / "a", n_good=6)
    assert (
        main(
            ["fit-kmeans", "--audio", str(audio), "--out", str(tmp_path / "tok"), "--n-units", "8"]
        )
        == 0
    )
    info = json.loads((tmp_path / "tok/tokenizer.json").read_text())
    assert info["n_units"] == 8 and info["hop"] == 640 and info["features"] == "logmel"
    rc = main(
        [
            "tokenize",
            "--tokenizer",
            str(tmp_path / "tok"),
            "--audio",
            str(audio),
            "--out",
            str(tmp_path / "u"),
            "--no-progress",
        ]
    )
    assert rc == 0 and "6 files" in capsys.readouterr().out
    rows = read_table(tmp_path / "u").to_pylist()
    assert len(rows) == 6 and all(max(r["units"]) < 8 for r in rows)
    assert all(len(r["units"]) == len(r["durations"]) for r in rows)
    summary = json.loads((tmp_path / "u/summary-rank0.json").read_text())
    assert summary["files"] == 6 and summary["failures"] == 0 and summary["throughput"] > 0


def test_build_offline_tokenizer_dedups_to_plausible_rate(tmp_path):
    audio = make_corpus(tmp_path / "a", n_good=4)
    tok = build_offline_tokenizer(sorted(audio.glob("*.wav")), n_units=12, progress=False)
    out = tok.encode_file(audio / "good3.wav")
    assert tok.n_units == 12 and tok.frame_rate == 25 and out.units.max() < 12
    assert bool((out.units[1:] != out.units[:-1]).all())  # deduplicated
    assert out.n_frames == int(1.1 * 16000) // 640
