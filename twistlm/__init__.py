"""twistlm: TWIST (Textually Pretrained Speech Language Models) end to end.

Stages (one subpackage each, in data-flow order):
``tokenizer`` (audio -> units), ``data`` (unit shards -> packed blocks), ``lm`` (warm/cold
SpeechLM, scoring, generation), ``train``, ``eval``, ``vocoder`` (units -> audio), ``synth``
(offline spoken corpus and benchmarks), ``quickstart`` and ``demo``.
"""

__version__ = "0.1.0"
