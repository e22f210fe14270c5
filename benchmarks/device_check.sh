#!/usr/bin/env bash
# Speed on one device, in one run: training (twistlm vs HF Trainer + padding, tokens/s, MFU
# against the device's measured matmul peak in the run's precision, document vs stream
# packing) and scoring (twistlm eval's packed path vs one utterance at a time, pairs/s,
# identical accuracy). Writes OUT/device_check.json and OUT/device_check.md.
#
#   benchmarks/device_check.sh OUT            # GPU sizes: OPT-350M and OPT-1.3B shaped bodies
#                                             # (random weights), bf16, eager and torch.compile;
#                                             # SmolLM2 warm start scoring 1000 pairs (needs CUDA)
#                                             # and HuBERT-base layer 6 tokenization
#   benchmarks/device_check.sh OUT --small    # CPU smoke sizes (tiny OPT body, 1-layer scorer;
#                                             # no tokenization: it needs 5 min of TTS speech)
#
# PYTHON (default: python) runs the benchmarks; run from the repository root.
set -euo pipefail
OUT=${1:?usage: benchmarks/device_check.sh OUT [--small]}
MODE=${2:-full}
PY=${PYTHON:-python}
mkdir -p "$OUT"
if [ "$MODE" = "--small" ]; then
  "$PY" benchmarks/train.py --arch opt-tiny --n-units 50 --block 64 --batch 2 --steps 2 \
    --precision fp32 --threads 1 --packing both --out "$OUT/work-train" \
    --json "$OUT/train-opt-tiny.json"
  "$PY" benchmarks/eval.py --pairs 6 --layers 1 --n-units 50 --threads 1 --batch-size 4 \
    --model-cache "$OUT/work-eval-model" --json "$OUT/eval.json"
elif [ "$MODE" = "full" ]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: use --small on a CPU')"
  for arch in opt-350m opt-1.3b; do
    "$PY" benchmarks/train.py --arch "$arch" --n-units 500 --block 2048 --batch 8 --steps 5 \
      --device cuda --precision bf16 --packing both --out "$OUT/work-train" \
      --json "$OUT/train-$arch.json"
  done
  "$PY" benchmarks/train.py --arch opt-1.3b --n-units 500 --block 2048 --batch 8 --steps 5 \
    --device cuda --precision bf16 --compile --out "$OUT/work-train" \
    --json "$OUT/train-opt-1.3b-compiled.json"
  "$PY" benchmarks/eval.py --pairs 1000 --device cuda --bf16 --batch-size 64 \
    --model-cache "$OUT/work-eval-model" --json "$OUT/eval.json"
  # HuBERT-base layer 6 (random weights, 50 Hz, k=500): audio seconds per second; needs flite
  # for its 5 min of speech (or a filled --cache folder)
  "$PY" benchmarks/tokenize.py --configs 50:6:500 --device cuda --json "$OUT/tokenize.json"
else
  echo "unknown mode $MODE (use --small or nothing)" >&2
  exit 2
fi
"$PY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
train = {p.stem[len("train-"):]: json.loads(p.read_text()) for p in sorted(out.glob("train-*.json"))}
ev = json.loads((out / "eval.json").read_text())
rows = [
    "| training | device | precision | compile | HF Trainer tok/s | twistlm tok/s | speedup "
    "| MFU twistlm | stream packing tok/s |",
    "|---|---|---|---|---|---|---|---|---|",
]
for name, r in train.items():
    stream = r["ours_stream"]["tokens_per_s"] if r.get("ours_stream") else None
    mfu = r["mfu"][f"ours-{r['packing']}"]
    rows.append(
        f"| {name} ({r['layers']} layers) | {r['device']} | {r['precision']} | {r['compile']} "
        f"| {r['hf']['tokens_per_s']:.0f} | {r['ours']['tokens_per_s']:.0f} "
        f"| {r['speedup']:.2f}x | {100 * mfu:.1f}% | {'%.0f' % stream if stream else '-'} |"
    )
rows += [
    "",
    "| scoring | device | pairs | one by one pairs/s | twistlm pairs/s | speedup | identical accuracy |",
    "|---|---|---|---|---|---|---|",
    f"| SmolLM2 warm start ({ev['layers']} layers) | {ev['device']} | {ev['pairs']} "
    f"| {ev['pairs_per_s_baseline']:.1f} | {ev['pairs_per_s_ours']:.1f} | {ev['speedup']:.2f}x "
    f"| {ev['identical_accuracy']} |",
]
tok = None
if (out / "tokenize.json").exists():
    tok = json.loads((out / "tokenize.json").read_text())
    rows += [
        "",
        "| tokenization (audio s per s) | naive transformers + sklearn | twistlm fp32 | twistlm fast | fast units identical |",
        "|---|---|---|---|---|",
    ]
    for r in tok["results"]:
        if "a_naive" in r:
            rows.append(
                f"| {r['config']} | {r['a_naive']:.0f} | {r['b_ours_fp32']:.0f} "
                f"| {r['c_ours_fast']:.0f} | {100 * r['identical_c_vs_b']:.1f}% |"
            )
(out / "device_check.json").write_text(
    json.dumps({"train": train, "eval": ev, "tokenize": tok}, indent=2)
)
(out / "device_check.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
