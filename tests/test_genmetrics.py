"""Generation metrics: WER and auto-BLEU on hand-computed cases, perplexity against a manual
computation, GSLM's and SlamKit's metric definitions against re-implementations of their public
code, reference discovery, and evaluate_generation end to end (fake ASR, tiny models) including
bad prompts and resume. Real Whisper + SmolLM2 pieces are in one slow test."""

import json
import math

import numpy as np
import pytest
import torch

from twistlm.audio import write_wav
from twistlm.eval.generation import evaluate_generation
from twistlm.eval.genmetrics import find_references, generation_metric
from twistlm.eval.textmetrics import (
    TextPerplexity,
    TextScore,
    auto_bleu,
    auto_bleu_gslm,
    auto_bleu_slamkit,
    corpus_perplexity,
    genppl_slamkit,
    ngram_repetition,
    normalize_text,
    word_error_rate,
)
from twistlm.sequences import edit_distance


def test_normalize_and_edit_distance():
    assert normalize_text("Hello, World! It's a well-known test.") == [
        "hello", "world", "it's", "a", "well", "known", "test",
    ]  # fmt: skip
    assert edit_distance("a b c".split(), "a x c d".split()) == 2  # 1 sub + 1 ins
    assert edit_distance([], "a b".split()) == 2
    assert edit_distance("a b".split(), []) == 2
    assert edit_distance("kitten", "sitting") == 3


def test_word_error_rate_corpus_level():
    refs = ["the cat sat", "hello world"]
    hyps = ["The cat sat down.", "hello"]
    assert word_error_rate(refs, hyps) == pytest.approx(2 / 5)
    assert word_error_rate(["Hello, World!"], ["hello world"]) == 0.0
    with pytest.raises(ValueError):
        word_error_rate(["a"], [])
    with pytest.raises(ValueError, match="no words"):
        word_error_rate([""], ["a"])


def test_auto_bleu_hand_computed():
    toks = "a b a b c".split()
    # bigrams ab ba ab bc: ab@0 in rest (a b c) yes; ba@1 rest (a)+(b c) no; ab@2 left (a b) yes;
    # bc@3 left (a b a) no -> 2/4. unigrams: a,b,a,b repeat, c not -> 4/5.
    assert ngram_repetition(toks, 2) == 0.5
    assert ngram_repetition(toks, 1) == 0.8
    assert auto_bleu(toks, 2) == pytest.approx(0.65)
    assert auto_bleu(toks, 2, mean="geometric") == pytest.approx(math.sqrt(0.4))
    # the occurrence itself is cut out, so overlapping runs count as in fairseq's GSLM code
    assert ngram_repetition("a a a".split(), 2) == 0.0
    assert ngram_repetition("a a a a".split(), 2) == pytest.approx(2 / 3)
    assert auto_bleu(["a"], 2) == 0.0 and ngram_repetition([], 2) == 0.0
    assert ngram_repetition([1, 2, 3, 1, 2], 2) == pytest.approx(2 / 4)  # units work too


# ---------------------------------------------------------------- peers' definitions
def _fairseq_auto_bleu(sentence, weights, mean_mode="arithmetic"):
    """Re-implementation of fairseq ``examples/textless_nlp/gslm/metrics/asr_metrics/
    self_auto_bleu.py::auto_bleu`` (``nltk.ngrams`` written out as a zip)."""

    def ngrams(seq, n):
        return list(zip(*[seq[i:] for i in range(n)], strict=False))

    if len(sentence) <= 1:
        return 0
    big_n = len(weights)
    bleu_n = np.zeros([big_n])
    for n in range(big_n):
        targ_ngrams = ngrams(sentence, n + 1)
        for p in range(len(targ_ngrams)):
            left = sentence[:p]
            right = sentence[(p + n + 1) :]
            rest_ngrams = ngrams(left, n + 1) + ngrams(right, n + 1)
            bleu_n[n] += targ_ngrams[p] in rest_ngrams
        bleu_n[n] /= len(targ_ngrams)
    weights = np.array(weights)
    if mean_mode == "arithmetic":
        return (bleu_n * weights).sum()
    return (bleu_n**weights).prod()


