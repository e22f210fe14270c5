"""The training loop: plain PyTorch + torch.distributed (DDP or FSDP2) under torchrun.

One process per device. Launch lines (see docs/train.md):

    twistlm train configs/quickstart.yaml                       # one process
    torchrun --nproc_per_node 8 -m twistlm train cfg.yaml       # 8 GPUs, DDP (nccl)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d \
        --rdzv_endpoint HOST:29500 -m twistlm train cfg.yaml    # 2 nodes
    accelerate launch --num_processes 8 -m twistlm train cfg.yaml   # same env vars as torchrun

A run is :func:`~twistlm.train.prepare.setup` (data, model, optimizer, resume), then
:func:`train_step` per optimizer step, with evaluation, logging and the dirs of
:mod:`twistlm.train.export` (checkpoints, snapshots, the final model) in between.

The loss is the mean next-token cross entropy (fp32 log-softmax) over each micro-batch; full
blocks hold the same number of targets, so averaging over micro-batches and ranks equals the
mean over the global batch (which is why a 2-process run matches a 1-process one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from twistlm.config import to_dict
from twistlm.io import write_json
from twistlm.train.config import TrainConfig
from twistlm.train.data import Utterances
from twistlm.train.distributed import Dist, all_reduce_sum, barrier
from twistlm.train.export import (
    export_model,
    latest_checkpoint,
    save_checkpoint,
    save_sharded_checkpoint,
)
from twistlm.train.metrics import MetricsLog
from twistlm.train.precision import BF16Shadow
from twistlm.train.prepare import TrainRun, setup


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or budget-stopped) run produced."""

    run_dir: Path
    model_dir: Path
    steps: int
    tokens: int
    loss: float | None
    val_loss: float | None
    elapsed_s: float
    stopped_by: str


def lr_at(step: int, cfg: TrainConfig, total_steps: int | None) -> float:
    """Learning rate for optimizer step ``step`` (0-based)."""
    s, peak = cfg.schedule, cfg.optim.lr
    if s.warmup_steps and step < s.warmup_steps:
        return peak * (step + 1) / s.warmup_steps
    if s.kind == "constant":
        return peak
    if s.kind == "inverse_sqrt":
        return peak * math.sqrt(max(s.warmup_steps, 1) / (step + 1))
    horizon = s.decay_steps or total_steps
    if not horizon:
        raise ValueError(
            "cosine schedule needs schedule.decay_steps or budget.max_steps/max_tokens"
        )
    frac = min(1.0, (step - s.warmup_steps) / max(1, horizon - s.warmup_steps))
    return peak * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def _next_token_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean"):
    """Cross entropy of logits (B, L, V) at t against labels (B, L) at t+1 (-100 ignored)."""
    return F.cross_entropy(
        logits[:, :-1].float().flatten(0, 1),
        labels[:, 1:].flatten(),
        ignore_index=-100,
        reduction=reduction,
    )


@torch.no_grad()
def evaluate(
    model,
    ids: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    device,
    autocast: bool,
    dist: Dist,
    inputs: Callable[[torch.Tensor], dict] | None = None,
) -> float:
    """Mean NLL per unit (nats) over the validation blocks; ranks split blocks and sum.

    ``inputs``: extra forward arguments for an id batch (document masks: see ``train_step``).
    """
    model.eval()
    tot = torch.zeros(2, dtype=torch.float64)
    idx = np.arange(dist.rank, len(ids), dist.world)
    for i in range(0, len(idx), batch_size):
        sel = idx[i : i + batch_size]
        x = torch.from_numpy(ids[sel]).to(device)
        y = torch.from_numpy(labels[sel]).to(device)
        extra = inputs(x) if inputs is not None else {}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=x, **extra).logits
        nll = _next_token_loss(logits, y, reduction="sum")
        tot += torch.stack([nll.double().cpu(), (y[:, 1:] != -100).sum().double().cpu()])
    model.train()
    tot = all_reduce_sum(tot.to(device), dist).cpu()
    return float(tot[0] / tot[1]) if tot[1] > 0 else float("nan")


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence[tuple[np.ndarray, np.ndarray]],
    lr: float,
    grad_clip: float = 0.0,
    device: torch.device | None = None,
    autocast: bool = False,
    dist: Dist | None = None,
    no_sync: bool = False,
    inputs: Callable[[torch.Tensor], dict] | None = None,
    shadow: BF16Shadow | None = None,
) -> torch.Tensor:
    """One optimizer step over ``micro_batches`` of (ids, labels), each (B, L) int64.

    Gradients of the micro-batch losses (each divided by their count) accumulate, are clipped
    to ``grad_clip`` (0: off) and applied at learning rate ``lr``. ``model`` is what the forward
    runs through (a DDP wrapper skips its gradient all-reduce on all but the last micro-batch
    when ``no_sync``). ``inputs`` maps an id batch to extra forward arguments (the document
    masks and positions of :func:`twistlm.data.packing.attention_inputs`; None: ids only).
    ``autocast``: run the forward under bf16 autocast. ``shadow``: precision ``bf16`` (see
    :mod:`twistlm.train.precision`): ``model`` runs the bf16 copy, ``optimizer`` holds the fp32
    masters; gradients go to the masters before clipping and the step, weights come back after.

    Returns the loss averaged over micro-batches and ranks, as a 0-d fp64 tensor on ``device``:
    nothing waits for the device here; ``float()`` it where the number is needed.
    """
    device = device or torch.device("cpu")
    dist = dist or Dist()
    n = len(micro_batches)
    for g in optimizer.param_groups:
        g["lr"] = lr
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for micro, (ids, labels) in enumerate(micro_batches):
        x = torch.from_numpy(ids).to(device)
        y = torch.from_numpy(labels).to(device)
        extra = inputs(x) if inputs is not None else {}
        skip_sync = no_sync and micro < n - 1 and hasattr(model, "no_sync")
        with model.no_sync() if skip_sync else contextlib.nullcontext():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = model(input_ids=x, **extra).logits
            loss = _next_token_loss(logits, y)
            (loss / n).backward()
        loss_sum += loss.detach().double()
    if shadow is not None:
        shadow.pull_grads()
    params = shadow.master.parameters() if shadow is not None else model.parameters()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if shadow is not None:
        shadow.push_weights()
    return all_reduce_sum(loss_sum / n, dist) / dist.world


