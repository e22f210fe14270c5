"""Training precision and speed options: the bf16 copy with fp32 masters, fused AdamW, compile.

Every test pins ``runtime.precision`` so it asserts the same on AVX2-only and AMX CPUs (bf16 is
emulated on the former: slower, same numbers).
"""

import json
from pathlib import Path

import pytest
import torch

from twistlm.config import load_config
from twistlm.train import TrainConfig, train
from twistlm.train.precision import BF16Shadow, resolve_precision
from twistlm.train.synthetic import write_synthetic_shards
from twistlm.train.trainer import latest_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_llama):
    root = tmp_path_factory.mktemp("precision")
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
            "model.start=cold",
            "optim.lr=1e-2",
            "optim.batch_size=4",
            "schedule.warmup_steps=3",
            "budget.max_steps=30",
            f"logging.run_dir={run}",
            "logging.eval_every=10",
            "logging.log_every=1",
            "logging.checkpoint_every=0",
            "logging.progress=false",
            "runtime.threads=1",
            *extra,
        ],
    )


def _metrics(run) -> list[dict]:
    return [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def _losses(run) -> list[float]:
    return [r["loss"] for r in _metrics(run) if "loss" in r]


def _vals(run) -> list[float]:
    return [r["val_loss"] for r in _metrics(run) if "val_loss" in r]


def test_resolve_precision_names_and_refuses_unknown():
    cpu = torch.device("cpu")
    for p in ("fp32", "bf16", "bf16-autocast"):
        assert resolve_precision(p, cpu) == p
    assert resolve_precision("auto", cpu) in ("fp32", "bf16")
    with pytest.raises(ValueError, match="runtime.precision"):
        resolve_precision("fp16", cpu)


def test_shadow_is_bf16_copy_keeps_ties_and_moves_grads_and_weights(tiny_llama):
    model = tiny_llama(64, hidden=32, layers=1, heads=4, kv_heads=2, tie=True, seed=0)
    sh = BF16Shadow(model)
    assert sh.module.get_input_embeddings().weight is sh.module.get_output_embeddings().weight
    masters, copies = list(model.parameters()), list(sh.module.parameters())
    assert len(masters) == len(copies)
    for m, s in zip(masters, copies, strict=True):
        assert m.dtype == torch.float32 and s.dtype == torch.bfloat16
        assert torch.equal(s, m.detach().to(torch.bfloat16))
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    sh.module(input_ids=ids).logits.float().sum().backward()
    want = [None if s.grad is None else s.grad.float() for s in copies]
    sh.pull_grads()
    for m, s, w in zip(masters, copies, want, strict=True):
        assert s.grad is None
        assert (m.grad is None) == (w is None)
        if w is not None:
            assert m.grad.dtype == torch.float32 and torch.equal(m.grad, w)
    with torch.no_grad():
        for m in masters:
            m.add_(1e-3)
    sh.push_weights()
    for m, s in zip(masters, copies, strict=True):
        assert torch.equal(s, m.detach().to(torch.bfloat16))


def test_bf16_training_converges_like_fp32(setup, tmp_path):
    """Stated tolerance: the bf16 run (bf16 copy, fp32 masters) ends within 0.05 nats of the
    fp32 run's validation loss, and its loss falls as the fp32 one does."""
    train(_cfg(setup, tmp_path / "fp32", "runtime.precision=fp32"))
    train(_cfg(setup, tmp_path / "bf16", "runtime.precision=bf16"))
    a, b = _vals(tmp_path / "fp32"), _vals(tmp_path / "bf16")
    assert len(a) == len(b) == 4
    assert a[-1] < a[0] - 0.1 and b[-1] < b[0] - 0.1, (a, b)
    assert abs(a[-1] - b[-1]) < 0.05, (a, b)
    # not the same numbers: the bf16 run really ran in bf16
    assert _losses(tmp_path / "fp32") != _losses(tmp_path / "bf16")


def test_bf16_checkpoints_hold_fp32_masters_and_resume_exactly(setup, tmp_path):
    from safetensors.torch import load_file

    full = tmp_path / "full"
    train(_cfg(setup, full, "runtime.precision=bf16", "budget.max_steps=8"))
    part = tmp_path / "part"
    train(
        _cfg(
            setup,
            part,
            "runtime.precision=bf16",
            "budget.max_steps=4",
            "schedule.decay_steps=8",
            "logging.checkpoint_every=4",
        )
    )
    ck = latest_checkpoint(part)
    weights = load_file(str(ck / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in weights.values())
    train(
        _cfg(
            setup,
            part,
            "runtime.precision=bf16",
            "budget.max_steps=8",
            "schedule.decay_steps=8",
            "resume=true",
        )
    )
    a, b = _losses(full), _losses(part)
    assert len(a) == len(b) == 8
    assert b == a  # bitwise: the bf16 copy is a function of the masters


def test_compiled_training_follows_the_eager_loss_curve(setup, tmp_path):
    """torch.compile (forward and backward) changes the order of float operations only:
    the same 8 steps give losses within 1e-3 of eager, in fp32."""
    eager, comp = tmp_path / "eager", tmp_path / "compiled"
    extra = ("runtime.precision=fp32", "budget.max_steps=8", "logging.eval_every=0")
    train(_cfg(setup, eager, *extra))
    train(_cfg(setup, comp, *extra, "runtime.compile=true"))
    a, b = _losses(eager), _losses(comp)
    assert len(a) == len(b) == 8
    assert a[-1] < a[0] - 0.05, a
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-3, (a, b)


def test_eval_with_bf16_loads_bf16_weights_from_a_dir_only(tiny_speech_lm, tmp_path):
    """`twistlm eval --bf16` scores with bf16 weights (no per-forward weight casts) when it
    loads the model itself; a model passed in memory keeps its dtype."""
    from twistlm.eval.run import EvalConfig, load_eval_model

    lm = tiny_speech_lm(20)
    lm.save_pretrained(tmp_path / "lm")
    loaded = load_eval_model(tmp_path / "lm", EvalConfig(autocast=True))
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    assert next(load_eval_model(tmp_path / "lm", EvalConfig()).model.parameters()).dtype == (
        torch.float32
    )
    assert next(load_eval_model(lm, EvalConfig(autocast=True)).model.parameters()).dtype == (
        torch.float32
    )
