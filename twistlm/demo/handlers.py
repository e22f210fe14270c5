"""The demo's request handlers: plain functions over the library, tested without a browser.

Each handler takes a :class:`~twistlm.demo.backend.DemoBackend`, user inputs (audio as a file
path or a ``(sample_rate, array)`` tuple, settings) and returns a small dataclass. Bad input
raises :class:`DemoInputError` whose message is what the page shows; the UI layer
(``app.py``) only wires these functions to widgets.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twistlm.audio import SAMPLE_RATE, AudioError
from twistlm.demo.backend import DemoBackend, DemoUnavailable, Which, missing_model_message
from twistlm.demo.inputs import (  # noqa: F401  (re-exported: the handlers' public inputs)
    DEFAULT_LIMITS,
    AudioInput,
    DemoInputError,
    Limits,
    OutputStore,
    read_audio_input,
)


# ---------------------------------------------------------------------------- plots
def units_figure(
    segments: list[tuple[str, torch.Tensor, torch.Tensor]], frame_rate: float, n_units: int
):
    """Units over time as a step plot: ``segments`` of (label, units (N,), durations (N,)),
    drawn one after another in time (e.g. prompt then continuation). Returns a matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 2.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    t0 = 0.0
    for label, units, durs in segments:
        if len(units) == 0:
            continue
        d = torch.as_tensor(durs).double()
        starts = t0 + torch.cumsum(d, 0) / frame_rate - d / frame_rate  # (N,) seconds
        xs = np.append(starts.numpy(), t0 + float(d.sum()) / frame_rate)
        ys = np.append(torch.as_tensor(units).numpy(), int(units[-1]))
        ax.step(xs, ys, where="post", label=label, linewidth=1.2)
        t0 = float(xs[-1])
    ax.set_xlabel("seconds")
    ax.set_ylabel("unit")
    ax.set_ylim(-0.5, n_units - 0.5)
    ax.set_xlim(0, max(t0, 1e-3))
    if len(segments) > 1:
        ax.legend(loc="upper right", fontsize=8)
    return fig


# ---------------------------------------------------------------------------- Continue
@dataclass(frozen=True)
class SamplingSettings:
    """Sampling options of Continue / Warm vs cold (TWIST defaults: 3 s prompt, T = 0.8, and
    transformers' default top-k 50, which the TWIST example inherits; see lm.generate.PRESETS)."""

    seconds: float | None = None  # None: TWIST's length rule
    prompt_seconds: float | None = 3.0  # None or 0: the whole prompt
    temperature: float = 0.8
    top_k: int | None = 50
    top_p: float | None = None
    seed: int = 0

    def checked(self, limits: Limits) -> SamplingSettings:
        """Validated copy (0 / empty mean "off" for top-k and top-p, as in the form)."""
        if self.seconds is not None and not 0 < self.seconds <= limits.max_continue_seconds:
            raise DemoInputError(
                f"continuation length must be in (0, {limits.max_continue_seconds:g}] s "
                "(--max-continue-seconds)"
            )
        if not 0 <= self.temperature <= 5:
            raise DemoInputError("temperature must be in [0, 5] (0 = greedy)")
        top_k = int(self.top_k) if self.top_k else None
        if top_k is not None and top_k < 0:
            raise DemoInputError("top-k must be >= 0 (0 = off)")
        top_p = float(self.top_p) if self.top_p and self.top_p < 1 else None
        if top_p is not None and top_p <= 0:
            raise DemoInputError("top-p must be in (0, 1] (1 = off)")
        return SamplingSettings(
            self.seconds,
            self.prompt_seconds or None,
            float(self.temperature),
            top_k,
            top_p,
            int(self.seed or 0),
        )


