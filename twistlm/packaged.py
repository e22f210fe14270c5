"""The default tokenizer + vocoder pair shipped inside the package (no download).

``twistlm/assets/slt-whisper-base-25hz-zkm500/``:

- ``tokenizer/``: the offline default speech tokenizer (Whisper base encoder, layer 6, pooled
  to 25 Hz, per-dimension standardized, k-means k=500 centroids), fit by the default quickstart
  recipe on its 1-hour multi-voice corpus (seed 0);
- ``vocoder/``: an acoustic-model vocoder (units -> WORLD features -> WORLD; speaks in the
  voice of ``flite:slt``) trained on those units by ``twistlm train-vocoder --recipe slt``
  (docs/vocoder.md gives its training log and its Whisper WER on held-out voices).

Every file is pinned by sha256 (:data:`SHA256`), checked on use. The quickstart uses this
pair unless asked to fit its own tokenizer or train its own vocoder; ``load_vocoder("packaged")``
and ``UnitTokenizer.from_pretrained(packaged_tokenizer_dir())`` load it elsewhere.
"""

from __future__ import annotations

from pathlib import Path

NAME = "slt-whisper-base-25hz-zkm500"
ROOT = Path(__file__).resolve().parent / "assets" / NAME

# sha256 of each shipped file (relative to ROOT); written by `twistlm train-vocoder --recipe`
SHA256: dict[str, str] = {
    "tokenizer/tokenizer.json": "54b1013fa683e7bcb2b652a294e86e52718a123eb9e62887a61af52ddfe0a0ee",
    "tokenizer/centroids.safetensors": "834c0b7b32987598efd84d2301e44c8ab785e3701d1bb2078e47fd64ec1a48d9",
    "vocoder/acoustic.json": "bba5d2227869cb145604ffa2a8e8ba90bf94760af153830e31e673f3ba1c7742",
    "vocoder/acoustic.safetensors": "38bce81949ff1330db0ee7b520fd1be2fa72c82c5bd3578b05d326474d954afc",
}


def verify(root: Path | None = None, folder: str | None = None) -> None:
    """Raise FileNotFoundError / ValueError unless every pinned file (only those under
    ``folder``, e.g. ``"vocoder"``, when given) is there, unchanged."""
    from twistlm.loaders import sha256_file

    root = ROOT if root is None else root
    for rel, expected in SHA256.items():
        if folder is not None and not rel.startswith(f"{folder}/"):
            continue
        path = root / rel
        if not path.exists():
            raise FileNotFoundError(f"packaged asset missing: {path} (reinstall twistlm)")
        got = sha256_file(path)
        if got != expected:
            raise ValueError(f"packaged asset {path} has sha256 {got}, expected {expected}")


def packaged_tokenizer_dir() -> Path:
    """The shipped tokenizer folder (its files sha256-checked)."""
    verify(folder="tokenizer")
    return ROOT / "tokenizer"


def packaged_vocoder_dir() -> Path:
    """The shipped vocoder folder (its files sha256-checked)."""
    verify(folder="vocoder")
    return ROOT / "vocoder"
