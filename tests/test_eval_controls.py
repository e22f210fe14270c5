"""Controls: length-only rule, Witten-Bell unit n-gram LM, paired bootstrap difference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twistlm.eval.controls import NgramUnitLM, length_rule_outcomes, paired_difference


def test_length_rule():
    out = length_rule_outcomes([[1, 2], [1, 2, 3], [1]], [[1, 2, 3], [1, 2], [2]])
    assert out.tolist() == [1.0, 0.0, 0.5]
    with pytest.raises(ValueError):
        length_rule_outcomes([[1]], [])


def test_ngram_is_a_distribution_for_every_history():
    rng = np.random.default_rng(0)
    corpus = [rng.integers(0, 5, rng.integers(1, 12)).tolist() for _ in range(40)]
    lm = NgramUnitLM(n_units=5, order=3).fit(corpus)
    for hist in ([], [lm.start, lm.start], [lm.start, 3], [1, 2], [4, 4], [0, 1]):
        total = sum(lm.prob(hist, s) for s in range(6))  # 5 units + end
        assert total == pytest.approx(1.0, abs=1e-12)


def test_ngram_witten_bell_by_hand():
    lm = NgramUnitLM(n_units=3, order=2).fit([[0, 0, 1]])
    # unigram counts over predicted symbols: 0 x2, 1 x1, end x1 -> total 4, types 3
    uniform = 1 / 4  # 3 units + end
    p_uni_0 = (2 + 3 * uniform) / (4 + 3)
    # after unit 0: next symbols 0 (once) and 1 (once): total 2, types 2
    assert lm.prob([0], 0) == pytest.approx((1 + 2 * p_uni_0) / (2 + 2))
    # after unit 1: only the end (once): total 1, types 1
    assert lm.prob([1], 0) == pytest.approx((0 + 1 * p_uni_0) / (1 + 1))
    # unit 2 was never seen as a history: back off to the unigram entirely
    assert lm.prob([2], 0) == pytest.approx(p_uni_0)


def test_ngram_learns_a_deterministic_sequence():
    train = [[0, 1, 2, 3]] * 30
    lm = NgramUnitLM(n_units=4, order=3).fit(train)
    assert lm.score([0, 1, 2, 3]) > lm.score([3, 2, 1, 0])
    assert lm.score([0, 1, 2, 3], "sum") == pytest.approx(sum(lm.logprobs([0, 1, 2, 3])))
    assert math.isnan(lm.score([]))


def test_paired_difference_interval_is_tighter_than_unpaired():
    rng = np.random.default_rng(1)
    difficulty = rng.random(400)
    a = (rng.random(400) < difficulty + 0.05).astype(float)  # A is slightly better
    b = (rng.random(400) < difficulty).astype(float)
    d = paired_difference(a, b, seed=0)
    assert d.difference == pytest.approx(a.mean() - b.mean())
    assert d.ci95[0] <= d.difference <= d.ci95[1]
    assert d.n == 400
    assert paired_difference(a, b, seed=0) == d  # seeded: reproducible
    same = paired_difference(a, a)
    assert same.difference == 0 and same.ci95 == (0.0, 0.0)
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 0.0])


def test_controls_beside_the_model_in_evaluate(tmp_path, tiny_llama):
    from test_eval_helpers import FrameTokenizer, cycle, random_lm, write_storycloze

    from twistlm.data.shards import write_shard
    from twistlm.eval.controls import LENGTH_ONLY, ngram_name
    from twistlm.eval.run import evaluate

    # positives follow the cycle the n-gram is trained on; shorter in pairs 0 and 1
    pairs = [
        (cycle(0, 6), cycle(0, 6)[::-1] + [3]),
        (cycle(2, 5), cycle(2, 5)[::-1] + [1, 1]),
        (cycle(5, 9), cycle(5, 9)[::-1]),
        (cycle(1, 8), cycle(1, 4)[::-1]),
    ]
    bench = write_storycloze(tmp_path / "ssc", pairs)
    records = [
        {"id": f"u{s}", "units": cycle(s, 12), "durations": [1] * 12, "seconds": 0.3}
        for s in range(8)
    ]
    (tmp_path / "units").mkdir()
    write_shard(tmp_path / "units" / "shard-00000.parquet", records * 5)
    res = evaluate(
        random_lm(tiny_llama),
        {"ssc": str(bench)},
        tokenizer=FrameTokenizer(),
        use_cache=False,
        progress=False,
        controls_train=tmp_path / "units",
    )
    length, ngram = res.controls[LENGTH_ONLY]["ssc"], res.controls[ngram_name(3)]["ssc"]
    # length rule: pairs 0, 1 shorter positive (1), pair 2 tie (0.5), pair 3 longer (0)
    assert length.outcomes("mean").tolist() == [1.0, 1.0, 0.5, 0.0]
    assert ngram.accuracy("mean") == 1.0  # the cycle is what it counted
    assert ngram.pos_n.tolist() == [6, 5, 9, 8]
    d = res.to_dict()["controls"]
    assert d[LENGTH_ONLY]["ssc"]["accuracy"] == 0.625
    # without training units only the length rule is there
    res2 = evaluate(
        random_lm(tiny_llama),
        {"ssc": str(bench)},
        tokenizer=FrameTokenizer(),
        use_cache=False,
        progress=False,
    )
    assert list(res2.controls) == [LENGTH_ONLY]


def test_paired_benchmark_differences_align_units():
    from twistlm.eval.controls import paired_benchmark_differences, unit_outcomes

    def rec(pid, out, **meta):
        return {"pair_id": pid, "outcome_mean": out, "meta": meta}

    a = {
        "swuggy": [rec("1:v1", 1.0, id="1"), rec("1:v2", 0.0, id="1"), rec("2:v1", 1.0, id="2")],
        "ssc": [rec("0", 1.0), rec("1", 1.0)],
    }
    b = {
        "swuggy": [rec("1:v1", 0.0, id="1"), rec("1:v2", 0.0, id="1"), rec("2:v1", 1.0, id="2")],
        "ssc": [rec("0", 0.0), rec("1", 1.0), rec("2", 1.0)],  # pair 2 only in b: ignored
    }
    assert unit_outcomes("swuggy", a["swuggy"]) == {"1": 0.5, "2": 1.0}
    d = paired_benchmark_differences(a, b, seed=0)
    assert d["swuggy"].difference == pytest.approx((0.5 + 0.0) / 2)
    assert d["ssc"].difference == pytest.approx(0.5) and d["ssc"].n == 2
    assert d["mean"].difference == pytest.approx((0.25 + 0.5) / 2)
    assert d["mean"].ci95[0] <= d["mean"].difference <= d["mean"].ci95[1]


def test_ngram_cross_entropy_counts_the_end_token():
    from twistlm.eval.controls import ngram_cross_entropy

    train = [[0, 1, 2]] * 10
    ce = ngram_cross_entropy(train, [[0, 1, 2]], n_units=3, order=1)
    lm = NgramUnitLM(3, 1).fit(train)
    expected = -np.mean(lm.logprobs([0, 1, 2], with_end=True))
    assert ce == pytest.approx(expected)
    assert len(lm.logprobs([0, 1, 2], with_end=True)) == 4