@dataclass
class ContinueOutput:
    """A continuation: files under the demo's output dir, a units plot, transcript, details."""

    continuation_wav: Path  # continuation only
    full_wav: Path  # prompt (as used) then continuation
    json_path: Path
    figure: Any
    transcript: str
    details: str
    result: Any  # twistlm.lm.continuation.Continuation
    notes: list[str] = field(default_factory=list)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def continue_audio(
    backend: DemoBackend,
    store: OutputStore,
    audio: Any,
    settings: SamplingSettings = SamplingSettings(),
    which: Which = "warm",
    limits: Limits = DEFAULT_LIMITS,
    prompt: AudioInput | None = None,
) -> ContinueOutput:
    """Continue a spoken prompt with model ``which`` (library: ``continue_prompt``)."""
    from twistlm.audio import write_wav
    from twistlm.lm.continuation import continue_prompt, write_continuation

    prompt = prompt or read_audio_input(audio, limits, "prompt")
    s = settings.checked(limits)
    lm, tok, voc = backend.components(which)
    try:
        res = continue_prompt(
            prompt.wav,
            lm,
            tok,
            voc,
            seconds=s.seconds,
            prompt_seconds=s.prompt_seconds,
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
            seed=s.seed,
            prompt_audio="original",
            autocast=backend.autocast,
            device=backend.device,
        )
    except AudioError as e:
        raise DemoInputError(f"prompt: {_one_line(e)}") from e
    res.settings["model"] = (
        f"{which}: {backend.paths.model if which == 'warm' else backend.paths.cold_model}"
    )
    run = store.new_run(f"continue-{which}")
    full_wav, json_path = write_continuation(res, run / "continuation_full.wav")
    cont_wav = run / "continuation.wav"
    write_wav(cont_wav, res.wav[res.prompt_samples :], res.sample_rate)
    fig = units_figure(
        [
            ("prompt", res.prompt_units, res.prompt_durations),
            ("continuation", res.units, res.durations),
        ],
        float(tok.frame_rate),
        int(tok.n_units),
    )
    transcript = ""
    asr = backend.transcriber()
    if asr is not None and len(res.units):
        try:
            transcript = asr(res.wav[res.prompt_samples :]) or "(ASR heard no words)"
        except Exception as e:  # ASR is a nice-to-have: report, never fail the request
            transcript = f"(ASR failed: {_one_line(e)})"
    elif asr is None:
        transcript = backend.asr_status
    cont_s = (len(res.wav) - res.prompt_samples) / res.sample_rate
    details = (
        f"**{which} model** · prompt {res.settings['prompt_seconds_used']:.2f} s = "
        f"{len(res.prompt_units)} units · continuation {len(res.units)} units = {cont_s:.2f} s "
        f"· temperature {s.temperature:g}, top-k {s.top_k or 'off'}, top-p {s.top_p or 'off'}, "
        f"seed {s.seed} · durations: {res.settings['durations']}"
    )
    return ContinueOutput(
        cont_wav, full_wav, json_path, fig, transcript, details, res, list(prompt.notes)
    )


# ---------------------------------------------------------------------------- Compare
@dataclass
class CompareOutput:
    """Log-likelihoods of two utterances under one SpeechLM and which one it prefers."""

    mean: tuple[float, float]  # mean log-prob per scored unit token (nats), A and B
    total: tuple[float, float]  # summed log-prob (nats)
    n_tokens: tuple[int, int]
    preferred: str  # "A", "B" or "tie", by the mean (length-normalised, as TWIST's later code)
    preferred_by_sum: str
    markdown: str
    notes: list[str] = field(default_factory=list)


def _prefer(a: float, b: float) -> str:
    if math.isnan(a) or math.isnan(b) or a == b:
        return "tie"
    return "A" if a > b else "B"


