"""The quickstart pipeline: one resumable stage after another, each writing its own folder.

Layout of ``cfg.out``::

    corpus/       synthetic training speech (wavs/, manifest.jsonl)        twistlm synth corpus
    tokenizer/    offline tokenizer (Whisper-base encoder + k-means)       twistlm fit-kmeans
    units/        unit shards of the corpus                                twistlm tokenize
    benchmarks/   sWUGGY / sBLIMP / sSC / tSC-style sets, held-out voices  twistlm synth benchmarks
                  (2x candidates, cut so "fewer units wins" sits at chance: needs the tokenizer)
    heldout/      other sentences spoken by every held-out voice (validation, tokenizer report)
    units-heldout/ unit shards of heldout/ (the validation set of both LMs)
    tokenizer-report/ cross-voice consistency of the units                 twistlm tokenizer-report
    runs/warm, runs/cold   training runs (metrics.jsonl, checkpoints/, model/)   twistlm train
    models/warm, models/cold -> the trained SpeechLM dirs (copies of runs/*/model)
    eval/warm, eval/cold   results.json, results.md, submission/           twistlm eval
    controls/     length-only and unit n-gram rules, paired warm - cold differences
    scaling/      (--recipe long) both models scored at earlier budgets: runs/*/snapshots/
    vocoder/      vocoder training run; vocoder/vocoder is the exported model  twistlm train-vocoder
    generation/   continuations of held-out prompts by the warm model, ASR, PPL, auto-BLEU,
                  and the same metrics for the prompts' real speech (resynthesized, original)
    generation-cold/  the cold model's continuations of the same prompts
    cache/units/  units of every benchmark utterance (made while balancing, reused by eval)
    report/       report.md, loss.png, accuracy.png, scaling.png, results.json, samples/*.wav
    stages.json   finished stages with their timings and results (rerun skips them)
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twistlm.config import ConfigError, save_config, to_dict
from twistlm.hardware import bf16_is_fast, precision_name
from twistlm.io import read_json, write_json
from twistlm.quickstart.config import QuickstartConfig, budget_steps

BENCH_KINDS = ("swuggy", "sblimp", "ssc", "tsc")


class Stages:
    """Runs named stages once: finished ones are recorded in ``stages.json`` and skipped."""

    def __init__(self, out: Path, names: list[str]):
        self.out = out
        self.path = out / "stages.json"
        self.names = names
        self.done: dict[str, dict[str, Any]] = read_json(self.path) if self.path.exists() else {}
        self.t0 = time.time()
        self.ran_any = False  # whether a stage ran (not skipped) in this invocation

    def run(self, name: str, what: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        i = self.names.index(name) + 1
        n = len(self.names)
        if name in self.done:
            rec = self.done[name]
            print(f"[{i}/{n}] {name}: done earlier in {rec['seconds']:.0f} s, skipped")
            return rec["result"]
        elapsed = time.time() - self.t0
        print(f"\n[{i}/{n}] {name}: {what}  (elapsed {elapsed / 60:.1f} min)", flush=True)
        t = time.time()
        result = fn()
        secs = time.time() - t
        self.ran_any = True
        self.done[name] = {"seconds": round(secs, 1), "result": result}
        write_json(self.path, self.done)
        print(f"[{i}/{n}] {name}: finished in {secs:.0f} s", flush=True)
        return result

    def seconds(self) -> dict[str, float]:
        return {k: v["seconds"] for k, v in self.done.items()}


STAGES = [
    "corpus",
    "tokenizer",
    "tokenize",
    "benchmarks",
    "heldout-speech",
    "tokenizer-report",
    "train-warm",
    "train-cold",
    "eval-warm",
    "eval-cold",
    "controls",
    "scaling",
    "vocoder",
    "generation",
    "generation-cold",
    "report",
]


def stage_names(cfg: QuickstartConfig) -> list[str]:
    """The stages of this run (the scaling study only where asked for)."""
    return [s for s in STAGES if s != "scaling" or cfg.scaling_points > 0]


def _train_config(
    cfg: QuickstartConfig,
    start: str,
    units: Path,
    run_dir: Path,
    steps: int,
    decay_steps: int,
    max_seconds: float | None,
):
    from twistlm.train.config import (
        BudgetConfig,
        DataConfig,
        LoggingConfig,
        ModelConfig,
        OptimConfig,
        RuntimeConfig,
        ScheduleConfig,
        TrainConfig,
    )

    eval_every = max(1, decay_steps // cfg.eval_points)
    return TrainConfig(
        # validation: other sentences by voices the LMs never hear (see _heldout_speech)
        data=DataConfig(
            train=str(units),
            val=str(units.parent / "units-heldout"),
            block_size=cfg.block_size,
            val_max_utterances=300,
        ),
        model=ModelConfig(
            text_lm=cfg.text_lm,
            start=start,
            init=cfg.init,
            init_scale=cfg.init_scale,
            out_init=cfg.out_init,
            n_layers=cfg.n_layers,
        ),
        optim=OptimConfig(lr=cfg.lr, batch_size=cfg.batch_size),
        schedule=ScheduleConfig(
            kind="cosine", warmup_steps=max(1, decay_steps // 20), decay_steps=decay_steps
        ),
        budget=BudgetConfig(max_steps=steps, max_seconds=max_seconds),
        runtime=RuntimeConfig(),
        logging=LoggingConfig(
            run_dir=str(run_dir),
            log_every=max(1, eval_every // 4),
            eval_every=eval_every,
            eval_at_start=True,
            # a full-depth checkpoint is ~1.6 GB (weights + AdamW state), ~15 s to write on the
            # 2-core machine: one mid-run and the final one suffice for resuming
            checkpoint_every=max(eval_every, decay_steps // 2),
            keep_checkpoints=1,
            snapshot_steps=budget_steps(decay_steps, cfg.scaling_points),
        ),
        seed=cfg.seed,
        resume=True,
    )


def check_same_settings(cfg: QuickstartConfig, path: Path) -> None:
    """A rerun resumes only with the settings the folder was made with (stages are skipped)."""
    import yaml

    if not path.exists():
        return
    old = yaml.safe_load(path.read_text()) or {}
    new = to_dict(cfg)
    diff = sorted(k for k in new if k in old and old[k] != new[k])
    if diff:
        changes = ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in diff)
        raise ConfigError(
            f"{path.parent} was made with other settings ({changes}); "
            "rerun with the same options to resume, or use a new --out"
        )


def measure_tokens_per_s(
    cfg: QuickstartConfig, n_units: int, max_steps: int = 8
) -> tuple[float, float]:
    """(steady training tokens/s, warm-up seconds) of the quickstart model on this machine.

    The first steps of a CPU run are several times slower than the rest (measured on an AMX
    Xeon: 3 steps at 100-250 tokens/s, then ~550 at full depth; kernel set-up and first-touch
    memory), so steps are timed until two in a row agree within 15% and their mean is the
    steady rate. The warm-up is what the slow steps cost beyond that rate: the plan subtracts it
    from the time budget, because the training run pays it again.
    """
    import torch

    from twistlm.lm.warm_start import build_speech_lm

    lm = build_speech_lm(cfg.text_lm, n_units, start="cold", n_layers=cfg.n_layers, seed=cfg.seed)
    model = lm.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    gen = torch.Generator().manual_seed(cfg.seed)
    ids = torch.randint(
        lm.vocab.offset, lm.vocab.vocab_size, (cfg.batch_size, cfg.block_size), generator=gen
    )
    fast = bf16_is_fast("cpu")
    times: list[float] = []
    for _ in range(max_steps):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
        if len(times) >= 3 and abs(times[-1] - times[-2]) <= 0.15 * min(times[-2:]):
            break
    steady = sum(times[-2:]) / 2
    warmup = sum(max(0.0, t - steady) for t in times)
    return ids.numel() / max(steady, 1e-6), warmup


def _train_warm(cfg: QuickstartConfig, units: Path, out: Path) -> dict[str, Any]:
    from twistlm.data.shards import TOKENIZER_INFO

    n_units = int(read_json(units / TOKENIZER_INFO)["n_units"])
    tok_per_s, warmup_s = measure_tokens_per_s(cfg, n_units)
    planned = cfg.planned_steps(tok_per_s, warmup_s)
    precision = precision_name("cpu")
    print(
        f"measured {tok_per_s:.0f} training tokens/s ({precision}) after a {warmup_s:.0f} s "
        f"warm-up -> planning {planned} steps"
    )
    # the wall-clock cap is a safety net 25% above the plan; the step plan is the budget
    res = _train(cfg, "warm", units, out, planned, planned, 1.25 * cfg.train_seconds_per_model)
    return res | {
        "planned_steps": planned,
        "calibrated_tokens_per_s": tok_per_s,
        "calibrated_warmup_s": warmup_s,
        "precision": precision,
    }


def run_quickstart(cfg: QuickstartConfig) -> dict[str, Any]:
    """Run (or resume) every stage; returns the combined results (also report/results.json)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    check_same_settings(cfg, out / "quickstart.yaml")
    save_config(cfg, out / "quickstart.yaml")
    st = Stages(out, stage_names(cfg))
    t_start = time.time()

    # 1. speech: training corpus (training voices)
    from twistlm.synth.benchmarks import synthesize_benchmarks
    from twistlm.synth.corpus import synthesize_corpus

    corpus = st.run(
        "corpus",
        f"synthesizing {cfg.hours:g} h of multi-speaker speech",
        lambda: dataclasses.asdict(
            synthesize_corpus(out / "corpus", hours=cfg.hours, seed=cfg.seed, workers=cfg.workers)
        ),
    )
    # 2-3. tokenizer: features + k-means, then the corpus to unit shards
    tok_dir = out / "tokenizer"
    st.run(
        "tokenizer",
        "the packaged offline tokenizer (Whisper base layer 6, 25 Hz, k=500)"
        if cfg.uses_packaged_tokenizer
        else f"fitting the offline tokenizer ({cfg.features}, k={cfg.n_units})",
        lambda: (
            _packaged_tokenizer(tok_dir)
            if cfg.uses_packaged_tokenizer
            else _fit_tokenizer(cfg, out / "corpus", tok_dir)
        ),
    )
    units = out / "units"
    st.run(
        "tokenize",
        "tokenizing the corpus into unit shards",
        lambda: _tokenize(tok_dir, out / "corpus" / "wavs", units),
    )
    # 4. benchmarks by held-out voices, balanced on the units the models will score
    benches = st.run(
        "benchmarks",
        "synthesizing sWUGGY/sBLIMP/sSC/tSC-style pairs with held-out voices",
        lambda: _benchmarks(cfg, out, tok_dir, synthesize_benchmarks),
    )
    bench_paths = benches["paths"]
    st.run(
        "heldout-speech",
        f"synthesizing {cfg.n_heldout_sentences} other sentences with every held-out voice",
        lambda: _heldout_speech(cfg, out),
    )
    st.run(
        "tokenizer-report",
        "held-out voices: validation units and the tokenizer's cross-voice consistency",
        lambda: _tokenizer_report(out, tok_dir),
    )

    # 5-6. warm and cold SpeechLMs: identical architecture, data order and token budget
    warm = st.run(
        "train-warm",
        f"training the warm-started SpeechLM (~{cfg.train_seconds_per_model / 60:.1f} min)",
        lambda: _train_warm(cfg, units, out),
    )
    st.run(
        "train-cold",
        f"training the cold-started twin for the same {warm['steps']} steps",
        lambda: _train(cfg, "cold", units, out, warm["steps"], warm["planned_steps"], None),
    )

    # 7-8. likelihood benchmarks (+ the text topline once)
    for start in ("warm", "cold"):
        st.run(
            f"eval-{start}",
            f"scoring the benchmarks with the {start} model",
            lambda start=start: _evaluate(
                cfg,
                out,
                start,
                bench_paths,
                tok_dir,
                topline=cfg.topline and start == "warm",
                controls_train=units if start == "warm" else None,
            ),
        )

    st.run(
        "controls",
        "controls on the same pairs (length only, unit 3-gram) and paired warm - cold differences",
        lambda: _controls(out),
    )

    if cfg.scaling_points:
        st.run(
            "scaling",
            f"scoring both models at {cfg.scaling_points - 1} earlier budgets",
            lambda: _scaling(cfg, out, bench_paths, tok_dir),
        )

    # 9. vocoder
    st.run(
        "vocoder",
        "the packaged vocoder (units -> WORLD features -> WORLD, voice flite:slt)"
        if cfg.uses_packaged_vocoder
        else f"training a unit vocoder on the corpus's flite:slt speech "
        f"(~{cfg.vocoder_seconds / 60:.1f} min)",
        lambda: (
            _packaged_vocoder(out) if cfg.uses_packaged_vocoder else _train_vocoder(cfg, out, units)
        ),
    )

    # the trained models name their tokenizer and vocoder, so `twistlm continue --model
    # quickstart/models/warm` and `twistlm eval` need no extra flags
    for start in ("warm", "cold"):
        link_components(out / "models" / start, tok_dir, out / "vocoder" / "vocoder")

    # 10. spoken continuations of held-out prompts + generation metrics (warm, then cold)
    st.run(
        "generation",
        f"continuing {cfg.n_prompts} held-out spoken prompts with the warm model",
        lambda: _generation(cfg, out, bench_paths, tok_dir, "warm"),
    )
    st.run(
        "generation-cold",
        f"continuing the same {cfg.n_prompts} prompts with the cold model",
        lambda: _generation(cfg, out, bench_paths, tok_dir, "cold"),
    )

    # 11. report
    from twistlm.quickstart.report import write_report

    def _report():
        return write_report(cfg, out, st.seconds(), corpus, benches)

    if st.ran_any:  # a stage ran in this invocation (e.g. one added since): write it again
        st.done.pop("report", None)
    st.run("report", "writing report/", _report)
    combined = read_json(out / "report" / "results.json")
    print(f"\nquickstart finished in {(time.time() - t_start) / 60:.1f} min (this invocation)")
    print((out / "report" / "table.md").read_text())
    print(f"report: {out / 'report' / 'report.md'}")
    return combined


