"""Continue a spoken prompt: PROMPT.wav -> units -> SpeechLM sampling -> vocoder -> OUT.wav.

TWIST's demo in one command. The first --prompt-seconds of the prompt are tokenized, the
SpeechLM samples a unit continuation, the vocoder turns the continuation into audio, and OUT.wav
gets the prompt audio followed by the continuation (--prompt-audio resynth puts the vocoded
prompt there instead, --continuation-only writes the continuation alone). OUT.json beside it
holds the prompt and continuation units and every setting, so a run can be reproduced.

Sampling defaults come from --preset (each equals its reference's generate call):
  twist    3 s prompt, temperature 0.8, top-k 50 (transformers' default), at most
           min(250, 3 x prompt units) units including the prompt  [textlesslib TWIST example]
  slamkit  3 s prompt, temperature 0.8, top-k 25, 150 new units, stop at <S>  [SlamKit]
With --preset twist a model dir's generation_config.json supplies top-k / top-p / repetition
penalty when it sets them (as transformers does for the TWIST example). Options given on the
command line win over both. A continuation that would not fit the model's positions is cut
(with a warning) to what fits.

The tokenizer and vocoder default to the ones recorded in the model's metadata.

examples:
  twistlm continue prompt.wav -o out.wav --model runs/warm/model --vocoder runs/vocoder
  twistlm continue prompt.wav -o out.wav --model M --seconds 6 --temperature 0.7 --top-p 0.95
  twistlm continue prompt.wav -o out.wav --model M --preset slamkit --top-k 0   (top-k off)
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from twistlm.lm.generate import (
    DEFAULT_PRESET,
    PRESETS,
    generate_units,
    generation_settings,
    twist_max_new_units,
)


class _FromPreset:
    """Default of :func:`continue_prompt`'s sampling arguments: take the preset's value (or the
    checkpoint's generation_config.json). An explicit None keeps meaning off / all."""

    def __repr__(self) -> str:
        return "FROM_PRESET"


FROM_PRESET: Any = _FromPreset()

PromptAudio = Literal["original", "resynth", "none"]


@dataclass
class Continuation:
    """Result of :func:`continue_prompt`.

    Attributes:
        wav: (T,) float32 at ``sample_rate``: prompt part (``prompt_samples`` samples) then the
            continuation.
        prompt_units, prompt_durations: (P,) units of the prompt and frames per unit.
        units: (N,) continuation units; ``durations``: (N,) frames per unit used to vocode it.
        settings: every option used (JSON-safe), including how durations were obtained.
    """

    wav: np.ndarray
    sample_rate: int
    prompt_samples: int
    prompt_units: Tensor
    prompt_durations: Tensor
    units: Tensor
    durations: Tensor
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return len(self.wav) / self.sample_rate

    def to_json(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate,
            "seconds": round(self.seconds, 4),
            "prompt_samples": self.prompt_samples,
            "continuation_seconds": round(
                (len(self.wav) - self.prompt_samples) / self.sample_rate, 4
            ),
            "prompt_units": self.prompt_units.tolist(),
            "prompt_durations": self.prompt_durations.tolist(),
            "continuation_units": self.units.tolist(),
            "continuation_durations": self.durations.tolist(),
            "settings": self.settings,
        }


# ---------------------------------------------------------------------------- loading
def _recorded_path(meta: dict[str, Any], key: str) -> str | None:
    """A tokenizer / vocoder dir recorded in a SpeechLM's meta, if any and if it exists."""
    entry = meta.get(key)
    candidates = []
    if isinstance(entry, dict):
        candidates += [entry.get("path"), entry.get("dir")]
    elif isinstance(entry, str):
        candidates.append(entry)
    candidates.append(meta.get(f"{key}_path"))
    for c in candidates:
        if c and Path(c).is_dir():
            return str(c)
    return None


def load_components(
    model: Any, tokenizer: Any = None, vocoder: Any = None, device: str = "cpu"
) -> tuple[Any, Any, Any]:
    """Resolve (SpeechLM, UnitTokenizer, Vocoder) from objects or directories.

    ``tokenizer`` / ``vocoder`` None: taken from the model's meta (``meta["tokenizer"]["path"]``,
    ``meta["vocoder"]``), else a clear error.
    """
    paths: dict[str, str] = {}
    if isinstance(model, (str, Path)):
        from twistlm.lm.model import SpeechLM

        model = SpeechLM.from_pretrained(model, device=device)
    meta = getattr(model, "meta", {}) or {}
    if meta.get("path"):
        paths["model"] = str(meta["path"])
    if tokenizer is None:
        tokenizer = _recorded_path(meta, "tokenizer")
        if tokenizer is None:
            raise ValueError(
                "no tokenizer given and none recorded in the model's metadata: pass --tokenizer DIR"
            )
    if isinstance(tokenizer, (str, Path)):
        from twistlm.tokenizer import UnitTokenizer

        paths["tokenizer"] = str(tokenizer)
        tokenizer = UnitTokenizer.from_pretrained(tokenizer)
    if vocoder is None:
        vocoder = _recorded_path(meta, "vocoder")
        if vocoder is None:
            raise ValueError(
                "no vocoder given and none recorded in the model's metadata: pass --vocoder DIR "
                "(train one with `twistlm train-vocoder`)"
            )
    if isinstance(vocoder, (str, Path)):
        from twistlm.vocoder import load_vocoder

        paths["vocoder"] = str(vocoder)
        vocoder = load_vocoder(vocoder, device=device)
    check_compatible(model, tokenizer, vocoder, paths)
    return model, tokenizer, vocoder


def _tok_info(tokenizer: Any) -> dict[str, Any]:
    info = tokenizer.info() if hasattr(tokenizer, "info") else {}
    return dict(info or {})


def check_compatible(
    lm: Any, tokenizer: Any, vocoder: Any, paths: dict[str, str] | None = None
) -> None:
    """Raise ValueError when the three components cannot work together (unit count, hop).

    A TWIST checkpoint that records no unit count takes the tokenizer's first
    (``SpeechLM.adopt_n_units``), so its sampling stays inside the tokenizer's units.
    ``paths`` ({"model", "tokenizer", "vocoder": dir}) only make the messages name the dirs.
    """
    paths = dict(paths or {})
    meta = getattr(lm, "meta", None) or {}
    paths.setdefault("model", str(meta.get("path", "<object>")))
    n_tok = int(tokenizer.n_units)
    if hasattr(lm, "adopt_n_units"):
        lm.adopt_n_units(n_tok, source="tokenizer", tokenizer_path=paths.get("tokenizer"))
    n_lm, n_voc = int(lm.vocab.n_units), int(vocoder.n_units)
    if not n_tok == n_lm == n_voc:
        raise ValueError(
            f"unit counts differ: tokenizer {n_tok} ({paths.get('tokenizer', '<object>')}), "
            f"SpeechLM {n_lm} ({paths['model']}), vocoder {n_voc} "
            f"({paths.get('vocoder', '<object>')}); they must come from the same tokenizer"
        )
    hop = _tok_info(tokenizer).get("hop")
    if hop is None and getattr(tokenizer, "frame_rate", None):
        hop = round(vocoder.sample_rate / float(tokenizer.frame_rate))
    if hop is not None and int(hop) != int(vocoder.hop):
        raise ValueError(
            f"the tokenizer's hop is {hop} samples per unit frame but the vocoder's is "
            f"{vocoder.hop}: the vocoder was trained on another tokenizer's units"
        )


def _dedups(tokenizer: Any) -> bool:
    info = _tok_info(tokenizer)
    return bool(info.get("dedup", getattr(tokenizer, "dedup", True)))


def continuation_durations(
    vocoder: Any, tokenizer: Any, units: Tensor, prompt_durations: Tensor
) -> tuple[Tensor, str]:
    """Frames per continuation unit and how they were obtained.

    With a duration predictor: predicted (TWIST's setup). Without one, frame-level units get 1
    each; deduplicated units get the prompt's mean duration (a labelled fallback).
    """
    if len(units) == 0:
        return torch.zeros(0, dtype=torch.long), "none"
    if vocoder.has_duration_predictor:
        return vocoder.predict_durations(units), "predicted"
    if not _dedups(tokenizer):
        return torch.ones_like(units), "frame-level"
    mean = float(prompt_durations.float().mean()) if len(prompt_durations) else 1.0
    d = max(int(round(mean)), 1)
    warnings.warn(
        "the vocoder has no duration predictor and the units are deduplicated: using the "
        f"prompt's mean duration ({d} frames) for every continuation unit",
        stacklevel=2,
    )
    return torch.full_like(units, d), f"prompt mean ({d} frames; no duration predictor)"


# ---------------------------------------------------------------------------- main function
def continue_prompt(
    prompt: str | Path | np.ndarray,
    model: Any,
    tokenizer: Any = None,
    vocoder: Any = None,
    *,
    preset: str = DEFAULT_PRESET,
    seconds: float | None = None,
    max_new_units: int | None = None,
    prompt_seconds: float | None = FROM_PRESET,
    temperature: float = FROM_PRESET,
    top_k: int | None = FROM_PRESET,
    top_p: float | None = FROM_PRESET,
    repetition_penalty: float = FROM_PRESET,
    seed: int = 0,
    prompt_audio: PromptAudio = "original",
    stop_at_eos: bool = FROM_PRESET,
    autocast: bool = False,
    device: str = "cpu",
    out: str | Path | None = None,
) -> Continuation:
    """Continue a spoken prompt. Library form of ``twistlm continue`` (see the module help).

    Args:
        prompt: a wav path or a (T,) float32 16 kHz waveform.
        model, tokenizer, vocoder: objects or directories (tokenizer/vocoder: None = from the
            model's meta).
        preset: ``twist`` or ``slamkit`` (:data:`twistlm.lm.generate.PRESETS`): the defaults
            of every sampling argument left out. With ``twist`` the model dir's
            generation_config.json supplies top-k / top-p / repetition penalty when it sets them.
        seconds: continuation length in seconds (converted with the prompt's units per second);
            ``max_new_units``: in units. Neither: the preset's (twist: min(250, 3 x P) - P
            units; slamkit: 150). Cut, with a warning, to what fits the model's positions.
        prompt_seconds: use only the first N seconds of the prompt (None or 0: all of it).
        temperature, top_k, top_p, repetition_penalty, stop_at_eos: left out = the preset's;
            None (top_k 0, top_p 1) = off.
        prompt_audio: what OUT.wav starts with: the ``original`` prompt audio, the ``resynth``
            (vocoded prompt units with their true durations), or ``none``.
        out: write ``out`` (wav) and ``out.with_suffix('.json')`` atomically.
    """
    from twistlm.audio import SAMPLE_RATE, check_waveform, load_audio

    if prompt_audio not in ("original", "resynth", "none"):
        raise ValueError(f"prompt_audio must be original | resynth | none, got {prompt_audio!r}")
    lm, tok, voc = load_components(model, tokenizer, vocoder, device)
    given = {
        "prompt_seconds": prompt_seconds,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "repetition_penalty": repetition_penalty,
        "stop_at_eos": stop_at_eos,
    }
    for key in ("temperature", "repetition_penalty", "stop_at_eos"):
        if given[key] is None:
            raise ValueError(f"{key} must be a value (leave it out for the preset's)")
    gen = generation_settings(
        preset,
        (getattr(lm, "meta", None) or {}).get("path"),
        **{k: v for k, v in given.items() if v is not FROM_PRESET},
    )
    prompt_seconds = gen["prompt_seconds"]
    if isinstance(prompt, (str, Path)):
        wav = load_audio(prompt)
        source = str(prompt)
    else:
        wav = np.asarray(prompt, dtype=np.float32).reshape(-1)
        check_waveform(wav, what="prompt")
        source = "<array>"
    full_seconds = len(wav) / SAMPLE_RATE
    if prompt_seconds:
        wav = wav[: int(round(prompt_seconds * SAMPLE_RATE))]
        check_waveform(wav, what=f"first {prompt_seconds} s of the prompt")
    used_seconds = len(wav) / SAMPLE_RATE

    enc = tok.encode(torch.from_numpy(wav))
    p_units = torch.as_tensor(enc.units).long().reshape(-1)
    p_durs = torch.as_tensor(enc.durations).long().reshape(-1)
    if len(p_units) == 0:
        raise ValueError("the prompt produced no units")
    units_per_second = len(p_units) / used_seconds
    if seconds is not None and max_new_units is not None:
        raise ValueError("give seconds or max_new_units, not both")
    if seconds is not None:
        budget = max(int(round(seconds * units_per_second)), 1)
        length_rule = f"{seconds} s at the prompt's {units_per_second:.2f} units/s"
    elif max_new_units is not None:
        budget, length_rule = int(max_new_units), f"{max_new_units} units"
    elif gen["max_new_units"] is not None:
        budget = int(gen["max_new_units"])
        length_rule = f"{gen['preset']}: {budget} units"
    else:
        budget = twist_max_new_units(len(p_units))
        length_rule = "TWIST: min(250, 3 x prompt units) including the prompt"
    max_pos = getattr(lm, "max_positions", None)
    n_prefix = len(lm.vocab.prefix())
    if max_pos and n_prefix + len(p_units) + budget > max_pos:
        new_budget = max(max_pos - n_prefix - len(p_units), 0)
        warnings.warn(
            f"the model allows {max_pos} positions: continuation cut from {budget} to "
            f"{new_budget} units",
            stacklevel=2,
        )
        budget = new_budget

    cont = generate_units(
        lm,
        [p_units],
        max_new_units=budget,
        temperature=gen["temperature"],
        top_k=gen["top_k"],
        top_p=gen["top_p"],
        repetition_penalty=gen["repetition_penalty"],
        seed=seed,
        stop_at_eos=gen["stop_at_eos"],
        autocast=autocast,
    )[0]
    c_durs, dur_rule = continuation_durations(voc, tok, cont, p_durs)
    c_wav = (
        voc.synthesize(cont, c_durs) if len(cont) else np.zeros(0, np.float32)
    )  # (sum(c_durs) * hop,)
    if prompt_audio == "original":
        head = wav
    elif prompt_audio == "resynth":
        head = voc.synthesize(p_units, p_durs)
    else:
        head = np.zeros(0, np.float32)
    out_wav = np.concatenate([head.astype(np.float32), c_wav.astype(np.float32)])
    peak = float(np.abs(out_wav).max()) if out_wav.size else 0.0
    if peak > 1.0:  # keep 16-bit PCM from clipping
        out_wav = out_wav / peak * 0.99
    settings = {
        "prompt": source,
        "prompt_file_seconds": round(full_seconds, 4),
        "prompt_seconds_used": round(used_seconds, 4),
        "prompt_audio": prompt_audio,
        "length_rule": length_rule,
        "max_new_units": budget,
        "units_per_second_prompt": round(units_per_second, 4),
        "preset": gen["preset"],
        "temperature": gen["temperature"],
        "top_k": gen["top_k"],
        "top_p": gen["top_p"],
        "repetition_penalty": gen["repetition_penalty"],
        "seed": seed,
        "stop_at_eos": gen["stop_at_eos"],
        "settings_origin": gen["origin"],
        "durations": dur_rule,
        "model": str(lm.meta.get("path", model if isinstance(model, (str, Path)) else "<object>")),
        "convention": lm.vocab.convention,
        "tokenizer": _tok_info(tok),
        "vocoder": dict(getattr(voc, "info", {}) or {}) | {"hop": voc.hop},
    }
    result = Continuation(
        wav=out_wav,
        sample_rate=int(voc.sample_rate),
        prompt_samples=len(head),
        prompt_units=p_units,
        prompt_durations=p_durs,
        units=cont,
        durations=c_durs,
        settings=settings,
    )
    if out is not None:
        write_continuation(result, out)
    return result


def write_continuation(result: Continuation, out: str | Path) -> tuple[Path, Path]:
    """Write OUT.wav and OUT.json (both atomic). Returns their paths."""
    from twistlm.audio import write_wav
    from twistlm.io import write_json

    out = Path(out)
    json_path = out.with_suffix(".json")
    write_wav(out, result.wav, result.sample_rate)
    write_json(json_path, result.to_json())
    return out, json_path


# ---------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", type=Path, help="prompt audio (any format libsndfile reads)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output wav (OUT.json beside)")
    p.add_argument("--model", required=True, help="SpeechLM dir (ours, TWIST or SlamKit)")
    p.add_argument("--tokenizer", help="UnitTokenizer dir (default: from the model's meta)")
    p.add_argument("--vocoder", help="vocoder dir (default: from the model's meta)")
    tw, sk = PRESETS["twist"], PRESETS["slamkit"]
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help=(
            "defaults of the sampling options below, each equal to its reference: twist = "
            f"temperature {tw.temperature:g}, top-k {tw.top_k}, TWIST's length rule (textlesslib "
            f"TWIST example; top-k/top-p/repetition penalty from the model's "
            f"generation_config.json when it sets them); slamkit = temperature {sk.temperature:g}, "
            f"top-k {sk.top_k}, {sk.max_new_units} units, stop at <S> (SlamKit's generate "
            "config). Default %(default)s"
        ),
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument(
        "--seconds",
        type=float,
        help="continuation length in seconds (default: the preset's: TWIST's rule / 150 units)",
    )
    length.add_argument("--max-units", type=int, help="continuation length in units")
    p.add_argument(
        "--prompt-seconds",
        type=float,
        help=f"use the first N s of the prompt; 0 = all (default: the preset's, {tw.prompt_seconds:g})",
    )
    p.add_argument("--temperature", type=float, help="0 = greedy (default: the preset's, 0.8)")
    p.add_argument(
        "--top-k",
        type=int,
        help="sample among the k most likely units; 0 = off (default: the preset's, 50 / 25)",
    )
    p.add_argument(
        "--top-p", type=float, help="nucleus sampling mass in (0, 1]; 1 = off (default: off)"
    )
    p.add_argument("--repetition-penalty", type=float, help="CTRL penalty (>1); default: 1 = off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--prompt-audio",
        choices=["original", "resynth", "none"],
        default="original",
        help="what OUT.wav starts with (default: the original prompt audio)",
    )
    p.add_argument("--continuation-only", action="store_true", help="same as --prompt-audio none")
    p.add_argument(
        "--stop-at-eos",
        action=argparse.BooleanOptionalAction,
        help="end at the model's EOS (ours, SlamKit; TWIST models have none). Default: the "
        "preset's (twist: no, slamkit: yes)",
    )
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU with AMX, CUDA)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")


def run(args: argparse.Namespace) -> int:
    from twistlm.audio import AudioError

    # options left out on the command line (None) take the preset's value
    sampling = {
        k: getattr(args, k)
        for k in ("prompt_seconds", "temperature", "top_k", "top_p", "repetition_penalty")
        if getattr(args, k) is not None
    }
    if args.stop_at_eos is not None:
        sampling["stop_at_eos"] = args.stop_at_eos
    try:
        res = continue_prompt(
            args.prompt,
            args.model,
            args.tokenizer,
            args.vocoder,
            preset=args.preset,
            seconds=args.seconds,
            max_new_units=args.max_units,
            seed=args.seed,
            prompt_audio="none" if args.continuation_only else args.prompt_audio,
            autocast=args.bf16,
            device=args.device,
            out=args.out,
            **sampling,
        )
    except (AudioError, ValueError, FileNotFoundError) as e:
        print(f"error: {args.prompt}: {' '.join(str(e).split())}")
        return 1
    print(
        f"wrote {args.out} ({res.seconds:.2f} s: {res.prompt_samples / res.sample_rate:.2f} s "
        f"prompt + {len(res.units)} units) and {args.out.with_suffix('.json')}"
    )
    return 0
