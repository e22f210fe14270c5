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
