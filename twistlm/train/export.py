"""What a training run writes as SpeechLM dirs: checkpoints, snapshots and the final model.

- ``run_dir/checkpoints/step-NNNNNNNN``: a SpeechLM dir plus ``optimizer.pt`` (optimizer and
  RNG state) and ``state.json`` (step, tokens, elapsed seconds), written last, so a dir with
  ``state.json`` is complete. Only the newest ``keep`` are kept. ``resume=true`` starts there.
  A *sharded* checkpoint (FSDP, ``runtime.checkpoint_format=sharded``) holds the model's
  ``config.json`` and ``twistlm.json`` but no weights: model and optimizer state are in
  ``dcp/``, written by every rank with ``torch.distributed.checkpoint`` (no gather), and the
  RNG state in ``rng.pt``.
- ``run_dir/snapshots/step-NNNNNNNN`` and ``run_dir/model``: SpeechLM dirs (no optimizer).

Every dir is written under a temporary name and renamed into place. Its ``twistlm.json`` names
the tokenizer the training units came from (:func:`tokenizer_record`), with the tokenizer path
recorded for that dir (:mod:`twistlm.lm.components`), so eval and continuation find the
tokenizer without flags.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from twistlm.data.shards import ShardMetadata
from twistlm.io import write_json
from twistlm.lm.model import SpeechLM
from twistlm.train.distributed import Dist

CHECKPOINTS = "checkpoints"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    root = Path(run_dir) / CHECKPOINTS
    done = (
        sorted(p for p in root.glob("step-*") if (p / "state.json").exists())
        if root.exists()
        else []
    )
    return done[-1] if done else None


def tokenizer_record(shards: ShardMetadata, model_dir: str | Path | None) -> dict[str, Any] | None:
    """The model's ``meta["tokenizer"]`` for units from ``shards``, or None if they name none.

    The shards' ``tokenizer.json`` fields plus their identity (``name``, ``fingerprint``,
    ``path``). ``path`` is recorded as :func:`twistlm.lm.components.component_entry` does for
    ``model_dir`` (relative when near it), absolute when ``model_dir`` is None, and left out
    when the tokenizer dir was not known at tokenize time.
    """
    from twistlm.lm.components import component_entry

    ident = shards.identity
    if not ident or not (ident.get("path") or ident.get("fingerprint")):
        return None
    rec = {**shards.info, "name": ident.get("name") or shards.info.get("name")}
    rec["fingerprint"] = ident.get("fingerprint")
    if ident.get("path"):
        path = ident["path"]
        rec["path"] = path if model_dir is None else component_entry(model_dir, path)["path"]
    return rec


def model_meta(lm: SpeechLM, shards: ShardMetadata | None, model_dir: Path) -> dict[str, Any]:
    """``lm.meta`` as written to ``model_dir``: the tokenizer record made relative to it."""
    rec = tokenizer_record(shards, model_dir) if shards is not None else None
    return lm.meta if rec is None else {**lm.meta, "tokenizer": rec}


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, fsdp: bool):
    """(model state, optimizer state) as full tensors. Collective under FSDP: all ranks call."""
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_state_dict(model, optimizer, options=opts)
    return model.state_dict(), optimizer.state_dict()


def save_checkpoint(
    run_dir: Path,
    lm: SpeechLM,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int,
    dist: Dist,
    fsdp: bool,
    shards: ShardMetadata | None = None,
) -> None:
    """Write ``checkpoints/step-N`` for ``state["step"]`` and drop all but the newest ``keep``."""
    msd, osd = full_state(lm.model, optimizer, fsdp)  # collective under FSDP
    if not dist.main:
        return
    root = run_dir / CHECKPOINTS
    final = root / f"step-{state['step']:08d}"
    tmp = root / f".tmp-step-{state['step']:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    SpeechLM(lm.model, lm.vocab, model_meta(lm, shards, final)).save_pretrained(tmp, msd)
    torch.save({"optimizer": osd, "rng": torch.get_rng_state()}, tmp / "optimizer.pt")
    _commit_checkpoint(tmp, final, state, keep)


def _commit_checkpoint(tmp: Path, final: Path, state: dict[str, Any], keep: int) -> None:
    """Mark ``tmp`` complete (``state.json`` last), rename it to ``final`` and drop all but the
    newest ``keep`` complete checkpoints beside it."""
    write_json(tmp / "state.json", state)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    done = sorted(p for p in final.parent.glob("step-*") if (p / "state.json").exists())
    for old in done[: max(0, len(done) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


DCP_DIR = "dcp"


def is_sharded(ckpt: Path) -> bool:
    return (Path(ckpt) / DCP_DIR).is_dir()


def save_sharded_checkpoint(
    run_dir: Path,
    lm: SpeechLM,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int,
    dist: Dist,
    shards: ShardMetadata | None = None,
) -> None:
    """Like :func:`save_checkpoint`, but every rank writes its own shards of the (FSDP) model
    and optimizer state with ``torch.distributed.checkpoint``; nothing is gathered. Collective."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    from twistlm.lm.model import write_metadata
    from twistlm.train.distributed import barrier

    root = run_dir / CHECKPOINTS
    final = root / f"step-{state['step']:08d}"
    tmp = root / f".tmp-step-{state['step']:08d}"
    if dist.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(dist)
    msd, osd = get_state_dict(lm.model, optimizer)  # this rank's shards (DTensors)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(tmp / DCP_DIR))
    barrier(dist)
    if dist.main:
        lm.model.config.save_pretrained(tmp)
        write_metadata(tmp, lm.vocab, model_meta(lm, shards, final))
        torch.save({"rng": torch.get_rng_state()}, tmp / "rng.pt")
        _commit_checkpoint(tmp, final, state, keep)
    barrier(dist)


