#!/usr/bin/env bash
# deps.sh — install the Debian packages promptcache needs to build and test.
# Usage: scripts/deps.sh build|test|bench
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail
build_pkgs="gcc make pkg-config libuv1-dev node-llhttp libcurl4-openssl-dev liblmdb-dev libxxhash-dev libssl-dev libhiredis-dev zlib1g-dev"
test_pkgs="libcriterion-dev curl openssl nodejs npm chromium prometheus lmdb-utils redis-server redis-tools clang libclang-rt-14-dev util-linux clang-tidy clang-format cppcheck valgrind"
bench_pkgs="nginx-light wrk"
case "${1:-build}" in
  build) want="$build_pkgs" ;;
  test) want="$build_pkgs $test_pkgs" ;;
  bench) want="$build_pkgs $bench_pkgs" ;;
  *) echo "deps.sh: unknown set '$1'" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  # node/npm may come from outside Debian (e.g. a preinstalled Node 20): accept the commands.
  if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
  if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps.sh: installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq $missing >&2
else
  echo "deps.sh: missing Debian packages; run: sudo apt-get update && sudo apt-get install -y$missing" >&2
  exit 1
fi
