"""Training throughput: (a) HF Trainer + padding collator, one utterance per row, vs (b) twistlm.

Same model (SmolLM2-135M warm-started, full depth by default), same unit data, same precision,
about the same number of real tokens per optimizer step. Each side runs in its own process so
peak RSS is its own. Prints tokens/s (real, non-padding tokens), peak RSS, model FLOPs/token,
achieved FLOP/s and the machine's measured peak matmul FLOP/s, plus os.getloadavg() (other
jobs on a shared machine slow both sides).

Data: a SYNTHETIC word-bigram unit corpus (twistlm.train.synthetic, 200 units, ~140 units per
utterance like 7 s of 25 Hz deduplicated speech) unless --shards points at real unit shards.

    python benchmarks/train.py                        # full depth, 4 x 512 blocks, 3 timed steps
    python benchmarks/train.py --layers 6 --steps 5   # quicker
    python benchmarks/train.py --arch opt-1.3b --device cuda --compile --json r.json   # a GPU

--arch opt-350m / opt-1.3b build OPT-shaped bodies with random weights (the speed of a warm
start does not depend on its weights) over a 500-unit vocabulary; opt-tiny is the CPU smoke
size. MFU is achieved model FLOP/s over the peak matmul FLOP/s measured on the same device in
the run's precision (both fp32 and bf16 peaks are printed).
"""

# ruff: noqa: E402  (sys.path is fixed before the imports)
from __future__ import annotations

import os
import sys

# benchmarks/ holds tokenize.py etc.; keep this folder off sys.path so the stdlib wins.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def flops_per_token(model, block: int) -> float:
    """Training FLOPs per token: 6 x (non-embedding params + output layer) + attention scores.

    Attention: 6 x n_layers x T x d per token (QK^T and AV, forward + backward; Kaplan et al. /
    PaLM appendix B), with T the attended context length.
    """
    emb = model.get_input_embeddings().weight
    n = sum(p.numel() for p in model.parameters()) - emb.numel()
    out = model.get_output_embeddings().weight
    if out is emb:
        n += out.numel()  # the tied output layer is a matmul too
    cfg = model.config
    return 6.0 * n + 6.0 * cfg.num_hidden_layers * block * cfg.hidden_size


def peak_matmul_flops(
    threads: int, seconds: float = 3.0, n: int = 2048, dtype=torch.float32, device: str = "cpu"
) -> float:
    """Measured n^3 matmul FLOP/s on ``device`` in ``dtype`` (8192^3 on a GPU)."""
    torch.set_num_threads(threads)
    if device != "cpu":
        n = max(n, 8192)
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    _sync(device)
    t, k = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        a @ b
        k += 1
        if device != "cpu" and k % 10 == 0:
            _sync(device)
    _sync(device)
    return 2 * n**3 * k / (time.perf_counter() - t)


def _sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


# OPT bodies (facebook/opt-350m, opt-1.3b config.json); opt-tiny is the CPU smoke size
ARCHS = {
    "opt-350m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                     ffn_dim=4096, word_embed_proj_dim=512),
    "opt-1.3b": dict(hidden_size=2048, num_hidden_layers=24, num_attention_heads=32,
                     ffn_dim=8192, word_embed_proj_dim=2048),
    "opt-tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     ffn_dim=128, word_embed_proj_dim=64),
}  # fmt: skip


def build_model(arch: str, n_units: int, layers: int | None, block: int):
    """A SpeechLM over ``n_units`` with the body ``arch`` (smollm2: the warm start; OPT shapes:
    random weights)."""
    from twistlm.lm.warm_start import build_speech_lm

    if arch == "smollm2":
        return build_speech_lm(None, n_units, init="mean", n_layers=layers)
    from transformers import OPTConfig, OPTForCausalLM

    from twistlm.lm.model import SpeechLM
    from twistlm.lm.vocab import UnitVocab

    vocab = UnitVocab.twistlm(n_units)
    kw = dict(ARCHS[arch])
    if layers:
        kw["num_hidden_layers"] = layers
    cfg = OPTConfig(vocab_size=vocab.vocab_size, max_position_embeddings=max(2048, block),
                    pad_token_id=vocab.pad_id, bos_token_id=vocab.bos_id,
                    eos_token_id=vocab.eos_id, **kw)  # fmt: skip
    torch.manual_seed(0)
    return SpeechLM(OPTForCausalLM(cfg), vocab, {"init": f"random {arch} body (speed only)"})


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB -> GB


