"""Acoustic-model vocoder candidate: features, shapes, save/load, seeds, durations, learning."""

import numpy as np
import pytest
import torch

from twistlm.vocoder.acoustic import (
    AcousticConfig,
    AcousticVocoder,
    UnitSpectrogramModel,
    collate,
    frame_features,
    losses,
)
from twistlm.vocoder.griffinlim import N_FFT

HOP = 640  # 25 Hz units: 4 STFT frames per unit frame


def _tiny(seed: int = 0, n_units: int = 4) -> UnitSpectrogramModel:
    torch.manual_seed(seed)
    cfg = AcousticConfig(n_units=n_units, hop=HOP, dim=32, layers=2, dur_hidden=16, gl_iters=4)
    return UnitSpectrogramModel(cfg)


def test_frame_features_positions_and_run_lengths():
    ids, feats = frame_features(torch.tensor([3, 1]), torch.tensor([1, 2]), r=2)
    assert ids.tolist() == [3, 3, 1, 1, 1, 1]
    assert feats[:, 0].tolist() == [0.0, 0.5, 0.0, 0.25, 0.5, 0.75]
    assert torch.allclose(feats[:, 1], torch.log(torch.tensor([1.0, 1, 2, 2, 2, 2])))


def test_config_rejects_bad_shapes():
    with pytest.raises(ValueError, match="multiple"):
        AcousticConfig(n_units=4, hop=100)
    with pytest.raises(ValueError, match="odd"):
        AcousticConfig(n_units=4, hop=HOP, kernel=4)


def test_synthesize_shapes_durations_and_errors():
    voc = AcousticVocoder(_tiny())
    units, durs = torch.tensor([0, 2, 1]), torch.tensor([2, 1, 3])
    assert voc.log_spectrogram(units, durs).shape == (N_FFT // 2 + 1, 6 * 4 + 1)
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


def test_save_load_round_trip(tmp_path):
    voc = AcousticVocoder(_tiny(), {"tokenizer": {"n_units": 4}})
    voc.save_pretrained(tmp_path / "v")
    back = AcousticVocoder.from_pretrained(tmp_path / "v")
    assert back.cfg == voc.cfg and back.info == voc.info
    units, durs = torch.tensor([1, 3, 0]), torch.tensor([1, 2, 1])
    assert np.array_equal(back.synthesize(units, durs), voc.synthesize(units, durs))
    assert torch.equal(back.predict_durations(units), voc.predict_durations(units))
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


def _train(seed: int, steps: int) -> tuple[UnitSpectrogramModel, list[dict[str, float]]]:
    model = _tiny(seed).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = collate(_tone_corpus(4, seed=1), 4, torch.hann_window(N_FFT))
    log = []
    for _ in range(steps):
        out = losses(model, batch)
        (out["spec_l1"] + out["dur_mse"]).backward()
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


def test_losses_go_down_on_tones():
    _, log = _train(seed=0, steps=40)
    assert log[-1]["spec_l1"] < 0.6 * log[0]["spec_l1"], (log[0], log[-1])
    assert log[-1]["dur_mse"] < 0.5 * log[0]["dur_mse"], (log[0], log[-1])


def test_training_on_one_voice_of_a_corpus(tmp_path):
    from test_vocoder_train import make_corpus  # tests/ is on sys.path

    from twistlm.vocoder.acoustic_train import AcousticTrainConfig, train_acoustic_vocoder

    audio, units = make_corpus(tmp_path, n_utts=10)
    (audio / "a" / "broken.wav").write_bytes(b"not audio")  # not in the shards: never read
    cfg = AcousticTrainConfig(
        str(audio), str(units), str(tmp_path / "run"), voice="a", dim=32, layers=2,
        batch_size=4, max_unit_frames=20, lr=3e-3, max_steps=40, val_utterances=2,
        eval_every=20, log_every=10, threads=1,
    )  # fmt: skip
    res = train_acoustic_vocoder(cfg)
    assert (
        res["voice"] == "a" and res["steps"] == 40 and res["n_utterances"] == 4
    )  # one of the 5 held out
    assert res["val_spec_l1"] < 0.7 * res["val_spec_l1_start"], res
    voc = AcousticVocoder.from_pretrained(tmp_path / "run" / "vocoder")
    assert voc.hop == 320 and voc.n_units == 8
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
