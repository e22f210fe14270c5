import os
import tempfile

# Tests never touch the network and stay small on a 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as twistlm/__init__.py, before torch loads
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# caches (units, converted GGUF text LMs) go to a per-session folder, not the user's ~/.cache
os.environ.setdefault("TWISTLM_CACHE", tempfile.mkdtemp(prefix="twistlm-test-cache-"))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------- tiny models (factory fixtures)
# Every tiny HF model / SpeechLM the tests build comes from one of the builders below, through
# the session-scoped fixture of the same name (a fixture returns the builder; a test calls it with
# its own sizes). ``seed=None`` draws the weights from the current RNG stream (which ``_seed``
# resets to 0 at the start of each test); an int reseeds torch first. A config value left at None
# is not passed, so the HF config class keeps its own default.


def _config_kw(**kw):
    return {k: v for k, v in kw.items() if v is not None}


def _finish(model, init_std=None):
    """``init_std``: redraw every matrix from N(0, init_std) (larger than HF's 0.02 init, so
    scores differ clearly between inputs)."""
    if init_std is not None:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0, init_std)
    return model.eval()


def build_tiny_llama(
    vocab_size,
    hidden=32,
    layers=2,
    heads=4,
    kv_heads=None,
    intermediate=None,
    max_positions=None,
    tie=None,
    seed=None,
    init_std=None,
    **config_kw,
):
    """A random LlamaForCausalLM (eval mode); ``intermediate`` defaults to ``2 * hidden``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if seed is not None:
        torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        **_config_kw(
            num_key_value_heads=kv_heads,
            max_position_embeddings=max_positions,
            tie_word_embeddings=tie,
        ),
        **config_kw,
    )
    return _finish(LlamaForCausalLM(cfg), init_std)


def build_tiny_opt(
    vocab_size, hidden=32, layers=2, heads=4, ffn=None, max_positions=None, seed=None, **config_kw
):
    """A random OPTForCausalLM (eval mode); ``ffn_dim`` defaults to ``2 * hidden`` and
    ``word_embed_proj_dim`` to ``hidden``."""
    from transformers import OPTConfig, OPTForCausalLM

    if seed is not None:
        torch.manual_seed(seed)
    config_kw.setdefault("word_embed_proj_dim", hidden)
    cfg = OPTConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        ffn_dim=ffn or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        **_config_kw(max_position_embeddings=max_positions),
        **config_kw,
    )
    return _finish(OPTForCausalLM(cfg))


def build_tiny_gpt2(
    vocab_size, hidden=32, layers=2, heads=4, max_positions=None, seed=None, **config_kw
):
    """A random GPT2LMHeadModel (eval mode)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if seed is not None:
        torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=vocab_size,
        n_embd=hidden,
        n_layer=layers,
        n_head=heads,
        **_config_kw(n_positions=max_positions),
        **config_kw,
    )
    return _finish(GPT2LMHeadModel(cfg))


def build_tiny_hubert(hz=50, layers=3, conv_layers=None, seed=None, **config_kw):
    """A random HubertModel (eval mode), 16 wide, with base-like conv geometry: hop 320 (50 Hz)
    or 640 (25 Hz, one extra conv), 8 channels per conv; ``conv_layers``: explicit
    ``[(dim, kernel, stride), ...]`` instead."""
    from transformers import HubertConfig, HubertModel

    if seed is not None:
        torch.manual_seed(seed)
    if conv_layers is None:
        strides = (5, 2, 2, 2, 2, 2, 2) + ((2,) if hz == 25 else ())
        kernels = (10, 3, 3, 3, 3, 2, 2) + ((2,) if hz == 25 else ())
        dims = (8,) * len(strides)
    else:
        dims, kernels, strides = zip(*conv_layers, strict=True)
    cfg = HubertConfig(
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=dims,
        conv_stride=strides,
        conv_kernel=kernels,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        **config_kw,
    )
    return _finish(HubertModel(cfg))


def build_tiny_speech_lm(n_units, meta=None, seed=0):
    """A random 2-layer LLaMA SpeechLM (twistlm unit vocabulary) for end-to-end tests."""
    from twistlm.lm.model import SpeechLM
    from twistlm.lm.vocab import UnitVocab

    vocab = UnitVocab.twistlm(n_units)
    model = build_tiny_llama(
        vocab.vocab_size, hidden=32, layers=2, heads=4, kv_heads=2, max_positions=512, seed=seed
    )
    return SpeechLM(model, vocab, meta or {})


def build_tiny_text_lm_dir(path, layers=2, hidden=32, seed=0):
    """Write a random tiny LlamaForCausalLM with a real (trained here) BPE tokenizer to
    ``path``; return ``path``."""
    from pathlib import Path

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

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
    model = build_tiny_llama(
        len(hf_tok), hidden=hidden, layers=layers, heads=4, kv_heads=2, max_positions=1024,
        tie=True, seed=seed, bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id,
    )  # fmt: skip
    model.save_pretrained(path)
    hf_tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama():
    """``tiny_llama(vocab_size, hidden=32, layers=2, heads=4, kv_heads=None, intermediate=None,
    max_positions=None, tie=None, seed=None, init_std=None, **config_kw)`` -> LlamaForCausalLM."""
    return build_tiny_llama


@pytest.fixture(scope="session")
def tiny_opt():
    """``tiny_opt(vocab_size, hidden=32, layers=2, heads=4, ffn=None, max_positions=None,
    seed=None, **config_kw)`` -> OPTForCausalLM."""
    return build_tiny_opt


@pytest.fixture(scope="session")
def tiny_gpt2():
    """``tiny_gpt2(vocab_size, hidden=32, layers=2, heads=4, max_positions=None, seed=None,
    **config_kw)`` -> GPT2LMHeadModel."""
    return build_tiny_gpt2


@pytest.fixture(scope="session")
def tiny_hubert():
    """``tiny_hubert(hz=50, layers=3, conv_layers=None, seed=None, **config_kw)`` -> HubertModel."""
    return build_tiny_hubert


@pytest.fixture(scope="session")
def tiny_speech_lm():
    """``tiny_speech_lm(n_units, meta=None, seed=0)`` -> a 2-layer LLaMA SpeechLM."""
    return build_tiny_speech_lm


@pytest.fixture(scope="session")
def tiny_text_lm_dir():
    """``tiny_text_lm_dir(path, layers=2, hidden=32, seed=0)`` -> ``path`` holding a tiny LLaMA
    text LM and its BPE tokenizer."""
    return build_tiny_text_lm_dir
