#!/usr/bin/env bash
# bench/fleet.sh — the "Fleet" section of `make bench`: promptcache nodes
# sharing one cache through Redis (SPEC §10), on loopback, in one run:
#
# 1. Hits by tier, next to nginx-cache. A redis-server of our own (no
#    persistence), the mock upstream (bench/mock.mjs, one port per peer) and
#      shared       promptcache --mode readonly --redis: readonly never writes
#                   LMDB, so every request is looked up in Redis again (a
#                   shared-tier hit each time, not only the first)
#      local        promptcache readwrite --redis: the node that filled Redis;
#                   its hits come from its own LMDB
#      local, no Redis  promptcache readwrite without --redis (what --redis
#                   costs a local hit)
#      nginx-cache  nginx caching POST answers keyed on the body (as bench/run.sh)
#    Every peer is filled first with BENCH_FLEET_DISTINCT 1 KB bodies
#    (bench/gen.mjs; the shared node through Redis, filled by the local node),
#    then driven by wrk -t2 (bench/wrk.lua, the bodies round-robin) at each of
#    BENCH_FLEET_CONNS connections, peers taking turns, the median of
#    BENCH_FLEET_REPS runs per cell. Before each run one request per peer checks
#    status 200, the expected X-PromptCache-Status / X-PromptCache-Tier
#    (nginx: X-Cache-Status) and that the answer is that body's. Around each
#    run: the node's /_promptcache/stats (bench/fleet-stats.mjs: hits by tier,
#    shared.commands, shared.ops.get; the shared counters are copied into
#    /stats once a second, hence a 1.2 s pause after the run), redis-server's
#    total_commands_processed and the CPU of the node and of redis-server, so
#    Redis round trips per request = Δshared.commands ÷ Δrequests (0 for a
#    local hit, 1 for a shared hit). Finally every body once more per peer
#    (bench/client.mjs: each answer its own body's).
# 2. Fleet single flight under a burst. Three readwrite nodes on the same Redis
#    (their own --redis-prefix), a slow upstream (bench/fleet-upstream.mjs:
#    every answer after BENCH_FLEET_DELAY_MS; streams: the head at once, the
#    first event after the delay, BENCH_FLEET_CHUNKS events BENCH_FLEET_GAP_MS
#    apart). bench/fleet-burst.mjs sends BENCH_FLEET_BURST_N identical new
#    requests at once, round-robin over the nodes, for BENCH_FLEET_BURST_KEYS
#    prompts in turn, once with JSON answers and once streamed: upstream
#    requests per prompt (target 1), statuses, and the leader's time to first
#    byte against its followers' (on its node, on the other nodes).
#
# Writes build/bench/fleet.md (also printed on stdout) and raw figures in
# build/bench/fleet-*. Always exits 0. Run alone: `bash bench/fleet.sh` (uses
# build/promptcache as it is) or `BENCH_ONLY=fleet make bench` (builds first).
#
# Knobs (environment): BENCH_FLEET_DURATION (s per wrk run, default 3),
# BENCH_FLEET_REPS (3), BENCH_FLEET_CONNS ("32 256"), BENCH_FLEET_DISTINCT
# (1000 bodies), BENCH_FLEET_BURST_N (60), BENCH_FLEET_BURST_KEYS (5),
# BENCH_FLEET_DELAY_MS (250), BENCH_FLEET_CHUNKS (8), BENCH_FLEET_GAP_MS (30),
# BENCH_FLEET_SKIP (parts left out: "hits", "burst"), BENCH_PCBIN (binary,
# default build/promptcache), BENCH_OUT (build/bench).
set -u
START_TS=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 0
OUT=${BENCH_OUT:-$ROOT/build/bench}
mkdir -p "$OUT" || exit 0
DUR=${BENCH_FLEET_DURATION:-3}
REPS=${BENCH_FLEET_REPS:-3}
CONNS=${BENCH_FLEET_CONNS:-"32 256"}
NDISTINCT=${BENCH_FLEET_DISTINCT:-1000}
BURST_N=${BENCH_FLEET_BURST_N:-60}
BURST_KEYS=${BENCH_FLEET_BURST_KEYS:-5}
DELAY_MS=${BENCH_FLEET_DELAY_MS:-250}
CHUNKS=${BENCH_FLEET_CHUNKS:-8}
GAP_MS=${BENCH_FLEET_GAP_MS:-30}
FSKIP=${BENCH_FLEET_SKIP:-}
THREADS=2
PEERS="shared local nored nginx"
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

