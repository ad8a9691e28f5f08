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
NAME=record.sh
# shellcheck source-path=SCRIPTDIR source=proxy.sh
. "$here/proxy.sh"
FIXTURE="$(abs "${FIXTURE:-$here/fixtures/llm.jsonl}")"
UPSTREAM="${UPSTREAM:-https://api.openai.com}"
PORT="${PORT:-0}"

if [ -z "${OPENAI_API_KEY:-}" ]; then
  echo "record.sh: set OPENAI_API_KEY (recording talks to $UPSTREAM for real)" >&2
  exit 2
fi

# 1. the proxy in record mode: forwards every request, stores every answer
start_proxy --mode record --listen "127.0.0.1:$PORT" --upstream "$UPSTREAM"
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