# ---------------------------------------------------------------- stages
def _benchmarks(cfg: QuickstartConfig, out: Path, tok_dir: Path, synthesize_benchmarks):
    from twistlm.synth.benchmarks import DIRS

    root = out / "benchmarks"
    lengths = _unit_counter(tok_dir, out / "cache" / "units")
    counts: dict[str, int] = {}
    for kinds, n in ((("swuggy", "sblimp"), cfg.n_pairs), (("ssc", "tsc"), cfg.n_story_pairs)):
        s = synthesize_benchmarks(
            root,
            n_pairs=n,
            seed=cfg.seed,
            benchmarks=kinds,
            workers=cfg.workers,
            lengths=lengths,
        )
        counts.update(s.n_pairs)
    return {"paths": {k: str(root / DIRS[k]) for k in counts}, "n_pairs": counts}


def _unit_counter(tok_dir: Path, cache_dir: Path):
    """paths -> number of (deduplicated) units, tokenized into the cache `twistlm eval` reads.

    The length-only control counts units, so the benchmarks are balanced on unit counts.
    """

    def lengths(paths: list[str]) -> dict[str, float]:
        from twistlm.eval.cache import UnitCache, tokenizer_fingerprint, utterance_key
        from twistlm.eval.readers import AudioRef
        from twistlm.eval.run import tokenize_refs
        from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

        tok = UnitTokenizer.from_pretrained(tok_dir)
        info = tok.info()
        cache = UnitCache(cache_dir, tokenizer_fingerprint(info, tok_dir, tok.centroids), info)
        # the key is the file stem, as the benchmark readers name each utterance
        refs = {p: AudioRef(Path(p).stem, p) for p in paths}
        units, _ = tokenize_refs(list(refs.values()), tok, cache)
        keys = {p: utterance_key(r.key, r.path, None) for p, r in refs.items()}
        return {p: float(len(units[k])) for p, k in keys.items() if k in units}

    return lengths


