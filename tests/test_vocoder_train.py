"""Vocoder training: mel loss goes down, resume == uninterrupted, bad files skipped, CLI, resynth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from twistlm.audio import write_wav
from twistlm.data.shards import write_shard
from twistlm.vocoder import Vocoder
from twistlm.vocoder.data import tokenizer_info
from twistlm.vocoder.mel import LogMel, mel_filterbank
from twistlm.vocoder.train import VocoderTrainConfig, train_vocoder

HOP = 320


def make_corpus(root: Path, n_utts: int = 6, n_units: int = 8, seed: int = 0) -> tuple[Path, Path]:
    """Tones: every unit frame is a sine at 200 + 100 * unit Hz (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n_utts):
        raw = rng.integers(0, n_units, rng.integers(12, 20))
        units = np.array([u for j, u in enumerate(raw) if j == 0 or u != raw[j - 1]])
        durs = rng.integers(1, 4, len(units))
        frames = np.repeat(units, durs)
        t = np.arange(len(frames) * HOP) / 16000
        wav = 0.3 * np.sin(2 * np.pi * (200 + 100 * np.repeat(frames, HOP)) * t)
        rel = f"{'ab'[i % 2]}/utt{i}.wav"
        write_wav(root / "audio" / rel, wav)
        recs.append({"id": rel, "units": units, "durations": durs, "seconds": len(wav) / 16000})
    write_shard(root / "units" / "shard-00000-00000.parquet", recs)
    info = {"name": "tones", "hop": HOP, "frame_rate": 50.0, "n_units": n_units, "dedup": True}
    (root / "units" / "tokenizer.json").write_text(json.dumps(info))
    return root / "audio", root / "units"


