#!/usr/bin/env bash
# bench/run.sh — `make bench`: promptcache's cache-hit path side by side with
# nginx as a POST-body caching proxy and nginx returning the same body
# statically (the ceiling), all driven by wrk on loopback, plus the C
# microbenchmark (bench/micro.c), an idle keep-alive memory test, the
# forward path (misses, bypasses, --mode off against nginx proxy_pass, and
# streaming: bench/forward.sh, its own knobs listed there) and the fleet
# (shared-tier hits on Redis vs local hits vs nginx-cache, Redis round trips
# per hit, single flight over 3 nodes under a burst: bench/fleet.sh, its own
# knobs listed there).
#
# Prints a Markdown report on stdout and writes it to build/bench/results.md;
# raw wrk outputs and logs go to build/bench/. Benchmarks print figures: this
# script exits 0 even when a peer misbehaves (and says so in the report).
#
# Knobs (environment): BENCH_DURATION (s per cell, default 3), BENCH_DURATION_1K
# (default 3), BENCH_REPS_1K (1 KB cells are run this many times and the median
# reported, default 3), BENCH_SIZES ("1024 16384 102400 1048576"), BENCH_CONNS
# ("32 256"), BENCH_DISTINCT (1000), BENCH_IDLE_CONNS (10000),
# BENCH_MICRO_ENTRIES (1000,100000,1000000), BENCH_SKIP (sections left out, any
# of "micro http workers idle forward fleet"), BENCH_ONLY (the sections to run,
# the others skipped: BENCH_ONLY=forward runs the forward path alone, ~2.5 min;
# BENCH_ONLY=fleet the fleet section alone, ~2 min),
# BENCH_PC_ARGS (extra `serve` options for promptcache's cells, e.g.
# "--memo-size 512MiB"; promptcache always gets --max-buffered 1GiB: 256
# connections sending 1 MB prompts at once buffer 256 MiB, the default bound,
# past which it answers 503), BENCH_NGINX_BODY_BUFFER_KB (nginx client_body_buffer_size; default: body size +
# 16 KB; set it below the body size to see nginx-cache key on an empty
# $request_body and serve other bodies' answers, i.e. rows marked WRONG).
set -u
START_TS=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 0
OUT=$ROOT/build/bench
mkdir -p "$OUT"
MAKE=${MAKE:-make}

DUR=${BENCH_DURATION:-3}
DUR_1K=${BENCH_DURATION_1K:-3}
REPS_1K=${BENCH_REPS_1K:-3}
SIZES=${BENCH_SIZES:-"1024 16384 102400 1048576"}
CONNS=${BENCH_CONNS:-"32 256"}
NDISTINCT=${BENCH_DISTINCT:-1000}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
MICRO_ENTRIES=${BENCH_MICRO_ENTRIES:-1000,100000,1000000}
SKIP=${BENCH_SKIP:-}
ONLY=${BENCH_ONLY:-}
PC_ARGS=${BENCH_PC_ARGS:-}
SECTIONS="micro http workers idle forward fleet"
if [ -n "$ONLY" ]; then
  for s in $SECTIONS; do case " $ONLY " in *" $s "*) ;; *) SKIP="$SKIP $s" ;; esac; done
fi
THREADS=2
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

rm -f "$OUT"/wrk-*.txt "$OUT"/rows.tsv "$OUT"/group-*.txt "$OUT"/check-*.json "$OUT"/prewarm-*.json \
  "$OUT"/micro.txt "$OUT"/idle.txt "$OUT"/notes.txt "$OUT"/run.log "$OUT"/results.md "$OUT"/env.txt \
  "$OUT"/nginx-cache-*-error.log "$OUT"/forward.md "$OUT"/fleet.md "$OUT"/workers.tsv 2>/dev/null

log() { printf '[bench %4ss] %s\n' "$(($(date +%s) - START_TS))" "$*" | tee -a "$OUT/run.log" >&2; }
note() { printf '%s\n' "$*" >>"$OUT/notes.txt"; log "NOTE: $*"; }
skipped() { case " $SKIP " in *" $1 "*) return 0 ;; esac; return 1; }

# Idle test holds 10k sockets on each side; wrk/nginx need a few hundred.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "open-file limit: $(ulimit -n)"
echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)" >"$OUT/env.txt"

