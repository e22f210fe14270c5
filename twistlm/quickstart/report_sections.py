"""The sections of the quickstart's report.md, each from report/results.json's dict (``res``).

:func:`twistlm.quickstart.report.write_report` joins them in order: headline (validation loss
on held-out voices), benchmarks with their controls, scaling study, tokenizer, speech
continuation, settings and timings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twistlm.quickstart.config import QuickstartConfig
from twistlm.quickstart.tables import diff_cell, generation_table, pct, scaling_table


def _final_loss(curve: list[tuple[int, float]]) -> float | None:
    return curve[-1][1] if curve else None


def _count_model_line(counts: dict[str, float], warm: float | None, cold: float | None) -> str:
    """The count-model controls of the loss headline, and where the two LMs stand against them."""
    if not counts:
        return "- Count-model controls: not computed."
    line = (
        "- Controls on the same validation tokens (count models fitted on the training units): "
        + ", ".join(f"{k} {v:.3f}" for k, v in counts.items())
        + " nats per unit."
    )
    bigram = counts.get("bigram")
    if bigram is not None and warm is not None and cold is not None:
        if min(warm, cold) > bigram:
            line += (
                " Both LMs are still above the bigram count model: at this budget neither has "
                "learned all that counting neighbouring units gives."
            )
        elif warm <= bigram < cold:
            line += " Warm is below the bigram count model, cold is not."
    return line


def _tokenizer_line(cfg: QuickstartConfig) -> str:
    """What the tokenizer is, said plainly (TWIST's own tokenizer cannot be had offline)."""
    if cfg.features.startswith("whisper"):
        return (
            f"Units: k-means ({cfg.n_units}) on the per-dimension standardized encoder output of "
            f"the speech recognizer Whisper {cfg.features.split('-', 1)[1]} at "
            f"{cfg.frame_rate:g} Hz. TWIST uses "
            "mHuBERT-25Hz, a self-supervised encoder; no HuBERT weights can be had offline, so "
            "the offline default is a different kind of tokenizer, trained with text labels "
            "(`--features` and `twistlm fit-kmeans --preset mhubert-base-25hz` are the other "
            "options)."
        )
    return (
        f"Units: k-means ({cfg.n_units}) on {cfg.features} spectral features at "
        f"{cfg.frame_rate:g} Hz: a labelled baseline; spectral units encode the voice rather "
        "than the words (docs/measurements.md)."
    )


def scaling_lines(scaling: dict[str, Any] | None) -> list[str]:
    if not scaling or not scaling.get("points"):
        return []
    pts = scaling["points"]
    first = scaling.get("first_budget_warm_beats_cold")
    verdict = (
        f"Warm beats cold on the mean accuracy with the paired interval above 0 from "
        f"**{first:,} tokens** on."
        if first is not None
        else "Warm does **not** beat cold on the mean accuracy with the paired interval above 0 "
        f"at any budget up to {pts[-1]['tokens']:,} tokens."
    )
    return [
        "## Scaling study: loss and accuracy vs training tokens",
        "",
        "Both models scored at each budget. The earlier budgets are snapshots of the same two "
        "cosine runs (same data order), not separately annealed runs; the last row is the final "
        "models of the table above.",
        "",
        scaling_table(pts),
        verdict,
        "",
        "![scaling](scaling.png)",
        "",
    ]


def _vocoder_line(voc: dict[str, Any]) -> str:
    if voc.get("packaged"):
        return (
            "Vocoder: the packaged one (units -> WORLD features -> WORLD, voice flite:slt, "
            "trained by `twistlm train-vocoder --recipe slt`; its WER on held-out voices is in "
            "docs/vocoder.md)."
        )
    return (
        f"Vocoder: trained here on the corpus's flite:slt speech, {voc.get('steps')} steps in "
        f"{voc.get('seconds', 0):.0f} s (validation feature L1 "
        f"{voc.get('val_feature_l1', float('nan')):.3f})."
    )


def _transcript_lines(records_path: Path, n: int = 3) -> list[str]:
    """The first ``n`` warm continuations' transcripts, quoted."""
    if not records_path.exists():
        return []
    lines = ["What Whisper heard in the warm model's first continuations:"]
    for line in records_path.read_text().splitlines()[:n]:
        rec = json.loads(line)
        text = (rec.get("continuation_transcript") or "").strip() or "(nothing)"
        lines.append(f'- {rec.get("key")}: "{text}"')
    return lines


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def headline_lines(cfg: QuickstartConfig, res: dict[str, Any]) -> list[str]:
    """Title, and the validation loss on held-out voices (the headline measurement)."""
    train, hv = res["train"], res["heldout"] or {}
    w_final = _final_loss(res["val_curves"]["warm"])
    c_final = _final_loss(res["val_curves"]["cold"])
    cold_reaches = res["cold_tokens_to_warm_final_loss"]
    warm_reaches = res["warm_tokens_to_cold_final_loss"]
    tokens = train["warm"]["tokens"]
    leads = res["warm_below_cold_after_first_eval"]
    return [
        "# twistlm quickstart: TWIST in miniature",
        "",
        f"Warm start (SpeechLM initialised from the text LM "
        f"{cfg.text_lm or 'SmolLM2-135M'}) vs cold start (same architecture, random init), "
        f"same data order and token budget ({tokens:,} tokens, "
        f"{train['warm']['steps']} steps each).",
        "",
        "## Headline: validation loss on voices the models never heard",
        "",
        f"Validation set: {hv.get('n_utterances', '–')} utterances "
        f"({_fmt(hv.get('seconds'), '.0f')} s) of sentences outside the training text, spoken by "
        f"the held-out voices {', '.join(hv.get('voices') or [])}.",
        "",
        f"- Final validation loss: warm **{_fmt(w_final)}**, cold **{_fmt(c_final)}** nats per unit "
        f"(warm - cold = {_fmt(None if w_final is None or c_final is None else w_final - c_final)}).",
        f"- Warm below cold at every validation point after the first: **{leads}**.",
        "- Tokens cold needed to reach warm's final loss: "
        + (
            f"**{cold_reaches:,}**."
            if cold_reaches is not None
            else f"**never within the run** ({tokens:,} tokens)."
        ),
        "- Tokens warm needed to reach cold's final loss: "
        + (f"**{warm_reaches:,}**." if warm_reaches is not None else "never within the run."),
        _count_model_line(res["val_loss_count_models"] or {}, w_final, c_final),
        "",
        "![validation loss](loss.png)",
        "",
    ]


def benchmark_lines(table: str, res: dict[str, Any]) -> list[str]:
    """The benchmark table with its controls, and how to read it."""
    diff_mean = (res["warm_minus_cold"] or {}).get("mean")
    tokens = res["train"]["warm"]["tokens"]
    return [
        "## Benchmarks, with their controls",
        "",
        "Accuracy % [95% CI] (mean log-likelihood per unit decides each pair; a tie counts 0.5). "
        "The controls score the same pairs, tokenized the same way: *length only* picks the "
        "utterance with fewer units; the *unit 3-gram* is a count model trained on the same "
        "training units. **warm - cold** is the paired difference (both models scored the same "
        "pairs; bootstrap over the benchmark's aggregation units). The text topline scores the "
        "pair texts with the text LM under the same mean-per-token rule and, as text benchmarks "
        "such as BLiMP do, under the summed log-probability: per token, a non-word split into "
        "more subword pieces looks *more* likely (its later pieces are predictable), which "
        "pulls the mean rule below chance on sWUGGY. Published rows are the paper's models at "
        "full scale, for orientation only.",
        "",
        table,
        "![accuracy](accuracy.png)",
        "",
        "## Reading it",
        "",
        "- The loss on held-out voices is the measurement this budget can resolve; the benchmark "
        "accuracies are read against the controls in the same table, and a warm - cold difference "
        "counts only where its paired interval excludes 0"
        + (
            f" (on the mean over the four benchmarks: {diff_cell(diff_mean)} points)."
            if diff_mean
            else "."
        ),
        f"- At {res['corpus'].get('hours')} h of synthetic speech and {tokens:,} training tokens "
        "per model, accuracies near chance for both models are what a pilot at this scale "
        "measured (docs/measurements.md). The text topline shows what the pairs allow with text.",
        "",
    ]


def tokenizer_lines(cfg: QuickstartConfig, res: dict[str, Any]) -> list[str]:
    """What the units are and how well they carry across voices (`twistlm tokenizer-report`)."""
    tr = res["tokenizer_report"] or {}
    cv, cb = tr.get("cross_voice") or {}, tr.get("codebook") or {}
    return [
        "## Tokenizer",
        "",
        f"{_tokenizer_line(cfg)} Measured on the held-out speech above "
        "(`twistlm tokenizer-report`): "
        f"{_fmt(tr.get('units_per_second'), '.1f')} units/s, {cb.get('used', '–')}/"
        f"{cb.get('n_units', '–')} units used; same-sentence / different-sentence edit distance "
        f"across voices **{_fmt(cv.get('ratio'))}** (1.0 = the units carry nothing across voices), "
        f"a sentence's twin in the other voice found **{_fmt(pct(cv.get('twin')), '.0f')}%** of "
        f"the time (chance {_fmt(pct(cv.get('chance')), '.0f')}%). See "
        "[tokenizer report](../tokenizer-report/report.md).",
        "",
    ]


def continuation_lines(out: Path, stages: dict[str, Any], copied: list[str]) -> list[str]:
    """The vocoder, both models' continuations beside the prompts' real speech, the samples."""
    from twistlm.eval.genmetrics import generation_metric as gm  # old names read too

    gen = stages.get("generation", {}).get("result") or {}
    gen_cold = stages.get("generation-cold", {}).get("result") or {}
    return [
        "## Speech continuation",
        "",
        _vocoder_line(stages["vocoder"]["result"]),
        "",
        *generation_table(gen, gen_cold),
        "",
        *_transcript_lines(out / "generation" / "records.jsonl"),
        "",
        f"- ASR WER of resynthesis (tokenizer + vocoder): {_fmt(gen.get('resynth_wer'), '.2%')}; "
        f"of the original TTS audio: {_fmt(gen.get('original_wer'), '.2%')}.",
        f"- Continuations (docs/eval.md, generation metrics): token-weighted text-LM perplexity "
        f"of the continuation {_fmt(gm(gen, 'text_ppl_token_weighted_continuation'), '.1f')}, "
        f"GSLM auto-BLEU-2 {_fmt(gm(gen, 'auto_bleu2_gslm_continuation'))}; SlamKit GenPPL "
        f"(prompt + continuation) {_fmt(gm(gen, 'genppl_slamkit'), '.1f')}, SlamKit auto-BLEU-2 "
        f"{_fmt(gm(gen, 'auto_bleu2_slamkit'))}; unit bigram repetition "
        f"{_fmt(gen.get('unit_bigram_repetition'))}."
        + (
            " Whisper heard no words in any continuation, so transcript metrics are undefined "
            "(docs/vocoder.md measures the vocoder)."
            if gen.get("n_prompts") and gen.get("n_empty_transcripts") == gen.get("n_prompts")
            else ""
        ),
        "",
        *[f"- [{c}]({c})" for c in copied],
        "",
    ]


def settings_lines(cfg: QuickstartConfig, res: dict[str, Any]) -> list[str]:
    """The corpus, tokenizer, LM and precision settings, and every stage's time."""
    corpus, tok, train, seconds = res["corpus"], res["units"], res["train"], res["stage_seconds"]
    return [
        "## Settings and timings",
        "",
        f"- Corpus: {corpus.get('hours')} h, {corpus.get('n_utterances')} utterances, voices "
        f"{', '.join(corpus.get('voices') or [])}; benchmarks by held-out voices "
        f"{', '.join(corpus.get('heldout_voices') or [])}.",
        f"- Tokenizer: {cfg.features} at {cfg.frame_rate:g} Hz, k-means {cfg.n_units}, "
        f"dedup; {_fmt(tok.get('units_per_second'), '.1f')} units per second of speech.",
        f"- LM: {cfg.n_layers or 'all'} layers, blocks {cfg.batch_size} x {cfg.block_size}, "
        f"lr {cfg.lr:g} cosine, warm init `{cfg.init}` (scale {cfg.init_scale:g}, output "
        f"`{cfg.out_init}`).",
        f"- Precision: {train.get('warm', {}).get('precision', 'fp32')}"
        f"{', compiled' if train.get('warm', {}).get('compile') else ''} (bf16 weights with "
        "fp32 master weights where the CPU has AMX, else fp32; fused AdamW; compiled only when "
        "each model trains 10 minutes or more; see docs/train.md); calibrated "
        f"{_fmt(train.get('warm', {}).get('calibrated_tokens_per_s'), '.0f')} training tokens/s.",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.0f} |" for k, v in seconds.items()],
        f"| **total** | **{sum(seconds.values()):.0f}** |",
        "",
    ]