rm -f "$OUT"/fleet-* "$OUT"/fleet.md 2>/dev/null

log() { printf '[fleet %4ss] %s\n' "$(($(date +%s) - START_TS))" "$*" | tee -a "$OUT/fleet-run.log" >&2; }
note() { printf '%s\n' "$*" >>"$OUT/fleet-notes.txt"; log "NOTE: $*"; }
fskipped() { case " $FSKIP " in *" $1 "*) return 0 ;; esac; return 1; }

. "$ROOT/bench/common.sh"
trap cleanup EXIT
trap 'log "interrupted"; exit 0' INT TERM

# the command line that produced this section
cmdline() {
  local v kv=()
  for v in $(compgen -e | grep -E '^BENCH_' | sort); do
    case $v in BENCH_OUT | BENCH_PCBIN | BENCH_FLEET_VIA) continue ;; esac
    case ${!v} in *[!A-Za-z0-9_.,:/=+-]*) kv+=("$v=\"${!v}\"") ;; *) kv+=("$v=${!v}") ;; esac
  done
  printf '%s' "${kv[*]:+${kv[*]} }${BENCH_FLEET_VIA:-bash bench/fleet.sh}"
}

report() { # the Markdown section, also when nothing could be measured
  echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/fleet-env.txt"
  echo "runtime_s=$(($(date +%s) - START_TS))" >>"$OUT/fleet-env.txt"
  if command -v node >/dev/null 2>&1; then
    node bench/fleet-report.mjs "$OUT" >"$OUT/fleet.md" 2>>"$OUT/fleet-run.log" ||
      printf '## Fleet (shared tier on Redis)\n\nreport failed (see build/bench/fleet-run.log)\n' >"$OUT/fleet.md"
  else
    { printf '## Fleet (shared tier on Redis)\n\nnot measured:\n\n'; sed 's/^/- /' "$OUT/fleet-notes.txt"; } >"$OUT/fleet.md"
  fi
  cat "$OUT/fleet.md"
  log "done in $(($(date +%s) - START_TS)) s; section in build/bench/fleet.md"
}

{
  echo "cmdline=$(cmdline)"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "cpus=$(nproc 2>/dev/null || echo '?')"
  echo "dur=$DUR"
  echo "reps=$REPS"
  echo "conns=$CONNS"
  echo "distinct=$NDISTINCT"
  echo "burst_n=$BURST_N"
  echo "burst_keys=$BURST_KEYS"
  echo "delay_ms=$DELAY_MS"
  echo "chunks=$CHUNKS"
  echo "gap_ms=$GAP_MS"
} >"$OUT/fleet-env.txt"
printf 'conns\tpeer\trep\trps\tp50_ms\tp99_ms\twrk_requests\tnon2xx\terrors\tup_delta\tcpu_us\tredis_cpu_us\tredis_cmds\trequests\thits_local\thits_shared\tmiss\tcoalesced\tfleet_coalesced\tother\tcommands\tgets\tshared_errors\tshared_timeouts\tcorrupt\tcommand_errors\tleases_won\tleases_held\ttakeovers\tfollows_cut\treconnects\n' \
  >"$OUT/fleet-rows.tsv"
printf 'conns\trep\tpeer\tcheck\n' >"$OUT/fleet-checks.tsv"

# ---- dependencies, binary, temp dir ------------------------------------------------------
NGINX=$(command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })
REDIS=$(command -v redis-server 2>/dev/null)
if [ -z "$REDIS" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  log "installing redis-server (apt-get)"
  # keep the package from starting a system redis on port 6379
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; } \
    >>"$OUT/fleet-run.log" 2>&1 || note "apt-get install redis-server failed (see build/bench/fleet-run.log)"
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
  REDIS=$(command -v redis-server 2>/dev/null)
fi
REDIS_CLI=$(command -v redis-cli 2>/dev/null)
missing=
[ -n "$REDIS" ] || missing="$missing redis-server"
for c in wrk node curl ss; do command -v $c >/dev/null 2>&1 || missing="$missing $c"; done
if [ -n "$missing" ]; then
  note "missing:$missing (Debian: apt-get install redis-server wrk nodejs curl iproute2): fleet section not measured"
  report
  exit 0
