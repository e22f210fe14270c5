"""Which tokenizer and vocoder belong to a SpeechLM, and whether the three fit together.

A model names its components in its metadata (``twistlm.json``, ``meta``) in one schema::

    {"tokenizer": {"path": "../../tokenizer", ...the tokenizer's info},
     "vocoder": {"path": "../../vocoder/vocoder"}}

A path is stored relative to the model dir when the component sits under or near it (so a run
folder that is moved or copied keeps its links), absolute otherwise; :func:`component_entry`
writes it. :func:`recorded_dir` reads it, and also the shapes written before this schema.

:func:`check_compatible` is the one rule for whether a tokenizer, a SpeechLM and a vocoder (any
pair, or all three) can work together: the same unit count, the same hop, and the same
tokenizer identity where a model or vocoder records which tokenizer it was trained on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: a component at most this many levels above the model dir (``../..``) is recorded relatively
MAX_LEVELS_UP = 3

UNKNOWN = "<in memory>"  # how messages name an object that was not loaded from a dir


# ---------------------------------------------------------------------------- the schema
def component_entry(model_dir: str | Path, component_dir: str | Path) -> dict[str, str]:
    """The metadata entry naming ``component_dir`` for the model in ``model_dir``.

    Returns ``{"path": p}``: ``p`` relative to the model dir when the component is under it or
    at most :data:`MAX_LEVELS_UP` levels above (``../../tokenizer``), else absolute.
    """
    model = Path(model_dir).resolve()
    comp = Path(component_dir).resolve()
    try:
        rel = Path(os.path.relpath(comp, model))
    except ValueError:  # another drive (Windows): no relative path exists
        return {"path": str(comp)}
    ups = len([p for p in rel.parts if p == ".."])
    shares_more_than_root = Path(os.path.commonpath([model, comp])) != Path(model.anchor)
    if ups <= MAX_LEVELS_UP and shares_more_than_root:
        return {"path": rel.as_posix()}
    return {"path": str(comp)}


def record_components(
    meta: dict[str, Any],
    model_dir: str | Path,
    tokenizer: str | Path | None = None,
    vocoder: str | Path | None = None,
) -> dict[str, Any]:
    """Write the tokenizer / vocoder dirs into a model's ``meta`` (in place; returned too).

    The tokenizer entry keeps the tokenizer info already there (name, n_units, hop, ...);
    an older vocoder entry (a bare path string) is replaced by the schema's dict.
    """
    if tokenizer is not None:
        old = meta.get("tokenizer")
        info = {k: v for k, v in old.items() if k != "dir"} if isinstance(old, dict) else {}
        meta["tokenizer"] = info | component_entry(model_dir, tokenizer)
        meta.pop("tokenizer_path", None)
    if vocoder is not None:
        meta["vocoder"] = component_entry(model_dir, vocoder)
        meta.pop("vocoder_path", None)
    return meta


def recorded_paths(meta: dict[str, Any], key: str) -> list[str]:
    """Every path recorded for ``key`` (``tokenizer`` / ``vocoder``), as written, best first.

    The schema is ``meta[key]["path"]``. Legacy shapes, read here only: ``meta[key]`` a path
    string, ``meta[key]["dir"]``, ``meta[f"{key}_path"]``.
    """
    entry = meta.get(key)
    candidates: list[Any] = []
    if isinstance(entry, dict):
        candidates += [entry.get("path"), entry.get("dir")]
    elif isinstance(entry, (str, Path)):
        candidates.append(entry)
    candidates.append(meta.get(f"{key}_path"))
    return [str(c) for c in candidates if c]


def _locations(path: str, model_dir: str | Path | None) -> list[Path]:
    """Where a recorded path may be: relative to the model dir (the schema), then as given
    (older metadata stored paths relative to the working directory)."""
    p = Path(path)
    if p.is_absolute() or model_dir is None:
        return [p]
    return [Path(os.path.normpath(Path(model_dir) / p)), p]


def recorded_dir(
    meta: dict[str, Any], key: str, model_dir: str | Path | None = None
) -> Path | None:
    """The existing dir recorded for ``key`` in a model's ``meta``, or None.

    ``model_dir``: where relative paths start (default ``meta["path"]``, set on loading).
    """
    model_dir = model_dir if model_dir is not None else meta.get("path")
    for recorded in recorded_paths(meta, key):
        for p in _locations(recorded, model_dir):
            if p.is_dir():
                return p
    return None


_HOW_TO = {
    "tokenizer": "pass --tokenizer DIR (the UnitTokenizer its training units came from)",
    "vocoder": "pass --vocoder DIR (train one with `twistlm train-vocoder`)",
}


def required_dir(lm: Any, key: str, model_dir: str | Path | None = None) -> Path:
    """The ``key`` dir the model records; raises with what to pass instead.

    ``model_dir``: where relative paths start (default the model's ``meta["path"]``).

    Raises:
        ValueError: the model records none.
        FileNotFoundError: the recorded dir does not exist.
    """
    meta = getattr(lm, "meta", None) or {}
    found = recorded_dir(meta, key, model_dir)
    if found is not None:
        return found
    recorded = recorded_paths(meta, key)
    if not recorded:
        raise ValueError(
            f"no {key} given and none recorded in the model's metadata "
            f"(meta['{key}']['path']): {_HOW_TO[key]}"
        )
    raise FileNotFoundError(
        f"the model's {key} dir {recorded[0]!r} does not exist (model "
        f"{model_dir or meta.get('path', UNKNOWN)}): {_HOW_TO[key]}"
    )


# ---------------------------------------------------------------------------- loading
def resolve_tokenizer(
    lm: Any, tokenizer: Any = None, model_dir: str | Path | None = None
) -> tuple[Any, Path | None]:
    """(tokenizer, its dir or None): ``tokenizer`` (object, dir or preset name) or the one
    the model records (``model_dir``: the model's dir, default its ``meta["path"]``)."""
    if tokenizer is not None and not isinstance(tokenizer, (str, Path)):
        return tokenizer, None
    if tokenizer is None:
        tokenizer = required_dir(lm, "tokenizer", model_dir)
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

    return UnitTokenizer.from_pretrained(tokenizer), Path(tokenizer)


def resolve_vocoder(
    lm: Any, vocoder: Any = None, device: str = "cpu", model_dir: str | Path | None = None
) -> tuple[Any, Path | None]:
    """(vocoder, its dir or None): ``vocoder`` (object, dir or ``packaged``) or the one the
    model records (``model_dir``: the model's dir, default its ``meta["path"]``)."""
    if vocoder is not None and not isinstance(vocoder, (str, Path)):
        return vocoder, None
    if vocoder is None:
        vocoder = required_dir(lm, "vocoder", model_dir)
    from twistlm.vocoder import load_vocoder

    return load_vocoder(vocoder, device=device), Path(vocoder)


@dataclass
class Components:
    """A SpeechLM with its tokenizer and vocoder (None when not needed), and their dirs
    (``paths``: {"model", "tokenizer", "vocoder": dir} for those loaded from one)."""

    lm: Any
    tokenizer: Any
    vocoder: Any | None
    paths: dict[str, str] = field(default_factory=dict)


def resolve_components(
    model: Any,
    tokenizer: Any = None,
    vocoder: Any = None,
    device: str = "cpu",
    need_vocoder: bool = True,
) -> Components:
    """Load what is given as a dir, take what is missing from the model's metadata, and check
    that the three fit (:func:`check_compatible`).

    Args:
        model: a SpeechLM or its dir (any convention).
        tokenizer, vocoder: objects, dirs, or None for the ones the model records.
        need_vocoder: False: a missing vocoder is left None instead of an error (scoring).
    """
    model_dir = None
    if isinstance(model, (str, Path)):
        from twistlm.lm.model import SpeechLM

        model_dir, model = model, SpeechLM.from_pretrained(model, device=device)
    meta = getattr(model, "meta", None) or {}
    model_dir = model_dir or meta.get("path")
    paths = {"model": str(model_dir)} if model_dir else {}
    tok, tok_dir = resolve_tokenizer(model, tokenizer, model_dir)
    voc, voc_dir = None, None
    if vocoder is not None or need_vocoder:
        voc, voc_dir = resolve_vocoder(model, vocoder, device, model_dir)
    paths |= {k: str(p) for k, p in (("tokenizer", tok_dir), ("vocoder", voc_dir)) if p}
    check_compatible(model, tok, voc, paths)
    return Components(model, tok, voc, paths)


def load_components(
    model: Any, tokenizer: Any = None, vocoder: Any = None, device: str = "cpu"
) -> tuple[Any, Any, Any]:
    """(SpeechLM, UnitTokenizer, Vocoder) from objects or dirs, checked compatible.

    ``tokenizer`` / ``vocoder`` None: the ones the model's metadata records, else a clear error.
    """
    c = resolve_components(model, tokenizer, vocoder, device)
    return c.lm, c.tokenizer, c.vocoder


# ---------------------------------------------------------------------------- compatibility
def tokenizer_info(tokenizer: Any) -> dict[str, Any]:
    """A tokenizer's ``info()`` dict ({} for objects without one)."""
    info = tokenizer.info() if hasattr(tokenizer, "info") else {}
    return dict(info or {})


def _tokenizer_hop(tokenizer: Any) -> int | None:
    """Samples per unit frame: the tokenizer's ``hop``; one that states only its frame rate
    has 16 kHz / frame rate."""
    hop = getattr(tokenizer, "hop", None)
    if hop is None:
        hop = tokenizer_info(tokenizer).get("hop")
    if hop is None and getattr(tokenizer, "frame_rate", None):
        from twistlm.audio import SAMPLE_RATE

        hop = round(SAMPLE_RATE / float(tokenizer.frame_rate))
    return None if hop is None else int(hop)


def _recorded_tokenizer_name(record: Any) -> str | None:
    return record.get("name") if isinstance(record, dict) else None


def _unit_counts(lm: Any, tokenizer: Any, vocoder: Any) -> dict[str, int]:
    counts = {}
    if tokenizer is not None and getattr(tokenizer, "n_units", None) is not None:
        counts["tokenizer"] = int(tokenizer.n_units)
    if lm is not None:
        counts["SpeechLM"] = int(lm.vocab.n_units)
    if vocoder is not None:
        counts["vocoder"] = int(vocoder.n_units)
    return counts


def _unit_message(counts: dict[str, int], paths: dict[str, str]) -> str:
    key = {"tokenizer": "tokenizer", "SpeechLM": "model", "vocoder": "vocoder"}
    listing = ", ".join(f"{n} {c} ({paths.get(key[n], UNKNOWN)})" for n, c in counts.items())
    tok, lm, voc = (counts.get(n) for n in ("tokenizer", "SpeechLM", "vocoder"))
    if tok is not None and lm is not None and tok != lm:
        why = f"the tokenizer has {tok} units but the model expects {lm}"
    elif tok is not None and voc is not None and tok != voc:
        why = f"the tokenizer has {tok} units, the vocoder {voc}"
    else:
        why = f"the model has {lm} units, the vocoder {voc}"
    return f"unit counts differ: {listing}: {why}; they must come from the same tokenizer"


def check_compatible(
    lm: Any = None,
    tokenizer: Any = None,
    vocoder: Any = None,
    paths: dict[str, str | Path] | None = None,
) -> None:
    """Raise ValueError when the components given (any two, or all three) cannot work together.

    Checks, for each pair given: the unit count (tokenizer, SpeechLM, vocoder); the hop
    (samples per unit frame: tokenizer and vocoder); the tokenizer identity where the model's
    metadata or the vocoder's info names the tokenizer it was trained on.

    A TWIST checkpoint that records no unit count takes the tokenizer's first
    (``SpeechLM.adopt_n_units``), so its sampling stays inside the tokenizer's units.

    Args:
        paths: {"model", "tokenizer", "vocoder": dir}, only so the messages name the dirs
            (the model's defaults to its ``meta["path"]``).
    """
    paths = {k: str(v) for k, v in (paths or {}).items() if v is not None}
    meta = (getattr(lm, "meta", None) or {}) if lm is not None else {}
    if meta.get("path"):
        paths.setdefault("model", str(meta["path"]))
    n_tok = getattr(tokenizer, "n_units", None) if tokenizer is not None else None
    if lm is not None and n_tok is not None and hasattr(lm, "adopt_n_units"):
        lm.adopt_n_units(int(n_tok), source="tokenizer", tokenizer_path=paths.get("tokenizer"))
    counts = _unit_counts(lm, tokenizer, vocoder)
    if len(set(counts.values())) > 1:
        raise ValueError(_unit_message(counts, paths))
    if tokenizer is not None and vocoder is not None:
        hop = _tokenizer_hop(tokenizer)
        if hop is not None and hop != int(vocoder.hop):
            raise ValueError(
                f"the tokenizer's hop is {hop} samples per unit frame but the vocoder's is "
                f"{vocoder.hop} (different frame rates): the vocoder was trained on another "
                "tokenizer's units"
            )
    _check_identity(meta if lm is not None else None, tokenizer, vocoder)


def _check_identity(meta: dict[str, Any] | None, tokenizer: Any, vocoder: Any) -> None:
    """The tokenizer names recorded by the model and the vocoder agree with the tokenizer's."""
    tok_name = None
    if tokenizer is not None:
        tok_name = getattr(tokenizer, "name", None) or tokenizer_info(tokenizer).get("name")
    lm_name = _recorded_tokenizer_name(meta.get("tokenizer")) if meta is not None else None
    voc_name = None
    if vocoder is not None:
        voc_name = _recorded_tokenizer_name((getattr(vocoder, "info", None) or {}).get("tokenizer"))
    if voc_name and tok_name and voc_name != tok_name:
        raise ValueError(f"vocoder was trained on tokenizer {voc_name!r}, not {tok_name!r}")
    if lm_name and tok_name and lm_name != tok_name:
        raise ValueError(
            f"the model was trained on units of tokenizer {lm_name!r}, not {tok_name!r}"
        )
    if lm_name and voc_name and tokenizer is None and lm_name != voc_name:
        raise ValueError(
            f"the model was trained on units of tokenizer {lm_name!r} but the vocoder on "
            f"tokenizer {voc_name!r}"
        )
