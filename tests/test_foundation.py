"""Foundation: config tree round-trip and overrides, unit vocab conventions, audio checks, CLI."""

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from twistlm.audio import AudioError, check_waveform, load_audio, to_mono_16k, write_wav
from twistlm.config import ConfigError, dump_yaml, from_dict, load_config, to_dict
from twistlm.lm.vocab import UnitVocab


@dataclass(frozen=True)
class _Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)


@dataclass(frozen=True)
class _Cfg:
    name: str = "x"
    steps: int = 10
    layers: int | None = None
    optim: _Optim = field(default_factory=_Optim)


def test_config_yaml_roundtrip_and_overrides(tmp_path):
    cfg = _Cfg(name="run", layers=6)
    p = tmp_path / "c.yaml"
    p.write_text(dump_yaml(cfg))
    assert load_config(_Cfg, p) == cfg
    cfg2 = load_config(_Cfg, p, ["optim.lr=3e-4", "steps=5", "layers=null"])
    assert cfg2.optim.lr == pytest.approx(3e-4) and cfg2.steps == 5 and cfg2.layers is None
    assert to_dict(cfg2)["optim"]["betas"] == [0.9, 0.95]


def test_config_rejects_unknown_and_bad_types(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(_Cfg, {"stepz": 3})
    with pytest.raises(ConfigError):
        from_dict(_Cfg, {"steps": 1.5})
    with pytest.raises(ConfigError, match="key=value"):
        load_config(_Cfg, None, ["steps"])


@pytest.mark.parametrize(
    "vocab,ids",
    [
        (UnitVocab.twistlm(5), [1, 3, 7, 5]),
        (UnitVocab.slamkit(5), [1, 2, 6, 4]),
        (UnitVocab.twist(5, offset=4, pad_id=1, vocab_size=50), [4, 8, 6]),
    ],
)
def test_vocab_conventions_roundtrip(vocab, ids):
    units = torch.tensor([0, 4, 2])
    out = vocab.utterance_ids(units)
    assert out.tolist() == ids
    assert vocab.ids_to_units(out).tolist() == units.tolist()
    assert UnitVocab.from_dict(vocab.to_dict()) == vocab


def test_vocab_rejects_out_of_range_units():
    with pytest.raises(ValueError, match="unit ids"):
        UnitVocab.twistlm(5).units_to_ids(torch.tensor([5]))


def test_audio_validation_and_resample(tmp_path):
    with pytest.raises(AudioError, match="empty"):
        check_waveform(np.zeros(0, np.float32))
    with pytest.raises(AudioError, match="NaN"):
        check_waveform(np.array([0.1, np.nan] * 400, np.float32))
    with pytest.raises(AudioError, match="all zeros"):
        check_waveform(np.zeros(1600, np.float32))
    stereo = np.stack([np.sin(np.arange(8000) / 5), np.sin(np.arange(8000) / 5)], 1)
    mono = to_mono_16k(stereo, 8000)
    assert mono.shape == (16000,) and mono.dtype == np.float32
    p = tmp_path / "a.wav"
    write_wav(p, mono)
    assert load_audio(p).shape == (16000,)
    bad = tmp_path / "t.wav"
    bad.write_text("not audio")
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(bad)


def test_cli_help_lists_commands(capsys):
    from twistlm.cli import main

    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("tokenize", "train", "eval", "quickstart"):
        assert name in out