fi
[ -n "$NGINX" ] || note "nginx unavailable: no nginx-cache row"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
base=${TMPDIR:-/tmp}
if [ -d /dev/shm ] && [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2{print $4}')" -gt $((4 * 1024 * 1024)) ] 2>/dev/null; then
  base=/dev/shm
fi
TMP=$(mktemp -d "$base/pc-fleet.XXXXXX") || { note "cannot create a temp dir"; report; exit 0; }
chmod 755 "$TMP"
SRC_BIN=${BENCH_PCBIN:-$ROOT/build/promptcache}
if [ ! -x "$SRC_BIN" ]; then
  note "no promptcache binary at $SRC_BIN (make build/promptcache): fleet section not measured"
  report
  exit 0
fi
PCBIN=$TMP/promptcache
cp "$SRC_BIN" "$PCBIN" # a rebuild during the run does not change what is measured
{
  [ -n "$NGINX" ] && echo "nginx=$("$NGINX" -v 2>&1 | sed 's/.*\///')"
  echo "wrk=$(wrk -v 2>&1 | head -n 1 | awk '{print $2}')"
  echo "node=$(node -v)"
  echo "redis=$("$REDIS" --version 2>&1 | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
  echo "promptcache=$("$PCBIN" --version 2>&1 | head -n 1)"
} >>"$OUT/fleet-env.txt"
log "temp dir $TMP; binary $SRC_BIN"

# ---- helpers ---------------------------------------------------------------------------------
start_pc() { # start_pc NAME PORT UPSTREAM_PORT [args]: sets PC_PID; its log in $TMP/pc-NAME.log
  local name=$1 port=$2 up=$3 i
  shift 3
  PC_PID=
  "$PCBIN" serve --listen "127.0.0.1:$port" --upstream "http://127.0.0.1:$up" --db "$TMP/db-$name" \
    --key-scope shared --workers 1 --max-size 4GiB --log-format text "$@" 2>>"$TMP/pc-$name.log" &
  PC_PID=$!
  track "$PC_PID"
  if ! wait_port "$port" "$PC_PID"; then
    note "promptcache $name did not start: $(grep -v ' POST ' "$TMP/pc-$name.log" | tail -n 3 | tr '\n' ' ')"
    stop_pid "$PC_PID"
    PC_PID=
    return 1
  fi
  case " $* " in
    *" --redis "*) # serving; say so when the shared tier is not up (bounded: 5 s)
      for i in $(seq 1 50); do
        curl -s --max-time 2 "http://127.0.0.1:$port/_promptcache/health" | grep -q '"shared":"up"' && return 0
        sleep 0.1
      done
      note "promptcache $name: /health does not say \"shared\":\"up\" after 5 s" ;;
  esac
  return 0
}
pc_snap() { curl -s --max-time 5 "http://127.0.0.1:$1/_promptcache/stats" >"$2" 2>/dev/null || : >"$2"; }
redis_cmds() { # commands redis-server has processed (this INFO included)
  [ -n "$REDIS_CLI" ] || { echo 0; return; }
  "$REDIS_CLI" -h 127.0.0.1 -p "$P_REDIS" INFO stats 2>/dev/null | tr -d '\r' | awk -F: '$1=="total_commands_processed"{print $2}'
}
mock_count() { curl -s --max-time 5 "http://127.0.0.1:$1/count" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p'; }
save_logs() { # the node logs' lines that are not successful POSTs (events, warnings, errors), then drop them
  local f n
  for f in "$TMP"/pc-*.log; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .log)
    grep -v -E ' (POST|GET) /[^ ]* 200 ' "$f" | head -n 200 | sed "s/^/${n#pc-}: /" >>"$OUT/fleet-pc-events.log"
    rm -f "$f"
  done
}

# ---- ports, Redis ----------------------------------------------------------------------------
pick_port; P_REDIS=$PORT
pick_port; P_M_SH=$PORT
pick_port; P_M_LO=$PORT
pick_port; P_M_NR=$PORT
pick_port; P_M_NG=$PORT
pick_port; P_SH=$PORT
pick_port; P_LO=$PORT
pick_port; P_NR=$PORT
pick_port; P_NG=$PORT
pick_port; P_SLOW=$PORT
P_B=()
for i in 1 2 3; do pick_port; P_B[i]=$PORT; done
mkdir -p "$TMP/redis"
"$REDIS" --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/redis" \
  --daemonize no --logfile "$TMP/redis/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!
