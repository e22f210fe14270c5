"""The training loop: plain PyTorch + torch.distributed (DDP or FSDP2) under torchrun.

One process per device. Launch lines (see docs/train.md):

    twistlm train configs/quickstart.yaml                       # one process
    torchrun --nproc_per_node 8 -m twistlm train cfg.yaml       # 8 GPUs, DDP (nccl)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d \
        --rdzv_endpoint HOST:29500 -m twistlm train cfg.yaml    # 2 nodes
    accelerate launch --num_processes 8 -m twistlm train cfg.yaml   # same env vars as torchrun

The loss is the mean next-token cross entropy (fp32 log-softmax) over each micro-batch; full
blocks hold the same number of targets, so averaging over micro-batches and ranks equals the
mean over the global batch (which is why a 2-process run matches a 1-process one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from twistlm.config import save_config, to_dict
from twistlm.io import ErrorLog, atomic_write_text, write_json
from twistlm.lm.model import SpeechLM
from twistlm.train.config import TrainConfig
from twistlm.train.data import (
    BlockOrder,
    Utterances,
    drop_bad_units,
    read_units,
    split,
    tokenizer_info,
    val_blocks,
)


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


# ---------------------------------------------------------------- distributed helpers
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_dist(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Dist(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _all_reduce_sum(t: torch.Tensor, dist: Dist) -> torch.Tensor:
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    return t


def _pick_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    want = cfg.runtime.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(want)


def _use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    p = cfg.runtime.precision
    if p != "auto":
        return p == "bf16"
    from twistlm.hardware import bf16_is_fast

    return bf16_is_fast(device)


# ---------------------------------------------------------------- schedule
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


# ---------------------------------------------------------------- model
def _build_model(cfg: TrainConfig, n_units: int, tok_info: dict) -> SpeechLM:
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
        tokenizer_info=tok_info,
    )


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    names = set(getattr(model, "_no_split_modules", None) or [])
    return [m for m in model.modules() if type(m).__name__ in names]


# ---------------------------------------------------------------- checkpoints
def _ckpt_root(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    root = _ckpt_root(Path(run_dir))
    done = (
        sorted(p for p in root.glob("step-*") if (p / "state.json").exists())
        if root.exists()
        else []
    )
    return done[-1] if done else None


def _full_state(model, optimizer, fsdp: bool):
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_state_dict(model, optimizer, options=opts)
    return model.state_dict(), optimizer.state_dict()


def _save_checkpoint(run_dir, lm, model, optimizer, state: dict, keep: int, dist: Dist, fsdp: bool):
    msd, osd = _full_state(model, optimizer, fsdp)  # collective under FSDP: every rank calls it
    if not dist.main:
        return
    root = _ckpt_root(run_dir)
    final = root / f"step-{state['step']:08d}"
    tmp = root / f".tmp-step-{state['step']:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    plain = SpeechLM(lm.model, lm.vocab, lm.meta)
    plain.model.save_pretrained(tmp, state_dict=msd, safe_serialization=True)
    plain_meta = {"format": "twistlm", "version": 1, "vocab": lm.vocab.to_dict(), "meta": lm.meta}
    write_json(tmp / "twistlm.json", plain_meta)
    torch.save({"optimizer": osd, "rng": torch.get_rng_state()}, tmp / "optimizer.pt")
    write_json(tmp / "state.json", state)  # written last: marks the checkpoint complete
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    done = sorted(p for p in root.glob("step-*") if (p / "state.json").exists())
    for old in done[: max(0, len(done) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def _export_model(dest: Path, lm, model, optimizer, fsdp: bool, dist: Dist) -> None:
    """Write the model (weights + twistlm.json, no optimizer) as a SpeechLM dir, atomically."""
    msd, _ = _full_state(model, optimizer, fsdp) if fsdp else (None, None)  # collective
    if not dist.main:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    if msd is not None:
        lm.model.save_pretrained(tmp, state_dict=msd, safe_serialization=True)
        write_json(
            tmp / "twistlm.json",
            {"format": "twistlm", "version": 1, "vocab": lm.vocab.to_dict(), "meta": lm.meta},
        )
    else:
        lm.save_pretrained(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(
    model, ids: np.ndarray, labels: np.ndarray, batch_size: int, device, bf16: bool, dist: Dist
) -> float:
    """Mean NLL per unit (nats) over the validation blocks; ranks split blocks and sum."""
    model.eval()
    tot = torch.zeros(2, dtype=torch.float64)
    idx = np.arange(dist.rank, len(ids), dist.world)
    for i in range(0, len(idx), batch_size):
        sel = idx[i : i + batch_size]
        x = torch.from_numpy(ids[sel]).to(device)
        y = torch.from_numpy(labels[sel]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=x).logits
        nll = F.cross_entropy(
            logits[:, :-1].float().flatten(0, 1),
            y[:, 1:].flatten(),
            ignore_index=-100,
            reduction="sum",
        )
        tot += torch.stack([nll.double().cpu(), (y[:, 1:] != -100).sum().double().cpu()])
    model.train()
    tot = _all_reduce_sum(tot.to(device), dist).cpu()
    return float(tot[0] / tot[1]) if tot[1] > 0 else float("nan")


# ---------------------------------------------------------------- main entry
def _load_data(cfg: TrainConfig, errors: ErrorLog):
    d = cfg.data
    if not d.train:
        raise ValueError("data.train is not set (a unit shard folder from `twistlm tokenize`)")
    utts = read_units(d.train, errors, d.min_units)
    if d.val:
        val = read_units(d.val, errors, d.min_units)
        train_u = utts
    else:
        train_u, val = split(utts, d.val_fraction, d.val_max_utterances, cfg.seed)
    info = tokenizer_info(d.train)
    n_units = cfg.model.n_units or info.get("n_units")
    if n_units is None:
        n_units = int(max(int(u.max()) for u in train_u.units if u.size)) + 1
    train_u = drop_bad_units(train_u, int(n_units), errors, d.train)
    val = drop_bad_units(val, int(n_units), errors, d.val or d.train)
    return train_u, val, int(n_units), info


def train(cfg: TrainConfig) -> TrainResult:
    """Train a SpeechLM as configured; writes everything under ``cfg.logging.run_dir``."""
    run_dir = Path(cfg.logging.run_dir)
    device_kind = (
        "cuda" if cfg.runtime.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    )
    dist = _init_dist(device_kind)
    device = _pick_device(cfg, dist.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    bf16 = _use_bf16(cfg, device)
    fsdp = dist.world > 1 and cfg.runtime.distributed == "fsdp"
    errors = ErrorLog(run_dir / "errors.jsonl")
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")

    train_u, val_u, n_units, tok_info = _load_data(cfg, errors)
    resume_from = latest_checkpoint(run_dir) if cfg.resume else None
    if cfg.resume and resume_from is None and dist.main:
        print(f"resume: no checkpoint in {run_dir}/checkpoints; starting fresh")
    if resume_from is not None:
        lm = SpeechLM.from_pretrained(resume_from)
    else:
        lm = _build_model(cfg, n_units, tok_info)
    vocab = lm.vocab
    if vocab.bos_id is None:
        raise ValueError("training needs a vocab with BOS/EOS (twistlm or slamkit convention)")
    lm.meta["tokenizer"] = lm.meta.get("tokenizer") or tok_info
    model = lm.model.to(device)
    model.train()
    if cfg.runtime.grad_checkpointing:
        # transformers 5 renamed it (the old name warns); 4.x only has the old one.
        enable = getattr(model, "activation_checkpointing_enable", None)
        (enable or model.gradient_checkpointing_enable)()
        model.config.use_cache = False

    order = BlockOrder(train_u.units, vocab, cfg.data.block_size, cfg.seed)
    v_ids, v_labels = val_blocks(val_u.units, vocab, cfg.data.block_size)
    B, A, W, L = cfg.optim.batch_size, cfg.optim.grad_accum, dist.world, cfg.data.block_size
    G = B * A * W  # blocks per optimizer step
    tokens_per_step = G * L
    budget = cfg.budget
    total_steps = budget.max_steps
    if budget.max_tokens is not None:
        tok_steps = -(-budget.max_tokens // tokens_per_step)
        total_steps = tok_steps if total_steps is None else min(total_steps, tok_steps)

    # Wrap for multi-process training. DDP/FSDP do the collectives; nothing hand-rolled.
    train_model = model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for layer in _decoder_layers(model):
            fully_shard(layer)
        fully_shard(model)
    elif dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(
        _param_groups(model, cfg.optim.weight_decay),
        lr=cfg.optim.lr,
        betas=tuple(cfg.optim.betas),
        eps=cfg.optim.eps,
        fused=device.type == "cuda",
    )
    step, tokens, elapsed_prev = 0, 0, 0.0
    if resume_from is not None:
        state = json.loads((resume_from / "state.json").read_text())
        extra = torch.load(resume_from / "optimizer.pt", map_location="cpu", weights_only=True)
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
        step, tokens, elapsed_prev = state["step"], state["tokens"], state["elapsed_s"]
        if dist.main:
            print(f"resumed from {resume_from} at step {step}")
    if cfg.runtime.compile:
        train_model = torch.compile(train_model)

    metrics_path = run_dir / "metrics.jsonl"
    if dist.main:
        # On resume keep only the lines up to the checkpoint, so the file reads as one run.
        lines = (
            metrics_path.read_text().splitlines() if metrics_path.exists() and resume_from else []
        )
        kept = [ln for ln in lines if ln.strip() and json.loads(ln)["step"] <= step]
        atomic_write_text(metrics_path, "".join(ln + "\n" for ln in kept))
    loggers = _Loggers(cfg, run_dir, dist)

    def log(rec: dict) -> None:
        if dist.main:
            with metrics_path.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            loggers.write(rec)

    t0 = time.perf_counter()
    val_loss = None
    if cfg.logging.eval_at_start and resume_from is None and len(v_ids):
        val_loss = evaluate(model, v_ids, v_labels, B, device, bf16, dist)
        log({"step": 0, "tokens": 0, "val_loss": val_loss, "elapsed_s": 0.0})

    bar = None
    if cfg.logging.progress and dist.main:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    stopped_by = "max_steps"
    loss_val = None
    snapshots = set(cfg.logging.snapshot_steps)
    t_log, tok_log = time.perf_counter(), tokens
    while True:
        elapsed = elapsed_prev + time.perf_counter() - t0
        if total_steps is not None and step >= total_steps:
            stopped_by = (
                "max_tokens" if budget.max_tokens and tokens >= budget.max_tokens else "max_steps"
            )
            break
        if budget.max_seconds is not None and elapsed >= budget.max_seconds:
            stopped_by = "max_seconds"
            break
        lr = lr_at(step, cfg, total_steps)
        for g in optimizer.param_groups:
            g["lr"] = lr
        loss_sum = torch.zeros((), dtype=torch.float64)
        for micro in range(A):
            start = step * G + micro * B * W + dist.rank * B
            ids = order.blocks(start, B)
            x = torch.from_numpy(ids).to(device)
            y = torch.from_numpy(order.labels(ids)).to(device)
            sync = micro == A - 1 or dist.world == 1 or fsdp
            ctx = (
                train_model.no_sync()
                if not sync and hasattr(train_model, "no_sync")
                else contextlib.nullcontext()
            )
            with ctx:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = train_model(input_ids=x).logits
                loss = F.cross_entropy(
                    logits[:, :-1].float().flatten(0, 1), y[:, 1:].flatten(), ignore_index=-100
                )
                (loss / A).backward()
            loss_sum += loss.detach().double().cpu()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens += tokens_per_step
        loss_val = float(_all_reduce_sum((loss_sum / A).to(device), dist).cpu()) / W
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_val:.3f}", lr=f"{lr:.2e}")
        last = (total_steps is not None and step >= total_steps) or (
            budget.max_seconds is not None
            and elapsed_prev + time.perf_counter() - t0 >= budget.max_seconds
        )
        do_eval = len(v_ids) > 0 and (
            last
            or step in snapshots
            or (cfg.logging.eval_every and step % cfg.logging.eval_every == 0)
        )
        if step % cfg.logging.log_every == 0 or do_eval or last:
            now = time.perf_counter()
            rec = {
                "step": step,
                "tokens": tokens,
                "loss": loss_val,
                "lr": lr,
                "tokens_per_s": (tokens - tok_log) / max(now - t_log, 1e-9),
                "elapsed_s": elapsed_prev + now - t0,
            }
            if do_eval:
                val_loss = evaluate(model, v_ids, v_labels, B, device, bf16, dist)
                rec["val_loss"] = val_loss
            log(rec)
            t_log, tok_log = time.perf_counter(), tokens
        if step in snapshots:
            lm.meta["trained"] = {"steps": step, "tokens": tokens, "data": cfg.data.train}
            _export_model(
                run_dir / "snapshots" / f"step-{step:08d}", lm, model, optimizer, fsdp, dist
            )
        if (cfg.logging.checkpoint_every and step % cfg.logging.checkpoint_every == 0) or last:
            state = {
                "step": step,
                "tokens": tokens,
                "elapsed_s": elapsed_prev + time.perf_counter() - t0,
            }
            _save_checkpoint(
                run_dir, lm, model, optimizer, state, cfg.logging.keep_checkpoints, dist, fsdp
            )
    if bar is not None:
        bar.close()

    elapsed = elapsed_prev + time.perf_counter() - t0
    model_dir = run_dir / "model"
    lm.meta["trained"] = {"steps": step, "tokens": tokens, "data": cfg.data.train}
    _export_model(model_dir, lm, model, optimizer, fsdp, dist)
    if dist.main:
        result = TrainResult(
            run_dir, model_dir, step, tokens, loss_val, val_loss, elapsed, stopped_by
        )
        write_json(run_dir / "result.json", to_dict(dataclasses.asdict(result)))
        if errors.count:
            print(f"{errors.count} bad input(s) skipped; see {errors.path}")
    loggers.close()
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()
    return TrainResult(run_dir, model_dir, step, tokens, loss_val, val_loss, elapsed, stopped_by)


class _Loggers:
    """Optional TensorBoard / W&B sinks, imported only when asked for."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, dist: Dist):
        self.tb = self.wandb = None
        if not dist.main:
            return
        if cfg.logging.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        if cfg.logging.wandb:
            import wandb

            self.wandb = wandb.init(
                project=cfg.logging.wandb_project, config=to_dict(cfg), dir=str(run_dir)
            )

    def write(self, rec: dict) -> None:
        scalars = {
            k: v for k, v in rec.items() if k not in ("step",) and isinstance(v, (int, float))
        }
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, rec["step"])
        if self.wandb is not None:
            self.wandb.log(scalars, step=rec["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


__all__ = [
    "TrainConfig",
    "TrainResult",
    "Utterances",
    "evaluate",
    "latest_checkpoint",
    "lr_at",
    "train",
]
