"""Training of the acoustic-model vocoder candidate (twistlm.vocoder.acoustic) on one voice.

Data: an audio folder + the unit shards `twistlm tokenize` wrote for it (as `train-vocoder`
reads them). Only the utterances of one voice (the corpus sub-folder ``voice``) are learned:
with speaker-independent units the vocoder then speaks every input in that voice, as TWIST's
LJSpeech vocoder does. Batches are random utterances cropped at unit boundaries to at most
``max_unit_frames``; loss = masked L1 on log STFT magnitudes + duration MSE; AdamW with a
cosine decay to 10%; a fixed held-out set of the voice's utterances gives the validation L1.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twistlm.io import ErrorLog, atomic_write_text, write_json
from twistlm.vocoder.acoustic import (
    AcousticConfig,
    AcousticVocoder,
    UnitSpectrogramModel,
    collate,
    losses,
)
from twistlm.vocoder.data import Utterance, load_corpus, speaker_of, tokenizer_info
from twistlm.vocoder.griffinlim import N_FFT


@dataclass(frozen=True)
class AcousticTrainConfig:
    """One training run.

    Attributes:
        audio_dir / units_dir / out_dir: corpus audio, its unit shards, the run folder
            (``metrics.jsonl``, ``result.json``, ``vocoder/``).
        voice: corpus sub-folder whose utterances are learned (None: the one with most audio).
        dim / layers: the acoustic model's width and depth (AcousticConfig).
        batch_size / max_unit_frames: utterances per step, crop length in unit frames.
        lr / max_steps / max_seconds: AdamW peak rate (cosine to 10%) and the budget.
        val_utterances: held-out utterances of the voice for the validation L1.
        eval_every / log_every: steps between validations / metrics lines.
        seed / threads: reproducibility, torch threads (None: torch's default).
    """

    audio_dir: str
    units_dir: str
    out_dir: str
    voice: str | None = None
    dim: int = 256
    layers: int = 6
    batch_size: int = 8
    max_unit_frames: int = 150
    lr: float = 1e-3
    max_steps: int = 2000
    max_seconds: float | None = None
    val_utterances: int = 8
    eval_every: int = 200
    log_every: int = 20
    seed: int = 0
    threads: int | None = None


def pick_voice(utts: list[Utterance], voice: str | None) -> list[Utterance]:
    """The utterances of ``voice`` (default: the voice with the most audio)."""
    by_voice: dict[str, list[Utterance]] = {}
    for u in utts:
        by_voice.setdefault(speaker_of(u.id), []).append(u)
    if voice is None:
        voice = max(by_voice, key=lambda v: sum(u.frames.numel() for u in by_voice[v]))
    if voice not in by_voice:
        raise ValueError(f"voice {voice!r} not in the corpus; it has {sorted(by_voice)}")
    return by_voice[voice]


def crop(u: Utterance, hop: int, max_frames: int, rng: torch.Generator):
    """A random run of whole units of ``u`` of at most ``max_frames`` unit frames (at least
    one unit) -> (units, durations, audio float32 of exactly sum(durations) * hop samples)."""
    starts = torch.cumsum(u.durations, 0) - u.durations
    first = int(torch.randint(0, u.units.numel(), (1,), generator=rng))
    end = first + 1
    while end < u.units.numel() and int(u.durations[first : end + 1].sum()) <= max_frames:
        end += 1
    units, durs = u.units[first:end], u.durations[first:end]
    s0 = int(starts[first]) * hop
    audio = u.audio[s0 : s0 + int(durs.sum()) * hop].astype(np.float32) / 32767.0
    return units, durs, torch.from_numpy(audio)


def _lr(step: int, cfg: AcousticTrainConfig) -> float:
    warm = max(1, cfg.max_steps // 50)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, cfg.max_steps - warm))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t)))


@torch.no_grad()
def _validate(model: UnitSpectrogramModel, val: list, r: int, window) -> float:
    model.eval()
    out = losses(model, collate(val, r, window))
    model.train()
    return float(out["spec_l1"])


def train_acoustic_vocoder(cfg: AcousticTrainConfig) -> dict[str, Any]:
    """Train on one voice; writes ``out_dir/vocoder`` (an :class:`AcousticVocoder` dir)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = tokenizer_info(cfg.units_dir)
    hop = int(info["hop"])
    errors = ErrorLog(out / "errors.jsonl")
    utts = pick_voice(load_corpus(cfg.audio_dir, cfg.units_dir, hop, errors)[0], cfg.voice)
    voice = speaker_of(utts[0].id)
    order = torch.randperm(len(utts), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    n_val = min(cfg.val_utterances, max(1, len(utts) // 10))
    val_utts = [utts[i] for i in order[:n_val]]
    train_utts = [utts[i] for i in order[n_val:]] or val_utts
    rng = torch.Generator().manual_seed(cfg.seed)
    val = [crop(u, hop, cfg.max_unit_frames, rng) for u in val_utts]

    torch.manual_seed(cfg.seed)
    acfg = AcousticConfig(n_units=int(info["n_units"]), hop=hop, dim=cfg.dim, layers=cfg.layers)
    model = UnitSpectrogramModel(acfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    window, r = torch.hann_window(N_FFT), acfg.frames_per_unit_frame
    metrics = out / "metrics.jsonl"
    atomic_write_text(metrics, "")
    lines: list[str] = []
    first_val = _validate(model, val, r, window)
    lines.append(json.dumps({"step": 0, "val_spec_l1": first_val}))
    t0, step, val_l1 = time.perf_counter(), 0, first_val
    from tqdm import tqdm

    bar = tqdm(total=cfg.max_steps, desc=f"acoustic vocoder ({voice})", unit="step")
    while step < cfg.max_steps:
        if cfg.max_seconds is not None and time.perf_counter() - t0 >= cfg.max_seconds:
            break
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg)
        pick = torch.randint(0, len(train_utts), (cfg.batch_size,), generator=rng).tolist()
        batch = collate(
            [crop(train_utts[i], hop, cfg.max_unit_frames, rng) for i in pick], r, window
        )
        parts = losses(model, batch)
        (parts["spec_l1"] + parts["dur_mse"]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        rec: dict[str, Any] = {}
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            rec = {k: float(v.detach()) for k, v in parts.items()}
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            val_l1 = _validate(model, val, r, window)
            rec["val_spec_l1"] = val_l1
        if rec:
            rec |= {"step": step, "elapsed_s": round(time.perf_counter() - t0, 1)}
            lines.append(json.dumps(rec))
            bar.set_postfix(l1=f"{rec.get('spec_l1', val_l1):.3f}")
    bar.close()
    val_l1 = _validate(model, val, r, window)
    seconds = time.perf_counter() - t0
    atomic_write_text(metrics, "".join(ln + "\n" for ln in lines))
    result = {
        "steps": step,
        "seconds": round(seconds, 1),
        "voice": voice,
        "n_utterances": len(train_utts),
        "val_spec_l1_start": first_val,
        "val_spec_l1": val_l1,
        "config": asdict(cfg),
    }
    voc = AcousticVocoder(model, {"tokenizer": info, "training": result})
    voc.save_pretrained(out / "vocoder")
    write_json(out / "result.json", result)
    if errors.count:
        print(f"{errors.count} bad input(s) skipped; see {errors.path}")
    return result
