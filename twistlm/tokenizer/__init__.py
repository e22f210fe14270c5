"""Speech tokenizer: audio -> (deduplicated) discrete units.

Public entry points: :class:`UnitTokenizer`, :func:`build_offline_tokenizer`,
:func:`tokenize_corpus`, the feature-extractor registry :data:`FEATURE_EXTRACTORS`.
Imports are lazy so ``import twistlm.tokenizer`` stays cheap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "UnitTokenizer": "twistlm.tokenizer.unit_tokenizer",
    "TokenizedUtterance": "twistlm.tokenizer.unit_tokenizer",
    "build_offline_tokenizer": "twistlm.tokenizer.unit_tokenizer",
    "load_tokenizer_preset": "twistlm.tokenizer.unit_tokenizer",
    "tokenize_corpus": "twistlm.tokenizer.corpus",
    "TokenizeSummary": "twistlm.tokenizer.corpus",
    "FEATURE_EXTRACTORS": "twistlm.tokenizer.features",
    "build_extractor": "twistlm.tokenizer.features",
    "dedup": "twistlm.tokenizer.dedup",
    "expand": "twistlm.tokenizer.dedup",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
