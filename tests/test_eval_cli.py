"""`twistlm eval` end to end on tiny models: a real (spectral) UnitTokenizer named by the model's
meta, sLM21 lexical/syntactic folders and a sSC folder; every output file; a bad wav is logged
and the job goes on."""

import json

import pytest
import torch
from test_eval_helpers import (
    K,
    cycle,
    pattern_lm,
    random_lm,
    write_lexical,
    write_storycloze,
    write_syntactic,
)

from twistlm.cli import main
from twistlm.tokenizer.spectral import SpectralFeatures
from twistlm.tokenizer.unit_tokenizer import UnitTokenizer


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _benchmarks(root):
    lex = write_lexical(
        root / "lexical" / "dev",
        [
            {
                "id": i,
                "voice": v,
                "frequency": f,
                "word_units": cycle(i, 6),
                "nonword_units": cycle(i, 6)[::-1],
            }
            for i, f in [(0, 0), (1, 3), (2, 50)]
            for v in ("v1", "v2")
        ],
    )
    syn = write_syntactic(
        root / "syntactic" / "dev",
        [
            {
                "id": i,
                "voice": "v1",
                "type": t,
                "subtype": s,
                "pos_units": cycle(i, 5),
                "neg_units": [i, (i + 3) % K, i],
            }
            for i, (t, s) in enumerate([("morph", "a"), ("morph", "b"), ("syntax", "c")])
        ],
    )
    ssc = write_storycloze(root / "sSC", [(cycle(s, 7), cycle(s, 7)[::-1]) for s in range(4)])
    return lex, syn, ssc


def test_cli_end_to_end(tmp_path, tiny_llama):
    torch.manual_seed(0)
    tok = UnitTokenizer(SpectralFeatures("mfcc", 25.0, norm="none"), torch.randn(K, 20) * 10)
    tok.save_pretrained(tmp_path / "tok")
    lm = random_lm(tiny_llama, seed=2)
    lm.meta["tokenizer"] = {**tok.info(), "path": str(tmp_path / "tok")}
    lm.save_pretrained(tmp_path / "model")
    lex, syn, ssc = _benchmarks(tmp_path / "bench")
    (ssc / "3_incorrect.wav").write_bytes(b"RIFF not really a wav")  # one bad file
    out = tmp_path / "out"
    argv = ["eval", "--model", str(tmp_path / "model"), "--out", str(out), "--quiet"]
    argv += ["--bench", f"swuggy={lex}", "--bench", f"sblimp={syn}", "--bench", f"ssc={ssc}"]
    argv += ["--bench", f"tsc={tmp_path / 'missing'}", "--cache-dir", str(tmp_path / "cache")]
    argv += ["--batch-size", "3"]
    assert main(argv) == 0

    res = json.loads((out / "results.json").read_text())
    assert res["schema"] == "twistlm.eval.results/1" and res["score_rule"] == "mean"
    assert res["tokenizer"]["path"] == str(tmp_path / "tok")
    assert set(res["benchmarks"]) == {"swuggy", "sblimp", "ssc"}  # tsc unreadable: logged
    sw = res["benchmarks"]["swuggy"]
    assert sw["n_pairs"] == 6 and sw["n"] == 3 and sw["unit"] == "id"
    for key in ("accuracy", "accuracy_sum", "ci95", "ci95_sum", "headline", "breakdowns"):
        assert key in sw
    assert set(sw["breakdowns"]["frequency"]) == {"oov", "1-5", "21-100"}
    assert sw["extra"]["in_vocab"]["n"] == 2
    assert set(res["benchmarks"]["sblimp"]["breakdowns"]["type"]) == {"morph", "syntax"}
    sc = res["benchmarks"]["ssc"]
    assert sc["n_pairs"] == 3 and sc["n_failed"] == 1
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert any("3_incorrect.wav" in e["path"] for e in errors)
    assert any("missing" in e["path"] for e in errors)

    md = (out / "results.md").read_text()
    assert "| TWIST-7B (published) | – | – | 59.0 | 55.3 | 74.1 |" in md
    assert "ours (mean)" in md and "ours (sum)" in md and "sWUGGY by frequency" in md

    lines = (out / "submission" / "lexical.txt").read_text().split("\n")[:-1]
    stems = {p.stem for p in lex.glob("*.wav")}
    assert {ln.split(" ")[0] for ln in lines} == stems and len(lines) == len(stems)
    assert all(float(ln.split(" ")[1]) < 0 for ln in lines)
    assert (out / "submission" / "syntactic.txt").exists()
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    pairs = [json.loads(x) for x in (out / "pairs" / "ssc.jsonl").read_text().splitlines()]
    assert len(pairs) == 3 and {"pos_mean", "neg_sum", "outcome_mean"} <= set(pairs[0])