def compare_audio(
    backend: DemoBackend,
    audio_a: Any,
    audio_b: Any,
    which: Which = "warm",
    limits: Limits = DEFAULT_LIMITS,
) -> CompareOutput:
    """Score two utterances (library: tokenizer ``encode`` + ``score_units``)."""
    from twistlm.lm.scoring import score_units

    a = read_audio_input(audio_a, limits, "utterance A")
    b = read_audio_input(audio_b, limits, "utterance B")
    lm, tok = backend.scorer(which)  # no vocoder needed
    units = []
    for name, x in (("utterance A", a), ("utterance B", b)):
        try:
            units.append(tok.encode(x.wav).units)
        except AudioError as e:
            raise DemoInputError(f"{name}: {_one_line(e)}") from e
    try:
        sa, sb = score_units(lm, units, autocast=backend.autocast)
    except ValueError as e:  # longer than the model's positions
        raise DemoInputError(_one_line(e)) from e
    mean = (sa.mean_logprob, sb.mean_logprob)
    total = (sa.sum_logprob, sb.sum_logprob)
    pref, pref_sum = _prefer(*mean), _prefer(*total)
    verdict = "no preference (tie)" if pref == "tie" else f"prefers **{pref}**"
    md = (
        f"### The {which} model {verdict}\n\n"
        "| | A | B |\n|---|---:|---:|\n"
        f"| mean log-likelihood per unit (nats) | {mean[0]:.4f} | {mean[1]:.4f} |\n"
        f"| total log-likelihood (nats) | {total[0]:.2f} | {total[1]:.2f} |\n"
        f"| scored units | {sa.n_tokens} | {sb.n_tokens} |\n\n"
        f"Preference by the mean (length-normalised); by the total: "
        f"{'tie' if pref_sum == 'tie' else pref_sum}."
    )
    return CompareOutput(
        mean, total, (sa.n_tokens, sb.n_tokens), pref, pref_sum, md, a.notes + b.notes
    )


# ---------------------------------------------------------------------------- Resynthesize
@dataclass
class ResynthOutput:
    wav_path: Path
    figure: Any
    details: str
    units: list[int]
    durations: list[int]
    notes: list[str] = field(default_factory=list)


def resynthesize_audio(
    backend: DemoBackend,
    store: OutputStore,
    audio: Any,
    durations: str = "true",
    limits: Limits = DEFAULT_LIMITS,
) -> ResynthOutput:
    """Audio -> units -> vocoder (library: ``twistlm.vocoder.resynth.resynthesize``)."""
    from twistlm.audio import write_wav
    from twistlm.io import write_json
    from twistlm.lm.components import check_compatible
    from twistlm.vocoder.resynth import resynthesize

    x = read_audio_input(audio, limits, "input")
    tok, voc = backend.tokenizer(), backend.vocoder()
    check_compatible(tokenizer=tok, vocoder=voc)
    if durations == "predicted" and not voc.has_duration_predictor:
        raise DemoInputError("this vocoder has no duration predictor: use the true durations")
    try:
        wav, meta = resynthesize(x.wav, tok, voc, durations=durations)
    except AudioError as e:
        raise DemoInputError(f"input: {_one_line(e)}") from e
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak > 1.0:
        wav = wav / peak * 0.99
    run = store.new_run("resynth")
    out = run / "resynth.wav"
    write_wav(out, wav, voc.sample_rate)
    write_json(run / "resynth.json", meta)
    fig = units_figure(
        [("units", torch.tensor(meta["units"]), torch.tensor(meta["durations"]))],
        float(tok.frame_rate),
        int(tok.n_units),
    )
    n = len(meta["units"])
    details = (
        f"{x.seconds:.2f} s -> {n} units ({n / max(x.seconds, 1e-9):.1f} units/s, "
        f"{tok.n_units} unit types, {tok.frame_rate:g} Hz frames) -> {len(wav) / voc.sample_rate:.2f} s "
        f"of vocoded audio · durations: {durations}"
    )
    return ResynthOutput(out, fig, details, meta["units"], meta["durations"], x.notes)


# ---------------------------------------------------------------------------- Warm vs cold
@dataclass
class WarmColdOutput:
    warm: ContinueOutput
    cold: ContinueOutput
    prompt_mean: dict[str, float]  # mean log-likelihood of the prompt's units per model
    markdown: str


