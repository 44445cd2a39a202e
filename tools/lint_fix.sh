#!/bin/sh
# Apply ruff's formatting and its safe lint fixes to the whole tree (configured in
# pyproject.toml), then show what is left for a person to fix: `make lint` must pass.
# Run from anywhere; it works on the repository this script is in.
set -eu
cd "$(dirname "$0")/.."
RUFF=.venv/bin/ruff
[ -x "$RUFF" ] || RUFF=ruff
# Fixes first (import order, pyupgrade spellings), then format what they changed too.
"$RUFF" check --fix --quiet . || true
"$RUFF" format .
"$RUFF" check .
