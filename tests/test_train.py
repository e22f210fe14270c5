"""Training: loss goes down, resume == uninterrupted, 2-process gloo DDP == 1 process, data order,
train_step alone, exported model dirs name the shards' tokenizer."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from twistlm.config import load_config
from twistlm.io import ErrorLog
from twistlm.lm.vocab import UnitVocab
from twistlm.train import TrainConfig, train
from twistlm.train.data import BlockOrder, Utterances, read_units, split
from twistlm.train.synthetic import synthetic_units, write_synthetic_shards
from twistlm.train.trainer import latest_checkpoint, lr_at, train_step


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_llama):
    root = tmp_path_factory.mktemp("train")
    src = tiny_llama(
        64, hidden=32, layers=2, heads=4, kv_heads=2, max_positions=128, tie=True, seed=0
    )
    src.save_pretrained(root / "src")
    write_synthetic_shards(root / "shards", 240, n_units=40, seed=0, per_shard=100)
    return root


def _cfg(root, run, *extra):
    return load_config(
        TrainConfig,
        None,
        [
            f"data.train={root / 'shards'}",
            "data.block_size=32",
            "data.val_fraction=0.1",
            f"model.text_lm={root / 'src'}",
            "optim.lr=3e-3",
            "optim.batch_size=4",
            "schedule.warmup_steps=3",
            "budget.max_steps=30",
            f"logging.run_dir={run}",
            "logging.eval_every=10",
            "logging.log_every=1",
            "logging.checkpoint_every=0",
            "logging.progress=false",
            "runtime.precision=fp32",
            "runtime.threads=1",
            *extra,
        ],
    )


def _metrics(run):
    return [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def test_training_lowers_val_loss_and_writes_outputs(setup, tmp_path):
    res = train(_cfg(setup, tmp_path / "r", "optim.lr=1e-2", "model.start=cold"))
    m = _metrics(tmp_path / "r")
    vals = [r["val_loss"] for r in m if "val_loss" in r]
    assert [r["step"] for r in m if "val_loss" in r] == [0, 10, 20, 30]
    assert all(a > b for a, b in zip(vals, vals[1:], strict=False)), vals
    assert vals[-1] < vals[0] - 0.1, vals
    assert res.steps == 30 and res.tokens == 30 * 4 * 32 and res.stopped_by == "max_steps"
    assert all(
        {"step", "tokens", "loss", "lr", "tokens_per_s", "elapsed_s"} <= set(r) for r in m[1:]
    )
    from twistlm.lm.model import SpeechLM

    lm = SpeechLM.from_pretrained(res.model_dir)
    assert lm.meta["trained"]["steps"] == 30 and lm.vocab.n_units == 40
    assert (tmp_path / "r" / "config.yaml").exists() and (tmp_path / "r" / "result.json").exists()


def test_resume_matches_uninterrupted(setup, tmp_path):
    full = tmp_path / "full"
    train(_cfg(setup, full, "budget.max_steps=12", "logging.checkpoint_every=4"))
    part = tmp_path / "part"
    # "interrupted" after 8 steps (same cosine horizon), then resumed to 12
    train(
        _cfg(
            setup,
            part,
            "budget.max_steps=8",
            "schedule.decay_steps=12",
            "logging.checkpoint_every=4",
        )
    )
    assert latest_checkpoint(part).name == "step-00000008"
    train(_cfg(setup, part, "budget.max_steps=12", "schedule.decay_steps=12", "resume=true"))
    a = {r["step"]: r for r in _metrics(full)}
    b = {r["step"]: r for r in _metrics(part)}
    assert sorted(a) == sorted(b)
    for s in range(1, 13):
        assert b[s]["loss"] == pytest.approx(a[s]["loss"], abs=1e-6), s
    assert b[12]["val_loss"] == pytest.approx(a[12]["val_loss"], abs=1e-6)


def test_snapshots_are_the_model_at_their_step(setup, tmp_path):
    """A snapshot is a loadable SpeechLM equal to the checkpoint of that step, validated there."""
    from safetensors.torch import load_file

    from twistlm.lm.model import SpeechLM

    run = tmp_path / "snap"
    train(
        _cfg(
            setup,
            run,
            "budget.max_steps=6",
            "logging.eval_every=0",
            "logging.checkpoint_every=2",
            "logging.keep_checkpoints=3",
            "logging.snapshot_steps=[2, 4]",
        )
    )
    snaps = sorted(p.name for p in (run / "snapshots").iterdir())
    assert snaps == ["step-00000002", "step-00000004"]
    for step in (2, 4):
        snap = run / "snapshots" / f"step-{step:08d}"
        ckpt = run / "checkpoints" / f"step-{step:08d}"
        a, b = load_file(snap / "model.safetensors"), load_file(ckpt / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert SpeechLM.from_pretrained(snap).meta["trained"]["steps"] == step
    final = load_file(run / "model" / "model.safetensors")
    assert not all(torch.equal(final[k], a[k]) for k in a)  # the final model moved on
    assert [r["step"] for r in _metrics(run) if "val_loss" in r] == [0, 2, 4, 6]


def test_budgets_stop(setup, tmp_path):
    r = train(
        _cfg(
            setup,
            tmp_path / "t",
            "budget.max_steps=null",
            "budget.max_tokens=600",
            "schedule.kind=inverse_sqrt",
        )
    )
    assert r.stopped_by == "max_tokens" and r.steps == 5  # ceil(600 / 128)
    r = train(
        _cfg(
            setup,
            tmp_path / "s",
            "budget.max_steps=null",
            "budget.max_seconds=0",
            "schedule.kind=constant",
        )
    )
    assert r.stopped_by == "max_seconds" and r.steps == 0


def test_grad_accum_equals_bigger_batch(setup, tmp_path):
    a = train(_cfg(setup, tmp_path / "a", "budget.max_steps=3", "optim.batch_size=4"))
    b = train(
        _cfg(
            setup, tmp_path / "b", "budget.max_steps=3", "optim.batch_size=2", "optim.grad_accum=2"
        )
    )
    la, lb = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    for x, y in zip(la[1:], lb[1:], strict=True):
        assert y["loss"] == pytest.approx(x["loss"], abs=1e-5)
    assert a.tokens == b.tokens


@pytest.mark.slow  # two fresh interpreters + torchrun: ~15 s idle, ~50 s on a loaded machine
@pytest.mark.skipif(sys.platform != "linux", reason="torchrun gloo test on linux only")
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_ddp_two_processes_match_one(setup, tmp_path, strategy):
    one = tmp_path / "one"
    train(_cfg(setup, one, "budget.max_steps=4", "optim.batch_size=4"))
    two = tmp_path / "two"
    overrides = [
        f"data.train={setup / 'shards'}",
        "data.block_size=32",
        "data.val_fraction=0.1",
        f"model.text_lm={setup / 'src'}",
        "optim.lr=3e-3",
        "optim.batch_size=2",  # 2 ranks x 2 = the same global batch of 4 blocks
        "schedule.warmup_steps=3",
        "budget.max_steps=4",
        f"logging.run_dir={two}",
        "logging.eval_every=10",
        "logging.log_every=1",
        "logging.progress=false",
        "runtime.precision=fp32",
        "runtime.threads=1",
        f"runtime.distributed={strategy}",
        "logging.checkpoint_every=2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
    ]
    cmd += ["-m", "twistlm", "train", *overrides]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    m1, m2 = _metrics(one), _metrics(two)
    # Tolerance: gradient all-reduce sums in a different order than one process's batch sum.
    for x, y in zip(m1, m2, strict=True):
        for k in ("loss", "val_loss"):
            if k in x:
                assert y[k] == pytest.approx(x[k], abs=1e-4), (k, x["step"])
    assert latest_checkpoint(two).name == "step-00000004"  # rank 0 wrote full checkpoints


def _torchrun_train(overrides, port):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", str(port), "-m", "twistlm", "train", *overrides]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.slow  # three torchrun launches of two processes each
@pytest.mark.skipif(sys.platform != "linux", reason="torchrun gloo test on linux only")
@pytest.mark.parametrize("fmt", ["full", "sharded"])
def test_fsdp_bf16_mixed_precision_trains_and_resumes_exactly(setup, tmp_path, fmt):
    """FSDP (fully_shard) with the bf16 mixed-precision policy on 2 gloo processes: the loss
    goes down, and a run resumed from its step-2 checkpoint (gathered, or sharded with
    torch.distributed.checkpoint) continues exactly as one that was not interrupted."""
    base = [
        f"data.train={setup / 'shards'}",
        "data.block_size=32",
        "data.val_fraction=0.1",
        f"model.text_lm={setup / 'src'}",
        "optim.lr=3e-3",
        "optim.batch_size=2",
        "schedule.warmup_steps=1",
        "logging.eval_every=100",
        "logging.log_every=1",
        "logging.progress=false",
        "logging.checkpoint_every=2",
        "runtime.precision=bf16",
        "runtime.threads=1",
        "runtime.distributed=fsdp",
        f"runtime.checkpoint_format={fmt}",
    ]
    port = 29521 if fmt == "full" else 29531
    full, cut = tmp_path / "full", tmp_path / "cut"
    _torchrun_train([*base, "budget.max_steps=6", f"logging.run_dir={full}"], port)
    _torchrun_train([*base, "budget.max_steps=2", f"logging.run_dir={cut}"], port + 1)
    ckpt = latest_checkpoint(cut)
    assert (ckpt / "dcp").is_dir() == (fmt == "sharded")
    assert (ckpt / "model.safetensors").exists() == (fmt == "full")
    _torchrun_train(
        [*base, "budget.max_steps=6", f"logging.run_dir={cut}", "resume=true"], port + 2
    )
    a = {r["step"]: r["loss"] for r in _metrics(full) if "loss" in r}
    b = {r["step"]: r["loss"] for r in _metrics(cut) if "loss" in r}
    assert a[6] < a[1]
    for step in (3, 4, 5, 6):
        assert b[step] == pytest.approx(a[step], abs=1e-5), step


def test_block_order_independent_of_world_size():
    units = synthetic_units(50, 20, seed=1)
    v = UnitVocab.twistlm(20)
    o = BlockOrder(units, v, 16, seed=3)
    n = o.blocks_per_epoch
    everything = o.blocks(0, 2 * n)
    assert not np.array_equal(everything[:n], everything[n:])  # epochs reshuffle
    # each epoch holds every unit exactly once except the dropped padded tail
    flat = everything[:n].reshape(-1)
    assert (flat != v.pad_id).all()
    assert np.array_equal(
        BlockOrder(units, v, 16, seed=3).blocks(n - 1, 3), everything[n - 1 : n + 2]
    )


def test_split_deterministic_and_disjoint(tmp_path):
    utts = Utterances([f"u{i}" for i in range(100)], [np.array([i % 7]) for i in range(100)])
    tr, va = split(utts, 0.1, 1000, seed=0)
    tr2, va2 = split(utts, 0.1, 1000, seed=0)
    assert va.ids == va2.ids and len(va.ids) == 10 and not set(tr.ids) & set(va.ids)
    assert len(tr.ids) + len(va.ids) == 100
    assert split(utts, 0.1, 3, seed=0)[1].ids.__len__() == 3


def test_bad_shard_and_bad_units_are_logged_not_fatal(setup, tmp_path):
    import shutil

    d = tmp_path / "shards"
    shutil.copytree(setup / "shards", d)
    (d / "shard-00000-00099.parquet").write_bytes(b"not parquet")
    from twistlm.data.shards import shard_name, write_shard

    write_shard(
        d / shard_name(0, 50),
        [{"id": "bad", "units": [3, 999], "durations": [1, 1], "seconds": 0.1}],
    )
    log = ErrorLog(tmp_path / "e.jsonl")
    utts = read_units(d, log)
    assert len(utts.ids) == 241 and log.count == 1
    r = train(_cfg(setup, tmp_path / "r", f"data.train={d}", "budget.max_steps=2"))
    errs = [json.loads(x) for x in (tmp_path / "r" / "errors.jsonl").read_text().splitlines()]
    assert len(errs) == 2 and r.steps == 2
    assert any("not parquet" in e["path"] or "00099" in e["path"] for e in errs)
    assert any(e["path"].endswith(":bad") for e in errs)


def test_lr_schedule_shapes(setup, tmp_path):
    cfg = _cfg(
        setup,
        tmp_path,
        "schedule.warmup_steps=10",
        "budget.max_steps=110",
        "schedule.min_lr_ratio=0.1",
    )
    lrs = [lr_at(s, cfg, 110) for s in range(110)]
    assert lrs[0] == pytest.approx(3e-4) and lrs[9] == pytest.approx(3e-3)
    assert lrs[10] == pytest.approx(3e-3) and lrs[-1] == pytest.approx(3e-4, rel=0.01)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))


def test_cli_init_lm_then_train(setup, tmp_path):
    from twistlm.cli import main

    assert (
        main(["init-lm", str(tmp_path / "w"), "--text-lm", str(setup / "src"), "--n-units", "40"])
        == 0
    )
    assert (tmp_path / "w" / "twistlm.json").exists()
    rc = main(
        [
            "train",
            f"data.train={setup / 'shards'}",
            "data.block_size=32",
            f"model.init_from={tmp_path / 'w'}",
            "budget.max_steps=2",
            f"logging.run_dir={tmp_path / 'r'}",
            "logging.progress=false",
        ]
    )
    assert rc == 0 and (tmp_path / "r" / "model" / "twistlm.json").exists()


def test_grad_checkpointing_same_losses(setup, tmp_path):
    train(_cfg(setup, tmp_path / "a", "budget.max_steps=2"))
    train(_cfg(setup, tmp_path / "b", "budget.max_steps=2", "runtime.grad_checkpointing=true"))
    for x, y in zip(_metrics(tmp_path / "a"), _metrics(tmp_path / "b"), strict=True):
        assert y.get("loss") == pytest.approx(x.get("loss"), abs=1e-5)
        assert y.get("val_loss") == pytest.approx(x.get("val_loss"), abs=1e-5)


def test_train_step_lowers_loss_deterministically(setup):
    """A few steps on one batch of a tiny cold model: the loss falls, and a rerun repeats it."""
    from twistlm.lm.warm_start import build_speech_lm

    def run() -> list[float]:
        lm = build_speech_lm(str(setup / "src"), 40, start="cold", seed=0)
        order = BlockOrder(synthetic_units(60, 40, seed=2), lm.vocab, 32, seed=0)
        ids = order.blocks(0, 4)
        micro = [(ids[:2], order.labels(ids[:2])), (ids[2:], order.labels(ids[2:]))]
        opt = torch.optim.AdamW(lm.model.parameters(), lr=1e-2)
        lm.model.train()
        return [train_step(lm.model, opt, micro, lr=1e-2, grad_clip=1.0) for _ in range(6)]

    losses = run()
    assert all(a > b for a, b in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] < losses[0] - 0.5, losses
    assert run() == losses


def test_shards_without_tokenizer_json_are_refused(setup, tmp_path):
    """No guessing n_units from the data: an old folder without tokenizer.json is an error."""
    import shutil

    d = tmp_path / "old"
    shutil.copytree(setup / "shards", d)
    (d / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json missing"):
        train(_cfg(setup, tmp_path / "r", f"data.train={d}", "budget.max_steps=1"))


def test_exported_dirs_name_the_shards_tokenizer(setup, tmp_path):
    """setup + export: the model dir records the tokenizer identity written at tokenize time,
    with the path recorded for each dir (final model, snapshot, checkpoint)."""
    import shutil

    from twistlm.data.shards import write_shard_metadata
    from twistlm.eval.cache import tokenizer_fingerprint
    from twistlm.lm.model import SpeechLM
    from twistlm.tokenizer.corpus import tokenizer_identity
    from twistlm.tokenizer.spectral import SpectralFeatures
    from twistlm.tokenizer.unit_tokenizer import UnitTokenizer
    from twistlm.train.export import export_model
    from twistlm.train.prepare import setup as setup_run

    tok = UnitTokenizer(SpectralFeatures(frame_rate=25), torch.randn(40, 80), name="spec40")
    tok_dir = tmp_path / "tok"
    tok.save_pretrained(tok_dir)
    units = tmp_path / "units"
    shutil.copytree(setup / "shards", units)
    write_shard_metadata(units, tok.info(), tokenizer_identity(tok, tok_dir))

    run = setup_run(_cfg(setup, tmp_path / "r", f"data.train={units}", "budget.max_steps=1"))
    export_model(tmp_path / "exported", run.lm, run.optimizer, run.fsdp, run.dist, run.shards)
    fingerprint = tokenizer_fingerprint(tok.info(), tok_dir, tok.centroids)
    res = train(
        _cfg(
            setup,
            tmp_path / "deep" / "run",
            f"data.train={units}",
            "budget.max_steps=2",
            "logging.snapshot_steps=[1]",
            "logging.checkpoint_every=1",
        )
    )
    run_dir = tmp_path / "deep" / "run"
    dirs = [tmp_path / "exported", res.model_dir, run_dir / "snapshots" / "step-00000001"]
    for d in [*dirs, latest_checkpoint(run_dir)]:
        meta = SpeechLM.from_pretrained(d).meta["tokenizer"]
        assert meta["name"] == "spec40" and meta["fingerprint"] == fingerprint, d
        assert meta["n_units"] == 40 and meta["hop"] == tok.hop
        assert (d / meta["path"]).resolve() == tok_dir.resolve(), d  # relative, or absolute
    for d in dirs[:2]:  # the tokenizer is near: recorded relative to the model dir
        assert not Path(SpeechLM.from_pretrained(d).meta["tokenizer"]["path"]).is_absolute()
    path = SpeechLM.from_pretrained(res.model_dir).meta["tokenizer"]["path"]
    assert UnitTokenizer.from_pretrained(res.model_dir / path).n_units == 40


def test_packing_modes_train_and_differ(setup, tmp_path):
    """document (default) and stream packing both train; their first-step losses differ (the
    later utterances of a block see the earlier ones only in stream mode); the mode is recorded."""
    from twistlm.lm.model import SpeechLM

    first = {}
    for mode in ("document", "stream"):
        run = tmp_path / mode
        extra = ["budget.max_steps=8", "logging.eval_every=8"]
        if mode == "stream":
            extra.append("data.packing=stream")
        res = train(_cfg(setup, run, "model.start=cold", *extra))
        m = _metrics(run)
        vals = [r["val_loss"] for r in m if "val_loss" in r]
        assert vals[-1] < vals[0], (mode, vals)
        first[mode] = next(r["loss"] for r in m if "loss" in r)
        assert SpeechLM.from_pretrained(res.model_dir).meta["trained"]["packing"] == mode
    assert abs(first["document"] - first["stream"]) > 1e-4
    with pytest.raises(Exception, match="data.packing"):
        _cfg(setup, tmp_path / "bad", "data.packing=diagonal")
