"""Offline text-to-speech behind a registry: flite, festival and espeak-ng voices -> 16 kHz mono wav.

Voice names are ``backend:voice`` (``flite:kal16``, ``festival:ked_diphone``,
``espeak-ng:us-f3``). espeak-ng voices are a base voice plus a variant, pitch and speed, which
gives several distinct speakers from one engine; they run through the ``espeak-ng`` binary or,
without root, through the libespeak-ng that the PyPI package ``espeakng-loader`` ships.

Every backend's output is read back, downmixed and resampled to 16 kHz (flite's kal16/awb/rms/slt
and festival's ked are 16 kHz already, espeak-ng is 22.05 kHz), checked to be non-silent and
written atomically as 16-bit PCM.
"""

from __future__ import annotations

import ctypes
import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twistlm.audio import SAMPLE_RATE, check_waveform, to_mono_16k, write_wav


class TTSError(RuntimeError):
    """A voice that is not installed or a synthesis that failed (the message says how to fix it)."""


@dataclass(frozen=True)
class VoiceSpec:
    """One synthetic speaker. ``pitch`` (0-99) and ``speed`` (words/min) are espeak-ng only."""

    name: str
    backend: str
    voice: str
    pitch: int | None = None
    speed: int | None = None
    phoneme_input: bool = False  # accepts espeak-ng ``[[...]]`` phoneme strings


def _espeak(name: str, voice: str, pitch: int, speed: int) -> VoiceSpec:
    return VoiceSpec(f"espeak-ng:{name}", "espeak-ng", voice, pitch, speed, phoneme_input=True)


VOICES: dict[str, VoiceSpec] = {
    v.name: v
    for v in [
        VoiceSpec("flite:kal16", "flite", "kal16"),
        VoiceSpec("flite:awb", "flite", "awb"),
        VoiceSpec("flite:rms", "flite", "rms"),
        VoiceSpec("flite:slt", "flite", "slt"),
        VoiceSpec("festival:ked_diphone", "festival", "ked_diphone"),
        VoiceSpec("festival:kal_diphone", "festival", "kal_diphone"),
        _espeak("us-m3", "en-us+m3", 45, 160),
        _espeak("us-f3", "en-us+f3", 60, 150),
        _espeak("gb-m1", "en-gb+m1", 40, 155),
        _espeak("gb-f2", "en-gb-x-rp+f2", 65, 145),
    ]
}

# Defaults (see docs/synth.md for the Whisper tiny.en WER per voice that chose them: flite
# 7-16%, festival ked 19%, espeak-ng 21-31%; none is unintelligible, the worst, gb-f2, is left out).
# Benchmarks are spoken by the held-out voices only; they never appear in a training corpus.
DEFAULT_TRAIN_VOICES: tuple[str, ...] = (
    "flite:awb",
    "flite:rms",
    "flite:slt",
    "festival:ked_diphone",
    "espeak-ng:us-m3",
    "espeak-ng:gb-m1",
)
DEFAULT_HELDOUT_VOICES: tuple[str, ...] = ("flite:kal16", "espeak-ng:us-f3")

INSTALL_HINTS = {
    "flite": "apt-get install flite",
    "festival": "apt-get install festival festvox-kdlpc16k (ked); festvox-kallpc16k (kal)",
    "espeak-ng": "apt-get install espeak-ng, or pip install espeakng-loader (no root)",
}

FESTIVAL_VOICE_DIRS = ("/usr/share/festival/voices", "/usr/lib/festival/voices")


# ---------------------------------------------------------------------------------------------
# availability


@functools.cache
def _flite_voices() -> frozenset[str]:
    if not shutil.which("flite"):
        return frozenset()
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=30).stdout
    return frozenset(out.split(":", 1)[-1].split())


def _festival_has(voice: str) -> bool:
    if not shutil.which("text2wave"):
        return False
    return any(
        p.is_dir()
        for d in FESTIVAL_VOICE_DIRS
        for p in Path(d).glob(f"*/{voice}")
        if Path(d).is_dir()
    )


@functools.cache
def espeak_lib_paths() -> tuple[str, str] | None:
    """(libespeak-ng path, its data dir) from the ``espeakng-loader`` wheel; None without it."""
    try:
        import espeakng_loader
    except ImportError:
        return None
    return str(espeakng_loader.get_library_path()), str(espeakng_loader.get_data_path())


def _espeak_available() -> bool:
    return bool(shutil.which("espeak-ng")) or espeak_lib_paths() is not None


def is_available(name: str) -> bool:
    spec = get_voice(name)
    if spec.backend == "flite":
        return spec.voice in _flite_voices()
    if spec.backend == "festival":
        return _festival_has(spec.voice)
    return _espeak_available()


def available_voices() -> list[str]:
    return [n for n in VOICES if is_available(n)]


def get_voice(name: str) -> VoiceSpec:
    if name not in VOICES:
        raise TTSError(f"unknown voice {name!r}; known voices: {', '.join(VOICES)}")
    return VOICES[name]


def resolve_voices(names: list[str] | tuple[str, ...], what: str = "voices") -> list[str]:
    """Keep the installed voices of ``names``; skip the others with a message; error if none is left."""
    missing = [n for n in names if not is_available(n)]
    ok = [n for n in names if n not in missing]
    for n in missing:
        hint = INSTALL_HINTS[get_voice(n).backend]
        print(f"note: skipping {n}: backend not installed ({hint})")
    if not ok:
        hints = sorted({INSTALL_HINTS[get_voice(n).backend] for n in names})
        raise TTSError(
            f"none of the requested {what} is installed ({', '.join(names)}): {'; '.join(hints)}"
        )
    return ok


