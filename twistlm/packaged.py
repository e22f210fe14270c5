"""The default tokenizer + vocoder pair shipped inside the package (no download).

``twistlm/assets/slt-whisper-base-25hz-km500/``:

- ``tokenizer/``: the offline default speech tokenizer (Whisper base encoder, layer 6, pooled
  to 25 Hz, k-means k=500 centroids), fit by the default quickstart recipe on its 1-hour
  multi-voice corpus (seed 0);
- ``vocoder/``: an acoustic-model vocoder (units -> WORLD features -> WORLD; speaks in the
  voice of ``flite:slt``) trained on those units by ``twistlm train-vocoder --recipe slt``
  (docs/vocoder.md gives its training log and its Whisper WER on held-out voices).

Every file is pinned by sha256 (:data:`SHA256`), checked on use. The quickstart uses this
pair unless asked to fit its own tokenizer or train its own vocoder; ``load_vocoder("packaged")``
and ``UnitTokenizer.from_pretrained(packaged_tokenizer_dir())`` load it elsewhere.
"""

from __future__ import annotations

from pathlib import Path

NAME = "slt-whisper-base-25hz-km500"
ROOT = Path(__file__).resolve().parent / "assets" / NAME

# sha256 of each shipped file (relative to ROOT); written by `twistlm train-vocoder --recipe`
SHA256: dict[str, str] = {
    "tokenizer/tokenizer.json": "b0774d8f2e80b16aea7eb477918da17f8cc38a2e35aa504b8f67748d04ae3aae",
    "tokenizer/centroids.safetensors": "282315d363441fdd62ce672908d66270a6af67e39131e58848046d26e832587f",
    "vocoder/acoustic.json": "28dc09c8baad99fffdef17c0c30b7cd205a71d4931b9f5ab5f63c3f45858575a",
    "vocoder/acoustic.safetensors": "4d09d3a1417447eb03be79e2db8be0ff5468ff4b3a415261d78af58a232b16c7",
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
