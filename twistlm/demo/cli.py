"""Local web demo (Gradio): continue a spoken prompt, compare two utterances, resynthesize.

Tabs: Continue (prompt -> SpeechLM continuation, with a units plot and an ASR transcript when
Whisper is installed), Compare (two utterances -> mean and total log-likelihood and which one the
model prefers: the benchmarks' test), Resynthesize (audio -> units -> vocoder) and Warm vs cold
(both quickstart models on the same prompt and seed).

By default it uses the quickstart's outputs (QUICKSTART/models/warm, models/cold, tokenizer,
vocoder, report/samples, benchmarks); --model/--cold-model/--tokenizer/--vocoder override.
Without a model the page still opens and says how to make one (`twistlm quickstart`).

The server binds to 127.0.0.1 (this machine only) unless --host says otherwise; requests are
queued (--concurrency at a time, --max-queue waiting). It writes only under --out-dir and
serves only files from there; bad input (non-audio, empty, silent, over the limits) is reported
in the page. Needs the `demo` extra: pip install 'twistlm[demo]'.

examples:
  twistlm demo                                  # quickstart/ models, http://127.0.0.1:7860
  twistlm demo --model runs/warm/model --vocoder runs/vocoder --port 8080
  twistlm demo --check                          # print what was found and exit
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quickstart-dir",
        default="quickstart",
        help="quickstart output dir to take defaults from (default: %(default)s)",
    )
    p.add_argument("--model", help="SpeechLM dir for Continue / Compare (default: QS/models/warm)")
    p.add_argument(
        "--cold-model", help="second SpeechLM for Warm vs cold (default: QS/models/cold)"
    )
    p.add_argument(
        "--tokenizer", help="UnitTokenizer dir (default: QS/tokenizer, else the model's)"
    )
    p.add_argument("--vocoder", help="vocoder dir (default: QS/vocoder, else the model's)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    p.add_argument(
        "--out-dir",
        default="demo_outputs",
        help="where results and uploads go (a new or demo-owned dir; default: %(default)s)",
    )
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload (MB)")
    p.add_argument("--max-seconds", type=float, default=30.0, help="longest input audio (s)")
    p.add_argument(
        "--max-continue-seconds", type=float, default=20.0, help="longest continuation (s)"
    )
    p.add_argument(
        "--silence-dbfs", type=float, default=-60.0, help="peak level below which audio is silent"
    )
    p.add_argument(
        "--concurrency", type=int, default=1, help="model requests run at once (default 1)"
    )
    p.add_argument("--max-queue", type=int, default=16, help="requests that may wait in the queue")
    p.add_argument(
        "--asr",
        default="auto",
        help="transcribe continuations: auto (Whisper tiny.en if installed), off, or a "
        "faster-whisper model name/dir",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the SpeechLM")
    p.add_argument("--no-preload", action="store_true", help="load models on the first request")
    p.add_argument("--check", action="store_true", help="print what was found and exit")


def run(args: argparse.Namespace) -> int:
    from twistlm.demo.backend import DemoBackend, resolve_paths
    from twistlm.demo.handlers import Limits

    try:
        paths = resolve_paths(
            args.quickstart_dir, args.model, args.cold_model, args.tokenizer, args.vocoder
        )
        limits = Limits(
            max_upload_mb=args.max_upload_mb,
            max_seconds=args.max_seconds,
            max_continue_seconds=args.max_continue_seconds,
            silence_dbfs=args.silence_dbfs,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    backend = DemoBackend(paths, device=args.device, asr=args.asr, autocast=args.bf16)
    print(backend.status_markdown().replace("**", "").replace("`", ""))
    if args.check:
        problems = backend.preload()
        for p in problems:
            print(f"problem: {p}")
        return 1 if (problems or paths.model is None) else 0
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("error: the demo needs Gradio: pip install 'twistlm[demo]'", file=sys.stderr)
        return 1
    from twistlm.demo.app import build_app

    try:
        page, kwargs, _ = build_app(
            backend,
            Path(args.out_dir),
            limits,
            concurrency=args.concurrency,
            max_queue=args.max_queue,
            preload=not args.no_preload,
        )
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: other machines can reach the demo")
    page.launch(server_name=args.host, server_port=args.port, **kwargs)
    return 0
