#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs them:
#   a virtualenv in .venv with the package and every extra, the collector and Jaeger built from the
#   Go module proxy (cached per user: scripts/build-binaries.sh), then pytest (unit, instrumentation,
#   integration against the real binaries) and mypy. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

bash scripts/build-binaries.sh

.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
.venv/bin/python -m mypy
