#!/usr/bin/env bash
# record.sh — run the test suite against the real API through promptcache in
# record mode, then export every request/response pair it saw to a JSON Lines
# fixture you commit (fixtures/llm.jsonl).
#
#   OPENAI_API_KEY=sk-... ./record.sh
#
# Environment:
#   OPENAI_API_KEY    your real key (it is never written to the fixture)
#   UPSTREAM          the API to record (default https://api.openai.com)
#   FIXTURE           where to write the recording (default fixtures/llm.jsonl next to this script)
#   PROMPTCACHE_BIN   the promptcache binary (default ../../build/promptcache)
#   PORT              port for the proxy on 127.0.0.1 (default 0: any free port)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
abs() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
BIN="$(abs "${PROMPTCACHE_BIN:-$here/../../build/promptcache}")"
FIXTURE="$(abs "${FIXTURE:-$here/fixtures/llm.jsonl}")"
UPSTREAM="${UPSTREAM:-https://api.openai.com}"
PORT="${PORT:-0}"

if [ -z "${OPENAI_API_KEY:-}" ]; then
  echo "record.sh: set OPENAI_API_KEY (recording talks to $UPSTREAM for real)" >&2
  exit 2
fi
if [ ! -x "$BIN" ]; then
  echo "record.sh: no promptcache binary at $BIN (run make in the repo root, or set PROMPTCACHE_BIN)" >&2
  exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/promptcache-record.XXXXXX")"
pid=""
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

# 1. the proxy in record mode: forwards every request, stores every answer
: >"$work/proxy.log" # exists before the wait loop reads it
"$BIN" serve --mode record --listen "127.0.0.1:$PORT" --upstream "$UPSTREAM" --db "$work/db" \
  2>"$work/proxy.log" &
pid=$!
port=""
for _ in $(seq 100); do # up to 10 s
  port="$(sed -n 's/^promptcache: listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/proxy.log" | head -n 1)"
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "record.sh: promptcache did not start:" >&2
  cat "$work/proxy.log" >&2
  exit 1
fi
echo "record.sh: recording $UPSTREAM through promptcache on 127.0.0.1:$port"

# 2. the test suite, pointed at the proxy
tests=0
(cd "$here" && OPENAI_BASE_URL="http://127.0.0.1:$port/v1" npm test) || tests=$?
proxy=0
stop_proxy || proxy=$?
sed 's/^/promptcache | /' "$work/proxy.log" >&2
if [ "$tests" -ne 0 ] || [ "$proxy" -ne 0 ]; then
  echo "record.sh: FAILED (npm test exit $tests, promptcache exit $proxy); $FIXTURE left unchanged" >&2
  exit 1
fi

# 3. export the recording (refuses, exit 3, if a body holds something shaped like a secret)
"$BIN" export --db "$work/db" --out "$work/llm.jsonl"
mkdir -p "$(dirname "$FIXTURE")"
cp "$work/llm.jsonl" "$FIXTURE"
echo "record.sh: wrote $(wc -l <"$FIXTURE") recorded exchanges to $FIXTURE — review with git diff, then commit it"
