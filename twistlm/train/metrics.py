"""A run's metric records: ``metrics.jsonl`` (one JSON object per line) and optional
TensorBoard / W&B sinks, written by the main process only."""

from __future__ import annotations

import json
from pathlib import Path

from twistlm.config import to_dict
from twistlm.io import atomic_write_text
from twistlm.train.config import TrainConfig
from twistlm.train.distributed import Dist


class MetricsLog:
    """Appends records ``{"step", "tokens", "loss", ...}`` to ``run_dir/metrics.jsonl``.

    On resume (``resumed_at`` = the checkpoint's step) the lines after that step are dropped
    first, so the file reads as one uninterrupted run; a fresh run starts an empty file.
    """

    def __init__(self, cfg: TrainConfig, run_dir: Path, dist: Dist, resumed_at: int | None = None):
        self.path = run_dir / "metrics.jsonl"
        self.main = dist.main
        self.tb = self.wandb = None
        if not self.main:
            return
        lines = (
            self.path.read_text().splitlines()
            if self.path.exists() and resumed_at is not None
            else []
        )
        kept = [ln for ln in lines if ln.strip() and json.loads(ln)["step"] <= (resumed_at or 0)]
        atomic_write_text(self.path, "".join(ln + "\n" for ln in kept))
        if cfg.logging.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        if cfg.logging.wandb:
            import wandb

            self.wandb = wandb.init(
                project=cfg.logging.wandb_project, config=to_dict(cfg), dir=str(run_dir)
            )

    def log(self, rec: dict) -> None:
        if not self.main:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        scalars = {k: v for k, v in rec.items() if k != "step" and isinstance(v, (int, float))}
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
