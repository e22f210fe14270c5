"""Precision decision: AMX detected from the CPU's real flags, tested with injected facts."""

from __future__ import annotations

import types

import pytest
import torch

from twistlm import hardware
from twistlm.hardware import CpuFacts, bf16_is_fast, detect_cpu_facts, precision_name

AMX = CpuFacts(amx_bf16=True, amx_usable=True, avx512_bf16=True, source="test")
AVX2 = CpuFacts(amx_bf16=False, amx_usable=False, avx512_bf16=False, source="test")
ZEN4 = CpuFacts(amx_bf16=False, amx_usable=False, avx512_bf16=True, source="test")
AMX_REFUSED = CpuFacts(amx_bf16=True, amx_usable=False, avx512_bf16=True, source="test")


@pytest.mark.parametrize(
    "facts,fast", [(AMX, True), (AVX2, False), (ZEN4, False), (AMX_REFUSED, False)]
)
def test_decision_from_injected_facts(facts, fast):
    assert bf16_is_fast("cpu", facts=facts) is fast
    assert precision_name("cpu", facts=facts) == ("bf16" if fast else "fp32")


def _fake_torch_cpu(monkeypatch, caps, amx_init=True):
    fake = types.SimpleNamespace(get_capabilities=lambda: caps, _init_amx=lambda: amx_init)
    monkeypatch.setattr(hardware.torch, "cpu", fake)
    # what torch reports on AMX Xeons: the vector ISA only (the bug: "AMX" never appears)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")


def test_amx_cpu_reported_as_avx512_is_fast(monkeypatch):
    _fake_torch_cpu(monkeypatch, {"amx_bf16": True, "amx_tile": True, "avx512_bf16": True})
    facts = detect_cpu_facts()
    assert facts == CpuFacts(True, True, True, "torch")
    assert bf16_is_fast("cpu", facts=facts)


def test_amx_refused_by_os_is_not_fast(monkeypatch):
    _fake_torch_cpu(monkeypatch, {"amx_bf16": True, "avx512_bf16": True}, amx_init=False)
    assert not bf16_is_fast("cpu", facts=detect_cpu_facts())


def test_avx2_cpu_is_not_fast(monkeypatch):
    _fake_torch_cpu(monkeypatch, {"amx_bf16": False, "avx2": True, "avx512_bf16": False})
    assert not bf16_is_fast("cpu", facts=detect_cpu_facts())


@pytest.mark.parametrize(
    "flags,amx",
    [("fpu sse avx2 avx512_bf16 amx_bf16 amx_tile amx_int8", True), ("fpu sse avx2 fma", False)],
)
def test_cpuinfo_fallback_without_torch_table(monkeypatch, tmp_path, flags, amx):
    monkeypatch.setattr(hardware.torch, "cpu", types.SimpleNamespace(_init_amx=lambda: True))
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: X\nflags\t\t: {flags}\n\n")
    monkeypatch.setattr(hardware, "CPUINFO", cpuinfo)
    facts = detect_cpu_facts()
    assert facts.source == "/proc/cpuinfo"
    assert facts.amx_bf16 is amx and bf16_is_fast("cpu", facts=facts) is amx


def test_no_cpuinfo_means_fp32(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware.torch, "cpu", types.SimpleNamespace())
    monkeypatch.setattr(hardware, "CPUINFO", tmp_path / "missing")
    facts = detect_cpu_facts()
    assert facts.source == "none" and not bf16_is_fast("cpu", facts=facts)