def model_from_checkpoint(ckpt: Path) -> SpeechLM:
    """The SpeechLM of a checkpoint: its weights (a full checkpoint), or, for a sharded one,
    the architecture with fresh weights that :func:`load_checkpoint` then overwrites."""
    if not is_sharded(ckpt):
        return SpeechLM.from_pretrained(ckpt)
    from transformers import AutoConfig, AutoModelForCausalLM

    from twistlm.lm.model import read_metadata
    from twistlm.lm.vocab import UnitVocab

    info = read_metadata(ckpt)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(ckpt)))
    meta = {**info.get("meta", {}), "path": str(ckpt)}
    return SpeechLM(model, UnitVocab.from_dict(info["vocab"]), meta)


def load_checkpoint(
    ckpt: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, fsdp: bool
) -> dict[str, Any]:
    """Restore the optimizer and RNG state of a checkpoint; returns its ``state.json``.

    A full checkpoint's weights come with the model (``SpeechLM.from_pretrained(ckpt)``) before
    wrapping; a sharded one's model and optimizer shards are loaded here, into the wrapped
    (FSDP) model, on every rank.
    """
    state = json.loads((ckpt / "state.json").read_text())
    if is_sharded(ckpt):
        if not fsdp:
            raise ValueError(f"{ckpt}: a sharded checkpoint resumes only with distributed=fsdp")
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        msd, osd = get_state_dict(model, optimizer)
        loaded = {"model": msd, "optim": osd}
        dcp.load(loaded, checkpoint_id=str(ckpt / DCP_DIR))
        set_state_dict(
            model, optimizer, model_state_dict=loaded["model"], optim_state_dict=loaded["optim"]
        )
        extra = torch.load(ckpt / "rng.pt", map_location="cpu", weights_only=True)
        torch.set_rng_state(extra["rng"])
        return state
    extra = torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True)
    if fsdp:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        set_optimizer_state_dict(
            model, optimizer, extra["optimizer"], options=StateDictOptions(full_state_dict=True)
        )
    else:
        optimizer.load_state_dict(extra["optimizer"])
    torch.set_rng_state(extra["rng"])
    return state


def export_model(
    dest: Path,
    lm: SpeechLM,
    optimizer: torch.optim.Optimizer,
    fsdp: bool,
    dist: Dist,
    shards: ShardMetadata | None = None,
) -> None:
    """Write the model (weights + twistlm.json, no optimizer) as a SpeechLM dir, atomically."""
    msd = full_state(lm.model, optimizer, fsdp)[0] if fsdp else None  # collective
    if not dist.main:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    SpeechLM(lm.model, lm.vocab, model_meta(lm, shards, dest)).save_pretrained(tmp, msd)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