. "$ROOT/bench/common.sh" # track, stop_pid, pick_port, wait_port, tree_ticks, to_ms, launch_nginx
trap cleanup EXIT
trap 'log "interrupted"; exit 0' INT TERM

# ---- dependencies -----------------------------------------------------------
NGINX=$(command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })
need=()
[ -n "$NGINX" ] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${need[*]} (apt-get)"
    # Keep the package from starting a system nginx on port 80.
    own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
    fi
    apt-get update -qq >>"$OUT/run.log" 2>&1
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >>"$OUT/run.log" 2>&1; then
      # nginx-light is the other Debian flavour; try it if plain nginx failed.
      alt=("${need[@]/#nginx/nginx-light}")
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${alt[@]}" >>"$OUT/run.log" 2>&1 ||
        note "apt-get install ${need[*]} failed (see build/bench/run.log)"
    fi
    [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
  else
    note "missing ${need[*]} and not root: install them (Debian: apt-get install ${need[*]}) for the full run"
  fi
  NGINX=$(command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; })
fi
HAVE_WRK=0; command -v wrk >/dev/null 2>&1 && HAVE_WRK=1
HAVE_NODE=0; command -v node >/dev/null 2>&1 && HAVE_NODE=1
[ -n "$NGINX" ] || note "nginx unavailable: nginx rows are not measured"

# ---- temp dir: tmpfs when it has room (1 MB prompts need several GB) --------
base=${TMPDIR:-/tmp}
if [ -d /dev/shm ] && [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2{print $4}')" -gt $((10 * 1024 * 1024)) ] 2>/dev/null; then
  base=/dev/shm
fi
TMP=$(mktemp -d "$base/pc-bench.XXXXXX") || { log "cannot create a temp dir"; exit 0; }
chmod 755 "$TMP"
log "temp dir $TMP"

# ---- build ------------------------------------------------------------------
built=0
for try in 1 2 3 4 5; do
  if $MAKE -s build/promptcache >"$OUT/build.log" 2>&1; then built=1; break; fi
  log "make build/promptcache failed (try $try/5; see build/bench/build.log); retrying in 15 s"
  sleep 15
done
PCBIN=$TMP/promptcache
if [ -x build/promptcache ]; then
  cp build/promptcache "$PCBIN"
  [ $built = 1 ] || note "build failed: measuring the existing build/promptcache, which may be stale"
else
  PCBIN=
  note "no promptcache binary: proxy rows are not measured"
fi
MICRO=
if ! skipped micro; then
  objs=()
  for f in src/*.c; do
    b=$(basename "$f" .c)
    [ "$b" = main ] || objs+=("build/obj/$b.o")
  done
  rm -f "$TMP/libpc.a"
  if ar rcs "$TMP/libpc.a" "${objs[@]}" build/obj/llhttp_*.o 2>>"$OUT/build.log" &&
    ${CC:-cc} -D_GNU_SOURCE -Iinclude -std=c11 -Wall -Wextra -Wshadow -Wno-unused-parameter -O2 -g \
      -o "$OUT/micro" bench/micro.c "$TMP/libpc.a" \
      -luv -lcurl -llmdb -lxxhash -lhiredis -lssl -lcrypto -lz -lpthread -lm >>"$OUT/build.log" 2>&1; then
    MICRO=$OUT/micro
  else
    note "bench/micro.c did not build (see build/bench/build.log)"
  fi
fi

# ---- microbenchmark -----------------------------------------------------------
if [ -n "$MICRO" ]; then
  log "micro: canonicalize+hash and pc_cache_get at $MICRO_ENTRIES entries"
  timeout 300 "$MICRO" --tmp "$TMP/micro" --entries "$MICRO_ENTRIES" >"$OUT/micro.txt" 2>&1 ||
    note "micro exited with status $? (see build/bench/micro.txt)"
  grep -v '^RESULT' "$OUT/micro.txt" >&2
fi

# ---- ports ------------------------------------------------------------------
pick_port; P_MOCK_PC=$PORT
pick_port; P_MOCK_NG=$PORT
pick_port; P_PC=$PORT
pick_port; P_NGC=$PORT
pick_port; P_NGS=$PORT

# ---- servers ----------------------------------------------------------------
PC_PID= NGC_PID= NGS_PID= MOCK_PID=
mock_count() { # requests and distinct bodies the mock saw on a port: "R D"
  curl -s --max-time 5 "http://127.0.0.1:$1/count" | sed -n 's/.*"requests":\([0-9]*\),"distinct":\([0-9]*\).*/\1 \2/p'
}

