"""Training of the acoustic-model vocoder candidate (twistlm.vocoder.acoustic) on one voice.

Data: an audio folder + the unit shards `twistlm tokenize` wrote for it (as `train-vocoder`
reads them). Only the utterances of one voice (the corpus sub-folder ``voice``) are learned:
with speaker-independent units the vocoder then speaks every input in that voice, as TWIST's
LJSpeech vocoder does. The target features of every utterance (WORLD analysis or the log STFT
magnitude) are computed once and cached in ``out_dir/features.safetensors`` (a rerun reuses
them); their per-dimension mean and standard deviation over the training utterances normalize
the target. Batches are random utterances cropped at unit boundaries to at most
``max_unit_frames``; loss = masked L1 on normalized features + duration MSE; AdamW with a
cosine decay to 10% over ``max_steps``; a fixed held-out set of the voice's utterances gives
the validation L1.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from twistlm.io import ErrorLog, atomic_write_text, write_json
from twistlm.vocoder.acoustic import (
    AcousticConfig,
    AcousticModel,
    AcousticVocoder,
    analyze,
    collate,
    losses,
)
from twistlm.vocoder.data import Utterance, load_corpus, speaker_of, tokenizer_info


@dataclass(frozen=True)
class AcousticTrainConfig:
    """One training run.

    Attributes:
        audio_dir / units_dir / out_dir: corpus audio, its unit shards, the run folder
            (``metrics.jsonl``, ``result.json``, ``vocoder/``).
        voice: corpus sub-folder whose utterances are learned (None: the one with most audio).
        target / dim / unit_layers / layers: the acoustic model (AcousticConfig).
        batch_size / max_unit_frames: utterances per step, crop length in unit frames.
        lr / max_steps / max_seconds: AdamW peak rate (cosine to 10%) and the budget.
        val_utterances: held-out utterances of the voice for the validation L1.
        eval_every / log_every: steps between validations / metrics lines.
        seed / threads: reproducibility, torch threads (None: torch's default).
        parallel: other voices reading the same sentences (``twistlm synth corpus`` folders,
            each with ``manifest.jsonl`` and its shards in ``units/``); their units are
            learned with the voice's features of the same sentence, time-warped onto them
            (twistlm.vocoder.parallel). Needs ``audio_dir`` to be a synth corpus's ``wavs/``
            (texts from its ``manifest.jsonl``) and ``tokenizer`` (its centroids align).
    """

    audio_dir: str
    units_dir: str
    out_dir: str
    voice: str | None = None
    target: str = "world"
    dim: int = 256
    unit_layers: int = 3
    unit_encoder: str = "conv"
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
    parallel: tuple[str, ...] = ()
    tokenizer: str | None = None


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


def crop(units: Tensor, durations: Tensor, feats: Tensor, r: int, max_frames: int, rng):
    """A random run of whole units of at most ``max_frames`` unit frames (at least one unit)
    -> (units, durations, its rows of the utterance's features ``feats``)."""
    starts = torch.cumsum(durations, 0) - durations
    first = int(torch.randint(0, units.numel(), (1,), generator=rng))
    end = first + 1
    while end < units.numel() and int(durations[first : end + 1].sum()) <= max_frames:
        end += 1
    u, d = units[first:end], durations[first:end]
    s0 = int(starts[first]) * r
    return u, d, feats[s0 : s0 + int(d.sum()) * r]


def _texts(corpus: Path) -> dict[str, str]:
    """Unit-shard id (path under ``corpus/wavs``) -> text, from a synth corpus manifest."""
    path = corpus / "manifest.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: parallel training needs synth corpora")
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out[Path(row["path"]).relative_to("wavs").as_posix()] = row["text"]
    return out


def parallel_items(
    sources: tuple[str, ...],
    target: dict[str, tuple[Tensor, Tensor, Tensor]],
    target_texts: dict[str, str],
    centroids: np.ndarray,
    r: int,
) -> tuple[list[tuple[Tensor, Tensor, Tensor]], dict[str, int]]:
    """Items (source units, source durations, target features warped onto them) for every
    source utterance whose text one of ``target`` (id -> units, durations, features) reads."""
    from tqdm import tqdm

    from twistlm.data.shards import iter_records
    from twistlm.vocoder.parallel import frame_vectors, warp_map, warped_features

    by_text = {target_texts[i]: i for i in target if i in target_texts}
    target_vectors: dict[str, np.ndarray] = {}  # each target utterance's frames, once
    items, counts = [], {}
    for src in sources:
        texts = _texts(Path(src))
        recs = list(iter_records(Path(src) / "units"))
        n = 0
        for rec in tqdm(recs, desc=f"aligning {Path(src).name}", unit="utt"):
            tid = by_text.get(texts.get(rec["id"], ""))
            if tid is None:
                continue
            units = torch.tensor(rec["units"], dtype=torch.long)
            durs = torch.tensor(rec["durations"], dtype=torch.long)
            t_units, t_durs, t_feats = target[tid]
            if tid not in target_vectors:
                target_vectors[tid] = frame_vectors(t_units, t_durs, centroids)
            mapping = warp_map(frame_vectors(units, durs, centroids), target_vectors[tid])
            items.append((units, durs, warped_features(mapping, t_feats, r)))
            n += 1
        counts[str(src)] = n
    return items, counts


def utterance_features(
    utts: list[Utterance], acfg: AcousticConfig, cache: Path
) -> dict[str, Tensor]:
    """Raw target features (frames, n_out) of every utterance, cached in ``cache`` (keyed by
    utterance id and the target; a rerun computes only what is missing)."""
    from safetensors.torch import load_file, save_file
    from tqdm import tqdm

    from twistlm.io import atomic_path

    have = load_file(str(cache)) if cache.exists() else {}
    out: dict[str, Tensor] = {}
    todo = [u for u in utts if f"{acfg.target}/{u.id}" not in have]
    for u in tqdm(todo, desc=f"{acfg.target} features", unit="utt", disable=not todo):
        audio = u.audio.astype(np.float32) / 32767.0
        have[f"{acfg.target}/{u.id}"] = torch.from_numpy(analyze(audio, acfg)).contiguous()
    if todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp:
            save_file(have, str(tmp))
    for u in utts:
        out[u.id] = have[f"{acfg.target}/{u.id}"]
    return out


def feature_stats(feats: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and standard deviation (floored at 1e-3) over all frames."""
    allf = torch.cat(feats, dim=0).double()
    return allf.mean(0).float(), allf.std(0).clamp(min=1e-3).float()


def lr_at(step: int, cfg: AcousticTrainConfig) -> float:
    """Learning rate at ``step``: linear warm-up over 2% of max_steps, cosine to 10%."""
    warm = max(1, cfg.max_steps // 50)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, cfg.max_steps - warm))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t)))


@torch.no_grad()
def _validate(model: AcousticModel, val: list, r: int) -> float:
    model.eval()
    out = losses(model, collate(val, r))
    model.train()
    return float(out["feature_l1"])


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
    acfg = AcousticConfig(
        n_units=int(info["n_units"]),
        hop=hop,
        target=cfg.target,
        dim=cfg.dim,
        unit_layers=cfg.unit_layers,
        unit_encoder=cfg.unit_encoder,
        layers=cfg.layers,
    )
    r = acfg.frames_per_unit_frame
    feats = utterance_features(utts, acfg, out / "features.safetensors")
    rng = torch.Generator().manual_seed(cfg.seed)
    val = [crop(u.units, u.durations, feats[u.id], r, cfg.max_unit_frames, rng) for u in val_utts]
    train_items = [(u.units, u.durations, feats[u.id]) for u in train_utts]
    n_parallel: dict[str, int] = {}
    if cfg.parallel:
        if cfg.tokenizer is None:
            raise ValueError("parallel training needs tokenizer= (its centroids align the voices)")
        from twistlm.tokenizer.kmeans import load_centroids
        from twistlm.tokenizer.unit_tokenizer import CENTROIDS_FILE

        centroids = load_centroids(Path(cfg.tokenizer) / CENTROIDS_FILE)[0].numpy()
        target = {u.id: (u.units, u.durations, feats[u.id]) for u in train_utts}
        extra, n_parallel = parallel_items(
            cfg.parallel, target, _texts(Path(cfg.audio_dir).parent), centroids, r
        )
        train_items += extra

    torch.manual_seed(cfg.seed)
    model = AcousticModel(acfg).train()
    mean, std = feature_stats([feats[u.id] for u in train_utts])
    model.feature_mean.copy_(mean)
    model.feature_std.copy_(std)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    metrics = out / "metrics.jsonl"
    atomic_write_text(metrics, "")
    lines: list[str] = []
    first_val = _validate(model, val, r)
    lines.append(json.dumps({"step": 0, "val_feature_l1": first_val}))
    t0, step, val_l1 = time.perf_counter(), 0, first_val
    from tqdm import tqdm

    bar = tqdm(total=cfg.max_steps, desc=f"acoustic vocoder ({voice})", unit="step")
    while step < cfg.max_steps:
        if cfg.max_seconds is not None and time.perf_counter() - t0 >= cfg.max_seconds:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        pick = torch.randint(0, len(train_items), (cfg.batch_size,), generator=rng).tolist()
        batch = collate(
            [crop(*train_items[i], r, cfg.max_unit_frames, rng) for i in pick],
            r,
        )

        parts = losses(model, batch)
        (parts["feature_l1"] + parts["dur_mse"]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        rec: dict[str, Any] = {}
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            rec = {k: float(v.detach()) for k, v in parts.items()}
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            val_l1 = _validate(model, val, r)
            rec["val_feature_l1"] = val_l1
        if rec:
            rec |= {"step": step, "elapsed_s": round(time.perf_counter() - t0, 1)}
            lines.append(json.dumps(rec))
            bar.set_postfix(l1=f"{rec.get('feature_l1', val_l1):.3f}")
    bar.close()
    val_l1 = _validate(model, val, r)
    seconds = time.perf_counter() - t0
    atomic_write_text(metrics, "".join(ln + "\n" for ln in lines))
    result = {
        "steps": step,
        "seconds": round(seconds, 1),
        "voice": voice,
        "n_utterances": len(train_utts),
        "n_parallel": n_parallel,
        "target": cfg.target,
        "val_feature_l1_start": first_val,
        "val_feature_l1": val_l1,
        "config": asdict(cfg),
    }
    voc = AcousticVocoder(model, {"tokenizer": info, "training": result})
    voc.save_pretrained(out / "vocoder")
    write_json(out / "result.json", result)
    if errors.count:
        print(f"{errors.count} bad input(s) skipped; see {errors.path}")
    return result