def _heldout_speech(cfg: QuickstartConfig, out: Path) -> dict[str, Any]:
    """Sentences outside the training text, spoken by every held-out voice."""
    from twistlm.synth.corpus import read_manifest
    from twistlm.synth.parallel_set import synthesize_parallel_set

    training_text = {r["text"] for r in read_manifest(out / "corpus" / "manifest.jsonl")}
    manifest = synthesize_parallel_set(
        out / "heldout",
        n_sentences=cfg.n_heldout_sentences,
        seed=cfg.seed,
        workers=cfg.workers,
        exclude=training_text,
    )
    rows = read_manifest(manifest)
    return {
        "manifest": str(manifest),
        "n_utterances": len(rows),
        "voices": sorted({r["voice"] for r in rows}),
        "seconds": round(sum(r["seconds"] for r in rows), 1),
    }


def _tokenizer_report(out: Path, tok_dir: Path) -> dict[str, Any]:
    """Validation shards of the held-out speech, and the cross-voice report of the tokenizer."""
    from twistlm.io import ErrorLog
    from twistlm.synth.corpus import read_manifest
    from twistlm.tokenizer.corpus import tokenize_corpus
    from twistlm.tokenizer.report import measure_tokenizer, write_report
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

    manifest = out / "heldout" / "manifest.jsonl"
    tokenize_corpus(str(tok_dir), manifest, out / "units-heldout")
    tok = UnitTokenizer.from_pretrained(tok_dir)
    errors = ErrorLog(out / "tokenizer-report" / "errors.jsonl")
    res = measure_tokenizer(tok, read_manifest(manifest), errors)
    write_report(out / "tokenizer-report", {tok.name or "tokenizer": res}, manifest)
    return res