# ---------------------------------------------------------------------------------------------
# synthesis


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as e:
        raise TTSError(f"{what}: timed out") from e
    if proc.returncode != 0:
        raise TTSError(f"{what}: exit {proc.returncode}: {' '.join(proc.stderr.split())[:300]}")


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    wav, sr = sf.read(str(path), dtype="float32", always_2d=False)
    return wav, sr


class EspeakLib:
    """libespeak-ng through ctypes (synchronous mode, samples collected by the callback).

    API: espeak-ng ``speak_lib.h`` (espeak_Initialize, espeak_SetSynthCallback,
    espeak_SetVoiceByName, espeak_SetParameter, espeak_Synth, espeak_Synchronize).
    One instance per process: the library keeps global state.
    """

    AUDIO_OUTPUT_SYNCHRONOUS = 2
    RATE, PITCH = 1, 3
    CHARS_UTF8, PHONEMES = 1, 0x100

    def __init__(self, lib_path: str, data_path: str):
        self.lib = ctypes.CDLL(lib_path)
        self.lib.espeak_Initialize.restype = ctypes.c_int
        rate = self.lib.espeak_Initialize(
            self.AUDIO_OUTPUT_SYNCHRONOUS, 0, str(Path(data_path).parent).encode(), 0
        )
        if rate <= 0:  # the data path is the folder *containing* espeak-ng-data
            rate = self.lib.espeak_Initialize(
                self.AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0
            )
        if rate <= 0:
            raise TTSError(f"libespeak-ng failed to initialise (data {data_path})")
        self.sample_rate = rate
        self._chunks: list[np.ndarray] = []
        cb_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
        )

        def _cb(wav, n, _events):
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._cb = cb_type(_cb)  # keep a reference: the library holds the pointer
        self.lib.espeak_SetSynthCallback(self._cb)

    def synth(self, spec: VoiceSpec, text: str) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(spec.voice.encode()) != 0:
            raise TTSError(f"libespeak-ng has no voice {spec.voice!r}")
        if spec.speed:
            self.lib.espeak_SetParameter(self.RATE, spec.speed, 0)
        if spec.pitch is not None:
            self.lib.espeak_SetParameter(self.PITCH, spec.pitch, 0)
        self._chunks = []
        data = text.encode() + b"\0"
        err = self.lib.espeak_Synth(
            data, len(data), 0, 0, 0, self.CHARS_UTF8 | self.PHONEMES, None, None
        )
        self.lib.espeak_Synchronize()
        if err != 0:
            raise TTSError(f"libespeak-ng synthesis failed (error {err})")
        if not self._chunks:
            return np.zeros(0, np.float32)
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0


@functools.cache
def espeak_lib() -> EspeakLib:
    """The process's libespeak-ng (loaded once); raises :class:`TTSError` when not installed."""
    paths = espeak_lib_paths()
    if paths is None:
        raise TTSError(f"espeak-ng is not installed: {INSTALL_HINTS['espeak-ng']}")
    return EspeakLib(*paths)


def synthesize_wav(name: str, text: str) -> np.ndarray:
    """Speak ``text`` with voice ``name`` -> (T,) float32 16 kHz mono, checked non-silent.

    espeak-ng voices accept phoneme input in ``[[...]]`` (espeak-ng mnemonics).
    """
    spec = get_voice(name)
    text = " ".join(text.split())
    if not text:
        raise TTSError(f"{name}: empty text")
    with tempfile.TemporaryDirectory(prefix="twistlm-tts-") as tmp:
        txt, out = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
        txt.write_text(text + "\n")
        if spec.backend == "flite":
            _run(["flite", "-voice", spec.voice, "-f", str(txt), "-o", str(out)], name)
            wav, sr = _read(out)
        elif spec.backend == "festival":
            ev = f"(voice_{spec.voice})"
            _run(["text2wave", "-eval", ev, str(txt), "-o", str(out)], name)
            wav, sr = _read(out)
        elif shutil.which("espeak-ng"):
            cmd = ["espeak-ng", "-v", spec.voice, "-w", str(out), "-f", str(txt)]
            if spec.pitch is not None:
                cmd += ["-p", str(spec.pitch)]
            if spec.speed:
                cmd += ["-s", str(spec.speed)]
            _run(cmd, name)
            wav, sr = _read(out)
        else:
            lib = espeak_lib()
            wav, sr = lib.synth(spec, text), lib.sample_rate
    wav = to_mono_16k(wav, sr, SAMPLE_RATE)
    check_waveform(wav, what=f"{name} output for {text[:40]!r}")
    if np.abs(wav).max() < 1e-3:
        raise TTSError(f"{name}: output is (nearly) silent for {text[:40]!r}")
    return wav


def synthesize_to_file(name: str, text: str, path: str | Path) -> float:
    """Speak ``text`` into ``path`` (16-bit 16 kHz wav, atomic); returns its duration in seconds."""
    wav = synthesize_wav(name, text)
    write_wav(path, wav, SAMPLE_RATE)
    return len(wav) / SAMPLE_RATE


def voice_slug(name: str) -> str:
    """File-system-safe voice name (``flite:kal16`` -> ``flite-kal16``)."""
    return name.replace(":", "-").replace("+", "-").replace("/", "-")
