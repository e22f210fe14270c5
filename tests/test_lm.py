"""SpeechLM: warm/cold start, GGUF loading, save/load, scoring (batched, deduplicated and
pair-packed == one-by-one), TWIST/SlamKit checkpoint layouts."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from slamkit_ref import slamkit_log_likelihood
from test_eval_helpers import TINY_LLAMA, K, cycle, random_lm, random_units
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from twistlm.lm.model import (
    META_FILE,
    SpeechLM,
    detect_convention,
    read_metadata,
    update_metadata,
    write_metadata,
)
from twistlm.lm.scoring import (
    UtteranceScore,
    common_prefix,
    deduplicate,
    packable_pairs,
    score_packed_pairs,
    score_unique,
    score_units,
    score_units_reference,
)
from twistlm.lm.vocab import UnitVocab
from twistlm.lm.warm_start import build_speech_lm

# this file's tiny models (keywords of the conftest ``tiny_llama`` / ``tiny_opt`` / ``tiny_gpt2``
# fixtures), 64 rows unless a test says otherwise; weights from the test's RNG stream
LLAMA = dict(hidden=16, heads=4, kv_heads=2, max_positions=128)  # layers=3 unless truncated
OPT = dict(hidden=16, layers=2, heads=2, max_positions=128, pad_token_id=1)
GPT2 = dict(hidden=16, layers=2, heads=2, max_positions=128)

SOURCES = {  # arch -> (fixture, keywords)
    "llama": ("tiny_llama", dict(layers=3, tie=False, **LLAMA)),
    "llama-tied": ("tiny_llama", dict(layers=3, tie=True, **LLAMA)),
    "opt": ("tiny_opt", OPT),
    "gpt2": ("tiny_gpt2", GPT2),
}


def _emb_names(model):
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings().weight
    return {n for n, p in model.named_parameters(remove_duplicate=False) if p is emb or p is out}


@pytest.mark.parametrize("arch", sorted(SOURCES))
@pytest.mark.parametrize("init", ["random", "truncate", "mean", "small"])
def test_warm_start_copies_every_body_weight(arch, init, request):
    fixture, kw = SOURCES[arch]
    src = request.getfixturevalue(fixture)(64, **kw)
    lm = build_speech_lm(src, n_units=20, init=init)
    assert lm.vocab == UnitVocab.twistlm(20)
    assert lm.model.get_input_embeddings().weight.shape[0] == 23
    assert lm.model.get_output_embeddings().weight.shape[0] == 23
    assert (
        lm.model.config.pad_token_id,
        lm.model.config.bos_token_id,
        lm.model.config.eos_token_id,
    ) == (0, 1, 2)
    src_sd, new_sd = src.state_dict(), lm.model.state_dict()
    skip = _emb_names(lm.model)
    body = [k for k in new_sd if k not in skip]
    assert len(body) > 5
    for k in body:
        assert torch.equal(new_sd[k], src_sd[k]), k
    emb = lm.model.get_input_embeddings().weight
    src_emb = src.get_input_embeddings().weight
    if init == "truncate":
        assert torch.equal(emb, src_emb[:23])
    elif init == "mean":
        assert torch.allclose(
            emb.mean(0), src_emb.mean(0), atol=0.1 * float(src_emb.detach().std())
        )
    tied = lm.model.get_output_embeddings().weight is emb
    assert tied == bool(src.config.tie_word_embeddings) == lm.meta["tied"]


def test_cold_start_same_architecture_different_weights(tiny_llama):
    src = tiny_llama(64, layers=3, tie=False, **LLAMA)
    cold = build_speech_lm(src, n_units=20, start="cold", seed=1)
    assert type(cold.model) is type(src)
    assert cold.model.config.num_hidden_layers == src.config.num_hidden_layers
    w_src = src.model.layers[0].self_attn.q_proj.weight
    w_cold = cold.model.model.layers[0].self_attn.q_proj.weight
    assert w_src.shape == w_cold.shape and not torch.equal(w_src, w_cold)
    assert cold.meta["start"] == "cold"
    # same seed, same model
    again = build_speech_lm(src, n_units=20, start="cold", seed=1)
    assert torch.equal(again.model.model.layers[0].self_attn.q_proj.weight, w_cold)


def test_layer_truncation_recorded(tiny_llama):
    src = tiny_llama(64, layers=3, tie=False, **LLAMA)
    lm = build_speech_lm(src, n_units=10, n_layers=2)
    assert len(lm.model.model.layers) == 2
    assert (
        lm.meta["n_layers"] == 2 and lm.meta["source_layers"] == 3 and lm.meta["layers_truncated"]
    )
    assert torch.equal(
        lm.model.model.layers[1].mlp.up_proj.weight, src.model.layers[1].mlp.up_proj.weight
    )
    with pytest.raises(ValueError, match="n_layers"):
        build_speech_lm(src, n_units=10, n_layers=4)


def test_untied_zero_output_starts_uniform(tiny_llama):
    src = tiny_llama(64, layers=3, tie=True, **LLAMA)
    lm = build_speech_lm(src, n_units=20, init="small", tie=False, out_init="zero")
    assert not lm.model.get_output_embeddings().weight.any()
    s = score_units(lm, [torch.arange(10)])[0]
    assert s.mean_logprob == pytest.approx(-np.log(23), abs=1e-5)


def test_save_load_roundtrip_plain_hf(tmp_path, tiny_llama):
    lm = build_speech_lm(
        tiny_llama(64, layers=3, tie=False, **LLAMA),
        n_units=12,
        init="mean",
        tokenizer_info={"name": "t", "n_units": 12},
    )
    lm.save_pretrained(tmp_path / "m")
    assert detect_convention(tmp_path / "m") == "twistlm"
    back = SpeechLM.from_pretrained(tmp_path / "m")
    assert back.vocab == lm.vocab and back.meta["tokenizer"]["name"] == "t"
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "m")  # plain HF dir
    ids = torch.tensor([[1, 5, 7, 3, 14]])
    with torch.no_grad():
        ref = lm.model(ids).logits
        assert torch.allclose(back.model(ids).logits, ref, atol=1e-6)
        assert torch.allclose(hf(ids).logits, ref, atol=1e-6)


def test_metadata_written_and_updated_atomically(tmp_path, tiny_llama):
    """SpeechLM's module is the one writer of twistlm.json: whole file, or some meta keys."""
    src = tiny_llama(64, layers=3, tie=False, **LLAMA)
    lm = build_speech_lm(src, n_units=12, tokenizer_info={"name": "t", "n_units": 12})
    lm.save_pretrained(tmp_path / "m")
    meta = update_metadata(
        tmp_path / "m", {"vocoder": {"path": "../voc"}, "tokenizer": {"path": "../tok"}}
    )
    assert meta["vocoder"] == {"path": "../voc"} and meta["tokenizer"] == {"path": "../tok"}
    assert meta["n_units"] == 12 and meta["source_lm"] == lm.meta["source_lm"]
    back = SpeechLM.from_pretrained(tmp_path / "m")
    assert back.vocab == lm.vocab and back.meta["vocoder"] == {"path": "../voc"}
    assert "vocoder" not in update_metadata(tmp_path / "m", {"vocoder": None})
    assert [p.name for p in (tmp_path / "m").glob(".tmp-*")] == []  # no temp file left
    write_metadata(tmp_path / "m", lm.vocab, {"n_units": 12})
    assert read_metadata(tmp_path / "m")["meta"] == {"n_units": 12}
    (tmp_path / "m" / META_FILE).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="unsupported format"):
        update_metadata(tmp_path / "m", {"vocoder": None})


