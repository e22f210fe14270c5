"""Corpus tokenization: bad inputs, resume == uninterrupted, rank sharding, streaming, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from twistlm.cli import main
from twistlm.data.shards import TOKENIZER_IDENTITY, read_shard_metadata, read_table
from twistlm.eval.cache import tokenizer_fingerprint
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


def test_tokenizer_identity_recorded_at_tokenize_time(tmp_path, tok):
    """The folder names the tokenizer (name, fingerprint, dir) that made its units."""
    audio = make_corpus(tmp_path / "a", n_good=2)
    tokenize_corpus(tok, audio, tmp_path / "u", progress=False)
    meta = read_shard_metadata(tmp_path / "u")
    assert meta.info == tok.info()
    fp = tokenizer_fingerprint(tok.info(), None, tok.centroids)
    assert meta.identity == {"name": "t16", "fingerprint": fp, "path": None}
    # from a saved dir (path or object + tokenizer_dir): the dir, and the fingerprint
    # `twistlm eval` caches this tokenizer's units under
    tok.save_pretrained(tmp_path / "tok")
    loaded = UnitTokenizer.from_pretrained(tmp_path / "tok")
    want = {
        "name": "t16",
        "fingerprint": tokenizer_fingerprint(loaded.info(), tmp_path / "tok", loaded.centroids),
        "path": str((tmp_path / "tok").resolve()),
    }
    tokenize_corpus(str(tmp_path / "tok"), audio, tmp_path / "v", progress=False)
    assert read_shard_metadata(tmp_path / "v").identity == want
    out = tmp_path / "w"
    tokenize_corpus(loaded, audio, out, tokenizer_dir=tmp_path / "tok", progress=False)
    assert read_shard_metadata(out).identity == want
    # an older folder without the identity gets it on the next run
    (out / TOKENIZER_IDENTITY).unlink()
    tokenize_corpus(loaded, audio, out, tokenizer_dir=tmp_path / "tok", progress=False)
    assert read_shard_metadata(out).identity == want


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
    # --standardize stores the z-score vectors; --centroids reuses them
    args = ["fit-kmeans", "--audio", str(audio), "--n-units", "8", "--standardize", "yes"]
    assert main([*args, "--out", str(tmp_path / "ztok")]) == 0
    z = UnitTokenizer.from_pretrained(tmp_path / "ztok")
    assert z.info()["standardize"] is True and z.standardizer is not None
    assert z.name.endswith("-zkm8")  # the name tells standardized units apart
    cen = str(tmp_path / "ztok/centroids.safetensors")
    assert main(["fit-kmeans", "--centroids", cen, "--out", str(tmp_path / "z2")]) == 0
    z2 = UnitTokenizer.from_pretrained(tmp_path / "z2")
    assert all(torch.equal(a, b) for a, b in zip(z.standardizer, z2.standardizer, strict=True))


def test_build_offline_tokenizer_dedups_to_plausible_rate(tmp_path):
    audio = make_corpus(tmp_path / "a", n_good=4)
    tok = build_offline_tokenizer(sorted(audio.glob("*.wav")), n_units=12, progress=False)
    out = tok.encode_file(audio / "good3.wav")
    assert tok.n_units == 12 and tok.frame_rate == 25 and out.units.max() < 12
    assert bool((out.units[1:] != out.units[:-1]).all())  # deduplicated
    assert out.n_frames == int(1.1 * 16000) // 640


def test_streamed_silent_files_rejected_like_in_memory(tmp_path, tok):
    """All-zero files fail with the in-memory error whether loaded, streamed in place (16 kHz
    mono) or streamed through conversion (8 kHz stereo), and a corpus run logs them."""
    from twistlm.audio import AudioError

    audio = tmp_path / "a"
    audio.mkdir()
    sf.write(audio / "zero.wav", np.zeros(16000 * 3, np.int16), 16000, subtype="PCM_16")
    sf.write(audio / "zero8k.wav", np.zeros((8000 * 3, 2), np.int16), 8000, subtype="PCM_16")
    messages, errs = set(), []
    for name in ("zero.wav", "zero8k.wav"):
        for max_in_memory in (60.0, 1.0):
            with pytest.raises(AudioError) as err:
                tok.encode_file(audio / name, max_in_memory_seconds=max_in_memory)
            messages.add(str(err.value))
            errs.append(err)  # keeps the tracebacks (and anything they hold) alive
    assert messages == {"audio is all zeros (silent)"}
    fd_dir = Path("/proc/self/fd")
    if fd_dir.is_dir():  # a rejected file is closed at once, not when the error is collected
        open_files = set()
        for fd in fd_dir.iterdir():
            try:
                open_files.add(os.readlink(fd))
            except OSError:
                continue
        assert not {str(audio / "zero.wav"), str(audio / "zero8k.wav")} & open_files
    s = tokenize_corpus(tok, audio, tmp_path / "u", max_in_memory_seconds=1.0, progress=False)
    assert s.files == 0 and {e["path"]: e["error"] for e in s.errors} == {
        "zero.wav": "AudioError: audio is all zeros (silent)",
        "zero8k.wav": "AudioError: audio is all zeros (silent)",
    }


def test_near_silent_file_maps_to_one_stable_unit(tmp_path, tok):
    """1e-5 noise (below one 16-bit step) used to be normalised to unit variance per dimension
    (14 distinct units in 10 s); the std floor keeps it at the utterance mean: one unit, the
    same for any such noise, in memory and streamed."""
    from twistlm.tokenizer.dedup import expand

    frames = []
    for seed in (0, 1):
        w = (np.random.default_rng(seed).normal(size=16000 * 10) * 1e-5).astype(np.float32)
        sf.write(tmp_path / f"quiet{seed}.wav", w, 16000, subtype="FLOAT")
        for max_in_memory in (60.0, 1.0):
            out = tok.encode_file(
                tmp_path / f"quiet{seed}.wav", max_in_memory_seconds=max_in_memory
            )
            frames.append(expand(out.units, out.durations))
    assert frames[0].numel() == 250 and len(set(frames[0].tolist())) == 1
    assert all(torch.equal(f, frames[0]) for f in frames)
    # 16-bit dither (+-1 step noise) is no longer blown up to many units either (13 before)
    dither = (np.round(np.random.default_rng(5).normal(size=16000 * 10)) / 32768).astype(np.float32)
    assert len(set(tok.frame_units(dither).tolist())) <= 8
    # tokenizers saved before the floor existed keep their exact old normalisation
    tok.save_pretrained(tmp_path / "tok")
    meta = json.loads((tmp_path / "tok/tokenizer.json").read_text())
    assert meta["feature_config"]["std_floor"] == 0.5
    assert UnitTokenizer.from_pretrained(tmp_path / "tok").extractor.std_floor == 0.5
    meta["feature_config"].pop("std_floor")
    (tmp_path / "tok/tokenizer.json").write_text(json.dumps(meta))
    assert UnitTokenizer.from_pretrained(tmp_path / "tok").extractor.std_floor == 0.0


def test_non_utf8_file_names_tokenized_and_logged(tmp_path, capsys):
    """A valid wav named with latin-1 bytes (b'caf\\xe9.wav') is read through a file object;
    ids in shards and errors.jsonl show the byte as a \\xNN escape."""
    audio = tmp_path / "a"
    audio.mkdir()
    names = {k: os.fsdecode(k.encode() + b"\xe9.wav") for k in ("caf", "long", "bad")}
    try:
        sf.write(tmp_path / "tmp.wav", speechlike(1.0, 1), 16000)
        os.rename(tmp_path / "tmp.wav", audio / names["caf"])
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses non-UTF-8 file names")
    sf.write(tmp_path / "tmp.wav", speechlike(3.0, 2), 16000)
    os.rename(tmp_path / "tmp.wav", audio / names["long"])  # streamed (> 2 s in memory)
    (audio / names["bad"]).write_text("not audio\n" * 20)
    torch.manual_seed(0)
    UnitTokenizer(SpectralFeatures(frame_rate=25), torch.randn(8, 80)).save_pretrained(
        tmp_path / "tok"
    )
    args = ["tokenize", "--tokenizer", str(tmp_path / "tok"), "--audio", str(audio)]
    args += ["--out", str(tmp_path / "u"), "--max-in-memory-seconds", "2", "--no-progress"]
    assert main(args) == 0
    assert "2 files" in capsys.readouterr().out
    rows = {r["id"]: r for r in read_table(tmp_path / "u").to_pylist()}
    assert set(rows) == {"caf\\xe9.wav", "long\\xe9.wav"}
    assert sum(rows["long\\xe9.wav"]["durations"]) == 3 * 25
    errors = [json.loads(x) for x in (tmp_path / "u/errors.jsonl").read_text().splitlines()]
    assert [e["path"] for e in errors] == ["bad\\xe9.wav"]
    assert "decode" in errors[0]["error"]
