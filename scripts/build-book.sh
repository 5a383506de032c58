#!/usr/bin/env bash
# Build the book: set up the environment, execute every notebook on the embedded
# data and write the HTML site to _build/html. A failing cell fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
# scripts/run-tests.sh has set up the environment already when it builds the book
[ "${LEANECD_SETUP_DONE:-0}" = 1 ] || scripts/setup-env.sh
export LEANECD_MODE="${LEANECD_MODE:-quick}"
echo "[book] executing notebooks (LEANECD_MODE=$LEANECD_MODE) and building HTML"
start=$(date +%s)
# --all: rebuild every page, so every notebook runs again on the current data
.venv/bin/jupyter-book build . --builder html --all -W --keep-going
echo "[book] built in $(( $(date +%s) - start )) s"
echo "[book] the site is at $(pwd)/_build/html/index.html"
