"""Unit vocoders: CodeHiFiGAN (textlesslib layout) with duration predictor, and the acoustic-model
+ Griffin-Lim candidate (twistlm.vocoder.acoustic); loading, training."""

from __future__ import annotations

from pathlib import Path

from twistlm.vocoder.unit_vocoder import Vocoder, generator_config

__all__ = ["Vocoder", "generator_config", "load_vocoder"]


def load_vocoder(path: str | Path, device: str = "cpu"):
    """Any twistlm vocoder dir: an acoustic-model vocoder (``acoustic.json``, CPU only) or a
    CodeHiFiGAN one (``config.json``); both have ``synthesize(units, durations=None)``."""
    from twistlm.vocoder.acoustic import CONFIG_FILE, AcousticVocoder

    path = Path(path)
    for d in (path, path / "vocoder"):
        if (d / CONFIG_FILE).exists():
            return AcousticVocoder.from_pretrained(d)
    return Vocoder.from_pretrained(path, device=device)