def _slamkit_auto_bleu(text, n):
    """Re-implementation of slp-rl/slamkit ``slamkit/utils/calculation_utils.py``
    ``calc_ngram`` + ``calc_auto_bleu`` (NLTK's word tokenizer replaced by str.split: the
    inputs here are already word lists joined by spaces)."""
    tokens = text.split()
    ngrams = [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    res = 0
    if len(ngrams) == 0:
        return 0
    for i in range(len(ngrams)):
        left = ngrams[:i]
        right = ngrams[i + 1 :]
        if ngrams[i] in left or ngrams[i] in right:
            res += 1
    return res / len(ngrams)


def _made_up_sentences(seed=0, n=60):
    rng = np.random.default_rng(seed)
    vocab = ["a", "b", "c", "the", "cat", "sat"]
    out = [[], ["a"], ["a", "a"], "a a a".split(), "a a a a".split(), "a b a b c".split()]
    for _ in range(n):
        k = int(rng.integers(0, 14))
        out.append([vocab[int(i)] for i in rng.integers(0, int(rng.integers(1, 7)), size=k)])
    return out


def test_auto_bleu_gslm_equals_fairseq_self_auto_bleu():
    for words in _made_up_sentences():
        for weights in ((0.5, 0.5), (1 / 3, 1 / 3, 1 / 3)):
            if 1 < len(words) < len(weights):
                continue  # no n-gram of the top order: fairseq divides 0 / 0 (below)
            for mode in ("arithmetic", "geometric"):
                want = float(_fairseq_auto_bleu(words, weights, mode))
                assert auto_bleu_gslm(words, len(weights), mode) == want, (words, weights, mode)
    assert auto_bleu_gslm("a a a".split(), 2) == 0.5  # unigram term 1, bigram term 0
    assert auto_bleu is auto_bleu_gslm
    # the one place we differ: a 2-word text at order 3 is NaN there, its order-3 term 0 here
    with np.errstate(invalid="ignore"):
        assert math.isnan(_fairseq_auto_bleu(["a", "a"], (1 / 3,) * 3))
    assert auto_bleu_gslm(["a", "a"], 3) == pytest.approx(1 / 3)  # unigram term 1, others 0


def test_auto_bleu2_slamkit_equals_slamkit_calc_auto_bleu():
    for words in _made_up_sentences(1):
        text = " ".join(words)
        for n in (1, 2, 3):
            assert auto_bleu_slamkit(words, n) == _slamkit_auto_bleu(text, n), (text, n)
    # overlapping repeats count in SlamKit's definition (GSLM's bigram term: 0)
    assert auto_bleu_slamkit("a a a".split(), 2) == 1.0 == _slamkit_auto_bleu("a a a", 2)
    assert ngram_repetition("a a a".split(), 2) == 0.0
    # only bigrams: a sentence repeating words but no bigram scores 0 (GSLM: 0.5 from unigrams)
    assert auto_bleu_slamkit("a b a".split(), 2) == 0.0
    assert auto_bleu_gslm("a b a".split(), 2) == pytest.approx(1 / 3)
    assert auto_bleu_slamkit([], 2) == 0.0 == auto_bleu_slamkit(["a"], 2)


def _slamkit_genppl_from_losses(losses, mask):
    """Re-implementation of slp-rl/slamkit's GenPPL aggregation after the cross entropy:
    ``slamkit/utils/calculation_utils.py::calc_nll`` (``(losses * mask).sum(-1) /
    mask.sum(-1)``, len_norm=True) per transcript, then
    ``slamkit/metric/generative_metric.py::asr_perplexity``
    (``torch.stack(nlls).mean().exp().item()``)."""
    masked_losses = losses * mask
    ll = masked_losses.sum(dim=-1)
    nlls = list(ll / mask.sum(dim=-1))
    return torch.stack(nlls).mean().exp().item()


def test_genppl_slamkit_equals_slamkit_aggregation():
    rng = np.random.default_rng(0)
    lengths = [1, 3, 8, 5, 2, 8]
    # made-up per-token NLLs on a 1/64 grid: every sum below is exact in float64
    losses = torch.tensor(rng.integers(1, 400, size=(6, 8)) / 64.0, dtype=torch.float64)
    mask = torch.tensor([[1.0] * n + [0.0] * (8 - n) for n in lengths], dtype=torch.float64)
    scores = [TextScore(float((losses[i] * mask[i]).sum()), n) for i, n in enumerate(lengths)]
    assert genppl_slamkit(scores) == _slamkit_genppl_from_losses(losses, mask)
    # and it is not the token-weighted perplexity (long transcripts weigh more there)
    assert genppl_slamkit(scores) != corpus_perplexity(scores)
    assert genppl_slamkit([TextScore(2.0, 1), TextScore(4.0, 4)]) == pytest.approx(math.exp(1.5))
    assert corpus_perplexity([TextScore(2.0, 1), TextScore(4.0, 4)]) == pytest.approx(math.exp(1.2))
    assert genppl_slamkit([TextScore(0.0, 0)]) is None


def test_genppl_slamkit_through_the_text_lm_matches_slamkit_batching(tiny_llama):
    """SlamKit scores a padded batch (slamkit/metric/metric_utils.py::get_llm_preplexity:
    labels = input ids, pad -> -100, shifted, ``calc_nll`` with the mask); we score one text
    at a time. Same numbers up to float32 rounding."""
    model, tok = _tiny_text_lm(tiny_llama)
    texts = ["the cat sat", "a", "hello there world again"]
    scorer = TextPerplexity((model, tok))
    ours = genppl_slamkit([scorer.score(t) for t in texts])
    ids = [[0] + tok(t)["input_ids"] for t in texts]  # 0: the start token (BOS in SlamKit)
    width = max(map(len, ids))
    input_ids = torch.tensor([x + [27] * (width - len(x)) for x in ids])
    attention = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
    labels = input_ids.clone()
    labels[attention == 0] = -100
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention).logits
    shift_logits, shift_labels = logits[..., :-1, :], labels[..., 1:]
    mask = shift_labels.ne(-100)
    losses = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1).clamp(min=0),
        reduction="none",
    ).view(*shift_labels.size())  # fmt: skip
    theirs = _slamkit_genppl_from_losses(losses.double(), mask.double())
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_eval_report_names_each_generation_metric():
    from twistlm.eval.report import markdown_report

    gen = {"genppl_slamkit": 41.5, "auto_bleu2_slamkit": 0.5, "ppl": 12.5,
           "settings": {"score": "continuation"}}  # fmt: skip
    md = markdown_report({"score_rule": "mean", "benchmarks": {}, "generation": gen})
    assert "| `genppl_slamkit` | 41.5 | SlamKit GenPPL" in md
    assert "| `auto_bleu2_slamkit` | 0.5 |" in md
    assert "| `text_ppl_token_weighted_continuation` | 12.5 |" in md  # read from the old name
    assert "| `auto_bleu2_gslm_continuation` | – |" in md