def test_batched_scoring_equals_one_by_one(tiny_llama):
    lm = build_speech_lm(tiny_llama(64, layers=3, tie=False, **LLAMA), n_units=30, init="random")
    g = torch.Generator().manual_seed(0)
    units = [torch.randint(0, 30, (n,), generator=g) for n in [7, 1, 0, 40, 13, 13, 25, 2]]
    batched = score_units(lm, units, batch_size=3)
    ref = score_units_reference(lm, units)
    for b, r, u in zip(batched, ref, units, strict=True):
        assert b.n_tokens == r.n_tokens == u.numel()
        assert b.sum_logprob == pytest.approx(r.sum_logprob, abs=1e-4)
    # exact value of one utterance, computed by hand
    ids = torch.tensor([1] + (units[0] + 3).tolist())
    with torch.no_grad():
        lp = lm.model(ids[None]).logits[0, :-1].log_softmax(-1)
    assert batched[0].sum_logprob == pytest.approx(
        float(lp.gather(1, ids[1:, None]).sum()), abs=1e-5
    )
    assert UtteranceScore(-6.0, 3).mean_logprob == -2.0
    assert np.isnan(batched[2].mean_logprob)


def test_scoring_rejects_too_long(tiny_llama):
    lm = build_speech_lm(tiny_llama(64, layers=3, tie=False, **LLAMA), n_units=30)
    with pytest.raises(ValueError, match="positions"):
        score_units(lm, [torch.zeros(200, dtype=torch.long)])


