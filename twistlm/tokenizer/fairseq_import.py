"""fairseq HuBERT checkpoint (.pt, as textlesslib downloads it) -> transformers ``HubertModel``,
without importing fairseq.

Key mapping follows transformers' ``convert_hubert_original_pytorch_checkpoint_to_pytorch.py``
and fairseq's ``HubertModel`` / ``ConvFeatureExtractionModel`` / ``TransformerEncoder`` module
names. The config comes from the checkpoint's ``cfg["model"]`` (hydra-era) or ``args``
(argparse-era); ``conv_feature_layers`` (e.g. ``"[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"``,
plus one more ``(512,2,2)`` for the 25 Hz mHuBERT) is parsed by a tiny arithmetic evaluator, never
``eval``. ``task.normalize`` is kept as the waveform-normalisation flag.

Safe loading: fairseq checkpoints hold their config as ``argparse.Namespace`` / omegaconf / fairseq
enum objects, which ``torch.load(weights_only=True)`` refuses. We list the globals the pickle
needs (``torch.serialization.get_unsafe_globals_in_checkpoint``); if they are only config classes
(argparse, omegaconf, fairseq, enum, typing, plain builtins) we load with ``weights_only=True``
and inert stand-ins for those classes (they only record their arguments/state; no code of theirs
runs). Anything else is refused unless ``trust_pickle=True``.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import copyreg
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from twistlm.tokenizer.kmeans import UnsafeFileError


# ---------------------------------------------------------------- safe loading
class ConfigStub:
    """Inert stand-in for a config class found in a checkpoint (records args and state)."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._args, self._kwargs, self._state = args, kwargs, None

    def __new__(cls, *args: Any, **kwargs: Any):
        obj = super().__new__(cls)
        obj._args, obj._kwargs, obj._state = args, kwargs, None
        return obj

    def __setstate__(self, state: Any) -> None:
        self._state = state


_CONFIG_PREFIXES = ("fairseq.", "omegaconf.", "hydra.", "enum.", "typing.")
_SAFE_BUILTINS = {"object", "dict", "list", "tuple", "set", "str", "int", "float", "bool", "bytes"}


def _allowed_global(name: str) -> bool:
    mod, _, attr = name.rpartition(".")
    return (
        name == "argparse.Namespace"
        or name == "copyreg._reconstructor"
        or (mod == "builtins" and attr in _SAFE_BUILTINS)
        or name.startswith(_CONFIG_PREFIXES)
    )


def _global_object(name: str) -> Any:
    mod, _, attr = name.rpartition(".")
    if name == "argparse.Namespace":
        return argparse.Namespace
    if name == "copyreg._reconstructor":
        return copyreg._reconstructor
    if mod == "builtins":
        return getattr(builtins, attr)
    return type(attr, (ConfigStub,), {"__module__": mod, "__qualname__": attr})


def load_checkpoint(path: str | Path, trust_pickle: bool = False) -> dict[str, Any]:
    """Load a fairseq checkpoint dict without executing code from the file (see module doc)."""
    import pickle

    path = str(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    blocked = [n for n in names if not _allowed_global(n)]
    if blocked:
        if not trust_pickle:
            raise UnsafeFileError(
                f"{path}: the checkpoint needs classes beyond plain config objects "
                f"({', '.join(blocked[:8])}); loading it would run their code. Pass "
                "trust_pickle=True (CLI: --trust-pickle) only for a file you trust."
            )
        return torch.load(path, map_location="cpu", weights_only=False)
    with torch.serialization.safe_globals([_global_object(n) for n in names]):
        return torch.load(path, map_location="cpu", weights_only=True)


def plain(obj: Any) -> Any:
    """Config objects (Namespace, omegaconf containers/nodes, enums) -> plain Python values."""
    if isinstance(obj, argparse.Namespace):
        return {k: plain(v) for k, v in vars(obj).items()}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, ConfigStub):
        st = obj._state
        if isinstance(st, tuple) and len(st) == 2 and isinstance(st[1], dict):
            st = {**(st[0] or {}), **st[1]}
        if isinstance(st, dict):
            if "_content" in st:  # omegaconf DictConfig / ListConfig
                return plain(st["_content"])
            if "_val" in st:  # omegaconf value node
                return plain(st["_val"])
            return {k: plain(v) for k, v in st.items() if not k.startswith("_")}
        if len(obj._args) == 1:  # enum member: Cls(value)
            return plain(obj._args[0])
        return None
    if hasattr(obj, "value") and type(obj).__module__ == "enum":
        return obj.value
    return obj