def child_hf(args) -> dict:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from twistlm.lm.model import SpeechLM
    from twistlm.train.data import read_units

    torch.set_num_threads(args.threads)
    lm = SpeechLM.from_pretrained(args.model)
    v = lm.vocab
    utts = read_units(args.shards_dir).units
    rows = [[v.bos_id, *(u + v.offset).tolist(), v.eos_id] for u in utts]

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return {"input_ids": rows[i]}

    def collate(batch):  # the straightforward padding collator
        T = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), T), v.pad_id)
        mask = torch.zeros((len(batch), T), dtype=torch.long)
        for i, b in enumerate(batch):
            ids[i, : len(b["input_ids"])] = torch.tensor(b["input_ids"])
            mask[i, : len(b["input_ids"])] = 1
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": ids.masked_fill(mask == 0, -100),
        }

    times, ends, toks, padded = [], [], [], []

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            _sync(args.device)
            times.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            _sync(args.device)
            ends.append(time.perf_counter())

    trainer_args = TrainingArguments(
        output_dir=str(Path(args.out) / "hf"),
        per_device_train_batch_size=args.hf_rows,
        max_steps=args.steps + args.warmup,
        learning_rate=5e-4,
        weight_decay=0.1,
        adam_beta2=0.95,
        warmup_steps=1,
        lr_scheduler_type="cosine",
        max_grad_norm=1.0,
        logging_steps=1000,
        save_strategy="no",
        report_to=[],
        bf16=args.precision != "fp32",  # HF's bf16 is autocast (fp32 weights)
        use_cpu=args.device == "cpu",
        torch_compile=args.compile,
        dataloader_num_workers=0,
        seed=0,
        disable_tqdm=True,
    )
    orig = collate

    def counting(batch):
        out = orig(batch)
        toks.append(int(out["attention_mask"].sum()))
        padded.append(out["input_ids"].numel())
        return out

    tr = Trainer(
        model=lm.model,
        args=trainer_args,
        train_dataset=Rows(),
        data_collator=counting,
        callbacks=[Clock()],
    )
    tr.train()
    # timed: the steps after --warmup ones (the first steps warm up allocators and kernels)
    dt = ends[-1] - times[args.warmup]
    real = sum(toks[args.warmup : args.warmup + args.steps])
    padding = 1 - sum(toks) / sum(padded)
    return {
        "tokens_per_s": real / dt,
        "tokens_per_step": real / args.steps,
        "peak_rss_gb": _rss_gb(),
        "padding": padding,
    }


def child_ours(args) -> dict:
    from twistlm.config import load_config
    from twistlm.train import TrainConfig, train

    cfg = load_config(
        TrainConfig,
        None,
        [
            f"data.train={args.shards_dir}",
            "data.val_fraction=0",
            f"data.block_size={args.block}",
            f"model.init_from={args.model}",
            f"optim.batch_size={args.batch}",
            "schedule.warmup_steps=1",
            f"budget.max_steps={args.steps + args.warmup}",
            "logging.log_every=1",
            "logging.eval_at_start=false",
            "logging.checkpoint_every=0",
            "logging.progress=false",
            f"runtime.precision={args.precision}",
            f"runtime.threads={args.threads}",
            f"runtime.device={args.device}",
            f"runtime.compile={str(args.compile).lower()}",
            f"data.packing={args.packing}",
            f"logging.run_dir={Path(args.out) / ('ours-' + args.packing)}",
        ],
    )
    train(cfg)
    run_dir = Path(args.out) / ("ours-" + args.packing)
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in recs if "loss" in r]  # one line per step (log_every=1)
    first = steps[args.warmup - 1]  # the end of the last warm-up step
    dt = steps[-1]["elapsed_s"] - first["elapsed_s"]
    real = steps[-1]["tokens"] - first["tokens"]
    return {
        "tokens_per_s": real / dt,
        "tokens_per_step": args.batch * args.block,
        "peak_rss_gb": _rss_gb(),
    }


