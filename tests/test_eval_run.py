"""Eval pipeline invariants: pattern LM accuracy, ties, cache, checkpoint conventions (ours ==
SlamKit, TWIST offsets), text topline, EvalConfig. Scoring itself (batched == one-by-one,
padding, pair packing) is tested with it in test_lm.py."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_eval_helpers import (
    TINY_LLAMA,
    FrameTokenizer,
    K,
    cycle,
    pattern_lm,
    random_lm,
    random_units,
    write_storycloze,
)
from transformers import LlamaForCausalLM

from twistlm.eval.run import EvalConfig, evaluate
from twistlm.eval.topline import score_texts, score_token_ids, text_topline
from twistlm.lm.model import SpeechLM
from twistlm.lm.scoring import score_unique
from twistlm.lm.vocab import UnitVocab


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models: one thread is fastest, and the shared 2-core machine stays usable
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


PATTERN_PAIRS = [(cycle(s, n), cycle(s, n)[::-1]) for s, n in [(0, 6), (2, 5), (5, 9), (1, 4)]]


def _eval(lm, benches, tmp_path, tok=None, **kw):
    return evaluate(
        lm,
        benches,
        tokenizer=tok or FrameTokenizer(),
        out_dir=kw.pop("out_dir", None),
        cache_dir=tmp_path / "cache",
        progress=False,
        **kw,
    )


def test_pattern_lm_scores_100_then_0_swapped_and_ties_half(tmp_path, tiny_llama):
    lm = pattern_lm(tiny_llama)
    good = write_storycloze(tmp_path / "good", PATTERN_PAIRS)
    swapped = write_storycloze(tmp_path / "swapped", [(n, p) for p, n in PATTERN_PAIRS])
    ties = write_storycloze(tmp_path / "ties", [(p, p) for p, _ in PATTERN_PAIRS])
    res = _eval(lm, {"ssc": good, "tsc": swapped}, tmp_path)
    assert res.benchmarks["ssc"].accuracy("mean") == 1.0
    assert res.benchmarks["ssc"].accuracy("sum") == 1.0
    assert res.benchmarks["tsc"].accuracy("mean") == 0.0
    assert res.benchmarks["tsc"].accuracy("sum") == 0.0
    res = _eval(lm, {"ssc": ties}, tmp_path)
    assert res.benchmarks["ssc"].accuracy("mean") == 0.5
    assert res.benchmarks["ssc"].outcomes("sum").tolist() == [0.5] * len(PATTERN_PAIRS)


def test_mean_and_sum_rules_disagree_as_defined(tmp_path, tiny_llama):
    # positive: 20 units with two off-pattern jumps; negative: 2 units with one jump.
    # Each jump costs ~34.6 nats: sum prefers the short negative, mean the long positive.
    lm = pattern_lm(tiny_llama)
    pos = cycle(0, 5) + cycle(2, 10) + cycle(6, 5)
    neg = [0, 5]
    d = write_storycloze(tmp_path / "d", [(pos, neg)])
    b = _eval(lm, {"ssc": d}, tmp_path).benchmarks["ssc"]
    assert b.pos_n[0] == len(pos) and b.neg_n[0] == len(neg)
    assert b.pos_sum[0] == pytest.approx(2 * b.neg_sum[0], rel=1e-4)
    assert b.outcomes("mean").tolist() == [1.0] and b.outcomes("sum").tolist() == [0.0]


def test_second_run_does_not_retokenize(tmp_path, tiny_llama):
    lm = random_lm(tiny_llama)
    d = write_storycloze(tmp_path / "s", PATTERN_PAIRS)
    tok = FrameTokenizer()
    r1 = _eval(lm, {"ssc": d}, tmp_path, tok=tok)
    assert tok.calls == 2 * len(PATTERN_PAIRS)
    assert r1.stats["utterances_tokenized"] == 8 and r1.stats["utterances_cached"] == 0
    tok2 = FrameTokenizer()
    r2 = _eval(lm, {"ssc": d}, tmp_path, tok=tok2)
    assert tok2.calls == 0 and r2.stats["utterances_cached"] == 8
    np.testing.assert_array_equal(r1.benchmarks["ssc"].pos_sum, r2.benchmarks["ssc"].pos_sum)
    # another tokenizer identity never reuses these units
    tok3 = FrameTokenizer(name="other")
    _eval(lm, {"ssc": d}, tmp_path, tok=tok3)
    assert tok3.calls == 8
    # a changed file is re-tokenized, the rest comes from the cache
    from test_eval_helpers import units_wav

    from twistlm.audio import write_wav

    write_wav(d / "0_correct.wav", units_wav(cycle(3, 7)))
    tok4 = FrameTokenizer()
    _eval(lm, {"ssc": d}, tmp_path, tok=tok4)
    assert tok4.calls == 1


# ---------------------------------------------------------------- checkpoint conventions
def _save_slamkit(lm_ours: SpeechLM, path):
    """The same network as a SlamKit UnitLM dir: rows permuted to SlamKit ids.

    SlamKit: <PAD>=0, <S>=1, unit i at i+2. Ours: pad 0, bos 1, eos 2, unit i at i+3. A SlamKit
    model with K+1 units is a pure row permutation of ours (its last unit takes our EOS row),
    so every logit multiset, softmax and score over units 0..K-1 is identical.
    """
    V = lm_ours.vocab.vocab_size
    perm = [0, 1] + [3 + i for i in range(K)] + [2]  # slamkit row r <- our row perm[r]
    sd = {}
    for k, v in lm_ours.model.state_dict().items():
        if k in ("model.embed_tokens.weight", "lm_head.weight"):
            v = v[perm]
        sd["lm." + k] = v.contiguous()
    path.mkdir(parents=True)
    save_file(sd, str(path / "model.safetensors"))
    base = lm_ours.model.config.to_dict()
    cfg = {"model_type": "speech_language_model", "base_config": base, "vocab_size": V}
    (path / "config.json").write_text(json.dumps(cfg))


def _save_twist(model: LlamaForCausalLM, path, offset: int, n_units: int):
    model.save_pretrained(path, safe_serialization=True)
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(offset=offset, n_units=n_units, pad_token_id=0)
    (path / "config.json").write_text(json.dumps(cfg))


def _end_logprob(lm_ours: SpeechLM, units) -> float:
    """log p(id 1 | BOS units) under our model: SlamKit's trailing-<S> term of its twin."""
    ids = torch.tensor([[1] + (torch.as_tensor(units) + 3).tolist()])
    with torch.no_grad():
        return float(lm_ours.model(ids).logits[0, -1].float().log_softmax(-1)[1])


