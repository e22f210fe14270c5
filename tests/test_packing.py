"""data/packing.py: BOS/EOS wrap, packing into fixed blocks, exact inverse."""

import numpy as np
import pytest

from twistlm.data.packing import lm_targets, pack, unit_targets, unpack, wrap
from twistlm.lm.vocab import UnitVocab

V = UnitVocab.twistlm(10)


def _utts(seed=0, n=17):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 10, size=int(rng.integers(0, 23))) for _ in range(n)]


def test_wrap_adds_boundaries_and_offset():
    assert wrap(np.array([0, 9, 4]), V).tolist() == [1, 3, 12, 7, 2]
    assert wrap(np.array([], np.int64), V).tolist() == [1, 2]
    assert wrap(np.array([2, 3]), UnitVocab.slamkit(10)).tolist() == [1, 4, 5, 1]
    with pytest.raises(ValueError, match="unit ids"):
        wrap(np.array([10]), V)


@pytest.mark.parametrize("block", [2, 7, 64, 1000])
def test_pack_every_unit_once_in_order_with_boundaries(block):
    utts = _utts()
    p = pack(utts, V, block)
    total = sum(u.size + 2 for u in utts)
    assert p.ids.shape == (-(-total // block), block) and p.n_tokens == total
    flat, seg = p.ids.reshape(-1), p.segment.reshape(-1)
    # the stream is exactly the wrapped utterances back to back, then padding
    assert flat[:total].tolist() == np.concatenate([wrap(u, V) for u in utts]).tolist()
    assert (flat[total:] == V.pad_id).all() and (seg[total:] == -1).all()
    # boundaries: each utterance's span starts with BOS and ends with EOS
    for i, u in enumerate(utts):
        span = flat[seg == i]
        assert span[0] == V.bos_id and span[-1] == V.eos_id and span.size == u.size + 2
    assert np.all(np.diff(seg[:total]) >= 0)
    back = unpack(p, V)
    assert len(back) == len(utts) and all(
        np.array_equal(a, b) for a, b in zip(back, utts, strict=True)
    )


def test_pack_empty_and_targets():
    p = pack([], V, 8)
    assert p.ids.shape == (0, 8) and p.n_tokens == 0
    ids = np.array([[1, 3, 4, 2, 0, 0]])
    assert unit_targets(ids, V).tolist() == [[-100, 3, 4, -100, -100, -100]]
    assert lm_targets(ids, V).tolist() == [[1, 3, 4, 2, -100, -100]]
    with pytest.raises(ValueError, match="block_size"):
        pack(_utts(), V, 1)


# ---------------------------------------------------------------- document masks
def test_document_index_and_positions_restart_at_each_utterance():
    from twistlm.data.packing import document_index, document_positions

    utts = [np.array([1, 2, 3]), np.array([4]), np.array([5, 6, 7, 8, 9, 0, 1])]
    p = pack(utts, V, block_size=8)  # BOS 1 2 3 EOS BOS 4 EOS | BOS 5 6 7 8 9 0 1 | EOS pad..
    doc = document_index(p.ids, V)
    pos = document_positions(doc)
    np.testing.assert_array_equal(doc[0], [0, 0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(pos[0], [0, 1, 2, 3, 4, 0, 1, 2])
    np.testing.assert_array_equal(pos[1], np.arange(8))
    # the carried-over EOS is a document of its own at position 0; padding is -1 / 0
    np.testing.assert_array_equal(doc[2], [0, -1, -1, -1, -1, -1, -1, -1])
    np.testing.assert_array_equal(pos[2], np.zeros(8))
    # without BOS (TWIST convention has neither): refused with a clear message
    with pytest.raises(ValueError, match="stream"):
        document_index(p.ids, UnitVocab.twist(10, offset=4, pad_id=1, vocab_size=14))


def test_document_mask_is_causal_block_diagonal():
    import torch

    from twistlm.data.packing import document_attention_mask

    doc = np.array([[0, 0, 1, 1, 1, -1]])
    m = document_attention_mask(doc)[0, 0] == 0  # allowed
    want = np.zeros((6, 6), bool)
    for i in range(6):
        for j in range(6):
            want[i, j] = (j <= i and doc[0, i] == doc[0, j] and doc[0, i] >= 0) or i == j
    np.testing.assert_array_equal(m.numpy(), want)
    assert document_attention_mask(doc).dtype == torch.float32


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_document_masked_block_equals_each_utterance_alone(arch, tiny_llama, tiny_opt):
    """Per-token losses of a packed, document-masked block equal each utterance run alone
    (fp32, 1e-4), OPT's learned positions included; stream packing does not."""
    import torch

    from twistlm.data.packing import attention_inputs

    vocab = UnitVocab.twistlm(20)
    if arch == "llama":
        model = tiny_llama(vocab.vocab_size, max_positions=64, seed=0)
    else:
        model = tiny_opt(vocab.vocab_size, max_positions=64, seed=0, pad_token_id=vocab.pad_id)
    model.eval()
    rng = np.random.default_rng(0)
    utts = [rng.integers(0, 20, size=n) for n in (5, 9, 3, 7)]
    p = pack(utts, vocab, block_size=40)  # all four in one block, padding after
    ids = torch.from_numpy(p.ids)

    def nll(logits, x):
        return torch.nn.functional.cross_entropy(logits[0, :-1].float(), x[0, 1:], reduction="none")

    with torch.no_grad():
        packed = nll(model(input_ids=ids, **attention_inputs(ids, vocab)).logits, ids)
        stream = nll(model(input_ids=ids, **attention_inputs(ids, vocab, "stream")).logits, ids)
        start = 0
        for u in utts:
            x = torch.from_numpy(wrap(u, vocab))[None]
            alone = nll(model(input_ids=x).logits, x)
            n = x.shape[1]
            # tokens inside the utterance (the prediction of the next utterance's BOS aside)
            torch.testing.assert_close(packed[start : start + n - 1], alone, atol=1e-4, rtol=0)
            if start > 0:  # with stream packing the later utterances see the earlier ones
                assert (stream[start : start + n - 1] - alone).abs().max() > 1e-3
            start += n
