"""Tiny models for offline end-to-end tests: a text LM dir (LLaMA + BPE tokenizer), a SpeechLM."""

from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_text_lm(path: str | Path, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """Write a random tiny LlamaForCausalLM with a real (trained here) BPE tokenizer to ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = ["the cat sat on the mat", "a dog ran to the park", "she reads a book every day"] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(text, trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<|endoftext|>"
    )
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(path)
    hf_tok.save_pretrained(path)
    return path


def tiny_speech_lm(n_units: int, meta: dict | None = None, seed: int = 0):
    """A random 2-layer LLaMA SpeechLM (twistlm unit vocabulary) for end-to-end tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from twistlm.lm.model import SpeechLM
    from twistlm.lm.vocab import UnitVocab

    torch.manual_seed(seed)
    vocab = UnitVocab.twistlm(n_units)
    cfg = LlamaConfig(
        vocab_size=vocab.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    return SpeechLM(LlamaForCausalLM(cfg).eval(), vocab, meta or {})