start_pc() { # start_pc DBDIR [extra args]
  local db=$1
  shift
  "$PCBIN" serve --listen "127.0.0.1:$P_PC" --upstream "http://127.0.0.1:$P_MOCK_PC" --db "$db" \
    --key-scope shared --log-format text --max-size 16GiB --max-buffered 1GiB $PC_ARGS "$@" 2>/dev/null &
  PC_PID=$!
  track "$PC_PID"
  wait_port "$P_PC" "$PC_PID" || { note "promptcache did not start"; stop_pid "$PC_PID"; PC_PID=; return 1; }
}

STATIC_BODY=
nginx_conf() { # nginx_conf KIND PREFIX PORT SIZE
  local kind=$1 prefix=$2 port=$3 size=$4
  local bodybuf=${BENCH_NGINX_BODY_BUFFER_KB:-$((size / 1024 + 16))} keybuf=$((size / 1024 + 64))
  local nbufs=$((keybuf / 64 + 2))
  cat <<EOF
worker_processes 1;
pid $prefix/nginx.pid;
lock_file $prefix/nginx.lock;
error_log $prefix/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  default_type application/json;
  client_body_temp_path $prefix/tmp/body;
  proxy_temp_path $prefix/tmp/proxy;
  fastcgi_temp_path $prefix/tmp/fastcgi;
  uwsgi_temp_path $prefix/tmp/uwsgi;
  scgi_temp_path $prefix/tmp/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_max_body_size 8m;
  # \$request_body is only set when the whole body sits in one memory buffer.
  client_body_buffer_size ${bodybuf}k;
  client_body_in_single_buffer on;
EOF
  if [ "$kind" = cache ]; then
    cat <<EOF
  proxy_cache_path $prefix/cache levels=1:2 keys_zone=pcbench:32m max_size=16g inactive=2h use_temp_path=off;
  upstream mock { server 127.0.0.1:$P_MOCK_NG; keepalive 64; }
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache pcbench;
      proxy_cache_methods POST;
      proxy_cache_key "\$request_uri|\$request_body";
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 60s;
      # the cache key is stored in the cache file header, which must fit proxy_buffer_size
      proxy_buffer_size ${keybuf}k;
      proxy_buffers $nbufs 64k;
      proxy_busy_buffers_size ${keybuf}k;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
}
EOF
  else
    cat <<EOF
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / {
      return 200 '$STATIC_BODY';
    }
  }
}
EOF
  fi
}

start_nginx() { # start_nginx KIND SIZE -> sets NGINX_PID
  local kind=$1 size=$2 port prefix
  NGINX_PID=
  [ -n "$NGINX" ] || return 1
  if [ "$kind" = cache ]; then port=$P_NGC; else port=$P_NGS; fi
  prefix=$TMP/nginx-$kind-$size
  rm -rf "$prefix"
  mkdir -p "$prefix/tmp" "$prefix/cache"
  nginx_conf "$kind" "$prefix" "$port" "$size" >"$prefix/nginx.conf"
  cp "$prefix/nginx.conf" "$OUT/nginx-$kind.conf"
  launch_nginx "$NGINX" "$prefix" "$port" || { note "nginx ($kind) did not start: $NGINX_ERR"; return 1; }
}

stop_servers() {
  local p
  for p in "$PC_PID" "$NGC_PID" "$NGS_PID"; do
    [ -n "$p" ] && stop_pid "$p" $(children_of "$p")
  done
  PC_PID= NGC_PID= NGS_PID=
}

# ---- measuring ----------------------------------------------------------------
serving_pids() { # the process(es) that serve: promptcache itself, nginx's children
  if [ "$2" = pc ]; then echo "$1"; else children_of "$1"; fi
}
max_status_kb() { # max_status_kb KEY PIDS...
  local k=$1 m=0 v p
  shift
  for p in "$@"; do
    v=$(status_kb "$p" "$k")
    [ -n "$v" ] && [ "$v" -gt "$m" ] && m=$v
  done
  echo "$m"
}

printf 'size\tbodies\tconns\tpeer\trep\trps\tp50_ms\tp99_ms\tcpu_us\thwm_kb\tanon_kb\trequests\tnon2xx\terrors\tup_delta\n' >"$OUT/rows.tsv"

