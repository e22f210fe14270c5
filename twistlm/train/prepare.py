"""Setting up a training run: data, model (fresh, warm-started or resumed), wrapping, optimizer.

:func:`setup` does everything before the first step and returns a :class:`TrainRun`, which the
loop (:func:`twistlm.train.trainer.train`) advances one :func:`~twistlm.train.trainer.train_step`
at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from twistlm.config import save_config
from twistlm.data.packing import attention_inputs
from twistlm.data.shards import ShardMetadata, read_shard_metadata
from twistlm.io import ErrorLog
from twistlm.lm.model import SpeechLM
from twistlm.train.config import TrainConfig
from twistlm.train.data import BlockOrder, Utterances, drop_bad_units, read_units, split, val_blocks
from twistlm.train.distributed import Dist, init_dist, pick_device, wrap_model
from twistlm.train.export import (
    latest_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    tokenizer_record,
)
from twistlm.train.precision import BF16Shadow, fused_adamw_ok, resolve_precision


@dataclass
class TrainData:
    """Training and validation utterances (ids outside ``[0, n_units)`` already dropped)."""

    train: Utterances
    val: Utterances
    n_units: int
    shards: ShardMetadata  # of ``data.train``


def load_data(cfg: TrainConfig, errors: ErrorLog) -> TrainData:
    """Read ``data.train`` (and ``data.val``, else a split of train) and the shards' metadata.

    ``n_units`` is ``model.n_units`` when set, else the shards' ``tokenizer.json`` n_units; a
    folder without that file is an error (:func:`twistlm.data.shards.read_shard_metadata`).
    """
    d = cfg.data
    if not d.train:
        raise ValueError("data.train is not set (a unit shard folder from `twistlm tokenize`)")
    utts = read_units(d.train, errors, d.min_units)  # first: its error names a wrong path
    shards = read_shard_metadata(d.train)
    if d.val:
        val = read_units(d.val, errors, d.min_units)
        train_u = utts
    else:
        train_u, val = split(utts, d.val_fraction, d.val_max_utterances, cfg.seed)
    n_units = int(cfg.model.n_units or shards.n_units)
    train_u = drop_bad_units(train_u, n_units, errors, d.train)
    val = drop_bad_units(val, n_units, errors, d.val or d.train)
    return TrainData(train_u, val, n_units, shards)


def build_model(cfg: TrainConfig, n_units: int, tokenizer_meta: dict) -> SpeechLM:
    """``model.init_from`` as saved, else a warm/cold start from ``model.text_lm``."""
    m = cfg.model
    if m.init_from:
        lm = SpeechLM.from_pretrained(m.init_from)
        if lm.vocab.n_units < n_units:
            raise ValueError(f"{m.init_from} has {lm.vocab.n_units} units, data needs {n_units}")
        return lm
    from twistlm.lm.warm_start import build_speech_lm

    return build_speech_lm(
        m.text_lm,
        n_units,
        start=m.start,
        init=m.init,
        n_layers=m.n_layers,
        tie=m.tie,
        seed=cfg.seed,
        init_scale=m.init_scale,
        out_init=m.out_init,
        tokenizer_info=tokenizer_meta,
    )


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices only (not norms, biases)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


@dataclass
class TrainRun:
    """Everything a run needs between steps. ``step``, ``tokens`` and ``elapsed_prev`` (seconds
    before this process started, from a resumed checkpoint) are where the run stands."""

    cfg: TrainConfig
    run_dir: Path
    dist: Dist
    device: torch.device
    precision: str  # fp32 | bf16 | bf16-autocast (twistlm.train.precision), resolved
    fsdp: bool
    errors: ErrorLog
    lm: SpeechLM  # lm.model: the bare (possibly FSDP-sharded) model on ``device``
    train_model: torch.nn.Module  # what the forward runs through (DDP / compiled / the model)
    optimizer: torch.optim.Optimizer
    order: BlockOrder
    val_ids: np.ndarray  # (N, block_size)
    val_labels: np.ndarray  # (N, block_size)
    shards: ShardMetadata
    total_steps: int | None
    resumed_from: Path | None = None
    shadow: BF16Shadow | None = None  # precision bf16 without FSDP: the bf16 copy
    step: int = 0
    tokens: int = 0
    elapsed_prev: float = 0.0

    @property
    def autocast(self) -> bool:
        """Whether forwards run under bf16 autocast."""
        return self.precision == "bf16-autocast"

    @property
    def forward_model(self) -> torch.nn.Module:
        """The bare model whose forward validation runs (the bf16 copy under ``bf16``)."""
        return self.shadow.module if self.shadow is not None else self.lm.model

    @property
    def tokens_per_step(self) -> int:
        o = self.cfg.optim
        return o.batch_size * o.grad_accum * self.dist.world * self.cfg.data.block_size

    def model_inputs(self, ids: torch.Tensor) -> dict:
        """Extra forward arguments that make a packed id batch attend as ``data.packing`` says
        (:func:`twistlm.data.packing.attention_inputs`; FlashAttention-2 gets positions only)."""
        impl = str(getattr(self.lm.model.config, "_attn_implementation", "") or "")
        return attention_inputs(
            ids, self.lm.vocab, self.cfg.data.packing, flash=impl.startswith("flash")
        )

    def micro_batches(self, step: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """This rank's (ids, labels) micro-batches of optimizer step ``step``, each (B, L).

        Step ``s`` uses global blocks ``[s*G, (s+1)*G)``; micro-batch ``m`` of rank ``r``
        starts at block ``s*G + m*B*W + r*B`` (see :mod:`twistlm.train.data`).
        """
        B, A, W = self.cfg.optim.batch_size, self.cfg.optim.grad_accum, self.dist.world
        out = []
        for micro in range(A):
            ids = self.order.blocks(step * B * A * W + micro * B * W + self.dist.rank * B, B)
            out.append((ids, self.order.labels(ids)))
        return out


def total_steps(cfg: TrainConfig, tokens_per_step: int) -> int | None:
    """Steps the budget allows (``max_steps``, ``max_tokens``), None when only time bounds it."""
    budget = cfg.budget
    steps = budget.max_steps
    if budget.max_tokens is not None:
        tok_steps = -(-budget.max_tokens // tokens_per_step)
        steps = tok_steps if steps is None else min(steps, tok_steps)
    return steps


def setup(cfg: TrainConfig) -> TrainRun:
    """Everything before the first step: processes, data, model (resumed from the newest
    checkpoint when ``resume``), wrapping and optimizer. Writes ``config.yaml`` to the run dir."""
    run_dir = Path(cfg.logging.run_dir)
    rt = cfg.runtime
    device_kind = "cuda" if rt.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    dist = init_dist(device_kind)
    device = pick_device(cfg, dist.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if rt.threads:
        torch.set_num_threads(rt.threads)
    if device.type == "cpu":
        from twistlm.hardware import keep_cpu_memory

        keep_cpu_memory()
    fsdp = dist.world > 1 and rt.distributed == "fsdp"
    errors = ErrorLog(run_dir / "errors.jsonl")
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")

    data = load_data(cfg, errors)
    resume_from = latest_checkpoint(run_dir) if cfg.resume else None
    if cfg.resume and resume_from is None and dist.main:
        print(f"resume: no checkpoint in {run_dir}/checkpoints; starting fresh")
    # The shards name the tokenizer their units came from (that wins over what an init_from
    # model says); older shards only say what it was.
    record = tokenizer_record(data.shards, None)
    if resume_from is not None:
        lm = model_from_checkpoint(resume_from)
    else:
        lm = build_model(cfg, data.n_units, record or data.shards.info)
    if lm.vocab.bos_id is None:
        raise ValueError("training needs a vocab with BOS/EOS (twistlm or slamkit convention)")
    lm.meta["tokenizer"] = record or lm.meta.get("tokenizer") or data.shards.info
    model = lm.model.to(device)
    model.train()
    if rt.grad_checkpointing:
        # transformers 5 renamed it (the old name warns); 4.x only has the old one.
        enable = getattr(model, "activation_checkpointing_enable", None)
        (enable or model.gradient_checkpointing_enable)()
        model.config.use_cache = False

    bs = cfg.data.block_size
    order = BlockOrder(data.train.units, lm.vocab, bs, cfg.seed)
    val_ids, val_labels = val_blocks(data.val.units, lm.vocab, bs)
    precision = resolve_precision(rt.precision, device)
    # bf16 without FSDP: the masters stay in ``model``; the bf16 copy is made (and wrapped)
    # after a resume has loaded the masters. Under FSDP its MixedPrecisionPolicy does it.
    use_shadow = precision == "bf16" and not fsdp
    train_model = None if use_shadow else wrap_model(model, dist, fsdp, device, precision == "bf16")
    o = cfg.optim
    optimizer = torch.optim.AdamW(
        param_groups(model, o.weight_decay),
        lr=o.lr,
        betas=tuple(o.betas),
        eps=o.eps,
        fused=fused_adamw_ok(device) and (device.type == "cuda" or not fsdp),
    )
    run = TrainRun(
        cfg=cfg,
        run_dir=run_dir,
        dist=dist,
        device=device,
        precision=precision,
        fsdp=fsdp,
        errors=errors,
        lm=lm,
        train_model=train_model,
        optimizer=optimizer,
        order=order,
        val_ids=val_ids,
        val_labels=val_labels,
        shards=data.shards,
        total_steps=None,
        resumed_from=resume_from,
    )
    run.total_steps = total_steps(cfg, run.tokens_per_step)
    if resume_from is not None:
        state = load_checkpoint(resume_from, model, optimizer, fsdp)
        run.step, run.tokens, run.elapsed_prev = state["step"], state["tokens"], state["elapsed_s"]
        if dist.main:
            print(f"resumed from {resume_from} at step {run.step}")
    if use_shadow:
        run.shadow = BF16Shadow(model)
        run.train_model = wrap_model(run.shadow.module, dist, False, device)
    if rt.compile:
        run.train_model = torch.compile(run.train_model)
    return run