def test_cli_sum_rule_and_bad_arguments(tmp_path, capsys, tiny_llama):
    lm = pattern_lm(tiny_llama)
    lm.save_pretrained(tmp_path / "model")  # no tokenizer in meta
    ssc = write_storycloze(tmp_path / "s", [(cycle(0, 5), [0, 3])])
    base = ["eval", "--model", str(tmp_path / "model"), "--out", str(tmp_path / "o")]
    with pytest.raises(ValueError, match="pass --tokenizer"):
        main(base + ["--bench", f"ssc={ssc}", "--quiet"])
    with pytest.raises(SystemExit):
        main(base + ["--bench", "sfoo=x"])
    with pytest.raises(SystemExit):
        main(base)  # nothing to do
    from test_eval_helpers import FrameTokenizer

    from twistlm.eval.run import evaluate

    r = evaluate(
        str(tmp_path / "model"),
        {"ssc": ssc},
        tokenizer=FrameTokenizer(),
        out_dir=tmp_path / "o2",
        score="sum",
        use_cache=False,
        progress=False,
    )
    d = json.loads((tmp_path / "o2" / "results.json").read_text())
    b = d["benchmarks"]["ssc"]
    assert d["score_rule"] == "sum" and b["headline"] == b["accuracy_sum"] == 1.0
    sub = dict(
        ln.split(" ") for ln in (tmp_path / "o2/submission/ssc.txt").read_text().splitlines()
    )
    assert float(sub["0_correct"]) == r.benchmarks["ssc"].pos_sum[0]
    assert float(sub["0_incorrect"]) == r.benchmarks["ssc"].neg_sum[0]


def test_generation_is_wired_through(tmp_path, monkeypatch, tiny_llama):
    """--gen-prompts DIR: prompt files expanded, options passed, result lands in results.json."""
    from test_eval_helpers import FrameTokenizer

    import twistlm.eval.generation as gen
    from twistlm.eval.run import evaluate

    calls = {}

    class _Res:
        def to_dict(self):
            return {"n_prompts": 2, "auto_bleu": 0.25}

    def fake(lm, tokenizer, vocoder, prompts, out_dir, **opts):
        calls.update(prompts=[str(p) for p in prompts], vocoder=vocoder, out_dir=out_dir, **opts)
        return _Res()

    monkeypatch.setattr(gen, "evaluate_generation", fake)
    prompts = write_storycloze(tmp_path / "prompts", [(cycle(0, 5), cycle(1, 5))])
    vocoder = object()
    r = evaluate(
        pattern_lm(tiny_llama),
        {},
        tokenizer=FrameTokenizer(),
        out_dir=tmp_path / "o",
        gen_prompts=[prompts],
        vocoder=vocoder,
        gen_options={"n_prompts": 2, "seconds": 1.5},
        use_cache=False,
        progress=False,
    )
    assert sorted(calls["prompts"]) == sorted(str(p) for p in prompts.glob("*.wav"))
    assert calls["vocoder"] is vocoder and calls["out_dir"] == tmp_path / "o" / "generation"
    assert calls["n_prompts"] == 2 and calls["seconds"] == 1.5
    d = json.loads((tmp_path / "o" / "results.json").read_text())
    assert d["generation"] == {"n_prompts": 2, "auto_bleu": 0.25} == r.generation
    # without a vocoder: logged, the job still writes its results
    r2 = evaluate(
        pattern_lm(tiny_llama),
        {},
        tokenizer=FrameTokenizer(),
        out_dir=tmp_path / "o2",
        gen_prompts=[prompts],
        use_cache=False,
        progress=False,
    )
    assert r2.generation is None and "vocoder" in r2.errors[0]["error"]


def test_cli_builds_one_eval_config(tmp_path, monkeypatch):
    """`twistlm eval` parses, builds an EvalConfig and calls evaluate with it."""
    from types import SimpleNamespace

    import twistlm.eval.run as run

    seen = {}

    def fake(model, benches, tokenizer=None, out_dir=None, *, config=None, **options):
        seen.update(model=model, benches=benches, tokenizer=tokenizer, config=config, **options)
        out_dir.mkdir(parents=True)
        (out_dir / "results.md").write_text("table\n")
        return SimpleNamespace(benchmarks={"ssc": None}, generation=None)

    monkeypatch.setattr(run, "evaluate", fake)
    out = tmp_path / "o"
    args = ["eval", "--model", "m", "--bench", "ssc=s", "--out", str(out), "--tokenizer", "t"]
    assert main(args + ["--batch-size", "4", "--score", "sum", "--limit", "2", "--quiet"]) == 0
    assert (seen["model"], seen["benches"], seen["tokenizer"]) == ("m", {"ssc": "s"}, "t")
    assert seen["config"] == run.EvalConfig(
        batch_size=4,
        device="cpu",
        score="sum",
        limit=2,
        progress=False,
        gen_options={"batch_size": 4, "progress": False},
    )


@pytest.mark.slow
def test_smollm2_text_topline_prefers_grammatical_text(tmp_path):
    """The offline default text LM scores real text pairs the right way round (~30 s)."""
    from twistlm.eval.readers import AudioRef, PairRecord
    from twistlm.eval.topline import text_topline

    texts = [
        ("the cat sat on the mat", "the cat sat mat the on"),
        ("she is reading a book", "she are reading a book"),
        ("brick", "blick"),
    ]
    pairs = [
        PairRecord("sblimp", str(i), AudioRef(f"p{i}", None), AudioRef(f"n{i}", None), p, n, {})
        for i, (p, n) in enumerate(texts)
    ]
    out, name = text_topline({"sblimp": ("mem", pairs)}, progress=False)
    assert "SmolLM2" in name
    assert out["sblimp"].outcomes("mean").tolist() == [1.0, 1.0, 1.0]