# ---------------------------------------------------------------- config
def parse_conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """fairseq ``conv_feature_layers`` string -> [(dim, kernel, stride), ...] (no eval)."""

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            a, b = ev(node.left), ev(node.right)
            return a + b if isinstance(node.op, ast.Add) else a * b
        raise ValueError(f"unsupported syntax in conv_feature_layers: {ast.dump(node)}")

    layers = ev(ast.parse(spec, mode="eval"))
    if not isinstance(layers, list) or not all(
        isinstance(t, tuple) and len(t) == 3 for t in layers
    ):
        raise ValueError(f"conv_feature_layers {spec!r} is not a list of (dim, kernel, stride)")
    return [tuple(int(v) for v in t) for t in layers]


def fairseq_configs(ckpt: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config, task config) as plain dicts from ``cfg`` or ``args``."""
    cfg = plain(ckpt.get("cfg"))
    if isinstance(cfg, dict) and cfg.get("model"):
        return dict(cfg["model"]), dict(cfg.get("task") or {})
    args = plain(ckpt.get("args"))
    if isinstance(args, dict) and args:
        return args, args
    raise ValueError("checkpoint has neither cfg.model nor args: not a fairseq checkpoint?")


DEFAULT_CONV = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"


def hf_config_from_fairseq(model_cfg: dict[str, Any]):
    """transformers ``HubertConfig`` equivalent to a fairseq HuBERT model config."""
    from transformers import HubertConfig

    conv = parse_conv_layers(model_cfg.get("conv_feature_layers") or DEFAULT_CONV)
    mode = model_cfg.get("extractor_mode", "default")
    return HubertConfig(
        hidden_size=int(model_cfg.get("encoder_embed_dim", 768)),
        num_hidden_layers=int(model_cfg.get("encoder_layers", 12)),
        num_attention_heads=int(model_cfg.get("encoder_attention_heads", 12)),
        intermediate_size=int(model_cfg.get("encoder_ffn_embed_dim", 3072)),
        hidden_act=model_cfg.get("activation_fn", "gelu"),
        conv_dim=[c[0] for c in conv],
        conv_kernel=[c[1] for c in conv],
        conv_stride=[c[2] for c in conv],
        conv_bias=bool(model_cfg.get("conv_bias", False)),
        feat_extract_norm="layer" if mode == "layer_norm" else "group",
        num_conv_pos_embeddings=int(model_cfg.get("conv_pos", 128)),
        num_conv_pos_embedding_groups=int(model_cfg.get("conv_pos_groups", 16)),
        do_stable_layer_norm=bool(model_cfg.get("layer_norm_first", False)),
        feat_proj_layer_norm=True,
        layer_norm_eps=1e-5,
    )


# ---------------------------------------------------------------- weights
_LAYER_MAP = {
    "self_attn.k_proj": "attention.k_proj",
    "self_attn.v_proj": "attention.v_proj",
    "self_attn.q_proj": "attention.q_proj",
    "self_attn.out_proj": "attention.out_proj",
    "self_attn_layer_norm": "layer_norm",
    "fc1": "feed_forward.intermediate_dense",
    "fc2": "feed_forward.output_dense",
    "final_layer_norm": "final_layer_norm",
}
_IGNORED = ("label_embs_concat", "final_proj.", "label_embs", "untie_final_proj")


def map_key(key: str, pos_conv_param: bool = True) -> str | None:
    """fairseq HuBERT state-dict key -> HF HubertModel key (None: not part of HubertModel)."""
    for p in ("w2v_encoder.w2v_model.", "w2v_model."):  # fine-tuned wrappers
        if key.startswith(p):
            key = key[len(p) :]
    if key.startswith(_IGNORED):
        return None
    if key == "mask_emb":
        return "masked_spec_embed"
    if key.startswith("post_extract_proj."):
        return "feature_projection.projection." + key.split(".", 1)[1]
    if key.startswith("layer_norm."):
        return "feature_projection.layer_norm." + key.split(".", 1)[1]
    if key.startswith("encoder.layer_norm."):
        return key
    m = re.fullmatch(
        r"feature_extractor\.conv_layers\.(\d+)\.(\d+)(?:\.(\d+))?\.(weight|bias)", key
    )
    if m:
        i, t, sub, what = m.groups()
        if t == "0":
            return f"feature_extractor.conv_layers.{i}.conv.{what}"
        if t == "2" and sub in (
            None,
            "1",
        ):  # GroupNorm (default mode) / LayerNorm (layer_norm mode)
            return f"feature_extractor.conv_layers.{i}.layer_norm.{what}"
        return None
    m = re.fullmatch(r"encoder\.pos_conv\.0\.(weight_g|weight_v|bias|weight)", key)
    if m:
        what = m.group(1)
        if pos_conv_param and what in ("weight_g", "weight_v"):
            what = "parametrizations.weight." + ("original0" if what == "weight_g" else "original1")
        return "encoder.pos_conv_embed.conv." + what
    m = re.fullmatch(r"encoder\.pos_conv\.0\.parametrizations\.weight\.(original[01])", key)
    if m:
        return "encoder.pos_conv_embed.conv.parametrizations.weight." + m.group(1)
    m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key)
    if m and m.group(2) in _LAYER_MAP:
        return f"encoder.layers.{m.group(1)}.{_LAYER_MAP[m.group(2)]}.{m.group(3)}"
    return None


def convert_state_dict(state: dict[str, Tensor], hf_model) -> dict[str, Tensor]:
    """Map and shape-check a fairseq state dict onto ``hf_model``'s keys (all must be covered)."""
    target = hf_model.state_dict()
    out, unused = {}, []
    for k, v in state.items():
        hk = map_key(k)
        if hk is None:
            unused.append(k)
            continue
        if hk not in target:
            if hk == "masked_spec_embed":
                continue
            raise KeyError(f"fairseq key {k} -> {hk}, which the HF model does not have")
        if tuple(target[hk].shape) != tuple(v.shape):
            raise ValueError(f"{k}: shape {tuple(v.shape)} != HF {hk} {tuple(target[hk].shape)}")
        out[hk] = v
    missing = [k for k in target if k not in out and k != "masked_spec_embed"]
    if missing:
        raise KeyError(f"fairseq checkpoint lacks weights for {missing[:6]} ({len(missing)} total)")
    return out


