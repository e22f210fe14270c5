"""The quickstart's training stages: the warm model's step plan from a measured speed, then
the warm and cold twins on the same plan (identical architecture, data order, token budget)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from twistlm.config import to_dict
from twistlm.quickstart.config import QuickstartConfig, budget_steps


def train_config(
    cfg: QuickstartConfig,
    start: str,
    units: Path,
    run_dir: Path,
    steps: int,
    decay_steps: int,
    max_seconds: float | None,
):
    from twistlm.train.config import (
        BudgetConfig,
        DataConfig,
        LoggingConfig,
        ModelConfig,
        OptimConfig,
        RuntimeConfig,
        ScheduleConfig,
        TrainConfig,
    )

    eval_every = max(1, decay_steps // cfg.eval_points)
    return TrainConfig(
        # validation: other sentences by voices the LMs never hear (see quickstart.speech.heldout_speech)
        data=DataConfig(
            train=str(units),
            val=str(units.parent / "units-heldout"),
            block_size=cfg.block_size,
            val_max_utterances=300,
        ),
        model=ModelConfig(
            text_lm=cfg.text_lm,
            start=start,
            init=cfg.init,
            init_scale=cfg.init_scale,
            out_init=cfg.out_init,
            n_layers=cfg.n_layers,
        ),
        optim=OptimConfig(lr=cfg.lr, batch_size=cfg.batch_size),
        schedule=ScheduleConfig(
            kind="cosine", warmup_steps=max(1, decay_steps // 20), decay_steps=decay_steps
        ),
        budget=BudgetConfig(max_steps=steps, max_seconds=max_seconds),
        runtime=RuntimeConfig(compile=cfg.uses_compile()),
        logging=LoggingConfig(
            run_dir=str(run_dir),
            log_every=max(1, eval_every // 4),
            eval_every=eval_every,
            eval_at_start=True,
            # a full-depth checkpoint is ~1.6 GB (weights + AdamW state), ~15 s to write on the
            # 2-core machine: one mid-run and the final one suffice for resuming
            checkpoint_every=max(eval_every, decay_steps // 2),
            keep_checkpoints=1,
            snapshot_steps=budget_steps(decay_steps, cfg.scaling_points),
        ),
        seed=cfg.seed,
        resume=True,
    )


def measure_tokens_per_s(
    cfg: QuickstartConfig, n_units: int, max_steps: int = 8
) -> tuple[float, float]:
    """(steady training tokens/s, warm-up seconds) of the quickstart model on this machine.

    The first steps of a CPU run are several times slower than the rest (measured on an AMX
    Xeon: 3 steps at 100-250 tokens/s, then ~550 at full depth; kernel set-up and first-touch
    memory), so steps are timed until two in a row agree within 15% and their mean is the
    steady rate. The warm-up is what the slow steps cost beyond that rate: the plan subtracts it
    from the time budget, because the training run pays it again.
    """
    import numpy as np
    import torch

    from twistlm.data.packing import attention_inputs
    from twistlm.hardware import keep_cpu_memory
    from twistlm.lm.warm_start import build_speech_lm
    from twistlm.train.precision import BF16Shadow, fused_adamw_ok, resolve_precision
    from twistlm.train.trainer import train_step

    keep_cpu_memory()  # as the training run does (twistlm.train.prepare.setup)
    lm = build_speech_lm(cfg.text_lm, n_units, start="cold", n_layers=cfg.n_layers, seed=cfg.seed)
    model = lm.model.train()
    cpu = torch.device("cpu")
    precision = resolve_precision("auto", cpu)  # what the training run will use
    shadow = BF16Shadow(model) if precision == "bf16" else None
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=fused_adamw_ok(cpu))
    fwd = shadow.module if shadow else model
    if cfg.uses_compile():  # the compile time counts as warm-up, as in the training run
        fwd = torch.compile(fwd)
    rng = np.random.default_rng(cfg.seed)
    ids = rng.integers(lm.vocab.offset, lm.vocab.vocab_size, (cfg.batch_size, cfg.block_size))
    ids[:, ::64] = lm.vocab.bos_id  # utterance starts, so the document masks cost what they will
    micro = [(ids, ids.copy())]

    def inputs(x):  # the trainer's default packing
        return attention_inputs(x, lm.vocab, "document")

    times: list[float] = []
    for _ in range(max_steps):
        t = time.perf_counter()
        float(
            train_step(
                shadow.module if shadow else model,
                opt,
                micro,
                1e-5,
                device=cpu,
                autocast=precision == "bf16-autocast",
                inputs=inputs,
                shadow=shadow,
            )
        )
        times.append(time.perf_counter() - t)
        if len(times) >= 3 and abs(times[-1] - times[-2]) <= 0.15 * min(times[-2:]):
            break
    steady = sum(times[-2:]) / 2
    warmup = sum(max(0.0, t - steady) for t in times)
    return ids.size / max(steady, 1e-6), warmup


def train_warm(cfg: QuickstartConfig, units: Path, out: Path) -> dict[str, Any]:
    from twistlm.data.shards import read_shard_metadata

    n_units = read_shard_metadata(units).n_units
    tok_per_s, warmup_s = measure_tokens_per_s(cfg, n_units)
    planned = cfg.planned_steps(tok_per_s, warmup_s)
    import torch

    from twistlm.train.precision import resolve_precision

    precision = resolve_precision("auto", torch.device("cpu"))
    setting = precision + (", compiled" if cfg.uses_compile() else "")
    print(
        f"measured {tok_per_s:.0f} training tokens/s ({setting}) after a {warmup_s:.0f} s "
        f"warm-up -> planning {planned} steps"
    )
    # the wall-clock cap is a safety net 25% above the plan; the step plan is the budget
    res = train_model(cfg, "warm", units, out, planned, planned, 1.25 * cfg.train_seconds_per_model)
    return res | {
        "planned_steps": planned,
        "calibrated_tokens_per_s": tok_per_s,
        "calibrated_warmup_s": warmup_s,
        "precision": precision,
        "compile": cfg.uses_compile(),
    }


def train_model(
    cfg: QuickstartConfig,
    start: str,
    units: Path,
    out: Path,
    steps: int,
    decay_steps: int,
    max_seconds: float | None,
) -> dict[str, Any]:
    from twistlm.train.trainer import train

    run_dir = out / "runs" / start
    tcfg = train_config(cfg, start, units, run_dir, steps, decay_steps, max_seconds)
    res = train(tcfg)
    model_dir = out / "models" / start
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.copytree(res.model_dir, model_dir)
    return {
        "steps": res.steps,
        "tokens": res.tokens,
        "loss": res.loss,
        "val_loss": res.val_loss,
        "elapsed_s": res.elapsed_s,
        "stopped_by": res.stopped_by,
        "model_dir": str(model_dir),
        "run_dir": str(run_dir),
        "config": to_dict(tcfg),
    }
