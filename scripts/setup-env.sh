#!/usr/bin/env bash
# Create the project's environment (.venv) and install everything the book and the
# tests need. Idempotent: a second run only checks.
#
#   scripts/setup-env.sh          library + book tools (jupyter-book 1, nbval, ...)
#   scripts/setup-env.sh --dft    ... plus GPAW for the dataset generator (needs the
#                                 Debian packages libxc-dev libopenmpi-dev libfftw3-dev
#                                 libopenblas-dev, installed here with apt-get when missing)
#   scripts/setup-env.sh --dft --browser
#                                 ... plus headless Chromium for the book's browser test
#                                 (Debian packages chromium chromium-driver, when missing)
#
# Both install MathJax 3 (npm registry, into $VENV/share/leanecd-web) for the book's
# pages, which load nothing from the internet (book/_ext/offline_assets.py).
#
# torch: an installed torch (e.g. Colab's CUDA build) is never replaced. Without one,
# a machine with no NVIDIA GPU gets the CPU build torch==2.13.0.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LEANECD_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
want_dft=0
want_browser=0
for arg in "$@"; do
  case "$arg" in
    --dft) want_dft=1 ;;
    --browser) want_browser=1 ;;
    *) echo "usage: $0 [--dft] [--browser]" >&2; exit 2 ;;
  esac
done
SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
apt_install() {  # Debian packages, only those missing
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "[setup] installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}

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
  apt_install libxc-dev libopenmpi-dev libfftw3-dev libopenblas-dev   # for GPAW
  extras="book,dft"
fi
if [ "$want_browser" = 1 ]; then
  apt_install chromium chromium-driver
fi

# MathJax 3 for the book's pages (served from their _static, never from a CDN)
MATHJAX_VERSION=3.2.2
WEB="$VENV/share/leanecd-web"
if ! grep -qs "\"version\": \"$MATHJAX_VERSION\"" "$WEB/node_modules/mathjax/package.json"; then
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  echo "[setup] installing MathJax $MATHJAX_VERSION (npm) into $WEB"
  mkdir -p "$WEB"
  npm install --prefix "$WEB" --no-audit --no-fund --no-save --loglevel=error "mathjax@$MATHJAX_VERSION" >/dev/null
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
