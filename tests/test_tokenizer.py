"""Tokenizer: reference computations (25/50 Hz HuBERT, spectral), dedup, k-means, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from twistlm.audio import AudioError
from twistlm.tokenizer.dedup import dedup, expand
from twistlm.tokenizer.hubert import HubertFeatures
from twistlm.tokenizer.kmeans import (
    FrameReservoir,
    UnsafeFileError,
    assign,
    fit_kmeans,
    fit_standardizer,
    import_kmeans_pickle,
    load_centroids,
    load_standardizer,
    save_centroids,
)
from twistlm.tokenizer.spectral import SpectralFeatures
from twistlm.tokenizer.stream import AudioSource
from twistlm.tokenizer.unit_tokenizer import UnitTokenizer


def reference_units(model, wav, layer, centroids):
    """hidden_states[layer] -> brute-force nearest centroid -> dedup."""
    with torch.no_grad():
        h = model(wav[None], output_hidden_states=True).hidden_states[layer][0]
    frames = torch.cdist(h.double(), centroids.double()).argmin(1)
    return frames, dedup(frames)


@pytest.mark.parametrize("hz,hop", [(50, 320), (25, 640)])
def test_hubert_units_equal_reference(hz, hop, tiny_hubert):
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


def test_hubert_normalize_matches_layer_norm_input(tiny_hubert):
    model = tiny_hubert(50)
    wav = torch.randn(8000) * 0.3 + 0.05
    fx = HubertFeatures(model, layer=3, normalize=True)
    with torch.no_grad():
        ref = model(torch.nn.functional.layer_norm(wav[None], (1, 8000)), output_hidden_states=True)
    torch.testing.assert_close(fx(wav), ref.hidden_states[3][0], rtol=0, atol=0)


def test_hubert_chunked_long_file_is_close_away_from_joins(tiny_hubert):
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


def test_unit_tokenizer_save_load_roundtrip(tmp_path, tiny_hubert):
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


def test_standardized_tokenizer_assigns_zscores_and_roundtrips(tmp_path):
    g = torch.Generator().manual_seed(3)
    fx = SpectralFeatures(frame_rate=50, norm="none")
    wav = torch.randn(16000, generator=g) * 0.1
    feats = fx(wav)
    mean, std = fit_standardizer(feats.numpy())
    np.testing.assert_allclose(mean.numpy(), feats.double().mean(0).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std.numpy(), feats.double().std(0).numpy(), rtol=1e-5, atol=1e-5)
    centroids = torch.randn(7, fx.dim, generator=g)
    tok = UnitTokenizer(fx, centroids, name="z", standardizer=(mean, std))
    ref = torch.cdist(((feats - mean) / std).double(), centroids.double()).argmin(1)
    assert torch.equal(tok.frame_units(wav), ref)
    raw = UnitTokenizer(fx, centroids, name="z")  # same centroids, no standardizer: other units
    assert not torch.equal(raw.frame_units(wav), ref)
    tok.save_pretrained(tmp_path / "z")
    assert tok.info()["standardize"] is True and "standardize" not in raw.info()
    back = UnitTokenizer.from_pretrained(tmp_path / "z")
    assert back.info() == tok.info() and torch.equal(back.frame_units(wav), ref)
    m2, s2 = load_standardizer(tmp_path / "z" / "centroids.safetensors")
    assert torch.equal(m2, mean) and torch.equal(s2, std)
    raw.save_pretrained(tmp_path / "raw")  # a file without the vectors loads as raw features
    assert load_standardizer(tmp_path / "raw" / "centroids.safetensors") is None
    assert UnitTokenizer.from_pretrained(tmp_path / "raw").standardizer is None
    # tokenizer.json and the centroid file must agree
    import json

    meta = json.loads((tmp_path / "raw" / "tokenizer.json").read_text())
    meta["standardize"] = True
    (tmp_path / "raw" / "tokenizer.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="lacks feature_mean"):
        UnitTokenizer.from_pretrained(tmp_path / "raw")
    with pytest.raises(ValueError, match="std must be > 0"):
        UnitTokenizer(fx, centroids, standardizer=(mean, torch.zeros_like(std)))


def test_build_offline_tokenizer_standardize_fits_on_zscores(tmp_path):
    import soundfile as sf

    from twistlm.tokenizer.unit_tokenizer import build_offline_tokenizer

    wav = tone_segments(0.3, 10, seed=4).numpy()
    sf.write(tmp_path / "a.wav", wav, 16000)
    kw = dict(n_units=6, features="logmel", frame_rate=50, norm="none", n_iter=10, progress=False)
    tok = build_offline_tokenizer([tmp_path / "a.wav"], standardize=True, **kw)
    from twistlm.tokenizer.kmeans import sample_frames

    feats = torch.as_tensor(
        sample_frames(tok.extractor, [tmp_path / "a.wav"], 200_000, progress=False)
    )  # every frame (fewer than the reservoir holds), as the fit read them
    mean, std = tok.standardizer
    np.testing.assert_allclose(mean.numpy(), feats.double().mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(std.numpy(), feats.double().std(0).numpy(), rtol=1e-5)
    z = ((feats - mean) / std).numpy()
    assert tok.centroids.shape == (6, feats.shape[1])
    # the centroids live in z-space: refitting there with the same seed gives the same centroids
    np.testing.assert_allclose(
        tok.centroids.numpy(), fit_kmeans(z, 6, n_iter=10, seed=0).numpy(), atol=1e-5
    )
    assert tok.name.endswith("-zkm6")
    raw = build_offline_tokenizer([tmp_path / "a.wav"], **kw)  # default: spectral stays raw
    assert raw.standardizer is None and raw.name.endswith("-km6")


def test_too_short_raises():
    tok = UnitTokenizer(SpectralFeatures(frame_rate=25), torch.randn(4, 80))
    with pytest.raises(AudioError, match="too short"):
        tok.encode(torch.randn(500))


def tone_segments(seconds_each: float = 0.5, n: int = 12, seed: int = 0) -> torch.Tensor:
    """Speech-free data with clear cluster structure: ``n`` segments, each one of 5 tones."""
    g = torch.Generator().manual_seed(seed)
    freqs = (150.0, 400.0, 900.0, 2000.0, 3500.0)
    t = torch.arange(int(seconds_each * 16000)) / 16000
    order = torch.randint(0, len(freqs), (n,), generator=g).tolist()
    return torch.cat(
        [
            0.3 * torch.sin(2 * torch.pi * freqs[i] * t)
            + 0.01 * torch.randn(t.numel(), generator=g)
            for i in order
        ]
    )


FAST_REL_TOL = 0.05  # the fast mode's promise: per-frame relative L2 error of the features


@pytest.mark.parametrize("precision", ["bf16", "int8", "auto"])
def test_fast_mode_keeps_features_close_and_units_with_margin(precision, tiny_hubert):
    """Whatever path runs (bf16 autocast, int8 Linear weights, or what this CPU picks), fast
    features are within FAST_REL_TOL of fp32 per frame, so every frame whose two nearest
    centroids differ by more than that bound keeps its unit. Centroids are k-means of the exact
    features of clustered data, where such frames are the large majority."""
    torch.manual_seed(0)
    model = tiny_hubert(50)
    wav = tone_segments()
    exact_fx = HubertFeatures(model, layer=3)
    fast_fx = HubertFeatures(model, layer=3, fast=True, fast_precision=precision)
    if precision != "auto":
        assert fast_fx.fast_mode == precision
    assert fast_fx.fast_mode in ("bf16", "int8")
    exact, fast = exact_fx(wav), fast_fx(wav)
    assert fast.shape == exact.shape and torch.isfinite(fast).all()
    norm = exact.double().norm(dim=1)
    rel = (fast.double() - exact.double()).norm(dim=1) / norm
    assert float(rel.max()) <= FAST_REL_TOL, f"{fast_fx.fast_mode}: max rel error {rel.max():.4f}"

    c = fit_kmeans(exact, 5, n_iter=30, seed=0)
    d = torch.cdist(exact.double(), c.double()).topk(2, dim=1, largest=False).values
    # |x' - x| <= tol |x| < (d2 - d1) / 2 keeps the nearest centroid (triangle inequality)
    safe = (d[:, 1] - d[:, 0]) / 2 > FAST_REL_TOL * norm
    assert float(safe.float().mean()) >= 0.9  # data where the promise is meaningful
    exact_units = UnitTokenizer(exact_fx, c).frame_units(wav)
    fast_units = UnitTokenizer(fast_fx, c).frame_units(wav)
    assert torch.equal(fast_units[safe], exact_units[safe])


def test_bf16_fast_mode_keeps_grouped_positional_conv_accurate(tiny_hubert):
    """oneDNN's bf16 grouped conv1d with few channels per group (here 8, kernel 8) returned
    wrong results on an AMX CPU; the fast mode keeps HuBERT's positional conv in fp32 on CPUs."""
    torch.manual_seed(0)
    model = tiny_hubert(50)  # pos conv: 16 channels, 2 groups, kernel 8
    fx = HubertFeatures(model, layer=1, fast=True, fast_precision="bf16")
    wav = tone_segments(0.25, 8, seed=1)
    exact = HubertFeatures(model, layer=1)(wav)
    rel = (fx(wav) - exact).norm() / exact.norm()
    assert float(rel) <= FAST_REL_TOL


