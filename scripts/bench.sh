#!/usr/bin/env bash
# Builds the engine's micro-benchmarks in release mode and runs them.
# Extra arguments go to Google Benchmark (e.g. --benchmark_filter=Abort).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build-bench engine_bench
build-bench/bench/engine_bench "$@"
