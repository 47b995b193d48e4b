#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12/13 machine:
#   1. install every dependency (deploy/install-deps.sh, idempotent)
#   2. build with -Werror and run the unit tests (ctest)
#   3. build the unit tests with ASan+UBSan and run them again
#   4. build the libFuzzer targets and run each briefly on its seed corpus
#   5. run the integration tests: the real binary against Prosody, slixmpp, openssl,
#      testssl.sh (tests/integration/run.sh)
#   6. run the federation lab (tests/lab/): XEP-0238 matrix through xmppfront
# Steps 2, 5 and 6 also build and use a binary linked against mbedTLS from Debian's
# source package (-DXF_MBEDTLS_FROM_SOURCE=ON, docs/build.md).
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

# The same code against an mbedTLS built from Debian 13's source package with the proxy
# configuration (4 KiB output records, PSA crypto; docs/build.md): the unit tests here, the
# federation lab and the TLS-heavy integration tests below run with this binary.
step "build with -DXF_MBEDTLS_FROM_SOURCE=ON (deploy/build-mbedtls.sh) and unit tests"
cmake -S . -B build-src -DXF_WERROR=ON -DXF_MBEDTLS_FROM_SOURCE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-src -j "$jobs"
suites=$((suites + 1))
ctest --test-dir build-src --output-on-failure -j "$jobs" || failed+=("unit-mbedtls-src")

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

step "TLS integration tests against the source-built mbedTLS (4 KiB records)"
suites=$((suites + 1))
XF_BIN="$root/build-src/xmppfront" bash tests/integration/run.sh test_relay.sh test_c2s_direct_tls.sh \
    test_inbound_s2s_backpressure.sh test_outbound_sasl_external.sh test_sslscan.sh \
    test_session_resumption.sh || failed+=("integration-mbedtls-src")

# The federation lab (tests/lab/README.md): its own netns and DNS, remote Prosody of the
# six XEP-0238 types, xmppfront between a plaintext backend and them; the matrix runs every
# tenant policy against every remote type.
step "federation lab (real binary with the source-built mbedTLS, real remote servers)"
suites=$((suites + 1))
lab_ok=1
XF_BIN="$root/build-src/xmppfront" bash tests/integration/run.sh \
    tests/lab/test_lab_smoke.sh tests/lab/test_federation_redirect.sh \
    tests/lab/test_federation_ejabberd.sh tests/lab/test_federation_matrix.sh \
    tests/lab/test_dane_outbound.sh tests/lab/test_posh_outbound.sh tests/lab/test_proof_inbound.sh \
    tests/lab/test_check_cmd.sh tests/lab/test_rollover.sh \
    tests/lab/test_delegation.sh || lab_ok=0
[ "$lab_ok" = 1 ] || failed+=("lab")

echo
[ "${#failed[@]}" -gt 0 ] && echo "failed suites: ${failed[*]}"
# Suites: unit, unit-mbedtls-src, unit-asan, one per fuzz target, integration,
# integration-mbedtls-src, lab.
echo "run-all: $((suites - ${#failed[@]})) passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
