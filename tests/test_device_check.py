"""benchmarks/device_check.sh in its CPU smoke mode: it runs end to end and writes its table."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_device_check_small_mode_writes_json_and_table(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    p = subprocess.run(
        ["bash", str(ROOT / "benchmarks/device_check.sh"), str(tmp_path), "--small"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads((tmp_path / "device_check.json").read_text())
    r = doc["train"]["opt-tiny"]
    assert r["hf"]["tokens_per_s"] > 0 and r["ours"]["tokens_per_s"] > 0
    assert r["packing"] == "document" and r["ours_stream"]["tokens_per_s"] > 0
    assert set(r["peak_flops_by_precision"]) == {"fp32", "bf16"}
    assert doc["eval"]["identical_accuracy"] is True
    table = (tmp_path / "device_check.md").read_text()
    assert "| opt-tiny (2 layers) | cpu | fp32 |" in table and "| scoring |" in table
