#!/usr/bin/env bash
# bench/forward.sh — the "Forward path" section of `make bench`: what a request
# costs when promptcache forwards it (misses, bypasses, --mode off), side by
# side with nginx as a plain proxy_pass reverse proxy, in one run:
#   upstream direct        the fake upstream (nginx answering every POST at once
#                          with a fixed 1 KB chat.completion), no proxy
#   nginx proxy_pass       no cache, keep-alive upstream pool, 1 worker
#   promptcache off        --mode off
#   promptcache MISS       readwrite, every request a new key (forwarded, stored)
#   promptcache no-store   readwrite, Cache-Control: no-store (BYPASS)
# each driven by wrk -t1 at 16 and 256 connections with 1 KB bodies that are
# all distinct (bench/wrk-fwd.lua splices a counter into each), every proxy
# with 1 worker; the rows take turns within each repetition, and each cell is
# the median of BENCH_REPS_FWD runs. Before every cell a few curl requests check
# status 200 and the expected X-PromptCache-Status. Then streaming: a 16-chunk
# SSE answer with 20 ms gaps (bench/sse-upstream.mjs), time to first byte, per
# chunk and to last byte directly, through nginx (proxy_buffering off) and
# through promptcache (a MISS streamed live), by bench/stream-client.mjs.
#
# Writes build/bench/forward.md (also printed on stdout) and raw figures in
# build/bench/fwd-*. Always exits 0. Run alone: `bash bench/forward.sh` (uses
# build/promptcache as it is) or `BENCH_ONLY=forward make bench` (builds first).
#
# Knobs (environment): BENCH_DURATION_FWD (s per cell, default 3),
# BENCH_REPS_FWD (3), BENCH_CONNS_FWD ("16 256"), BENCH_STREAM_REQS (20 per
# target), BENCH_FWD_UPSTREAM_WORKERS (fake upstream's nginx workers, 1),
# BENCH_FWD_PC_ARGS (extra promptcache serve arguments for every instance),
# BENCH_PCBIN (binary, default build/promptcache), BENCH_OUT (build/bench).
set -u
START_TS=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 0
OUT=${BENCH_OUT:-$ROOT/build/bench}
mkdir -p "$OUT" || exit 0
DUR=${BENCH_DURATION_FWD:-3}
REPS=${BENCH_REPS_FWD:-3}
CONNS=${BENCH_CONNS_FWD:-"16 256"}
STREAM_N=${BENCH_STREAM_REQS:-20}
UP_WORKERS=${BENCH_FWD_UPSTREAM_WORKERS:-1}
read -r -a PC_EXTRA <<<"${BENCH_FWD_PC_ARGS:-}"
BODY_SIZE=1024
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
ROWS="direct nginx pc-off pc-miss pc-nostore"

rm -f "$OUT"/fwd-* "$OUT"/forward.md 2>/dev/null

log() { printf '[forward %4ss] %s\n' "$(($(date +%s) - START_TS))" "$*" | tee -a "$OUT/fwd-run.log" >&2; }
note() { printf '%s\n' "$*" >>"$OUT/fwd-notes.txt"; log "NOTE: $*"; }

. "$ROOT/bench/common.sh"
trap cleanup EXIT
trap 'log "interrupted"; exit 0' INT TERM

report() { # the Markdown section, also when nothing could be measured
  echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/fwd-env.txt"
  echo "runtime_s=$(($(date +%s) - START_TS))" >>"$OUT/fwd-env.txt"
  if command -v node >/dev/null 2>&1; then
    node bench/forward-report.mjs "$OUT" >"$OUT/forward.md" 2>>"$OUT/fwd-run.log" ||
      printf '## Forward path\n\nreport failed (see build/bench/fwd-run.log)\n' >"$OUT/forward.md"
  else
    { printf '## Forward path\n\nnot measured:\n\n'; sed 's/^/- /' "$OUT/fwd-notes.txt"; } >"$OUT/forward.md"
  fi
  cat "$OUT/forward.md"
  log "done in $(($(date +%s) - START_TS)) s; section in build/bench/forward.md"
}

