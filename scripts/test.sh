#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs them:
#   a virtualenv in .venv with the package and every extra, the collector and Jaeger built from the
#   Go module proxy (cached per user: scripts/build-binaries.sh), the Apache Kafka broker's jars from
#   Maven Central for the scale-out tests (cached per user: scripts/fetch-kafka.sh), Debian's chromium
#   for the page tests, then pytest (unit, instrumentation,
#   integration against the real binaries) and mypy. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

bash scripts/build-binaries.sh
bash scripts/fetch-kafka.sh

# The page tests drive Debian's chromium (never a browser downloaded by a test tool).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "error: the browser tests need Debian's chromium: sudo apt-get install chromium" >&2
    exit 2
  fi
fi

.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
.venv/bin/python -m mypy
