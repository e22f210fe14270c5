"""Vocoder model: textless-layout strict loading, output length, duration rule, save/load."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from twistlm.vocoder import Vocoder, generator_config
from twistlm.vocoder.duration import durations_from_log, expand_units
from twistlm.vocoder.hifigan import (
    CodeGenerator,
    from_textless_keys,
    to_textless_keys,
    upsample_plan,
)

# ---- an independent reference written from textlesslib's generator.py / resblock.py ------------
# (legacy torch.nn.utils.weight_norm, which is what produces the released `weight_g`/`weight_v` keys)


def _legacy_wn(m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.nn.utils.weight_norm(m)


class _RefResBlock(nn.Module):
    def __init__(self, ch, k, dil):
        super().__init__()
        pad = lambda d: (k * d - d) // 2  # noqa: E731
        self.convs1 = nn.ModuleList(
            _legacy_wn(nn.Conv1d(ch, ch, k, 1, dilation=d, padding=pad(d))) for d in dil
        )
        self.convs2 = nn.ModuleList(
            _legacy_wn(nn.Conv1d(ch, ch, k, 1, padding=pad(1))) for _ in dil
        )

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1)) + x
        return x


class _RefVarPred(nn.Module):
    def __init__(self, e, h, k, p):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv1d(e, h, k, padding=(k - 1) // 2), nn.ReLU())
        self.ln1 = nn.LayerNorm(h)
        self.conv2 = nn.Sequential(nn.Conv1d(h, h, k, padding=1), nn.ReLU())
        self.ln2 = nn.LayerNorm(h)
        self.proj = nn.Linear(h, 1)

    def forward(self, x):  # eval mode: dropout off
        x = self.ln1(self.conv1(x.transpose(1, 2)).transpose(1, 2))
        x = self.ln2(self.conv2(x.transpose(1, 2)).transpose(1, 2))
        return self.proj(x).squeeze(2)


class _RefCodeGenerator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c0 = cfg["upsample_initial_channel"]
        self.nk = len(cfg["resblock_kernel_sizes"])
        self.conv_pre = _legacy_wn(nn.Conv1d(cfg["model_in_dim"], c0, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            _legacy_wn(
                nn.ConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            )
            for i, (u, k) in enumerate(
                zip(cfg["upsample_rates"], cfg["upsample_kernel_sizes"], strict=True)
            )
        )
        self.resblocks = nn.ModuleList(
            _RefResBlock(c0 // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(
                cfg["resblock_kernel_sizes"], cfg["resblock_dilation_sizes"], strict=True
            )
        )
        self.conv_post = _legacy_wn(nn.Conv1d(c0 // 2 ** len(self.ups), 1, 7, 1, padding=3))
        self.dict = nn.Embedding(cfg["num_embeddings"], cfg["embedding_dim"])
        if cfg.get("multispkr"):
            self.spkr = nn.Embedding(cfg["num_speakers"], cfg["embedding_dim"])
        p = cfg.get("dur_predictor_params")
        self.dur_predictor = (
            _RefVarPred(
                *[
                    p[k]
                    for k in (
                        "encoder_embed_dim",
                        "var_pred_hidden_dim",
                        "var_pred_kernel_size",
                        "var_pred_dropout",
                    )
                ]
            )
            if p
            else None
        )

    def forward(self, code, spkr=None, dur_prediction=False):
        x = self.dict(code).transpose(1, 2)
        if dur_prediction:
            d = torch.clamp(
                torch.round(torch.exp(self.dur_predictor(x.transpose(1, 2))) - 1).long(), min=1
            )
            x = torch.repeat_interleave(x, d.view(-1), dim=2)
        if spkr is not None:
            x = torch.cat([x, self.spkr(spkr).transpose(1, 2).repeat(1, 1, x.shape[-1])], dim=1)
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            x = sum(self.resblocks[i * self.nk + j](x) for j in range(self.nk)) / self.nk
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


TINY = {
    "resblock": "1",
    "upsample_rates": [5, 4, 2],
    "upsample_kernel_sizes": [11, 8, 4],
    "upsample_initial_channel": 16,
    "resblock_kernel_sizes": [3, 5],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 2, 3]],
    "num_embeddings": 20,
    "embedding_dim": 8,
    "model_in_dim": 8,
    "dur_predictor_params": {
        "encoder_embed_dim": 8,
        "var_pred_hidden_dim": 8,
        "var_pred_kernel_size": 3,
        "var_pred_dropout": 0.5,
    },
}


def _ref_with_random_weights(cfg, seed=0):
    torch.manual_seed(seed)
    ref = _RefCodeGenerator(cfg).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(
                torch.randn_like(p) * (0.3 if "weight_v" in name else 0.1)
                + (0.5 if "weight_g" in name else 0)
            )
    return ref


def _write_textless(tmp_path, cfg, ref):
    ckpt, cfg_path = tmp_path / "g_00100000", tmp_path / "config.json"
    torch.save({"generator": ref.state_dict()}, ckpt)
    cfg_path.write_text(json.dumps(cfg))
    return ckpt, cfg_path


def test_textless_checkpoint_loads_strictly_and_matches_reference(tmp_path):
    ref = _ref_with_random_weights(TINY)
    keys = set(ref.state_dict())
    assert "resblocks.3.convs2.2.weight_g" in keys and "dur_predictor.conv1.0.weight" in keys
    ckpt, cfg_path = _write_textless(tmp_path, TINY, ref)
    voc = Vocoder.from_textless(ckpt, cfg_path)
    assert voc.hop == 40 and voc.n_units == 20 and voc.has_duration_predictor
    units = torch.tensor([3, 7, 7, 1, 19, 0, 4])
    with torch.no_grad():
        expected = ref(units.unsqueeze(0))[0, 0].numpy()
        expected_dur = ref(units.unsqueeze(0), dur_prediction=True)[0, 0].numpy()
    np.testing.assert_allclose(
        voc.synthesize(units, torch.ones(7, dtype=torch.long)), expected, atol=1e-5
    )
    np.testing.assert_allclose(voc.synthesize(units), expected_dur, atol=1e-5)


def test_textless_multispeaker_matches_reference(tmp_path):
    cfg = {**TINY, "multispkr": True, "num_speakers": 3, "model_in_dim": 16}
    del cfg["dur_predictor_params"]
    ref = _ref_with_random_weights(cfg, seed=1)
    voc = Vocoder.from_textless(*_write_textless(tmp_path, cfg, ref))
    units = torch.tensor([1, 2, 3, 4])
    with torch.no_grad():
        expected = ref(units.unsqueeze(0), spkr=torch.tensor([[2]]))[0, 0].numpy()
    np.testing.assert_allclose(voc.synthesize(units, speaker=2), expected, atol=1e-5)
    with pytest.raises(ValueError, match="speaker 5 out of range"):
        voc.synthesize(units, speaker=5)


def test_textless_mismatched_keys_are_an_error(tmp_path):
    ref = _ref_with_random_weights(TINY)
    state = ref.state_dict()
    state.pop("conv_post.bias")
    state["extra.weight"] = torch.zeros(1)
    ckpt, cfg_path = tmp_path / "g", tmp_path / "c.json"
    torch.save({"generator": state}, ckpt)
    cfg_path.write_text(json.dumps(TINY))
    with pytest.raises(
        ValueError, match=r"missing \['conv_post.bias'\], unexpected \['extra.weight'\]"
    ):
        Vocoder.from_textless(ckpt, cfg_path)


def test_key_renaming_round_trips():
    gen = CodeGenerator(TINY)
    sd = gen.state_dict()
    tl = to_textless_keys(sd)
    assert "conv_pre.weight_g" in tl and "ups.2.weight_v" in tl
    assert set(from_textless_keys(tl)) == set(sd)


@pytest.mark.parametrize("hop,size", [(320, "small"), (640, "small"), (320, "full"), (640, "tiny")])
def test_output_length_is_expanded_units_times_hop(hop, size):
    torch.manual_seed(0)
    cfg = generator_config(50, hop, "tiny" if size == "full" else size)
    if size == "full":  # full plan, tiny width (speed)
        cfg.update(upsample_rates=[5, 4, 4, 2, 2], upsample_kernel_sizes=[11, 8, 8, 4, 4])
    voc = Vocoder(CodeGenerator(cfg), cfg)
    assert voc.hop == hop
    units = torch.tensor([1, 5, 9, 2])
    durs = torch.tensor([1, 3, 2, 4])
    wav = voc.synthesize(units, durs)
    assert wav.dtype == np.float32 and wav.shape == (10 * hop,)
    assert np.all(np.abs(wav) <= 1)


def test_full_preset_matches_textless_50hz_plan():
    cfg = generator_config(100, 320, "full")
    assert cfg["upsample_rates"] == [5, 4, 4, 2, 2]
    assert cfg["upsample_kernel_sizes"] == [11, 8, 8, 4, 4]
    assert cfg["upsample_initial_channel"] == 512 and cfg["resblock_kernel_sizes"] == [3, 7, 11]
    assert upsample_plan(640) == ([5, 4, 4, 4, 2], [11, 8, 8, 8, 4])
    with pytest.raises(ValueError, match="prime factor"):
        upsample_plan(7 * 32)


def test_duration_rounding_rule():
    log_d = torch.log(torch.tensor([0.2, 1.4, 2.5, 3.49, 3.51, 6.0, 11.0]))
    # exp(log_d) - 1 = -0.8, 0.4, 1.5, 2.49, 2.51, 5, 10 -> round (half to even) -> clamp >= 1
    assert durations_from_log(log_d).tolist() == [1, 1, 2, 2, 3, 5, 10]


def test_predicted_durations_drive_expansion():
    torch.manual_seed(0)
    cfg = generator_config(30, 40 * 8, "tiny")
    voc = Vocoder(CodeGenerator(cfg), cfg)
    with torch.no_grad():  # make the predictor output a known per-unit log duration
        dp = voc.generator.dur_predictor
        dp.proj.weight.zero_()
        dp.proj.bias.fill_(float(np.log(1 + 3)))  # -> 3 frames per unit
    units = torch.tensor([4, 8, 15, 16, 23])
    assert voc.predict_durations(units).tolist() == [3] * 5
    wav = voc.synthesize(units)
    np.testing.assert_allclose(wav, voc.synthesize(units, torch.full((5,), 3)), atol=1e-6)
    assert wav.shape == (15 * voc.hop,)
    assert expand_units(units, torch.tensor([1, 2, 1, 1, 3])).tolist() == [
        4,
        8,
        8,
        15,
        16,
        23,
        23,
        23,
    ]


def test_save_and_load_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = generator_config(30, 320, "tiny", n_speakers=2)
    voc = Vocoder(
        CodeGenerator(cfg), cfg, {"tokenizer": {"name": "x", "hop": 320}, "speakers": ["a", "b"]}
    )
    voc.save_pretrained(tmp_path / "v")
    again = Vocoder.from_pretrained(tmp_path / "v")
    units = torch.tensor([0, 29, 3])
    np.testing.assert_array_equal(
        voc.synthesize(units, speaker=1), again.synthesize(units, speaker=1)
    )
    assert again.speakers == ["a", "b"] and again.info["tokenizer"]["hop"] == 320


def test_bad_inputs_raise_clear_errors(tmp_path):
    cfg = generator_config(10, 320, "tiny", duration_predictor=False)
    voc = Vocoder(CodeGenerator(cfg), cfg)
    with pytest.raises(ValueError, match=r"unit ids must lie in \[0, 10\)"):
        voc.synthesize(torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="2 units but 3 durations"):
        voc.synthesize(torch.tensor([1, 2]), torch.tensor([1, 1, 1]))
    with pytest.raises(ValueError, match="no duration predictor"):
        voc.predict_durations(torch.tensor([1]))
    assert voc.synthesize(torch.tensor([1, 2])).shape == (2 * 320,)  # no predictor: 1 frame each
    with pytest.raises(FileNotFoundError, match="not a twistlm vocoder dir"):
        Vocoder.from_pretrained(tmp_path)
