#!/usr/bin/env bash
# The whole test suite, as CI runs it, from any state of the machine:
#   1. installs the packages it needs (scripts/deps.sh);
#   2. gcc, warnings as errors: builds everything and runs every test;
#   3. gcc with AddressSanitizer and UndefinedBehaviorSanitizer: runs every test again;
#   4. clang with -Wthread-safety -Werror: builds everything (the lock analysis is the check).
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

echo "== clang, -Wthread-safety -Werror"
CC=clang CXX=clang++ configure clang -DCMAKE_BUILD_TYPE=Debug -DDISTD_THREAD_SAFETY=ON
ninja -C "$out/clang"

echo "all tests passed"
