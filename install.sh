#!/usr/bin/env bash
# One-line install: a virtualenv in .venv with kefu and its dev tools.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'

# The admin panel's browser tests drive Debian's chromium through Playwright (Playwright's
# own browser download is not used); a CJK font makes the screenshots readable.
if [ ! -x /usr/bin/chromium ] || ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null
  else
    echo "note: install chromium and chromium-driver (apt) to run the browser tests" >&2
  fi
fi
echo "kefu installed: run '.venv/bin/kefu run' (or activate .venv and run 'kefu run')"
