"""Resynthesis: audio -> units (a tokenizer) -> audio (a vocoder); what the units keep.

Used by ``twistlm resynth``, the demo's Resynthesize tab and the vocoder WER scripts.
"""

from __future__ import annotations

import numpy as np


def resynthesize(
    wav: np.ndarray, tokenizer, vocoder, durations: str = "true", speaker: int | None = None
) -> tuple[np.ndarray, dict]:
    """(T,) 16 kHz waveform -> (T',) resynthesized waveform and the units used."""
    if durations not in ("true", "predicted"):
        raise ValueError(f"durations must be 'true' or 'predicted', got {durations!r}")
    tok = tokenizer.encode(wav)
    durs = tok.durations if durations == "true" else None
    if durs is None and not vocoder.has_duration_predictor:
        raise ValueError("this vocoder has no duration predictor: use --durations true")
    out = vocoder.synthesize(tok.units, durs, speaker)
    meta = {
        "units": tok.units.tolist(),
        "durations": (
            tok.durations if durs is not None else vocoder.predict_durations(tok.units)
        ).tolist(),
        "frame_rate": tok.frame_rate,
        "duration_source": durations,
    }
    return out, meta
