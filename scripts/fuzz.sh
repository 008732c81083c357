#!/usr/bin/env bash
# Builds the fuzz harnesses with clang, libFuzzer, ASan and UBSan (in DISTD_FUZZ_BUILD_DIR,
# default build-fuzz, configured for fuzzing if it is not yet), and runs each for
# DISTD_FUZZ_SECONDS (default 60) on a copy of its seed corpus. A crash fails the script and
# leaves the input in build-fuzz/findings/HARNESS/: add it to tests/fuzz/corpus/HARNESS/ with
# the fix, so that every later test run replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
out=${DISTD_FUZZ_BUILD_DIR:-build-fuzz}
seconds=${DISTD_FUZZ_SECONDS:-60}
if [ ! -f "$out/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDISTD_FUZZ=ON -DDISTD_SANITIZE=ON -DDISTD_BENCH=OFF >/dev/null
fi
harnesses=(shell_words address request token_file http_request)
ninja -C "$out" "${harnesses[@]/%/_fuzz}"
for harness in "${harnesses[@]}"; do
  work="$out/corpus/$harness"
  findings="$out/findings/$harness"
  mkdir -p "$work" "$findings"
  cp -n tests/fuzz/corpus/$harness/* "$work/" 2>/dev/null || true
  echo "== fuzzing $harness for ${seconds}s"
  ASAN_OPTIONS=detect_leaks=1 "$out/tests/${harness}_fuzz" -max_total_time="$seconds" \
    -artifact_prefix="$findings/" -print_final_stats=1 "$work" 2>"$out/$harness.log" ||
    { tail -n 40 "$out/$harness.log"; echo "fuzz: $harness crashed; input in $findings"; exit 1; }
  grep -E "stat::number_of_executed_units|cov:" "$out/$harness.log" | tail -n 2
done
echo "fuzz: ${#harnesses[@]} passed, 0 failed"
