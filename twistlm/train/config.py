"""Typed training config (YAML + ``key=value`` overrides via :func:`twistlm.config.load_config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from twistlm.config import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """Where the units come from and how they become blocks.

    Attributes:
        train: unit shard folder (or one ``.parquet`` file) from ``twistlm tokenize``.
        val: separate validation shards; None splits ``train`` by utterance id instead.
        val_fraction: share of utterances held out when ``val`` is None (hash of the id, so
            the split is deterministic and stable when data is added).
        val_max_utterances: cap on the held-out set (the smallest hashes win).
        block_size: ids per training block (BOS u .. EOS BOS u .. packed, no padding).
        min_units: utterances with fewer units are skipped.
        packing: how a block is attended: ``document`` (each utterance sees only itself,
            positions restart per utterance; the default) or ``stream`` (attention and
            positions run across utterance boundaries, as twistlm trained before; for
            reproducing such runs). See :mod:`twistlm.data.packing` and docs/train.md.
    """

    train: str = ""
    val: str | None = None
    val_fraction: float = 0.05
    val_max_utterances: int = 1000
    block_size: int = 512
    min_units: int = 1
    packing: str = "document"

    def __post_init__(self) -> None:
        from twistlm.data.packing import PACKING_MODES

        if self.packing not in PACKING_MODES:
            raise ConfigError(f"data.packing must be one of {PACKING_MODES}, got {self.packing!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.block_size < 8:
            raise ConfigError(f"data.block_size must be >= 8, got {self.block_size}")


@dataclass(frozen=True)
class ModelConfig:
    """The SpeechLM to train.

    Attributes:
        init_from: an existing SpeechLM dir (``twistlm init-lm`` output or a previous run's
            ``model``); when set, the fields below except ``n_units`` are ignored.
        text_lm: text LM for the warm start (HF dir, hub name, ``.gguf``; None = SmolLM2-135M).
        start: ``warm`` (TWIST) or ``cold`` (same architecture, random init).
        init: new unit-row init for warm starts: random | truncate | mean | small.
        init_scale: noise scale (x source embedding std) for ``mean`` / ``small``.
        out_init: output layer init for warm starts: ``zero`` (untied, zero-initialised: the
            measured best with ``init: random``, docs/lm.md) | ``copy`` (as the input rows).
        tie: tie input and output embeddings; None = as the text LM.
        n_layers: keep only the first N transformer layers (None = all).
        n_units: unit vocabulary size; None = the shards' tokenizer.json n_units.
    """

    init_from: str | None = None
    text_lm: str | None = None
    start: Literal["warm", "cold"] = "warm"
    init: Literal["random", "truncate", "mean", "small"] = "random"
    init_scale: float = 0.1
    out_init: Literal["copy", "zero"] = "zero"
    tie: bool | None = None
    n_layers: int | None = None
    n_units: int | None = None


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and batching.

    Attributes:
        lr: peak learning rate.
        betas, eps, weight_decay: AdamW (decay on matrices only, not norms/biases).
        grad_clip: max global gradient norm (0 disables).
        batch_size: blocks per micro-batch per process.
        grad_accum: micro-batches per optimizer step. Global batch (blocks) =
            batch_size x grad_accum x world_size.
    """

    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    batch_size: int = 4
    grad_accum: int = 1

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("optim: lr must be > 0, batch_size and grad_accum >= 1")


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule: linear warmup, then cosine / inverse-sqrt / constant.

    Attributes:
        kind: cosine | inverse_sqrt | constant.
        warmup_steps: linear warmup from 0 to ``optim.lr``.
        decay_steps: cosine horizon; None = ``budget.max_steps`` (or the steps the token
            budget allows). Set it explicitly when a wall-clock budget may stop the run early.
        min_lr_ratio: cosine floor as a fraction of the peak lr.
    """

    kind: Literal["cosine", "inverse_sqrt", "constant"] = "cosine"
    warmup_steps: int = 100
    decay_steps: int | None = None
    min_lr_ratio: float = 0.1


@dataclass(frozen=True)
class BudgetConfig:
    """When to stop (whichever comes first; at least one must be set).

    Attributes:
        max_steps: optimizer steps.
        max_tokens: tokens seen (global, input ids).
        max_seconds: wall-clock seconds of training (summed over resumed runs).
    """

    max_steps: int | None = 1000
    max_tokens: int | None = None
    max_seconds: float | None = None


@dataclass(frozen=True)
class RuntimeConfig:
    """Hardware and speed options.

    Attributes:
        device: auto (cuda:LOCAL_RANK if available, else cpu) | cpu | cuda.
        precision: auto | fp32 | bf16 | bf16-autocast (twistlm.train.precision). ``bf16``:
            forward and backward on a bf16 copy of the model, fp32 master weights and AdamW
            state; ``bf16-autocast``: fp32 weights under torch.autocast; ``auto``: ``bf16``
            on CUDA with bf16 or a CPU with AMX, else ``fp32``.
        grad_checkpointing: recompute activations in the backward pass (less memory).
        compile: wrap the model in ``torch.compile`` (the forward and, through AOTAutograd,
            the backward). Costs a one-time compile (about 20 s for 6 layers on 2 CPU cores).
        threads: torch CPU threads (None = torch default).
        distributed: ddp | fsdp (fully_shard per decoder layer) when run under torchrun.
        checkpoint_format: full (rank 0 gathers the whole state: a SpeechLM dir plus
            optimizer.pt) | sharded (FSDP only: every rank writes its own shards with
            torch.distributed.checkpoint, no gather; for bodies whose full state does not fit
            rank 0's memory). Resume reads either. Final models and snapshots are always full.
    """

    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "bf16-autocast"] = "auto"
    grad_checkpointing: bool = False
    compile: bool = False
    threads: int | None = None
    distributed: Literal["ddp", "fsdp"] = "ddp"
    checkpoint_format: Literal["full", "sharded"] = "full"


@dataclass(frozen=True)
class LoggingConfig:
    """Outputs.

    Attributes:
        run_dir: folder of metrics.jsonl, checkpoints/, model/, config.yaml, result.json.
        log_every: steps between metrics lines.
        eval_every: steps between validation passes (also at the end; 0 = only at the end).
        eval_at_start: validate once before the first step (the initial loss).
        checkpoint_every: steps between checkpoints (0 = only at the end).
        keep_checkpoints: how many recent checkpoints to keep.
        snapshot_steps: steps at which the model (weights only, a loadable SpeechLM dir) is
            also saved to ``run_dir/snapshots/step-NNNNNNNN`` and validated; never deleted.
            For budget studies: ``twistlm quickstart --recipe long`` scores these.
        progress: tqdm bar.
        tensorboard: also write TensorBoard scalars (needs the ``tensorboard`` package).
        wandb: also log to Weights & Biases (needs ``wandb``); project name below.
    """

    run_dir: str = "runs/train"
    log_every: int = 10
    eval_every: int = 100
    eval_at_start: bool = True
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    snapshot_steps: tuple[int, ...] = ()
    progress: bool = True
    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "twistlm"


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs. ``resume`` continues from run_dir's last checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    seed: int = 0
    resume: bool = False

    def __post_init__(self) -> None:
        b = self.budget
        if b.max_steps is None and b.max_tokens is None and b.max_seconds is None:
            raise ConfigError("budget: set at least one of max_steps, max_tokens, max_seconds")
