"""Tokenizer report: edit distance, cross-voice consistency, codebook use, the CLI end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from twistlm.sequences import edit_distance, normalized_edit_distance
from twistlm.tokenizer.consistency import (
    codebook_use,
    cross_voice_consistency,
    distance_matrix,
    twin_credit,
)


def reference_edit_distance(a, b):
    """Textbook Wagner-Fischer, pure Python."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
    return d[-1][-1]


def test_edit_distance_equals_reference():
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = rng.integers(0, 4, rng.integers(0, 15)).tolist()
        b = rng.integers(0, 4, rng.integers(0, 15)).tolist()
        assert edit_distance(a, b) == reference_edit_distance(a, b)
    assert edit_distance("kitten".split("t"), "sitting".split("t")) == reference_edit_distance(
        "kitten".split("t"), "sitting".split("t")
    )
    assert edit_distance(list("kitten"), list("sitting")) == 3
    assert normalized_edit_distance([], []) == 0.0
    assert normalized_edit_distance([1, 2], []) == 1.0


def test_twin_credit_shares_ties():
    d = np.array([[0.1, 0.5, 0.1], [0.4, 0.2, 0.3], [0.9, 0.1, 0.5]])
    # row 0: twin tied with one other -> 1/2; row 1: twin is the minimum -> 1; row 2: miss -> 0
    assert twin_credit(d) == pytest.approx((0.5 + 1 + 0) / 3)


def test_identical_units_in_every_voice_are_perfectly_consistent():
    rng = np.random.default_rng(1)
    sents = {f"s{i}": rng.integers(0, 50, 30).tolist() for i in range(6)}
    cv = cross_voice_consistency({"a": sents, "b": dict(sents), "c": dict(sents)})
    assert cv.same == 0.0 and cv.ratio == 0.0 and cv.twin == 1.0
    assert cv.chance == pytest.approx(1 / 6) and cv.voices == ["a", "b", "c"]


def test_voice_specific_units_score_like_chance():
    rng = np.random.default_rng(2)
    # every voice draws from its own disjoint units: nothing is shared across voices
    a = {f"s{i}": rng.integers(0, 10, 20).tolist() for i in range(8)}
    b = {f"s{i}": rng.integers(10, 20, 20).tolist() for i in range(8)}
    cv = cross_voice_consistency({"a": a, "b": b})
    assert cv.same == 1.0 and cv.different == 1.0 and cv.ratio == 1.0
    assert cv.twin == pytest.approx(1 / 8)  # every row is an 8-way tie: chance exactly


def test_consistency_matches_a_hand_computation():
    a = {"x": [1, 2, 3], "y": [4, 5, 6]}
    b = {"x": [1, 2, 9], "y": [4, 5, 6], "z": [7]}  # z is only in one voice: ignored
    cv = cross_voice_consistency({"a": a, "b": b})
    d = distance_matrix([a["x"], a["y"]], [b["x"], b["y"]])
    assert d.tolist() == [[1 / 3, 1.0], [1.0, 0.0]]
    assert cv.same == pytest.approx((1 / 3 + 0) / 2)
    assert cv.different == pytest.approx(1.0)
    assert cv.twin == 1.0 and cv.n_sentences == 2


def test_consistency_needs_shared_sentences():
    with pytest.raises(ValueError, match="at least two voices"):
        cross_voice_consistency({"a": {"x": [1]}, "b": {"y": [1]}})


def test_codebook_use():
    cb = codebook_use([[0, 1], [1, 1, 3]], n_units=8)
    p = np.array([1, 3, 1]) / 5
    assert (cb.used, cb.fraction) == (3, 3 / 8)
    assert cb.perplexity == pytest.approx(math.exp(-(p * np.log(p)).sum()))


def _tone_set(tmp_path):
    """Two 'voices' (loud, quiet) x three 'sentences' (tone sequences), plus a broken file."""
    rng = np.random.default_rng(3)
    rows, sr = [], 16000
    tmp_path.mkdir(parents=True, exist_ok=True)
    for s, freqs in enumerate([(300, 900), (500, 1500, 700), (1200, 400)]):
        for voice, gain in (("loud", 0.5), ("quiet", 0.1)):
            t = np.arange(int(0.3 * sr)) / sr
            wav = np.concatenate([gain * np.sin(2 * np.pi * f * t) for f in freqs])
            wav = wav + 1e-3 * rng.standard_normal(len(wav))
            path = tmp_path / f"{voice}_{s}.wav"
            sf.write(path, wav.astype(np.float32), sr)
            rows.append({"path": path.name, "voice": voice, "text": f"Sentence {s}."})
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    rows.append({"path": "broken.wav", "voice": "loud", "text": "Broken."})
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path / "manifest.jsonl"


def test_cli_writes_report_and_survives_a_bad_file(tmp_path, capsys):
    from twistlm.cli import main
    from twistlm.tokenizer.spectral import SpectralFeatures
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

    manifest = _tone_set(tmp_path / "data")
    torch.manual_seed(0)
    tok = UnitTokenizer(SpectralFeatures("logmel", 25.0, n_mels=16), torch.randn(12, 16))
    tok.save_pretrained(tmp_path / "tok")
    out = tmp_path / "report"
    rc = main(
        [
            "tokenizer-report",
            "--tokenizer",
            str(tmp_path / "tok"),
            "--manifest",
            str(manifest),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())["tokenizers"]["tok"]
    assert rep["n_utterances"] == 6 and rep["n_failed"] == 1
    assert rep["cross_voice"]["voices"] == ["loud", "quiet"]
    assert rep["cross_voice"]["n_sentences"] == 3
    assert 0 < rep["codebook"]["used"] <= 12
    errors = (out / "errors.jsonl").read_text().splitlines()
    assert len(errors) == 1 and "broken.wav" in errors[0]
    assert "| tok |" in (out / "report.md").read_text()
