"""Resumable stages: each runs once, and ``stages.json`` records its result and time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twistlm.io import read_json, write_json
from twistlm.quickstart.config import QuickstartConfig


class Stages:
    """Runs named stages once: finished ones are recorded in ``stages.json`` and skipped."""

    def __init__(self, out: Path, names: list[str]):
        self.out = out
        self.path = out / "stages.json"
        self.names = names
        self.done: dict[str, dict[str, Any]] = read_json(self.path) if self.path.exists() else {}
        self.t0 = time.time()
        self.ran_any = False  # whether a stage ran (not skipped) in this invocation

    def run(self, name: str, what: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        i = self.names.index(name) + 1
        n = len(self.names)
        if name in self.done:
            rec = self.done[name]
            print(f"[{i}/{n}] {name}: done earlier in {rec['seconds']:.0f} s, skipped")
            return rec["result"]
        elapsed = time.time() - self.t0
        print(f"\n[{i}/{n}] {name}: {what}  (elapsed {elapsed / 60:.1f} min)", flush=True)
        t = time.time()
        result = fn()
        secs = time.time() - t
        self.ran_any = True
        self.done[name] = {"seconds": round(secs, 1), "result": result}
        write_json(self.path, self.done)
        print(f"[{i}/{n}] {name}: finished in {secs:.0f} s", flush=True)
        return result

    def seconds(self) -> dict[str, float]:
        return {k: v["seconds"] for k, v in self.done.items()}


STAGES = [
    "corpus",
    "tokenizer",
    "tokenize",
    "benchmarks",
    "heldout-speech",
    "tokenizer-report",
    "train-warm",
    "train-cold",
    "eval-warm",
    "eval-cold",
    "controls",
    "scaling",
    "vocoder",
    "generation",
    "generation-cold",
    "report",
]


def stage_names(cfg: QuickstartConfig) -> list[str]:
    """The stages of this run (the scaling study only where asked for)."""
    return [s for s in STAGES if s != "scaling" or cfg.scaling_points > 0]
