"""On-disk cache of benchmark units, so a second `twistlm eval` run does not re-tokenize.

Layout: ``CACHE_ROOT/<tokenizer fingerprint>/`` holds ``tokenizer.json`` (the tokenizer's
``info()`` and fingerprint) and unit shards in the ``twistlm.data.shards`` Parquet format
(``id`` = utterance cache key). Shards are appended atomically every ``flush_every`` new
utterances, so an interrupted run keeps what it tokenized and a rerun resumes.

- The *tokenizer fingerprint* hashes the tokenizer's ``info()`` and, when its directory is
  known, the bytes of its small files (centroids, config) and the names and sizes of its large
  ones (encoder weights), so two tokenizers with the same settings but different centroids
  never share units.
- The *utterance key* hashes the benchmark's utterance key with the audio's identity: absolute
  path, size and modification time for files, the bytes' SHA-1 for in-memory audio (parquet
  re-packagings). Editing a wav therefore re-tokenizes it; copying a benchmark elsewhere does too.

:func:`tokenize_refs` is the cached tokenization `twistlm eval` (and the quickstart) run:
benchmark utterances -> units, through a :class:`UnitCache`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from twistlm.data.shards import SCHEMA, TOKENIZER_INFO, shard_name, write_shard

if TYPE_CHECKING:
    from twistlm.eval.results import EvalErrors

SMALL_FILE_BYTES = 64 << 20  # files up to this size are hashed by content


def default_cache_root() -> Path:
    """``$TWISTLM_CACHE/units``, else ``$XDG_CACHE_HOME/twistlm/units`` (``~/.cache``)."""
    from twistlm.loaders import cache_dir

    return cache_dir("units")


def tokenizer_fingerprint(
    info: dict[str, Any], directory: str | Path | None = None, centroids: Tensor | None = None
) -> str:
    """Hex SHA-256 of a tokenizer's settings, (if given) the files of its directory and its
    centroids (so an in-memory tokenizer refitted with the same settings gets a new identity)."""
    h = hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode())
    if centroids is not None:
        c = torch.as_tensor(centroids).detach().float().cpu().contiguous()
        h.update(str(tuple(c.shape)).encode())
        h.update(c.numpy().tobytes())
    if directory is not None and Path(directory).is_dir():
        for p in sorted(Path(directory).rglob("*")):
            if not p.is_file():
                continue
            h.update(str(p.relative_to(directory)).encode())
            size = p.stat().st_size
            h.update(str(size).encode())
            if size <= SMALL_FILE_BYTES:
                h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def utterance_key(key: str, path: str | None, data: bytes | None) -> str:
    """Cache key of one utterance (see the module docstring)."""
    if data is not None:
        ident = ["bytes", hashlib.sha1(data).hexdigest()]
    elif path is not None:
        p = Path(path).resolve()
        try:
            st = p.stat()
            ident = ["file", str(p), st.st_size, st.st_mtime_ns]
        except OSError:
            ident = ["file", str(p), -1, -1]  # missing: loading will fail and not be cached
    else:
        ident = ["none"]
    return hashlib.sha1(json.dumps([key, *ident]).encode()).hexdigest()


class UnitCache:
    """Units of utterances tokenized by one tokenizer, persisted under ``root/<fingerprint>``.

    >>> cache = UnitCache(root, fingerprint, tokenizer.info())
    >>> cache.get(k)            # LongTensor (N,) or None
    >>> cache.put(k, units, durations, seconds); cache.flush()
    """

    def __init__(
        self,
        root: str | Path,
        fingerprint: str,
        info: dict[str, Any] | None = None,
        flush_every: int = 512,
    ):
        self.dir = Path(root) / fingerprint[:32]
        self.fingerprint = fingerprint
        self.flush_every = flush_every
        self._units: dict[str, Tensor] = {}
        self._pending: list[dict[str, Any]] = []
        self.dir.mkdir(parents=True, exist_ok=True)
        meta_path = self.dir / TOKENIZER_INFO
        if not meta_path.exists():
            from twistlm.io import write_json

            write_json(meta_path, {"fingerprint": fingerprint, "info": info or {}})
        self._load()

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.parquet"))

    def _load(self) -> None:
        import pyarrow.parquet as pq

        for f in self._shards():
            try:
                table = pq.read_table(f, schema=SCHEMA, columns=["id", "units"])
            except Exception:  # a foreign or damaged file: ignore it, its utterances re-tokenize
                continue
            ids = table.column("id").to_pylist()
            units = table.column("units").to_pylist()
            for k, u in zip(ids, units, strict=True):
                self._units[k] = torch.tensor(u, dtype=torch.long)

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, key: str) -> bool:
        return key in self._units

    def get(self, key: str) -> Tensor | None:
        return self._units.get(key)

    def put(self, key: str, units: Tensor, durations: Tensor | None, seconds: float) -> None:
        units = torch.as_tensor(units, dtype=torch.long).reshape(-1)
        durs = (
            torch.ones_like(units)
            if durations is None
            else torch.as_tensor(durations, dtype=torch.long).reshape(-1)
        )
        self._units[key] = units
        self._pending.append(
            {"id": key, "units": units.tolist(), "durations": durs.tolist(), "seconds": seconds}
        )
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write pending utterances as one new shard (atomic)."""
        if not self._pending:
            return
        existing = self._shards()
        index = 1 + max((int(f.stem.split("-")[-1]) for f in existing), default=-1)
        # rank field = pid, so two concurrent runs sharing a cache never pick the same name
        write_shard(self.dir / shard_name(os.getpid() % 100_000, index), self._pending)
        self._pending = []


def tokenize_refs(
    refs: Sequence,
    tokenizer,
    cache: UnitCache | None,
    errors: EvalErrors | None = None,
    progress: bool = True,
) -> tuple[dict[str, Tensor], dict[str, int]]:
    """Units of each distinct utterance -> ({utterance cache key: (N,) LongTensor}, counts).

    ``refs`` are AudioRefs; each distinct utterance is looked up in ``cache`` first, the rest
    are tokenized (and stored in ``cache``); failures are reported to ``errors`` and left out
    of the dict. ``counts``: utterances, cached, tokenized, failed.
    """
    units: dict[str, Tensor] = {}
    todo = []
    seen = set()
    for ref in refs:
        k = utterance_key(ref.key, ref.path, ref.data)
        if k in seen:
            continue
        seen.add(k)
        hit = cache.get(k) if cache is not None else None
        if hit is not None:
            units[k] = hit
        else:
            todo.append((k, ref))
    counts = {"utterances": len(seen), "cached": len(units), "tokenized": 0, "failed": 0}
    for k, ref in tqdm(todo, desc="tokenize", unit="utt", disable=not progress or not todo):
        try:
            wav = ref.load()
            with torch.inference_mode():
                tok = tokenizer.encode(wav)
            u = torch.as_tensor(tok.units, dtype=torch.long).reshape(-1).cpu()
            if u.numel() == 0:
                raise ValueError("tokenizer returned no units")
        except Exception as e:  # one bad file never stops the job
            counts["failed"] += 1
            if errors is not None:
                errors.add(ref.path or ref.key, e)
            continue
        units[k] = u
        counts["tokenized"] += 1
        if cache is not None:
            durs = getattr(tok, "durations", None)
            cache.put(k, u, None if durs is None else durs.cpu(), len(wav) / 16000)
    if cache is not None:
        cache.flush()
    return units, counts