{
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "dur=$DUR"
  echo "reps=$REPS"
  echo "conns=$CONNS"
  echo "stream_n=$STREAM_N"
  echo "up_workers=$UP_WORKERS"
  echo "pc_extra=${BENCH_FWD_PC_ARGS:-}"
} >"$OUT/fwd-env.txt"
printf 'conns\trow\trep\trps\tp50_ms\tp99_ms\tcpu_us\trequests\tnon2xx\terrors\tup_requests\tup_conns\tup_cpu_us\tlog_counts\tlog_p50_ms\tlog_p99_ms\tlog_max_ms\tlog_over10ms\n' >"$OUT/fwd-rows.tsv"
printf 'conns\trep\trow\tcheck\n' >"$OUT/fwd-checks.tsv"

# ---- dependencies, binary, temp dir ----------------------------------------------
NGINX=$(command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })
missing=
[ -n "$NGINX" ] || missing="$missing nginx"
for c in wrk node curl ss; do command -v $c >/dev/null 2>&1 || missing="$missing $c"; done
if [ -n "$missing" ]; then
  note "missing:$missing (Debian: apt-get install nginx-light wrk nodejs curl iproute2): forward path not measured"
  report
  exit 0
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
base=${TMPDIR:-/tmp}
if [ -d /dev/shm ] && [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2{print $4}')" -gt $((4 * 1024 * 1024)) ] 2>/dev/null; then
  base=/dev/shm
fi
TMP=$(mktemp -d "$base/pc-fwd.XXXXXX") || { note "cannot create a temp dir"; report; exit 0; }
chmod 755 "$TMP"
SRC_BIN=${BENCH_PCBIN:-$ROOT/build/promptcache}
if [ ! -x "$SRC_BIN" ]; then
  note "no promptcache binary at $SRC_BIN (make build/promptcache): forward path not measured"
  report
  exit 0
fi
PCBIN=$TMP/promptcache
cp "$SRC_BIN" "$PCBIN" # a rebuild during the run does not change what is measured
echo "nginx=$("$NGINX" -v 2>&1 | sed 's/.*\///')" >>"$OUT/fwd-env.txt"
echo "wrk=$(wrk -v 2>&1 | head -n 1 | awk '{print $2}')" >>"$OUT/fwd-env.txt"
echo "node=$(node -v)" >>"$OUT/fwd-env.txt"
echo "promptcache=$("$PCBIN" --version 2>&1 | head -n 1)" >>"$OUT/fwd-env.txt"
log "temp dir $TMP; binary $SRC_BIN"

TPL=$TMP/template.txt
node bench/gen.mjs template "$BODY_SIZE" "$TPL" || { note "body template generation failed"; report; exit 0; }
TPL_LINE=$(head -n 1 "$TPL")
TPL_PRE=${TPL_LINE%%\{SEQ\}*}
TPL_POST=${TPL_LINE#*\{SEQ\}}
UP_BODY=$(node bench/gen.mjs response)
case "$UP_BODY" in *"'"* | *'$'* | *'\'*) note "upstream body has characters nginx would mangle" ;; esac

# ---- servers --------------------------------------------------------------------------
pick_port; P_UP=$PORT
pick_port; P_NG=$PORT
pick_port; P_NGS=$PORT
pick_port; P_SSE=$PORT
pick_port; P_OFF=$PORT
pick_port; P_MISS=$PORT
pick_port; P_NS=$PORT
pick_port; P_PCS=$PORT

start_nginx_fwd() { # start_nginx_fwd NAME TEMPLATE PORT KEY=VALUE...: sets NGINX_PID
  local name=$1 tpl=$2 port=$3 prefix=$TMP/nginx-$1
  shift 3
  mkdir -p "$prefix/tmp"
  render "$tpl" "$prefix/nginx.conf" PREFIX="$prefix" PORT="$port" "$@" || { note "nginx $name: template not filled"; NGINX_PID=; return 1; }
  cp "$prefix/nginx.conf" "$OUT/fwd-nginx-$name.conf"
  launch_nginx "$NGINX" "$prefix" "$port" || { note "nginx $name did not start: $NGINX_ERR"; return 1; }
}
start_pc() { # start_pc NAME PORT UPSTREAM_PORT [args]: sets PC_PID; its access log in $TMP/pc-NAME.log
  local name=$1 port=$2 up=$3
  shift 3
  PC_PID=
  # >> (O_APPEND): the log is read per cell from a byte offset
  "$PCBIN" serve --listen "127.0.0.1:$port" --upstream "http://127.0.0.1:$up" --db "$TMP/db-$name" \
    --workers 1 --max-size 16GiB --log-format text "${PC_EXTRA[@]}" "$@" 2>>"$TMP/pc-$name.log" &
  PC_PID=$!
  track "$PC_PID"
  wait_port "$port" "$PC_PID" || {
    note "promptcache $name did not start: $(grep -v ' POST ' "$TMP/pc-$name.log" | tail -n 3 | tr '\n' ' ')"
    stop_pid "$PC_PID"
    PC_PID=
    return 1
  }
}

declare -A PID PORTOF
start_nginx_fwd upstream bench/nginx-fwd-upstream.conf "$P_UP" WORKERS="$UP_WORKERS" BODY="$UP_BODY" && PID[direct]=$NGINX_PID
UP_PID=${PID[direct]:-}
start_nginx_fwd proxy bench/nginx-fwd-proxy.conf "$P_NG" UP_PORT="$P_UP" STREAM_PORT="$P_NGS" SSE_PORT="$P_SSE" &&
  PID[nginx]=$NGINX_PID
start_pc off "$P_OFF" "$P_UP" --mode off && PID[pc-off]=$PC_PID
start_pc miss "$P_MISS" "$P_UP" --mode readwrite && PID[pc-miss]=$PC_PID
start_pc nostore "$P_NS" "$P_UP" --mode readwrite && PID[pc-nostore]=$PC_PID
PORTOF=([direct]=$P_UP [nginx]=$P_NG [pc-off]=$P_OFF [pc-miss]=$P_MISS [pc-nostore]=$P_NS)
declare -A LOGOF=([pc-off]=$TMP/pc-off.log [pc-miss]=$TMP/pc-miss.log [pc-nostore]=$TMP/pc-nostore.log)
log "ports: upstream $P_UP, nginx $P_NG (stream $P_NGS), promptcache off $P_OFF / miss $P_MISS / no-store $P_NS / stream $P_PCS, sse $P_SSE"

up_status() { # the fake upstream's "accepts requests" (stub_status; this request included)
  curl -s --max-time 5 "http://127.0.0.1:$P_UP/nginx_status" | awk 'NR==3{print $1, $3}'
}

# ---- correctness checks (curl) ------------------------------------------------------------
CHECK_SEQ=9000000000
check_req() { # check_req URL WANT_CACHE NOSTORE(0/1) BODYFILE: "" when fine, else what was wrong
  local url=$1 want=$2 ns=$3 bodyf=$4 code cache hdr=()
  [ "$ns" = 1 ] && hdr=(-H 'Cache-Control: no-store')
  code=$(curl -s --max-time 5 -o "$TMP/ck.body" -D "$TMP/ck.head" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-bench' "${hdr[@]}" \
    --data-binary @"$bodyf" "$url" 2>/dev/null)
  cache=$(tr -d '\r' <"$TMP/ck.head" 2>/dev/null | awk -F': *' 'tolower($1)=="x-promptcache-status"{print $2}' | tail -n 1)
  cache=${cache:--}
  if [ "$code" != 200 ] || [ "$cache" != "$want" ] || ! grep -q '"object":"chat.completion"' "$TMP/ck.body" 2>/dev/null; then
    printf '%s%s gave %s %s (want 200 %s)%s' "$([ "$ns" = 1 ] && echo 'no-store ')" "${url##*/}" "${code:-000}" "$cache" "$want" \
      "$(grep -q '"object":"chat.completion"' "$TMP/ck.body" 2>/dev/null || echo ', not the upstream body')"
  fi
}
check_row() { # check_row ROW SEQ: a few requests with body SEQ (new to the row); prints "ok" or the failures
  local row=$1 url="http://127.0.0.1:${PORTOF[$1]}/v1/chat/completions" errs=() e b=$TMP/ck.req
  printf '%s%010d%s' "$TPL_PRE" "$2" "$TPL_POST" >"$b"
  case $row in
    direct | nginx)
      e=$(check_req "$url" - 0 "$b"); [ -n "$e" ] && errs+=("$e")
      e=$(check_req "$url" - 0 "$b"); [ -n "$e" ] && errs+=("$e") ;;
    pc-off)
      e=$(check_req "$url" BYPASS 0 "$b"); [ -n "$e" ] && errs+=("$e")
      e=$(check_req "$url" BYPASS 0 "$b"); [ -n "$e" ] && errs+=("repeat: $e") ;;
    pc-miss) # a new key is a MISS, and stored: its repeat is a HIT
      e=$(check_req "$url" MISS 0 "$b"); [ -n "$e" ] && errs+=("$e")
      e=$(check_req "$url" HIT 0 "$b"); [ -n "$e" ] && errs+=("repeat: $e") ;;
    pc-nostore) # neither read nor written: BYPASS twice, then the same body without no-store is a MISS
      e=$(check_req "$url" BYPASS 1 "$b"); [ -n "$e" ] && errs+=("$e")
      e=$(check_req "$url" BYPASS 1 "$b"); [ -n "$e" ] && errs+=("repeat: $e")
      e=$(check_req "$url" MISS 0 "$b"); [ -n "$e" ] && errs+=("then without no-store: $e") ;;
  esac
  if [ ${#errs[@]} = 0 ]; then echo ok; else (IFS=';'; echo "${errs[*]}"); fi
}

# ---- one cell -------------------------------------------------------------------------------
log_summary() { # log_summary LOGFILE OFFSET: "STATUS CACHE=N,..." of the lines past OFFSET; their total= ms sorted in $TMP/totals.txt
  tail -c +$(($2 + 1)) "$1" 2>/dev/null | awk -v tf="$TMP/totals.raw" '
    $2 == "POST" || $2 == "GET" {
      c[$4 " " $5]++
      t = $NF; sub(/^total=/, "", t); sub(/ms$/, "", t); print t > tf
    }
    END { s = ""; for (k in c) s = s (s == "" ? "" : ",") k "=" c[k]; print (s == "" ? "-" : s) }'
  sort -g "$TMP/totals.raw" >"$TMP/totals.txt" 2>/dev/null
  rm -f "$TMP/totals.raw"
}
pct() { # pct FILE P: the P-th percentile of a sorted column
  awk -v p="$2" '{a[NR]=$1} END{ if (!NR) { print 0; exit } i = int(p * NR); if (i < 1) i = 1; if (i > NR) i = NR; print a[i] }' "$1"
}

run_cell() { # run_cell ROW CONNS REP SEQ
  local row=$1 conns=$2 rep=$3 seq=$4 pid=${PID[$1]:-} port=${PORTOF[$1]}
  if ! alive "$pid"; then
    [ -n "$pid" ] && note "$row is not running any more (c$conns r$rep)"
    return 0
  fi
  local chk
  CHECK_SEQ=$((CHECK_SEQ + 1)) # here, not in check_row: that runs in a subshell
  chk=$(check_row "$row" "$CHECK_SEQ")
  printf '%s\t%s\t%s\t%s\n' "$conns" "$rep" "$row" "$chk" >>"$OUT/fwd-checks.tsv"
  [ "$chk" = ok ] || note "check before $row c$conns r$rep: $chk"
  local raw=$OUT/fwd-wrk-c$conns-$row-r$rep.txt logf=${LOGOF[$row]:-} off=0 ns=0
  [ "$row" = pc-nostore ] && ns=1
  [ -n "$logf" ] && off=$(stat -c %s "$logf" 2>/dev/null || echo 0)
  local u0 u1 cpu0 cpu1 ucpu0 ucpu1
  u0=$(up_status)
  cpu0=$(tree_ticks "$pid")
  ucpu0=$(tree_ticks "$UP_PID")
  BENCH_TEMPLATE=$TPL BENCH_SEQ=$seq BENCH_THREADS=1 BENCH_NOSTORE=$ns \
    bg_wait timeout $((DUR + 60)) wrk -t1 -c"$conns" -d"${DUR}s" --timeout 10s --latency -s bench/wrk-fwd.lua \
    "http://127.0.0.1:$port/v1/chat/completions" >"$raw" 2>&1
  cpu1=$(tree_ticks "$pid")
  ucpu1=$(tree_ticks "$UP_PID")
  u1=$(up_status)
  local rps p50 p99 reqs non2xx errs cpu_us ucpu_us upr=0 upc=0
  rps=$(awk '/^Requests\/sec:/{print $2}' "$raw")
  p50=$(awk '$1=="50%"{print $2}' "$raw")
  p99=$(awk '$1=="99%"{print $2}' "$raw")
  reqs=$(awk '/requests in/{print $1}' "$raw")
  non2xx=$(awk '/Non-2xx or 3xx responses:/{print $NF}' "$raw")
  errs=$(awk '/Socket errors:/{gsub(/,/,""); print $4+$6+$8+$10}' "$raw")
  [ -n "$rps" ] || { note "wrk gave no result for $row c$conns r$rep (see build/bench/$(basename "$raw"))"; rps=0; }
  [ -n "$p50" ] && p50=$(to_ms "$p50") || p50=0
  [ -n "$p99" ] && p99=$(to_ms "$p99") || p99=0
  reqs=${reqs:-0}
  cpu_us=$(awk -v d=$((cpu1 - cpu0)) -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN{ if (n>0) printf "%.2f", d/hz*1e6/n; else print 0 }')
  ucpu_us=$(awk -v d=$((ucpu1 - ucpu0)) -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN{ if (n>0) printf "%.2f", d/hz*1e6/n; else print 0 }')
  if [ -n "$u0" ] && [ -n "$u1" ]; then # minus the status request itself
    upc=$(($(echo "$u1" | cut -d' ' -f1) - $(echo "$u0" | cut -d' ' -f1) - 1))
    upr=$(($(echo "$u1" | cut -d' ' -f2) - $(echo "$u0" | cut -d' ' -f2) - 1))
  fi
  local lc=- lp50=0 lp99=0 lmax=0 lover=0
  if [ -n "$logf" ]; then
    sleep 0.2 # the access log is written once per loop iteration
    : >"$TMP/totals.raw"
    lc=$(log_summary "$logf" "$off")
    lp50=$(pct "$TMP/totals.txt" 0.5)
    lp99=$(pct "$TMP/totals.txt" 0.99)
    lmax=$(tail -n 1 "$TMP/totals.txt")
    lover=$(awk '$1 > 10 {n++} END {print n+0}' "$TMP/totals.txt")
    rm -f "$TMP/totals.txt"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$conns" "$row" "$rep" "$rps" "$p50" "$p99" \
    "$cpu_us" "$reqs" "${non2xx:-0}" "${errs:-0}" "$upr" "$upc" "$ucpu_us" "$lc" "$lp50" "$lp99" "${lmax:-0}" "$lover" >>"$OUT/fwd-rows.tsv"
  log "  $row c$conns r$rep: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, ${cpu_us} µs CPU/req; upstream +$upr req +$upc conns; check $chk${logf:+; log $lc}"
}

# ---- the wrk cells ------------------------------------------------------------------------------
run_no=0
if alive "$UP_PID"; then
  for conns in $CONNS; do
    for rep in $(seq 1 "$REPS"); do
      run_no=$((run_no + 1))
      for row in $ROWS; do
        run_cell "$row" "$conns" "$rep" $((run_no * 10000000))
      done
    done
  done
else
  note "the fake upstream did not start: no wrk cells"
fi

# entries each instance stored (after a clean stop, so every write is committed)
for name in off miss nostore; do
  case $name in off) r=pc-off ;; miss) r=pc-miss ;; nostore) r=pc-nostore ;; esac
  p=${PID[$r]:-}
  [ -n "$p" ] || continue
  alive "$p" || note "promptcache $name exited during the run: $(grep -v ' POST ' "$TMP/pc-$name.log" | tail -n 3 | tr '\n' ' ')"
  stop_pid "$p"
  ent=$(timeout 60 "$PCBIN" stats --db "$TMP/db-$name" --json 2>/dev/null | sed -n 's/.*"entries":\([0-9]*\).*/\1/p')
  misses=$(grep -c ' MISS ' "$TMP/pc-$name.log" 2>/dev/null)
  other=$(grep ' POST ' "$TMP/pc-$name.log" 2>/dev/null | awk '$4 != 200 {n++} END {print n+0}')
  printf '%s\t%s\t%s\t%s\n' "$name" "${ent:-?}" "${misses:-0}" "$other" >>"$OUT/fwd-stored.tsv"
  log "promptcache $name: ${ent:-?} entries stored, ${misses:-0} MISS lines in its access log, $other non-200"
  grep ' POST ' "$TMP/pc-$name.log" 2>/dev/null | awk '$4 != 200' | head -n 20 >>"$OUT/fwd-pc-errors.log"
  grep -v ' POST ' "$TMP/pc-$name.log" 2>/dev/null | head -n 20 | sed "s/^/$name: /" >>"$OUT/fwd-pc-stderr.log"
  rm -rf "$TMP/db-$name" "$TMP/pc-$name.log"
