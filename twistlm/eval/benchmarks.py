"""The benchmark registry (kind -> title, files, metric) and the published numbers we compare with.

Every module that names a benchmark reads it from here: the readers (folders inside a dataset
root), the metrics (which aggregation rule), the reports (titles, order, submission files,
published rows) and the CLI (valid ``--bench`` kinds). Adding a benchmark means one
:class:`Benchmark` entry here, a reader layout in :mod:`twistlm.eval.readers` and, if it
aggregates in a new way, a metric family in :mod:`twistlm.eval.metrics`.

This module is plain data: it imports nothing from the rest of twistlm.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    """One spoken-language benchmark.

    Attributes:
        kind: registry key, the ``--bench KIND=PATH`` name and ``PairRecord.kind``.
        title: name in tables and plots.
        submission_file: ZeroSpeech 2021-style submission file (``submission/<file>``).
        root_dirs: folders inside a dataset root (an sLM21 root or a `twistlm synth
            benchmarks` output) that hold this benchmark, tried in order; the first is the one
            a synthesized set is written to.
        metric: aggregation family in :data:`twistlm.eval.metrics.METRIC_FAMILIES`:
            ``swuggy`` (per id over voices, frequency bands), ``sblimp`` (per type/subtype/id)
            or ``storycloze`` (plain accuracy over pairs).
    """

    kind: str
    title: str
    submission_file: str
    root_dirs: tuple[str, ...]
    metric: str


# In report order.
BENCHMARKS: dict[str, Benchmark] = {
    b.kind: b
    for b in (
        Benchmark(
            "swuggy", "sWUGGY", "lexical.txt", ("lexical/dev", "lexical/test", "lexical"), "swuggy"
        ),
        Benchmark(
            "sblimp",
            "sBLIMP",
            "syntactic.txt",
            ("syntactic/dev", "syntactic/test", "syntactic"),
            "sblimp",
        ),
        Benchmark("ssc", "sSC", "ssc.txt", ("sSC", "ssc", "sStoryCloze"), "storycloze"),
        Benchmark("tsc", "tSC", "tsc.txt", ("tSC", "tsc", "tStoryCloze"), "storycloze"),
    )
}

KINDS: tuple[str, ...] = tuple(BENCHMARKS)  # ("swuggy", "sblimp", "ssc", "tsc")
TITLES: dict[str, str] = {k: b.title for k, b in BENCHMARKS.items()}
SUBMISSION_FILES: dict[str, str] = {k: b.submission_file for k, b in BENCHMARKS.items()}

# Published accuracies (%) of other models on the same benchmarks, model -> {kind: accuracy}:
# TWIST paper (Hassid et al. 2023, Table 2), as collected in docs/formats.md (published
# numbers). Only sBLIMP / sSC / tSC: sWUGGY is not in our reference list. Numbers compare with
# ours only on the same benchmark data.
PUBLISHED_SOURCE = "TWIST paper (Hassid et al. 2023)"
PUBLISHED: dict[str, dict[str, float]] = {
    "TWIST-1.3B": {"sblimp": 57.0, "ssc": 52.4, "tsc": 70.6},
    "TWIST-7B": {"sblimp": 59.0, "ssc": 55.3, "tsc": 74.1},
    "TWIST-13B": {"sblimp": 59.2, "ssc": 55.4, "tsc": 76.4},
    "GSLM": {"sblimp": 54.2, "ssc": 53.3, "tsc": 66.6},
}
