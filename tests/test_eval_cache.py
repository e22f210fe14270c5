"""Unit cache: tokenizer identity, utterance identity, persistence, resume, damaged shards."""

import torch

from twistlm.eval.cache import UnitCache, tokenizer_fingerprint, utterance_key


def test_tokenizer_fingerprint_tracks_settings_files_and_centroids(tmp_path):
    info = {"name": "logmel25hz-km8", "n_units": 8}
    c = torch.arange(16.0).reshape(8, 2)
    assert tokenizer_fingerprint(info) == tokenizer_fingerprint(dict(info))
    assert tokenizer_fingerprint(info) != tokenizer_fingerprint({**info, "dedup": False})
    assert tokenizer_fingerprint(info, centroids=c) != tokenizer_fingerprint(info, centroids=c + 1)
    d = tmp_path / "tok"
    d.mkdir()
    (d / "centroids.safetensors").write_bytes(b"A" * 10)
    a = tokenizer_fingerprint(info, d)
    (d / "centroids.safetensors").write_bytes(b"B" * 10)
    assert tokenizer_fingerprint(info, d) != a


def test_utterance_key_tracks_file_changes_and_bytes(tmp_path):
    f = tmp_path / "a.wav"
    f.write_bytes(b"x" * 10)
    k1 = utterance_key("a", str(f), None)
    assert utterance_key("a", str(f), None) == k1
    assert utterance_key("b", str(f), None) != k1  # the benchmark key is part of it
    f.write_bytes(b"x" * 11)
    assert utterance_key("a", str(f), None) != k1
    assert utterance_key("a", None, b"123") == utterance_key("a", None, b"123")
    assert utterance_key("a", None, b"123") != utterance_key("a", None, b"124")


def test_cache_persists_resumes_and_skips_damaged_shards(tmp_path):
    c = UnitCache(tmp_path, "f" * 64, {"name": "t"}, flush_every=2)
    c.put("k1", torch.tensor([1, 2, 3]), None, 0.1)
    c.put("k2", torch.tensor([4]), torch.tensor([3]), 0.2)  # flushed here (flush_every=2)
    c.put("k3", torch.tensor([5, 6]), None, 0.3)  # pending only: lost if the run dies now
    again = UnitCache(tmp_path, "f" * 64)
    assert set(again._units) == {"k1", "k2"} and again.get("k1").tolist() == [1, 2, 3]
    c.flush()
    (c.dir / "shard-00000-00099.parquet").write_bytes(b"garbage")
    third = UnitCache(tmp_path, "f" * 64)
    assert len(third) == 3 and third.get("k3").tolist() == [5, 6] and "k4" not in third
    assert UnitCache(tmp_path, "e" * 64).get("k1") is None  # other tokenizer, other folder