def test_ours_and_slamkit_checkpoints_give_identical_scores(tmp_path, tiny_llama):
    ours = random_lm(tiny_llama, seed=4)
    ours.save_pretrained(tmp_path / "ours")
    _save_slamkit(ours, tmp_path / "slam")
    a = SpeechLM.from_pretrained(tmp_path / "ours")
    b = SpeechLM.from_pretrained(tmp_path / "slam")
    assert a.vocab.convention == "twistlm" and b.vocab.convention == "slamkit"
    assert b.vocab.n_units == K + 1
    seqs = random_units(12, seed=5)
    sa, na, _ = score_unique(a, seqs, batch_size=5, progress=False)
    sb, nb, _ = score_unique(b, seqs, batch_size=5, progress=False)
    # SlamKit scores `<S> units <S>`: the same unit terms plus the trailing <S>, whose row is
    # our BOS row (id 1 in both layouts)
    assert (nb - na).tolist() == [1] * len(seqs)
    np.testing.assert_allclose(sb - sa, [_end_logprob(a, u) for u in seqs], rtol=0, atol=1e-5)
    # the wrong convention gives different numbers (the offset matters)
    wrong = SpeechLM(b.model, UnitVocab.twistlm(K), {})
    sw, _, _ = score_unique(wrong, seqs, batch_size=5, progress=False)
    assert np.abs(sw - sa).max() > 1e-2


def test_twist_offset_checkpoints_give_identical_scores(tmp_path, tiny_llama):
    """Two TWIST dirs, units at offset 3 (after 3 other rows) and at offset 0 (before them):
    a row permutation of one network, so the offset handling must give identical scores."""
    V = K + 3
    m3 = tiny_llama(V, seed=6, init_std=0.3, **TINY_LLAMA)
    m0 = tiny_llama(V, **TINY_LLAMA)
    perm = [3 + i for i in range(K)] + [0, 1, 2]  # offset-0 row r <- offset-3 row perm[r]
    sd = {
        k: (v[perm] if k in ("model.embed_tokens.weight", "lm_head.weight") else v)
        for k, v in m3.state_dict().items()
    }
    m0.load_state_dict(sd)
    _save_twist(m3, tmp_path / "t3", offset=3, n_units=K)
    _save_twist(m0, tmp_path / "t0", offset=0, n_units=K)
    a = SpeechLM.from_pretrained(tmp_path / "t3")
    b = SpeechLM.from_pretrained(tmp_path / "t0")
    assert (a.vocab.convention, a.vocab.offset, b.vocab.offset) == ("twist", 3, 0)
    seqs = random_units(10, seed=7, lo=2)
    sa, na, _ = score_unique(a, seqs, batch_size=4, progress=False)
    sb, nb, _ = score_unique(b, seqs, batch_size=4, progress=False)
    assert na.tolist() == [len(s) - 1 for s in seqs] == nb.tolist()  # no BOS: first unit unscored
    np.testing.assert_allclose(sa, sb, rtol=0, atol=1e-5)


