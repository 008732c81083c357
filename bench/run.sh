#!/usr/bin/env bash
# The side-by-side benchmark: installs the peers (make, ninja, xargs, GNU parallel,
# task-spooler), builds distd and distctl in release mode, runs the workloads W1-W8 of
# bench/README.md for distd and every peer in the same run, and writes bench/RESULTS.md.
# Takes a few minutes after the build. Arguments go to bench/bench.py (e.g. --rounds 3,
# --only W1,W6, --out FILE); the engine's micro-benchmarks are scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build-bench distd distctl
args=("$@")
case " $* " in
  *" --out "* | *" --out="* | *" --smoke "*) ;;
  *) args+=(--out bench/RESULTS.md) ;;
esac
python3 bench/bench.py --bin-dir build-bench/bin "${args[@]}"