run_cell() { # run_cell PEER SIZE NBODIES CONNS REP DURATION
  local peer=$1 size=$2 nb=$3 conns=$4 rep=$5 dur=$6 pid port mport=
  case $peer in
    pc) pid=$PC_PID port=$P_PC mport=$P_MOCK_PC ;;
    nginx-cache) pid=$NGC_PID port=$P_NGC mport=$P_MOCK_NG ;;
    nginx-static) pid=$NGS_PID port=$P_NGS ;;
  esac
  alive "$pid" || return 0
  local raw=$OUT/wrk-$size-$nb-$conns-$peer-r$rep.txt p
  local sp
  sp=$(serving_pids "$pid" "$peer")
  for p in $(tree_pids "$pid"); do echo 5 >"/proc/$p/clear_refs" 2>/dev/null; done # reset VmHWM
  local up0=0 up1=0 cpu0 cpu1
  [ -n "$mport" ] && up0=$(mock_count "$mport" | cut -d' ' -f1)
  cpu0=$(tree_ticks "$pid")
  BENCH_BODIES=$TMP/bodies-$size.txt BENCH_COUNT=$nb BENCH_THREADS=$THREADS \
    timeout $((dur + 120)) wrk -t"$THREADS" -c"$conns" -d"${dur}s" --timeout 10s --latency -s bench/wrk.lua \
    "http://127.0.0.1:$port/v1/chat/completions" >"$raw" 2>&1
  cpu1=$(tree_ticks "$pid")
  [ -n "$mport" ] && up1=$(mock_count "$mport" | cut -d' ' -f1)
  local hwm anon
  hwm=$(max_status_kb VmHWM $sp)
  anon=$(max_status_kb RssAnon $sp)
  local rps p50 p99 reqs non2xx errs cpu_us
  rps=$(awk '/^Requests\/sec:/{print $2}' "$raw")
  p50=$(awk '$1=="50%"{print $2}' "$raw")
  p99=$(awk '$1=="99%"{print $2}' "$raw")
  reqs=$(awk '/requests in/{print $1}' "$raw")
  non2xx=$(awk '/Non-2xx or 3xx responses:/{print $NF}' "$raw")
  errs=$(awk '/Socket errors:/{gsub(/,/,""); print $4+$6+$8+$10}' "$raw")
  [ -n "$rps" ] || { note "wrk gave no result for $peer $size B x$nb c$conns (see $raw)"; rps=0; }
  [ -n "$p50" ] && p50=$(to_ms "$p50") || p50=0
  [ -n "$p99" ] && p99=$(to_ms "$p99") || p99=0
  reqs=${reqs:-0}
  cpu_us=$(awk -v d=$((cpu1 - cpu0)) -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN{ if (n>0) printf "%.2f", d/hz*1e6/n; else print 0 }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$nb" "$conns" "$peer" "$rep" "$rps" \
    "$p50" "$p99" "$cpu_us" "${hwm:-0}" "${anon:-0}" "$reqs" "${non2xx:-0}" "${errs:-0}" "$((up1 - up0))" >>"$OUT/rows.tsv"
  log "  $peer ${size}B x$nb c$conns r$rep: $rps req/s, p50 ${p50}ms p99 ${p99}ms, ${cpu_us}us CPU/req, upstream +$((up1 - up0))"
}

