"""What the hardware does well: one answer for every stage that picks a precision.

bf16 on a CPU is only fast where the CPU multiplies bf16 natively with AMX tiles (Intel Xeon
Sapphire Rapids and later: ``amx_bf16``). Elsewhere (AVX2-only CPUs) bf16 autocast is emulated
and measured 6-100x *slower* than fp32 (docs/train.md, docs/tokenizer.md). On an AMX Xeon,
full-depth SmolLM2-135M training measured 253 tok/s fp32 vs 494 tok/s bf16 autocast.

``torch.backends.cpu.get_cpu_capability()`` cannot tell: it answers ``"AVX512"`` on AMX CPUs
(it names the vector ISA torch's kernels were dispatched to, not the matrix units). So the CPU
facts come from torch's own capability table (``torch.cpu.get_capabilities()``, torch >= 2.9),
else from the ``flags`` line of ``/proc/cpuinfo``; and AMX also needs the kernel to grant the
process its tile state, which ``torch.cpu._init_amx()`` requests (Linux ``arch_prctl``).

CPUs with ``avx512_bf16`` but no AMX (e.g. AMD Zen 4) are treated as "not fast": their bf16
dot products are at most 2x fp32 FMAs and autocast adds casts on every op; unmeasured here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuFacts:
    """What decides CPU precision.

    Attributes:
        amx_bf16: the CPU has AMX bf16 tiles (``amx_bf16`` flag).
        amx_usable: the OS granted this process AMX tile state (False where the kernel refuses).
        avx512_bf16: the CPU has AVX512-BF16 dot products (informational).
        source: where the flags came from (``torch`` or ``/proc/cpuinfo`` or ``none``).
    """

    amx_bf16: bool
    amx_usable: bool
    avx512_bf16: bool
    source: str


def _flags_from_cpuinfo(text: str) -> set[str]:
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def detect_cpu_facts() -> CpuFacts:
    """Read the CPU's real flags (torch's capability table, else /proc/cpuinfo)."""
    caps = None
    get_caps = getattr(getattr(torch, "cpu", None), "get_capabilities", None)
    if get_caps is not None:
        try:
            caps = dict(get_caps())
        except Exception:  # noqa: BLE001 - older builds may not implement it on every arch
            caps = None
    if caps is not None and "amx_bf16" in caps:
        amx, avx512 = bool(caps.get("amx_bf16")), bool(caps.get("avx512_bf16"))
        source = "torch"
    else:
        try:
            flags = _flags_from_cpuinfo(CPUINFO.read_text())
            source = "/proc/cpuinfo"
        except OSError:
            flags, source = set(), "none"
        amx, avx512 = "amx_bf16" in flags, "avx512_bf16" in flags
    usable = False
    if amx:
        init = getattr(getattr(torch, "cpu", None), "_init_amx", None)
        try:
            usable = bool(init()) if init is not None else True
        except Exception:  # noqa: BLE001 - no permission API: trust the flag
            usable = True
    return CpuFacts(amx_bf16=amx, amx_usable=usable, avx512_bf16=avx512, source=source)


@functools.cache
def cpu_facts() -> CpuFacts:
    """:func:`detect_cpu_facts`, once per process."""
    return detect_cpu_facts()


def cpu_bf16_is_fast(facts: CpuFacts | None = None) -> bool:
    """True where bf16 matmuls run natively on this CPU (AMX bf16 tiles the OS lets us use)."""
    facts = cpu_facts() if facts is None else facts
    return facts.amx_bf16 and facts.amx_usable


def bf16_is_fast(device: str | torch.device = "cpu", facts: CpuFacts | None = None) -> bool:
    """True where bf16 autocast speeds things up: CUDA GPUs with bf16, and CPUs with AMX.

    Every stage that picks a precision (training, scoring, generation, the tokenizer's fast
    mode, the quickstart's budget plan) asks this. ``facts`` injects the CPU facts (tests).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return cpu_bf16_is_fast(facts)


def precision_name(device: str | torch.device = "cpu", facts: CpuFacts | None = None) -> str:
    """``"bf16"`` or ``"fp32"``: what :func:`bf16_is_fast` picks, for logs and reports."""
    return "bf16" if bf16_is_fast(device, facts) else "fp32"


# glibc mallopt parameters (malloc.h): M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def keep_cpu_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the OS.

    A CPU training step frees and re-allocates the same activation buffers every step. By
    default glibc serves blocks above a threshold (128 KiB, adapting up to 32 MiB) with fresh
    ``mmap`` pages and trims the heap top above 128 KiB, so a step can page-fault on memory the
    previous step just returned; page faults are slow in a VM. Raising the mmap threshold to its
    64-bit maximum (32 MiB) and the trim threshold to 1 GiB keeps those buffers in the heap:
    measured 0.54 -> 0.51 s per 6-layer bf16 step on the 2-core AMX Xeon, with steadier steps
    (docs/train.md). Affects this process only; a no-op (False) where libc is not glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1
    return mallopt(_M_TRIM_THRESHOLD, 1024 * 1024 * 1024) == 1 and ok
