"""What the demo layer costs over the library: one Continue and one Compare request, three ways.

  baseline  the library alone: ``continue_prompt`` / ``encode`` + ``score_units`` on loaded models
  handler   ``twistlm.demo.handlers`` (input checks, output files, units plot)
  http      the running Gradio server through ``gradio_client`` (upload, queue, cache copy)

Same models, prompt, settings and seed for all three; median of --repeats runs each.

  python benchmarks/demo_latency.py                         # tiny models built in a temp dir
  python benchmarks/demo_latency.py --quickstart-dir quickstart --seconds 4
"""

from __future__ import annotations

# ruff: noqa: E402  (sys.path is fixed before the imports)
import os
import sys

# benchmarks/tokenize.py would shadow the stdlib module of that name (imported by torch).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import socket
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def build_tiny(root: Path) -> Path:
    """Tiny tokenizer / vocoder / SpeechLM in the quickstart layout, through the public APIs."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from twistlm.audio import write_wav
    from twistlm.lm.model import SpeechLM
    from twistlm.lm.vocab import UnitVocab
    from twistlm.tokenizer.spectral import SpectralFeatures
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer
    from twistlm.vocoder import Vocoder, generator_config
    from twistlm.vocoder.hifigan import CodeGenerator

    torch.manual_seed(0)
    n = 50
    tok = UnitTokenizer(SpectralFeatures("logmel", frame_rate=25.0, n_mels=16), torch.randn(n, 16))
    tok.save_pretrained(root / "tokenizer")
    cfg = generator_config(n, hop=tok.hop, size="tiny")
    Vocoder(CodeGenerator(cfg), cfg, {"tokenizer": tok.info()}).save_pretrained(root / "vocoder")
    vocab = UnitVocab.twistlm(n)
    lm_cfg = LlamaConfig(
        vocab_size=vocab.vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=512,
    )
    SpeechLM(LlamaForCausalLM(lm_cfg).eval(), vocab, {}).save_pretrained(root / "models/warm")
    t = np.arange(4 * 16000) / 16000
    wav = np.sin(2 * np.pi * (150 + 80 * np.sin(2 * np.pi * 0.7 * t)) * t) * (
        0.5 + 0.5 * np.sin(8 * t)
    )
    write_wav(root / "report/samples/prompt.wav", (0.3 * wav).astype(np.float32))
    return root


def timed(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quickstart-dir", help="use this quickstart's models (default: tiny ones)")
    ap.add_argument("--prompt", help="prompt wav (default: the first of QS/report/samples)")
    ap.add_argument("--seconds", type=float, default=2.0, help="continuation seconds")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from twistlm.audio import load_audio
    from twistlm.demo.app import build_app
    from twistlm.demo.backend import DemoBackend, resolve_paths
    from twistlm.demo.handlers import OutputStore, SamplingSettings, compare_audio, continue_audio
    from twistlm.lm.cli_continue import continue_prompt
    from twistlm.lm.scoring import score_units

    tmp = Path(tempfile.mkdtemp(prefix="demo-latency-"))
    qs = Path(args.quickstart_dir) if args.quickstart_dir else build_tiny(tmp / "qs")
    backend = DemoBackend(resolve_paths(qs), asr="off")
    prompt = Path(args.prompt) if args.prompt else sorted((qs / "report/samples").glob("*.wav"))[0]
    lm, tok, voc = backend.components("warm")
    wav = load_audio(prompt)
    s = SamplingSettings(seconds=args.seconds, seed=0)
    store = OutputStore(tmp / "handler-out")

    rows = []
    rows.append(
        (
            "continue",
            timed(
                lambda: continue_prompt(wav, lm, tok, voc, seconds=args.seconds, seed=0),
                args.repeats,
            ),
            timed(lambda: continue_audio(backend, store, str(prompt), s), args.repeats),
        )
    )
    rows.append(
        (
            "compare",
            timed(
                lambda: score_units(lm, [tok.encode(load_audio(prompt)).units] * 2), args.repeats
            ),
            timed(lambda: compare_audio(backend, str(prompt), str(prompt)), args.repeats),
        )
    )

    from gradio_client import Client, handle_file

    page, kwargs, _ = build_app(backend, tmp / "server-out", preload=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, url, _ = page.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **kwargs
    )
    try:
        client = Client(url, verbose=False)
        f = handle_file(str(prompt))
        http_cont = timed(
            lambda: client.predict(
                f, "warm", args.seconds, 3.0, 0.8, 0, 1.0, 0, api_name="/continue"
            ),
            args.repeats,
        )
        http_cmp = timed(lambda: client.predict(f, f, "warm", api_name="/compare"), args.repeats)
    finally:
        page.close()

    print(
        f"models: {qs} ({lm!r}); prompt {prompt.name}; continuation {args.seconds} s; threads {args.threads}"
    )
    print(
        f"{'request':<10} {'baseline s':>11} {'handler s':>10} {'http s':>8}  (median of {args.repeats})"
    )
    for (name, base, handler), http in zip(rows, (http_cont, http_cmp), strict=True):
        print(f"{name:<10} {base:>11.3f} {handler:>10.3f} {http:>8.3f}")
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
