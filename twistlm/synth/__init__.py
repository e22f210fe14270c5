"""Offline spoken data: a synthetic multi-speaker corpus and spoken benchmarks (``twistlm synth``)."""
