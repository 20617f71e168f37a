#!/usr/bin/env bash
# The project's own virtual environment: created at .venv on first use from the pinned
# requirements.txt (plus this package, editable), reused afterwards, and rebuilt when
# requirements.txt or pyproject.toml change (the stamp holds their hash). `make` calls this before
# any target that runs Python, unless PYTHON=... names an environment of your own.
# REQUIREMENTS=<file> and NO_PACKAGE=1 make another one: `make kaggle-env` builds .venv-kaggle from
# requirements-kaggle.txt (Kaggle's image versions) without the package, which the kernel carries itself.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
BASE=${BASE_PYTHON:-python3}
REQ=${REQUIREMENTS:-requirements.txt}
STAMP="$VENV/.cfblend-requirements.sha256"

if ! command -v "$BASE" >/dev/null 2>&1; then
  echo "cfblend: no '$BASE' found: install Python 3.11 or newer (or run make BASE_PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if ! "$BASE" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "cfblend: $("$BASE" --version 2>&1) is too old: Python 3.11 or newer is needed (make BASE_PYTHON=python3.11 ...)" >&2
  exit 1
fi
want=$(cat "$REQ" pyproject.toml | "$BASE" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0  # up to date
fi
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ]; then
  echo "cfblend: $REQ or pyproject.toml changed: updating $VENV" >&2
elif [ ! -x "$VENV/bin/python" ]; then
  echo "cfblend: creating the project's virtual environment in $VENV ($("$BASE" --version 2>&1))" >&2
  "$BASE" -m venv "$VENV"
fi
rm -f "$STAMP"
echo "cfblend: installing the pinned requirements into $VENV (the first time takes a few minutes)" >&2
"$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar on -r "$REQ"
if [ -z "${NO_PACKAGE:-}" ]; then
  echo "cfblend: installing cfblend itself (editable) into $VENV" >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-deps --no-build-isolation -q -e .
fi
echo "$want" > "$STAMP"
echo "cfblend: $VENV is ready" >&2
