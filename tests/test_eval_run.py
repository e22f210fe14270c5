"""Eval pipeline invariants: pattern LM accuracy, ties, cache, batched == one-by-one, padding,
checkpoint conventions (ours == SlamKit, TWIST offsets), text topline."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_eval_helpers import (
    FrameTokenizer,
    K,
    cycle,
    pattern_lm,
    random_lm,
    tiny_config,
    write_storycloze,
)
from transformers import LlamaForCausalLM

from twistlm.eval.run import evaluate, score_unique
from twistlm.eval.topline import score_texts, score_token_ids, text_topline
from twistlm.lm.model import SpeechLM
from twistlm.lm.scoring import score_units_reference
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


def test_pattern_lm_scores_100_then_0_swapped_and_ties_half(tmp_path):
    lm = pattern_lm()
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


def test_mean_and_sum_rules_disagree_as_defined(tmp_path):
    # positive: 20 units with two off-pattern jumps; negative: 2 units with one jump.
    # Each jump costs ~34.6 nats: sum prefers the short negative, mean the long positive.
    lm = pattern_lm()
    pos = cycle(0, 5) + cycle(2, 10) + cycle(6, 5)
    neg = [0, 5]
    d = write_storycloze(tmp_path / "d", [(pos, neg)])
    b = _eval(lm, {"ssc": d}, tmp_path).benchmarks["ssc"]
    assert b.pos_n[0] == len(pos) and b.neg_n[0] == len(neg)
    assert b.pos_sum[0] == pytest.approx(2 * b.neg_sum[0], rel=1e-4)
    assert b.outcomes("mean").tolist() == [1.0] and b.outcomes("sum").tolist() == [0.0]


def test_second_run_does_not_retokenize(tmp_path):
    lm = random_lm()
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


def _random_units(n, seed=0, lo=1, hi=40):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, K, (int(torch.randint(lo, hi, (1,), generator=g)),), generator=g)
        for _ in range(n)
    ]


def test_batched_equals_one_by_one_and_dedup(tmp_path):
    lm = random_lm(seed=1)
    seqs = _random_units(23, seed=2)
    seqs += [seqs[3].clone(), seqs[7].clone()]  # duplicates are scored once
    ref = score_units_reference(lm, seqs)
    for bs in (1, 4, 64):
        sums, ns, n_unique = score_unique(lm, seqs, batch_size=bs, progress=False)
        assert n_unique == 23
        assert ns.tolist() == [r.n_tokens for r in ref]
        np.testing.assert_allclose(sums, [r.sum_logprob for r in ref], rtol=0, atol=1e-4)
    assert sums[23] == sums[3] and sums[24] == sums[7]


def test_padding_does_not_change_a_score():
    lm = random_lm(seed=3)
    short = torch.tensor(cycle(2, 5))
    alone, _, _ = score_unique(lm, [short], batch_size=8, progress=False)
    for pad_to in (6, 30, 200):
        other = torch.randint(0, K, (pad_to,))
        both, _, _ = score_unique(lm, [short, other], batch_size=8, progress=False)
        assert abs(both[0] - alone[0]) < 1e-4


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


def test_ours_and_slamkit_checkpoints_give_identical_scores(tmp_path):
    ours = random_lm(seed=4)
    ours.save_pretrained(tmp_path / "ours")
    _save_slamkit(ours, tmp_path / "slam")
    a = SpeechLM.from_pretrained(tmp_path / "ours")
    b = SpeechLM.from_pretrained(tmp_path / "slam")
    assert a.vocab.convention == "twistlm" and b.vocab.convention == "slamkit"
    assert b.vocab.n_units == K + 1
    seqs = _random_units(12, seed=5)
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


def test_twist_offset_checkpoints_give_identical_scores(tmp_path):
    """Two TWIST dirs, units at offset 3 (after 3 other rows) and at offset 0 (before them):
    a row permutation of one network, so the offset handling must give identical scores."""
    torch.manual_seed(6)
    V = K + 3
    m3 = LlamaForCausalLM(tiny_config(V)).eval()
    with torch.no_grad():
        for p in m3.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    m0 = LlamaForCausalLM(tiny_config(V)).eval()
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
    seqs = _random_units(10, seed=7, lo=2)
    sa, na, _ = score_unique(a, seqs, batch_size=4, progress=False)
    sb, nb, _ = score_unique(b, seqs, batch_size=4, progress=False)
    assert na.tolist() == [len(s) - 1 for s in seqs] == nb.tolist()  # no BOS: first unit unscored
    np.testing.assert_allclose(sa, sb, rtol=0, atol=1e-5)


def test_evaluate_accepts_model_dirs_of_each_convention(tmp_path):
    ours = random_lm(seed=8)
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


def test_text_topline_uses_same_rules():
    lm = pattern_lm()  # over ids: BOS -> 3 ('a'), 3 -> 4 ... : prefers alphabetical strings
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


# ---------------------------------------------------------------- shared-prefix packing
def _prefix_pairs(seed=9):
    g = torch.Generator().manual_seed(seed)
    base = [torch.randint(0, K, (n,), generator=g) for n in (30, 24, 40, 18, 12)]
    tail = [torch.randint(0, K, (n,), generator=g) for n in (9, 5, 14, 3, 7)]
    seqs = [
        (base[0], torch.cat([base[0][:20], tail[0]])),  # shared 20, different rests
        (base[1][:10], base[1]),  # a is a prefix of b
        (base[2], base[2][:30]),  # b is a prefix of a
        (base[3], torch.cat([base[3][:12], tail[3]])),  # shared 12 of 15
        (base[4], tail[4]),  # nothing shared: scored normally
    ]
    return [u for ab in seqs for u in ab]


@pytest.mark.parametrize("convention", ["twistlm", "twist", "slamkit"])
def test_shared_prefix_packing_is_exact(convention):
    lm = random_lm(seed=10)
    if convention == "twist":  # same network, TWIST ids: no BOS, units at offset 3
        lm = SpeechLM(lm.model, UnitVocab.twist(K, 3, 0, K + 3), {})
    if convention == "slamkit":  # same network, SlamKit ids: `<S> units <S>`, units at 2
        lm = SpeechLM(lm.model, UnitVocab.slamkit(K), {})
    seqs = _prefix_pairs()
    ref = score_units_reference(lm, seqs)
    info = {}
    pairs = [(2 * k, 2 * k + 1) for k in range(len(seqs) // 2)]
    sums, ns, _ = score_unique(lm, seqs, 3, pairs=pairs, progress=False, info=info)
    assert info == {"packed_pairs": 4, "packing": "packed"}
    assert ns.tolist() == [r.n_tokens for r in ref]
    if convention == "slamkit":  # the trailing <S> is scored in the packed rows too
        assert ns.tolist() == [len(u) + 1 for u in seqs]
    np.testing.assert_allclose(sums, [r.sum_logprob for r in ref], rtol=0, atol=1e-4)


def test_packing_falls_back_when_the_model_ignores_the_mask(monkeypatch):
    import twistlm.eval.run as run

    lm = random_lm(seed=11)
    seqs = _prefix_pairs()
    monkeypatch.setattr(
        run, "score_packed_pairs", lambda lm, pairs, *a, **k: [(0.0, 1, 0.0, 1)] * len(pairs)
    )
    info = {}
    pairs = [(2 * k, 2 * k + 1) for k in range(len(seqs) // 2)]
    sums, _, _ = score_unique(lm, seqs, 4, pairs=pairs, progress=False, info=info)
    assert info["packing"] == "disabled"
    ref = score_units_reference(lm, seqs)
    np.testing.assert_allclose(sums, [r.sum_logprob for r in ref], rtol=0, atol=1e-4)


def test_slamkit_pair_decisions_equal_slamkit():
    """200 pairs on a random SlamKit-layout model: packed + batched scoring decides every pair
    as SlamKit's own likelihood does (``tests/slamkit_ref.py``, from slp-rl/slamkit), and the
    units-only rule (the trailing <S> left out) decides some of them differently."""
    from slamkit_ref import slamkit_log_likelihood

    n_units = 20
    torch.manual_seed(12)
    model = LlamaForCausalLM(tiny_config(n_units + 2)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    lm = SpeechLM(model, UnitVocab.slamkit(n_units), {})
    g = torch.Generator().manual_seed(13)
    seqs = []
    for k in range(200):
        pos = torch.randint(
            0, n_units, (int(torch.randint(10, 30, (1,), generator=g)),), generator=g
        )
        neg = pos.clone()
        if k % 2:  # half share a long prefix (packed), half differ from the start
            cut = int(torch.randint(8, len(pos), (1,), generator=g))
            neg = torch.cat(
                [pos[:cut], torch.randint(0, n_units, (len(pos) - cut + k % 3,), generator=g)]
            )
        else:
            neg = neg[torch.randperm(len(neg), generator=g)]
        seqs += [pos, neg]
    pairs = [(2 * k, 2 * k + 1) for k in range(200)]
    info = {}
    sums, ns, _ = score_unique(lm, seqs, 16, pairs=pairs, progress=False, info=info)
    assert info["packing"] == "packed" and info["packed_pairs"] > 50
    ref = torch.cat(
        [slamkit_log_likelihood(model, seqs[i : i + 50], mean_nll=True) for i in range(0, 400, 50)]
    ).numpy()
    ours = sums / ns
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)
    margin = ref[0::2] - ref[1::2]
    clear = np.abs(margin) > 1e-4  # leave float-rounding ties out of the decision check
    assert clear.sum() >= 195
    np.testing.assert_array_equal((ours[0::2] > ours[1::2])[clear], (margin > 0)[clear])
    # the units-only rule (the trailing <S> not scored) flips some decisions
    old = []
    with torch.no_grad():
        for u in seqs:
            ids = torch.tensor([[1] + (u + 2).tolist()])
            lp = model(ids).logits[0, :-1].log_softmax(-1).gather(1, ids[0, 1:, None])
            old.append(float(lp.mean()))
    old = np.asarray(old)
    assert ((old[0::2] > old[1::2]) != (margin > 0))[clear].sum() > 0  # 17 of 200 here
