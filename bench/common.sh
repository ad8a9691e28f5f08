# shellcheck shell=bash
# bench/common.sh — helpers shared by bench/run.sh, bench/forward.sh and
# bench/fleet.sh (sourced, never run): processes tracked and stopped by pid,
# the temp dir and cleanup (the sourcing script traps EXIT with cleanup),
# loopback ports, CPU ticks from /proc, nginx launched unprivileged, wrk's
# units, config templates.

# ---- processes we start: tracked by pid, stopped by pid -----------------
PIDS=()
track() { PIDS+=("$1"); }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
children_of() { cat "/proc/$1/task/$1/children" 2>/dev/null; }
stop_pid() { # stop_pid PID [CHILD_PIDS...]: TERM, wait (bounded), then KILL
  local pid=$1 i
  shift
  [ -n "$pid" ] || return 0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  for i in "$@"; do alive "$i" && kill -KILL "$i" 2>/dev/null; done
  return 0
}
stop_tracked() { # every tracked process still alive, with its children
  local p
  for p in "${PIDS[@]}"; do
    if alive "$p"; then stop_pid "$p" $(children_of "$p"); fi
  done
}
TMP= # the sourcing script's temp dir, removed by cleanup
cleanup() {
  stop_tracked
  [ -n "$TMP" ] && [ -d "$TMP" ] && rm -rf "$TMP"
}
bg_wait() { # run a command in the background and wait: a TERM is handled at once
  "$@" &
  local p=$!
  track "$p"
  wait "$p"
}

# ---- config templates ------------------------------------------------------
render() { # render TEMPLATE OUTFILE KEY=VALUE...: @KEY@ -> VALUE, taken literally
  local s kv out=$2
  s=$(<"$1")
  shift 2
  shopt -u patsub_replacement 2>/dev/null || true # bash 5.2: '&' in VALUE stays '&'
  for kv in "$@"; do s=${s//@${kv%%=*}@/${kv#*=}}; done
  printf '%s\n' "$s" >"$out"
  ! grep -q '@[A-Z_]*@' "$out"
}

# ---- ports ------------------------------------------------------------------
USED_PORTS=" "
PORT=0
pick_port() { # sets PORT to a free loopback port below the ephemeral range
  local i p
  PORT=0
  for i in $(seq 1 300); do
    p=$((20000 + RANDOM % 10000))
    case "$USED_PORTS" in *" $p "*) continue ;; esac
    if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
      USED_PORTS="$USED_PORTS$p "
      PORT=$p
      return 0
    fi
  done
  return 1
}
wait_port() { # wait_port PORT PID: until something listens (bounded, 15 s)
  local i
  for i in $(seq 1 150); do
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] && return 0
    alive "$2" || return 1
    sleep 0.1
  done
  return 1
}

# ---- CPU and memory from /proc --------------------------------------------------
proc_ticks() { # utime+stime of one process (all its threads), in clock ticks
  local s a
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  read -r -a a <<<"$s"
  echo $((a[11] + a[12]))
}
tree_pids() { [ -n "$1" ] && echo "$1" $(children_of "$1"); }
tree_ticks() { # a process and its children (nginx: master + workers)
  local t=0 p
  for p in $(tree_pids "$1"); do t=$((t + $(proc_ticks "$p"))); done
  echo "$t"
}
status_kb() { awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status" 2>/dev/null; }

to_ms() { # "123.45us" -> ms
  awk -v v="$1" 'BEGIN{ n=v; sub(/[a-z]+$/,"",n); u=v; sub(/^[0-9.]+/,"",u);
    f = (u=="us")?0.001:(u=="ms")?1:(u=="s")?1000:(u=="m")?60000:1; printf "%.3f", n*f }'
}

# ---- nginx ------------------------------------------------------------------------
# launch_nginx NGINX PREFIX PORT: runs PREFIX/nginx.conf in the foreground (as
# nobody when we are root), waits for PORT; sets NGINX_PID (empty on failure,
# with the reason in NGINX_ERR).
launch_nginx() {
  local bin=$1 prefix=$2 port=$3 run=()
  NGINX_PID= NGINX_ERR=
  if [ "$(id -u)" = 0 ]; then # run it unprivileged, as nobody
    chown -R nobody:nogroup "$prefix" 2>/dev/null || chown -R nobody "$prefix"
    run=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups --)
  fi
  "${run[@]}" "$bin" -p "$prefix/" -e "$prefix/error.log" -c "$prefix/nginx.conf" -g 'daemon off;' \
    >"$prefix/stderr.log" 2>&1 &
  NGINX_PID=$!
  track "$NGINX_PID"
  if ! wait_port "$port" "$NGINX_PID"; then
    NGINX_ERR=$(tail -n 3 "$prefix/error.log" "$prefix/stderr.log" 2>/dev/null | tr '\n' ' ')
    stop_pid "$NGINX_PID"
    NGINX_PID=
    return 1
  fi
}
