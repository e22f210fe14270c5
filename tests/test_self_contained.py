"""The repository stands on its own: nothing cites design notes that live outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# built from parts so this file does not match itself
OUTSIDE = re.compile("DESIGN" + r"\.md|\.\./" + "shared/|DESIGN pilot")
TEXT_SUFFIXES = {".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".txt", ".cfg", ""}
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "node_modules"}


def _project_files():
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if rel.parts[0] in {"quickstart", "quickstart-smoke", "runs", "out", "artifacts"}:
            continue  # generated outputs, not the project's sources
        if path.is_file() and path.suffix in TEXT_SUFFIXES and path != Path(__file__).resolve():
            yield path


def test_no_file_cites_outside_design_notes():
    hits = []
    for path in _project_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "cite docs/ instead of outside notes:\n" + "\n".join(hits)


def test_docs_the_code_points_to_exist():
    for name in ("formats.md", "measurements.md"):
        assert (ROOT / "docs" / name).is_file()
