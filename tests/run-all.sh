#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12/13 machine:
#   1. install every dependency (deploy/install-deps.sh, idempotent)
#   2. build with -Werror and run the unit tests (ctest)
#   3. build the unit tests with ASan+UBSan and run them again
#   4. build the libFuzzer targets and run each briefly on its seed corpus
#   5. run the integration tests: the real binary against Prosody, slixmpp, openssl,
#      testssl.sh (tests/integration/run.sh)
#   6. run the federation lab (tests/lab/): XEP-0238 matrix through xmppfront
# Set XF_FUZZ_SECONDS (default 20) to fuzz longer; XF_SKIP_INSTALL=1 to skip step 1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${XF_FUZZ_SECONDS:-20}
failed=()
suites=0

step() { printf '\n=== %s\n' "$*"; }

if [ "${XF_SKIP_INSTALL:-0}" != 1 ]; then
  step "dependencies"
  bash deploy/install-deps.sh
fi

step "build (gcc, -Werror) and unit tests"
cmake -S . -B build -DXF_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"
suites=$((suites + 1))
ctest --test-dir build --output-on-failure -j "$jobs" || failed+=("unit")

step "unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DXF_WERROR=ON -DXF_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j "$jobs"
suites=$((suites + 1))
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" || failed+=("unit-asan")

step "fuzz targets (${fuzz_seconds}s each)"
CC=clang cmake -S . -B build-fuzz -DXF_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "$jobs"
for fz in build-fuzz/fuzz_*; do
  [ -x "$fz" ] || continue
  name=$(basename "$fz"); name=${name#fuzz_}
  suites=$((suites + 1))
  work=$(mktemp -d)
  [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
  if "$fz" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/crash-" "$work" >"$work.log" 2>&1; then
    echo "fuzz_$name: ok ($(grep -Eo 'number_of_executed_units: [0-9]+' "$work.log" | grep -Eo '[0-9]+') runs)"
  else
    echo "fuzz_$name: FAILED"; tail -40 "$work.log"; failed+=("fuzz_$name")
  fi
  rm -rf "$work" "$work.log"
done

step "integration tests (real binary, real peers)"
suites=$((suites + 1))
XF_BIN="$root/build/xmppfront" bash tests/integration/run.sh || failed+=("integration")

# The federation lab (tests/lab/README.md): its own netns and DNS, remote Prosody of the
# six XEP-0238 types, xmppfront between a plaintext backend and them; the matrix runs every
# tenant policy against every remote type.
step "federation lab (real binary, real remote servers)"
suites=$((suites + 1))
lab_ok=1
XF_BIN="$root/build/xmppfront" bash tests/integration/run.sh \
    tests/lab/test_lab_smoke.sh tests/lab/test_federation_redirect.sh \
    tests/lab/test_federation_ejabberd.sh tests/lab/test_federation_matrix.sh \
    tests/lab/test_dane_outbound.sh tests/lab/test_posh_outbound.sh tests/lab/test_proof_inbound.sh \
    tests/lab/test_check_cmd.sh tests/lab/test_rollover.sh \
    tests/lab/test_delegation.sh || lab_ok=0
[ "$lab_ok" = 1 ] || failed+=("lab")

echo
[ "${#failed[@]}" -gt 0 ] && echo "failed suites: ${failed[*]}"
# Suites: unit, unit-asan, one per fuzz target, integration, lab.
echo "run-all: $((suites - ${#failed[@]})) passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
