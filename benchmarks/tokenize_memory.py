"""Peak memory of `twistlm tokenize`: 100 vs 1,000 short files, and 6-minute vs 1-hour files.

    .venv/bin/python benchmarks/tokenize_memory.py [--hubert] [--threads 2]

Each measurement is a fresh `python -m twistlm tokenize` process; its peak RSS (ru_maxrss) is
read from the run's summary-rank0.json. Audio: flite speech from benchmarks/tokenize.py, cut
into 1-3 s clips (short files) or concatenated to 6 min / 1 h (long files, 16 kHz mono wav).
Tokenizers: the offline default (log-mel 80 at 25 Hz + k-means 200) and, with --hubert, a
random-init HuBERT-base read at layer 6 (k=200, bf16 fast mode to keep the run short).
Side by side: the same 1-hour file tokenized with streaming disabled (whole file in memory),
the baseline that streaming is measured against. Peak RSS should not grow with the number of
files or with a file's length when streaming.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


def _bench_module():
    spec = importlib.util.spec_from_file_location(
        "twistlm_bench_tokenize", Path(_HERE) / "tokenize.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_audio(root: Path, speech: list[Path]) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    pool = np.concatenate([sf.read(str(f), dtype="float32")[0] for f in speech])
    out = {}
    for n in (100, 1000):
        d = root / f"short{n}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            length = int(rng.uniform(1.0, 3.0) * 16000)
            start = int(rng.integers(0, pool.size - length))
            sf.write(str(d / f"clip{i:04d}.wav"), pool[start : start + length], 16000)
        out[f"{n} short files"] = d
    for minutes in (6, 60):
        d = root / f"long{minutes}"
        d.mkdir(parents=True, exist_ok=True)
        n = minutes * 60 * 16000
        with sf.SoundFile(str(d / "long.wav"), "w", 16000, 1, subtype="PCM_16") as f:
            written = 0
            while written < n:
                block = pool[: min(pool.size, n - written)]
                f.write(block)
                written += block.size
        out[f"one {minutes}-min file"] = d
    return out


def tokenize(tok: Path, audio: Path, out: Path, threads: int, extra=()) -> dict:
    cmd = [sys.executable, "-m", "twistlm", "tokenize", "--tokenizer", str(tok), "--audio", str(audio),
           "--out", str(out), "--no-progress", "--threads", str(threads), *extra]  # fmt: skip
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    s = json.loads((out / "summary-rank0.json").read_text())
    return {
        "peak_rss_mb": s["peak_rss_mb"],
        "hours": s["hours"],
        "files": s["files"],
        "wall_s": wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--hubert", action="store_true", help="also measure a HuBERT-base tokenizer")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "twistlm-bench-speech"))
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    bench = _bench_module()
    speech = bench.synth_corpus(Path(args.cache), 5.5)
    import torch

    from twistlm.tokenizer.hubert import HubertFeatures
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer, build_offline_tokenizer

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        audio = make_audio(tmp / "audio", speech)
        toks = {}
        build_offline_tokenizer(speech, n_units=200, progress=False).save_pretrained(tmp / "logmel")
        toks["logmel 25 Hz k=200"] = (tmp / "logmel", ())
        if args.hubert:
            from transformers import HubertModel

            torch.manual_seed(0)
            fx = HubertFeatures(HubertModel(bench.hubert_config(50)).eval(), layer=6)
            UnitTokenizer(fx, torch.randn(200, 768)).save_pretrained(tmp / "hubert")
            toks["HuBERT-base L6 k=200 (bf16)"] = (tmp / "hubert", ("--fast",))
        for tname, (tok, extra) in toks.items():
            for aname, adir in audio.items():
                r = tokenize(tok, adir, tmp / f"u-{time.time_ns()}", args.threads, extra)
                results.append({"tokenizer": tname, "audio": aname, "mode": "streamed", **r})
                print(f"{tname:28s} {aname:18s} streamed   peak RSS {r['peak_rss_mb']:7.0f} MB  "
                      f"{r['hours']:.3f} h in {r['wall_s']:.0f} s", flush=True)  # fmt: skip
            if "HuBERT" not in tname:  # baseline: the whole hour in memory (HuBERT: infeasible)
                r = tokenize(tok, audio["one 60-min file"], tmp / f"u-{time.time_ns()}", args.threads,
                             (*extra, "--max-in-memory-seconds", "1e9", "--chunk-seconds", "1e9"))  # fmt: skip
                results.append(
                    {"tokenizer": tname, "audio": "one 60-min file", "mode": "in memory", **r}
                )
                print(f"{tname:28s} {'one 60-min file':18s} in memory  peak RSS {r['peak_rss_mb']:7.0f} MB  "
                      f"{r['hours']:.3f} h in {r['wall_s']:.0f} s", flush=True)  # fmt: skip
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
