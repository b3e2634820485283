#!/usr/bin/env bash
# Regenerates collector-config/otelcol.go.sum after a change to collector-config/builder-config.yaml
# (a component added, a version moved). Run it by hand, review the diff, commit it with the manifest.
#
# scripts/build-binaries.sh verifies every downloaded module against the committed go.sum and never
# asks the checksum database about the collector's own modules (GONOSUMDB), because the database
# reachable here has no entries for them, nor for some of their newer third-party dependencies. So
# the hashes of new modules are taken here from what the proxy serves and then checked against the
# hashes the component authors themselves recorded: the go.sum shipped inside each collector and
# contrib module of the build. A third-party hash that is in none of those (and not already
# committed) fails the run; nothing unverified is written.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${DECISIONTRAIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/decisiontrail}
committed="$root/collector-config/otelcol.go.sum"
# shellcheck source=/dev/null
. "$root/collector-config/versions.env"
export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" GOTOOLCHAIN=local GOFLAGS=
prefixes='^(go\.opentelemetry\.io/collector|github\.com/open-telemetry/opentelemetry-collector-contrib)'

if [ ! -x "$cache/tools/builder-$OCB_VERSION" ]; then
  mkdir -p "$cache/tools"
  GOBIN="$cache/tools" go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
  mv "$cache/tools/builder" "$cache/tools/builder-$OCB_VERSION"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|^dist:|dist:\n  output_path: $work/src|" "$root/collector-config/builder-config.yaml" > "$work/manifest.yaml"
"$cache/tools/builder-$OCB_VERSION" --config "$work/manifest.yaml" --skip-compilation --skip-get-modules
cp "$committed" "$work/src/go.sum"
# Resolve what the binary imports (as build-binaries.sh does), hashing new modules locally.
(cd "$work/src" && GOFLAGS=-mod=mod GOSUMDB=off go build -trimpath -o /dev/null .)

# The pool: go.sum files of the collector's own modules whose packages the binary links, as their
# authors wrote them (`go list -m all` would need the go.mod of every test-only dependency too).
(cd "$work/src" && go list -deps -f '{{with .Module}}{{.Path}} {{.Dir}}{{end}}' .) | sort -u \
    | grep -E "$prefixes" | while read -r _ dir; do
  [ -n "$dir" ] && [ -f "$dir/go.sum" ] && cat "$dir/go.sum"
done | sort -u > "$work/pool"

status=0
while read -r mod ver hash; do
  line="$mod $ver $hash"
  if grep -qxF "$line" "$committed" || grep -qxF "$line" "$work/pool"; then
    continue
  fi
  if grep -q "^$mod $ver " "$work/pool"; then
    echo "MISMATCH: $line differs from the component authors' go.sum" >&2; status=1
  elif [[ $mod =~ $prefixes ]]; then
    echo "collector module, taken from the proxy (as GONOSUMDB does in the build): $line"
  else
    echo "UNVERIFIED: $line is in no component's go.sum" >&2; status=1
  fi
done < "$work/src/go.sum"
[ "$status" = 0 ] || { echo "not written: fix the lines above" >&2; exit 1; }
cp "$work/src/go.sum" "$committed"
echo "wrote collector-config/otelcol.go.sum ($(wc -l < "$committed") lines, $(git -C "$root" diff --numstat -- collector-config/otelcol.go.sum | cut -f1) added)"
