"""fairseq HuBERT importer: weights written under fairseq's key names / config objects -> HF model
with identical features; unsafe pickles refused; k-means CLI import refused without opt-in."""

from __future__ import annotations

import argparse
import enum
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from transformers import HubertModel

from twistlm.cli import main
from twistlm.tokenizer.fairseq_import import (
    import_fairseq_hubert,
    load_checkpoint,
    parse_conv_layers,
)
from twistlm.tokenizer.hubert import HubertFeatures
from twistlm.tokenizer.kmeans import UnsafeFileError, load_centroids

HF_TO_FAIRSEQ_LAYER = {
    "attention.k_proj": "self_attn.k_proj",
    "attention.v_proj": "self_attn.v_proj",
    "attention.q_proj": "self_attn.q_proj",
    "attention.out_proj": "self_attn.out_proj",
    "layer_norm": "self_attn_layer_norm",
    "feed_forward.intermediate_dense": "fc1",
    "feed_forward.output_dense": "fc2",
    "final_layer_norm": "final_layer_norm",
}


def to_fairseq_key(k: str) -> str:
    """HF key -> the name fairseq's HubertModel gives the same tensor (written out by hand)."""
    p = k.split(".")
    if k == "masked_spec_embed":
        return "mask_emb"
    if k.startswith("feature_extractor.conv_layers."):
        i, mod, what = p[2], p[3], p[-1]
        return f"feature_extractor.conv_layers.{i}.{'0' if mod == 'conv' else '2'}.{what}"
    if k.startswith("feature_projection.layer_norm."):
        return "layer_norm." + p[-1]
    if k.startswith("feature_projection.projection."):
        return "post_extract_proj." + p[-1]
    if k.startswith("encoder.pos_conv_embed.conv."):
        return {
            "bias": "encoder.pos_conv.0.bias",
            "original0": "encoder.pos_conv.0.weight_g",
            "original1": "encoder.pos_conv.0.weight_v",
        }[p[-1]]
    if k.startswith("encoder.layers."):
        return f"encoder.layers.{p[2]}.{HF_TO_FAIRSEQ_LAYER['.'.join(p[3:-1])]}.{p[-1]}"
    assert k.startswith("encoder.layer_norm."), k
    return k


CONV_50HZ = "[(16,10,5)] + [(16,3,2)] * 4 + [(16,2,2)] * 2"
CONV_25HZ = CONV_50HZ + " + [(16,2,2)]"


def fake_modules():
    """Config classes under fairseq/omegaconf module names (as a real checkpoint references them)."""
    fs = types.ModuleType("fairseq.dataclass.constants")
    Choices = enum.Enum("Choices", {"default": "default", "layer_norm": "layer_norm"})
    Choices.__module__, Choices.__qualname__ = fs.__name__, "Choices"
    fs.Choices = Choices
    om = types.ModuleType("omegaconf.dictconfig")

    class DictConfig:
        def __init__(self, content):
            self._content = content

        def __getstate__(self):
            return {"_content": self._content, "_metadata": None}

    DictConfig.__module__, DictConfig.__qualname__ = om.__name__, "DictConfig"
    om.DictConfig = DictConfig
    return {
        "fairseq": types.ModuleType("fairseq"),
        "fairseq.dataclass": types.ModuleType("fairseq.dataclass"),
        fs.__name__: fs,
        "omegaconf": types.ModuleType("omegaconf"),
        om.__name__: om,
    }


