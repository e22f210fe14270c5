"""`twistlm continue` end to end on tiny models built through the public APIs."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_text_lm import tiny_speech_lm  # noqa: E402,I001  (tests/ is on sys.path)

from twistlm.audio import write_wav
from twistlm.cli import main
from twistlm.lm.cli_continue import continue_prompt

N_UNITS = 12


def _tiny_lm(n_units, meta=None, seed=0):
    return tiny_speech_lm(n_units, meta, seed)


def build_tiny_pipeline(root, n_units=N_UNITS, record_in_meta=True, vocoder_units=None):
    """Save a tiny tokenizer (log-mel 25 Hz + random centroids), vocoder (tiny CodeHiFiGAN with
    duration predictor) and SpeechLM under ``root``; return their dirs."""
    from twistlm.tokenizer.spectral import SpectralFeatures
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer
    from twistlm.vocoder import Vocoder, generator_config
    from twistlm.vocoder.hifigan import CodeGenerator

    torch.manual_seed(0)
    ext = SpectralFeatures("logmel", frame_rate=25.0, n_mels=16)
    tok = UnitTokenizer(ext, torch.randn(n_units, 16), dedup=True, name="tiny")
    tok_dir, voc_dir, lm_dir = root / "tok", root / "voc", root / "lm"
    tok.save_pretrained(tok_dir)
    cfg = generator_config(vocoder_units or n_units, hop=tok.hop, size="tiny")
    Vocoder(CodeGenerator(cfg), cfg, {"tokenizer": tok.info()}).save_pretrained(voc_dir)
    meta = {"tokenizer": {**tok.info(), "path": str(tok_dir)}, "vocoder": str(voc_dir)}
    _tiny_lm(n_units, meta if record_in_meta else {}).save_pretrained(lm_dir)
    return tok_dir, voc_dir, lm_dir


def speechlike_wav(seconds=4.0, seed=0):
    """A chirp with syllable-like amplitude modulation and noise: many distinct frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f = 150 + 100 * np.sin(2 * np.pi * 0.7 * t)
    wav = np.sin(2 * np.pi * np.cumsum(f) / 16000) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return (0.3 * wav + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    tok, voc, lm = build_tiny_pipeline(root)
    prompt = root / "prompt.wav"
    write_wav(prompt, speechlike_wav())
    return {"tok": tok, "voc": voc, "lm": lm, "prompt": prompt, "root": root}


def test_cli_writes_valid_wav_and_json(pipeline, tmp_path):
    out = tmp_path / "out.wav"
    args = ["continue", str(pipeline["prompt"]), "-o", str(out), "--model", str(pipeline["lm"])]
    args += ["--tokenizer", str(pipeline["tok"]), "--vocoder", str(pipeline["voc"])]
    assert main(args + ["--max-units", "10", "--seed", "3"]) == 0
    info = sf.info(str(out))
    meta = json.loads(out.with_suffix(".json").read_text())
    assert info.samplerate == 16000 and info.subtype == "PCM_16"
    assert len(meta["continuation_units"]) == 10
    assert all(0 <= u < N_UNITS for u in meta["continuation_units"])
    # 3 s of original prompt audio, then sum(durations) frames of 640 samples
    assert meta["prompt_samples"] == 48000
    assert info.frames == 48000 + 640 * sum(meta["continuation_durations"])
    s = meta["settings"]
    assert s["temperature"] == 0.8 and s["seed"] == 3 and s["durations"] == "predicted"
    assert s["prompt_seconds_used"] == 3.0 and s["convention"] == "twistlm"
    assert sum(meta["prompt_durations"]) == 75  # 3 s at 25 Hz, deduplicated
    wav, _ = sf.read(str(out))
    assert np.isfinite(wav).all() and np.abs(wav[48000:]).max() > 0


def test_defaults_from_meta_and_continuation_only(pipeline, tmp_path):
    out = tmp_path / "c.wav"
    args = ["continue", str(pipeline["prompt"]), "-o", str(out), "--model", str(pipeline["lm"])]
    assert main(args + ["--max-units", "6", "--continuation-only", "--seed", "3"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["prompt_samples"] == 0
    assert sf.info(str(out)).frames == 640 * sum(meta["continuation_durations"])
    # same seed, same first units as the CLI run with the explicit tokenizer / vocoder
    res = continue_prompt(pipeline["prompt"], pipeline["lm"], max_new_units=10, seed=3)
    assert res.units[:6].tolist() == meta["continuation_units"]
    assert res.prompt_samples == 48000 and res.wav.dtype == np.float32


def test_twist_length_rule_seconds_and_resynth_prompt(pipeline):
    res = continue_prompt(pipeline["prompt"], pipeline["lm"], temperature=1.0)
    n_prompt = len(res.prompt_units)
    assert len(res.units) == min(250, 3 * n_prompt) - n_prompt
    res = continue_prompt(pipeline["prompt"], pipeline["lm"], seconds=2.0, prompt_audio="resynth")
    assert len(res.units) == round(2.0 * n_prompt / 3.0)
    assert res.prompt_samples == 640 * int(res.prompt_durations.sum())


def test_errors_are_one_line_and_name_the_file(pipeline, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    rc = main(["continue", str(bad), "-o", str(tmp_path / "o.wav"), "--model", str(pipeline["lm"])])
    assert rc == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"error: {bad}") and "\n" not in line
    assert not (tmp_path / "o.wav").exists()


def test_mismatched_vocoder_is_refused(tmp_path):
    tok, voc, lm = build_tiny_pipeline(tmp_path, vocoder_units=N_UNITS + 1)
    prompt = tmp_path / "p.wav"
    write_wav(prompt, speechlike_wav(1.0))
    with pytest.raises(ValueError, match="unit counts differ"):
        continue_prompt(prompt, lm, tok, voc)
    _, _, lm2 = build_tiny_pipeline(tmp_path / "b", record_in_meta=False)
    with pytest.raises(ValueError, match="--tokenizer"):
        continue_prompt(prompt, lm2)
