"""What the hardware does well: one answer for every stage that picks a precision."""

from __future__ import annotations

import torch


def bf16_is_fast(device: str | torch.device = "cpu") -> bool:
    """True where bf16 autocast speeds things up: CUDA GPUs with bf16, and CPUs with AMX.

    On CPUs without AMX (e.g. AVX2-only) bf16 autocast is emulated and measured ~15x *slower*
    than fp32 for SmolLM2 training steps (docs/train.md), so callers should stay in fp32 there.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return "AMX" in torch.backends.cpu.get_cpu_capability().upper()