run_group() { # run_group SIZE: one prompt size, all peers and cells
  local size=$1 reps=1 dur=$DUR nb conns rep peer
  if [ "$size" -le 1024 ]; then reps=$REPS_1K dur=$DUR_1K; fi
  local bodies=$TMP/bodies-$size.txt
  log "size $size B: generating $NDISTINCT bodies"
  node bench/gen.mjs bodies "$size" "$NDISTINCT" "$bodies" || { note "body generation failed for $size"; return; }
  rm -rf "$TMP/db-$size"
  if [ -n "$PCBIN" ]; then start_pc "$TMP/db-$size" || true; fi
  if start_nginx cache "$size"; then NGC_PID=$NGINX_PID; fi
  if start_nginx static "$size"; then NGS_PID=$NGINX_PID; fi
  local m0pc m0ng
  m0pc=$(mock_count "$P_MOCK_PC")
  m0ng=$(mock_count "$P_MOCK_NG")
  log "size $size B: pre-warming $NDISTINCT bodies through promptcache and nginx-cache"
  alive "$PC_PID" && node bench/client.mjs "http://127.0.0.1:$P_PC/v1/chat/completions" "$bodies" "$NDISTINCT" 8 \
    >"$OUT/prewarm-pc-$size.json" 2>&1
  alive "$NGC_PID" && node bench/client.mjs "http://127.0.0.1:$P_NGC/v1/chat/completions" "$bodies" "$NDISTINCT" 8 \
    >"$OUT/prewarm-nginx-cache-$size.json" 2>&1
  for nb in 1 "$NDISTINCT"; do
    for conns in $CONNS; do
      for rep in $(seq 1 "$reps"); do
        for peer in pc nginx-cache nginx-static; do
          run_cell "$peer" "$size" "$nb" "$conns" "$rep" "$dur"
        done
      done
    done
  done
  log "size $size B: checking every answer"
  alive "$PC_PID" && node bench/client.mjs "http://127.0.0.1:$P_PC/v1/chat/completions" "$bodies" "$NDISTINCT" 8 \
    >"$OUT/check-pc-$size.json" 2>&1
  alive "$NGC_PID" && node bench/client.mjs "http://127.0.0.1:$P_NGC/v1/chat/completions" "$bodies" "$NDISTINCT" 8 \
    >"$OUT/check-nginx-cache-$size.json" 2>&1
  local m1pc m1ng
  m1pc=$(mock_count "$P_MOCK_PC")
  m1ng=$(mock_count "$P_MOCK_NG")
  # upstream requests and distinct bodies over the group (pre-warm + runs + check)
  printf 'pc %s %s\nnginx-cache %s %s\n' "$m0pc" "$m1pc" "$m0ng" "$m1ng" >"$OUT/group-$size.txt"
  stop_servers
  # nginx says why it did not cache (e.g. "cache file ... is too small": it keeps
  # the key's length in a 16-bit header field, so keys over ~64 KB never hit).
  local elog=$TMP/nginx-cache-$size/error.log msg
  if [ -s "$elog" ]; then
    tail -n 200 "$elog" >"$OUT/nginx-cache-$size-error.log"
    msg=$(grep -E '\[(crit|error|alert|emerg)\]' "$elog" |
      sed -E 's/^.*\[(crit|error|alert|emerg)\] [0-9#]+: (\*[0-9]+ )?//; s/, client:.*//; s/"[^"]*"/"…"/g' |
      sort | uniq -c | sort -rn | head -n 2 | awk '{$1=$1" x"; print}' | paste -sd ';' -)
    [ -n "$msg" ] && note "nginx-cache error log at $size B: $msg"
  fi
  rm -rf "$TMP/db-$size" "$TMP/nginx-cache-$size" "$TMP/nginx-static-$size"
  [ "$size" -le 1024 ] || rm -f "$bodies"
}

# ---- HTTP benchmark -------------------------------------------------------------
if [ $HAVE_NODE = 1 ] && { ! skipped http || ! skipped workers || ! skipped idle; }; then
  node bench/mock.mjs "$P_MOCK_PC" "$P_MOCK_NG" --max-seconds=1500 >"$OUT/mock.log" 2>&1 &
  MOCK_PID=$!
  track "$MOCK_PID"
  if wait_port "$P_MOCK_PC" "$MOCK_PID" && wait_port "$P_MOCK_NG" "$MOCK_PID"; then
    log "ports: mock $P_MOCK_PC/$P_MOCK_NG, promptcache $P_PC, nginx-cache $P_NGC, nginx-static $P_NGS"
  else
    note "mock upstream did not start"
    stop_pid "$MOCK_PID"
    MOCK_PID=
  fi
fi
if ! skipped http && [ $HAVE_WRK = 1 ] && alive "$MOCK_PID"; then
  STATIC_BODY=$(node bench/gen.mjs response)
  case "$STATIC_BODY" in *"'"* | *'$'* | *'\'*) note "static body has characters nginx would mangle" ;; esac
  for size in $SIZES; do run_group "$size"; done
else
  skipped http || note "wrk or node missing: HTTP benchmark skipped"
fi