done
stop_pid "$UP_PID"

# ---- streaming ---------------------------------------------------------------------------------------
if [ "$STREAM_N" -gt 0 ] 2>/dev/null; then
  log "streaming: $STREAM_N requests per target, 16 chunks 20 ms apart"
  node bench/sse-upstream.mjs "$P_SSE" 16 20 --max-seconds=600 >"$OUT/fwd-sse.log" 2>&1 &
  SSE_PID=$!
  track "$SSE_PID"
  targets=()
  if wait_port "$P_SSE" "$SSE_PID"; then
    targets+=("direct=http://127.0.0.1:$P_SSE/v1/chat/completions")
    alive "${PID[nginx]:-}" && targets+=("nginx=http://127.0.0.1:$P_NGS/v1/chat/completions")
    start_pc stream "$P_PCS" "$P_SSE" --mode readwrite && targets+=("promptcache=http://127.0.0.1:$P_PCS/v1/chat/completions")
    bg_wait timeout 300 node bench/stream-client.mjs "$STREAM_N" "${targets[@]}" >"$OUT/fwd-stream.json" 2>>"$OUT/fwd-run.log" ||
      note "stream client exited with status $?"
    [ -n "${PC_PID:-}" ] && { sleep 0.2; stop_pid "$PC_PID"; }
    grep ' POST ' "$TMP/pc-stream.log" 2>/dev/null | awk '{c[$4 " " $5]++} END {for (k in c) printf "%s=%d\n", k, c[k]}' \
      >"$OUT/fwd-stream-log.txt"
    ent=$(timeout 60 "$PCBIN" stats --db "$TMP/db-stream" --json 2>/dev/null | sed -n 's/.*"entries":\([0-9]*\).*/\1/p')
    echo "entries=${ent:-?}" >>"$OUT/fwd-stream-log.txt"
    log "streaming: $(tr '\n' ' ' <"$OUT/fwd-stream-log.txt")"
  else
    note "SSE upstream did not start: no streaming figures"
  fi
  stop_pid "$SSE_PID"
fi
stop_tracked
report
exit 0