def _manual_sum_logprob(model, ids, first_scored):
    with torch.no_grad():
        lp = model(torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)
    tgt = torch.tensor(ids[1:])
    return float(lp.gather(1, tgt[:, None])[first_scored - 1 :].sum())


def test_twist_checkpoint_layout(tmp_path, tiny_opt):
    # TWIST-350M/1.3B are OPT dirs: config.offset shifts units, pad_token_id pads, no BOS/EOS.
    n_units, offset = 20, 4
    model = tiny_opt(n_units + offset, **OPT)
    model.config.offset = offset
    model.save_pretrained(tmp_path / "twist")
    cfg = json.loads((tmp_path / "twist" / "config.json").read_text())
    assert cfg["offset"] == 4 and cfg["pad_token_id"] == 1
    lm = SpeechLM.from_pretrained(tmp_path / "twist")
    assert lm.vocab.convention == "twist" and lm.vocab.offset == 4 and lm.vocab.bos_id is None
    assert lm.vocab.n_units == n_units and lm.vocab.pad_id == 1
    units = [torch.tensor([3, 0, 19, 7, 7, 2]), torch.tensor([5, 9])]
    scores = score_units(lm, units, batch_size=2)
    for u, s in zip(units, scores, strict=True):
        ids = (u + offset).tolist()
        assert s.n_tokens == u.numel() - 1
        assert s.sum_logprob == pytest.approx(_manual_sum_logprob(model, ids, 1), abs=1e-4)
    # our model holding the same weights, with the same id layout, scores the same
    ours = SpeechLM(model, UnitVocab(n_units, offset, 1, None, None, n_units + offset))
    assert [s.sum_logprob for s in score_units(ours, units)] == pytest.approx(
        [s.sum_logprob for s in scores], abs=1e-5
    )


@pytest.mark.parametrize("tie", [False, True], ids=["llama", "llama-tied"])
def test_slamkit_checkpoint_layout(tmp_path, tie, tiny_llama):
    # SlamKit UnitLM: config of UnitLMConfig (base_config dict), weights under `lm.`, pad 0, <S> 1.
    n_units = 20
    model = tiny_llama(64, layers=3, tie=tie, **LLAMA)
    lm_body = LlamaForCausalLM(
        LlamaConfig(**{**model.config.to_dict(), "vocab_size": n_units + 2})
    ).eval()
    d = tmp_path / "slam"
    d.mkdir()
    base = lm_body.config.to_dict()
    cfg = {
        "architectures": ["UnitLM"],
        "model_type": "speech_language_model",
        "base_model_name": "Qwen/Qwen2.5-0.5B",
        "base_config": base,
        "vocab_size": n_units + 2,
        "twist_init": True,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 1,
    }
    (d / "config.json").write_text(json.dumps(cfg))
    sd = {f"lm.{k}": v.contiguous() for k, v in lm_body.state_dict().items()}
    if lm_body.config.tie_word_embeddings:
        sd.pop("lm.lm_head.weight")
    save_file(sd, str(d / "model.safetensors"))
    lm = SpeechLM.from_pretrained(d)
    assert lm.vocab == UnitVocab.slamkit(n_units)
    units = [torch.tensor([3, 0, 19, 7]), torch.tensor([5])]
    scores = score_units(lm, units)
    for u, s in zip(units, scores, strict=True):
        ids = [1] + (u + 2).tolist() + [1]  # SlamKit scores `<S> units <S>`, trailing <S> too
        assert s.n_tokens == u.numel() + 1
        assert s.sum_logprob == pytest.approx(_manual_sum_logprob(lm_body, ids, 1), abs=1e-4)


