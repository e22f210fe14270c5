"""HuBERT features: hidden_states[layer] of a transformers ``HubertModel``, running only the
layers up to ``layer``.

``hidden_states[L]`` (transformers) is the output of encoder layer L, which is what fairseq's
``HubertModel.extract_features(..., output_layer=L)`` returns and what textlesslib / GSLM / TWIST
cluster (layer 6 of hubert-base-ls960, layer 11 of mhubert-base-25hz). The frame rate follows
from the checkpoint's conv strides: hop = prod(conv_stride) (320 -> 50 Hz, 640 -> 25 Hz).

Waveform normalisation: fairseq applies ``F.layer_norm(wav, wav.shape)`` only when the task
config says ``normalize`` (HuBERT base: no). It is a flag of the extractor, stored in the
tokenizer metadata; for a plain HF dir it is read from ``twistlm_hubert.json`` (written by
``twistlm import-hubert``) or the feature extractor's ``do_normalize``, default False.

Edge padding (``pad_samples``, default 0): SlamKit pads the waveform with ``pad_samples``
zeros on each side before HuBERT (slp-rl/slamkit,
``slamkit/feature_extractor/hubert_feature_extractor.py``: ``self.model(F.pad(wav, (40, 40)))``,
constant zeros, both presets of ``config/tokeniser/``); textlesslib / TWIST do not pad. With
40 = (400 - 320) / 2 the 400-sample receptive field of a 50 Hz frame is centred on its 320-sample
hop. The zeros are added after waveform normalisation (zeros outside the file). The value is part
of ``config()`` and therefore of a saved tokenizer; tokenizers saved without it load as 0.

Precision: ``fast=False`` is exact fp32. ``fast=True`` picks by hardware
(:func:`twistlm.hardware.bf16_is_fast`, or forced with ``fast_precision="bf16"|"int8"``): bf16
autocast where bf16 is native (GPUs, AMX CPUs), otherwise int8 dynamic quantization of the
transformer layers' Linear weights. Promise: features stay within a few percent of the fp32
features (relative L2 per frame; tested at <= 5% on a tiny model for both paths), so only frames
whose two nearest centroids are about that close can change unit. On CPUs the grouped positional
convolution stays in fp32 under bf16: oneDNN's bf16 grouped conv1d was measured returning wrong
results (relative error ~0.7-1.0) for small channel counts per group (<= 8, kernel >= 8) on an
AMX Xeon with torch 2.13, the same class of bug as pytorch/pytorch#163347 and #169688.

Long files: attention is global, so chunked extraction cannot equal whole-file extraction.
Files longer than ``chunk_seconds`` are cut into chunks that each see ``overlap_seconds`` of
extra audio on both sides; frames are taken from the chunk centre. Units within about
``overlap_seconds`` of a chunk join may differ from a whole-file pass.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from twistlm.audio import SAMPLE_RATE
from twistlm.tokenizer.chunks import chunk_ranges

HUBERT_META = "twistlm_hubert.json"  # {"normalize": bool, ...} written by the fairseq importer


def conv_geometry(kernels, strides) -> tuple[int, int]:
    """(hop, receptive field) in samples of a stack of unpadded 1-D convolutions."""
    hop = math.prod(int(s) for s in strides)
    rf = 1
    for k, s in zip(reversed(list(kernels)), reversed(list(strides)), strict=True):
        rf = (rf - 1) * int(s) + int(k)
    return hop, rf


class HubertFeatures(nn.Module):
    """Frames (n_frames, hidden_size) of ``hidden_states[layer]`` of a HuBERT model."""

    sample_rate = SAMPLE_RATE
    exact_chunks = False
    name = "hubert"

    def __init__(
        self,
        model: nn.Module,
        layer: int,
        normalize: bool = False,
        fast: bool = False,
        device: str | torch.device | None = None,
        chunk_seconds: float = 30.0,
        overlap_seconds: float = 1.0,
        source: str | None = None,
        pad_samples: int = 0,
        fast_precision: str = "auto",
    ):
        super().__init__()
        cfg = model.config
        if not 1 <= layer <= cfg.num_hidden_layers:
            raise ValueError(f"layer must be in 1..{cfg.num_hidden_layers}, got {layer}")
        if int(pad_samples) < 0:
            raise ValueError(f"pad_samples must be >= 0, got {pad_samples}")
        if fast_precision not in ("auto", "bf16", "int8"):
            raise ValueError(f"fast_precision must be auto, bf16 or int8, got {fast_precision!r}")
        self.layer = int(layer)
        self.pad_samples = int(pad_samples)
        self.normalize = bool(normalize)
        self.fast = bool(fast)
        self.chunk_seconds = float(chunk_seconds)
        self.overlap_seconds = float(overlap_seconds)
        self.source = source
        self.stable_layer_norm = bool(getattr(cfg, "do_stable_layer_norm", False))
        self.hop, self.receptive_field = conv_geometry(cfg.conv_kernel, cfg.conv_stride)
        self.frame_rate = SAMPLE_RATE / self.hop
        self.dim = int(cfg.hidden_size)
        # A private copy truncated to the layers we need (the caller's model is left intact).
        model = _truncated_copy(model, self.layer)
        conv = model.encoder.pos_conv_embed.conv
        self._weight_norm: dict[str, Tensor] = {}
        if hasattr(conv, "parametrizations"):  # fold weight norm once (same weight, no recompute)
            w = conv.parametrizations.weight
            self._weight_norm = {
                "original0": w.original0.detach(),
                "original1": w.original1.detach(),
            }
            torch.nn.utils.parametrize.remove_parametrizations(conv, "weight")
        self.model = model.requires_grad_(False)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.model.to(self.device)
        # fast mode: bf16 autocast where bf16 is native (GPU, AMX CPUs); elsewhere int8 dynamic
        # quantization of the transformer layers' Linear weights (fbgemm / x86 engine)
        self.fast_mode = "fp32"
        self._layers = self.model.encoder.layers
        if self.fast:
            from twistlm.hardware import bf16_is_fast

            if fast_precision == "bf16" or (fast_precision == "auto" and bf16_is_fast(self.device)):
                self.fast_mode = "bf16"
            else:
                self.fast_mode = "int8"
                self._layers = torch.ao.quantization.quantize_dynamic(
                    copy.deepcopy(self.model.encoder.layers), {nn.Linear}, dtype=torch.qint8
                )

    # ---- construction ----
    @classmethod
    def from_pretrained(
        cls,
        model: str | Path,
        layer: int | None = None,
        normalize: bool | None = None,
        hop: int | None = None,
        **kw: Any,
    ) -> HubertFeatures:
        """Load a HF ``HubertModel`` dir or hub name. ``hop`` (if given) is checked."""
        from transformers import HubertModel

        hf = HubertModel.from_pretrained(str(model))
        if layer is None:
            raise ValueError("hubert features need an explicit layer (or use a preset)")
        if normalize is None:
            normalize = read_normalize_flag(model)
        kw.pop("frame_rate", None)
        out = cls(hf, layer=layer, normalize=normalize, source=str(model), **kw)
        if hop is not None and int(hop) != out.hop:
            raise ValueError(
                f"{model}: conv strides give hop {out.hop} samples ({out.frame_rate:g} Hz), "
                f"but {hop} was expected; wrong checkpoint for this preset?"
            )
        return out

    def config(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "normalize": self.normalize,
            "hop": self.hop,
            "frame_rate": self.frame_rate,
            "fast": self.fast,
            "chunk_seconds": self.chunk_seconds,
            "overlap_seconds": self.overlap_seconds,
            "source": self.source,
            "pad_samples": self.pad_samples,
        }

    def save(self, path: str | Path) -> None:
        """Save the truncated encoder as a HF dir (+ ``twistlm_hubert.json``)."""
        from transformers import HubertModel

        from twistlm.io import write_json

        path = Path(path)
        model = HubertModel(copy.deepcopy(self.model.config)).eval()  # weight-normed layout
        state = {
            k: v
            for k, v in self.model.state_dict().items()
            if "pos_conv_embed.conv.weight" not in k
        }
        prefix = "encoder.pos_conv_embed.conv."
        if self._weight_norm:
            for name, t in self._weight_norm.items():
                state[prefix + "parametrizations.weight." + name] = t
        else:
            state[prefix + "weight"] = self.model.encoder.pos_conv_embed.conv.weight
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"cannot save HuBERT: missing {missing}, unexpected {unexpected}")
        model.save_pretrained(str(path))
        write_json(path / HUBERT_META, {"normalize": self.normalize, "layer": self.layer})

    # ---- interface ----
    def n_frames(self, n_samples: int) -> int:
        n = int(n_samples) + 2 * self.pad_samples
        if n < self.receptive_field:
            return 0
        return (n - self.receptive_field) // self.hop + 1

    @torch.inference_mode()
    def __call__(self, wav: Tensor) -> Tensor:
        """(T,) waveform -> (n_frames, dim) float32 (hidden_states[layer])."""
        wav = torch.as_tensor(wav, dtype=torch.float32).reshape(1, -1).to(self.device)
        if self.normalize:
            wav = nn.functional.layer_norm(wav, wav.shape)
        if self.pad_samples:
            wav = nn.functional.pad(wav, (self.pad_samples, self.pad_samples))
        return self._forward(wav)

    def features_stream(self, source, chunk_seconds: float | None = None) -> Iterator[Tensor]:
        """Frames of an :class:`AudioSource`; chunked with overlap beyond ``chunk_seconds``."""
        chunk_s = chunk_seconds or self.chunk_seconds
        n = self.n_frames(source.n_samples)
        if source.n_samples <= chunk_s * SAMPLE_RATE:
            yield self(torch.from_numpy(source.read(0, source.n_samples)))
            return
        chunk = max(1, int(round(chunk_s * self.frame_rate)))
        ov = int(math.ceil(self.overlap_seconds * self.frame_rate))
        scale = 1.0 / math.sqrt(source.var + 1e-5)  # F.layer_norm over the whole file
        pad = self.pad_samples
        n_padded = source.n_samples + 2 * pad  # sample q of the padded input = file sample q - pad
        for a, b in chunk_ranges(n, chunk):
            s0 = max(0, a - ov)
            # the first conv's GroupNorm spans the whole input: keep the file's tail when the
            # overlap reaches the end, so a chunk covering the whole file equals a whole pass
            stop = n_padded if b + ov >= n else (b + ov - 1) * self.hop + self.receptive_field
            start = s0 * self.hop
            seg = torch.from_numpy(source.read(start - pad, stop - pad)).reshape(1, -1)
            if self.normalize:
                seg = (seg - source.mean) * scale
            if pad:  # zeros where the padded range lies outside the file
                left = max(0, pad - start)
                right = max(0, stop - pad - source.n_samples)
                seg = nn.functional.pad(seg, (left, right))
            with torch.inference_mode():
                feats = self._forward(seg.float().to(self.device))
            yield feats[a - s0 : b - s0]

    def _forward(self, wav: Tensor) -> Tensor:
        """(1, T) -> (n_frames, dim): conv stack, projection, pos-conv, layers[:layer]."""
        m = self.model
        with self._precision():
            x = m.feature_extractor(wav).transpose(1, 2)  # (1, frames, conv_dim)
            x = m.feature_projection(x)
            if isinstance(x, tuple):  # transformers 4.x returns (hidden, normed)
                x = x[0]
            enc = m.encoder
            if self.fast_mode == "bf16" and self.device.type == "cpu":
                # oneDNN bf16 grouped conv1d can be wrong on CPU (see module docstring): fp32
                with torch.autocast("cpu", enabled=False):
                    x = x.float()
                    x = x + enc.pos_conv_embed(x)
            else:
                x = x + enc.pos_conv_embed(x)
            if not self.stable_layer_norm:
                x = enc.layer_norm(x)
            for layer in self._layers:
                x = layer(x)
                if isinstance(x, tuple):
                    x = x[0]
            # stable-layer-norm encoders (HuBERT large) apply enc.layer_norm only after the
            # full stack; hidden_states[L] (and fairseq output_layer=L) never include it.
        return x[0].float()

    def _precision(self):
        if self.fast_mode == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def _truncated_copy(model: nn.Module, layer: int) -> nn.Module:
    """A new HubertModel with encoder layers 1..layer of ``model`` (no masking embedding)."""
    from transformers import HubertModel

    cfg = copy.deepcopy(model.config)
    cfg.num_hidden_layers = layer
    cfg.mask_time_prob = 0.0
    cfg.mask_feature_prob = 0.0
    out = HubertModel(cfg).eval()
    state = {
        k: v
        for k, v in model.state_dict().items()
        if k in out.state_dict()  # drops layers > layer and masked_spec_embed
    }
    missing, _ = out.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"HuBERT weights missing: {missing[:5]}")
    return out


def read_normalize_flag(model: str | Path) -> bool:
    """Waveform-normalisation flag of a HF HuBERT dir (our meta file, else do_normalize)."""
    d = Path(str(model))
    for name, key in ((HUBERT_META, "normalize"), ("preprocessor_config.json", "do_normalize")):
        if (d / name).is_file():
            return bool(json.loads((d / name).read_text()).get(key, False))
    return False
