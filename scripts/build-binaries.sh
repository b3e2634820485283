#!/usr/bin/env bash
# Builds the decisiontrail OpenTelemetry Collector (with ocb, from collector-config/builder-config.yaml)
# and Jaeger v2 (cmd/jaeger of the pinned Jaeger module) from the Go module proxy.
#
# Everything heavy lives in a per-user cache outside the clone, so a fresh clone (CI) reuses it:
#   ${DECISIONTRAIL_CACHE:-${XDG_CACHE_HOME:-~/.cache}/decisiontrail}/
#     go/mod, go/build   Go module and build caches
#     tools/builder      the pinned ocb
#     bin/               otelcol-decisiontrail-<key>, jaeger-<key>: one file per build input, <key> a
#                        hash of what it was built from (manifest, go.sum, pins, Go version)
# The clone's .cache/bin/ holds links named otelcol-decisiontrail and jaeger to the builds its own
# manifest asks for, so clones on different manifests (branches, CI beside a developer) share the
# cache without rebuilding over each other; a build that exists is not redone.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${DECISIONTRAIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/decisiontrail}
bin="$cache/bin"

if ! command -v go >/dev/null 2>&1; then
  echo "error: the Go toolchain (go >= 1.24) is needed to build the collector and Jaeger;" >&2
  echo "       install it (https://go.dev/doc/install or your distribution's golang package) and rerun." >&2
  exit 2
fi

# shellcheck source=/dev/null
. "$root/collector-config/versions.env"
export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" GOTOOLCHAIN=local GOFLAGS=
# The checksum database reachable here has no entries for the pinned collector modules, so they are
# verified against the committed go.sum instead (collector-config/otelcol.go.sum; Jaeger's own go.sum
# for Jaeger). Only these two module prefixes skip the checksum-database lookup.
export GONOSUMDB=go.opentelemetry.io/collector,github.com/open-telemetry/opentelemetry-collector-contrib
mkdir -p "$bin" "$cache/tools" "$cache/work" "$root/.cache"
[ -L "$root/.cache/bin" ] && rm "$root/.cache/bin"   # older layout: the whole directory was a link
mkdir -p "$root/.cache/bin"

exec 9>"$cache/build.lock"
flock 9   # two builds at once (parallel CI jobs, a developer and a test) share the cache safely

gover=$(go env GOVERSION)
key() { echo "$1" | sha256sum | cut -c1-16; }
link() { ln -sfn "$bin/$1" "$root/.cache/bin/$2"; }

otel_stamp="$gover $(cat "$root/collector-config/builder-config.yaml" "$root/collector-config/otelcol.go.sum" | sha256sum | cut -d' ' -f1) $OCB_VERSION"
otel_bin="otelcol-decisiontrail-$(key "$otel_stamp")"
if [ -x "$bin/$otel_bin" ]; then
  echo "otelcol-decisiontrail: up to date"
else
  start=$SECONDS
  if [ ! -x "$cache/tools/builder-$OCB_VERSION" ]; then
    GOBIN="$cache/tools" go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
    mv "$cache/tools/builder" "$cache/tools/builder-$OCB_VERSION"
  fi
  work="$cache/work/otelcol"
  rm -rf "$work"; mkdir -p "$work"
  # ocb takes the output path from the manifest; the committed manifest stays free of local paths.
  sed "s|^dist:|dist:\n  output_path: $work|" "$root/collector-config/builder-config.yaml" > "$work.yaml"
  # ocb generates the sources; `go build` (not ocb's `go mod tidy`, which also resolves the test-only
  # imports of every component, some of which the proxy does not serve) resolves what the binary
  # imports, verified against the committed collector-config/otelcol.go.sum.
  "$cache/tools/builder-$OCB_VERSION" --config "$work.yaml" --skip-compilation --skip-get-modules
  cp "$root/collector-config/otelcol.go.sum" "$work/go.sum"
  (cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o otelcol-decisiontrail .)
  install -m 0755 "$work/otelcol-decisiontrail" "$bin/$otel_bin.tmp" && mv "$bin/$otel_bin.tmp" "$bin/$otel_bin"
  echo "$otel_stamp" > "$bin/$otel_bin.stamp"
  echo "otelcol-decisiontrail: built in $((SECONDS - start)) s"
fi
link "$otel_bin" otelcol-decisiontrail

jaeger_stamp="$gover $JAEGER_MODULE_VERSION"
jaeger_bin="jaeger-$(key "$jaeger_stamp")"
if [ -x "$bin/$jaeger_bin" ]; then
  echo "jaeger: up to date"
else
  start=$SECONDS
  # Jaeger's go.mod has replace directives, so `go install module@version` refuses it: download the
  # pinned module from the proxy and build its cmd/jaeger in place (the module cache is read-only,
  # the build writes only to GOCACHE and -o).
  dir=$(go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_MODULE_VERSION" \
        | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/$jaeger_bin.tmp" ./cmd/jaeger)
  mv "$bin/$jaeger_bin.tmp" "$bin/$jaeger_bin"
  echo "$jaeger_stamp" > "$bin/$jaeger_bin.stamp"
  echo "jaeger: built in $((SECONDS - start)) s"
fi
link "$jaeger_bin" jaeger
