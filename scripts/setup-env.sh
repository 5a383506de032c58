#!/usr/bin/env bash
# Create the project's environment (.venv) and install everything the book and the
# tests need. Idempotent: a second run only checks.
#
#   scripts/setup-env.sh          library + book tools (jupyter-book 1, nbval, ...)
#   scripts/setup-env.sh --dft    ... plus GPAW for the dataset generator (needs the
#                                 Debian packages libxc-dev libopenmpi-dev libfftw3-dev
#                                 libopenblas-dev, installed here with apt-get when missing)
#
# torch: an installed torch (e.g. Colab's CUDA build) is never replaced. Without one,
# a machine with no NVIDIA GPU gets the CPU build torch==2.13.0.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LEANECD_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
want_dft=0
[ "${1:-}" = "--dft" ] && want_dft=1

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

if "$PY" -c "import torch" 2>/dev/null; then
  echo "[setup] torch $("$PY" -c 'import torch; print(torch.__version__)') already installed: kept"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "[setup] NVIDIA GPU found: installing a CUDA build of torch"
  pip_install torch
else
  echo "[setup] no CUDA device: installing the CPU build torch==2.13.0"
  pip_install "torch==2.13.0"
fi

extras="book"
if [ "$want_dft" = 1 ]; then
  missing=()
  for p in libxc-dev libopenmpi-dev libfftw3-dev libopenblas-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] installing Debian packages for GPAW: ${missing[*]}"
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  extras="book,dft"
fi
echo "[setup] installing leanecd[$extras] (editable) and its dependencies"
pip_install -e ".[$extras]"
"$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (leanecd)" >/dev/null
"$PY" - <<'PY'
import importlib
mods = ["leanecd", "numpy", "scipy", "torch", "SimpleITK", "matplotlib", "plotly", "ase", "jupyter_book", "nbval"]
try:
    import gpaw  # noqa: F401
    mods.append("gpaw")
except ImportError:
    pass
vers = []
for m in mods:
    mod = importlib.import_module(m)
    vers.append(f"{m} {getattr(mod, '__version__', '?')}")
print("[setup] ready:", ", ".join(vers))
PY
