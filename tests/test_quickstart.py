"""The quickstart end to end on tiny settings: every stage runs and every artifact is there."""

import json
from pathlib import Path

import pytest
import soundfile as sf

from twistlm.lm.components import recorded_dir
from twistlm.quickstart import run_quickstart, smoke_config
from twistlm.quickstart.config import budget_steps
from twistlm.quickstart.pipeline import STAGES
from twistlm.quickstart.report import results_table, tokens_to_reach, warm_leads
from twistlm.synth.tts import DEFAULT_HELDOUT_VOICES, DEFAULT_TRAIN_VOICES, is_available


def test_warm_leads_compares_shared_points_after_the_first():
    warm = [(0, 9.0), (100, 4.0), (200, 3.0)]
    assert warm_leads(warm, [(0, 5.0), (100, 4.5), (200, 3.5)]) is True
    assert warm_leads(warm, [(0, 5.0), (100, 3.9), (200, 3.5)]) is False
    assert warm_leads(warm[:1], [(0, 5.0)]) is None


def test_results_table_rows_and_published_reference():
    entry = {"accuracy": 0.625, "ci95": [0.5, 0.75]}
    table = results_table({"warm (ours)": {"swuggy": entry}}, {"warm (ours)": 3.21})
    assert "| warm (ours) | 62.5 [50.0, 75.0] | – | – | – | – | 3.210 |" in table
    assert "TWIST-7B (paper)" in table and "59.0" in table


def test_results_table_mean_controls_and_paired_difference():
    def e(a):
        return {"accuracy": a, "ci95": [a - 0.1, a + 0.1]}

    benches = {"swuggy": e(0.5), "sblimp": e(0.6), "ssc": e(0.7), "tsc": e(0.8)}
    diff = {k: {"difference": 0.02, "ci95": [-0.01, 0.05]} for k in ("swuggy", "mean")}
    table = results_table({"warm (ours)": benches}, {}, {"length only": {"swuggy": e(0.55)}}, diff)
    assert "| warm (ours) | 50.0 [40.0, 60.0] | 60.0 [50.0, 70.0] | 70.0 [60.0, 80.0] | " in table
    assert "| 65.0 | – |" in table  # mean of the four
    assert "| *control: length only* | 55.0 [45.0, 65.0] | – | – | – | – | – |" in table
    assert (
        "| **warm - cold** (paired 95% CI, points) | +2.0 [-1.0, +5.0] | – | – | – | +2.0" in table
    )


def test_budget_steps_halve_the_run():
    assert budget_steps(160, 4) == (20, 40, 80)
    assert budget_steps(160, 1) == budget_steps(160, 0) == ()
    assert budget_steps(3, 4) == (1, 2)  # tiny runs: duplicates and the final step dropped


def test_recipes_on_the_command_line():
    import argparse

    from twistlm.quickstart import add_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    long = config_from_args(p.parse_args(["--recipe", "long", "--hours", "2"]))
    assert long.scaling_points == 4 and long.n_pairs == 1000 and long.hours == 2.0
    assert long.out == "quickstart-long"
    assert config_from_args(p.parse_args([])).scaling_points == 0
    assert config_from_args(p.parse_args(["--smoke"])).smoke
    with pytest.raises(SystemExit):
        config_from_args(p.parse_args(["--smoke", "--recipe", "long"]))


def test_sum_rule_reads_the_summed_entries():
    from twistlm.quickstart.report import sum_rule

    e = {"accuracy": 0.4, "ci95": [0.3, 0.5], "accuracy_sum": 0.9, "ci95_sum": [0.85, 0.95]}
    assert sum_rule({"swuggy": e, "sblimp": {"accuracy": 0.5}}) == {
        "swuggy": {"accuracy": 0.9, "ci95": [0.85, 0.95]}
    }


def test_tokens_to_reach():
    curve = [(0, 6.0), (100, 4.0), (200, 3.0)]
    assert tokens_to_reach(curve, 4.0) == 100
    assert tokens_to_reach(curve, 2.0) is None
    assert tokens_to_reach(curve, None) is None