def _permute_llamacpp(w, n_head):
    # llama.cpp convert_hf_to_gguf.py LlamaModel.permute (transformers undoes it when loading).
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def test_gguf_tiny_llama_loads_like_smollm2(tmp_path, monkeypatch, tiny_llama):
    gguf = pytest.importorskip("gguf")
    monkeypatch.setenv("TWISTLM_CACHE", str(tmp_path / "cache"))
    from twistlm.lm.textlm import load_text_lm

    src = tiny_llama(32, layers=2, tie=True, **LLAMA)
    c = src.config
    path = tmp_path / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_vocab_size(c.vocab_size)
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in src.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    names = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    for i in range(c.num_hidden_layers):
        for hf, gg in names.items():
            t = sd[f"model.layers.{i}.{hf}.weight"]
            if gg == "attn_q":
                t = _permute_llamacpp(t, c.num_attention_heads)
            elif gg == "attn_k":
                t = _permute_llamacpp(t, c.num_key_value_heads)
            w.add_tensor(f"blk.{i}.{gg}.weight", np.ascontiguousarray(t))
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    model, tok = load_text_lm(path, tokenizer=False)
    assert tok is None and type(model) is LlamaForCausalLM
    assert "quantization_config" not in model.config.to_dict()
    ids = torch.tensor([[1, 5, 9, 30, 2]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, src(ids).logits, atol=1e-5)
    model.save_pretrained(tmp_path / "plain")  # a GGUF-loaded model could not do this
    # converted once into the cache; the second load reads that HF dir and gives the same model
    (converted,) = (tmp_path / "cache" / "text-lm").iterdir()
    assert (converted / "config.json").is_file()
    again, _ = load_text_lm(path, tokenizer=False)
    with torch.no_grad():
        assert torch.equal(again(ids).logits, model(ids).logits)
    lm = build_speech_lm(path, n_units=10, init="mean")  # the same path SmolLM2 takes
    assert torch.equal(
        lm.model.model.layers[1].mlp.down_proj.weight, src.model.layers[1].mlp.down_proj.weight
    )


def test_zero_output_unties_and_rejects_tie(tiny_llama):
    src = tiny_llama(64, layers=3, tie=True, **LLAMA)
    lm = build_speech_lm(src, n_units=20, init="random", out_init="zero")
    assert not lm.meta["tied"] and not lm.model.get_output_embeddings().weight.any()
    assert lm.model.get_input_embeddings().weight.std() > 0
    with pytest.raises(ValueError, match="untied"):
        build_speech_lm(
            tiny_llama(64, layers=3, tie=True, **LLAMA), n_units=20, out_init="zero", tie=True
        )


# ---------------------------------------------------------------- SlamKit's likelihood, exactly
def test_slamkit_scores_equal_slamkit_calc_nll(tiny_llama):
    # weights larger than HF's 0.02 init, so the trailing <S> term matters
    model = tiny_llama(20 + 2, layers=3, tie=False, seed=0, init_std=0.3, **LLAMA)
    lm = SpeechLM(model, UnitVocab.slamkit(20), {})
    g = torch.Generator().manual_seed(1)
    units = [torch.randint(0, 20, (n,), generator=g) for n in [7, 1, 40, 13, 2, 25]]
    mean_ref = slamkit_log_likelihood(lm.model, units, mean_nll=True)
    sum_ref = slamkit_log_likelihood(lm.model, units, mean_nll=False)
    for scores in (score_units_reference(lm, units), score_units(lm, units, batch_size=4)):
        assert [s.n_tokens for s in scores] == [u.numel() + 1 for u in units]
        np.testing.assert_allclose(
            [s.mean_logprob for s in scores], mean_ref.numpy(), rtol=0, atol=1e-5
        )
        np.testing.assert_allclose(
            [s.sum_logprob for s in scores], sum_ref.numpy(), rtol=0, atol=1e-5
        )
    # ours and TWIST keep scoring the units only
    assert UnitVocab.twistlm(20).scoring_ids(torch.tensor([0, 1])).tolist() == [1, 3, 4]
    assert UnitVocab.twist(20, 4, 1, 24).scoring_ids(torch.tensor([0, 1])).tolist() == [4, 5]
    assert UnitVocab.slamkit(20).scoring_ids(torch.tensor([0, 1])).tolist() == [1, 2, 3, 1]


# ---------------------------------------------------------------- TWIST dir without n_units
def _twist_dir_without_n_units(tiny_opt, path, vocab=1000, offset=4):
    """``tiny_opt``: the conftest fixture (its builder)."""
    model = tiny_opt(vocab, **OPT)
    model.config.offset = offset
    model.save_pretrained(path)
    assert "n_units" not in json.loads((path / "config.json").read_text())
    return path


def test_twist_n_units_inferred_then_taken_from_the_tokenizer(tmp_path, tiny_opt):
    from types import SimpleNamespace

    from twistlm.eval.run import check_compatible

    d = _twist_dir_without_n_units(tiny_opt, tmp_path / "twist")
    lm = SpeechLM.from_pretrained(d)
    assert lm.vocab.n_units == 996 and lm.meta["n_units_inferred"] is True
    check_compatible(lm, SimpleNamespace(n_units=20), tmp_path / "tok")
    assert lm.vocab.n_units == 20 and lm.vocab.offset == 4 and lm.vocab.vocab_size == 1000
    assert lm.meta["n_units"] == 20 and lm.meta["n_units_inferred"] is False
    assert lm.meta["n_units_source"] == f"tokenizer {tmp_path / 'tok'}"
    # now recorded: another tokenizer is refused, naming both counts and both paths
    with pytest.raises(ValueError, match="tokenizer has 30 units but the model expects 20") as e:
        check_compatible(lm, SimpleNamespace(n_units=30), tmp_path / "tok30")
    assert str(d) in str(e.value) and str(tmp_path / "tok30") in str(e.value)
    # a checkpoint that records n_units never adopts another count
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "n_units": 20}))
    rec = SpeechLM.from_pretrained(d)
    assert rec.vocab.n_units == 20 and rec.meta["n_units_inferred"] is False
    with pytest.raises(ValueError, match="tokenizer has 25 units but the model expects 20"):
        check_compatible(rec, SimpleNamespace(n_units=25), "tok25")
    # more units than the model has rows: refused
    big = SpeechLM.from_pretrained(
        _twist_dir_without_n_units(tiny_opt, tmp_path / "small", vocab=30)
    )
    with pytest.raises(ValueError, match="has 40 units but the model .* only 26 rows"):
        check_compatible(big, SimpleNamespace(n_units=40), "tok40")


