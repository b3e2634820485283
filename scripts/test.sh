#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs them:
#   a virtualenv in .venv with the package and every extra, the collector and Jaeger built from the
#   Go module proxy (cached per user: scripts/build-binaries.sh), the Apache Kafka broker's jars from
#   Maven Central for the scale-out tests (cached per user: scripts/fetch-kafka.sh), Debian's chromium
#   for the page tests, the optional native accelerator (native/: Rust, built by maturin; cargo from
#   rustup, or Debian 12's current Rust (rustc-web, cargo-web) when the machine has neither), then pytest (unit, instrumentation,
#   integration against the real binaries) and mypy. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cargo-web rustc-web >/dev/null
  else
    echo "error: the native accelerator's tests need Rust: sudo apt-get install cargo-web rustc-web" >&2
    exit 2
  fi
fi
# ./native satisfies the native extra's requirement (decisiontrail-native) from this checkout.
.venv/bin/python -m pip install -q -e '.[test,native]' ./native

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
