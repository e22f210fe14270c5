"""Eval metrics: pair outcomes, official sWUGGY/sBLIMP aggregation, intervals (hand-computed)."""

import math

import numpy as np
import pytest

from twistlm.eval.metrics import (
    accuracy_of,
    benchmark_metrics,
    bootstrap_interval,
    frequency_band,
    pair_outcomes,
    sblimp_metrics,
    storycloze_metrics,
    swuggy_metrics,
    wilson_interval,
)


def test_pair_outcomes_tie_is_half():
    out = pair_outcomes([-1.0, -2.0, -3.0, -4.0], [-2.0, -1.0, -3.0, -4.5])
    assert out.tolist() == [1.0, 0.0, 0.5, 1.0]
    with pytest.raises(ValueError):
        pair_outcomes([1.0], [1.0, 2.0])


def test_wilson_matches_textbook_values():
    # classic table values (z = 1.96): 5/10 -> (0.2366, 0.7634); 0/10 -> (0, 0.2775)
    lo, hi = wilson_interval(0.5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0.0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(1.0, 10)
    assert lo == pytest.approx(0.7225, abs=1e-4) and hi == pytest.approx(1.0)
    assert all(math.isnan(v) for v in wilson_interval(0.5, 0))


def test_bootstrap_interval_seeded_and_sane():
    x = np.array([1.0] * 60 + [0.0] * 40)
    a = bootstrap_interval(x, n_resamples=500, seed=3)
    assert a == bootstrap_interval(x, n_resamples=500, seed=3)
    assert a[0] < 0.6 < a[1]
    # roughly the binomial half-width 1.96 * sqrt(.24 / 100) = 0.096
    assert 0.07 < (a[1] - a[0]) / 2 < 0.12
    acc = accuracy_of(x, ci="bootstrap")
    assert acc.accuracy == pytest.approx(0.6) and acc.n == 100
    with pytest.raises(ValueError):
        accuracy_of(x, ci="nope")


@pytest.mark.parametrize(
    "freq,band",
    [
        (0, "oov"),
        (1, "1-5"),
        (4, "1-5"),
        (5, "6-20"),  # official bins are right-open: [1, 5) [5, 20) [20, 100) [100, inf)
        (19, "6-20"),
        (20, "21-100"),
        (99, "21-100"),
        (100, ">100"),
        (12345, ">100"),
        ("7", "6-20"),
        (None, None),
        (float("nan"), None),
        ("", None),
    ],
)
def test_frequency_bands_follow_official_bins(freq, band):
    assert frequency_band(freq) == band


def test_swuggy_per_id_average_and_bands():
    # id a: oov, voices 1 / 0 -> 0.5; b: freq 3 -> 1.0; c: freq 5 ("6-20") 0.5, 1 -> 0.75;
    # d: freq 150 -> 0.0; e: freq 20 ("21-100") -> 1.0
    outcomes = [1, 0, 1, 1, 0.5, 1, 0, 1]
    ids = ["a", "a", "b", "b", "c", "c", "d", "e"]
    freqs = [0, 0, 3, 3, 5, 5, 150, 20]
    m = swuggy_metrics(outcomes, ids, freqs)
    assert m.n_pairs == 8 and m.overall.n == 5
    assert m.overall.accuracy == pytest.approx((0.5 + 1 + 0.75 + 0 + 1) / 5)
    assert m.extra["in_vocab"].accuracy == pytest.approx((1 + 0.75 + 0 + 1) / 4)
    assert m.extra["in_vocab"].n == 4
    bands = m.breakdowns["frequency"]
    assert {k: (v.accuracy, v.n) for k, v in bands.items()} == {
        "oov": (0.5, 1),
        "1-5": (1.0, 1),
        "6-20": (0.75, 1),
        "21-100": (1.0, 1),
        ">100": (0.0, 1),
    }
    # in-vocab equals the official n-weighted mean of the non-oov bands
    nonoov = [v for k, v in bands.items() if k != "oov"]
    weighted = sum(v.accuracy * v.n for v in nonoov) / sum(v.n for v in nonoov)
    assert m.extra["in_vocab"].accuracy == pytest.approx(weighted)
    assert m.overall.ci95 == pytest.approx(wilson_interval(0.65, 5))


def test_sblimp_groups_by_type_subtype_id():
    # same id "1" in two subtypes is two units (official groupby type, subtype, id)
    outcomes = [1, 0, 1, 1, 0, 0.5]
    ids = ["1", "1", "1", "2", "1", "1"]
    types = ["morph", "morph", "morph", "morph", "syntax", "syntax"]
    subs = ["agr", "agr", "irr", "irr", "island", "island"]
    m = sblimp_metrics(outcomes, ids, types, subs)
    # units: (morph,agr,1)=0.5 (morph,irr,1)=1 (morph,irr,2)=1 (syntax,island,1)=0.25
    assert m.overall.n == 4
    assert m.overall.accuracy == pytest.approx((0.5 + 1 + 1 + 0.25) / 4)
    assert m.breakdowns["type"]["morph"].accuracy == pytest.approx(2.5 / 3)
    assert m.breakdowns["type"]["syntax"].accuracy == pytest.approx(0.25)
    assert m.breakdowns["subtype"]["morph/irr"].accuracy == 1.0
    assert m.breakdowns["subtype"]["morph/irr"].n == 2


def test_storycloze_and_registry_fallbacks():
    m = storycloze_metrics([1, 0, 1, 0.5])
    assert m.overall.accuracy == pytest.approx(0.625) and m.overall.n == 4 and m.unit == "pair"
    # no id/voice meta: one unit per pair
    m2 = benchmark_metrics("sblimp", [1, 0, 1], [{}, {}, {}], ["p1", "p2", "p3"])
    assert m2.overall.n == 3 and m2.overall.accuracy == pytest.approx(2 / 3)
    m3 = benchmark_metrics(
        "swuggy", [1, 0], [{"id": 7, "frequency": "0"}, {"id": 7, "frequency": "0"}], ["x", "y"]
    )
    assert m3.overall.n == 1 and m3.breakdowns["frequency"]["oov"].accuracy == 0.5
    assert math.isnan(m3.extra["in_vocab"].accuracy) and m3.extra["in_vocab"].n == 0
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmark_metrics("sfoo", [1], [{}], ["p"])


# ---------------------------------------------------------------- sWUGGY by word length
def _official_by_length(pairs: list[dict]):
    """Re-implementation of the official sWUGGY scoring, zerospeech/zerospeech2021
    ``zerospeech2021/lexical.py``: ``evaluate_by_pair`` (pair score ``0.5 * (w == nw) +
    (w > nw)``, then per ``id`` the first row's word / non word / frequency / length and the
    mean score over voices) and ``evaluate_by_length`` (``by_pair.score.groupby(
    by_pair.length).agg(n='count', score='mean', std='std')``). The official code picks the
    first row's fields by position (``x.iat[0, 4]`` is ``length`` in its gold.csv column
    order); here they are picked by name."""
    import pandas

    data = pandas.DataFrame(pairs)
    score = data.loc[:, ["score word", "score non word"]].to_numpy()
    data["score"] = 0.5 * (score[:, 0] == score[:, 1]) + (score[:, 0] > score[:, 1])
    data = data.drop(columns=["score word", "score non word"])
    by_pair = pandas.DataFrame(
        [
            (x["word"].iat[0], x["non word"].iat[0], x["frequency"].iat[0],
             x["length"].iat[0], x["score"].mean())
            for _, x in data.groupby("id", sort=True)
        ],
        columns=["word", "non word", "frequency", "length", "score"],
    )  # fmt: skip
    return by_pair.score.groupby(by_pair.length).agg(n="count", score="mean", std="std")


def _made_up_lexical(seed: int, n_ids: int = 40, with_missing: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n_ids):
        length = int(rng.integers(2, 9))
        if with_missing and i % 7 == 3:
            length = None  # no length: NaN in pandas, left out of the groupby
        freq = int(rng.integers(0, 300))
        # 1, 2 or 4 voices: per-id means are multiples of 1/8, so every sum is exact in
        # floating point and both sides round only the final division (exact equality holds)
        for voice in ("A", "B", "C", "D")[: int(rng.choice([1, 2, 4]))]:
            w, nw = (float(v) for v in rng.integers(-3, 3, size=2))  # ties happen
            pairs.append({"id": f"i{i}", "voice": voice, "frequency": freq, "word": f"w{i}",
                          "length": length, "non word": f"nw{i}", "score word": w,
                          "score non word": nw})  # fmt: skip
    return pairs


@pytest.mark.parametrize("seed,with_missing", [(0, False), (1, False), (2, True)])
def test_swuggy_by_length_equals_official(seed, with_missing):
    pairs = _made_up_lexical(seed, with_missing=with_missing)
    official = _official_by_length(pairs)
    outcomes = pair_outcomes([p["score word"] for p in pairs], [p["score non word"] for p in pairs])
    m = swuggy_metrics(
        outcomes,
        [p["id"] for p in pairs],
        [p["frequency"] for p in pairs],
        lengths=[p["length"] for p in pairs],
    )
    ours = {k: (a.accuracy, a.n) for k, a in m.breakdowns["length"].items()}
    want = {str(int(k)): (float(r.score), int(r.n)) for k, r in official.iterrows()}
    assert ours == want  # exact: same per-id means, same groups, same counts
    assert list(ours) == [str(k) for k in sorted(int(k) for k in want)]  # increasing length
    # and through benchmark_metrics from reader-style metas (gold.csv strings work too)
    metas = [{"id": p["id"], "frequency": p["frequency"],
              "length": None if p["length"] is None else str(p["length"])} for p in pairs]  # fmt: skip
    m2 = benchmark_metrics("swuggy", outcomes, metas, [str(i) for i in range(len(pairs))])
    assert {k: (a.accuracy, a.n) for k, a in m2.breakdowns["length"].items()} == want


def test_swuggy_length_breakdown_only_with_lengths():
    with_len = [{"id": 1, "length": 3}, {"id": 2, "length": "3"}, {"id": 3, "length": ""}]
    m = benchmark_metrics("swuggy", [1, 0, 1], with_len, ["a", "b", "c"])
    assert {k: (a.accuracy, a.n) for k, a in m.breakdowns["length"].items()} == {"3": (0.5, 2)}
    m = benchmark_metrics("swuggy", [1, 0], [{"id": 1}, {"id": 2}], ["a", "b"])
    assert "length" not in m.breakdowns and "frequency" in m.breakdowns
