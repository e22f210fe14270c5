"""Whisper's log-mel front end, in numpy.

Front end (:func:`log_mel`): Whisper's (openai/whisper ``whisper/audio.py`` log_mel_spectrogram):
Hann window 400, hop 160, ``n_mels`` Slaney mel filters, ``log10(max(mel, 1e-10))``, floored at
``max - 8``, then ``(x + 4) / 4``. It is a numpy copy of faster-whisper's ``FeatureExtractor``
(SYSTRAN/faster-whisper ``faster_whisper/feature_extractor.py``; default ``padding=160``) with
its last frame dropped, as faster-whisper's batched pipeline does (``transcribe.py``,
``feature_extractor(chunk)[..., :-1]``): ``n_samples // 160`` mel frames, the tests check equality.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from twistlm.audio import SAMPLE_RATE

N_FFT = 400
MEL_HOP = 160  # samples per mel frame (10 ms)
ENC_HOP = 2 * MEL_HOP  # conv2 has stride 2: 320 samples per encoder frame (50 Hz)


@lru_cache(maxsize=4)
def mel_filters(n_mels: int = 80, sr: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32 Slaney mel filters (librosa ``filters.mel`` defaults,
    as openai/whisper's ``mel_filters.npz`` and faster-whisper's ``get_mel_filters``)."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mels = np.linspace(0.0, 45.245640471924965, n_mels + 2)  # hz_to_mel(8000) on the Slaney scale
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    fdiff = np.diff(freqs)
    ramps = freqs.reshape(-1, 1) - fftfreqs.reshape(1, -1)
    lower = -ramps[:-2] / np.expand_dims(fdiff[:-1], axis=1)
    upper = ramps[2:] / np.expand_dims(fdiff[1:], axis=1)
    weights = np.maximum(np.zeros_like(lower), np.minimum(lower, upper))
    enorm = 2.0 / (freqs[2 : n_mels + 2] - freqs[:n_mels])  # Slaney area normalisation
    weights *= np.expand_dims(enorm, axis=1)
    return weights.astype("float32")


def log_mel(wav: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """(T,) 16 kHz waveform -> (n_mels, T // 160) float32 Whisper log-mel frames.

    Same operations in the same order as faster-whisper's ``FeatureExtractor.__call__``
    (padding=160, reflect-centred STFT, last STFT frame dropped), then its last frame dropped.
    """
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    n_out = wav.size // MEL_HOP
    if n_out == 0:
        return np.zeros((n_mels, 0), np.float32)
    x = np.pad(wav, (0, MEL_HOP))
    x = np.pad(x, (N_FFT // 2, N_FFT // 2), mode="reflect")
    n_frames = 1 + (x.size - N_FFT) // MEL_HOP
    frames = np.lib.stride_tricks.as_strided(
        x, (n_frames, N_FFT), (MEL_HOP * x.strides[0], x.strides[0])
    )
    window = np.hanning(N_FFT + 1)[:-1].astype("float32")
    stft = np.fft.rfft(frames * window, n=N_FFT, axis=-1).T.astype("complex64")
    magnitudes = np.abs(stft[..., :-1]) ** 2
    mel = mel_filters(n_mels) @ magnitudes
    log_spec = np.log10(np.clip(mel, a_min=1e-10, a_max=None))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    log_spec = (log_spec + 4.0) / 4.0
    return np.ascontiguousarray(log_spec[:, :n_out], dtype=np.float32)
