"""One process per device under torchrun: rank/world, device and precision, DDP/FSDP2 wrapping.

The collectives are DDP's / FSDP's own; the only hand-written one is the sum of a few scalars
(loss, validation NLL) across ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from twistlm.train.config import TrainConfig


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (a single process is rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_dist(device_kind: str) -> Dist:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1 (nccl on cuda, gloo otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Dist(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_sum(t: torch.Tensor, dist: Dist) -> torch.Tensor:
    """Sum ``t`` over ranks in place (a no-op for one process)."""
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    return t


def barrier(dist: Dist) -> None:
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()


def pick_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    want = cfg.runtime.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(want)


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks (HF ``_no_split_modules``), each sharded on its own under FSDP."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    return [m for m in model.modules() if type(m).__name__ in names]


def wrap_model(
    model: torch.nn.Module, dist: Dist, fsdp: bool, device: torch.device, bf16: bool = False
) -> torch.nn.Module:
    """The module the forward pass runs through: FSDP2 shards ``model`` in place and returns it,
    DDP wraps it; one process gets ``model`` itself.

    Under FSDP with ``bf16`` the gathered parameters are bf16 for compute while the sharded
    master weights, gradients' reduction and the optimizer stay fp32 (``MixedPrecisionPolicy``).
    """
    if fsdp:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16 if bf16 else None,
            reduce_dtype=torch.float32 if bf16 else None,
        )
        for layer in decoder_layers(model):
            fully_shard(layer, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
        return model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model
