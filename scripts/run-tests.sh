#!/usr/bin/env bash
# Run the tests: set up the environment (with GPAW and Chromium), build the book as
# `make book` does, then the unit tests (tests/test_browser.py opens the built book in
# headless Chromium, offline) and every notebook under nbval (--nbval-lax: only the
# cells tagged `nbval-check-output` are compared).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh --dft --browser
export LEANECD_MODE=quick
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
# The JARVIS section of chapter 1 downloads dft_3d when a network is there; the tests
# take its offline path (the download code is tested with the network patched out).
export LEANECD_OFFLINE="${LEANECD_OFFLINE:-1}"
start=$(date +%s)
LEANECD_SETUP_DONE=1 scripts/build-book.sh
export LEANECD_REQUIRE_BOOK=1   # tests/test_browser.py fails, not skips, without the book or Chromium
.venv/bin/python -m pytest tests "$@"
.venv/bin/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks
echo "[tests] book, unit tests and notebooks passed in $(( $(date +%s) - start )) s"