# ---------------------------------------------------------------- deduplicated scoring (score_unique)
def test_batched_equals_one_by_one_and_dedup(tiny_llama):
    lm = random_lm(tiny_llama, seed=1)
    seqs = random_units(23, seed=2)
    seqs += [seqs[3].clone(), seqs[7].clone()]  # duplicates are scored once
    ref = score_units_reference(lm, seqs)
    for bs in (1, 4, 64):
        sums, ns, n_unique = score_unique(lm, seqs, batch_size=bs, progress=False)
        assert n_unique == 23
        assert ns.tolist() == [r.n_tokens for r in ref]
        np.testing.assert_allclose(sums, [r.sum_logprob for r in ref], rtol=0, atol=1e-4)
    assert sums[23] == sums[3] and sums[24] == sums[7]


def test_padding_does_not_change_a_score(tiny_llama):
    lm = random_lm(tiny_llama, seed=3)
    short = torch.tensor(cycle(2, 5))
    alone, _, _ = score_unique(lm, [short], batch_size=8, progress=False)
    for pad_to in (6, 30, 200):
        other = torch.randint(0, K, (pad_to,))
        both, _, _ = score_unique(lm, [short, other], batch_size=8, progress=False)
        assert abs(both[0] - alone[0]) < 1e-4


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
def test_shared_prefix_packing_is_exact(convention, tiny_llama):
    lm = random_lm(tiny_llama, seed=10)
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


