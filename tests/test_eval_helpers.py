"""Tiny stand-ins shared by the eval tests (no test functions here).

- ``FrameTokenizer``: a deterministic "speech tokenizer": audio made by :func:`units_wav` holds
  one constant-amplitude frame of ``FRAME`` samples per unit, and it decodes back exactly.
- ``pattern_lm``: a tiny Llama whose weights make it a bigram model that strongly prefers the
  cycle 0 -> 1 -> ... -> K-1 -> 0 (and unit 0 after BOS).
- ``random_lm``: a tiny random Llama with real attention (for exactness invariants);
  ``random_units``: random unit sequences to score with it. Both LMs take the conftest
  ``tiny_llama`` fixture (the builder) as their first argument.
- writers for sSC folders and sLM21 lexical/syntactic folders with gold.csv.
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from twistlm.audio import write_wav
from twistlm.lm.model import SpeechLM
from twistlm.lm.vocab import UnitVocab

K = 8  # units
FRAME = 400  # samples per unit frame (25 ms)


def units_wav(units) -> np.ndarray:
    """(len(units) * FRAME,) float32: unit u -> one frame at DC level (u + 1) / (2K) plus a tone
    of 5 (u + 1) whole periods per frame (zero mean over the frame, so the DC level decodes
    exactly, and a real spectral tokenizer sees unit-dependent pitch)."""
    u = np.asarray(units, dtype=np.float32)
    n = np.arange(FRAME, dtype=np.float32)
    tone = 0.2 * np.sin(2 * np.pi * (5 * (u[:, None] + 1)) * n[None] / FRAME)
    return ((u[:, None] + 1) / (2 * K) + tone).reshape(-1).astype(np.float32)


class FrameTokenizer:
    """Inverse of :func:`units_wav`; counts encode calls (to prove the cache works)."""

    n_units = K

    def __init__(self, name: str = "frame-test"):
        self.name = name
        self.calls = 0

    def encode(self, wav):
        self.calls += 1
        x = torch.as_tensor(np.asarray(wav, dtype=np.float32))
        x = x[: len(x) // FRAME * FRAME].reshape(-1, FRAME).mean(1)
        u = (x * 2 * K).round().long() - 1
        return SimpleNamespace(units=u, durations=torch.ones_like(u), frame_rate=16000 / FRAME)

    def info(self) -> dict:
        return {"name": self.name, "n_units": K, "frame": FRAME}


# the eval tests' LLaMA (``tiny_llama`` fixture keywords): 4 heads, no GQA, untied, pad 0
TINY_LLAMA = dict(
    hidden=32,
    layers=2,
    heads=4,
    kv_heads=4,
    max_positions=512,
    tie=False,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)


def random_lm(tiny_llama, seed: int = 0, n_units: int = K) -> SpeechLM:
    """``tiny_llama``: the conftest fixture (its builder)."""
    vocab = UnitVocab.twistlm(n_units)
    model = tiny_llama(vocab.vocab_size, seed=seed, init_std=0.3, **TINY_LLAMA)
    return SpeechLM(model, vocab, {"init": "random test"})


def pattern_lm(tiny_llama, strength: float = 10.0) -> SpeechLM:
    """Bigram Llama preferring unit (u + 1) % K after u, and unit 0 after BOS (``tiny_llama``:
    the conftest fixture).

    Every layer's output projections are zero, so the residual stream at position t is the
    embedding of token t: one-hot rows -> RMSNorm -> lm_head rows that point at the successor.
    """
    vocab = UnitVocab.twistlm(K)
    V = vocab.vocab_size
    H = 12  # >= V, one head of dim 12
    model = tiny_llama(V, **{**TINY_LLAMA, "hidden": H, "layers": 1, "heads": 1, "kv_heads": 1})
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = torch.zeros(V, H)
        emb[torch.arange(V), torch.arange(V)] = 1.0
        model.model.embed_tokens.weight.copy_(emb)
        model.model.norm.weight.fill_(1.0)
        head = torch.zeros(V, H)
        for u in range(K):
            head[vocab.offset + (u + 1) % K, vocab.offset + u] = strength
        head[vocab.offset, vocab.bos_id] = strength
        model.lm_head.weight.copy_(head)
    return SpeechLM(model, vocab, {"init": "pattern test"})


def random_units(n: int, seed: int = 0, lo: int = 1, hi: int = 40) -> list[torch.Tensor]:
    """``n`` random (L,) unit tensors, L in [lo, hi)."""
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, K, (int(torch.randint(lo, hi, (1,), generator=g)),), generator=g)
        for _ in range(n)
    ]


def cycle(start: int, n: int) -> list[int]:
    return [(start + i) % K for i in range(n)]


def write_storycloze(root: Path, pairs: list[tuple[list[int], list[int]]]) -> Path:
    """sSC/tSC folder: {i}_correct.wav / {i}_incorrect.wav."""
    root.mkdir(parents=True, exist_ok=True)
    for i, (pos, neg) in enumerate(pairs):
        write_wav(root / f"{i}_correct.wav", units_wav(pos))
        write_wav(root / f"{i}_incorrect.wav", units_wav(neg))
    return root


def write_lexical(root: Path, items: list[dict]) -> Path:
    """sLM21 lexical folder. items: id, voice, frequency, word_units, nonword_units."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for it in items:
        for correct, units in ((1, it["word_units"]), (0, it["nonword_units"])):
            name = f"{it['id']}_{it['voice']}_{correct}"
            write_wav(root / f"{name}.wav", units_wav(units))
            rows.append(
                {
                    "filename": name,
                    "voice": it["voice"],
                    "frequency": it["frequency"],
                    "word": f"w{it['id']}" if correct else f"nw{it['id']}",
                    "phones": "",
                    "id": it["id"],
                    "length": len(units),
                    "correct": correct,
                }
            )
    with (root / "gold.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def write_syntactic(root: Path, items: list[dict]) -> Path:
    """sLM21 syntactic folder. items: id, voice, type, subtype, pos_units, neg_units."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for it in items:
        for correct, units in ((1, it["pos_units"]), (0, it["neg_units"])):
            name = f"s{it['type']}{it['subtype']}{it['id']}_{it['voice']}_{correct}"
            write_wav(root / f"{name}.wav", units_wav(units))
            rows.append(
                {
                    "filename": name,
                    "voice": it["voice"],
                    "type": it["type"],
                    "subtype": it["subtype"],
                    "id": it["id"],
                    "transcription": " ".join(map(str, units)),
                    "correct": correct,
                }
            )
    with (root / "gold.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root