def import_fairseq_hubert(path: str | Path, trust_pickle: bool = False):
    """fairseq HuBERT ``.pt`` -> (HF ``HubertModel`` in eval mode, normalize flag)."""
    from transformers import HubertModel

    ckpt = load_checkpoint(path, trust_pickle=trust_pickle)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{path}: no 'model' state dict (keys: {list(ckpt)[:8]})")
    model_cfg, task_cfg = fairseq_configs(ckpt)
    config = hf_config_from_fairseq(model_cfg)
    model = HubertModel(config).eval()
    state = convert_state_dict(ckpt["model"], model)
    model.load_state_dict(state, strict=False)
    return model, bool(task_cfg.get("normalize", False))


def save_imported(model, normalize: bool, out: str | Path, source: str | None = None) -> None:
    """Write a HF dir + ``twistlm_hubert.json`` (normalize flag) usable by ``--model``."""
    from twistlm.io import write_json
    from twistlm.tokenizer.hubert import HUBERT_META, conv_geometry

    out = Path(out)
    model.save_pretrained(str(out))
    hop, rf = conv_geometry(model.config.conv_kernel, model.config.conv_stride)
    write_json(
        out / HUBERT_META,
        {"normalize": normalize, "hop": hop, "frame_rate": 16000 / hop, "source": source},
    )