@pytest.mark.skipif(
    not all(is_available(v) for v in DEFAULT_TRAIN_VOICES + DEFAULT_HELDOUT_VOICES),
    reason="needs the default TTS voices (scripts/setup.sh installs them)",
)
def test_quickstart_tiny_end_to_end(tmp_path, capsys, tiny_text_lm_dir):
    text_lm = tiny_text_lm_dir(tmp_path / "tiny-lm")
    cfg = smoke_config(
        out=str(tmp_path / "qs"),
        text_lm=str(text_lm),
        minutes=0.4,
        hours=0.02,
        n_pairs=4,
        n_story_pairs=2,
        n_units=16,
        block_size=64,
        eval_points=3,
        scaling_points=2,
        asr=False,
    )
    res = run_quickstart(cfg)
    out = tmp_path / "qs"
    rep = out / "report"
    for f in ("report.md", "table.md", "loss.png", "accuracy.png", "results.json"):
        assert (rep / f).is_file() and (rep / f).stat().st_size > 0, f
    for start in ("warm", "cold"):
        ev = json.loads((out / "eval" / start / "results.json").read_text())
        assert set(ev["benchmarks"]) == {"swuggy", "sblimp", "ssc", "tsc"}
        for b in ev["benchmarks"].values():
            assert b["n_pairs"] >= 1 and 0.0 <= b["accuracy"] <= 1.0
        assert (out / "models" / start / "config.json").is_file()
        meta = json.loads((out / "models" / start / "twistlm.json").read_text())["meta"]
        model_dir = out / "models" / start
        assert not Path(meta["tokenizer"]["path"]).is_absolute()  # relative: the run can move
        assert (recorded_dir(meta, "tokenizer", model_dir) / "tokenizer.json").is_file()
        assert recorded_dir(meta, "vocoder", model_dir).is_dir()
    assert set(res["eval"]["warm"]) == {"swuggy", "sblimp", "ssc", "tsc"}
    assert res["topline"] and set(res["topline"]["benchmarks"]) >= {"sblimp", "tsc"}
    # same token budget for both models
    assert res["train"]["warm"]["tokens"] == res["train"]["cold"]["tokens"] > 0
    assert len(res["val_curves"]["warm"]) >= 2
    # validation on held-out voices, sentences outside the training text
    heldout = res["heldout"]
    assert set(heldout["voices"]) == set(DEFAULT_HELDOUT_VOICES)
    corpus_text = {
        json.loads(ln)["text"]
        for ln in (out / "corpus" / "manifest.jsonl").read_text().splitlines()
    }
    held_text = {
        json.loads(ln)["text"]
        for ln in (out / "heldout" / "manifest.jsonl").read_text().splitlines()
    }
    assert held_text and not held_text & corpus_text
    stages = json.loads((out / "stages.json").read_text())
    assert stages["train-warm"]["result"]["config"]["data"]["val"].endswith("units-heldout")
    assert 0 < res["tokenizer_report"]["cross_voice"]["twin"] <= 1
    # controls and the paired difference on the same pairs
    assert set(res["controls"]) == {"length only (fewer units wins)", "unit 3-gram (Witten-Bell)"}
    assert set(res["warm_minus_cold"]) == {"swuggy", "sblimp", "ssc", "tsc", "mean"}
    assert "warm - cold" in (rep / "report.md").read_text()
    # k=16 is not the packaged tokenizer: it fit its own and trained a vocoder for it
    assert not stages["tokenizer"]["result"].get("packaged")
    assert stages["vocoder"]["result"]["packaged"] is False
    from twistlm.vocoder import load_vocoder
    from twistlm.vocoder.acoustic import AcousticVocoder

    voc = load_vocoder(stages["vocoder"]["result"]["vocoder_dir"])
    assert isinstance(voc, AcousticVocoder) and voc.n_units == 16
    report = (rep / "report.md").read_text()
    assert "Vocoder: trained here" in report
    # both models continue the same prompts; the real speech is measured beside them
    assert (
        stages["generation-cold"]["result"]["n_prompts"]
        == stages["generation"]["result"]["n_prompts"]
    )
    for row in ("| warm continuation |", "| cold continuation |", "resynthesized |"):
        assert row in report
    counts = res["val_loss_count_models"]
    assert set(counts) == {"unigram", "bigram", "trigram"} and counts["unigram"] > 0
    # scaling study: an earlier budget (snapshots of both runs) and the final models
    pts = res["scaling"]["points"]
    steps, planned = res["train"]["warm"]["steps"], res["train"]["warm"]["planned_steps"]
    assert [p["step"] for p in pts] == [round(planned / 2), steps]  # a time cap may end early
    for p in pts:
        assert set(p["val_loss"]) == {"warm", "cold"} and p["val_loss"]["warm"] is not None
        assert set(p["warm_minus_cold"]) == {"swuggy", "sblimp", "ssc", "tsc", "mean"}
    assert pts[-1]["warm_minus_cold"] == res["warm_minus_cold"]
    assert (rep / "scaling.png").stat().st_size > 0
    assert "Scaling study" in (rep / "report.md").read_text()
    # benchmarks balanced on unit counts: the units were cached for eval while balancing
    bench = json.loads((out / "benchmarks" / "benchmarks.json").read_text())
    assert set(bench["sets"]) == {"swuggy", "sblimp", "ssc", "tsc"}
    assert {s["balanced_by"] for s in bench["sets"].values()} == {"units"}
    wavs = sorted((rep / "samples").glob("*.wav"))
    assert wavs, "no continuation sample"
    wav, sr = sf.read(wavs[0])
    assert sr == 16000 and len(wav) > 1600
    # a rerun skips every finished stage
    capsys.readouterr()
    run_quickstart(cfg)
    log = capsys.readouterr().out
    assert log.count("skipped") == len(STAGES)  # every stage, the scaling study included


def test_rerun_with_other_settings_is_refused(tmp_path):
    from twistlm.config import ConfigError, save_config
    from twistlm.quickstart.pipeline import check_same_settings

    path = tmp_path / "quickstart.yaml"
    save_config(smoke_config(out=str(tmp_path)), path)
    check_same_settings(smoke_config(out=str(tmp_path)), path)  # same settings: resumes
    with pytest.raises(ConfigError, match="n_units: 64 -> 32"):
        check_same_settings(smoke_config(out=str(tmp_path), n_units=32), path)


def test_stages_skip_recorded_ones_and_know_when_one_ran(tmp_path):
    from twistlm.quickstart.pipeline import Stages

    st = Stages(tmp_path, ["a", "b", "report"])
    assert st.run("a", "first", lambda: {"x": 1}) == {"x": 1} and st.ran_any
    again = Stages(tmp_path, ["a", "b", "report"])  # a rerun: "a" is recorded in stages.json
    assert again.run("a", "first", lambda: {"x": 2}) == {"x": 1} and not again.ran_any
    again.run("b", "added since", lambda: {"y": 1})
    assert again.ran_any  # so the quickstart writes its report again