def _controls(out: Path) -> dict[str, Any]:
    """The controls `twistlm eval` scored beside the warm model (same pairs, same units), and
    the paired warm - cold difference per benchmark and on the mean."""
    from twistlm.eval.controls import ngram_cross_entropy, paired_benchmark_differences
    from twistlm.train.data import read_units

    diff = paired_benchmark_differences(
        _pair_records(out / "eval" / "warm"), _pair_records(out / "eval" / "cold")
    )
    n_units = int(read_json(out / "units" / "tokenizer.json")["n_units"])
    train = [u.tolist() for u in read_units(out / "units").units]
    val = [u.tolist() for u in read_units(out / "units-heldout").units]
    res = {
        # what counting alone reaches on the validation set (same tokens as the LMs' val loss)
        "val_loss_count_models": {
            name: ngram_cross_entropy(train, val, n_units, order)
            for name, order in (("unigram", 1), ("bigram", 2), ("trigram", 3))
        },
        "controls": read_json(out / "eval" / "warm" / "results.json").get("controls") or {},
        "warm_minus_cold": {k: d.to_dict() for k, d in diff.items()},
    }
    write_json(out / "controls" / "controls.json", res)
    return res


KMEANS_FIT_HOURS = 1.0  # k-means sees at most this much of the corpus (seeded, all voices)


