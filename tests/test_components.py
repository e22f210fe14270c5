"""One rule for a SpeechLM's tokenizer and vocoder (recorded, resolved) and one compatibility
check; batched continuation equals its prompts one by one."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_continue import build_tiny_pipeline, speechlike_wav  # noqa: I001  (tests/ is on sys.path)

from twistlm.lm.components import (
    check_compatible,
    component_entry,
    record_components,
    recorded_dir,
    recorded_paths,
    resolve_components,
)
from twistlm.lm.model import SpeechLM


def _link(lm_dir, tok_dir, voc_dir):
    """Record the components in a saved model's metadata the way every stage should."""
    lm = SpeechLM.from_pretrained(lm_dir)
    meta = {k: v for k, v in lm.meta.items() if k != "path"}
    lm.meta = record_components(meta, lm_dir, tok_dir, voc_dir)
    lm.save_pretrained(lm_dir)
    return json.loads((lm_dir / "twistlm.json").read_text())["meta"]


# ---------------------------------------------------------------------------- the schema
def test_component_entry_relative_near_the_model_absolute_far(tmp_path):
    run = tmp_path / "run"
    assert component_entry(run / "models/warm", run / "tokenizer") == {"path": "../../tokenizer"}
    assert component_entry(run / "m", run / "m/tok") == {"path": "tok"}
    far = tmp_path / "a/b/c/d/e/model"
    assert component_entry(far, tmp_path / "tok") == {"path": str((tmp_path / "tok").resolve())}


def test_relative_paths_survive_moving_the_run_folder(tmp_path, tiny_speech_lm):
    # absolute paths, a legacy vocoder str
    tok, voc, lm = build_tiny_pipeline(tiny_speech_lm, tmp_path / "run")
    meta = _link(lm, tok, voc)
    assert meta["tokenizer"]["path"] == "../tok" and meta["vocoder"] == {"path": "../voc"}
    assert meta["tokenizer"]["name"] == "tiny"  # the tokenizer info recorded at training stays
    moved = tmp_path / "elsewhere" / "run"
    shutil.move(str(tmp_path / "run"), str(moved))
    c = resolve_components(moved / "lm")
    assert c.paths == {
        "model": str(moved / "lm"),
        "tokenizer": str(moved / "tok"),
        "vocoder": str(moved / "voc"),
    }
    assert c.tokenizer.name == "tiny" and c.vocoder.n_units == c.tokenizer.n_units
    # a loaded model resolves against its own dir too
    assert recorded_dir(SpeechLM.from_pretrained(moved / "lm").meta, "vocoder") == moved / "voc"


@pytest.mark.parametrize(
    "meta",
    [
        {"tokenizer": "TOK"},  # a bare path string
        {"tokenizer": {"name": "tiny", "dir": "TOK"}},  # a "dir" key
        {"tokenizer_path": "TOK"},  # a "<key>_path" key
        {"tokenizer": {"name": "tiny", "path": "TOK"}},  # the schema, absolute
    ],
)
def test_every_legacy_shape_is_read(tmp_path, meta):
    (tmp_path / "tok").mkdir()
    meta = json.loads(json.dumps(meta).replace("TOK", str(tmp_path / "tok")))
    assert recorded_paths(meta, "tokenizer") == [str(tmp_path / "tok")]
    assert recorded_dir(meta, "tokenizer", tmp_path / "model") == tmp_path / "tok"
    # writing it again gives the schema (and keeps the tokenizer's info)
    new = record_components(dict(meta), tmp_path / "model", tokenizer=tmp_path / "tok")
    assert new["tokenizer"]["path"] == "../tok" and "tokenizer_path" not in new
    assert recorded_dir(new, "tokenizer", tmp_path / "model") == tmp_path / "tok"


def test_missing_components_name_what_to_pass(tmp_path, tiny_speech_lm):
    _, _, lm = build_tiny_pipeline(tiny_speech_lm, tmp_path, record_in_meta=False)
    with pytest.raises(ValueError, match="none recorded.*pass --tokenizer DIR"):
        resolve_components(lm)
    d = json.loads((lm / "twistlm.json").read_text())
    d["meta"]["tokenizer"] = {"path": "../gone"}
    (lm / "twistlm.json").write_text(json.dumps(d))
    with pytest.raises(FileNotFoundError, match="'../gone' does not exist.*--tokenizer"):
        resolve_components(lm)


def test_scoring_needs_no_vocoder(tmp_path, tiny_speech_lm):
    tok, _, lm = build_tiny_pipeline(tiny_speech_lm, tmp_path)
    c = resolve_components(lm, tok, need_vocoder=False)
    assert c.vocoder is None and c.paths["tokenizer"] == str(tok)


