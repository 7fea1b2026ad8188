#!/usr/bin/env bash
# The GPU check from a checkout with nothing of this repository installed (see gpu_check.py):
#   bash benchmarks/gpu_check.sh OUT_DIR --data DIR          # on the GPU machine, < 8 minutes
#   bash benchmarks/gpu_check.sh OUT_DIR --dry-run           # the same steps on the CPU, tiny
# PYTHON picks the interpreter (default: python, else python3).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
unset PYTHONDONTWRITEBYTECODE  # each step is a new process: compile torch once, not once per step
py="${PYTHON:-$(command -v python || command -v python3)}"
exec "$py" "$root/benchmarks/gpu_check.py" "$@"