@pytest.mark.parametrize("hz", [50, 25])
def test_hubert_pad_samples_equals_slamkit_reference(hz, tiny_hubert):
    """SlamKit (slp-rl/slamkit, slamkit/feature_extractor/hubert_feature_extractor.py) runs
    ``model(F.pad(wav, (40, 40)), output_hidden_states=True).hidden_states[layer]``."""
    torch.manual_seed(0)
    model = tiny_hubert(hz)
    wav = torch.randn(12345, generator=torch.Generator().manual_seed(1)) * 0.1
    fx = HubertFeatures(model, layer=2, pad_samples=40)
    with torch.no_grad():
        padded = torch.nn.functional.pad(wav[None], (40, 40))
        ref = model(padded, output_hidden_states=True).hidden_states[2][0]
        unpadded = model(wav[None], output_hidden_states=True).hidden_states[2][0]
    got = fx(wav)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    assert fx.n_frames(wav.numel()) == ref.shape[0]
    assert HubertFeatures(model, layer=2).pad_samples == 0  # default: textlesslib / TWIST
    torch.testing.assert_close(HubertFeatures(model, layer=2)(wav), unpadded, rtol=0, atol=0)
    # streamed: a chunk whose overlap covers the whole (padded) file equals the whole pass
    fx_stream = HubertFeatures(model, layer=2, pad_samples=40, chunk_seconds=0.25)
    fx_stream.overlap_seconds = 2.0
    chunks = list(fx_stream.features_stream(AudioSource.from_array(wav.numpy())))
    assert len(chunks) > 1
    torch.testing.assert_close(torch.cat(chunks), ref, rtol=1e-5, atol=1e-5)
    # short overlaps: every chunk reads exactly what an unpadded extractor reads from the
    # explicitly padded file
    fx_short = HubertFeatures(model, layer=2, pad_samples=40, chunk_seconds=0.25)
    plain = HubertFeatures(model, layer=2, chunk_seconds=0.25)
    fx_short.overlap_seconds = plain.overlap_seconds = 0.1
    a = list(fx_short.features_stream(AudioSource.from_array(wav.numpy())))
    b = list(plain.features_stream(AudioSource.from_array(padded[0].numpy())))
    assert len(a) == len(b) > 2
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_pad_samples_saved_and_loaded_old_files_load_unpadded(tmp_path, tiny_hubert):
    import json

    torch.manual_seed(0)
    model = tiny_hubert(25)
    c = torch.randn(6, 16)
    tok = UnitTokenizer(HubertFeatures(model, layer=2, pad_samples=40), c, name="slam")
    tok.save_pretrained(tmp_path / "padded")
    meta = json.loads((tmp_path / "padded/tokenizer.json").read_text())
    assert meta["feature_config"]["pad_samples"] == 40 and meta["pad_samples"] == 40
    tok2 = UnitTokenizer.from_pretrained(tmp_path / "padded")
    assert tok2.extractor.pad_samples == 40 and tok2.info() == tok.info()
    wav = torch.randn(16000, generator=torch.Generator().manual_seed(2)) * 0.1
    assert torch.equal(tok2.frame_units(wav), tok.frame_units(wav))
    # a tokenizer saved before the option existed has no pad_samples key: unpadded
    plain = UnitTokenizer(HubertFeatures(model, layer=2), c, name="plain")
    plain.save_pretrained(tmp_path / "old")
    meta = json.loads((tmp_path / "old/tokenizer.json").read_text())
    meta["feature_config"].pop("pad_samples")
    assert "pad_samples" not in meta  # info of unpadded tokenizers is unchanged
    (tmp_path / "old/tokenizer.json").write_text(json.dumps(meta))
    old = UnitTokenizer.from_pretrained(tmp_path / "old")
    assert old.extractor.pad_samples == 0 and old.info() == plain.info()
    assert old.extractor.n_frames(16000) == plain.extractor.n_frames(16000)