# ---------------------------------------------------------------------------- the check
def _lm(n_units, tokenizer_name=None):
    meta = {"path": "/models/m"}
    if tokenizer_name:
        meta["tokenizer"] = {"name": tokenizer_name, "path": "/tok"}
    return SimpleNamespace(vocab=SimpleNamespace(n_units=n_units), meta=meta)


def _tok(n_units=10, hop=640, name="km10"):
    return SimpleNamespace(n_units=n_units, hop=hop, name=name)


def _voc(n_units=10, hop=640, tokenizer_name="km10"):
    return SimpleNamespace(n_units=n_units, hop=hop, info={"tokenizer": {"name": tokenizer_name}})


def test_one_check_for_every_pair_and_the_triple():
    check_compatible(_lm(10, "km10"), _tok(), _voc())
    check_compatible(_lm(10), _tok())
    check_compatible(tokenizer=_tok(), vocoder=_voc())
    check_compatible(lm=_lm(10), vocoder=_voc())
    # unit counts: every count and dir named, and the pair that differs spelled out
    with pytest.raises(ValueError, match="tokenizer has 12 units but the model expects 10") as e:
        check_compatible(_lm(10), _tok(12), paths={"tokenizer": "/tok12"})
    assert "/tok12" in str(e.value) and "/models/m" in str(e.value)
    with pytest.raises(ValueError, match=r"unit counts differ: tokenizer 10 .*vocoder 11"):
        check_compatible(_lm(10), _tok(), _voc(11))
    with pytest.raises(ValueError, match="tokenizer has 10 units, the vocoder 11"):
        check_compatible(tokenizer=_tok(), vocoder=_voc(11))
    with pytest.raises(ValueError, match="model has 10 units, the vocoder 12"):
        check_compatible(lm=_lm(10), vocoder=_voc(12))


def test_hop_mismatch_is_refused():
    with pytest.raises(ValueError, match="hop is 320 .* vocoder's is 640"):
        check_compatible(tokenizer=_tok(hop=320), vocoder=_voc())
    # a tokenizer that states only its frame rate: 16 kHz / frame rate
    by_rate = SimpleNamespace(n_units=10, frame_rate=50.0, name="km10")
    with pytest.raises(ValueError, match="hop is 320"):
        check_compatible(tokenizer=by_rate, vocoder=_voc())


def test_tokenizer_identity_mismatch_is_refused():
    with pytest.raises(ValueError, match="vocoder was trained on tokenizer 'other', not 'km10'"):
        check_compatible(tokenizer=_tok(), vocoder=_voc(tokenizer_name="other"))
    with pytest.raises(ValueError, match="model was trained on units of tokenizer 'other'"):
        check_compatible(_lm(10, "other"), _tok())
    with pytest.raises(ValueError, match="'km10' but the vocoder on tokenizer 'other'"):
        check_compatible(lm=_lm(10, "km10"), vocoder=_voc(tokenizer_name="other"))
    check_compatible(_lm(10, "km10"), SimpleNamespace(n_units=10))  # nameless: not compared


# ---------------------------------------------------------------------------- continuation
def test_batch_of_two_equals_two_single_continuations(tmp_path, tiny_speech_lm):
    from twistlm.lm.components import load_components
    from twistlm.lm.continuation import (
        continue_batch,
        continue_prompt,
        encode_prompt,
        sampling_settings,
    )

    tok, voc, lm = build_tiny_pipeline(tiny_speech_lm, tmp_path)
    lm, tok, voc = load_components(lm, tok, voc)
    gen = sampling_settings("twist", lm, temperature=1.0)
    a, b = (encode_prompt(speechlike_wav(s, seed=i), tok, 3.0) for i, s in ((0, 3.5), (1, 2.5)))
    both = continue_batch([a, b], lm, tok, voc, gen, max_new_units=12, seed=4)
    one_a = continue_batch([a], lm, tok, voc, gen, max_new_units=12, seed=4, indices=[0])
    one_b = continue_batch([b], lm, tok, voc, gen, max_new_units=12, seed=4, indices=[1])
    for batched, single in zip(both, one_a + one_b, strict=True):
        assert batched.units.tolist() == single.units.tolist()
        assert batched.durations.tolist() == single.durations.tolist()
        np.testing.assert_allclose(batched.wav, single.wav, atol=1e-6)
    assert both[0].units.tolist() != both[1].units.tolist()
    # the library's one-prompt call is a batch of one
    res = continue_prompt(speechlike_wav(3.5, seed=0), lm, tok, voc, max_new_units=12, seed=4,
                          temperature=1.0)  # fmt: skip
    assert res.units.tolist() == both[0].units.tolist()
    assert torch.equal(res.prompt_units, a.units)


def test_seconds_to_units_is_one_rule():
    from twistlm.lm.continuation import continuation_units as units_for_seconds

    assert units_for_seconds(2.0, 30, 3.0) == 20  # the prompt's own 10 units/s
    assert units_for_seconds(0.01, 30, 3.0) == 1  # never zero
