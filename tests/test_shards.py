"""data/shards.py: the one strict reader (and writer) of a unit folder's metadata."""

import json

import pytest

from twistlm.data.shards import (
    TOKENIZER_IDENTITY,
    TOKENIZER_INFO,
    read_shard_metadata,
    shard_name,
    write_shard,
    write_shard_metadata,
)

INFO = {"name": "t", "n_units": 12, "hop": 320, "frame_rate": 50.0, "dedup": True}


def test_reads_info_and_identity_from_folder_or_shard_file(tmp_path):
    ident = {"name": "t", "fingerprint": "ab" * 32, "path": str(tmp_path / "tok")}
    write_shard_metadata(tmp_path, INFO, ident)
    write_shard(
        tmp_path / shard_name(0, 0), [{"id": "a", "units": [1], "durations": [1], "seconds": 0.1}]
    )
    for root in (tmp_path, tmp_path / shard_name(0, 0)):
        meta = read_shard_metadata(root)
        assert meta.info == INFO and meta.identity == ident and meta.n_units == 12
        assert meta.folder == tmp_path
    (tmp_path / TOKENIZER_IDENTITY).unlink()  # folders tokenized before the identity existed
    assert read_shard_metadata(tmp_path).identity is None


def test_missing_or_malformed_metadata_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{TOKENIZER_INFO} missing.*twistlm tokenize"):
        read_shard_metadata(tmp_path)
    path = tmp_path / TOKENIZER_INFO
    for text, msg in [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"hop": 320}), "no 'n_units' field"),
        (json.dumps({"n_units": "12"}), "'n_units' must be a positive integer"),
        (json.dumps({"n_units": 0}), "'n_units' must be a positive integer"),
        (json.dumps({"n_units": 12, "hop": 0.5}), "'hop' must be a positive integer"),
    ]:
        path.write_text(text)
        with pytest.raises(ValueError, match=msg) as e:
            read_shard_metadata(tmp_path)
        assert str(path) in str(e.value)
    path.write_text(json.dumps({"n_units": 12}))
    assert read_shard_metadata(tmp_path).n_units == 12
    with pytest.raises(ValueError, match="no 'hop' field"):
        read_shard_metadata(tmp_path, require=("hop",))
    (tmp_path / TOKENIZER_IDENTITY).write_text("[]")
    with pytest.raises(ValueError, match=TOKENIZER_IDENTITY):
        read_shard_metadata(tmp_path)