def test_packing_falls_back_when_the_model_ignores_the_mask(monkeypatch, tiny_llama):
    import twistlm.lm.scoring as scoring

    lm = random_lm(tiny_llama, seed=11)
    seqs = _prefix_pairs()
    monkeypatch.setattr(
        scoring, "score_packed_pairs", lambda lm, pairs, *a, **k: [(0.0, 1, 0.0, 1)] * len(pairs)
    )
    info = {}
    pairs = [(2 * k, 2 * k + 1) for k in range(len(seqs) // 2)]
    sums, _, _ = score_unique(lm, seqs, 4, pairs=pairs, progress=False, info=info)
    assert info["packing"] == "disabled"
    ref = score_units_reference(lm, seqs)
    np.testing.assert_allclose(sums, [r.sum_logprob for r in ref], rtol=0, atol=1e-4)


def test_slamkit_pair_decisions_equal_slamkit(tiny_llama):
    """200 pairs on a random SlamKit-layout model: packed + batched scoring decides every pair
    as SlamKit's own likelihood does (``tests/slamkit_ref.py``, from slp-rl/slamkit), and the
    units-only rule (the trailing <S> left out) decides some of them differently."""
    n_units = 20
    model = tiny_llama(n_units + 2, seed=12, init_std=0.3, **TINY_LLAMA)
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


def test_dedup_prefix_and_pair_selection_are_pure():
    a, b = torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 5])
    unique, where = deduplicate([a, b, a.clone(), b[:2]])
    assert len(unique) == 3 and where.tolist() == [0, 1, 0, 2]
    assert common_prefix(a, b) == 2 and common_prefix(a, a) == 4 and common_prefix(a, b[:0]) == 0
    long = [torch.arange(20), torch.cat([torch.arange(12), torch.zeros(4, dtype=torch.long)])]
    seqs = long + [torch.arange(20).flip(0)]
    assert packable_pairs(seqs, [(0, 1), (0, 2), (1, 1)], min_shared=8) == [(0, 1)]
    assert packable_pairs(seqs, [(0, 1)], min_shared=13) == []  # 12 shared units only
    assert packable_pairs(seqs, [(0, 2), (0, 1), (1, 0)], min_shared=0) == [(0, 1)]


@pytest.mark.parametrize("convention", ["twistlm", "twist", "slamkit"])
def test_score_packed_pairs_equals_one_by_one(convention, tiny_llama):
    """Pair-packed rows (shared prefix computed once, tree attention) give each utterance the
    score it gets alone, under every id convention."""
    lm = random_lm(tiny_llama, seed=14)
    if convention == "twist":
        lm = SpeechLM(lm.model, UnitVocab.twist(K, 3, 0, K + 3), {})
    if convention == "slamkit":
        lm = SpeechLM(lm.model, UnitVocab.slamkit(K), {})
    seqs = _prefix_pairs(seed=15)
    got = score_packed_pairs(lm, list(zip(seqs[0::2], seqs[1::2], strict=True)), batch_size=2)
    ref = score_units_reference(lm, seqs)
    for n, (sa, na, sb, nb) in enumerate(got):
        assert (na, nb) == (ref[2 * n].n_tokens, ref[2 * n + 1].n_tokens)
        assert sa == pytest.approx(ref[2 * n].sum_logprob, abs=1e-4)
        assert sb == pytest.approx(ref[2 * n + 1].sum_logprob, abs=1e-4)
