#!/usr/bin/env bash
# Runs every tests/integration/test_*.sh (or those named as arguments), each bounded in
# time, and prints "integration: N passed, M failed". Binary: $XF_BIN (default
# build/xmppfront). Per-test output goes to stdout.
cd "$(dirname "$0")/../.." || exit 2
XF_BIN=${XF_BIN:-build/xmppfront}
case "$XF_BIN" in /*) ;; *) XF_BIN="$(pwd)/$XF_BIN" ;; esac   # absolute for every test
export XF_BIN
PER_TEST_TIMEOUT=${XF_TEST_TIMEOUT:-300}
if [ $# -gt 0 ]; then tests=("$@"); else tests=(tests/integration/test_*.sh); fi
pass=0 fail=0 failed=()
start=$(date +%s)
for t in "${tests[@]}"; do
  [ -f "$t" ] || t="tests/integration/$t"
  [ -f "$t" ] || t="${t%.sh}.sh"
  name=$(basename "$t" .sh)
  echo "=== $name"
  t0=$(date +%s)
  # A test may ask for a longer bound with a line "# xf-test-timeout: SECONDS" (the
  # container build from nothing); XF_TEST_TIMEOUT, when set, still wins.
  limit=$PER_TEST_TIMEOUT
  own=$(sed -n 's/^# xf-test-timeout: *\([0-9][0-9]*\)$/\1/p' "$t" | head -1)
  [ -n "$own" ] && [ -z "${XF_TEST_TIMEOUT:-}" ] && limit=$own
  timeout -k 10 "$limit" bash "$t"
  rc=$?
  [ $rc -eq 124 ] && echo "FAIL: $name (timed out after ${limit}s)"
  echo "--- $name: rc=$rc, $(( $(date +%s) - t0 ))s"
  if [ $rc -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); failed+=("$name"); fi
done
[ $fail -gt 0 ] && echo "failed: ${failed[*]}"
echo "(integration run took $(( $(date +%s) - start ))s)"
echo "integration: $pass passed, $fail failed"
[ $fail -eq 0 ]
