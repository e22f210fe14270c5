"""Synthesis speed: `synthesize_corpus` with N worker processes vs one process (the baseline).

    python benchmarks/synth_corpus.py --hours 0.1 --workers 2

Both runs synthesize the same utterances (same seed, fresh folders) and print seconds of wall
time per hour of speech, side by side, with the machine load (other jobs share the cores).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from twistlm.synth.corpus import synthesize_corpus


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
            t = time.time()
            s = synthesize_corpus(tmp, hours=args.hours, workers=workers)
            wall = time.time() - t
        rows.append((workers, s.hours, wall, os.getloadavg()))
    print(f"\n{'run':<22}{'speech h':>10}{'wall s':>10}{'wall min per speech h':>24}  load")
    for (_w, h, wall, load), name in zip(
        rows, ("baseline: 1 process", f"ours: {args.workers} workers"), strict=True
    ):
        print(f"{name:<22}{h:>10.3f}{wall:>10.1f}{wall / 60 / h:>24.2f}  {load[0]:.1f}")
    print(f"speed-up {rows[0][2] / rows[1][2]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
