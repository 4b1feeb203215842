#!/usr/bin/env bash
# One-line install: a virtualenv in .venv with kefu and its dev tools.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
echo "kefu installed: run '.venv/bin/kefu run' (or activate .venv and run 'kefu run')"
