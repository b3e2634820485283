#!/usr/bin/env bash
# Sets up a virtualenv with the package and runs the demo on the embedded default (local files, no
# collector): a loan-approval model makes decisions inside request spans; they land in
# ./decisiontrail-data of the directory you run this from (or the directory given as the first
# argument). Further arguments go to `decisiontrail demo` (e.g. --append, --n 500).
# The commands it prints at the end work as printed: they name the CLI by its path in the venv.
set -euo pipefail
out=${1:-decisiontrail-data}
case $out in /*) ;; *) out="$PWD/$out" ;; esac
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[demo,zstd]'
"$PWD/.venv/bin/decisiontrail" demo --out "$out" "${@:2}"
echo "(or put the command on your PATH first: source $PWD/.venv/bin/activate)"
