"""Acoustic-model vocoder: features, shapes, save/load, seeds, durations, learning, WORLD."""

import numpy as np
import pytest
import torch

from twistlm.vocoder.acoustic import (
    AcousticConfig,
    AcousticModel,
    AcousticVocoder,
    analyze,
    collate,
    frame_features,
    frame_index,
    losses,
)
from twistlm.vocoder.griffinlim import N_FFT

HOP = 640  # 25 Hz units: 4 frames of 10 ms per unit frame


def _tiny(seed: int = 0, n_units: int = 4, target: str = "logmag") -> AcousticModel:
    torch.manual_seed(seed)
    cfg = AcousticConfig(
        n_units=n_units, hop=HOP, target=target, dim=32, unit_layers=1, layers=2,
        dur_hidden=16, gl_iters=4,
    )  # fmt: skip
    return AcousticModel(cfg)


def test_frame_features_positions_and_run_lengths():
    ids, feats = frame_features(torch.tensor([3, 1]), torch.tensor([1, 2]), r=2)
    assert ids.tolist() == [3, 3, 1, 1, 1, 1]
    assert frame_index(torch.tensor([1, 2]), r=2)[0].tolist() == [0, 0, 1, 1, 1, 1]
    assert feats[:, 0].tolist() == [0.0, 0.5, 0.0, 0.25, 0.5, 0.75]
    assert torch.allclose(feats[:, 1], torch.log(torch.tensor([1.0, 1, 2, 2, 2, 2])))


def test_config_rejects_bad_shapes():
    with pytest.raises(ValueError, match="multiple"):
        AcousticConfig(n_units=4, hop=100)
    with pytest.raises(ValueError, match="odd"):
        AcousticConfig(n_units=4, hop=HOP, kernel=4)
    with pytest.raises(ValueError, match="target"):
        AcousticConfig(n_units=4, hop=HOP, target="mel")


@pytest.mark.parametrize("target", ["world", "logmag"])
def test_synthesize_shapes_durations_and_errors(target):
    voc = AcousticVocoder(_tiny(target=target))
    units, durs = torch.tensor([0, 2, 1]), torch.tensor([2, 1, 3])
    n_out = N_FFT // 2 + 1 if target == "logmag" else 43  # 40 envelope + 1 ap + lf0 + vuv
    assert voc.features(units, durs).shape == (n_out, 6 * 4 + 1)
    wav = voc.synthesize(units, durs)
    assert wav.dtype == np.float32 and wav.shape == (6 * HOP,) and np.abs(wav).max() <= 1.0
    pred = voc.predict_durations(units)
    assert pred.dtype == torch.int64 and pred.shape == (3,) and int(pred.min()) >= 1
    assert voc.synthesize(units).shape == (int(pred.sum()) * HOP,)  # the duration path
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        voc.synthesize(torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="durations"):
        voc.synthesize(units, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match=">= 1"):
        voc.synthesize(units, torch.tensor([1, 0, 1]))
    with pytest.raises(ValueError, match="one voice"):
        voc.synthesize(units, durs, speaker=1)


@pytest.mark.parametrize("target", ["world", "logmag"])
def test_save_load_round_trip(tmp_path, target):
    model = _tiny(target=target)
    torch.manual_seed(1)
    model.feature_mean.normal_()
    model.feature_std.uniform_(0.5, 2.0)
    voc = AcousticVocoder(model, {"tokenizer": {"n_units": 4}})
    voc.save_pretrained(tmp_path / "v")
    back = AcousticVocoder.from_pretrained(tmp_path / "v")
    assert back.cfg == voc.cfg and back.info == voc.info
    units, durs = torch.tensor([1, 3, 0]), torch.tensor([1, 2, 1])
    assert np.array_equal(back.synthesize(units, durs), voc.synthesize(units, durs))
    assert torch.equal(back.predict_durations(units), voc.predict_durations(units))
    # fp16 storage: half the bytes, features within fp16 rounding of the fp32 model's
    voc.save_pretrained(tmp_path / "h", half=True)
    half = AcousticVocoder.from_pretrained(tmp_path / "h")
    size = (tmp_path / "h" / "acoustic.safetensors").stat().st_size
    assert size < 0.6 * (tmp_path / "v" / "acoustic.safetensors").stat().st_size
    a, b = voc.features(units, durs), half.features(units, durs)
    assert torch.allclose(a, b, atol=0.02 * float(a.abs().max()))
    with pytest.raises(FileNotFoundError, match="missing"):
        AcousticVocoder.from_pretrained(tmp_path)


