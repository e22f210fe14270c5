"""Tokenizer: reference computations (25/50 Hz HuBERT, spectral), dedup, k-means, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import HubertConfig, HubertModel

from twistlm.audio import AudioError
from twistlm.tokenizer.dedup import dedup, expand
from twistlm.tokenizer.hubert import HubertFeatures
from twistlm.tokenizer.kmeans import (
    FrameReservoir,
    UnsafeFileError,
    assign,
    fit_kmeans,
    import_kmeans_pickle,
    load_centroids,
    save_centroids,
)
from twistlm.tokenizer.spectral import SpectralFeatures
from twistlm.tokenizer.stream import AudioSource
from twistlm.tokenizer.unit_tokenizer import UnitTokenizer


def tiny_hubert(hz: int = 50, layers: int = 3) -> HubertModel:
    """Random HuBERT with base-like conv geometry: hop 320 (50 Hz) or 640 (25 Hz, extra conv)."""
    strides = (5, 2, 2, 2, 2, 2, 2) + ((2,) if hz == 25 else ())
    kernels = (10, 3, 3, 3, 3, 2, 2) + ((2,) if hz == 25 else ())
    cfg = HubertConfig(
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * len(strides),
        conv_stride=strides,
        conv_kernel=kernels,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
    )
    return HubertModel(cfg).eval()


def reference_units(model, wav, layer, centroids):
    """hidden_states[layer] -> brute-force nearest centroid -> dedup."""
    with torch.no_grad():
        h = model(wav[None], output_hidden_states=True).hidden_states[layer][0]
    frames = torch.cdist(h.double(), centroids.double()).argmin(1)
    return frames, dedup(frames)


@pytest.mark.parametrize("hz,hop", [(50, 320), (25, 640)])
def test_hubert_units_equal_reference(hz, hop):
    model = tiny_hubert(hz)
    layer = 2
    fx = HubertFeatures(model, layer=layer)
    assert fx.hop == hop and fx.frame_rate == hz
    assert len(fx.model.encoder.layers) == layer  # only the layers needed are kept
    centroids = torch.randn(7, 16)
    tok = UnitTokenizer(fx, centroids)
    for n in (400 + 3 * hop, 16000, 23456):
        wav = torch.randn(n) * 0.1
        frames, (units, durations) = reference_units(model, wav, layer, centroids)
        assert fx.n_frames(n) == frames.numel()
        out = tok.encode(wav)
        assert out.units.tolist() == units.tolist()
        assert out.durations.tolist() == durations.tolist()
        assert out.frame_rate == hz
        assert tok.frame_units(wav).tolist() == frames.tolist()


def test_hubert_normalize_matches_layer_norm_input():
    model = tiny_hubert(50)
    wav = torch.randn(8000) * 0.3 + 0.05
    fx = HubertFeatures(model, layer=3, normalize=True)
    with torch.no_grad():
        ref = model(torch.nn.functional.layer_norm(wav[None], (1, 8000)), output_hidden_states=True)
    torch.testing.assert_close(fx(wav), ref.hidden_states[3][0], rtol=0, atol=0)


def test_hubert_chunked_long_file_is_close_away_from_joins():
    model = tiny_hubert(50)
    wav = torch.randn(16000 * 3) * 0.1
    full = HubertFeatures(model, layer=2)(wav)
    fx = HubertFeatures(model, layer=2, chunk_seconds=1.0, overlap_seconds=2.0)
    src = AudioSource.from_array(wav.numpy())
    chunked = torch.cat(list(fx.features_stream(src)))
    assert chunked.shape == full.shape
    # overlap >= file length: every chunk sees the whole file, so frames are identical
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
@pytest.mark.parametrize("rate", [25, 50])
def test_spectral_chunked_equals_whole(kind, rate):
    fx = SpectralFeatures(kind=kind, frame_rate=rate)
    wav = torch.randn(16000 * 5 + 77) * 0.1
    whole = fx(wav)
    assert whole.shape == (wav.numel() // fx.hop, 80 if kind == "logmel" else 20)
    chunks = list(fx.features_stream(AudioSource.from_array(wav.numpy()), chunk_seconds=0.7))
    assert len(chunks) > 1
    assert torch.equal(torch.cat(chunks), whole)
    # per-utterance normalisation: zero mean, unit variance per dimension
    torch.testing.assert_close(whole.mean(0), torch.zeros(whole.shape[1]), atol=1e-4, rtol=0)


def test_spectral_reference_frame():
    """One pooled log-mel frame equals a direct numpy computation of the documented framing."""
    fx = SpectralFeatures(kind="logmel", frame_rate=25, norm="none")
    wav = torch.randn(6400, dtype=torch.float64).float()
    j = 3
    padded = np.concatenate([np.zeros(120), wav.numpy().astype(np.float64), np.zeros(400)])
    win = np.hanning(401)[:400]  # periodic Hann
    frames = []
    for k in range(j * 4, j * 4 + 4):
        seg = padded[k * 160 : k * 160 + 400] * win
        power = np.abs(np.fft.rfft(seg)) ** 2
        frames.append(np.log(power @ fx._fb.double().numpy() + 1e-6))
    ref = np.mean(frames, 0)
    np.testing.assert_allclose(fx(wav)[j].numpy(), ref, rtol=1e-4, atol=1e-3)


def test_dedup_expand_roundtrip():
    frames = torch.tensor([3, 3, 3, 1, 1, 4, 3, 3, 0])
    units, durations = dedup(frames)
    assert units.tolist() == [3, 1, 4, 3, 0] and durations.tolist() == [3, 2, 1, 2, 1]
    assert torch.equal(expand(units, durations), frames)
    rnd = torch.randint(0, 3, (500,))
    assert torch.equal(expand(*dedup(rnd)), rnd)
    assert dedup(torch.tensor([], dtype=torch.long))[0].numel() == 0
    with pytest.raises(ValueError):
        expand(torch.tensor([1, 2]), torch.tensor([1]))


def test_assign_equals_brute_force_including_near_ties():
    g = torch.Generator().manual_seed(1)
    c = torch.randn(50, 12, generator=g) * 3
    x = torch.randn(3000, 12, generator=g) * 3
    x[:100] = c[torch.arange(100) % 50] + 1e-4 * torch.randn(100, 12, generator=g)
    x[100:200] = (c[0] + c[1]) / 2  # exact ties between two centroids are possible
    ref = torch.cdist(x.double(), c.double()).argmin(1)
    assert torch.equal(assign(x, c, batch_size=777), ref)


def test_fit_kmeans_separates_clusters_and_reservoir_bounds_memory():
    g = np.random.default_rng(0)
    centers = g.normal(size=(4, 8)) * 10
    res = FrameReservoir(capacity=400, seed=0)
    for _ in range(10):
        res.add(centers[g.integers(0, 4, 300)] + g.normal(size=(300, 8)) * 0.1)
    assert res.frames().shape == (400, 8) and res.seen == 3000
    c = fit_kmeans(res.frames(), 4, n_iter=20)
    d = torch.cdist(torch.tensor(centers).float(), c)
    assert sorted(d.argmin(1).tolist()) == [0, 1, 2, 3]  # one centroid per true cluster
    assert float(d.min(1).values.max()) < 0.5


def test_centroids_file_roundtrip_and_pickle_refused(tmp_path):
    c = torch.randn(5, 3)
    save_centroids(tmp_path / "c.safetensors", c, {"layer": 6})
    c2, meta = load_centroids(tmp_path / "c.safetensors")
    assert torch.equal(c, c2) and meta["n_units"] == "5" and meta["layer"] == "6"
    import joblib
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=3, n_init=1, random_state=0).fit(
        np.random.default_rng(0).normal(size=(30, 3))
    )
    joblib.dump(km, tmp_path / "km.bin")
    with pytest.raises(UnsafeFileError, match="trust_pickle"):
        import_kmeans_pickle(tmp_path / "km.bin")
    got = import_kmeans_pickle(tmp_path / "km.bin", trust_pickle=True)
    np.testing.assert_array_equal(got.numpy(), km.cluster_centers_.astype(np.float32))


def test_unit_tokenizer_save_load_roundtrip(tmp_path):
    for fx in (SpectralFeatures(frame_rate=50), HubertFeatures(tiny_hubert(25), layer=2)):
        tok = UnitTokenizer(fx, torch.randn(9, fx.dim), name="t")
        tok.save_pretrained(tmp_path / fx.name)
        tok2 = UnitTokenizer.from_pretrained(tmp_path / fx.name)
        assert tok2.info() == tok.info()
        assert tok2.info()["hop"] == fx.hop and tok2.info()["layer"] == getattr(fx, "layer", None)
        wav = torch.randn(16000) * 0.1
        a, b = tok.encode(wav), tok2.encode(wav)
        assert torch.equal(a.units, b.units) and torch.equal(a.durations, b.durations)
        assert a.n_frames == fx.n_frames(16000)


def test_too_short_raises():
    tok = UnitTokenizer(SpectralFeatures(frame_rate=25), torch.randn(4, 80))
    with pytest.raises(AudioError, match="too short"):
        tok.encode(torch.randn(500))


def test_fast_mode_mostly_identical_units():
    model = tiny_hubert(50)
    wav = torch.randn(32000) * 0.1
    c = torch.randn(20, 16)
    exact = UnitTokenizer(HubertFeatures(model, layer=3), c).frame_units(wav)
    fast = UnitTokenizer(HubertFeatures(model, layer=3, fast=True), c).frame_units(wav)
    assert exact.shape == fast.shape
    assert (exact == fast).float().mean() > 0.8