def _fit_sample(rows: list[dict], hours: float, seed: int) -> list[str]:
    """Paths of a seeded sample of the corpus of at most ``hours`` (all of it when shorter)."""
    import random

    rows = list(rows)
    random.Random(seed).shuffle(rows)
    picked, total = [], 0.0
    for r in rows:
        if picked and total + float(r.get("seconds", 0.0)) > hours * 3600:
            break
        picked.append(r["path"])
        total += float(r.get("seconds", 0.0))
    return picked


def _pair_records(eval_dir: Path) -> dict[str, list[dict]]:
    """Per-pair outcomes `twistlm eval` wrote (eval_dir/pairs/{kind}.jsonl)."""
    import json

    d = eval_dir / "pairs"
    return {
        k: [json.loads(ln) for ln in (d / f"{k}.jsonl").read_text().splitlines() if ln.strip()]
        for k in BENCH_KINDS
        if (d / f"{k}.jsonl").is_file()
    }


def _scaling(
    cfg: QuickstartConfig, out: Path, bench_paths: dict[str, str], tok_dir: Path
) -> dict[str, Any]:
    """Both models at every budget: validation loss, benchmark accuracy, paired warm - cold.

    The earlier budgets are the snapshots of the two runs (same steps, same data order); the
    last is the final models, already scored by eval-warm / eval-cold.
    """
    from twistlm.eval.controls import paired_benchmark_differences
    from twistlm.quickstart.report import mean_accuracy, read_metrics

    def snaps(start: str) -> dict[int, Path]:
        d = out / "runs" / start / "snapshots"
        found = sorted(d.glob("step-*")) if d.is_dir() else []
        return {int(p.name.split("-")[1]): p for p in found}

    warm, cold = snaps("warm"), snaps("cold")
    val = {
        s: {
            int(m["step"]): float(m["val_loss"])
            for m in read_metrics(out / "runs" / s / "metrics.jsonl")
            if m.get("val_loss") is not None
        }
        for s in ("warm", "cold")
    }
    stages = read_json(out / "stages.json")
    final_step = int(stages["train-cold"]["result"]["steps"])
    tokens_per_step = cfg.block_size * cfg.batch_size
    points = []
    budgets = sorted(step for step in set(warm) & set(cold) if step < final_step)
    for step in [*budgets, final_step]:
        if step == final_step:
            dirs = {s: out / "eval" / s for s in ("warm", "cold")}
        else:
            dirs = {s: out / "scaling" / f"{s}-step{step:08d}" for s in ("warm", "cold")}
            for start, path in (("warm", warm[step]), ("cold", cold[step])):
                _evaluate(
                    cfg, out, start, bench_paths, tok_dir, topline=False,
                    model_dir=path, out_dir=dirs[start],
                )  # fmt: skip
        diff = paired_benchmark_differences(
            _pair_records(dirs["warm"]), _pair_records(dirs["cold"])
        )
        acc = {s: read_json(dirs[s] / "results.json")["benchmarks"] for s in dirs}
        points.append(
            {
                "step": step,
                "tokens": step * tokens_per_step,
                "val_loss": {s: val[s].get(step) for s in val},
                "mean_accuracy": {s: mean_accuracy(acc[s]) for s in acc},
                "accuracy": {s: {k: v.get("accuracy") for k, v in acc[s].items()} for s in acc},
                "warm_minus_cold": {k: d.to_dict() for k, d in diff.items()},
            }
        )
    first = next((p["tokens"] for p in points if _interval_above_zero(p)), None)
    res = {"points": points, "first_budget_warm_beats_cold": first}
    write_json(out / "scaling" / "scaling.json", res)
    return res