# ---- --workers 1 vs 2 ---------------------------------------------------------------
# The same 1 KB cells (1000 distinct bodies, 256 connections) against
# promptcache with one and with two event loops; medians of REPS_1K runs.
if ! skipped workers && [ -n "$PCBIN" ] && [ $HAVE_NODE = 1 ] && alive "$MOCK_PID" && [ -f "$TMP/bodies-1024.txt" ]; then
  : >"$OUT/workers.tsv"
  for nw in 1 2; do
    rm -rf "$TMP/db-workers"
    start_pc "$TMP/db-workers" --workers "$nw" || continue
    node bench/client.mjs "http://127.0.0.1:$P_PC/v1/chat/completions" "$TMP/bodies-1024.txt" "$NDISTINCT" 8 >/dev/null 2>&1
    for rep in $(seq 1 "$REPS_1K"); do
      raw=$OUT/wrk-workers$nw-r$rep.txt
      BENCH_BODIES=$TMP/bodies-1024.txt BENCH_COUNT=$NDISTINCT BENCH_THREADS=$THREADS \
        timeout $((DUR_1K + 60)) wrk -t"$THREADS" -c256 -d"${DUR_1K}s" --timeout 10s --latency -s bench/wrk.lua \
        "http://127.0.0.1:$P_PC/v1/chat/completions" >"$raw" 2>&1
      printf '%s\t%s\n' "$nw" "$(awk '/^Requests\/sec:/{print $2}' "$raw")" >>"$OUT/workers.tsv"
    done
    log "workers $nw: $(awk -v w="$nw" '$1==w{printf "%s ", $2}' "$OUT/workers.tsv")req/s"
    stop_pid "$PC_PID"
    PC_PID=
  done
  rm -rf "$TMP/db-workers"
fi

# ---- idle keep-alive memory ---------------------------------------------------------
if ! skipped idle && [ -n "$PCBIN" ] && [ $HAVE_NODE = 1 ] && alive "$MOCK_PID"; then
  lim=$(ulimit -n)
  if [ "$lim" != unlimited ] && [ "$lim" -lt $((IDLE_CONNS + 200)) ]; then
    note "open-file limit $lim (could not raise it): idle test uses $((lim - 200)) connections instead of $IDLE_CONNS"
    IDLE_CONNS=$((lim - 200))
  fi
  log "idle: $IDLE_CONNS keep-alive connections to promptcache"
  [ -f "$TMP/bodies-1024.txt" ] || node bench/gen.mjs bodies 1024 1 "$TMP/bodies-1024.txt"
  if start_pc "$TMP/db-idle" --idle-timeout 600s; then
    node bench/client.mjs "http://127.0.0.1:$P_PC/v1/chat/completions" "$TMP/bodies-1024.txt" 1 1 >/dev/null 2>&1
    node bench/client.mjs "http://127.0.0.1:$P_PC/v1/chat/completions" "$TMP/bodies-1024.txt" 1 1 >/dev/null 2>&1
    sleep 0.5
    base_anon=$(status_kb "$PC_PID" RssAnon)
    base_rss=$(status_kb "$PC_PID" VmRSS)
    node bench/idle.mjs 127.0.0.1 "$P_PC" "$IDLE_CONNS" "$TMP/bodies-1024.txt" 60 >"$TMP/idle.out" 2>&1 &
    IDLE_PID=$!
    track "$IDLE_PID"
    for i in $(seq 1 900); do
      grep -q READY "$TMP/idle.out" 2>/dev/null && break
      alive "$IDLE_PID" || break
      sleep 0.1
    done
    # idle means idle: promptcache hands an idle connection's request buffers
    # back after 1 s and returns the pages on its next 1 s tick
    sleep 3
    anon=$(status_kb "$PC_PID" RssAnon)
    rss=$(status_kb "$PC_PID" VmRSS)
    hwm=$(status_kb "$PC_PID" VmHWM)
    fds=$(ls "/proc/$PC_PID/fd" 2>/dev/null | wc -l)
    est=$(ss -Htn state established "( sport = :$P_PC )" 2>/dev/null | wc -l)
    ready=$(grep READY "$TMP/idle.out" | head -n 1)
    stop_pid "$IDLE_PID"
    stop_pid "$PC_PID"
    PC_PID=
    {
      echo "conns=$IDLE_CONNS"
      echo "client=${ready:-none}"
      echo "established=$est"
      echo "fds=$fds"
      echo "base_anon_kb=${base_anon:-0}"
      echo "base_rss_kb=${base_rss:-0}"
      echo "anon_kb=${anon:-0}"
      echo "rss_kb=${rss:-0}"
      echo "hwm_kb=${hwm:-0}"
    } >"$OUT/idle.txt"
    log "idle: ${ready:-client not ready}; established=$est; RssAnon ${base_anon:-?} kB -> ${anon:-?} kB"
  fi
  rm -rf "$TMP/db-idle"