def test_evaluate_accepts_model_dirs_of_each_convention(tmp_path, tiny_llama):
    ours = random_lm(tiny_llama, seed=8)
    ours.save_pretrained(tmp_path / "ours")
    _save_slamkit(ours, tmp_path / "slam")
    d = write_storycloze(tmp_path / "s", PATTERN_PAIRS)

    class NoCountTokenizer(FrameTokenizer):  # SlamKit twin has K+1 units: skip the size check
        n_units = None

    ra = _eval(str(tmp_path / "ours"), {"ssc": d}, tmp_path, tok=NoCountTokenizer())
    rb = _eval(str(tmp_path / "slam"), {"ssc": d}, tmp_path, tok=NoCountTokenizer())
    a, b = ra.benchmarks["ssc"], rb.benchmarks["ssc"]
    ends = [_end_logprob(ours, PATTERN_PAIRS[int(p.pair_id)][0]) for p in b.pairs]
    assert [p.pair_id for p in a.pairs] == [p.pair_id for p in b.pairs]
    assert (b.pos_n - a.pos_n).tolist() == [1] * len(ends)  # SlamKit scores the trailing <S>
    np.testing.assert_allclose(b.pos_sum - a.pos_sum, ends, atol=1e-5)
    assert ra.model["convention"] == "twistlm" and rb.model["convention"] == "slamkit"
    with pytest.raises(ValueError, match="tokenizer has 8 units but the model expects 9"):
        _eval(str(tmp_path / "slam"), {"ssc": d}, tmp_path)


# ---------------------------------------------------------------- text topline
class CharTokenizer:
    """Characters a..h -> ids 3..10; BOS 1, EOS 2, pad 0 (an HF-tokenizer-shaped stand-in)."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [3 + ord(c) - ord("a") for c in text if c != " "]}


def test_text_topline_uses_same_rules(tiny_llama):
    # over ids: BOS -> 3 ('a'), 3 -> 4 ... : prefers alphabetical strings
    lm = pattern_lm(tiny_llama)
    tok = CharTokenizer()
    sums, ns = score_texts(lm.model, tok, ["abcd", "dcba", "abcd"], batch_size=2)
    assert ns.tolist() == [4, 4, 4] and sums[0] == sums[2] and sums[0] > sums[1]
    seqs = [[1, 3, 4, 5], [1, 9, 3], [1, 4]]
    batched = score_token_ids(lm.model, seqs, batch_size=3)[0]
    single = [score_token_ids(lm.model, [s], batch_size=1)[0][0] for s in seqs]
    np.testing.assert_allclose(batched, single, atol=1e-5)

    from twistlm.eval.readers import AudioRef, PairRecord

    def pr(i, p, n):
        return PairRecord("ssc", str(i), AudioRef(f"p{i}", None), AudioRef(f"n{i}", None), p, n, {})

    pairs = [pr(0, "abc", "cba"), pr(1, "efgh", "hgfe"), pr(2, "ab", "ab"), pr(3, "x", None)]
    out, _ = text_topline({"ssc": ("mem", pairs)}, model_and_tokenizer=(lm.model, tok))
    b = out["ssc"]
    assert b.outcomes("mean").tolist() == [1.0, 1.0, 0.5] and b.n_failed == 1
    assert b.accuracy("mean") == pytest.approx(2.5 / 3)


# ---------------------------------------------------------------- EvalConfig
def _without_timings(d: dict) -> dict:
    """results.json without the run's timings (``*_s``: seconds and pairs per second)."""
    stats = {k: v for k, v in d["stats"].items() if not k.endswith("_s")}
    return {**d, "stats": stats}


def test_eval_config_and_old_keywords_give_the_same_run(tmp_path, tiny_llama):
    from twistlm.config import from_dict, to_dict

    lm = pattern_lm(tiny_llama)
    d = write_storycloze(tmp_path / "s", PATTERN_PAIRS)
    kw = dict(score="sum", ci="bootstrap", limit=3, share_prefix=False, use_cache=False)
    kw |= dict(progress=False, plot=False, batch_size=2)
    by_keywords = evaluate(lm, {"ssc": d}, FrameTokenizer(), tmp_path / "a", **kw)
    by_config = evaluate(lm, {"ssc": d}, FrameTokenizer(), tmp_path / "b", config=EvalConfig(**kw))
    assert by_keywords.score_rule == "sum" and by_keywords.stats["batch_size"] == 2
    assert len(by_keywords.benchmarks["ssc"].pairs) == 3
    a, b = _without_timings(by_keywords.to_dict()), _without_timings(by_config.to_dict())
    assert a["stats"]["sequences_scored"] == 6 and "pairs_per_s" not in a["stats"]
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    # a keyword overrides the config's field; unknown keywords and bad values are refused
    mixed = evaluate(
        lm, {"ssc": d}, FrameTokenizer(), config=EvalConfig(**kw), score="mean", ci="wilson"
    )
    assert mixed.score_rule == "mean" and mixed.ci == "wilson"
    with pytest.raises(TypeError, match="batchsize"):
        evaluate(lm, {"ssc": d}, FrameTokenizer(), batchsize=4)
    with pytest.raises(ValueError, match="score must be one of"):
        EvalConfig(score="median")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        EvalConfig(batch_size=0)
    cfg = EvalConfig(**kw, cache_dir="cache", gen_options={"n_prompts": 2})
    assert from_dict(EvalConfig, to_dict(cfg)) == cfg
