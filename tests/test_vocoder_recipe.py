"""`twistlm train-vocoder --recipe`: the whole recipe on tiny settings, its CLI and its errors;
the quickstart's choice between the packaged pair and its own."""

import json

import numpy as np
import pytest
import torch

from twistlm.synth.tts import is_available


def test_quickstart_uses_the_packaged_pair_only_where_it_fits():
    from twistlm.quickstart.config import QuickstartConfig, smoke_config

    d = QuickstartConfig()
    assert d.uses_packaged_tokenizer and d.uses_packaged_vocoder
    assert not QuickstartConfig(train_vocoder=True).uses_packaged_vocoder
    assert QuickstartConfig(train_vocoder=True).uses_packaged_tokenizer
    assert not QuickstartConfig(packaged=False).uses_packaged_tokenizer
    assert not QuickstartConfig(n_units=200).uses_packaged_vocoder
    assert not QuickstartConfig(features="whisper-tiny.en").uses_packaged_tokenizer
    assert not smoke_config().uses_packaged_tokenizer  # k=64: fits its own, trains a vocoder


def test_quickstart_flags_for_the_packaged_pair():
    import argparse

    from twistlm.quickstart import add_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert config_from_args(p.parse_args([])).uses_packaged_vocoder
    assert not config_from_args(p.parse_args(["--no-packaged"])).packaged
    assert config_from_args(p.parse_args(["--train-vocoder"])).train_vocoder


def test_unknown_recipe_is_refused(tmp_path):
    from twistlm.vocoder.recipes import run_recipe

    with pytest.raises(ValueError, match="unknown vocoder recipe"):
        run_recipe("nope", tmp_path)


@pytest.mark.tts
@pytest.mark.skipif(not is_available("flite:slt"), reason="needs flite (scripts/setup.sh)")
def test_smoke_recipe_end_to_end_and_resumes(tmp_path, capsys):
    from twistlm.cli import main
    from twistlm.synth.corpus import synthesize_corpus
    from twistlm.tokenizer.unit_tokenizer import build_offline_tokenizer
    from twistlm.vocoder import load_vocoder
    from twistlm.vocoder.acoustic import AcousticVocoder

    # a small tokenizer of our own (the packaged one is what the real recipe uses)
    fit = synthesize_corpus(tmp_path / "fit", hours=0.005, voices=["flite:slt"], seed=5, workers=1)
    wavs = sorted((tmp_path / "fit" / "wavs").rglob("*.wav"))
    assert fit.n_utterances >= 2
    tok = build_offline_tokenizer(wavs, n_units=8, seed=0, progress=False)
    tok.save_pretrained(tmp_path / "tok")
    run = tmp_path / "run"
    args = ["train-vocoder", "--recipe", "smoke", "-o", str(run), "--tokenizer",
            str(tmp_path / "tok"), "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "recipe smoke: 20 steps" in out and "sha256" in out
    res = json.loads((run / "recipe.json").read_text())
    assert res["voice"] == "flite-slt" and res["target"] == "world"
    # flite:awb read the same sentences: its units were learned with slt's warped features
    assert list(res["n_parallel"]) == [str(run / "parallel" / "flite-awb")]
    assert res["n_parallel"][str(run / "parallel" / "flite-awb")] >= 1
    assert set(res["sha256"]) == {"acoustic.json", "acoustic.safetensors"}
    voc = load_vocoder(run / "vocoder")
    assert isinstance(voc, AcousticVocoder) and voc.n_units == 8 and voc.hop == tok.hop
    assert voc.info["tokenizer"]["n_units"] == 8
    torch.manual_seed(0)
    wav = voc.synthesize(torch.randint(0, 8, (5,)))
    assert wav.dtype == np.float32 and wav.size % tok.hop == 0 and np.isfinite(wav).all()
    # a rerun resumes: same corpus, shards and feature cache; same training under the seed
    first = (run / "vocoder" / "acoustic.safetensors").read_bytes()
    stamp = (run / "corpus" / "corpus.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (run / "corpus" / "corpus.json").stat().st_mtime_ns == stamp
    assert (run / "vocoder" / "acoustic.safetensors").read_bytes() == first