def _tone_corpus(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Unit k sounds as a sine at 300 * (k + 1) Hz; random units and durations."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        units = torch.randint(0, 4, (6,), generator=g)
        units = units[torch.cat([torch.tensor([True]), units[1:] != units[:-1]])]
        durs = torch.randint(1, 4, units.shape, generator=g)
        freq = torch.repeat_interleave(300.0 * (units + 1).float(), durs * HOP)
        wav = 0.5 * torch.sin(2 * torch.pi * torch.cumsum(freq, 0) / 16_000)
        items.append((units, durs, wav))
    return items


def _train(seed: int, steps: int, target: str = "logmag"):
    model = _tiny(seed, target=target).train()
    items = [(u, d, torch.from_numpy(analyze(w.numpy(), model.cfg))[: int(d.sum()) * 4])
             for u, d, w in _tone_corpus(4, seed=1)]  # fmt: skip
    targets = torch.cat([t for _, _, t in items])
    model.feature_mean.copy_(targets.mean(0))
    model.feature_std.copy_(targets.std(0).clamp(min=1e-3))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = collate(items, 4)
    log = []
    for _ in range(steps):
        out = losses(model, batch)
        (out["feature_l1"] + out["dur_mse"]).backward()
        opt.step()
        opt.zero_grad()
        log.append({k: float(v.detach()) for k, v in out.items()})
    return model, log


def test_training_is_deterministic_under_a_seed():
    a, log_a = _train(seed=0, steps=3)
    b, log_b = _train(seed=0, steps=3)
    assert log_a == log_b
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("target", ["world", "logmag"])
def test_losses_go_down_on_tones(target):
    _, log = _train(seed=0, steps=40, target=target)
    assert log[-1]["feature_l1"] < 0.6 * log[0]["feature_l1"], (log[0], log[-1])
    assert log[-1]["dur_mse"] < 0.5 * log[0]["dur_mse"], (log[0], log[-1])


def test_training_on_one_voice_of_a_corpus(tmp_path):
    from test_vocoder_train import make_corpus  # tests/ is on sys.path

    from twistlm.vocoder.acoustic_train import AcousticTrainConfig, train_acoustic_vocoder

    audio, units = make_corpus(tmp_path, n_utts=10)
    (audio / "a" / "broken.wav").write_bytes(b"not audio")  # not in the shards: never read
    cfg = AcousticTrainConfig(
        str(audio), str(units), str(tmp_path / "run"), voice="a", dim=32, unit_layers=1, layers=2,
        batch_size=4, max_unit_frames=20, lr=3e-3, max_steps=40, val_utterances=2,
        eval_every=20, log_every=10, threads=1,
    )  # fmt: skip
    res = train_acoustic_vocoder(cfg)
    assert (
        res["voice"] == "a" and res["steps"] == 40 and res["n_utterances"] == 4
    )  # one of the 5 held out
    assert res["val_feature_l1"] < 0.7 * res["val_feature_l1_start"], res
    assert (tmp_path / "run" / "features.safetensors").exists()  # the WORLD feature cache
    voc = AcousticVocoder.from_pretrained(tmp_path / "run" / "vocoder")
    assert voc.hop == 320 and voc.n_units == 8 and voc.cfg.target == "world"
    assert voc.info["training"]["steps"] == 40
    wav = voc.synthesize(torch.tensor([1, 2, 3]))
    assert wav.shape[0] % 320 == 0 and wav.shape[0] >= 3 * 320
    with pytest.raises(ValueError, match="not in the corpus"):
        train_acoustic_vocoder(AcousticTrainConfig(str(audio), str(units), str(tmp_path / "x"),
                                                   voice="zz", dim=8, layers=1))  # fmt: skip


def test_load_vocoder_dispatches_on_the_dir(tmp_path):
    from twistlm.vocoder import load_vocoder

    AcousticVocoder(_tiny()).save_pretrained(tmp_path / "run" / "vocoder")
    assert isinstance(load_vocoder(tmp_path / "run"), AcousticVocoder)
    assert isinstance(load_vocoder(tmp_path / "run" / "vocoder"), AcousticVocoder)
    with pytest.raises(FileNotFoundError, match="not a twistlm vocoder"):
        load_vocoder(tmp_path / "empty")


def _harmonic(f0: float, seconds: float, seed: int) -> np.ndarray:
    """A seeded voiced signal: 10 harmonics of ``f0`` with a falling envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16_000)) / 16_000
    x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.28)) / k for k in range(1, 11))
    return (0.2 * x + 0.001 * rng.standard_normal(t.size)).astype(np.float32)


def test_world_analysis_finds_f0_and_resynthesis_keeps_the_envelope():
    from twistlm.vocoder import world

    x = _harmonic(150.0, 0.6, seed=0)
    feats = world.analyze(x, 16_000)
    assert feats.shape == (x.size // 160 + 1, world.n_features(16_000))
    lf0, vuv = feats[:, -2], feats[:, -1]
    mid = slice(10, -10)
    assert vuv[mid].min() == 1.0  # voiced throughout
    assert np.allclose(np.exp(lf0[mid]), 150.0, rtol=0.03)
    y = world.synthesize(feats, 16_000, x.size)
    assert y.shape == x.shape and y.dtype == np.float32
    again = world.analyze(y, 16_000)
    env = slice(0, world.N_SP)
    err = np.abs(again[mid, env] - feats[mid, env]).mean()
    spread = np.abs(feats[mid, env] - feats[mid, env].mean()).mean()
    assert err < 0.5 * spread, (err, spread)  # re-analysis lands near the analysed envelope
    assert np.allclose(np.exp(again[mid, -2]), 150.0, rtol=0.03)
    silent = world.synthesize(np.zeros((5, feats.shape[1]), np.float32), 16_000, 800)
    assert silent.shape == (800,)


def test_load_vocoder_packaged_checks_the_pins(tmp_path, monkeypatch):
    import twistlm.packaged as packaged

    root = tmp_path / "assets"
    AcousticVocoder(_tiny()).save_pretrained(root / "vocoder")
    from twistlm.loaders import sha256_file

    pins = {f"vocoder/{n}": sha256_file(root / "vocoder" / n)
            for n in ("acoustic.json", "acoustic.safetensors")}  # fmt: skip
    monkeypatch.setattr(packaged, "ROOT", root)
    monkeypatch.setattr(packaged, "SHA256", pins)
    from twistlm.vocoder import load_vocoder

    assert isinstance(load_vocoder("packaged"), AcousticVocoder)
    (root / "vocoder" / "acoustic.json").write_text("{}")
    with pytest.raises(ValueError, match="sha256"):
        load_vocoder("packaged")
    (root / "vocoder" / "acoustic.json").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        load_vocoder("packaged")
