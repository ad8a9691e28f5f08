# shellcheck shell=bash
# proxy.sh — sourced by record.sh and replay.sh: find the binary, run
# promptcache in the background on a free port, stop it by pid, clean up.
# The caller sets NAME (its own name, for messages) before sourcing.

abs() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
BIN="$(abs "${PROMPTCACHE_BIN:-$here/../../build/promptcache}")"
if [ ! -x "$BIN" ]; then
  echo "$NAME: no promptcache binary at $BIN (run make in the repo root, or set PROMPTCACHE_BIN)" >&2
  exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/promptcache-$NAME.XXXXXX")"
pid=""
port=""
stop_proxy() { # SIGTERM, up to 10 s to finish, then SIGKILL; returns the proxy's exit status
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  local rc=0
  wait "$pid" || rc=$?
  pid=""
  return "$rc"
}
cleanup() { stop_proxy || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_proxy() { # start_proxy SERVE-ARGS...: runs `promptcache serve ARGS --db $work/db`, sets pid and port
  : >"$work/proxy.log" # exists before the wait loop reads it
  "$BIN" serve "$@" --db "$work/db" 2>"$work/proxy.log" &
  pid=$!
  for _ in $(seq 100); do # up to 10 s
    port="$(sed -n 's/^promptcache: listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/proxy.log" | head -n 1)"
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$NAME: promptcache did not start:" >&2
  cat "$work/proxy.log" >&2
  exit 1
}
