"""Generation metrics: WER and auto-BLEU on hand-computed cases, perplexity against a manual
computation, reference discovery, and evaluate_generation end to end (fake ASR, tiny models)
including bad prompts and resume. Real Whisper + SmolLM2 pieces are in one slow test."""

import json
import math

import numpy as np
import pytest
import torch

from twistlm.audio import write_wav
from twistlm.eval.generation import (
    TextPerplexity,
    TextScore,
    auto_bleu,
    corpus_perplexity,
    edit_distance,
    evaluate_generation,
    find_references,
    ngram_repetition,
    normalize_text,
    word_error_rate,
)


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


class _CharTokenizer:
    """Minimal HF-like tokenizer: one id per character (a-z and space), id 0 = document start."""

    def get_vocab(self):
        return {"<|endoftext|>": 0}

    bos_token_id = eos_token_id = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [1 + (ord(c) - 96 if c.isalpha() else 0) for c in text.lower()]}


def _tiny_text_lm():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=28, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)  # fmt: skip
    return LlamaForCausalLM(cfg).eval(), _CharTokenizer()


def test_text_perplexity_matches_manual_computation():
    model, tok = _tiny_text_lm()
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


def test_evaluate_generation_end_to_end_with_resume(tmp_path):
    from test_continue import build_tiny_pipeline, speechlike_wav

    tok, voc, lm = build_tiny_pipeline(tmp_path / "m")
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
        lm, tok, voc, prompts, out, asr_model=asr, text_lm=_tiny_text_lm(), max_new_units=30,
        batch_size=2, n_samples=2, progress=False,
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
    words = normalize_text("the cat sat on the mat the cat")
    # every continuation is > 1 s (30 units of >= 1 frame of 640 samples): the long transcript
    assert all(r["transcript"] == "the cat sat on the mat the cat" for r in res.records)
    assert res.auto_bleu2 == pytest.approx(auto_bleu(words, 2))
    assert res.bigram_repetition == pytest.approx(ngram_repetition(words, 2))
    assert res.ppl is not None and res.ppl > 1
    unit_rep = np.mean([ngram_repetition(r["continuation_units"], 2) for r in res.records])
    assert res.unit_bigram_repetition == pytest.approx(unit_rep)
    assert len(res.samples) == 2 and all((out / "samples" / f"{k}.wav").exists() for k in keys[:2])
    saved = json.loads((out / "generation.json").read_text())
    assert saved["n_prompts"] == 3 and saved["settings"]["score"] == "continuation"
    # rerun: all prompts reused from records.jsonl, no ASR call, same numbers
    n_calls = len(calls)
    res2 = evaluate_generation(
        lm, tok, voc, prompts, out, asr_model=asr, text_lm=_tiny_text_lm(), max_new_units=30,
        batch_size=2, n_samples=2, progress=False,
    )  # fmt: skip
    assert len(calls) == n_calls
    assert res2.ppl == pytest.approx(res.ppl) and res2.n_prompts == 3
    # a subset with the same settings reuses its records and reports only that subset
    sub = evaluate_generation(
        lm, tok, voc, prompts[2:], out, asr_model=asr, text_lm=_tiny_text_lm(),
        max_new_units=30, batch_size=2, n_samples=2, progress=False,
    )  # fmt: skip
    assert len(calls) == n_calls and [r["key"] for r in sub.records] == keys[1:]
    # other settings (seed) -> a fresh run
    res3 = evaluate_generation(
        lm, tok, voc, prompts[1:2], out, asr_model=asr, text_lm=_tiny_text_lm(),
        max_new_units=30, seed=1, resynth=False, score="full", progress=False,
    )  # fmt: skip
    assert len(calls) == n_calls + 1 and res3.resynth_wer is None
    # seconds: each prompt's own units per second sets its length
    res4 = evaluate_generation(
        lm, tok, voc, prompts[1:3], None, asr_model=asr, text_lm=_tiny_text_lm(), seconds=1.0,
        resynth=False, progress=False,
    )  # fmt: skip
    for r in res4.records:
        assert len(r["continuation_units"]) == round(len(r["prompt_units"]) / 3.0)
    assert res3.records[0]["continuation_units"] != res.records[0]["continuation_units"]


@pytest.mark.slow
@pytest.mark.tts
def test_real_whisper_and_smollm2(tmp_path):
    """Whisper tiny.en transcribes a flite sentence; SmolLM2 prefers it to shuffled words."""
    import shutil
    import subprocess

    from twistlm.audio import load_audio
    from twistlm.eval.generation import whisper_transcriber

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

    from twistlm.eval.generation import _prompt_entries

    entries = _prompt_entries([Path("a/x.wav"), Path("b/x.wav"), ("k", np.zeros(3)), 5])
    assert [e[0] for e in entries[:3]] == ["x", "x#1", "k"]
    assert entries[1][1] == "b/x.wav" and isinstance(entries[3], TypeError)
