#!/usr/bin/env bash
# Sets up a virtualenv with the package and runs the demo on the embedded default (local files, no
# collector): a loan-approval model makes decisions inside request spans; they land in
# ./decisiontrail-data (or the directory given as the first argument).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[demo,zstd]'
.venv/bin/decisiontrail demo --out "${1:-decisiontrail-data}"
