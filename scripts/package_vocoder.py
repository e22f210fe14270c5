"""Put a tokenizer + a trained vocoder into the package (twistlm/assets/) and pin them.

    python scripts/package_vocoder.py --tokenizer TOK_DIR --run RUN

RUN is a `twistlm train-vocoder --recipe slt -o RUN` folder. Copies TOK_DIR's tokenizer.json
and centroids.safetensors, saves RUN/vocoder with fp16 weights (half the bytes; loading casts
back to fp32), copies RUN/metrics.jsonl and RUN/recipe.json (or result.json) beside it as the
training log, and rewrites the sha256 pins in twistlm/packaged.py.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--recipe", default="slt", help="the recipe that made RUN (recorded)")
    args = p.parse_args(argv)

    import twistlm.packaged as packaged
    from twistlm.loaders import sha256_file
    from twistlm.vocoder.acoustic import AcousticVocoder

    dst = packaged.ROOT
    if dst.exists():
        shutil.rmtree(dst)
    (dst / "tokenizer").mkdir(parents=True)
    for name in ("tokenizer.json", "centroids.safetensors"):
        shutil.copy2(Path(args.tokenizer) / name, dst / "tokenizer" / name)
    run = Path(args.run)
    voc = AcousticVocoder.from_pretrained(run / "vocoder")
    cfg = voc.info.get("training", {}).get("config", {})
    for key in ("audio_dir", "units_dir", "out_dir", "tokenizer"):
        cfg.pop(key, None)  # this machine's paths: not part of the artifact
    cfg["parallel"] = [Path(x).name for x in cfg.get("parallel", [])]
    voc.info["recipe"] = args.recipe
    voc.save_pretrained(dst / "vocoder", half=True)
    log = dst / "training"
    log.mkdir()
    for name in ("metrics.jsonl", "recipe.json", "result.json"):
        if (run / name).exists():
            shutil.copy2(run / name, log / name)
        if name != "metrics.jsonl" and (log / name).exists():  # drop this machine's paths
            d = json.loads((log / name).read_text())
            for key in ("audio_dir", "units_dir", "out_dir", "tokenizer"):
                d.get("config", {}).pop(key, None)
            d["recipe"] = args.recipe
            (log / name).write_text(json.dumps(d, indent=1) + "\n")
    pins = {
        rel: sha256_file(dst / rel)
        for rel in (
            "tokenizer/tokenizer.json",
            "tokenizer/centroids.safetensors",
            "vocoder/acoustic.json",
            "vocoder/acoustic.safetensors",
        )
    }
    src = (ROOT / "twistlm" / "packaged.py").read_text()
    body = "".join(f'    "{k}": "{v}",\n' for k, v in pins.items())
    src, n = re.subn(
        r"SHA256: dict\[str, str\] = \{\n.*?\n\}",
        f"SHA256: dict[str, str] = {{\n{body}}}",
        src,
        flags=re.S,
    )
    if n != 1:
        raise SystemExit("could not find the SHA256 table in twistlm/packaged.py")
    (ROOT / "twistlm" / "packaged.py").write_text(src)
    size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
    print(json.dumps({"dir": str(dst), "bytes": size, "sha256": pins}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
