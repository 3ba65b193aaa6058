#!/usr/bin/env bash
# One prepared GPU check of cooper, sized to end well inside 10 minutes on one H200. bench/gpu_check.py does
# the work (its docstring says what each step records); this wrapper prepares the Python environment.
#
# In order, each step with its own timeout, every figure written as JSON, one combined JSON object as the
# last stdout line, exit status 1 if any step failed:
#   1. bench/gpu_step.py at the paper's shapes (cooper/static step ratio, policy-update MFU, peak memory)
#   2. a 20-step `cooper train` (mode cooper, cooper.rm_update.parallel shard, bf16) on random-init models of
#      Qwen2.5-0.5B's shape, built offline from a config
#   3. `cooper eval --limit 16` of the trained policy
# JSON and logs go to --out DIR, else $OUT (the device tool returns what is written there), else
# $GPU_CHECK_OUT, else gpu_check_out/; models and checkpoints to a temporary folder deleted at the end.
#
#   bench/gpu_check.sh --fetch-wheels   # HERE, once (needs the package index): the wheels the GPU machine
#                                       # lacks, into .whl/ (ignored by git; about 16 MB)
#   bench/gpu_check.sh                  # THERE, on the GPU machine: installs .whl/, then runs (about 5-8 min)
#   bench/gpu_check.sh --dry-run        # here, on a CPU: the same code path with tiny models, about a minute
#
# The device tool's call:  run(command="bash bench/gpu_check.sh", carry=[".whl"], timeout_s=600)
#
# On the GPU machine the repository is copied, not pip-installed: src/ goes first on PYTHONPATH, and the wheels
# in .whl/ are installed with `pip install --no-index --no-deps --target $GPU_CHECK_SITE` (default
# /tmp/cooper_gpu_check_site), also first on PYTHONPATH. They are installed only when trl, datasets,
# math-verify or transformers is missing or at another version than pinned below, so a development venv
# (which has them) is used as it is. Python: $PYTHON, else .venv/bin/python when it exists, else python3.
# Other arguments go to bench/gpu_check.py (`bench/gpu_check.sh --help`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WHEEL_DIR="$ROOT/.whl"

# What the H200 image lacks (/work/.library/device/KINDS.md's package list) at the versions tested here:
# constraints.txt's pins, and dill and multiprocess (datasets' needs) at the development venv's versions.
# The image's transformers is 5.17, below pyproject's >=5.20 (bench/gpu_step.py calls 5.2x's
# activation_checkpointing_enable), so transformers travels too, and peft with it: TRL imports peft whenever
# it is installed, and the image's peft was made for the image's transformers.
# tests/test_gpu_check.py checks these pins against constraints.txt.
CORE_WHEELS=(
  "transformers==5.23.0"
  "trl==1.16.0"
  "datasets==5.2.0"
  "math-verify==0.9.0"
)
WHEELS=(
  "${CORE_WHEELS[@]}"
  "peft==0.21.2"
  "latex2sympy2_extended==1.11.0"
  "antlr4-python3-runtime==4.13.2"
  "dill==0.4.1"
  "multiprocess==0.70.19"
)

if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then
  PY="$ROOT/.venv/bin/python"
else
  PY="python3"
fi

fetch_wheels() {
  # Wheels for CPython 3.12 on x86-64 Linux (the GPU machine), whatever this machine is.
  mkdir -p "$WHEEL_DIR"
  local exclude="$ROOT/.git/info/exclude"
  if [[ -d "$ROOT/.git" ]] && ! grep -qxF "/.whl/" "$exclude" 2>/dev/null; then
    mkdir -p "$(dirname "$exclude")"
    echo "/.whl/" >>"$exclude"
  fi
  "$PY" -m pip download --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$WHEEL_DIR" "${WHEELS[@]}" "$@"
  ls -l "$WHEEL_DIR"
  du -sh "$WHEEL_DIR"
}

have_core_pins() {
  # transformers, trl, datasets and math-verify are installed at the pinned versions.
  "$PY" -c '
import importlib.metadata as md
import sys

try:
    sys.exit(0 if all(md.version(n) == v for n, v in (s.split("==") for s in sys.argv[1:])) else 1)
except md.PackageNotFoundError:
    sys.exit(1)
' "${CORE_WHEELS[@]}"
}

install_wheels() {
  if have_core_pins; then
    return 0
  fi
  if ! compgen -G "$WHEEL_DIR/*.whl" >/dev/null; then
    echo "gpu_check: transformers/trl/datasets/math-verify are missing or at other versions and $WHEEL_DIR" \
      "holds no wheels: run 'bench/gpu_check.sh --fetch-wheels' where the package index is, and carry .whl" >&2
    return 0 # the steps then fail, and the JSON says why
  fi
  local site="${GPU_CHECK_SITE:-/tmp/cooper_gpu_check_site}"
  echo "gpu_check: installing $(ls "$WHEEL_DIR"/*.whl | wc -l) wheels from $WHEEL_DIR into $site" >&2
  "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target "$site" "$WHEEL_DIR"/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
}

if [[ "${1:-}" == "--fetch-wheels" ]]; then
  shift
  fetch_wheels "$@"
  exit 0
fi

install_wheels
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" # the repository's code, installed or not
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$PY" "$ROOT/bench/gpu_check.py" "$@"