def _interval_above_zero(point: dict[str, Any]) -> bool:
    mean = point["warm_minus_cold"].get("mean") or {}
    return bool(mean.get("ci95")) and mean["ci95"][0] > 0


def _fit_tokenizer(cfg: QuickstartConfig, corpus: Path, tok_dir: Path) -> dict[str, Any]:
    from twistlm.quickstart.config import QUICKSTART_FEATURES
    from twistlm.synth.corpus import read_manifest
    from twistlm.tokenizer.unit_tokenizer import build_offline_tokenizer

    wavs = _fit_sample(read_manifest(corpus / "manifest.jsonl"), KMEANS_FIT_HOURS, cfg.seed)
    features, kw = QUICKSTART_FEATURES[cfg.features]
    tok = build_offline_tokenizer(
        wavs,
        n_units=cfg.n_units,
        features=features,
        frame_rate=cfg.frame_rate,
        seed=cfg.seed,
        **kw,
    )
    tok.save_pretrained(tok_dir)
    return tok.info()


def _tokenize(tok_dir: Path, audio: Path, units: Path) -> dict[str, Any]:
    from twistlm.tokenizer.corpus import tokenize_corpus

    s = tokenize_corpus(str(tok_dir), audio, units)
    d = dataclasses.asdict(s) if dataclasses.is_dataclass(s) else dict(s)
    d["units_per_second"] = (
        d["units"] / max(d["seconds"], 1e-9) if "units" in d and "seconds" in d else None
    )
    return d


def _train(
    cfg: QuickstartConfig,
    start: str,
    units: Path,
    out: Path,
    steps: int,
    decay_steps: int,
    max_seconds: float | None,
) -> dict[str, Any]:
    from twistlm.train.trainer import train

    run_dir = out / "runs" / start
    tcfg = _train_config(cfg, start, units, run_dir, steps, decay_steps, max_seconds)
    res = train(tcfg)
    model_dir = out / "models" / start
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.copytree(res.model_dir, model_dir)
    return {
        "steps": res.steps,
        "tokens": res.tokens,
        "loss": res.loss,
        "val_loss": res.val_loss,
        "elapsed_s": res.elapsed_s,
        "stopped_by": res.stopped_by,
        "model_dir": str(model_dir),
        "run_dir": str(run_dir),
        "config": to_dict(tcfg),
    }