def write_fairseq_checkpoint(path, hf: HubertModel, conv: str, normalize: bool, style: str):
    mods = fake_modules()
    sys.modules.update(mods)
    try:
        c = hf.config
        model_cfg = {
            "_name": "hubert",
            "extractor_mode": mods["fairseq.dataclass.constants"].Choices["default"],
            "encoder_layers": c.num_hidden_layers,
            "encoder_embed_dim": c.hidden_size,
            "encoder_ffn_embed_dim": c.intermediate_size,
            "encoder_attention_heads": c.num_attention_heads,
            "activation_fn": "gelu",
            "conv_feature_layers": conv,
            "conv_pos": c.num_conv_pos_embeddings,
            "conv_pos_groups": c.num_conv_pos_embedding_groups,
            "conv_bias": False,
            "layer_norm_first": False,
        }
        state = {to_fairseq_key(k): v.clone() for k, v in hf.state_dict().items()}
        state["label_embs_concat"] = torch.randn(10, 4)  # pretraining-only tensors are skipped
        state["final_proj.weight"] = torch.randn(4, c.hidden_size)
        if style == "cfg":
            DictConfig = mods["omegaconf.dictconfig"].DictConfig
            ckpt = {
                "cfg": {"model": DictConfig(model_cfg), "task": {"normalize": normalize}},
                "args": None,
                "model": state,
            }
        else:
            model_cfg["extractor_mode"] = "default"
            ckpt = {"args": argparse.Namespace(**model_cfg, normalize=normalize), "model": state}
        torch.save(ckpt, path)
    finally:
        for name in mods:
            sys.modules.pop(name, None)


@pytest.mark.parametrize(
    "hz,conv,style,normalize", [(50, CONV_50HZ, "cfg", False), (25, CONV_25HZ, "args", True)]
)
def test_fairseq_import_reproduces_features(tmp_path, hz, conv, style, normalize, tiny_hubert):
    hf = tiny_hubert(layers=3, conv_layers=parse_conv_layers(conv))
    path = tmp_path / "hubert.pt"
    write_fairseq_checkpoint(path, hf, conv, normalize, style)
    with pytest.raises(pickle.UnpicklingError):  # plain weights_only refuses config objects
        torch.load(path, weights_only=True)
    model, norm = import_fairseq_hubert(path)
    assert norm is normalize
    wav = torch.randn(12345) * 0.1
    for layer in (1, 3):
        a = HubertFeatures(hf, layer=layer)(wav)
        b = HubertFeatures(model, layer=layer)(wav)
        assert a.shape[0] == HubertFeatures(model, layer=layer).n_frames(12345)
        assert torch.equal(a, b)
    assert HubertFeatures(model, layer=1).hop == (320 if hz == 50 else 640)
    # CLI: HF dir + normalize flag, then usable as an extractor with that flag
    assert main(["import-hubert", str(path), "--out", str(tmp_path / "hf")]) == 0
    fx = HubertFeatures.from_pretrained(tmp_path / "hf", layer=2)
    assert fx.normalize is normalize and fx.frame_rate == hz
    ref = HubertFeatures(hf, layer=2, normalize=normalize)(wav)
    assert torch.equal(fx(wav), ref)


def test_conv_spec_parser_refuses_code():
    assert parse_conv_layers(CONV_25HZ)[-1] == (16, 2, 2) and len(parse_conv_layers(CONV_25HZ)) == 8
    with pytest.raises(ValueError):
        parse_conv_layers("__import__('os').getcwd()")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unknown_pickled_objects_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": Evil()}, path)
    with pytest.raises(UnsafeFileError, match="trust_pickle"):
        load_checkpoint(path)


def test_import_kmeans_cli_refuses_without_flag(tmp_path, capsys):
    import joblib
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=4, n_init=1, random_state=0).fit(
        np.random.default_rng(0).normal(size=(40, 5))
    )
    joblib.dump(km, tmp_path / "km.bin")
    out = tmp_path / "km.safetensors"
    assert main(["import-kmeans", str(tmp_path / "km.bin"), "--out", str(out)]) == 2
    assert not out.exists() and "trust" in capsys.readouterr().out
    assert (
        main(["import-kmeans", str(tmp_path / "km.bin"), "--out", str(out), "--trust-pickle"]) == 0
    )
    c, _ = load_centroids(out)
    np.testing.assert_array_equal(c.numpy(), km.cluster_centers_.astype(np.float32))