def test_generation_metric_reads_old_names():
    old = {"ppl": 12.5, "auto_bleu2": 0.25, "settings": {"score": "continuation"}}
    assert generation_metric(old, "text_ppl_token_weighted_continuation") == 12.5
    assert generation_metric(old, "auto_bleu2_gslm_continuation") == 0.25
    assert generation_metric(old, "genppl_slamkit") is None
    # old numbers over prompt + continuation are not the continuation metrics
    full = {"ppl": 12.5, "settings": {"score": "full"}}
    assert generation_metric(full, "text_ppl_token_weighted_continuation") is None
    new = {"text_ppl_token_weighted_continuation": 3.0, "ppl": 9.0}
    assert generation_metric(new, "text_ppl_token_weighted_continuation") == 3.0
    assert generation_metric(None, "genppl_slamkit") is None


class _CharTokenizer:
    """Minimal HF-like tokenizer: one id per character (a-z and space), id 0 = document start."""

    def get_vocab(self):
        return {"<|endoftext|>": 0}

    bos_token_id = eos_token_id = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [1 + (ord(c) - 96 if c.isalpha() else 0) for c in text.lower()]}


def _tiny_text_lm(tiny_llama):
    """(model, tokenizer): a 1-layer LLaMA over the 28 character ids (``tiny_llama``: the
    conftest fixture)."""
    return tiny_llama(28, hidden=16, layers=1, heads=2, kv_heads=1, seed=0), _CharTokenizer()


