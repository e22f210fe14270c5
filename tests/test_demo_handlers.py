"""Demo handlers without a browser: input checks, limits, and parity with the library calls.

``build_quickstart_layout`` (tiny tokenizer / vocoder / warm + cold SpeechLMs through the public
APIs, in the quickstart's layout) is shared with the server and browser tests.
"""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from twistlm.audio import write_wav
from twistlm.demo.backend import DemoBackend, DemoUnavailable, resolve_paths
from twistlm.demo.handlers import (
    DemoInputError,
    Limits,
    OutputStore,
    SamplingSettings,
    compare_audio,
    continue_audio,
    list_benchmark_pairs,
    list_samples,
    load_pick,
    read_audio_input,
    resynthesize_audio,
    units_figure,
    warm_vs_cold,
)

N_UNITS = 12


def speechlike_wav(seconds=4.0, seed=0, sr=16000):
    """A chirp with syllable-like amplitude modulation and noise: many distinct frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f = 150 + 100 * np.sin(2 * np.pi * (0.7 + 0.2 * seed) * t)
    wav = np.sin(2 * np.pi * np.cumsum(f) / sr) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return (0.3 * wav + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def build_quickstart_layout(
    tiny_speech_lm, root: Path, cold: bool = True, n_units: int = N_UNITS
) -> Path:
    """Tiny models in the quickstart's layout under ``root``: models/warm (and models/cold),
    tokenizer, vocoder/vocoder, report/samples/*.wav, benchmarks/tSC/*_{correct,incorrect}.wav.
    ``tiny_speech_lm``: the conftest fixture (its builder)."""
    from twistlm.tokenizer.spectral import SpectralFeatures
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer
    from twistlm.vocoder import Vocoder, generator_config
    from twistlm.vocoder.hifigan import CodeGenerator

    torch.manual_seed(0)
    tok = UnitTokenizer(
        SpectralFeatures("logmel", frame_rate=25.0, n_mels=16),
        torch.randn(n_units, 16),
        dedup=True,
        name="tiny",
    )
    tok.save_pretrained(root / "tokenizer")
    cfg = generator_config(n_units, hop=tok.hop, size="tiny")
    Vocoder(CodeGenerator(cfg), cfg, {"tokenizer": tok.info()}).save_pretrained(
        root / "vocoder/vocoder"
    )
    meta = {"tokenizer": {**tok.info(), "path": str(root / "tokenizer")}}
    tiny_speech_lm(n_units, meta | {"init": "warm"}, 0).save_pretrained(root / "models/warm")
    if cold:
        tiny_speech_lm(n_units, meta | {"init": "cold"}, 1).save_pretrained(root / "models/cold")
    for i in range(2):
        write_wav(root / f"report/samples/prompt_{i}.wav", speechlike_wav(3.5, seed=i))
    for i in range(2):
        write_wav(root / f"benchmarks/tSC/{i}_correct.wav", speechlike_wav(2.0, seed=10 + i))
        write_wav(root / f"benchmarks/tSC/{i}_incorrect.wav", speechlike_wav(2.5, seed=20 + i))
        (root / f"benchmarks/tSC/{i}_correct.txt").write_text(f"true ending {i}")
    return root


@pytest.fixture(scope="module")
def qs(tmp_path_factory, tiny_speech_lm):
    return build_quickstart_layout(tiny_speech_lm, tmp_path_factory.mktemp("qs"))


@pytest.fixture(scope="module")
def backend(qs):  # loads each model once for the module
    return DemoBackend(resolve_paths(qs), asr="off")


# ---------------------------------------------------------------------------- input checks
def _wav(path, wav, sr=16000):
    sf.write(str(path), wav, sr)
    return str(path)


def test_non_audio_and_empty_uploads(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    with pytest.raises(DemoInputError, match="notes.wav.*not audio this demo can read"):
        read_audio_input(str(bad))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(DemoInputError, match="empty"):
        read_audio_input(str(empty))
    with pytest.raises(DemoInputError, match="no prompt audio"):
        read_audio_input(None)
    zero_len = _wav(tmp_path / "zero.wav", np.zeros(0, np.float32))
    with pytest.raises(DemoInputError, match="no samples"):
        read_audio_input(zero_len)


def test_upload_whose_name_is_not_utf8(tmp_path):
    import os

    rng = np.random.default_rng(0)
    wav = (0.3 * np.sin(np.arange(16000) / 5.0) + 0.01 * rng.standard_normal(16000)).astype(
        np.float32
    )
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.wav")  # latin-1 name
    with open(raw, "wb") as fh:
        sf.write(fh, wav, 16000, format="WAV")
    got = read_audio_input(os.fsdecode(raw))
    assert got.wav.shape == (16000,)


def test_silent_and_nearly_silent_audio(tmp_path):
    with pytest.raises(DemoInputError, match=r"silent \(peak -inf dBFS"):
        read_audio_input(_wav(tmp_path / "s.wav", np.zeros(16000, np.float32)))
    quiet = speechlike_wav(1.0) * 1e-4  # about -70 dBFS
    with pytest.raises(DemoInputError, match="silent"):
        read_audio_input(_wav(tmp_path / "q.wav", quiet, 16000))
    # the threshold is configurable
    x = read_audio_input(
        _wav(tmp_path / "q2.wav", quiet, 16000), Limits(silence_dbfs=-90), "utterance A"
    )
    assert x.seconds == pytest.approx(1.0, abs=1e-3)


def test_limits_size_duration_rate(tmp_path):
    long = _wav(tmp_path / "long.wav", speechlike_wav(3.0))
    with pytest.raises(DemoInputError, match=r"3\.0 s long; the limit is 2 s"):
        read_audio_input(long, Limits(max_seconds=2))
    with pytest.raises(DemoInputError, match=r"MB; the limit is 0.01 MB"):
        read_audio_input(long, Limits(max_upload_mb=0.01))
    short = _wav(tmp_path / "short.wav", speechlike_wav(0.1))
    with pytest.raises(DemoInputError, match="only 100 ms"):
        read_audio_input(short)
    low = _wav(tmp_path / "low.wav", speechlike_wav(1.0, sr=2000), 2000)
    with pytest.raises(DemoInputError, match="2000 Hz; at least 4000"):
        read_audio_input(low)
    # the duration check reads the header: a 40 s file is refused without decoding it
    with pytest.raises(DemoInputError, match="40.0 s long"):
        read_audio_input(_wav(tmp_path / "40.wav", np.zeros(40 * 16000, np.float32)))


def test_resampled_and_downmixed_input_is_noted(tmp_path):
    from twistlm.audio import to_mono_16k

    st = np.stack([speechlike_wav(1.0, sr=44100), speechlike_wav(1.0, 1, sr=44100)], axis=1)
    x = read_audio_input(_wav(tmp_path / "st.wav", st, 44100))
    assert x.source_rate == 44100 and x.channels == 2
    assert x.notes == [
        "prompt: 2 channels averaged to mono",
        "prompt: resampled from 44100 Hz to 16000 Hz",
    ]
    ref = to_mono_16k(sf.read(str(tmp_path / "st.wav"), dtype="float32")[0], 44100)
    np.testing.assert_array_equal(x.wav, ref)
    # Gradio's numpy form: (rate, int16 array)
    pcm = (speechlike_wav(1.0, sr=8000) * 32767).astype(np.int16)
    y = read_audio_input((8000, pcm))
    assert len(y.wav) == 16000 and y.notes == ["prompt: resampled from 8000 Hz to 16000 Hz"]
    np.testing.assert_allclose(y.wav, to_mono_16k(pcm / 32768.0, 8000), atol=1e-6)


def test_limits_and_settings_validation():
    with pytest.raises(ValueError):
        Limits(max_seconds=0)
    lim = Limits(max_continue_seconds=5)
    with pytest.raises(DemoInputError, match=r"\(0, 5\] s"):
        SamplingSettings(seconds=6).checked(lim)
    with pytest.raises(DemoInputError, match="temperature"):
        SamplingSettings(temperature=-1).checked(lim)
    s = SamplingSettings(seconds=2, prompt_seconds=0, top_k=0, top_p=1.0).checked(lim)
    assert (s.prompt_seconds, s.top_k, s.top_p) == (None, None, None)


# ---------------------------------------------------------------------------- paths, messages
def test_missing_model_message_names_the_command(tmp_path):
    paths = resolve_paths(tmp_path / "nothing")
    assert paths.model is None and paths.tokenizer is None
    b = DemoBackend(paths, asr="off")
    assert "twistlm quickstart --out" in b.status_markdown()
    with pytest.raises(DemoUnavailable, match=r"`twistlm quickstart --out .*nothing`"):
        continue_audio(b, OutputStore(tmp_path / "o"), _wav(tmp_path / "p.wav", speechlike_wav()))
    with pytest.raises(DemoUnavailable, match="No tokenizer: pass --tokenizer"):
        resynthesize_audio(
            b, OutputStore(tmp_path / "o"), _wav(tmp_path / "p.wav", speechlike_wav())
        )
    with pytest.raises(FileNotFoundError, match="--cold-model .*typo: not a directory"):
        resolve_paths(tmp_path, cold_model=tmp_path / "typo")


def test_quickstart_layout_is_found(qs, backend):
    p = backend.paths
    assert p.model == qs / "models/warm" and p.cold_model == qs / "models/cold"
    assert p.tokenizer == qs / "tokenizer" and p.vocoder == qs / "vocoder/vocoder"
    assert backend.models_available() == ["warm", "cold"]
    samples = list_samples(backend)
    assert list(samples) == [
        "held-out tsc 0: true ending 0",
        "held-out tsc 1: true ending 1",
        "report sample prompt_0.wav",
        "report sample prompt_1.wav",
    ]
    assert load_pick(samples["held-out tsc 1: true ending 1"], backend)[1].shape == (32000,)
    pairs = list_benchmark_pairs(backend)
    assert list(pairs) == ["tsc 0: true ending 0", "tsc 1: true ending 1"]
    sr, wav = load_pick(pairs["tsc 0: true ending 0"].negative, backend)
    assert sr == 16000 and len(wav) == 40000
    with pytest.raises(DemoInputError, match="outside"):
        load_pick(Path("/etc/hostname"), backend)


# ---------------------------------------------------------------------------- handlers
def test_vocoder_dir_candidates(tmp_path, qs):
    import shutil

    shutil.copytree(qs / "vocoder/vocoder", tmp_path / "vocoder")
    assert resolve_paths(tmp_path).vocoder == tmp_path / "vocoder"
    (tmp_path / "vocoder/vocoder").mkdir()  # a half-written export: no weights yet
    assert resolve_paths(tmp_path).vocoder == tmp_path / "vocoder"
    assert resolve_paths(tmp_path / "none").vocoder is None


def test_continue_matches_the_library(qs, backend, tmp_path):
    from twistlm.lm.continuation import continue_prompt

    store = OutputStore(tmp_path / "out")
    prompt = str(qs / "report/samples/prompt_0.wav")
    settings = SamplingSettings(seconds=1.0, temperature=0.9, top_k=5, seed=7)
    out = continue_audio(backend, store, prompt, settings)
    ref = continue_prompt(
        prompt,
        qs / "models/warm",
        qs / "tokenizer",
        qs / "vocoder/vocoder",
        seconds=1.0,
        temperature=0.9,
        top_k=5,
        seed=7,
    )
    assert out.result.units.tolist() == ref.units.tolist()
    cont, sr = sf.read(str(out.continuation_wav), dtype="float32")
    full, _ = sf.read(str(out.full_wav), dtype="float32")
    assert sr == 16000 and len(cont) == 640 * int(ref.durations.sum())
    assert len(full) == 48000 + len(cont)  # first 3 s of the prompt, then the continuation
    np.testing.assert_allclose(full, ref.wav, atol=1 / 32768)
    assert out.continuation_wav.parent.parent == store.root / "runs"
    assert out.json_path.exists() and out.transcript == "ASR off (--asr off)"
    # the plot: prompt then continuation, in seconds at 25 Hz
    lines = out.figure.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["prompt", "continuation"]
    assert lines[1].get_xdata()[-1] == pytest.approx(3.0 + int(ref.durations.sum()) / 25)


def test_continue_uses_a_transcriber_when_given(qs, tmp_path):
    heard = []

    def asr(wav):
        heard.append(len(wav))
        return "hello world"

    b = DemoBackend(resolve_paths(qs), asr=asr)
    prompt = str(qs / "report/samples/prompt_1.wav")
    out = continue_audio(b, OutputStore(tmp_path), prompt, SamplingSettings(seconds=0.5))
    assert out.transcript == "hello world"
    assert heard == [len(out.result.wav) - out.result.prompt_samples]
    silent = DemoBackend(resolve_paths(qs), asr=lambda wav: "")
    out = continue_audio(silent, OutputStore(tmp_path), prompt, SamplingSettings(seconds=0.5))
    assert out.transcript == "(ASR heard no words)"


def test_compare_equals_score_units(qs, backend):
    from twistlm.lm.scoring import score_units
    from twistlm.tokenizer import UnitTokenizer

    a, b = qs / "benchmarks/tSC/0_correct.wav", qs / "benchmarks/tSC/0_incorrect.wav"
    out = compare_audio(backend, str(a), str(b))
    tok = UnitTokenizer.from_pretrained(qs / "tokenizer")
    from twistlm.audio import load_audio
    from twistlm.lm.model import SpeechLM

    lm = SpeechLM.from_pretrained(qs / "models/warm")
    ref = score_units(lm, [tok.encode(load_audio(p)).units for p in (a, b)])
    assert out.mean == (ref[0].mean_logprob, ref[1].mean_logprob)
    assert out.total == (ref[0].sum_logprob, ref[1].sum_logprob)
    assert out.preferred == ("A" if ref[0].mean_logprob > ref[1].mean_logprob else "B")
    assert (
        f"{ref[0].mean_logprob:.4f}" in out.markdown
        and f"prefers **{out.preferred}**" in out.markdown
    )
    same = compare_audio(backend, str(a), str(a))
    assert same.preferred == "tie" and "no preference" in same.markdown
    with pytest.raises(DemoInputError, match="utterance B is silent"):
        compare_audio(backend, str(a), (16000, np.zeros(16000, np.int16)))


def test_compare_needs_no_vocoder_and_finds_the_recorded_tokenizer(qs, backend, tmp_path):
    from dataclasses import replace

    b = DemoBackend(replace(backend.paths, tokenizer=None, vocoder=None), asr="off")
    a, n = qs / "benchmarks/tSC/0_correct.wav", qs / "benchmarks/tSC/0_incorrect.wav"
    out = compare_audio(b, str(a), str(n))
    assert out.mean == compare_audio(backend, str(a), str(n)).mean  # same tokenizer via meta
    with pytest.raises(DemoUnavailable, match="No vocoder: pass --vocoder DIR"):
        continue_audio(b, OutputStore(tmp_path), str(a))
    assert b.preload() == [
        "warm model: No vocoder: pass --vocoder DIR (train one with `twistlm train-vocoder`), "
        f"or run `twistlm quickstart --out {qs}`.",
        "cold model: No vocoder: pass --vocoder DIR (train one with `twistlm train-vocoder`), "
        f"or run `twistlm quickstart --out {qs}`.",
    ]


def test_resynthesize_matches_the_library(qs, backend, tmp_path):
    from twistlm.audio import load_audio
    from twistlm.tokenizer import UnitTokenizer
    from twistlm.vocoder import Vocoder
    from twistlm.vocoder.resynth import resynthesize

    path = qs / "report/samples/prompt_0.wav"
    out = resynthesize_audio(backend, OutputStore(tmp_path), str(path))
    ref, meta = resynthesize(
        load_audio(path),
        UnitTokenizer.from_pretrained(qs / "tokenizer"),
        Vocoder.from_pretrained(qs / "vocoder/vocoder"),
    )
    got, _ = sf.read(str(out.wav_path), dtype="float32")
    assert out.units == meta["units"] and out.durations == meta["durations"]
    assert len(got) == len(ref) == 640 * sum(meta["durations"])
    scale = max(float(np.abs(ref).max()), 1.0) / 0.99 if np.abs(ref).max() > 1 else 1.0
    np.testing.assert_allclose(got, ref / scale, atol=2 / 32768)


def test_warm_vs_cold_same_seed_two_models(qs, backend, tmp_path):
    store = OutputStore(tmp_path)
    prompt = str(qs / "report/samples/prompt_0.wav")
    s = SamplingSettings(seconds=0.6, seed=3)
    out = warm_vs_cold(backend, store, prompt, s)
    warm = continue_audio(backend, store, prompt, s, "warm")
    cold = continue_audio(backend, store, prompt, s, "cold")
    assert out.warm.result.units.tolist() == warm.result.units.tolist()
    assert out.cold.result.units.tolist() == cold.result.units.tolist()
    assert out.warm.result.units.tolist() != out.cold.result.units.tolist()
    assert set(out.prompt_mean) == {"warm", "cold"} and "| prompt:" in out.markdown
    from dataclasses import replace

    only_warm = DemoBackend(replace(backend.paths, cold_model=None), asr="off")
    with pytest.raises(DemoUnavailable, match="needs both"):
        warm_vs_cold(only_warm, store, prompt, s)


def test_output_store_keeps_the_newest(tmp_path):
    store = OutputStore(tmp_path / "o", keep=3)
    runs = [store.new_run("x") for _ in range(5)]
    kept = sorted(p.name for p in (store.root / "runs").iterdir())
    assert len(kept) == 3 and runs[-1].name in kept


def test_units_figure_steps():
    fig = units_figure(
        [
            ("a", torch.tensor([1, 2]), torch.tensor([2, 3])),
            ("b", torch.tensor([5]), torch.tensor([1])),
        ],
        25.0,
        8,
    )
    la, lb = fig.axes[0].get_lines()
    np.testing.assert_allclose(la.get_xdata(), [0, 0.08, 0.2])
    np.testing.assert_allclose(lb.get_xdata(), [0.2, 0.24])
    assert list(la.get_ydata()) == [1, 2, 2] and fig.axes[0].get_ylim() == (-0.5, 7.5)
