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
