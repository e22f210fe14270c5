"""Training precision: fp32, bf16 with fp32 master weights, or bf16 autocast.

``runtime.precision`` picks one of:

- ``fp32``: fp32 weights, activations and optimizer.
- ``bf16``: the forward and backward run on a **bf16 copy** of the model (weights, activations
  and gradients in bf16, no per-op casts), while the model itself (``lm.model``) keeps the fp32
  master weights that AdamW updates (fp32 optimizer state). After each backward the bf16
  gradients are copied into the masters' ``.grad``; after each optimizer step the masters are
  copied back into the bf16 copy. This is the usual "bf16 with fp32 master weights" recipe
  (Megatron-LM's ``Float16OptimizerWithFloat16Params``, NVIDIA/Megatron-LM
  megatron/core/optimizer/optimizer.py); it is our own code. Checkpoints, exported models and
  resume see only the fp32 masters, so a run's files do not depend on the precision.
  Under FSDP the same idea is FSDP's own ``MixedPrecisionPolicy`` (bf16 gathered parameters,
  fp32 sharded masters), see :func:`twistlm.train.distributed.wrap_model`.
- ``bf16-autocast``: fp32 weights, matmuls under ``torch.autocast(bfloat16)`` (every forward
  casts the weights it uses).
- ``auto``: ``bf16`` where bf16 is fast (CUDA with bf16, a CPU with AMX:
  :func:`twistlm.hardware.bf16_is_fast`), else ``fp32``.

Why ``bf16`` over autocast on an AMX CPU: measured on a 2-core Xeon (docs/train.md,
``benchmarks/train.py``), autocast spends about as much time casting weights (``aten::copy_``)
as the bf16 matmuls themselves take.
"""

from __future__ import annotations

import copy

import torch

PRECISIONS = ("auto", "fp32", "bf16", "bf16-autocast")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` | ``bf16`` | ``bf16-autocast``: what ``precision`` means on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"runtime.precision must be one of {PRECISIONS}, not {precision!r}")
    if precision != "auto":
        return precision
    from twistlm.hardware import bf16_is_fast

    return "bf16" if bf16_is_fast(device) else "fp32"


class BF16Shadow:
    """A bf16 copy (``module``) of an fp32 ``master`` model for bf16 training.

    The forward and backward run through ``module``; the optimizer owns ``master``'s
    parameters. Call :meth:`pull_grads` after the backward pass and :meth:`push_weights` after
    the optimizer step (and after anything else that changes the masters, such as loading a
    checkpoint). Tied parameters stay tied: ``copy.deepcopy`` keeps the sharing, and
    ``parameters()`` lists each shared parameter once, in the same order in both models.
    """

    def __init__(self, master: torch.nn.Module):
        self.master = master
        self.module = copy.deepcopy(master).to(torch.bfloat16)
        self._pairs = list(zip(master.parameters(), self.module.parameters(), strict=True))
        for m, s in self._pairs:
            s.requires_grad_(m.requires_grad)
        self.module.train(master.training)

    @torch.no_grad()
    def pull_grads(self) -> None:
        """masters' ``.grad`` = fp32 copy of the bf16 gradients (None where there is none),
        then the bf16 gradients are dropped."""
        for m, s in self._pairs:
            if s.grad is None:
                m.grad = None
            elif m.grad is None or m.grad.shape != s.grad.shape:
                m.grad = s.grad.to(torch.float32)
            else:
                m.grad.copy_(s.grad)
            s.grad = None

    @torch.no_grad()
    def push_weights(self) -> None:
        """bf16 copy = the masters rounded to bf16 (round to nearest even)."""
        for m, s in self._pairs:
            s.copy_(m)

    def zero_grad(self) -> None:
        """Drop the masters' gradients (the bf16 ones are dropped by :meth:`pull_grads`)."""
        for m, s in self._pairs:
            m.grad = None
            s.grad = None


def fused_adamw_ok(device: torch.device) -> bool:
    """Whether ``torch.optim.AdamW(fused=True)`` runs on ``device`` (CUDA, and CPU since
    torch 2.4): one kernel over all parameters instead of a dozen per-tensor ops."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 4)
