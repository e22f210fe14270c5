"""Synthesis speed: `synthesize_corpus` with N worker processes vs one process (the baseline).

    python -m benchmarks.synth_corpus --hours 0.1 --workers 2

(`-m` from the repo root: benchmarks/tokenize.py would shadow the stdlib module otherwise.)

Both runs synthesize the same utterances (same seed, fresh folders) and print seconds of wall
time per hour of speech and the CPU seconds used (load-independent), side by side, with the
machine load (other jobs share the cores: with a load well above the core count, a fixed share
of the CPU is all we get and extra workers cannot help).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

from twistlm.synth.corpus import synthesize_corpus


def _cpu() -> float:
    """User+system CPU seconds of this process and its finished children (workers, TTS binaries)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--hours", type=float, default=0.1)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    rows = []
    for workers in (1, args.workers):
        with tempfile.TemporaryDirectory() as tmp:
            t, c = time.time(), _cpu()
            s = synthesize_corpus(tmp, hours=args.hours, workers=workers)
            wall, cpu = time.time() - t, _cpu() - c
        rows.append((workers, s.hours, wall, os.getloadavg(), cpu))
    print(
        f"\n{'run':<22}{'speech h':>10}{'wall s':>10}{'wall min per speech h':>24}"
        f"{'CPU s (all procs)':>19}  load"
    )
    for (_w, h, wall, load, cpu), name in zip(
        rows, ("baseline: 1 process", f"ours: {args.workers} workers"), strict=True
    ):
        print(f"{name:<22}{h:>10.3f}{wall:>10.1f}{wall / 60 / h:>24.2f}{cpu:>19.1f}  {load[0]:.1f}")
    print(f"speed-up {rows[0][2] / rows[1][2]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