def test_text_perplexity_matches_manual_computation(tiny_llama):
    model, tok = _tiny_text_lm(tiny_llama)
    scorer = TextPerplexity((model, tok))
    s = scorer.score("ab c")
    ids = torch.tensor([[0, 2, 3, 1, 4]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
    manual = -sum(float(logp[i, ids[0, i + 1]]) for i in range(4))
    assert s.n_tokens == 4 and s.nll == pytest.approx(manual, rel=1e-5)
    assert corpus_perplexity([TextScore(2.0, 1), TextScore(4.0, 3)]) == pytest.approx(math.exp(1.5))
    assert corpus_perplexity([TextScore(0.0, 0)]) is None


def test_find_references_manifest_and_sidecar(tmp_path):
    (tmp_path / "corpus" / "wavs").mkdir(parents=True)
    lines = [{"id": "u1", "path": "wavs/u1.wav", "text": "hello there"}]
    (tmp_path / "corpus" / "manifest.jsonl").write_text(json.dumps(lines[0]) + "\n")
    (tmp_path / "x.txt").write_text("side car\n")
    refs = find_references(
        [("u1", str(tmp_path / "corpus" / "wavs" / "u1.wav")), ("x", str(tmp_path / "x.wav")),
         ("y", str(tmp_path / "y.wav")), ("z", None)]
    )  # fmt: skip
    assert refs == {"u1": "hello there", "x": "side car"}


def _fake_asr():
    calls = []

    def asr(wav):
        calls.append(len(wav))
        return "the cat sat on the mat the cat" if len(wav) > 16000 else "hello"

    return asr, calls


def test_evaluate_generation_end_to_end_with_resume(tmp_path, tiny_llama, tiny_speech_lm):
    from test_continue import build_tiny_pipeline, speechlike_wav

    tok, voc, lm = build_tiny_pipeline(tiny_speech_lm, tmp_path / "m")
    wavs = tmp_path / "held"
    keys = []
    for i in range(3):
        write_wav(wavs / f"u{i}.wav", speechlike_wav(3.5, seed=i))
        (wavs / f"u{i}.txt").write_text("the cat sat on the mat the cat")
        keys.append(f"u{i}")
    (wavs / "bad.wav").write_bytes(b"junk")
    prompts = sorted(wavs.glob("*.wav"))  # bad.wav first
    asr, calls = _fake_asr()
    out = tmp_path / "gen"
    res = evaluate_generation(
        lm, tok, voc, prompts, out, asr_model=asr, text_lm=_tiny_text_lm(tiny_llama),
        max_new_units=30, batch_size=2, n_samples=2, progress=False,
    )  # fmt: skip
    assert res.n_prompts == 3 and res.n_failed == 1
    assert "bad.wav" in res.errors[0]["path"]
    assert json.loads((out / "errors.jsonl").read_text().splitlines()[0])["path"].endswith(
        "bad.wav"
    )
    assert [r["key"] for r in res.records] == keys
    assert all(len(r["continuation_units"]) == 30 for r in res.records)
    # the fake ASR returns the reference for all long audio: resynth and original WER are 0
    assert res.resynth_wer == 0.0 and res.original_wer == 0.0 and res.n_references == 3
    # the same text metrics over the real speech's transcripts (all the reference here)
    assert res.auto_bleu2_gslm_resynth == pytest.approx(auto_bleu_gslm(normalize_text(
        "the cat sat on the mat the cat"), 2))  # fmt: skip
    assert res.auto_bleu2_gslm_original == res.auto_bleu2_gslm_resynth
    assert res.text_ppl_token_weighted_resynth == pytest.approx(
        res.text_ppl_token_weighted_continuation
    )  # same text, same token-weighted perplexity
    words = normalize_text("the cat sat on the mat the cat")
    # every continuation is > 1 s (30 units of >= 1 frame of 640 samples): the long transcript
    assert all(r["transcript"] == "the cat sat on the mat the cat" for r in res.records)
    assert all(r["continuation_transcript"] == r["transcript"] for r in res.records)
    assert all(r["full_transcript"] == "the cat sat on the mat the cat" for r in res.records)
    assert res.auto_bleu2_gslm_continuation == pytest.approx(auto_bleu_gslm(words, 2))
    assert res.bigram_repetition_gslm_continuation == pytest.approx(ngram_repetition(words, 2))
    assert res.auto_bleu2_slamkit == auto_bleu_slamkit(words, 2) == 2 / 7  # "the cat" twice
    ppl = res.text_ppl_token_weighted_continuation
    assert ppl is not None and ppl > 1
    # all transcripts are the same text: both perplexity definitions agree here
    assert res.genppl_slamkit == pytest.approx(ppl)
    assert res.n_empty_full_transcripts == 0
    unit_rep = np.mean([ngram_repetition(r["continuation_units"], 2) for r in res.records])
    assert res.unit_bigram_repetition == pytest.approx(unit_rep)
    assert len(res.samples) == 2 and all((out / "samples" / f"{k}.wav").exists() for k in keys[:2])
    saved = json.loads((out / "generation.json").read_text())
    assert saved["n_prompts"] == 3 and saved["settings"]["score"] == "continuation"
    for name in ("text_ppl_token_weighted_continuation", "auto_bleu2_gslm_continuation",
                 "genppl_slamkit", "auto_bleu2_slamkit"):  # fmt: skip
        assert saved[name] == getattr(res, name)
    assert "ppl" not in saved and "auto_bleu2" not in saved  # the ambiguous names are gone
    # rerun: all prompts reused from records.jsonl, no ASR call, same numbers
    n_calls = len(calls)
    res2 = evaluate_generation(
        lm, tok, voc, prompts, out, asr_model=asr, text_lm=_tiny_text_lm(tiny_llama),
        max_new_units=30, batch_size=2, n_samples=2, progress=False,
    )  # fmt: skip
    assert len(calls) == n_calls
    assert res2.text_ppl_token_weighted_continuation == pytest.approx(ppl)
    assert res2.genppl_slamkit == pytest.approx(res.genppl_slamkit) and res2.n_prompts == 3
    # a subset with the same settings reuses its records and reports only that subset
    sub = evaluate_generation(
        lm, tok, voc, prompts[2:], out, asr_model=asr, text_lm=_tiny_text_lm(tiny_llama),
        max_new_units=30, batch_size=2, n_samples=2, progress=False,
    )  # fmt: skip
    assert len(calls) == n_calls and [r["key"] for r in sub.records] == keys[1:]
    # other settings (seed) -> a fresh run
    res3 = evaluate_generation(
        lm, tok, voc, prompts[1:2], out, asr_model=asr, text_lm=_tiny_text_lm(tiny_llama),
        max_new_units=30, seed=1, resynth=False, score="full", progress=False,
    )  # fmt: skip
    # continuation and prompt + continuation are both transcribed, whatever `score` is
    assert len(calls) == n_calls + 2 and res3.resynth_wer is None
    r3 = res3.records[0]
    assert r3["transcript"] == r3["full_transcript"] and calls[-1] > calls[-2]
    # seconds: each prompt's own units per second sets its length
    res4 = evaluate_generation(
        lm, tok, voc, prompts[1:3], None, asr_model=asr, text_lm=_tiny_text_lm(tiny_llama),
        seconds=1.0, resynth=False, progress=False,
    )  # fmt: skip
    for r in res4.records:
        assert len(r["continuation_units"]) == round(len(r["prompt_units"]) / 3.0)
    assert res3.records[0]["continuation_units"] != res.records[0]["continuation_units"]


def test_generate_config_and_keywords_give_the_same_run_as_twistlm_continue(
    tmp_path, tiny_llama, tiny_speech_lm
):
    """GenerateConfig replaces the keyword list (which still works); the continuations are the
    ones `twistlm continue` samples for the same prompt, seed and RNG index."""
    from test_continue import build_tiny_pipeline, speechlike_wav

    from twistlm.eval.generation import GenerateConfig
    from twistlm.lm.continuation import continue_prompt

    with pytest.raises(ValueError, match="score must be"):
        GenerateConfig(score="both")
    with pytest.raises(ValueError, match="not both"):
        GenerateConfig(seconds=1.0, max_new_units=3)
    tok, voc, lm = build_tiny_pipeline(tiny_speech_lm, tmp_path)
    prompts = [("a", speechlike_wav(3.5, seed=0)), ("b", speechlike_wav(3.2, seed=1))]
    asr, _ = _fake_asr()
    opts = dict(asr_model=asr, max_new_units=8, resynth=False, progress=False)
    cfg = GenerateConfig(text_lm=_tiny_text_lm(tiny_llama), **opts)
    by_config = evaluate_generation(lm, tok, voc, prompts, config=cfg)
    by_keywords = evaluate_generation(
        lm, tok, voc, prompts, text_lm=_tiny_text_lm(tiny_llama), **opts
    )
    units = [r["continuation_units"] for r in by_config.records]
    assert units == [r["continuation_units"] for r in by_keywords.records]
    assert by_config.settings["run_id"] == by_keywords.settings["run_id"]
    ref = continue_prompt(prompts[0][1], lm, tok, voc, max_new_units=8, seed=0)
    assert (
        ref.units.tolist() == units[0]
        and ref.prompt_units.tolist() == (by_config.records[0]["prompt_units"])
    )


@pytest.mark.slow
@pytest.mark.tts
def test_real_whisper_and_smollm2(tmp_path):
    """Whisper tiny.en transcribes a flite sentence; SmolLM2 prefers it to shuffled words."""
    import shutil
    import subprocess

    from twistlm.audio import load_audio
    from twistlm.eval.textmetrics import whisper_transcriber

    if shutil.which("flite") is None:
        pytest.skip("flite not installed")
    text = "the quick brown fox jumps over the lazy dog"
    wav_path = tmp_path / "s.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav_path)], check=True)
    asr = whisper_transcriber()
    hyp = asr(load_audio(wav_path))
    assert word_error_rate([text], [hyp]) <= 0.25
    scorer = TextPerplexity()
    good = scorer.score(text)
    bad = scorer.score("dog the over lazy jumps fox the quick brown")
    assert good.nll / good.n_tokens < bad.nll / bad.n_tokens


def test_prompt_keys_are_unique_and_bad_items_reported():
    from pathlib import Path

    from twistlm.eval.generation import prompt_entries

    entries = prompt_entries([Path("a/x.wav"), Path("b/x.wav"), ("k", np.zeros(3)), 5])
    assert [e[0] for e in entries[:3]] == ["x", "x#1", "k"]
    assert entries[1][1] == "b/x.wav" and isinstance(entries[3], TypeError)
