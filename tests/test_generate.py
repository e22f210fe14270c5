"""Sampling: exact filters on crafted logits, cached == uncached, batched == one-by-one,
offsets round-trip for every vocab convention, EOS handling, lengths."""

import math
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from twistlm.lm.generate import (
    PRESETS,
    apply_repetition_penalty,
    filter_logits,
    generate_units,
    generation_settings,
    left_pad,
    positions_from_mask,
    sample_inverse_cdf,
    sampling_mask,
    top_k_filter,
    top_p_filter,
    twist_max_new_units,
)
from twistlm.lm.vocab import UnitVocab

INF = math.inf


@dataclass
class _LM:  # the two attributes generate_units needs from a SpeechLM
    model: nn.Module
    vocab: UnitVocab


# the tiny models of these tests (keywords of the conftest ``tiny_llama`` / ``tiny_opt`` fixtures)
LLAMA = dict(hidden=32, layers=2, heads=4, kv_heads=2, max_positions=256)
OPT = dict(hidden=32, layers=2, heads=4, max_positions=256)


class _NextIdLM(nn.Module):
    """Fake causal LM: after id x it puts all mass on id x + 1 (or on ``eos`` once the
    sequence has ``eos_after`` real tokens). Greedy continuation of unit u is u+1, u+2, ...
    only if the generator applies the vocab offset in and out correctly."""

    def __init__(self, n_vocab, eos=None, eos_after=None):
        super().__init__()
        self.n_vocab, self.eos, self.eos_after = n_vocab, eos, eos_after
        self.dummy = nn.Parameter(torch.zeros(1))
        self.calls = []

    def forward(self, input_ids, attention_mask, position_ids=None, cache=None, use_cache=False):
        self.calls.append(input_ids.clone())
        full = input_ids if cache is None else torch.cat([cache, input_ids], 1)
        last = full[:, -1]
        logits = torch.full((full.shape[0], 1, self.n_vocab), -10.0)
        nxt = (last + 1).clamp(max=self.n_vocab - 1)
        if self.eos is not None:
            n_real = attention_mask.sum(-1)
            nxt = torch.where(n_real >= self.eos_after, torch.full_like(nxt, self.eos), nxt)
        logits[torch.arange(full.shape[0]), 0, nxt] = 10.0
        return SimpleNamespace(logits=logits, cache=full if use_cache else None)


