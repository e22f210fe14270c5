"""SpeechLM: a HF causal LM over unit ids + the UnitVocab that maps units to ids + metadata.

Three on-disk layouts load through :meth:`SpeechLM.from_pretrained`:

- ``twistlm`` (ours): a plain HF dir (``AutoModelForCausalLM`` loads it) plus ``twistlm.json``
  ``{"format": "twistlm", "version": 1, "vocab": UnitVocab.to_dict(), "meta": {...}}``.
  This module is the only writer of that file (:func:`write_metadata`, :func:`update_metadata`).
- ``twist`` (slprl/TWIST-350M/1.3B/7B): a plain HF OPT/LLaMA dir whose ``config.json`` has
  ``offset`` (unit id = unit + offset) and ``pad_token_id``; units are fed bare, without
  BOS/EOS. Source: the textlesslib TWIST example (``generate_with_offset`` adds
  ``lm_model.config.offset`` to the units before ``generate`` and subtracts it after).
  ``n_units`` is ``config.n_units`` when present. Without it (a checkpoint that kept its text
  vocabulary) it is only bounded by ``vocab_size - offset``: loading records
  ``meta["n_units_inferred"] = True`` and the first tokenizer the model is checked against sets
  the real count (:meth:`SpeechLM.adopt_n_units`), so sampling never leaves the unit range.
- ``slamkit`` (slp-rl/slamkit ``slamkit/model/unit_lm.py``): ``config.json`` of a ``UnitLMConfig``
  (``model_type: speech_language_model``, ``base_config`` = the wrapped HF config as a dict,
  ``vocab_size`` = n_units + 2, pad 0, ``<S>`` 1 as BOS and EOS) and weights of ``UnitLM``, whose
  HF causal LM sits under the attribute ``lm`` (state-dict keys ``lm.*``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from twistlm.lm.vocab import Convention, UnitVocab

META_FILE = "twistlm.json"
FORMAT_VERSION = 1


def detect_convention(path: str | Path) -> Convention:
    """Which layout a model dir has (see the module docstring)."""
    path = Path(path)
    if (path / META_FILE).exists():
        return "twistlm"
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise FileNotFoundError(f"{path}: not a model dir (no {META_FILE} and no config.json)")
    cfg = json.loads(cfg_file.read_text())
    if cfg.get("model_type") == "speech_language_model" or "base_config" in cfg:
        return "slamkit"
    if "offset" in cfg:
        return "twist"
    raise ValueError(
        f"{path}: cannot tell the unit convention: no {META_FILE}, no config.offset (TWIST), "
        "no base_config (SlamKit). Pass convention= explicitly."
    )


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``twistlm.json`` of a model dir (checked: our format, a version we can read)."""
    meta_path = Path(path) / META_FILE
    info = json.loads(meta_path.read_text())
    if (
        not isinstance(info, dict)
        or info.get("format") != "twistlm"
        or info.get("version", 0) > FORMAT_VERSION
    ):
        raise ValueError(f"{meta_path}: unsupported format/version {info}")
    return info


def write_metadata(path: str | Path, vocab: UnitVocab, meta: dict[str, Any]) -> None:
    """Atomically write a model dir's ``twistlm.json`` (vocab + free-form ``meta``).

    ``meta["path"]`` is not written: it is where a loaded model came from, set on every load,
    so a moved dir never carries a stale one.
    """
    from twistlm.io import write_json

    meta = {k: v for k, v in meta.items() if k != "path"}
    write_json(
        Path(path) / META_FILE,
        {"format": "twistlm", "version": FORMAT_VERSION, "vocab": vocab.to_dict(), "meta": meta},
    )