track "$REDIS_PID"
if ! wait_port "$P_REDIS" "$REDIS_PID"; then
  note "redis-server did not start: $(tail -n 3 "$TMP/redis/redis.log" 2>/dev/null | tr '\n' ' ')"
  stop_tracked
  report
  exit 0
fi
REDIS_URL=redis://127.0.0.1:$P_REDIS
log "redis-server $(sed -n 's/^redis=//p' "$OUT/fleet-env.txt") on $P_REDIS (pid $REDIS_PID)"

# ---- 1. hits by tier -------------------------------------------------------------------------
declare -A PID PORTOF MPORT WANT
PORTOF=([shared]=$P_SH [local]=$P_LO [nored]=$P_NR [nginx]=$P_NG)
MPORT=([shared]=$P_M_SH [local]=$P_M_LO [nored]=$P_M_NR [nginx]=$P_M_NG)
WANT=([shared]='HIT shared' [local]='HIT local' [nored]='HIT -' [nginx]='HIT')
BODIES=$TMP/bodies.txt
CK_IDX=0

check_peer() { # check_peer PEER: one body (the next in turn) -> "ok" or what was wrong
  local peer=$1 url="http://127.0.0.1:${PORTOF[$1]}/v1/chat/completions" code st tier got want_id line
  CK_IDX=$(((CK_IDX + 7) % NDISTINCT))
  line=$((CK_IDX + 1))
  sed -n "${line}p" "$BODIES" | tr -d '\n' >"$TMP/ck.req"
  want_id=$(md5sum <"$TMP/ck.req" | cut -c1-32)
  code=$(curl -s --max-time 5 -o "$TMP/ck.body" -D "$TMP/ck.head" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-bench' --data-binary @"$TMP/ck.req" "$url" 2>/dev/null)
  if [ "$peer" = nginx ]; then
    st=$(tr -d '\r' <"$TMP/ck.head" | awk -F': *' 'tolower($1)=="x-cache-status"{print $2}' | tail -n 1)
    tier=
  else
    st=$(tr -d '\r' <"$TMP/ck.head" | awk -F': *' 'tolower($1)=="x-promptcache-status"{print $2}' | tail -n 1)
    tier=$(tr -d '\r' <"$TMP/ck.head" | awk -F': *' 'tolower($1)=="x-promptcache-tier"{print $2}' | tail -n 1)
    tier=" ${tier:--}"
  fi
  got=$(grep -o '"id":"chatcmpl-[0-9a-f]*"' "$TMP/ck.body" 2>/dev/null | head -n 1 | sed 's/.*chatcmpl-//; s/"//')
  if [ "$code" = 200 ] && [ "${st:--}$tier" = "${WANT[$peer]}" ] && [ "$got" = "$want_id" ]; then
    echo ok
  else
    printf 'body %s gave %s %s%s, %s (want 200 %s, its own answer)\n' "$CK_IDX" "${code:-000}" "${st:--}" "$tier" \
      "$([ "$got" = "$want_id" ] && echo 'its own answer' || echo "answer id ${got:-none}")" "${WANT[$peer]}"
  fi
}

run_cell() { # run_cell PEER CONNS REP
  local peer=$1 conns=$2 rep=$3 pid=${PID[$1]:-} port=${PORTOF[$1]}
  if ! alive "$pid"; then
    [ -n "$pid" ] && note "$peer is not running any more (c$conns r$rep)"
    return 0
  fi
  local raw=$OUT/fleet-wrk-c$conns-$peer-r$rep.txt s0=$TMP/s0.json s1=$TMP/s1.json
  local u0 u1 cpu0 cpu1 rc0 rc1 r0 r1
  [ "$peer" = nginx ] || pc_snap "$port" "$s0"
  r0=$(redis_cmds)
  u0=$(mock_count "${MPORT[$peer]}")
  cpu0=$(tree_ticks "$pid")
  rc0=$(tree_ticks "$REDIS_PID")
  BENCH_BODIES=$BODIES BENCH_COUNT=$NDISTINCT BENCH_THREADS=$THREADS \
    bg_wait timeout $((DUR + 60)) wrk -t"$THREADS" -c"$conns" -d"${DUR}s" --timeout 10s --latency -s bench/wrk.lua \
    "http://127.0.0.1:$port/v1/chat/completions" >"$raw" 2>&1
  cpu1=$(tree_ticks "$pid")
  rc1=$(tree_ticks "$REDIS_PID")
  u1=$(mock_count "${MPORT[$peer]}")
  local st
  if [ "$peer" = nginx ]; then
    st=$(printf '%s\t' - - - - - - - - - - - - - - - - - -)
    st=${st%$'\t'}
  else
    sleep 1.2 # the shared.* counters reach /stats once a second
    pc_snap "$port" "$s1"
    st=$(node bench/fleet-stats.mjs "$s0" "$s1")
  fi
  r1=$(redis_cmds)
  local rps p50 p99 reqs non2xx errs cpu_us rcpu_us nreq
  rps=$(awk '/^Requests\/sec:/{print $2}' "$raw")
  p50=$(awk '$1=="50%"{print $2}' "$raw")
  p99=$(awk '$1=="99%"{print $2}' "$raw")
  reqs=$(awk '/requests in/{print $1}' "$raw")
  non2xx=$(awk '/Non-2xx or 3xx responses:/{print $NF}' "$raw")
  errs=$(awk '/Socket errors:/{gsub(/,/,""); print $4+$6+$8+$10}' "$raw")
  [ -n "$rps" ] || { note "wrk gave no result for $peer c$conns r$rep (see build/bench/$(basename "$raw"))"; rps=0; }
  [ -n "$p50" ] && p50=$(to_ms "$p50") || p50=0
  [ -n "$p99" ] && p99=$(to_ms "$p99") || p99=0
  reqs=${reqs:-0}
  nreq=$(printf '%s' "$st" | cut -f1)
  case $nreq in '' | - | 0) nreq=$reqs ;; esac
  cpu_us=$(awk -v d=$((cpu1 - cpu0)) -v n="$nreq" -v hz="$CLK_TCK" 'BEGIN{ if (n>0) printf "%.2f", d/hz*1e6/n; else print 0 }')
  rcpu_us=$(awk -v d=$((rc1 - rc0)) -v n="$nreq" -v hz="$CLK_TCK" 'BEGIN{ if (n>0) printf "%.2f", d/hz*1e6/n; else print 0 }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$conns" "$peer" "$rep" "$rps" "$p50" "$p99" "$reqs" \
    "${non2xx:-0}" "${errs:-0}" "$((${u1:-0} - ${u0:-0}))" "$cpu_us" "$rcpu_us" "$((${r1:-0} - ${r0:-0}))" "$st" >>"$OUT/fleet-rows.tsv"
  local cmds
  cmds=$(printf '%s' "$st" | awk -F'\t' -v n="$nreq" '$8!="-" && n>0 {printf ", %.3f Redis commands/req (GET %.3f)", $8/n, $9/n}')
  log "  $peer c$conns r$rep: $rps req/s, p50 $p50 ms, p99 $p99 ms, $cpu_us µs CPU/req (+ redis $rcpu_us)$cmds, upstream +$((${u1:-0} - ${u0:-0}))"
}

if ! fskipped hits; then
  log "hits: $NDISTINCT bodies of 1 KB; ports: redis $P_REDIS, shared $P_SH, local $P_LO, local no-Redis $P_NR, nginx-cache $P_NG"
  node bench/gen.mjs bodies 1024 "$NDISTINCT" "$BODIES" || note "body generation failed"
  node bench/mock.mjs "$P_M_SH" "$P_M_LO" "$P_M_NR" "$P_M_NG" --max-seconds=900 >"$OUT/fleet-mock.log" 2>&1 &
  MOCK_PID=$!
  track "$MOCK_PID"
  if [ -s "$BODIES" ] && wait_port "$P_M_SH" "$MOCK_PID" && wait_port "$P_M_NG" "$MOCK_PID"; then
    start_pc local "$P_LO" "$P_M_LO" --mode readwrite --redis "$REDIS_URL" && PID[local]=$PC_PID
    start_pc shared "$P_SH" "$P_M_SH" --mode readonly --redis "$REDIS_URL" && PID[shared]=$PC_PID
    start_pc nored "$P_NR" "$P_M_NR" --mode readwrite && PID[nored]=$PC_PID
    if [ -n "$NGINX" ]; then
      prefix=$TMP/nginx-cache
      mkdir -p "$prefix/tmp" "$prefix/cache"
      if render bench/fleet-nginx-cache.conf "$prefix/nginx.conf" PREFIX="$prefix" PORT="$P_NG" UP_PORT="$P_M_NG"; then
        cp "$prefix/nginx.conf" "$OUT/fleet-nginx-cache.conf"
        launch_nginx "$NGINX" "$prefix" "$P_NG" && PID[nginx]=$NGINX_PID || note "nginx-cache did not start: $NGINX_ERR"
      else
        note "nginx-cache: template not filled"
      fi
    fi
    # fill: the local node stores every body in LMDB and Redis; the others their own way
    log "hits: filling (local node -> LMDB + Redis; no-Redis node; nginx-cache)"
    for peer in local nored nginx; do
      alive "${PID[$peer]:-}" && bg_wait timeout 120 node bench/client.mjs "http://127.0.0.1:${PORTOF[$peer]}/v1/chat/completions" \
        "$BODIES" "$NDISTINCT" 8 >"$OUT/fleet-fill-$peer.json" 2>&1
    done
    # the shared node answers from Redis from the start (readonly: nothing kept locally)
    alive "${PID[shared]:-}" && bg_wait timeout 120 node bench/client.mjs "http://127.0.0.1:$P_SH/v1/chat/completions" \
      "$BODIES" "$NDISTINCT" 8 >"$OUT/fleet-fill-shared.json" 2>&1
    if [ -n "$REDIS_CLI" ]; then
      echo "redis_keys_after_fill=$("$REDIS_CLI" -h 127.0.0.1 -p "$P_REDIS" DBSIZE 2>/dev/null)" >>"$OUT/fleet-env.txt"
      echo "redis_memory_after_fill=$("$REDIS_CLI" -h 127.0.0.1 -p "$P_REDIS" INFO memory 2>/dev/null | tr -d '\r' | sed -n 's/^used_memory_human://p')" >>"$OUT/fleet-env.txt"
    fi
    log "hits: fill done; $(for peer in local nored nginx shared; do printf '%s %s; ' "$peer" "$(cut -c1-80 "$OUT/fleet-fill-$peer.json" 2>/dev/null)"; done)"
    # a node's own background Redis traffic, for reference: commands over 5 s idle
    pc_snap "$P_LO" "$TMP/i0.json"
    sleep 5
    pc_snap "$P_LO" "$TMP/i1.json"
    echo "idle_commands_5s=$(node bench/fleet-stats.mjs "$TMP/i0.json" "$TMP/i1.json" | cut -f8)" >>"$OUT/fleet-env.txt"
    for conns in $CONNS; do
      for rep in $(seq 1 "$REPS"); do
        for peer in $PEERS; do
          alive "${PID[$peer]:-}" || continue
          chk=$(check_peer "$peer")
          printf '%s\t%s\t%s\t%s\n' "$conns" "$rep" "$peer" "$chk" >>"$OUT/fleet-checks.tsv"
          [ "$chk" = ok ] || note "check before $peer c$conns r$rep: $chk"
        done
        sleep 1.2 # the checks reach the shared counters before the first snapshot
        for peer in $PEERS; do run_cell "$peer" "$conns" "$rep"; done
      done
    done
    log "hits: final check, every body once per peer"
    for peer in $PEERS; do
      alive "${PID[$peer]:-}" || continue
      pc_snap "${PORTOF[$peer]}" "$TMP/f0.json"
      bg_wait timeout 120 node bench/client.mjs "http://127.0.0.1:${PORTOF[$peer]}/v1/chat/completions" \
        "$BODIES" "$NDISTINCT" 8 >"$OUT/fleet-final-$peer.json" 2>&1
      if [ "$peer" != nginx ]; then
        sleep 1.2
        pc_snap "${PORTOF[$peer]}" "$TMP/f1.json"
        printf '%s\t%s\n' "$peer" "$(node bench/fleet-stats.mjs "$TMP/f0.json" "$TMP/f1.json")" >>"$OUT/fleet-final-stats.tsv"
      fi
    done
    for peer in shared local nored; do
      alive "${PID[$peer]:-}" || { [ -n "${PID[$peer]:-}" ] && note "promptcache $peer exited during the run"; continue; }
      pc_snap "${PORTOF[$peer]}" "$OUT/fleet-stats-$peer.json"
    done
    for peer in $PEERS; do
      [ -n "${PID[$peer]:-}" ] && stop_pid "${PID[$peer]}" $(children_of "${PID[$peer]}")
    done
    if [ -s "$TMP/nginx-cache/error.log" ]; then
      grep -E '\[(crit|error|alert|emerg)\]' "$TMP/nginx-cache/error.log" | head -n 20 >"$OUT/fleet-nginx-errors.log"
    fi
  else
    note "mock upstream did not start or no bodies: no hit figures"
  fi
  stop_pid "$MOCK_PID"
  rm -rf "$TMP"/db-shared "$TMP"/db-local "$TMP"/db-nored "$TMP/nginx-cache"
fi

# ---- 2. single flight under a burst ---------------------------------------------------------------
if ! fskipped burst; then
  log "burst: $BURST_N identical requests at once over 3 nodes, $BURST_KEYS prompts; upstream ${DELAY_MS} ms, streams $CHUNKS events ${GAP_MS} ms apart"
  node bench/fleet-upstream.mjs "$P_SLOW" "$DELAY_MS" "$CHUNKS" "$GAP_MS" --max-seconds=600 >"$OUT/fleet-upstream.log" 2>&1 &
  SLOW_PID=$!
  track "$SLOW_PID"
  if wait_port "$P_SLOW" "$SLOW_PID"; then
    BPIDS=() BURLS=()
    for i in 1 2 3; do
      if start_pc "burst$i" "${P_B[i]}" "$P_SLOW" --mode readwrite --redis "$REDIS_URL" --redis-prefix pcburst:; then
        BPIDS+=("$PC_PID")
        BURLS+=("http://127.0.0.1:${P_B[i]}")
      fi
    done
    if [ ${#BPIDS[@]} = 3 ]; then
      nodes=$(IFS=,; echo "${BURLS[*]}")
      for variant in json stream; do
        for i in 1 2 3; do pc_snap "${P_B[i]}" "$TMP/b0-$i.json"; done
        r0=$(redis_cmds)
        s=0; [ "$variant" = stream ] && s=1
        bg_wait timeout 300 node bench/fleet-burst.mjs --nodes "$nodes" --upstream "http://127.0.0.1:$P_SLOW" \
          --n "$BURST_N" --keys "$BURST_KEYS" --stream "$s" --tag "$$-$START_TS" \
          >"$OUT/fleet-burst-$variant.json" 2>>"$OUT/fleet-run.log" || note "fleet-burst ($variant) exited with status $?"
        sleep 1.2
        r1=$(redis_cmds)
        echo "redis_cmds_$variant=$((${r1:-0} - ${r0:-0}))" >>"$OUT/fleet-env.txt"
        for i in 1 2 3; do
          pc_snap "${P_B[i]}" "$TMP/b1-$i.json"
          printf '%s\t%s\t%s\n' "$variant" "$i" "$(node bench/fleet-stats.mjs "$TMP/b0-$i.json" "$TMP/b1-$i.json")" >>"$OUT/fleet-burst-nodes.tsv"
        done
        log "burst $variant: $(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(`upstream per prompt ${r.upstream_per_key.join(",")}; statuses ${JSON.stringify(r.statuses)}; leader TTFB p50 ${r.leader_ttfb.p50} ms; followers behind the leader p50 ${r.follower_lag.p50} ms, p99 ${r.follower_lag.p99} ms`)' "$OUT/fleet-burst-$variant.json" 2>&1)"
      done
      for i in 1 2 3; do pc_snap "${P_B[i]}" "$OUT/fleet-stats-burst$i.json"; done
    else
      note "burst: not every node started"
    fi
    for p in "${BPIDS[@]}"; do stop_pid "$p"; done
  else
    note "slow upstream did not start: no burst figures"
  fi
  stop_pid "$SLOW_PID"
fi
[ -n "$REDIS_CLI" ] && "$REDIS_CLI" -h 127.0.0.1 -p "$P_REDIS" INFO commandstats 2>/dev/null | tr -d '\r' | grep '^cmdstat' >"$OUT/fleet-redis-commandstats.txt"
stop_pid "$REDIS_PID"
save_logs
stop_tracked
report
exit 0
