"""Unit vocoders: CodeHiFiGAN (textlesslib layout) with duration predictor, and the acoustic-model
vocoder (twistlm.vocoder.acoustic: units -> WORLD features -> WORLD, the packaged default);
loading, training."""

from __future__ import annotations

from pathlib import Path

from twistlm.vocoder.unit_vocoder import Vocoder, generator_config

__all__ = ["Vocoder", "generator_config", "load_vocoder"]


def load_vocoder(path: str | Path, device: str = "cpu"):
    """Any twistlm vocoder: ``"packaged"`` (the shipped default, twistlm.packaged), an
    acoustic-model vocoder dir (``acoustic.json``, CPU only) or a CodeHiFiGAN one
    (``config.json``); all have ``synthesize(units, durations=None)``."""
    from twistlm.vocoder.acoustic import CONFIG_FILE, AcousticVocoder

    if str(path) == "packaged":
        from twistlm.packaged import packaged_vocoder_dir

        return AcousticVocoder.from_pretrained(packaged_vocoder_dir())
    path = Path(path)
    for d in (path, path / "vocoder"):
        if (d / CONFIG_FILE).exists():
            return AcousticVocoder.from_pretrained(d)
    return Vocoder.from_pretrained(path, device=device)
