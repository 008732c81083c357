#!/usr/bin/env bash
# The whole test suite, as CI runs it, from any state of the machine:
#   1. installs the packages it needs (scripts/deps.sh);
#   2. gcc, warnings as errors: builds everything and runs every test;
#   3. gcc with AddressSanitizer and UndefinedBehaviorSanitizer: runs every test again;
#   4. clang with -Wthread-safety -Werror, ASan, UBSan and libFuzzer instrumentation: builds
#      everything (the lock analysis is the check), then runs each fuzz harness for
#      DISTD_FUZZ_SECONDS (default 45) on its seed corpus (scripts/fuzz.sh).
# Build trees go to build-test/ (override with DISTD_TEST_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

out=${DISTD_TEST_BUILD_DIR:-build-test}
jobs=$(nproc)

configure() {
  local dir=$1
  shift
  cmake -S . -B "$out/$dir" -G Ninja -DDISTD_WERROR=ON "$@" >/dev/null
}

echo "== gcc, -Werror"
configure gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo
ninja -C "$out/gcc"
ctest --test-dir "$out/gcc" --output-on-failure -j "$jobs"

echo "== gcc, ASan+UBSan"
configure asan -DCMAKE_BUILD_TYPE=Debug -DDISTD_SANITIZE=ON -DDISTD_BENCH=OFF
ninja -C "$out/asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$out/asan" --output-on-failure -j "$jobs"

echo "== clang, -Wthread-safety -Werror, fuzzing"
CC=clang CXX=clang++ configure clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDISTD_THREAD_SAFETY=ON \
  -DDISTD_SANITIZE=ON -DDISTD_FUZZ=ON -DDISTD_BENCH=OFF
ninja -C "$out/clang"
DISTD_FUZZ_BUILD_DIR="$out/clang" DISTD_FUZZ_SECONDS=${DISTD_FUZZ_SECONDS:-45} scripts/fuzz.sh

echo "all tests passed"
