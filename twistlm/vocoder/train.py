"""Vocoder training: HiFi-GAN (MPD + MSD, mel L1 x45, feature matching, LSGAN) + durations.

Recipe from jik876/hifi-gan ``train.py`` (AdamW, betas 0.8/0.99, mel L1 x 45, feature matching
x 2, LSGAN) and facebookresearch/speech-resynthesis (CodeHiFiGAN on unit frames, duration
predictor trained with MSE on ``log(1 + dur)`` of the deduplicated units).

For small CPU budgets the first ``gan_start_step`` steps are mel-only (no discriminators):
on 2 CPU cores a GAN step costs several mel-only steps, and a few minutes of mel-only
training gives more intelligible speech than the same minutes spent on the GAN (docs/vocoder.md).

Run folder: ``checkpoint.pt`` (generator, discriminators, optimizers, step, RNG states; atomic),
``metrics.jsonl``, ``samples/step-XXXXXXX/*.wav``, ``vocoder/`` (the exported
:class:`~twistlm.vocoder.Vocoder`), ``config.yaml``, ``errors.jsonl``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from tqdm import tqdm

from twistlm.audio import write_wav
from twistlm.config import save_config
from twistlm.io import ErrorLog, atomic_path
from twistlm.vocoder.data import SegmentSampler, load_corpus, tokenizer_info
from twistlm.vocoder.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from twistlm.vocoder.duration import masked_duration_loss
from twistlm.vocoder.hifigan import CodeGenerator
from twistlm.vocoder.losses import discriminator_loss, feature_loss, generator_loss
from twistlm.vocoder.mel import LogMel
from twistlm.vocoder.unit_vocoder import Vocoder, generator_config

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class VocoderTrainConfig:
    """Vocoder training run.

    audio_dir: corpus root (audio files; shard ids are paths relative to it).
    units_dir: unit shards of that corpus from `twistlm tokenize` (with tokenizer.json).
    out_dir: run folder (checkpoints, metrics, samples, exported vocoder/).
    size: generator preset: small (CPU, ~0.6M params) | full (textless, ~13M) | tiny (tests).
    duration_predictor: train the duration predictor (needed to vocode deduplicated units).
    multi_speaker: add a speaker embedding; the speaker is the id's parent folder.
    segment_frames: unit frames per training segment (0: ~0.5 s, i.e. 8000 // hop).
    batch_size: segments per step.
    lr: AdamW learning rate (generator and discriminators); lr_decay: factor per 1000 steps.
    gan_start_step: steps of mel-only warmup before the GAN losses switch on (-1: never).
    disc_width: discriminator channel multiplier (1.0 = HiFi-GAN's sizes; 0 = preset default).
    mel_weight / fm_weight / dur_weight: loss weights (fm_weight multiplies hifi-gan's x2).
    max_steps: stop at this global step (0: no limit). max_seconds: stop after this many
      seconds of this invocation (0: no limit). max_cpu_seconds: stop after this much CPU
      time of this process (time.process_time, all threads; a fair budget on a shared machine).
      Any combination may be set; the first reached stops the run.
    checkpoint_every / sample_every / eval_every / log_every: in steps.
    n_samples: held-out utterances vocoded into samples/ (ground-truth and predicted durations).
    val_utterances: utterances held out for validation mel L1 and samples.
    bf16: autocast to bfloat16: auto (CUDA only: on this CPU bf16 conv1d measured ~6x slower) | on | off.
    device: auto | cpu | cuda[:N].  threads: torch CPU threads (0: torch default).
    """

    audio_dir: str = ""
    units_dir: str = ""
    out_dir: str = "vocoder_run"
    size: Literal["tiny", "small", "full"] = "small"
    duration_predictor: bool = True
    multi_speaker: bool = False
    segment_frames: int = 0
    batch_size: int = 8
    lr: float = 1e-3
    lr_decay: float = 1.0
    betas: tuple[float, float] = (0.8, 0.99)
    gan_start_step: int = -1
    disc_width: float = 0.0
    mel_weight: float = 45.0
    fm_weight: float = 1.0
    dur_weight: float = 1.0
    max_steps: int = 0
    max_seconds: float = 0.0
    max_cpu_seconds: float = 0.0
    checkpoint_every: int = 250
    sample_every: int = 1000
    eval_every: int = 250
    log_every: int = 10
    n_samples: int = 2
    val_utterances: int = 4
    seed: int = 0
    bf16: Literal["auto", "on", "off"] = "auto"
    device: str = "auto"
    threads: int = 0

    def __post_init__(self):
        if not self.audio_dir or not self.units_dir:
            raise ValueError("audio_dir and units_dir are required")
        if self.max_steps <= 0 and self.max_seconds <= 0 and self.max_cpu_seconds <= 0:
            raise ValueError("set a budget: max_steps, max_seconds or max_cpu_seconds > 0")
        if self.batch_size < 1 or self.segment_frames < 0:
            raise ValueError("batch_size must be >= 1 and segment_frames >= 0")


@dataclass
class VocoderTrainResult:
    out_dir: Path
    step: int
    seconds: float  # wall-clock of this invocation
    val_mel_l1: float | None
    n_train: int
    n_val: int


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class _Trainer:
    def __init__(self, cfg: VocoderTrainConfig, resume: bool):
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        ckpt_path = self.out / CHECKPOINT
        if ckpt_path.exists() and not resume:
            raise FileExistsError(
                f"{ckpt_path} exists: pass --resume to continue, or a new out_dir"
            )
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = _device(cfg.device)
        self.bf16 = cfg.bf16 == "on" or (cfg.bf16 == "auto" and self.device.type == "cuda")
        self.errors = ErrorLog(self.out / "errors.jsonl")

        self.tok = tokenizer_info(cfg.units_dir)
        self.hop = int(self.tok["hop"])
        utts, self.speakers = load_corpus(
            cfg.audio_dir, cfg.units_dir, self.hop, self.errors, cfg.multi_speaker
        )
        # deterministic split: every k-th utterance (by sorted id) goes to validation
        n_val = min(cfg.val_utterances, max(0, len(utts) - 1))
        stride = max(1, len(utts) // max(1, n_val))
        val_idx = set(range(0, stride * n_val, stride)) if n_val else set()
        self.val = [u for i, u in enumerate(utts) if i in val_idx]
        self.train = [u for i, u in enumerate(utts) if i not in val_idx]
        seg = cfg.segment_frames or max(1, 8000 // self.hop)
        self.sampler = SegmentSampler(self.train, self.hop, seg, cfg.seed)

        torch.manual_seed(cfg.seed)
        self.gen_cfg = generator_config(
            int(self.tok["n_units"]),
            self.hop,
            cfg.size,
            duration_predictor=cfg.duration_predictor,
            n_speakers=len(self.speakers),
        )
        self.G = CodeGenerator(self.gen_cfg).to(self.device)
        width = cfg.disc_width or {"full": 1.0, "small": 0.25, "tiny": 0.0625}[cfg.size]
        self.mpd = MultiPeriodDiscriminator(width=width).to(self.device)
        self.msd = MultiScaleDiscriminator(width=width).to(self.device)
        self.opt_g = torch.optim.AdamW(self.G.parameters(), cfg.lr, betas=cfg.betas)
        d_params = list(self.mpd.parameters()) + list(self.msd.parameters())
        self.opt_d = torch.optim.AdamW(d_params, cfg.lr, betas=cfg.betas)
        self.mel = LogMel(sample_rate=int(self.gen_cfg["sampling_rate"])).to(self.device)
        self.step = 0
        if resume and ckpt_path.exists():
            self._load(ckpt_path)
        save_config(cfg, self.out / "config.yaml")

    # ---- checkpoints ----------------------------------------------------------------------
    def _save(self) -> None:
        state = {
            "step": self.step,
            "generator": self.G.state_dict(),
            "mpd": self.mpd.state_dict(),
            "msd": self.msd.state_dict(),
            "optim_g": self.opt_g.state_dict(),
            "optim_d": self.opt_d.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "data_rng": self.sampler.rng.get_state(),
            "generator_config": json.dumps(self.gen_cfg),
        }
        with atomic_path(self.out / CHECKPOINT) as tmp:
            torch.save(state, tmp)
        self._export()

    def _load(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if json.loads(state["generator_config"]) != self.gen_cfg:
            raise ValueError(
                f"{path}: generator config differs from this run's (size/units/hop changed?)"
            )
        self.G.load_state_dict(state["generator"])
        self.mpd.load_state_dict(state["mpd"])
        self.msd.load_state_dict(state["msd"])
        self.opt_g.load_state_dict(state["optim_g"])
        self.opt_d.load_state_dict(state["optim_d"])
        torch.set_rng_state(state["torch_rng"])
        self.sampler.rng.set_state(state["data_rng"])
        self.step = int(state["step"])

    def vocoder(self) -> Vocoder:
        info = {
            "source": "twistlm",
            "tokenizer": self.tok,
            "speakers": self.speakers,
            "training": {"step": self.step, "size": self.cfg.size, "out_dir": str(self.out)},
        }
        # a fresh copy (deepcopy of parametrized modules fails); Vocoder folds the weight norm
        gen = CodeGenerator(self.gen_cfg)
        gen.load_state_dict({k: v.detach().cpu() for k, v in self.G.state_dict().items()})
        return Vocoder(gen, self.gen_cfg, info)

    def _export(self) -> None:
        self.vocoder().save_pretrained(self.out / "vocoder")

    # ---- one step ---------------------------------------------------------------------------
    def _lr(self) -> float:
        return self.cfg.lr * self.cfg.lr_decay ** (self.step / 1000)

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        frames, y, spk, units, durs, mask = (
            t.to(self.device) for t in self.sampler.batch(cfg.batch_size)
        )
        for opt in (self.opt_g, self.opt_d):
            for g in opt.param_groups:
                g["lr"] = self._lr()
        gan = 0 <= cfg.gan_start_step <= self.step
        self.G.train()
        ac = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        with ac:
            y_hat = self.G(frames, spk if self.G.multispkr else None)
        y_hat = y_hat.float()
        m = {}
        if gan:  # discriminator step on detached generator output
            with ac:
                r1, g1, _, _ = self.mpd(y, y_hat.detach())
                r2, g2, _, _ = self.msd(y, y_hat.detach())
                loss_d = discriminator_loss(r1, g1) + discriminator_loss(r2, g2)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            m["disc"] = loss_d.item()
        loss_mel = F.l1_loss(self.mel(y_hat.squeeze(1)), self.mel(y.squeeze(1)))
        loss = cfg.mel_weight * loss_mel
        m["mel_l1"] = loss_mel.item()
        if self.G.dur_predictor is not None:
            with ac:
                log_pred = self.G.predict_log_durations(units)
            loss_dur = masked_duration_loss(log_pred, durs, mask)
            loss = loss + cfg.dur_weight * loss_dur
            m["dur_mse"] = loss_dur.item()
        if gan:
            with ac:
                _, g1, fr1, fg1 = self.mpd(y, y_hat)
                _, g2, fr2, fg2 = self.msd(y, y_hat)
                adv = generator_loss(g1) + generator_loss(g2)
                fm = feature_loss(fr1, fg1) + feature_loss(fr2, fg2)
            loss = loss + adv + cfg.fm_weight * fm
            m["adv"], m["fm"] = adv.item(), fm.item()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.step += 1
        m["loss_g"] = loss.item()
        return m

    # ---- evaluation and samples ---------------------------------------------------------------
    @torch.no_grad()
    def validate(self, max_frames: int = 500) -> float | None:
        if not self.val:
            return None
        self.G.eval()
        total = 0.0
        for u in self.val:
            fr = u.frames[:max_frames].unsqueeze(0).to(self.device)
            y = (
                torch.from_numpy(u.audio[: fr.shape[1] * self.hop] / 32767.0)
                .float()
                .to(self.device)
            )
            spk = torch.tensor([u.speaker], device=self.device) if self.G.multispkr else None
            y_hat = self.G(fr, spk)[0].float()
            total += float(F.l1_loss(self.mel(y_hat), self.mel(y.unsqueeze(0))))
        return total / len(self.val)

    def write_samples(self) -> None:
        if not self.val or self.cfg.n_samples <= 0:
            return
        voc = self.vocoder()
        d = self.out / "samples" / f"step-{self.step:07d}"
        for k, u in enumerate(self.val[: self.cfg.n_samples]):
            ref = self.out / "samples" / "reference" / f"{k}.wav"
            if not ref.exists():
                write_wav(ref, u.audio / 32767.0, voc.sample_rate)
            write_wav(
                d / f"{k}-true-durations.wav",
                voc.synthesize(u.units, u.durations, u.speaker),
                voc.sample_rate,
            )
            if voc.has_duration_predictor:
                write_wav(
                    d / f"{k}-predicted-durations.wav",
                    voc.synthesize(u.units, None, u.speaker),
                    voc.sample_rate,
                )

    def log(self, record: dict) -> None:
        with (self.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")


def train_vocoder(cfg: VocoderTrainConfig, resume: bool = False) -> VocoderTrainResult:
    """Train (or resume) a vocoder; returns when max_steps or max_seconds is reached."""
    tr = _Trainer(cfg, resume)
    t0, cpu0 = time.time(), time.process_time()
    acc: dict[str, list[float]] = {}
    total = cfg.max_steps if cfg.max_steps > 0 else None
    bar = tqdm(total=total, initial=tr.step, desc="train-vocoder", unit="step")
    val = None
    while True:
        elapsed = time.time() - t0
        cpu = time.process_time() - cpu0
        if (
            (cfg.max_steps > 0 and tr.step >= cfg.max_steps)
            or (0 < cfg.max_seconds <= elapsed)
            or (0 < cfg.max_cpu_seconds <= cpu)
        ):
            break
        m = tr.train_step()
        bar.update(1)
        for k, v in m.items():
            acc.setdefault(k, []).append(v)
        log_now, eval_now = tr.step % cfg.log_every == 0, tr.step % cfg.eval_every == 0
        if log_now or eval_now:
            rec = {"step": tr.step, "seconds": round(time.time() - t0, 2), "lr": tr._lr()}
            rec["cpu_seconds"] = round(time.process_time() - cpu0, 2)
            rec.update({k: sum(v) / len(v) for k, v in acc.items()})
            rec["phase"] = "gan" if 0 <= cfg.gan_start_step < tr.step else "mel"
            acc.clear()
            if eval_now:
                val = tr.validate()
                rec["val_mel_l1"] = val
            tr.log(rec)
            bar.set_postfix(
                mel=f"{rec['mel_l1']:.3f}", val=f"{val:.3f}" if val is not None else "-"
            )
        if math.isnan(m["loss_g"]):
            raise FloatingPointError(f"generator loss is NaN at step {tr.step}; lower lr")
        if tr.step % cfg.checkpoint_every == 0:
            tr._save()
        if tr.step % cfg.sample_every == 0:
            tr.write_samples()
    bar.close()
    val = tr.validate()
    tr.log(
        {"step": tr.step, "seconds": round(time.time() - t0, 2), "val_mel_l1": val, "final": True}
    )
    tr._save()
    tr.write_samples()
    if tr.errors.count:
        print(f"{tr.errors.count} file(s) skipped, see {tr.errors.path}")
    return VocoderTrainResult(tr.out, tr.step, time.time() - t0, val, len(tr.train), len(tr.val))
