#!/usr/bin/env bash
# replay.sh — run the test suite offline: promptcache answers every API call
# from the committed recording, and nothing reaches the provider. This is the
# step CI runs.
#
#   ./replay.sh
#
# A request that is not in the recording gets a 424 explaining the nearest
# recorded request and how it differs; --fail-on-miss then makes promptcache
# itself exit 1, so the job fails even if a test swallowed the error.
#
# Environment:
#   FIXTURE           the recording (default fixtures/llm.jsonl next to this script)
#   PROMPTCACHE_BIN   the promptcache binary (default ../../build/promptcache)
# Exit status: 0 when the tests passed and no request missed; non-zero otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAME=replay.sh
# shellcheck source-path=SCRIPTDIR source=proxy.sh
. "$here/proxy.sh"
FIXTURE="$(abs "${FIXTURE:-$here/fixtures/llm.jsonl}")"

if [ ! -r "$FIXTURE" ]; then
  echo "replay.sh: no recording at $FIXTURE (make one with record.sh)" >&2
  exit 2
fi

# 1. the proxy in replay mode, loaded from the recording. The upstream is a
#    closed port on purpose: replay mode never contacts it, and if it ever
#    tried, the request could only fail.
start_proxy --mode replay --replay "$FIXTURE" --fail-on-miss --listen 127.0.0.1:0 --upstream http://127.0.0.1:9
echo "replay.sh: replaying $FIXTURE through promptcache on 127.0.0.1:$port (upstream unreachable)"

# 2. the test suite, pointed at the proxy, with a key that would not work anywhere
tests=0
(cd "$here" && OPENAI_BASE_URL="http://127.0.0.1:$port/v1" OPENAI_API_KEY=sk-unused-in-ci npm test) || tests=$?

# 3. stop the proxy; with --fail-on-miss its exit status says whether anything missed
proxy=0
stop_proxy || proxy=$?
sed 's/^/promptcache | /' "$work/proxy.log" >&2
if [ "$tests" -ne 0 ] || [ "$proxy" -ne 0 ]; then
  echo "replay.sh: FAILED (npm test exit $tests, promptcache exit $proxy)." >&2
  if grep -q "replay miss" "$work/proxy.log"; then
    echo "replay.sh: a request is not in $FIXTURE (see 'differs at' above): if the change is intended, re-record with record.sh and commit the fixture." >&2
  fi
  [ "$tests" -ne 0 ] && exit "$tests"
  exit "$proxy"
fi
echo "replay.sh: OK — every request answered from $FIXTURE, nothing sent upstream"