def warm_vs_cold(
    backend: DemoBackend,
    store: OutputStore,
    audio: Any,
    settings: SamplingSettings = SamplingSettings(),
    limits: Limits = DEFAULT_LIMITS,
) -> WarmColdOutput:
    """The same prompt, settings and seed through the warm and the cold model."""
    from twistlm.lm.scoring import score_units

    for which in ("warm", "cold"):
        if not backend.has_model(which):  # type: ignore[arg-type]
            raise DemoUnavailable(
                "Warm vs cold needs both quickstart models. "
                + missing_model_message(backend.paths, which)
            )
    prompt = read_audio_input(audio, limits, "prompt")
    warm = continue_audio(backend, store, None, settings, "warm", limits, prompt)
    cold = continue_audio(backend, store, None, settings, "cold", limits, prompt)
    prompt_mean = {}
    for which in ("warm", "cold"):
        lm = backend.lm(which)  # type: ignore[arg-type]
        (sc,) = score_units(lm, [warm.result.prompt_units], autocast=backend.autocast)
        prompt_mean[which] = sc.mean_logprob
    better = max(prompt_mean, key=prompt_mean.get)
    md = (
        "| | warm | cold |\n|---|---:|---:|\n"
        f"| prompt: mean log-likelihood per unit (nats) | {prompt_mean['warm']:.4f} | "
        f"{prompt_mean['cold']:.4f} |\n"
        f"| continuation units | {len(warm.result.units)} | {len(cold.result.units)} |\n\n"
        f"The {better} model finds the prompt more likely. Same seed and settings for both."
    )
    return WarmColdOutput(warm, cold, prompt_mean, md)


# ---------------------------------------------------------------------------- pickers
def _label(text: str | None, width: int = 80) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return ": " + (text if len(text) <= width else text[: width - 3] + "...")


def list_samples(backend: DemoBackend, limit: int = 50) -> dict[str, Any]:
    """Prompts for the sample picker (label -> path or ``AudioRef``): the quickstart's held-out
    prompts (true-ending passages of its tSC-style set, spoken by held-out voices: what its
    generation stage continues), then the sample wavs of its report."""
    from twistlm.audio import list_audio
    from twistlm.eval.readers import read_benchmark

    out: dict[str, Any] = {}
    if backend.paths.benchmarks is not None:
        for kind in ("tsc", "ssc"):
            try:
                pairs = read_benchmark(kind, backend.paths.benchmarks)
            except (ValueError, OSError):  # not there
                continue
            for rec in pairs[:limit]:
                out[f"held-out {kind} {rec.pair_id}{_label(rec.positive_text)}"] = rec.positive
            break
    root = backend.paths.samples
    if root is not None:
        for p in list_audio(root)[:limit]:
            out[f"report sample {p.relative_to(root)}"] = p
    return out


def list_benchmark_pairs(backend: DemoBackend, per_benchmark: int = 25) -> dict[str, Any]:
    """A few pairs of each benchmark the quickstart wrote (label -> PairRecord)."""
    from twistlm.eval.readers import BENCHMARKS, read_benchmark

    root = backend.paths.benchmarks
    if root is None:
        return {}
    out = {}
    for kind in BENCHMARKS:
        try:
            pairs = read_benchmark(kind, root)
        except (ValueError, OSError):  # this benchmark is not there
            continue
        for rec in pairs[:per_benchmark]:
            texts = " / ".join(t for t in (rec.positive_text, rec.negative_text) if t)
            out[f"{kind} {rec.pair_id}{_label(texts, 100)}"] = rec
    return out


def load_pick(pick: Any, backend: DemoBackend) -> tuple[int, np.ndarray]:
    """Read a picked sample (a path or a benchmark ``AudioRef``), only from the dirs the demo was
    given -> (16000, (T,) float32)."""
    from twistlm.audio import load_audio

    if getattr(pick, "data", None) is not None:  # parquet bytes: no file access
        try:
            return SAMPLE_RATE, pick.load()
        except AudioError as e:
            raise DemoInputError(f"{pick.key}: {_one_line(e)}") from e
    real = Path(os.path.realpath(getattr(pick, "path", pick)))
    if not any(real.is_relative_to(r) for r in backend.paths.readable_roots()):
        raise DemoInputError("that file is outside the demo's data dirs")
    try:
        return SAMPLE_RATE, load_audio(real)
    except AudioError as e:
        raise DemoInputError(f"{real.name}: {_one_line(e)}") from e
