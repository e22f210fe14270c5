"""WORLD vocoder features: analysis of a voice's audio and synthesis from predicted features.

WORLD (Morise, Yokomori & Ozawa 2016) splits speech into f0, a smooth spectral envelope and an
aperiodicity; it resynthesizes from them with no training. The acoustic-model vocoder
(twistlm.vocoder.acoustic, ``target="world"``) predicts these features from units: a smooth,
low-dimensional target that L1 regression learns in CPU minutes, where a 513-bin magnitude
with harmonics is learned blurred. We call WORLD through the PyPI package ``pyworld``
(JeremyCCHsu/Python-Wrapper-for-World-Vocoder: ``dio``, ``stonemask``, ``cheaptrick``,
``d4c``, ``code_spectral_envelope``, ``code_aperiodicity``, ``synthesize``).

Features per 10 ms frame (frame t is centred on sample ``t * 160``, as the centred STFT of
twistlm.vocoder.griffinlim): ``N_SP`` coded spectral-envelope coefficients (WORLD's mel-scale
coding of the log envelope), the coded band aperiodicities (1 band at 16 kHz), log f0 with
unvoiced frames filled by linear interpolation, and voicing (1.0 / 0.0).
"""

from __future__ import annotations

import warnings

import numpy as np

FRAME_PERIOD_MS = 10.0
N_SP = 40
F0_FLOOR, F0_CEIL = 60.0, 500.0


def _pyworld():
    try:
        with warnings.catch_warnings():  # pyworld 0.3.5 imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import pyworld
    except ImportError as e:
        raise ImportError(
            "the WORLD vocoder needs the PyPI package pyworld (and setuptools<81, which it "
            "imports): pip install pyworld 'setuptools<81'"
        ) from e
    return pyworld


def n_features(sample_rate: int) -> int:
    """Feature dimension: envelope + aperiodicity bands + log f0 + voicing."""
    return N_SP + _pyworld().get_num_aperiodicities(sample_rate) + 2


def _interpolate_log_f0(f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    voiced = f0 > 0
    if not voiced.any():
        return np.full(f0.shape, np.log(F0_FLOOR * 2)), voiced
    idx = np.arange(f0.size)
    lf0 = np.interp(idx, idx[voiced], np.log(f0[voiced]))
    return lf0, voiced


def analyze(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(S,) float audio in [-1, 1] -> (S // 160 + 1, n_features) float32 WORLD features."""
    pw = _pyworld()
    x = np.ascontiguousarray(audio, dtype=np.float64)
    f0, t = pw.dio(x, sample_rate, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS)
    f0 = pw.stonemask(x, f0, t, sample_rate)
    sp = pw.cheaptrick(x, f0, t, sample_rate)
    ap = pw.d4c(x, f0, t, sample_rate)
    coded_sp = pw.code_spectral_envelope(sp, sample_rate, N_SP)
    coded_ap = pw.code_aperiodicity(ap, sample_rate)
    lf0, voiced = _interpolate_log_f0(f0)
    feats = np.concatenate(
        [coded_sp, coded_ap, lf0[:, None], voiced[:, None].astype(np.float64)], axis=1
    )
    return feats.astype(np.float32)


def synthesize(features: np.ndarray, sample_rate: int, length: int) -> np.ndarray:
    """(T, n_features) features -> (length,) float32 waveform (voiced where voicing > 0.5)."""
    pw = _pyworld()
    f = np.ascontiguousarray(features, dtype=np.float64)
    n_ap = pw.get_num_aperiodicities(sample_rate)
    fft_size = pw.get_cheaptrick_fft_size(sample_rate, F0_FLOOR)
    sp = pw.decode_spectral_envelope(np.ascontiguousarray(f[:, :N_SP]), sample_rate, fft_size)
    coded_ap = np.ascontiguousarray(np.minimum(f[:, N_SP : N_SP + n_ap], 0.0))
    ap = pw.decode_aperiodicity(coded_ap, sample_rate, fft_size)
    lf0, voicing = f[:, N_SP + n_ap], f[:, N_SP + n_ap + 1]
    f0 = np.where(voicing > 0.5, np.exp(np.clip(lf0, np.log(F0_FLOOR), np.log(F0_CEIL))), 0.0)
    wav = pw.synthesize(
        np.ascontiguousarray(f0),
        np.ascontiguousarray(sp),
        np.ascontiguousarray(ap),
        sample_rate,
        FRAME_PERIOD_MS,
    )
    out = np.zeros(length, dtype=np.float32)
    n = min(length, wav.size)
    out[:n] = wav[:n]
    return out