def _stop_reason(run: TrainRun, elapsed: float) -> str | None:
    """Why the run stops before step ``run.step``, or None to go on."""
    budget = run.cfg.budget
    if run.total_steps is not None and run.step >= run.total_steps:
        return (
            "max_tokens" if budget.max_tokens and run.tokens >= budget.max_tokens else "max_steps"
        )
    if budget.max_seconds is not None and elapsed >= budget.max_seconds:
        return "max_seconds"
    return None


def _validate(run: TrainRun) -> float:
    return evaluate(
        run.forward_model,
        run.val_ids,
        run.val_labels,
        run.cfg.optim.batch_size,
        run.device,
        run.autocast,
        run.dist,
        inputs=run.model_inputs,
    )


def _export(run: TrainRun, dest: Path) -> None:
    run.lm.meta["trained"] = {
        "steps": run.step,
        "tokens": run.tokens,
        "data": run.cfg.data.train,
        "packing": run.cfg.data.packing,
    }
    export_model(dest, run.lm, run.optimizer, run.fsdp, run.dist, run.shards)


def train(cfg: TrainConfig) -> TrainResult:
    """Train a SpeechLM as configured; writes everything under ``cfg.logging.run_dir``."""
    run = setup(cfg)
    log_cfg, dist = cfg.logging, run.dist
    metrics = MetricsLog(cfg, run.run_dir, dist, run.step if run.resumed_from else None)
    t0 = time.perf_counter()

    def elapsed() -> float:
        return run.elapsed_prev + time.perf_counter() - t0

    val_loss = loss = None
    if log_cfg.eval_at_start and run.resumed_from is None and len(run.val_ids):
        val_loss = _validate(run)
        metrics.log({"step": 0, "tokens": 0, "val_loss": val_loss, "elapsed_s": 0.0})
    bar = None
    if log_cfg.progress and dist.main:
        from tqdm import tqdm

        bar = tqdm(
            total=run.total_steps, initial=run.step, desc="train", unit="step", dynamic_ncols=True
        )
    snapshots = set(log_cfg.snapshot_steps)
    t_log, tok_log = time.perf_counter(), run.tokens
    while (stopped_by := _stop_reason(run, elapsed())) is None:
        lr = lr_at(run.step, cfg, run.total_steps)
        loss_t = train_step(
            run.train_model,
            run.optimizer,
            run.micro_batches(run.step),
            lr,
            grad_clip=cfg.optim.grad_clip,
            device=run.device,
            autocast=run.autocast,
            dist=dist,
            no_sync=dist.world > 1 and not run.fsdp,
            inputs=run.model_inputs,
            shadow=run.shadow,
        )
        run.step += 1
        run.tokens += run.tokens_per_step
        step = run.step
        if bar is not None:
            bar.update(1)
        last = (run.total_steps is not None and step >= run.total_steps) or (
            cfg.budget.max_seconds is not None and elapsed() >= cfg.budget.max_seconds
        )
        do_eval = len(run.val_ids) > 0 and (
            last or step in snapshots or (log_cfg.eval_every and step % log_cfg.eval_every == 0)
        )
        if step % log_cfg.log_every == 0 or do_eval or last:
            loss = float(loss_t)  # the only host sync of a step that logs; none otherwise
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}")
            now = time.perf_counter()
            rec = {
                "step": step,
                "tokens": run.tokens,
                "loss": loss,
                "lr": lr,
                "tokens_per_s": (run.tokens - tok_log) / max(now - t_log, 1e-9),
                "elapsed_s": run.elapsed_prev + now - t0,
            }
            if do_eval:
                val_loss = rec["val_loss"] = _validate(run)
            metrics.log(rec)
            t_log, tok_log = time.perf_counter(), run.tokens
        if step in snapshots:
            _export(run, run.run_dir / "snapshots" / f"step-{step:08d}")
        if (log_cfg.checkpoint_every and step % log_cfg.checkpoint_every == 0) or last:
            state = {"step": step, "tokens": run.tokens, "elapsed_s": elapsed()}
            keep = log_cfg.keep_checkpoints
            if run.fsdp and cfg.runtime.checkpoint_format == "sharded":
                save_sharded_checkpoint(
                    run.run_dir, run.lm, run.optimizer, state, keep, dist, run.shards
                )
            else:
                save_checkpoint(
                    run.run_dir, run.lm, run.optimizer, state, keep, dist, run.fsdp, run.shards
                )
    if bar is not None:
        bar.close()

    total_s = elapsed()
    model_dir = run.run_dir / "model"
    _export(run, model_dir)
    result = TrainResult(
        run.run_dir, model_dir, run.step, run.tokens, loss, val_loss, total_s, stopped_by
    )
    if dist.main:
        write_json(run.run_dir / "result.json", to_dict(dataclasses.asdict(result)))
        if run.errors.count:
            print(f"{run.errors.count} bad input(s) skipped; see {run.errors.path}")
    metrics.close()
    barrier(dist)
    return result


__all__ = [
    "TrainConfig",
    "TrainResult",
    "Utterances",
    "evaluate",
    "latest_checkpoint",
    "lr_at",
    "train",
    "train_step",
]
