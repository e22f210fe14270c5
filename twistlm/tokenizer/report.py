"""`twistlm tokenizer-report`: compare tokenizers on the same speech, in numbers.

For each tokenizer, on a manifest of utterances (``path``, ``voice``, ``text``; the same texts
spoken by several voices): deduplicated units per second of speech, codebook use, and
cross-voice consistency (:mod:`twistlm.tokenizer.consistency`). One bad file is one line in
``errors.jsonl``; the report goes on and counts it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twistlm.io import ErrorLog, atomic_write_text, write_json
from twistlm.tokenizer.consistency import codebook_use, cross_voice_consistency


def sentence_key(text: str) -> str:
    """Texts that differ only in case, punctuation or spacing are the same sentence."""
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def measure_tokenizer(
    tokenizer: Any, rows: Sequence[dict], errors: ErrorLog | None = None, progress: bool = True
) -> dict[str, Any]:
    """Tokenize ``rows`` (dicts with ``path``, ``voice``, ``text``) and measure the units."""
    from tqdm import tqdm

    by_voice: dict[str, dict[str, list[int]]] = {}
    sequences, seconds, failed = [], 0.0, 0
    t0 = time.perf_counter()
    for row in tqdm(rows, desc="tokenize", unit="utt", disable=not progress):
        try:
            tok = tokenizer.encode_file(row["path"])
        except Exception as e:  # noqa: BLE001 - one bad file never stops the report
            failed += 1
            if errors is not None:
                errors.add(row["path"], e)
            continue
        units = [int(u) for u in tok.units]
        sequences.append(units)
        seconds += float(tok.durations.sum()) / tok.frame_rate
        by_voice.setdefault(row["voice"], {})[sentence_key(row["text"])] = units
    elapsed = time.perf_counter() - t0
    n_units = sum(len(s) for s in sequences)
    info = tokenizer.info() if hasattr(tokenizer, "info") else {}
    return {
        "tokenizer": info,
        "n_utterances": len(sequences),
        "n_failed": failed,
        "speech_seconds": round(seconds, 2),
        "units_per_second": n_units / seconds if seconds else None,
        "realtime_factor": seconds / elapsed if elapsed else None,
        "codebook": codebook_use(sequences, int(tokenizer.n_units)).to_dict(),
        "cross_voice": cross_voice_consistency(by_voice).to_dict(),
    }


def _fmt(x: Any, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def report_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table, one row per tokenizer."""
    lines = [
        "| tokenizer | units/s | codebook used | unit perplexity | same/diff | twin | chance |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cb, cv = r["codebook"], r["cross_voice"]
        lines.append(
            f"| {name} | {_fmt(r['units_per_second'], '.1f')} | "
            f"{cb['used']}/{cb['n_units']} | {cb['perplexity']:.0f} | {cv['ratio']:.3f} | "
            f"{100 * cv['twin']:.0f}% | {100 * cv['chance']:.0f}% |"
        )
    return "\n".join(lines)


def write_report(out: str | Path, results: dict[str, dict[str, Any]], manifest: str | Path) -> Path:
    """Write ``report.json`` and ``report.md`` (atomically) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "report.json", {"manifest": str(manifest), "tokenizers": results})
    some = next(iter(results.values()))["cross_voice"] if results else {}
    text = "\n".join(
        [
            "# Tokenizer report",
            "",
            f"Utterances: `{manifest}`; voices {', '.join(some.get('voices', []))}; "
            f"{some.get('n_sentences', 0):g} shared sentences per voice pair.",
            "",
            report_table(results),
            "",
            "- units/s: deduplicated units per second of audio.",
            "- codebook used: distinct units that occur / k; unit perplexity: exp(entropy) of "
            "their frequencies.",
            "- same/diff: mean normalised edit distance between two voices' unit sequences of "
            "the same sentence, divided by that of different sentences (1.0 = the units say "
            "nothing about the words across voices; lower is better).",
            "- twin: how often a sentence's nearest unit sequence in another voice is the same "
            "sentence (chance = 1 / sentences).",
            "",
        ]
    )
    atomic_write_text(out / "report.md", text)
    return out / "report.md"
