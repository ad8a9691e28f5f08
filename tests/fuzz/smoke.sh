#!/usr/bin/env bash
# smoke.sh — `make fuzz-smoke`: run each libFuzzer target for FUZZ_SECONDS on a
# fresh copy of its seeds (tests/fuzz/corpus/<t> plus tests/fuzz/regress/<t>)
# under $FUZZ_BIN/corpus-<t>, never writing into the tree. Prints one summary
# line per target; exits non-zero if any target crashed, leaked, timed out or
# broke an invariant (the reproducer is left in $FUZZ_BIN/artifacts/).
# Usage: FUZZ_SECONDS=20 FUZZ_BIN=build/fuzz tests/fuzz/smoke.sh TARGET...
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-20}
bin=${FUZZ_BIN:-build/fuzz}
failed=()

# The dictionary a target is run with (dict/<target>.dict by default).
dict_for() {
  case "$1" in
    canon | json | usage | import) echo tests/fuzz/dict/json.dict ;;
    accesslog) echo tests/fuzz/dict/target.dict ;;
    *) echo "tests/fuzz/dict/$1.dict" ;;
  esac
}

# "key: value" out of libFuzzer's final stats, or "?".
stat() { grep -o "^stat::$1: *[0-9]*" "$2" | tail -1 | grep -o '[0-9]*$' || echo '?'; }

mkdir -p "$bin/artifacts"
for t in "$@"; do
  corpus="$bin/corpus-$t" log="$bin/smoke-$t.log" dict=$(dict_for "$t")
  rm -rf "$corpus"
  mkdir -p "$corpus"
  for d in "tests/fuzz/corpus/$t" "tests/fuzz/regress/$t"; do
    [ -d "$d" ] && find "$d" -maxdepth 1 -type f ! -name '.*' -exec cp {} "$corpus/" \;
  done
  seeds=$(find "$corpus" -type f | wc -l)
  args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
    -artifact_prefix="$bin/artifacts/$t-")
  [ -f "$dict" ] && args+=(-dict="$dict")
  "$bin/$t" "${args[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  cov=$(grep -E '^#[0-9]+[[:space:]]' "$log" | grep -o 'cov: [0-9]* ft: [0-9]*' | tail -1)
  runs=$(stat number_of_executed_units "$log") execs=$(stat average_exec_per_sec "$log")
  found=$(find "$corpus" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    printf 'fuzz-smoke %-10s ok      runs %-9s exec/s %-7s %-20s corpus %s -> %s\n' \
      "$t" "$runs" "$execs" "${cov:-cov: ?}" "$seeds" "$found"
  else
    printf 'fuzz-smoke %-10s FAILED  (exit %s) runs %s, %s; log %s\n' "$t" "$rc" "$runs" "${cov:-cov: ?}" "$log"
    grep -E 'ERROR: |runtime error|fuzz invariant failed|SUMMARY:|Test unit written|ParseDictionaryFile' "$log" | head -8 | sed 's/^/    /'
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-smoke: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz-smoke: all ${#@} targets ran ${seconds}s each without a crash"
