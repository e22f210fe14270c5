"""Unit vocoder: CodeHiFiGAN (textlesslib layout) with duration predictor; loading, training."""

from twistlm.vocoder.unit_vocoder import Vocoder, generator_config

__all__ = ["Vocoder", "generator_config"]