def _evaluate(
    cfg: QuickstartConfig,
    out: Path,
    start: str,
    bench_paths: dict[str, str],
    tok_dir: Path,
    topline: bool,
    controls_train: Path | None = None,
    model_dir: Path | None = None,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    from twistlm.eval.run import evaluate

    out_dir = out_dir or out / "eval" / start
    res = evaluate(
        model_dir or out / "models" / start,
        {k: bench_paths[k] for k in BENCH_KINDS if k in bench_paths},
        tokenizer=str(tok_dir),
        out_dir=out_dir,
        autocast=bf16_is_fast("cpu"),
        cache_dir=out / "cache" / "units",
        topline=topline,
        text_lm=cfg.text_lm,
        controls_train=controls_train,
    )
    return {"results": str(out_dir / "results.json"), "stats": res.stats}


def _packaged_tokenizer(tok_dir: Path) -> dict[str, Any]:
    from twistlm.packaged import packaged_tokenizer_dir
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer

    if tok_dir.exists():
        shutil.rmtree(tok_dir)
    shutil.copytree(packaged_tokenizer_dir(), tok_dir)
    return UnitTokenizer.from_pretrained(tok_dir).info() | {"packaged": True}


def _packaged_vocoder(out: Path) -> dict[str, Any]:
    from twistlm.packaged import packaged_vocoder_dir

    dst = out / "vocoder" / "vocoder"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(packaged_vocoder_dir(), dst)
    return {"vocoder_dir": str(dst), "packaged": True}


# the corpus voice a vocoder trained by the quickstart speaks in (a training voice)
VOCODER_VOICE = "flite-slt"


def _train_vocoder(cfg: QuickstartConfig, out: Path, units: Path) -> dict[str, Any]:
    """An acoustic-model vocoder (WORLD target) on the corpus's flite:slt utterances, for
    ``cfg.vocoder_seconds`` (the step count that fills it is estimated at 1 step/s)."""
    from twistlm.vocoder.acoustic_train import AcousticTrainConfig, train_acoustic_vocoder

    small = dict(dim=64, unit_layers=1, layers=2) if cfg.smoke else {}
    vcfg = AcousticTrainConfig(
        audio_dir=str(out / "corpus" / "wavs"),
        units_dir=str(units),
        out_dir=str(out / "vocoder"),
        voice=VOCODER_VOICE,
        max_steps=max(20, int(cfg.vocoder_seconds)),
        max_seconds=cfg.vocoder_seconds,
        seed=cfg.seed,
        **small,
    )
    res = train_acoustic_vocoder(vcfg)
    return {
        "vocoder_dir": str(out / "vocoder" / "vocoder"),
        "packaged": False,
        "steps": res["steps"],
        "seconds": res["seconds"],
        "val_feature_l1": res["val_feature_l1"],
    }


def link_components(model_dir: Path, tok_dir: Path, vocoder_dir: Path) -> None:
    """Record the tokenizer and vocoder paths in a SpeechLM dir's twistlm.json (atomically)."""
    meta_path = model_dir / "twistlm.json"
    d = read_json(meta_path)
    meta = d.setdefault("meta", {})
    meta.setdefault("tokenizer", {})["path"] = str(tok_dir.resolve())
    meta["vocoder"] = str(vocoder_dir.resolve())
    write_json(meta_path, d)


def _prompts(bench_paths: dict[str, str], n: int) -> list:
    """Held-out prompts: the first ``n`` true-ending passages of the tSC-style set (held-out voices)."""
    from twistlm.eval.readers import read_benchmark

    kind = "tsc" if "tsc" in bench_paths else next(iter(bench_paths))
    pairs = read_benchmark(kind, bench_paths[kind])
    return [p.positive for p in pairs[:n]]


def _generation(
    cfg: QuickstartConfig, out: Path, bench_paths: dict[str, str], tok_dir: Path, start: str
) -> dict[str, Any]:
    """Continue the held-out prompts with model ``start``; the warm run also measures the
    prompts' real speech (resynthesis WER, and its transcripts' text metrics)."""
    from twistlm.eval.generation import evaluate_generation
    from twistlm.eval.readers import read_benchmark

    prompts = _prompts(bench_paths, cfg.n_prompts)
    kind = "tsc" if "tsc" in bench_paths else next(iter(bench_paths))
    refs = {
        p.positive.key: p.positive_text
        for p in read_benchmark(kind, bench_paths[kind])[: cfg.n_prompts]
        if p.positive_text
    }
    asr = None
    if not cfg.asr:
        asr = _no_asr
    res = evaluate_generation(
        str(out / "models" / start),
        str(tok_dir),
        str(out / "vocoder" / "vocoder"),
        prompts,
        out_dir=out / ("generation" if start == "warm" else f"generation-{start}"),
        seed=cfg.seed,
        asr_model=asr,
        text_lm=cfg.text_lm,
        references=refs,
        n_samples=cfg.n_prompts,
        score="continuation",
        resynth=cfg.asr and start == "warm",  # resynthesis needs transcripts; once
    )
    return res.to_dict() | {"records": None}


def _no_asr(wav) -> str:  # ASR switched off: empty transcripts (metrics then read None)
    return ""
