"""twistlm: TWIST (Textually Pretrained Speech Language Models) end to end.

Stages (one subpackage each, in data-flow order):
``tokenizer`` (audio -> units), ``data`` (unit shards -> packed blocks), ``lm`` (warm/cold
SpeechLM, scoring, generation), ``train``, ``eval``, ``vocoder`` (units -> audio), ``synth``
(offline spoken corpus and benchmarks), ``quickstart`` and ``demo``.
"""

import os as _os

# OpenMP threads that spin while waiting turn a 2-core machine with any other busy process into
# a crawl: measured here, log-mel features of 30 files took 25 s with torch's default (active)
# wait policy and 0.66 s with PASSIVE, both with 2 threads. It must be set before torch loads
# libgomp, i.e. before the first `import torch`; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