def cfg_for(audio, units, out, **kw) -> VocoderTrainConfig:
    base = dict(
        audio_dir=str(audio),
        units_dir=str(units),
        out_dir=str(out),
        size="tiny",
        batch_size=4,
        segment_frames=8,
        val_utterances=2,
        log_every=5,
        eval_every=10,
        checkpoint_every=10,
        sample_every=1000,
        n_samples=1,
        threads=1,
    )
    base.update(kw)
    return VocoderTrainConfig(**base)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_mel_filterbank_matches_transformers_slaney():
    from transformers.audio_utils import mel_filter_bank

    ref = mel_filter_bank(
        num_frequency_bins=513,
        num_mel_filters=80,
        min_frequency=0.0,
        max_frequency=8000.0,
        sampling_rate=16000,
        norm="slaney",
        mel_scale="slaney",
    ).T
    np.testing.assert_allclose(mel_filterbank(16000, 1024, 80, 0.0, 8000.0), ref, atol=1e-7)
    mel = LogMel()(torch.randn(2, 4096))
    assert mel.shape == (2, 80, 4096 // 256)


def test_tiny_vocoder_lowers_mel_loss_with_gan_phase(tmp_path):
    audio, units = make_corpus(tmp_path)
    res = train_vocoder(cfg_for(audio, units, tmp_path / "run", max_steps=40, gan_start_step=34))
    m = _metrics(tmp_path / "run")
    train = [r for r in m if "mel_l1" in r]
    assert train[-1]["mel_l1"] < 0.7 * train[0]["mel_l1"]
    vals = [r["val_mel_l1"] for r in m if r.get("val_mel_l1") is not None]
    assert vals[-1] < vals[0]
    assert {"disc", "adv", "fm"} <= set(train[-1]) and train[-1]["phase"] == "gan"
    assert "disc" not in train[0] and train[0]["phase"] == "mel"
    assert res.step == 40 and res.n_val == 2 and res.n_train == 4
    voc = Vocoder.from_pretrained(tmp_path / "run" / "vocoder")
    assert (
        voc.hop == HOP and voc.has_duration_predictor and voc.info["tokenizer"]["name"] == "tones"
    )
    assert voc.synthesize(torch.tensor([1, 2]), torch.tensor([2, 3])).shape == (5 * HOP,)
    assert (tmp_path / "run" / "samples" / "step-0000040" / "0-predicted-durations.wav").exists()


def test_resume_continues_the_same_run(tmp_path):
    audio, units = make_corpus(tmp_path)
    full = tmp_path / "full"
    train_vocoder(cfg_for(audio, units, full, max_steps=20, gan_start_step=14))
    part = tmp_path / "part"
    train_vocoder(cfg_for(audio, units, part, max_steps=10, gan_start_step=14))
    with pytest.raises(FileExistsError, match="--resume"):
        train_vocoder(cfg_for(audio, units, part, max_steps=20, gan_start_step=14))
    res = train_vocoder(cfg_for(audio, units, part, max_steps=20, gan_start_step=14), resume=True)
    assert res.step == 20
    a = load_file(str(full / "vocoder" / "generator.safetensors"))
    b = load_file(str(part / "vocoder" / "generator.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    ma = [r for r in _metrics(full) if "mel_l1" in r]
    mb = [r for r in _metrics(part) if "mel_l1" in r]
    assert [r["mel_l1"] for r in ma] == [r["mel_l1"] for r in mb]


def test_bad_files_are_logged_and_skipped(tmp_path):
    audio, units = make_corpus(tmp_path, n_utts=5)
    (audio / "a" / "utt0.wav").write_bytes(b"not audio")
    (audio / "b" / "utt1.wav").unlink()
    res = train_vocoder(cfg_for(audio, units, tmp_path / "run", max_steps=2, val_utterances=1))
    errs = [json.loads(x) for x in (tmp_path / "run" / "errors.jsonl").read_text().splitlines()]
    assert sorted(Path(e["path"]).name for e in errs) == ["utt0.wav", "utt1.wav"]
    assert res.n_train + res.n_val == 3


def test_multi_speaker_and_time_budget(tmp_path):
    audio, units = make_corpus(tmp_path)
    res = train_vocoder(
        cfg_for(
            audio,
            units,
            tmp_path / "run",
            max_seconds=1.0,
            multi_speaker=True,
            duration_predictor=False,
        )
    )
    assert res.step >= 1 and res.seconds < 30
    voc = Vocoder.from_pretrained(tmp_path / "run")  # run folder -> run/vocoder
    assert voc.speakers == ["a", "b"] and not voc.has_duration_predictor
    assert voc.synthesize(torch.tensor([3, 4]), speaker=1).shape == (2 * HOP,)


def test_config_requires_a_budget():
    with pytest.raises(ValueError, match="budget"):
        VocoderTrainConfig(audio_dir="a", units_dir="u")


def test_cli_train_then_resynth_end_to_end(tmp_path):
    tok_mod = pytest.importorskip("twistlm.tokenizer.unit_tokenizer")
    from twistlm.cli import main
    from twistlm.data.shards import write_shard as ws

    audio, _ = make_corpus(tmp_path)
    wavs = sorted(audio.rglob("*.wav"))
    tok = tok_mod.build_offline_tokenizer(
        wavs, n_units=8, features="logmel", frame_rate=50.0, n_iter=5, progress=False
    )
    assert tok.hop == HOP
    tok.save_pretrained(tmp_path / "tok")
    units = tmp_path / "units2"
    recs = []
    for w in wavs:
        t = tok.encode_file(w)
        recs.append(
            {
                "id": w.relative_to(audio).as_posix(),
                "units": t.units,
                "durations": t.durations,
                "seconds": 1.0,
            }
        )
    ws(units / "shard-00000-00000.parquet", recs)
    (units / "tokenizer.json").write_text(json.dumps(tok.info()))
    run = tmp_path / "run"
    argv = ["train-vocoder", "--audio", str(audio), "--units", str(units), "-o", str(run)]
    argv += [
        "--size",
        "tiny",
        "--max-steps",
        "3",
        "--threads",
        "1",
        "segment_frames=8",
        "batch_size=2",
    ]
    assert main(argv) == 0
    assert main(argv) == 2  # rerun without --resume refuses
    assert (
        main(argv[:-4] + ["--max-steps", "4", "--resume", "segment_frames=8", "batch_size=2"]) == 0
    )
    assert Vocoder.from_pretrained(run / "vocoder").info["training"]["step"] == 4
    out = tmp_path / "resynth"
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"xx")
    rc = main(
        [
            "resynth",
            str(wavs[0]),
            str(bad),
            "-o",
            str(out),
            "--tokenizer",
            str(tmp_path / "tok"),
            "--vocoder",
            str(run / "vocoder"),
        ]
    )
    assert rc == 0
    import soundfile as sf

    y, sr = sf.read(out / f"{wavs[0].stem}.wav")
    meta = json.loads((out / f"{wavs[0].stem}.units.json").read_text())
    assert sr == 16000 and len(y) == sum(meta["durations"]) * HOP
    assert [json.loads(x)["path"] for x in (out / "errors.jsonl").read_text().splitlines()] == [
        str(bad)
    ]


def test_griffin_lim_baseline_reproduces_unit_spectra():
    from twistlm.vocoder.griffinlim import UnitMelGriffinLim

    t = np.arange(20 * HOP) / 16000
    utts = []
    for u in range(4):  # unit u is a 200 + 100 u Hz tone
        frames = torch.full((20,), u)
        utts.append((frames, 0.3 * np.sin(2 * np.pi * (200 + 100 * u) * t)))
    gl = UnitMelGriffinLim.fit(utts, HOP, n_units=5)
    wav = gl.synthesize(torch.tensor([3, 1]), torch.tensor([10, 10]))
    assert wav.shape == (20 * HOP,) and wav.dtype == np.float32
    for part, hz in ((wav[: 10 * HOP], 500), (wav[10 * HOP :], 300)):
        spec = np.abs(np.fft.rfft(part * np.hanning(part.size)))
        peak = np.argmax(spec) * 16000 / part.size
        assert abs(peak - hz) < 60, (peak, hz)


def test_tokenizer_info_needs_the_shards_hop_and_n_units(tmp_path):
    """The vocoder reads the shards' metadata through the one strict reader, asking for hop."""
    with pytest.raises(FileNotFoundError, match="tokenizer.json missing"):
        tokenizer_info(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"n_units": 8}))
    with pytest.raises(ValueError, match="no 'hop' field"):
        tokenizer_info(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"n_units": 8, "hop": HOP}))
    assert tokenizer_info(tmp_path) == {"n_units": 8, "hop": HOP}