# ---------------------------------------------------------------- pure filters
def test_top_k_exact_with_ties():
    logits = torch.tensor([[1.0, 3.0, 2.0, 3.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    out = top_k_filter(logits, 2)
    assert out.tolist() == [[-INF, 3.0, -INF, 3.0, -INF], [5.0, 4.0, -INF, -INF, -INF]]
    out = top_k_filter(logits, 3)  # the tie at the 3rd place keeps both 3.0s and the 2.0
    assert out[0].tolist() == [-INF, 3.0, 2.0, 3.0, -INF]
    assert torch.equal(top_k_filter(logits, 99), logits)
    assert top_k_filter(logits, None) is logits
    with pytest.raises(ValueError):
        top_k_filter(logits, 0)


def test_top_p_exact_on_crafted_probs():
    probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])
    logits = probs.log()
    # descending: 0.5 (before 0), 0.3 (before 0.5), 0.15 (before 0.8), 0.05 (before 0.95)
    keep = lambda p: torch.isfinite(top_p_filter(logits, p))[0].tolist()  # noqa: E731
    assert keep(0.5) == [False, True, False, False]
    assert keep(0.51) == [False, True, False, True]
    assert keep(0.8) == [False, True, False, True]
    assert keep(0.81) == [True, True, False, True]
    assert keep(0.96) == [True, True, True, True]
    assert keep(0.01) == [False, True, False, False]  # the top id always survives
    kept = top_p_filter(logits, 0.81)
    assert torch.allclose(kept[0, [0, 1, 3]], logits[0, [0, 1, 3]])


def test_top_p_matches_hf_warper():
    from transformers.generation.logits_process import TopPLogitsWarper

    torch.manual_seed(1)
    logits = torch.randn(6, 40) * 3
    for p in (0.3, 0.7, 0.9):
        ours = torch.isfinite(top_p_filter(logits, p))
        hf = torch.isfinite(TopPLogitsWarper(p)(torch.zeros(6, 1, dtype=torch.long), logits))
        assert torch.equal(ours, hf)


def test_repetition_penalty_exact():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    seen = torch.tensor([[True, True, False, False]])
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == [[1.0, -4.0, 1.0, 0.5]]
    assert apply_repetition_penalty(logits, seen, 1.0) is logits
    with pytest.raises(ValueError):
        apply_repetition_penalty(logits, seen, 0.0)


def test_inverse_cdf_sampling_exact_and_skips_zero_prob():
    logits = torch.tensor([0.2, 0.0, 0.5, 0.3]).log().expand(5, 4)
    u = torch.tensor([0.1, 0.25, 0.69, 0.71, 1.0])
    assert sample_inverse_cdf(logits, u).tolist() == [0, 2, 2, 3, 3]


def test_filter_logits_masks_non_units_and_greedy():
    vocab = UnitVocab.twistlm(4)  # ids 3..6 are units; the model has 2 extra text rows
    allowed = sampling_mask(vocab, 9)
    assert allowed.tolist() == [False, False, False, True, True, True, True, False, False]
    logits = torch.tensor([[9.0, 9.0, 9.0, 1.0, 2.0, 0.0, -1.0, 9.0, 9.0]])
    out = filter_logits(logits, allowed, temperature=0.5)
    assert torch.isinf(out[0, ~allowed]).all()
    assert torch.allclose(out[0, allowed], logits[0, allowed] / 0.5)
    greedy = filter_logits(logits, allowed, temperature=0.0)
    assert torch.isfinite(greedy[0]).tolist() == [False] * 4 + [True] + [False] * 4
    with pytest.raises(ValueError, match="logits"):
        sampling_mask(vocab, 6)
    assert sampling_mask(vocab, 9, eos=2)[2]


def test_twist_length_rule_and_padding_helpers():
    assert [twist_max_new_units(n) for n in (0, 60, 100, 200, 300)] == [0, 120, 150, 50, 0]
    ids, mask = left_pad([torch.tensor([5, 6, 7]), torch.tensor([8])], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert positions_from_mask(mask).tolist() == [[0, 1, 2], [0, 0, 0]]


# ---------------------------------------------------------------- invariants on tiny models
def _prompts(n_units):
    g = torch.Generator().manual_seed(3)
    return [torch.randint(0, n_units, (n,), generator=g) for n in (7, 3, 11, 5)]


@pytest.mark.parametrize("kind", ["llama", "opt"])
def test_cached_equals_uncached_and_batched_equals_single(kind, tiny_llama, tiny_opt):
    if kind == "llama":
        vocab = UnitVocab.twistlm(20)
        lm = _LM(tiny_llama(vocab.vocab_size + 5, seed=0, **LLAMA), vocab)  # 5 leftover "text" rows
    else:
        vocab = UnitVocab.twist(20, offset=4, pad_id=1, vocab_size=30)
        lm = _LM(tiny_opt(30, pad_token_id=1, seed=0, **OPT), vocab)
    prompts = _prompts(20)
    kw = dict(max_new_units=12, temperature=1.0, top_k=15, top_p=0.95, repetition_penalty=1.3)
    cached = generate_units(lm, prompts, use_cache=True, batch_size=4, seed=5, **kw)
    uncached = generate_units(lm, prompts, use_cache=False, batch_size=4, seed=5, **kw)
    single = generate_units(lm, prompts, use_cache=True, batch_size=1, seed=5, **kw)
    assert [c.tolist() for c in cached] == [u.tolist() for u in uncached]
    assert [c.tolist() for c in cached] == [s.tolist() for s in single]
    assert all(len(c) == 12 and int(c.min()) >= 0 and int(c.max()) < 20 for c in cached)
    other = generate_units(lm, prompts, use_cache=True, batch_size=4, seed=6, **kw)
    assert [c.tolist() for c in cached] != [o.tolist() for o in other]


def test_left_padding_does_not_change_logits(tiny_llama):
    """The first sampled step sees the same distribution with or without left padding."""
    vocab = UnitVocab.twistlm(20)
    lm = _LM(tiny_llama(vocab.vocab_size, seed=0, **LLAMA), vocab)
    short, long_ = torch.tensor([4, 5, 6]), torch.arange(10)
    ids, mask = left_pad([vocab.utterance_ids(long_), vocab.utterance_ids(short)], vocab.pad_id)
    pos = positions_from_mask(mask)
    batched = lm.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[1, -1]
    alone = lm.model(input_ids=vocab.utterance_ids(short)[None]).logits[0, -1]
    assert torch.allclose(batched, alone, atol=1e-5)


@pytest.mark.parametrize(
    "vocab",
    [
        UnitVocab.twistlm(10),
        UnitVocab.slamkit(10),
        UnitVocab.twist(10, offset=7, pad_id=1, vocab_size=40),
    ],
    ids=["twistlm", "slamkit", "twist"],
)
@pytest.mark.parametrize("use_cache", [True, False])
def test_offsets_round_trip_every_convention(vocab, use_cache):
    model = _NextIdLM(vocab.vocab_size)
    lm = _LM(model, vocab)
    out = generate_units(
        lm, [torch.tensor([0, 2]), torch.tensor([4])], max_new_units=4, temperature=0.0,
        use_cache=use_cache,
    )  # fmt: skip
    assert [o.tolist() for o in out] == [[3, 4, 5, 6], [5, 6, 7, 8]]
    # the model saw the convention's ids: prefix + offset units, left-padded with pad_id
    first = model.calls[0]
    expect = vocab.prefix() + [u + vocab.offset for u in (0, 2)]
    assert first[0].tolist() == expect
    assert first[1].tolist()[-1] == 4 + vocab.offset
    assert first[1].tolist()[0] == vocab.pad_id


def test_unit_range_end_is_never_exceeded():
    # after the last unit the fake LM prefers a text row; it must be masked out
    vocab = UnitVocab.twist(10, offset=2, pad_id=0, vocab_size=30)
    out = generate_units(_LM(_NextIdLM(30), vocab), [torch.tensor([8])], max_new_units=3,
                         temperature=0.0)  # fmt: skip
    assert out[0][0] == 9 and int(out[0].max()) < 10


def test_eos_ends_sequence_only_when_enabled():
    vocab = UnitVocab.twistlm(50)
    lm = _LM(_NextIdLM(vocab.vocab_size, eos=vocab.eos_id, eos_after=6), vocab)
    prompts = [torch.tensor([1, 2, 3]), torch.tensor([10])]  # BOS + units: 4 and 2 real tokens
    stop = generate_units(lm, prompts, max_new_units=10, temperature=0.0, stop_at_eos=True)
    assert [s.tolist() for s in stop] == [[4, 5], [11, 12, 13, 14]]
    go_on = generate_units(lm, prompts, max_new_units=10, temperature=0.0)
    assert [len(g) for g in go_on] == [10, 10]


def test_length_options():
    vocab = UnitVocab.twistlm(10)
    lm = _LM(_NextIdLM(vocab.vocab_size), vocab)
    p = [torch.zeros(4, dtype=torch.long)]
    assert len(generate_units(lm, p, max_seconds=2.0, units_per_second=2.5)[0]) == 5
    assert len(generate_units(lm, p)[0]) == twist_max_new_units(4) == 8
    two = generate_units(lm, p * 2, max_new_units=[2, 5])
    assert [len(t) for t in two] == [2, 5]
    with pytest.raises(ValueError, match="lengths"):
        generate_units(lm, p * 2, max_new_units=[2])
    with pytest.raises(ValueError, match="not both"):
        generate_units(lm, p, max_new_units=3, max_seconds=1.0, units_per_second=2)
    with pytest.raises(ValueError, match="units_per_second"):
        generate_units(lm, p, max_seconds=1.0)
    with pytest.raises(ValueError, match="empty"):
        generate_units(_LM(_NextIdLM(40), UnitVocab.twist(10, 2, 0, 40)), [torch.tensor([])])


def test_chunked_calls_with_indices_equal_one_call(tiny_llama):
    vocab = UnitVocab.twistlm(20)
    lm = _LM(tiny_llama(vocab.vocab_size, seed=0, **LLAMA), vocab)
    prompts = _prompts(20)
    whole = generate_units(lm, prompts, max_new_units=6, seed=2)
    parts = generate_units(lm, prompts[:2], max_new_units=6, seed=2) + generate_units(
        lm, prompts[2:], max_new_units=6, seed=2, indices=[2, 3]
    )
    assert [w.tolist() for w in whole] == [p.tolist() for p in parts]
    with pytest.raises(ValueError, match="indices"):
        generate_units(lm, prompts, indices=[0])


@pytest.mark.filterwarnings("ignore:the model's unit count")  # inferred: no n_units
def test_twist_format_dir_generates_in_unit_range(tmp_path, tiny_opt):
    """A TWIST-layout HF dir (OPT + config.offset, no BOS) through SpeechLM.from_pretrained."""
    from twistlm.lm.model import SpeechLM

    model = tiny_opt(40, pad_token_id=1, seed=0, **OPT)
    model.config.offset = 4
    model.save_pretrained(tmp_path / "twist")
    lm = SpeechLM.from_pretrained(tmp_path / "twist")
    assert lm.vocab.convention == "twist" and lm.vocab.offset == 4 and lm.vocab.n_units == 36
    prompts = [torch.tensor([0, 35, 7]), torch.tensor([12])]
    a = generate_units(lm, prompts, max_new_units=8, temperature=1.0, use_cache=True)
    b = generate_units(lm, prompts, max_new_units=8, temperature=1.0, use_cache=False)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert all(int(x.min()) >= 0 and int(x.max()) < 36 and len(x) == 8 for x in a)


# ---------------------------------------------------------------- presets
def test_presets_equal_their_references():
    """twist: textlesslib examples/twist/speech_lm.py generate_with_offset passes
    do_sample=True, temperature=0.8, max_length=min(250, 3 * input_len) and nothing else, so
    transformers' defaults (top_k 50, top_p 1.0) apply; twist_generation.py cuts 3.0 s prompts.
    slamkit: slp-rl/slamkit config/metric/generate.yaml generate_kwargs temperature 0.8,
    top_k 25, max_new_tokens 150, do_sample true; prompt_length 3; <S> is the EOS."""
    import inspect

    from transformers import GenerationConfig

    tw, sk = PRESETS["twist"], PRESETS["slamkit"]
    fields = ("temperature", "top_k", "top_p", "repetition_penalty", "prompt_seconds",
              "max_new_units", "stop_at_eos")  # fmt: skip
    assert [getattr(tw, f) for f in fields] == [0.8, 50, None, 1.0, 3.0, None, False]
    assert [getattr(sk, f) for f in fields] == [0.8, 25, None, 1.0, 3.0, 150, True]
    assert twist_max_new_units(100) == 250 - 100 and twist_max_new_units(40) == 80
    # transformers' own defaults are what the TWIST example gets for what it does not pass
    hf = GenerationConfig._get_default_generation_params()
    assert (hf["top_k"], hf["top_p"], hf["repetition_penalty"]) == (50, 1.0, 1.0)
    # generate_units' defaults are the twist preset
    params = inspect.signature(generate_units).parameters
    assert params["temperature"].default == 0.8 and params["top_k"].default == 50
    assert params["top_p"].default is None and params["stop_at_eos"].default is False
    with pytest.raises(ValueError, match="unknown generation preset"):
        generation_settings("gslm")


def test_generation_config_json_is_read_and_explicit_args_win(tmp_path):
    import json

    (tmp_path / "generation_config.json").write_text(
        json.dumps(
            {
                "top_k": 7,
                "top_p": 0.9,
                "temperature": 0.3,
                "do_sample": False,
                "max_new_tokens": 20,
                "bos_token_id": 1,
            }
        )  # fmt: skip
    )
    tw = generation_settings("twist", tmp_path)
    # the TWIST example passes temperature / do_sample / length itself: only top-k, top-p and
    # the repetition penalty come from the checkpoint, as transformers does for it
    assert (tw["top_k"], tw["top_p"], tw["temperature"], tw["max_new_units"]) == (7, 0.9, 0.8, None)
    assert tw["origin"]["top_k"] == tw["origin"]["top_p"] == "generation_config.json"
    assert tw["origin"]["temperature"] == "preset twist" and tw["preset"] == "twist"
    # SlamKit's UnitLM.generate uses the inner LM's config (built from base_config): file unread
    sk = generation_settings("slamkit", tmp_path)
    assert (sk["top_k"], sk["top_p"], sk["max_new_units"], sk["stop_at_eos"]) == (
        25,
        None,
        150,
        True,
    )
    # explicit arguments win over both; 0 / 1.0 / None mean off
    ex = generation_settings("twist", tmp_path, top_k=3, temperature=1.0, top_p=1.0)
    assert (ex["top_k"], ex["temperature"], ex["top_p"]) == (3, 1.0, None)
    assert ex["origin"]["top_k"] == "argument"
    assert generation_settings("slamkit", None, top_k=0)["top_k"] is None
    assert generation_settings("twist", tmp_path / "absent")["top_k"] == 50  # no file: preset


# ---------------------------------------------------------------- unit range and positions
def test_tiny_opt_past_its_positions_is_refused_before_generating(tiny_opt):
    """OPT with 128 positions (HF keeps 130 rows: its learned positions start at 2)."""
    model = tiny_opt(24, hidden=16, layers=1, heads=2, max_positions=128, pad_token_id=1, seed=0)
    assert model.model.decoder.embed_positions.weight.shape[0] == 130
    lm = _LM(model, UnitVocab.twist(20, offset=4, pad_id=1, vocab_size=24))
    prompt = [torch.tensor([3, 0, 19, 7, 7])]
    with pytest.raises(ValueError, match=r"prompt 0 has 5 units and 200 new units .* 128") as e:
        generate_units(lm, prompt, max_new_units=200, temperature=1.0)
    assert "at most 123 new units" in str(e.value)
    with pytest.raises(ValueError, match="128"):
        generate_units(lm, prompt, max_new_units=124, temperature=1.0)
    out = generate_units(lm, prompt, max_new_units=123, temperature=1.0)  # exactly 128: fits
    assert len(out[0]) == 123 and int(out[0].max()) < 20
    # with a BOS (our convention) the BOS takes a position too
    ours = _LM(model, UnitVocab(20, 4, 1, 0, 2, 24))
    with pytest.raises(ValueError, match=r"5 units \(\+1 BOS\)"):
        generate_units(ours, prompt, max_new_units=123, temperature=1.0)


def test_twist_without_n_units_samples_tokenizer_units_only(tmp_path, tiny_opt):
    """A TWIST dir that kept its text vocabulary (OPT, 1000 rows, offset 4, no n_units): before
    a tokenizer is known the count is only an upper bound (warned); after check_compatible with
    a 20-unit tokenizer nothing outside units 0..19 is sampled."""
    from twistlm.lm.components import check_compatible
    from twistlm.lm.model import SpeechLM

    torch.manual_seed(0)
    model = tiny_opt(1000, pad_token_id=1, seed=0, **OPT)
    model.config.offset = 4
    model.save_pretrained(tmp_path / "twist")
    lm = SpeechLM.from_pretrained(tmp_path / "twist")
    prompts = [torch.tensor([0, 19, 7, 3, 3]), torch.tensor([12, 5])]
    kw = dict(max_new_units=60, temperature=1.0, top_k=None, seed=1)
    with pytest.warns(UserWarning, match="inferred"):
        wide = generate_units(lm, prompts, **kw)
    assert max(int(x.max()) for x in wide) >= 20  # the bug: units no tokenizer has
    check_compatible(lm, SimpleNamespace(n_units=20), paths={"tokenizer": "tok"})
    narrow = generate_units(lm, prompts, **kw)
    assert all(len(x) == 60 and int(x.min()) >= 0 and int(x.max()) < 20 for x in narrow)