def test_slamkit_preset_pads_like_slamkit(tmp_path, monkeypatch, tiny_hubert):
    """The SlamKit presets carry SlamKit's model / layer / k-means and its 40-sample padding
    (slp-rl/slamkit config/tokeniser/*.yaml); load_tokenizer_preset passes the padding on."""
    import joblib
    from sklearn.cluster import KMeans

    from twistlm import loaders
    from twistlm.tokenizer.unit_tokenizer import load_tokenizer_preset

    for name, layer, hop in (("slamkit-mhubert-25hz", 11, 640), ("slamkit-hubert-base-l9", 9, 320)):
        spec = loaders.TOKENIZER_PRESETS[name]
        assert (spec["layer"], spec["hop"], spec["pad_samples"]) == (layer, hop, 40)
        assert list(spec["kmeans"]) == [500] and spec["normalize"] is False
    assert loaders.TOKENIZER_PRESETS["slamkit-mhubert-25hz"]["model"] == "slprl/mhubert-base-25hz"
    assert "pad_samples" not in loaders.TOKENIZER_PRESETS["mhubert-base-25hz"]  # TWIST: unpadded
    # offline: a local tiny 25 Hz model and a small k-means pickle stand in for the downloads
    torch.manual_seed(0)
    tiny_hubert(25).save_pretrained(tmp_path / "hf")
    km = KMeans(n_clusters=4, n_init=1, random_state=0).fit(
        np.random.default_rng(0).normal(size=(40, 16))
    )
    (tmp_path / "cache/slamkit-mhubert-25hz").mkdir(parents=True)
    joblib.dump(km, tmp_path / "cache/slamkit-mhubert-25hz/km4.bin")
    spec = dict(loaders.TOKENIZER_PRESETS["slamkit-mhubert-25hz"])
    spec.update(model=str(tmp_path / "hf"), kmeans={4: "unused"}, default_units=4, layer=2)
    monkeypatch.setitem(loaders.TOKENIZER_PRESETS, "slamkit-mhubert-25hz", spec)
    tok = load_tokenizer_preset(
        "slamkit-mhubert-25hz", trust_pickle=True, cache_dir=tmp_path / "cache"
    )
    assert tok.extractor.pad_samples == 40 and tok.info()["pad_samples"] == 40
