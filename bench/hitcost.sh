#!/usr/bin/env bash
# hitcost.sh — instructions the server executes per cache hit, counted by
# callgrind (repeatable, unlike wall-clock figures on a shared machine):
# (Ir with N+10 hits − Ir with 10 hits) / N, startup and shutdown cancel out.
#   bench/hitcost.sh [BINARY] [N] [SIZE]
# (default build/promptcache, N=1000, SIZE the request body in bytes: 1k by
# default; 16k, 100k, 1m, ... accepted; also reported per KB)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/promptcache}
N=${2:-1000}
SIZE_ARG=${3:-1k}
case "$SIZE_ARG" in
  *[kK]) SIZE=$(( ${SIZE_ARG%[kK]} * 1024 )) ;;
  *[mM]) SIZE=$(( ${SIZE_ARG%[mM]} * 1024 * 1024 )) ;;
  *) SIZE=$SIZE_ARG ;;
esac
[ "$SIZE" -le 1024 ] && SIZE=0 # the historic 1 KB body
command -v valgrind >/dev/null || { echo "hitcost.sh: valgrind is missing (apt-get install valgrind)" >&2; exit 2; }
TMP=$(mktemp -d)
UP_PORT=18411 PC_PORT=18412
node bench/hitcost-upstream.mjs $UP_PORT & UP_PID=$!
cleanup() { kill "$UP_PID" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
sleep 0.3

ir_for() { # hits → total instructions of one server run
  local db="$TMP/db-$1" out="$TMP/cg-$1"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" serve --listen 127.0.0.1:$PC_PORT \
    --upstream http://127.0.0.1:$UP_PORT --db "$db" --key-scope shared --max-body 64MiB 2>"$TMP/err-$1" &
  local pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$TMP/err-$1" && break; sleep 0.2; done
  node bench/hitcost-client.mjs $PC_PORT 1 $SIZE >/dev/null # the miss that stores the entry
  node bench/hitcost-client.mjs $PC_PORT "$1" $SIZE >/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/^summary:/ {print $2}' "$out"
}
base=$(ir_for 10)
full=$(ir_for $((N + 10)))
per=$(( (full - base) / N ))
if [ "$SIZE" = 0 ]; then
  echo "$BIN: $per instructions per 1 KB hit (callgrind, $N hits)"
else
  echo "$BIN: $per instructions per hit on a $SIZE_ARG body, $(( per * 1024 / SIZE )) per KB (callgrind, $N hits)"
fi
