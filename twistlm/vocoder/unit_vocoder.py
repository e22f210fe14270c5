"""``Vocoder``: units (+ durations) -> 16 kHz waveform, loadable from our dirs and textlesslib.

Our vocoder directory::

    config.json              generator config (textless keys: num_embeddings, upsample_rates, ...)
    generator.safetensors    generator weights, weight norm folded in
    vocoder.json             how it was made: tokenizer info (name, frame_rate, hop, n_units),
                             speakers, sample_rate, training summary

A textlesslib CodeHiFiGAN (``torch.load(ckpt)["generator"]`` + JSON config) loads with
:meth:`Vocoder.from_textless` under strict key matching.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from twistlm.vocoder.duration import durations_from_log
from twistlm.vocoder.hifigan import CodeGenerator, from_textless_keys, upsample_plan

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "generator.safetensors"
INFO_FILE = "vocoder.json"


def generator_config(
    n_units: int,
    hop: int,
    size: str = "small",
    duration_predictor: bool = True,
    n_speakers: int = 0,
    sample_rate: int = 16_000,
) -> dict[str, Any]:
    """Generator config for a preset size.

    ``full``: textlesslib's HuBERT CodeHiFiGAN (512 initial channels, kernels 3/7/11,
    128-dim unit embedding, duration predictor 128 hidden, dropout 0.5), ~13.6M parameters.
    ``small``: CPU-trainable (128 channels, rates up to 8, kernels 3/7), ~0.6M parameters.
    """
    rates, kernels = upsample_plan(hop, max_rate=5 if size == "full" else 8)
    if size == "full":
        if hop == 320:  # textless's exact 50 Hz plan
            rates, kernels = [5, 4, 4, 2, 2], [11, 8, 8, 4, 4]
        ch, emb, rk, rd, dur_hidden = 512, 128, [3, 7, 11], [[1, 3, 5]] * 3, 128
    elif size == "small":
        ch, emb, rk, rd, dur_hidden = 128, 64, [3, 7], [[1, 3, 5]] * 2, 64
    elif size == "tiny":  # tests only
        ch, emb, rk, rd, dur_hidden = 32, 16, [3], [[1, 3, 5]], 16
    else:
        raise ValueError(f"unknown vocoder size {size!r}: small | full | tiny")
    cfg: dict[str, Any] = {
        "resblock": "1",
        "upsample_rates": rates,
        "upsample_kernel_sizes": kernels,
        "upsample_initial_channel": ch,
        "resblock_kernel_sizes": rk,
        "resblock_dilation_sizes": rd,
        "num_embeddings": n_units,
        "embedding_dim": emb,
        "model_in_dim": emb * (2 if n_speakers else 1),
        "sampling_rate": sample_rate,
    }
    if duration_predictor:
        cfg["dur_predictor_params"] = {
            "encoder_embed_dim": emb,
            "var_pred_hidden_dim": dur_hidden,
            "var_pred_kernel_size": 3,
            "var_pred_dropout": 0.5,
        }
    if n_speakers:
        cfg["multispkr"] = True
        cfg["num_speakers"] = n_speakers
    return cfg


def check_units(units, n_units: int) -> Tensor:
    """(N,) unit ids as int64, or ValueError when empty or outside ``[0, n_units)``."""
    units = torch.as_tensor(units).long().view(-1)
    if units.numel() == 0:
        raise ValueError("no units to synthesize")
    lo, hi = int(units.min()), int(units.max())
    if lo < 0 or hi >= n_units:
        raise ValueError(f"unit ids must lie in [0, {n_units}), got [{lo}, {hi}]")
    return units


def check_durations(units: Tensor, durations) -> Tensor:
    """(N,) frames per unit as int64, or ValueError when they do not fit ``units`` or are < 1."""
    durations = torch.as_tensor(durations).long().view(-1)
    if durations.shape != units.shape:
        raise ValueError(f"{units.numel()} units but {durations.numel()} durations")
    if int(durations.min()) < 1:
        raise ValueError("durations must be >= 1 frame")
    return durations


def save_weights(module: torch.nn.Module, path: Path, half: bool = False) -> None:
    """A module's state dict as safetensors at ``path`` (written atomically; ``half``: floating
    tensors stored as fp16)."""
    from safetensors.torch import save_file

    from twistlm.io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


class Vocoder:
    """Inference wrapper around a weight-norm-free :class:`CodeGenerator` (eval mode)."""

    def __init__(
        self,
        generator: CodeGenerator,
        config: dict[str, Any],
        info: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ):
        if generator.has_weight_norm:
            generator.remove_weight_norm()
        self.generator = generator.to(device).eval()
        self.config = dict(config)
        self.info = dict(info or {})
        self.device = torch.device(device)
        self.sample_rate: int = int(config.get("sampling_rate", 16_000))
        self.hop: int = generator.hop
        self.n_units: int = int(config["num_embeddings"])
        self.has_duration_predictor: bool = generator.dur_predictor is not None
        self.speakers: list[str] = list(self.info.get("speakers") or [])

    # ---- loading / saving ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> Vocoder:
        """Load our directory (config.json + generator.safetensors + vocoder.json)."""
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / CONFIG_FILE).exists() and (path / "vocoder" / CONFIG_FILE).exists():
            path = path / "vocoder"  # a train-vocoder run folder
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (path / name).exists():
                raise FileNotFoundError(
                    f"{path}: not a twistlm vocoder dir (missing {name}); "
                    "train one with `twistlm train-vocoder` or use Vocoder.from_textless"
                )
        cfg = json.loads((path / CONFIG_FILE).read_text())
        gen = CodeGenerator(cfg)
        gen.remove_weight_norm()
        gen.load_state_dict(load_file(str(path / WEIGHTS_FILE)), strict=True)
        info = json.loads((path / INFO_FILE).read_text()) if (path / INFO_FILE).exists() else {}
        return cls(gen, cfg, info, device)

    @classmethod
    def from_textless(
        cls, checkpoint: str | Path, config_json: str | Path, device: str | torch.device = "cpu"
    ) -> Vocoder:
        """Load a textlesslib / fairseq CodeHiFiGAN: ``torch.load(ckpt)["generator"]`` + JSON config.

        Keys must match exactly (strict); weight norm is folded in afterwards, as textless does.
        """
        cfg = json.loads(Path(config_json).read_text())
        gen = CodeGenerator(cfg)
        ckpt = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or "generator" not in ckpt:
            raise ValueError(f"{checkpoint}: expected a dict with a 'generator' state dict")
        missing, unexpected = gen.load_state_dict(
            from_textless_keys(ckpt["generator"]), strict=False
        )
        if missing or unexpected:
            raise ValueError(
                f"{checkpoint}: state dict does not match config {config_json}: "
                f"missing {sorted(missing)[:8]}, unexpected {sorted(unexpected)[:8]}"
            )
        info = {"source": "textless", "checkpoint": str(checkpoint)}
        return cls(gen, cfg, info, device)

    def save_pretrained(self, path: str | Path) -> None:
        from twistlm.io import write_json

        path = Path(path)
        save_weights(self.generator, path / WEIGHTS_FILE)
        write_json(path / CONFIG_FILE, self.config)
        write_json(path / INFO_FILE, self.info)

    # ---- synthesis ----------------------------------------------------------------------------
    def _check_units(self, units: Tensor) -> Tensor:
        return check_units(units, self.n_units)

    @torch.inference_mode()
    def predict_durations(self, units: Tensor) -> Tensor:
        """(N,) deduplicated units -> (N,) int64 frames per unit (textless rounding rule)."""
        units = self._check_units(units).to(self.device)
        log_dur = self.generator.predict_log_durations(units.unsqueeze(0))[0]
        return durations_from_log(log_dur).cpu()

    @torch.inference_mode()
    def synthesize(
        self, units: Tensor, durations: Tensor | None = None, speaker: int | None = None
    ) -> np.ndarray:
        """(N,) units (+ (N,) frames per unit) -> (sum(durations) * hop,) float32 waveform.

        ``durations=None``: predicted when the vocoder has a duration predictor, else 1 each
        (units are then frame-level, e.g. not deduplicated).
        """
        units = self._check_units(units)
        if durations is None:
            if self.has_duration_predictor:
                durations = self.predict_durations(units)
            else:
                durations = torch.ones_like(units)
        durations = check_durations(units, durations)
        frames = torch.repeat_interleave(units, durations).unsqueeze(0).to(self.device)
        spk = None
        if self.generator.multispkr:
            n_spk = self.config.get("num_speakers", 200)
            sid = 0 if speaker is None else int(speaker)
            if not 0 <= sid < n_spk:
                raise ValueError(f"speaker {sid} out of range [0, {n_spk})")
            spk = torch.tensor([sid], device=self.device)
        wav = self.generator(frames, spk)[0, 0]
        return wav.float().cpu().numpy().astype(np.float32)

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.generator.parameters())
        return (
            f"Vocoder(n_units={self.n_units}, hop={self.hop}, sample_rate={self.sample_rate}, "
            f"duration_predictor={self.has_duration_predictor}, speakers={len(self.speakers)}, "
            f"params={n / 1e6:.2f}M)"
        )