def update_metadata(path: str | Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Set top-level keys of the ``meta`` of an existing twistlm model dir, atomically.

    Each key of ``updates`` replaces that key of ``meta`` (a ``None`` value removes it); the
    vocab and the other keys stay. Not locked: two concurrent updates of one dir race.
    Returns the new ``meta``.
    """
    info = read_metadata(path)
    meta = dict(info.get("meta") or {})
    for k, v in updates.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    write_metadata(path, UnitVocab.from_dict(info["vocab"]), meta)
    return meta


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Weights of a HF-style dir: safetensors (single or sharded) or a weights-only torch .bin."""
    from safetensors.torch import load_file

    single = path / "model.safetensors"
    if single.exists():
        return load_file(str(single))
    index = path / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        sd: dict[str, torch.Tensor] = {}
        for f in files:
            sd.update(load_file(str(path / f)))
        return sd
    binf = path / "pytorch_model.bin"
    if binf.exists():
        return torch.load(binf, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{path}: no model.safetensors / pytorch_model.bin")


class SpeechLM:
    """A causal LM over unit ids with its vocabulary convention and provenance.

    Attributes:
        model: the HF causal LM (``model(input_ids).logits`` is (B, T, vocab_size)).
        vocab: how units map to ids (offset, pad/bos/eos).
        meta: n_units, tokenizer info (name, layer, frame_rate, k, path), init, source LM,
            n_layers kept, ... (free-form JSON-safe dict).
    """

    def __init__(
        self, model: PreTrainedModel, vocab: UnitVocab, meta: dict[str, Any] | None = None
    ):
        if model.get_input_embeddings().weight.shape[0] < vocab.vocab_size:
            raise ValueError(
                f"model has {model.get_input_embeddings().weight.shape[0]} embedding rows, "
                f"vocab needs {vocab.vocab_size}"
            )
        self.model = model
        self.vocab = vocab
        self.meta = dict(meta or {})
        self.meta.setdefault("n_units", vocab.n_units)

    # ---- conveniences ----
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_positions(self) -> int | None:
        """Longest sequence (in ids) the model's position embeddings allow, if bounded."""
        n = getattr(self.model.config, "max_position_embeddings", None)
        return None if n is None else int(n)

    def to(self, device=None, dtype=None) -> SpeechLM:
        self.model.to(device=device, dtype=dtype)
        return self

    def eval(self) -> SpeechLM:
        self.model.eval()
        return self

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return (
            f"SpeechLM({type(self.model).__name__}, {n / 1e6:.1f}M params, "
            f"{self.vocab.convention}, n_units={self.vocab.n_units})"
        )

    def adopt_n_units(
        self, n_units: int, source: str = "tokenizer", tokenizer_path: str | Path | None = None
    ) -> bool:
        """Take the unit count from the tokenizer when the checkpoint did not record one.

        Only a count that was inferred at load time (``meta["n_units_inferred"]``, a TWIST dir
        without ``config.n_units``) changes, once; a recorded count is left alone (the caller
        compares it and refuses a mismatch). Returns whether the count changed.

        Raises:
            ValueError: the tokenizer has more units than the model has unit rows.
        """
        n_units = int(n_units)
        if not self.meta.get("n_units_inferred") or n_units == self.vocab.n_units:
            return False
        room = self.vocab.vocab_size - self.vocab.offset
        if not 0 < n_units <= room:
            where = f" {tokenizer_path}" if tokenizer_path else ""
            raise ValueError(
                f"{source}{where} has {n_units} units but the model "
                f"{self.meta.get('path', '<in memory>')} has only {room} rows after its unit "
                f"offset {self.vocab.offset}"
            )
        self.vocab = self.vocab.with_n_units(n_units)
        self.meta["n_units"] = n_units
        self.meta["n_units_inferred"] = False
        where = f" {tokenizer_path}" if tokenizer_path else ""
        self.meta["n_units_source"] = f"{source}{where}"
        return True

    # ---- I/O ----
    def save_pretrained(
        self, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None
    ) -> None:
        """Write a plain HF dir (AutoModelForCausalLM loads it) plus ``twistlm.json``.

        The HF config carries pad/bos/eos ids so HF ``generate`` works on the dir alone.
        ``state_dict`` replaces the model's own weights (a full state gathered from shards).
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = self.model.config
        cfg.pad_token_id = self.vocab.pad_id
        cfg.bos_token_id = self.vocab.bos_id
        cfg.eos_token_id = self.vocab.eos_id
        self.model.save_pretrained(path, state_dict=state_dict, safe_serialization=True)
        write_metadata(path, self.vocab, self.meta)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        convention: Convention | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> SpeechLM:
        """Load ours, a TWIST dir or a SlamKit UnitLM dir (auto-detected unless ``convention``)."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: model dir not found")
        convention = convention or detect_convention(path)
        dtype = dtype or torch.float32
        if convention == "twistlm":
            info = read_metadata(path)
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
            lm = cls(model, UnitVocab.from_dict(info["vocab"]), info.get("meta", {}))
        elif convention == "twist":
            lm = cls._load_twist(path, dtype)
        elif convention == "slamkit":
            lm = cls._load_slamkit(path, dtype)
        else:
            raise ValueError(f"unknown convention {convention!r}")
        lm.meta["path"] = str(path)  # where it was loaded from (never read from the file)
        lm.model.eval()
        return lm.to(device)

    @classmethod
    def _load_twist(cls, path: Path, dtype: torch.dtype) -> SpeechLM:
        cfg = json.loads((path / "config.json").read_text())
        if "offset" not in cfg:
            raise ValueError(f"{path}/config.json has no `offset`: not a TWIST checkpoint")
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
        offset = int(cfg["offset"])
        vocab_size = int(model.get_input_embeddings().weight.shape[0])
        meta: dict[str, Any] = {"init": "released TWIST checkpoint", "source_format": "twist"}
        if cfg.get("n_units"):
            n_units = int(cfg["n_units"])
            meta.update(n_units_inferred=False, n_units_source="config.json n_units")
        else:  # an upper bound only: the tokenizer sets it (adopt_n_units)
            n_units = vocab_size - offset
            meta.update(n_units_inferred=True, n_units_source="vocab_size - offset")
        pad = cfg.get("pad_token_id")
        vocab = UnitVocab.twist(n_units, offset, int(pad if pad is not None else 0), vocab_size)
        return cls(model, vocab, meta)

    @classmethod
    def _load_slamkit(cls, path: Path, dtype: torch.dtype) -> SpeechLM:
        cfg = json.loads((path / "config.json").read_text())
        base = dict(cfg["base_config"])
        model_type = base.pop("model_type")
        for k in ("_name_or_path", "transformers_version", "architectures", "torch_dtype", "dtype"):
            base.pop(k, None)
        base["vocab_size"] = int(cfg["vocab_size"])
        config = AutoConfig.for_model(model_type, **base)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        sd = _load_state_dict(path)
        # UnitLM keeps its HF causal LM at attribute `lm` (base_model_prefix = "lm").
        sd = {k.removeprefix("lm."): v for k, v in sd.items()}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        tied = {k for k in missing if "lm_head" in k} if config.tie_word_embeddings else set()
        if set(missing) - tied or unexpected:
            raise ValueError(
                f"{path}: weights do not fit: missing {missing}, unexpected {unexpected}"
            )
        model.tie_weights()
        n_units = int(cfg["vocab_size"]) - 2
        return cls(
            model,
            UnitVocab.slamkit(n_units),
            {
                "init": "SlamKit UnitLM",
                "source_format": "slamkit",
                "base_model": cfg.get("base_model_name"),
            },
        )