def profile_ours(args, model_dir: Path, shards: Path, top: int = 15) -> str:
    """torch.profiler table (top operators by self CPU time) of one twistlm training step,
    after two warm-up steps, on this process's threads: where the time that is not a matmul goes."""
    from torch.profiler import ProfilerActivity, profile

    from twistlm.data.packing import attention_inputs, lm_targets, pack
    from twistlm.lm.model import SpeechLM
    from twistlm.train.data import read_units
    from twistlm.train.precision import BF16Shadow, fused_adamw_ok
    from twistlm.train.trainer import train_step

    torch.set_num_threads(args.threads)
    lm = SpeechLM.from_pretrained(model_dir)
    model = lm.model.to(args.device).train()
    dev = torch.device(args.device)
    shadow = BF16Shadow(model) if args.precision == "bf16" else None
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused_adamw_ok(dev))
    blocks = pack(read_units(shards).units[:200], lm.vocab, args.block).ids[: args.batch]
    micro = [(blocks, lm_targets(blocks, lm.vocab))]

    def inputs(x):
        return attention_inputs(x, lm.vocab, args.packing if args.packing != "both" else "document")

    def step():
        train_step(
            shadow.module if shadow else model,
            opt,
            micro,
            1e-4,
            device=dev,
            autocast=args.precision == "bf16-autocast",
            inputs=inputs,
            shadow=shadow,
        )

    step()
    step()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device != "cpu" else [])
    with profile(activities=acts) as prof:
        step()
    key = "self_cpu_time_total" if args.device == "cpu" else "self_cuda_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="/tmp/twistlm-bench-train")
    ap.add_argument("--shards", default=None, help="real unit shards (default: synthetic)")
    ap.add_argument(
        "--layers", type=int, default=None, help="keep the first N layers (default: all 30)"
    )
    ap.add_argument("--batch", type=int, default=4, help="our blocks per step")
    ap.add_argument("--block", type=int, default=512)
    ap.add_argument("--steps", type=int, default=3, help="timed steps (after the warm-up ones)")
    ap.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="untimed first steps on both sides (2: the second step of a CPU run is still "
        "several times slower than the rest)",
    )
    ap.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "bf16-autocast"],
        help="runtime.precision of twistlm (auto: bf16 only with AMX or CUDA); HF Trainer gets "
        "bf16=True (autocast) for either bf16",
    )
    ap.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    ap.add_argument(
        "--arch",
        default="smollm2",
        choices=["smollm2", *ARCHS],
        help="body: smollm2 (the warm start, default) or an OPT shape with random weights",
    )
    ap.add_argument("--n-units", type=int, default=200, help="unit vocabulary (200)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--compile", action="store_true", help="torch.compile (both sides)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument(
        "--profile", action="store_true", help="print torch.profiler's top operators of one step"
    )
    ap.add_argument(
        "--packing",
        choices=["document", "stream", "both"],
        default="document",
        help="twistlm's packing (data.packing); both: a third column with stream packing",
    )
    ap.add_argument("--child", choices=["hf", "ours"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--shards-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--hf-rows",
        type=int,
        default=None,
        help="HF rows per step (default: same real tokens as ours)",
    )
    args = ap.parse_args()
    if args.child:
        res = child_hf(args) if args.child == "hf" else child_ours(args)
        print("RESULT " + json.dumps(res))
        return

    if args.precision == "auto":
        from twistlm.train.precision import resolve_precision

        args.precision = resolve_precision("auto", torch.device(args.device))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from twistlm.train.data import read_units
    from twistlm.train.synthetic import synthetic_units, write_synthetic_shards

    if args.shards:  # the unit count is the shards' (their metadata), not a guess
        from twistlm.data.shards import read_shard_metadata

        args.n_units = read_shard_metadata(args.shards).n_units
    shards = Path(args.shards) if args.shards else out / f"synthetic-u{args.n_units}"
    if not args.shards and not shards.exists():
        write_synthetic_shards(shards, 600, n_units=args.n_units, seed=0)
        # longer utterances (~140 units) than the default generator
        from twistlm.data.shards import shard_name, write_shard

        for f in shards.glob("shard-*.parquet"):
            f.unlink()
        utts = synthetic_units(600, args.n_units, mean_words=40, seed=0)
        recs = [
            {"id": f"s{i:05d}", "units": u, "durations": np.ones_like(u), "seconds": u.size / 20}
            for i, u in enumerate(utts)
        ]
        write_shard(shards / shard_name(0, 0), recs)
    lens = np.array([u.size + 2 for u in read_units(shards).units])
    model_dir = out / f"model-{args.arch}-u{args.n_units}-L{args.layers or 'all'}"
    if not (model_dir / "twistlm.json").exists():
        build_model(args.arch, args.n_units, args.layers, args.block).save_pretrained(model_dir)
    from twistlm.lm.model import SpeechLM

    model = SpeechLM.from_pretrained(model_dir).model
    fpt = flops_per_token(model, args.block)
    n_layers = model.config.num_hidden_layers
    del model
    hf_rows = args.hf_rows or max(1, round(args.batch * args.block / lens.mean()))

    results = {}
    packings = ["document", "stream"] if args.packing == "both" else [args.packing]
    for side, packing in [("hf", "document")] + [("ours", m) for m in packings]:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            side,
            "--model",
            str(model_dir),
            "--shards-dir",
            str(shards),
        ]
        cmd += ["--out", str(out), "--batch", str(args.batch), "--block", str(args.block)]
        cmd += [
            "--steps",
            str(args.steps),
            "--precision",
            args.precision,
            "--threads",
            str(args.threads),
            "--warmup",
            str(args.warmup),
        ]
        cmd += ["--hf-rows", str(hf_rows), "--packing", packing, "--device", args.device]
        cmd += ["--compile"] if args.compile else []
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(args.threads),
            "TOKENIZERS_PARALLELISM": "false",
        }
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
        if p.returncode or not line:
            sys.exit(f"{side} failed:\n{p.stderr[-3000:]}")
        results[side if side == "hf" else f"ours-{packing}"] = json.loads(line[0][7:])
    peaks = {
        "fp32": peak_matmul_flops(args.threads, device=args.device),
        "bf16": peak_matmul_flops(args.threads, dtype=torch.bfloat16, device=args.device),
    }
    peak_key = "fp32" if args.precision == "fp32" else "bf16"
    peak = peaks[peak_key]  # MFU against the peak of the precision the run uses
    a, b = results["hf"], results[f"ours-{packings[0]}"]
    c = results.get("ours-stream") if len(packings) > 1 else None
    body = "SmolLM2-135M warm start" if args.arch == "smollm2" else f"{args.arch} (random)"
    print(
        f"model: {body}, {n_layers} layers, {args.n_units} units, {args.precision}, "
        f"{args.device}{' compiled' if args.compile else ''}, {args.threads} thread(s)"
    )
    print(
        f"data: {'real shards ' + str(shards) if args.shards else 'SYNTHETIC units'}, {len(lens)} utterances, mean {lens.mean():.0f} ids (with BOS/EOS)"
    )
    print(
        f"(a) HF Trainer, padding collator, {hf_rows} utterances/row-batch; (b) twistlm train, {args.batch} x {args.block} packed blocks ({packings[0]} packing)"
    )
    print(f"{'':28}{'(a) HF Trainer':>16}{'(b) twistlm':>16}")
    print(f"{'tokens/s (real tokens)':28}{a['tokens_per_s']:>16.1f}{b['tokens_per_s']:>16.1f}")
    print(f"{'real tokens / step':28}{a['tokens_per_step']:>16.0f}{b['tokens_per_step']:>16.0f}")
    print(f"(a) padding: {100 * a['padding']:.0f}% of its positions; (b) 0% (packed)")
    print(f"{'peak RSS (GB)':28}{a['peak_rss_gb']:>16.2f}{b['peak_rss_gb']:>16.2f}")
    print(
        f"{'achieved GFLOP/s':28}{a['tokens_per_s'] * fpt / 1e9:>16.1f}{b['tokens_per_s'] * fpt / 1e9:>16.1f}"
    )
    mfu = {k: r["tokens_per_s"] * fpt / peak for k, r in results.items()}
    print(
        f"{'MFU (' + peak_key + ' peak)':28}{100 * mfu['hf']:>15.1f}%{100 * mfu[f'ours-{packings[0]}']:>15.1f}%"
    )
    print(f"speedup (b)/(a): {b['tokens_per_s'] / a['tokens_per_s']:.2f}x (target >= 1.5x)")
    if c is not None:
        print(
            f"(c) twistlm, stream packing (attention across utterances): "
            f"{c['tokens_per_s']:.1f} tokens/s; document / stream = "
            f"{b['tokens_per_s'] / c['tokens_per_s']:.2f}x"
        )
    print(f"model FLOPs/token (train, 6N + attention at T={args.block}): {fpt / 1e6:.1f} MFLOP")
    print(
        f"measured peak matmul on {args.device}, {args.threads} thr: fp32 {peaks['fp32'] / 1e9:.1f}, "
        f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s; MFU uses the {peak_key} one"
    )
    print(f"load average: {os.getloadavg()}")
    if args.profile:
        print(f"\nprofile of one twistlm step ({args.batch} x {args.block}, {args.precision}):")
        print(profile_ours(args, model_dir, shards))
    doc = {
        "arch": args.arch,
        "layers": n_layers,
        "device": args.device,
        "precision": args.precision,
        "compile": args.compile,
        "hf": a,
        "ours": b,
        "ours_stream": c,
        "packing": packings[0],
        "flops_per_token": fpt,
        "peak_flops": peak,
        "peak_flops_by_precision": peaks,
        "mfu": mfu,
        "speedup": b["tokens_per_s"] / a["tokens_per_s"],
        "loadavg": os.getloadavg(),
    }
    (out / "result.json").write_text(json.dumps(doc, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
