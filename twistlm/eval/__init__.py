"""Evaluation: sWUGGY / sBLIMP / sSC / tSC scoring, official metrics, text topline, reports.

>>> from twistlm.eval import evaluate
>>> result = evaluate("runs/warm", {"swuggy": "sLM21/lexical/dev", "tsc": "tSC"}, out_dir="res")
>>> result.benchmarks["tsc"].accuracy("mean")

Names are imported lazily so that ``twistlm.eval.readers`` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "evaluate": "twistlm.eval.run",
    "EvalConfig": "twistlm.eval.run",
    "EvalResult": "twistlm.eval.results",
    "BenchmarkResult": "twistlm.eval.results",
    "aggregate": "twistlm.eval.results",
    "BENCHMARKS": "twistlm.eval.benchmarks",
    "PUBLISHED": "twistlm.eval.benchmarks",
    "benchmark_metrics": "twistlm.eval.metrics",
    "BenchmarkMetrics": "twistlm.eval.metrics",
    "Accuracy": "twistlm.eval.metrics",
    "text_topline": "twistlm.eval.topline",
    "write_outputs": "twistlm.eval.report",
    "UnitCache": "twistlm.eval.cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'twistlm.eval' has no attribute {name!r}")
