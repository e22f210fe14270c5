"""Small I/O helpers shared by every stage: atomic writes, JSON metadata, error logs."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the same folder; rename it onto ``path`` only on success.

    A killed process leaves at most a ``.tmp-*`` file behind, never a half-written ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get ordinary permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


class ErrorLog:
    """Append-only ``errors.jsonl``: one line per bad input, so a batch job goes on.

    Each record is ``{"path": ..., "error": ...}``; :meth:`report` prints a summary at the end.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.count = 0

    def add(self, item: str | Path, error: BaseException | str, **extra: Any) -> None:
        msg = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        msg = " ".join(str(msg).split())  # one line
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"path": str(item), "error": msg, **extra}) + "\n")
        self.count += 1
        from tqdm import tqdm

        tqdm.write(f"error: {item}: {msg}")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
