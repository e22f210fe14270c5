"""`twistlm continue` end to end on tiny models built through the public APIs."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from twistlm.audio import write_wav
from twistlm.cli import main
from twistlm.lm.cli_continue import continue_prompt

N_UNITS = 12


def build_tiny_pipeline(
    tiny_speech_lm, root, n_units=N_UNITS, record_in_meta=True, vocoder_units=None
):
    """Save a tiny tokenizer (log-mel 25 Hz + random centroids), vocoder (tiny CodeHiFiGAN with
    duration predictor) and SpeechLM under ``root``; return their dirs. ``tiny_speech_lm``: the
    conftest fixture (its builder)."""
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
    tiny_speech_lm(n_units, meta if record_in_meta else {}).save_pretrained(lm_dir)
    return tok_dir, voc_dir, lm_dir


def speechlike_wav(seconds=4.0, seed=0):
    """A chirp with syllable-like amplitude modulation and noise: many distinct frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f = 150 + 100 * np.sin(2 * np.pi * 0.7 * t)
    wav = np.sin(2 * np.pi * np.cumsum(f) / 16000) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return (0.3 * wav + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_speech_lm):
    root = tmp_path_factory.mktemp("pipe")
    tok, voc, lm = build_tiny_pipeline(tiny_speech_lm, root)
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


def test_mismatched_vocoder_is_refused(tmp_path, tiny_speech_lm):
    tok, voc, lm = build_tiny_pipeline(tiny_speech_lm, tmp_path, vocoder_units=N_UNITS + 1)
    prompt = tmp_path / "p.wav"
    write_wav(prompt, speechlike_wav(1.0))
    with pytest.raises(ValueError, match="unit counts differ"):
        continue_prompt(prompt, lm, tok, voc)
    _, _, lm2 = build_tiny_pipeline(tiny_speech_lm, tmp_path / "b", record_in_meta=False)
    with pytest.raises(ValueError, match="--tokenizer"):
        continue_prompt(prompt, lm2)


def _generation_config(lm_dir, **fields):
    path = lm_dir / "generation_config.json"
    cfg = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**cfg, **fields}))


def test_presets_generation_config_and_explicit_options(pipeline, tmp_path, capsys):
    import shutil

    lm = tmp_path / "lm"
    shutil.copytree(pipeline["lm"], lm)
    _generation_config(lm, top_k=5, temperature=0.2)  # temperature: the TWIST example sets it
    base = ["continue", str(pipeline["prompt"]), "--model", str(lm), "--seed", "1"]

    def run(name, *extra):
        out = tmp_path / f"{name}.wav"
        assert main([*base, "-o", str(out), *extra]) == 0
        return json.loads(out.with_suffix(".json").read_text())

    s = run("ckpt", "--max-units", "4")["settings"]
    assert (s["preset"], s["top_k"], s["temperature"], s["top_p"]) == ("twist", 5, 0.8, None)
    assert s["settings_origin"]["top_k"] == "generation_config.json"
    s = run("explicit", "--max-units", "4", "--top-k", "9", "--temperature", "1.1")["settings"]
    assert (s["top_k"], s["temperature"], s["settings_origin"]["top_k"]) == (9, 1.1, "argument")
    meta = run("slam", "--preset", "slamkit")
    s = meta["settings"]
    assert (s["preset"], s["top_k"], s["temperature"], s["stop_at_eos"]) == (
        "slamkit",
        25,
        0.8,
        True,
    )
    assert s["length_rule"] == "slamkit: 150 units" and s["max_new_units"] == 150
    assert 0 < len(meta["continuation_units"]) <= 150  # 150, or fewer if it sampled EOS
    s = run("off", "--preset", "slamkit", "--top-k", "0", "--no-stop-at-eos", "--max-units", "3")
    assert (s["settings"]["top_k"], s["settings"]["stop_at_eos"]) == (None, False)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["continue", "--help"])
    assert "--preset {slamkit,twist}" in capsys.readouterr().out


def _twist_opt_dir(tiny_opt, path, n_units=None, vocab=1000, offset=4):
    """A TWIST-layout OPT dir that kept its text vocabulary (1000 rows, units from id 4);
    ``tiny_opt``: the conftest fixture (its builder)."""
    model = tiny_opt(vocab, hidden=16, layers=2, heads=2, max_positions=512, pad_token_id=1, seed=0)
    model.save_pretrained(path)
    c = json.loads((path / "config.json").read_text())
    c["offset"] = offset
    if n_units is not None:
        c["n_units"] = n_units
    (path / "config.json").write_text(json.dumps(c))
    return path


def test_twist_checkpoint_without_n_units_uses_the_tokenizer_units(
    tmp_path, tiny_opt, tiny_speech_lm
):
    tok, voc, _ = build_tiny_pipeline(tiny_speech_lm, tmp_path, n_units=20)
    prompt = tmp_path / "p.wav"
    write_wav(prompt, speechlike_wav(2.0))
    twist = _twist_opt_dir(tiny_opt, tmp_path / "twist")
    res = continue_prompt(prompt, twist, tok, voc, max_new_units=40, temperature=1.0, top_k=None)
    assert len(res.units) == 40 and int(res.units.max()) < 20 and int(res.units.min()) >= 0
    # a recorded count that differs from the tokenizer's is refused, naming counts and dirs
    other = _twist_opt_dir(tiny_opt, tmp_path / "twist30", n_units=30)
    with pytest.raises(
        ValueError, match=r"unit counts differ: tokenizer 20 \(.*tok\), SpeechLM 30"
    ) as e:
        continue_prompt(prompt, other, tok, voc, max_new_units=4)
    assert str(other) in str(e.value) and str(voc) in str(e.value)
