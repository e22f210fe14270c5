"""Training data for the vocoder: audio + unit shards, random frame-aligned segments.

A corpus is an audio folder plus the unit shards `twistlm tokenize` wrote for it (the shard
``id`` is the audio path relative to the corpus root; durations are frames per unit at the
tokenizer hop). Every utterance is held in memory as int16 (1 h of 16 kHz speech ~ 115 MB).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from twistlm.audio import load_audio
from twistlm.data.shards import iter_records, read_shard_metadata
from twistlm.io import ErrorLog


@dataclass
class Utterance:
    id: str
    units: Tensor  # (N,) int64 deduplicated units
    durations: Tensor  # (N,) int64 frames per unit
    frames: Tensor  # (F,) int64 frame-level units, F = durations.sum()
    audio: np.ndarray  # (F * hop,) int16, trimmed / zero-padded to the unit frames
    speaker: int


def speaker_of(utt_id: str) -> str:
    """Speaker label of a corpus id: its parent folder (``voice/utt.wav`` -> ``voice``)."""
    return Path(utt_id).parent.as_posix()


def tokenizer_info(units_dir: str | Path) -> dict:
    """The shards' ``tokenizer.json``, which must give ``hop`` and ``n_units``.

    Same as ``read_shard_metadata(units_dir, require=("hop",)).info``
    (:func:`twistlm.data.shards.read_shard_metadata`, strict: a missing file or field raises).
    """
    return read_shard_metadata(units_dir, require=("hop",)).info


def load_corpus(
    audio_dir: str | Path,
    units_dir: str | Path,
    hop: int,
    errors: ErrorLog,
    multi_speaker: bool = False,
) -> tuple[list[Utterance], list[str]]:
    """Load every utterance whose audio decodes and whose units are sane; log the rest."""
    audio_dir = Path(audio_dir)
    records = list(iter_records(units_dir))
    if not records:
        raise ValueError(f"{units_dir}: no records in the unit shards")
    speakers = sorted({speaker_of(r["id"]) for r in records}) if multi_speaker else []
    spk_index = {s: i for i, s in enumerate(speakers)}
    out = []
    for r in tqdm(records, desc="loading corpus", unit="utt", leave=False):
        path = audio_dir / r["id"]
        try:
            units = torch.tensor(r["units"], dtype=torch.long)
            durs = torch.tensor(r["durations"], dtype=torch.long)
            if units.numel() == 0 or units.shape != durs.shape or int(durs.min()) < 1:
                raise ValueError("empty units or bad durations in the shard")
            wav = load_audio(path)
            frames = torch.repeat_interleave(units, durs)
            n = frames.numel() * hop
            if abs(wav.size - n) > 2 * hop + 400:  # more than a frame or two off: wrong hop/file
                raise ValueError(
                    f"audio has {wav.size} samples but units cover {frames.numel()} frames x {hop}"
                )
            wav = np.pad(wav[:n], (0, max(0, n - wav.size)))
            pcm = (np.clip(wav, -1, 1) * 32767).astype(np.int16)
            spk = spk_index.get(speaker_of(r["id"]), 0)
            out.append(Utterance(r["id"], units, durs, frames, pcm, spk))
        except Exception as e:  # one bad file never stops the job
            errors.add(path, e)
    if not out:
        raise ValueError(f"no usable utterances in {audio_dir} / {units_dir} (see {errors.path})")
    return out, speakers


class SegmentSampler:
    """Random batches of frame-aligned segments, reproducible from a saved generator state."""

    def __init__(self, utts: list[Utterance], hop: int, segment_frames: int, seed: int):
        self.hop, self.seg = hop, segment_frames
        self.utts = [u for u in utts if u.frames.numel() >= segment_frames]
        if not self.utts:
            raise ValueError(f"no utterance has >= {segment_frames} frames; lower segment_frames")
        lengths = torch.tensor([u.frames.numel() for u in self.utts], dtype=torch.float)
        self.weights = lengths / lengths.sum()  # long utterances are sampled proportionally
        self.rng = torch.Generator().manual_seed(seed)

    def batch(self, batch_size: int, max_dur_units: int = 64):
        """-> frames (B, S), audio (B, 1, S * hop) float, speaker (B,),
        dedup units (B, M), durations (B, M), mask (B, M) for the duration loss."""
        idx = torch.multinomial(self.weights, batch_size, replacement=True, generator=self.rng)
        frames, audio, spk, units, durs = [], [], [], [], []
        for i in idx.tolist():
            u = self.utts[i]
            start = int(torch.randint(0, u.frames.numel() - self.seg + 1, (1,), generator=self.rng))
            frames.append(u.frames[start : start + self.seg])
            a = u.audio[start * self.hop : (start + self.seg) * self.hop]
            audio.append(torch.from_numpy(a.astype(np.float32) / 32767.0))
            spk.append(u.speaker)
            n = u.units.numel()
            s = int(torch.randint(0, max(1, n - max_dur_units + 1), (1,), generator=self.rng))
            units.append(u.units[s : s + max_dur_units])
            durs.append(u.durations[s : s + max_dur_units])
        m = max(x.numel() for x in units)

        def pad(xs: list[Tensor], v: int) -> Tensor:
            return torch.stack(
                [torch.nn.functional.pad(x, (0, m - x.numel()), value=v) for x in xs]
            )

        mask = torch.stack([torch.arange(m) < x.numel() for x in units])
        return (
            torch.stack(frames),
            torch.stack(audio).unsqueeze(1),
            torch.tensor(spk),
            pad(units, 0),
            pad(durs, 1),
            mask,
        )
