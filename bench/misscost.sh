#!/usr/bin/env bash
# misscost.sh — instructions the server executes per forwarded 1 KB request,
# counted by callgrind (repeatable, unlike wall-clock figures on a shared
# machine): (Ir with N+10 requests − Ir with 10 requests) / N, so start-up and
# shutdown cancel out. Every request has its own prompt (a counter in it), so
# each one goes upstream; one line per mode:
#   off       --mode off (plain proxy, BYPASS)
#   miss      readwrite, a new key each time (MISS, forwarded and stored)
#   no-store  readwrite with Cache-Control: no-store (BYPASS, neither read nor written)
# The upstream is bench/hitcost-upstream.mjs (Node, a fixed ~1 KB chat
# completion): only the proxy runs under valgrind.
#   bench/misscost.sh [BINARY] [N]     (default build/promptcache, N=1000)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/promptcache}
N=${2:-1000}
command -v valgrind >/dev/null || { echo "misscost.sh: valgrind is missing (apt-get install valgrind)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "misscost.sh: no binary at $BIN" >&2; exit 2; }
TMP=$(mktemp -d)
UP_PORT=18421 PC_PORT=18422 # hitcost.sh uses 18411/18412: both may run at once
node bench/hitcost-upstream.mjs $UP_PORT & UP_PID=$!
PC_PID=
cleanup() {
  [ -n "$PC_PID" ] && kill "$PC_PID" 2>/dev/null || true
  kill "$UP_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
sleep 0.3

ir_for() { # ir_for MODE NOSTORE(0/1) REQUESTS: IR = total instructions of one server run
  local mode=$1 ns=$2 n=$3 tag="$1-$2-$3" ok=0
  valgrind --tool=callgrind --callgrind-out-file="$TMP/cg-$tag" "$BIN" serve --listen 127.0.0.1:$PC_PORT \
    --upstream http://127.0.0.1:$UP_PORT --db "$TMP/db-$tag" --key-scope shared --mode "$mode" 2>"$TMP/err-$tag" &
  PC_PID=$!
  for _ in $(seq 150); do
    grep -q "listening on" "$TMP/err-$tag" && { ok=1; break; }
    kill -0 "$PC_PID" 2>/dev/null || break
    sleep 0.2
  done
  [ $ok = 1 ] || { echo "misscost.sh: promptcache did not start ($mode): $(tail -n 3 "$TMP/err-$tag")" >&2; exit 1; }
  node bench/misscost-client.mjs $PC_PORT "$n" "$([ "$ns" = 1 ] && echo no-store || echo store)" >"$TMP/st-$tag"
  kill -TERM "$PC_PID"
  wait "$PC_PID" || true
  PC_PID=
  IR=$(awk '/^summary:/ {print $2}' "$TMP/cg-$tag")
  [ -n "$IR" ] || { echo "misscost.sh: no callgrind summary ($mode, $n requests)" >&2; exit 1; }
}

for m in off miss no-store; do
  case $m in
    off) mode=off ns=0 want=BYPASS ;;
    miss) mode=readwrite ns=0 want=MISS ;;
    no-store) mode=readwrite ns=1 want=BYPASS ;;
  esac
  ir_for $mode $ns 10
  base=$IR
  ir_for $mode $ns $((N + 10))
  full=$IR
  got=$(cat "$TMP/st-$mode-$ns-$((N + 10))")
  check=
  [ "$got" = "200 $want=$((N + 10))" ] || check=" — WARNING: answers were $got, expected 200 $want=$((N + 10))"
  printf '%s: %d instructions per 1 KB forwarded request, %-8s (callgrind, %d requests)%s\n' \
    "$BIN" $(((full - base) / N)) "$m" "$N" "$check"
done
