#!/usr/bin/env bash
# Resolves the Apache Kafka broker (KRaft mode) that the scale-out tests run, from Maven Central's
# jars (org.apache.kafka:kafka_2.13 and its dependencies, scripts/kafka/pom.xml), into a per-user
# cache shared by every clone, as build-binaries.sh does for the Go builds:
#   ${DECISIONTRAIL_CACHE:-${XDG_CACHE_HOME:-~/.cache}/decisiontrail}/
#     maven/                Maven's local repository (downloaded artifacts and plugins)
#     kafka-<version>/jars  the broker's classpath; kafka-<version>/stamp says what it was made from
# The clone's .cache/kafka links to it. Needs Java (17+) and Maven; either one missing is installed
# with apt-get (as root, or through sudo), else a clear error. A second run is a no-op.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${DECISIONTRAIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/decisiontrail}
# shellcheck source=/dev/null
. "$root/collector-config/versions.env"

apt_install() {  # apt_install <command it provides> <package>...
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if ! command -v apt-get >/dev/null 2>&1 || ! "${sudo[@]}" true 2>/dev/null; then
    echo "error: '$cmd' is missing and cannot be installed here (needs apt-get and root): install $* and rerun" >&2
    exit 2
  fi
  echo "installing $* (for $cmd)"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
apt_install java openjdk-17-jre-headless
apt_install mvn maven

dest="$cache/kafka-$KAFKA_VERSION"
stamp="$KAFKA_VERSION $(sha256sum < "$root/scripts/kafka/pom.xml" | cut -d' ' -f1)"
mkdir -p "$cache" "$root/.cache"
exec 9>"$cache/kafka.lock"
flock 9   # parallel clones share the cache safely

if [ -f "$dest/stamp" ] && [ "$(cat "$dest/stamp")" = "$stamp" ] && [ -d "$dest/jars" ]; then
  echo "kafka $KAFKA_VERSION: up to date"
else
  start=$SECONDS
  rm -rf "$dest.tmp"; mkdir -p "$dest.tmp"
  mvn -B -q -f "$root/scripts/kafka/pom.xml" -Dmaven.repo.local="$cache/maven" \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dest.tmp/jars"
  ls "$dest.tmp/jars"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null  # the broker itself is there
  echo "$stamp" > "$dest.tmp/stamp"
  rm -rf "$dest"; mv "$dest.tmp" "$dest"
  echo "kafka $KAFKA_VERSION: $(ls "$dest/jars" | wc -l) jars resolved in $((SECONDS - start)) s"
fi
ln -sfn "$dest" "$root/.cache/kafka"