fi
stop_pid "$MOCK_PID"

# ---- forward path (bench/forward.sh: its own servers, writes build/bench/forward.md) ----
if ! skipped forward; then
  if [ -n "$PCBIN" ]; then
    log "forward path: bench/forward.sh"
    # in the background and waited for, so an interrupt stops it (by pid) at once
    BENCH_OUT=$OUT BENCH_PCBIN=$PCBIN timeout 900 bash bench/forward.sh >/dev/null &
    FWD_PID=$!
    track "$FWD_PID"
    wait "$FWD_PID" || note "bench/forward.sh exited with status $? (see build/bench/fwd-run.log)"
  else
    note "no promptcache binary: forward path not measured"
  fi
fi

# ---- fleet (bench/fleet.sh: its own servers and Redis, writes build/bench/fleet.md) ----
if ! skipped fleet; then
  if [ -n "$PCBIN" ]; then
    log "fleet: bench/fleet.sh"
    BENCH_OUT=$OUT BENCH_PCBIN=$PCBIN BENCH_FLEET_VIA="make bench" timeout 900 bash bench/fleet.sh >/dev/null &
    FLEET_PID=$!
    track "$FLEET_PID"
    wait "$FLEET_PID" || note "bench/fleet.sh exited with status $? (see build/bench/fleet-run.log)"
  else
    note "no promptcache binary: fleet not measured"
  fi
fi

# ---- report --------------------------------------------------------------------------
END_TS=$(date +%s)
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"
if skipped micro && skipped http && skipped workers && skipped idle; then
  # only the forward path and/or the fleet (BENCH_ONLY=forward, fleet): their sections and this run's notes
  {
    echo "# promptcache benchmark: $(! skipped forward && echo 'forward path')$(! skipped forward && ! skipped fleet && echo ', ')$(! skipped fleet && echo 'fleet') only ($((END_TS - START_TS)) s)"
    echo
    [ -s "$OUT/forward.md" ] && { cat "$OUT/forward.md"; echo; }
    [ -s "$OUT/fleet.md" ] && { cat "$OUT/fleet.md"; echo; }
    [ -s "$OUT/forward.md" ] || [ -s "$OUT/fleet.md" ] || { echo "Nothing was measured."; echo; }
    if [ -s "$OUT/notes.txt" ]; then
      echo "## Notes from this run"
      echo
      sed 's/^/- /' "$OUT/notes.txt"
      echo
    fi
  } | tee "$OUT/results.md"
elif [ $HAVE_NODE = 1 ]; then
  node bench/report.mjs "$OUT" "$((END_TS - START_TS))" "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), $(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}')" \
    "$DUR_1K s x $REPS_1K (1 KB, median), $DUR s otherwise" | tee "$OUT/results.md"
  if [ -s "$OUT/workers.tsv" ]; then
    {
      echo
      echo "## --workers (1 KB, 1000 bodies, 256 connections, median of $REPS_1K)"
      echo
      echo "| promptcache | req/s |"
      echo "|---|---:|"
      for nw in 1 2; do
        med=$(awk -v w="$nw" '$1==w{print $2}' "$OUT/workers.tsv" | sort -g | awk '{a[NR]=$1} END{if (NR) print a[int((NR+1)/2)]}')
        [ -n "$med" ] && echo "| --workers $nw | $med |"
      done
      echo
      echo "Both loops share the machine's cores with wrk."
    } | tee -a "$OUT/results.md"
  fi
  if [ -s "$OUT/forward.md" ]; then
    { echo; cat "$OUT/forward.md"; } | tee -a "$OUT/results.md"
  fi
  if [ -s "$OUT/fleet.md" ]; then
    { echo; cat "$OUT/fleet.md"; } | tee -a "$OUT/results.md"
  fi
else
  cat "$OUT/rows.tsv" "$OUT/micro.txt" 2>/dev/null
fi
log "done in $((END_TS - START_TS)) s; report in build/bench/results.md"
exit 0
