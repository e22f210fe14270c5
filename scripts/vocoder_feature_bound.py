"""Diagnostic: how intelligible is the acoustic vocoder when fed the tokenizer's features
before k-means (continuous, one per unit frame, no dedup) instead of its units?

    python scripts/vocoder_feature_bound.py --corpus RUN/corpus --units RUN/units \\
        --features RUN/features.safetensors --tokenizer TOK --test SET --steps 1500

RUN is a `twistlm train-vocoder --recipe slt` folder (its corpus, shards and WORLD feature
cache); SET a folder with manifest.jsonl + wavs (e.g. more sentences by the same voice). The
model is the recipe's (conv, 3 + 6 layers, dim 256, same optimizer and crops); only its unit
embedding is replaced by a linear map of the 512-dim Whisper frame features. The Whisper WER
of this model bounds what the units can give: docs/vocoder.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import torch
from torch import nn


class FrameTable(nn.Module):
    """Ids index a fixed table of frame features; a linear map makes them model vectors."""

    def __init__(self, table: torch.Tensor, dim: int):
        super().__init__()
        self.register_buffer("table", table, persistent=False)
        self.proj = nn.Linear(table.shape[1], dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.table[ids])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--corpus", required=True, help="synth corpus folder (wavs/ inside)")
    p.add_argument("--units", required=True, help="its unit shards")
    p.add_argument("--features", required=True, help="the recipe's features.safetensors")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--test", required=True, help="folder with manifest.jsonl and wavs")
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from safetensors.torch import load_file

    from twistlm.audio import load_audio
    from twistlm.data.shards import iter_records
    from twistlm.eval.generation import whisper_transcriber, word_error_rate
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer
    from twistlm.vocoder import world
    from twistlm.vocoder.acoustic import (
        AcousticConfig,
        AcousticModel,
        AcousticVocoder,
        collate,
        losses,
    )
    from twistlm.vocoder.acoustic_train import AcousticTrainConfig, crop, feature_stats, lr_at

    tok = UnitTokenizer.from_pretrained(args.tokenizer)
    cache = load_file(args.features)
    tables, items, off = [], [], 0
    for rec in iter_records(args.units):
        key = f"world/{rec['id']}"
        n = int(sum(rec["durations"]))
        if key not in cache:
            continue
        f = tok.extractor(torch.as_tensor(load_audio(f"{args.corpus}/wavs/{rec['id']}")))[:n]
        if f.shape[0] < n:
            continue
        tables.append(f.float())
        items.append(
            (torch.arange(off, off + n), torch.ones(n, dtype=torch.long), cache[key][: n * 4])
        )
        off += n
    rows = [json.loads(x) for x in open(f"{args.test}/manifest.jsonl")][: args.n]
    test = []
    for r in rows:
        f = tok.extractor(torch.as_tensor(load_audio(f"{args.test}/{r['path']}"))).float()
        tables.append(f)
        test.append((off, f.shape[0], r["text"]))
        off += f.shape[0]
    table = torch.cat(tables)

    torch.manual_seed(0)
    cfg = AcousticConfig(n_units=1, hop=tok.hop, unit_encoder="conv", unit_layers=3, layers=6)
    model = AcousticModel(cfg)
    model.embed, model.dur_embed = FrameTable(table, cfg.dim), FrameTable(table, cfg.dim)
    model.cfg = dataclasses.replace(cfg, n_units=off)
    mean, std = feature_stats([it[2] for it in items])
    model.feature_mean.copy_(mean)
    model.feature_std.copy_(std)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    rng = torch.Generator().manual_seed(0)
    sched = AcousticTrainConfig("", "", "", max_steps=args.steps)
    model.train()
    t0 = time.time()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, sched)
        pick = torch.randint(0, len(items), (8,), generator=rng).tolist()
        out = losses(model, collate([crop(*items[i], 4, 150, rng) for i in pick], 4))
        (out["feature_l1"] + out["dur_mse"]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 100 == 0:
            print(
                f"step {step} L1 {float(out['feature_l1']):.3f} {time.time() - t0:.0f} s",
                flush=True,
            )
    voc = AcousticVocoder(model)
    asr = whisper_transcriber(None, beam_size=5, threads=args.threads)
    hyps, refs = [], []
    for start, n, text in test:
        f = voc.features(torch.arange(start, start + n), torch.ones(n, dtype=torch.long))
        hyps.append(asr(world.synthesize(f.numpy().T, 16_000, n * tok.hop)))
        refs.append(text)
    wer = word_error_rate(refs, hyps)
    print(f"continuous-feature bound: WER {100 * wer:.1f}% on {len(refs)} utterances "
          f"(load {os.getloadavg()})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
