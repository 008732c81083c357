#!/usr/bin/env bash
# The main job, end to end: installs what is needed, builds distd and distctl, then compiles
# a small C program in parallel through distd on the default socket (distctl starts the
# daemon on first use), waits on the build's barrier, links, and runs the result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DDISTD_BENCH=OFF >/dev/null
ninja -C build-release distd distctl
distctl=$PWD/build-release/bin/distctl

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
for i in $(seq 1 8); do
  printf 'int part%d(void) { return %d; }\n' "$i" "$i" >"part$i.c"
done
{
  for i in $(seq 1 8); do printf 'int part%d(void);\n' "$i"; done
  printf '#include <stdio.h>\nint main(void) {\n  int sum = 0;\n'
  for i in $(seq 1 8); do printf '  sum += part%d();\n' "$i"; done
  printf '  printf("distd built me: the parts add up to %%d\\n", sum);\n  return 0;\n}\n'
} >main.c

export DISTD_BUILD=demo-$$
echo "== compiling 9 files in the background through distd (build $DISTD_BUILD)"
for f in *.c; do "$distctl" run --bg -- cc -O2 -c "$f" >/dev/null; done
"$distctl" wait --progress
echo "== linking in the foreground"
"$distctl" run -- cc -o demo ./*.o
./demo
"$distctl" status
"$distctl" build close "$DISTD_BUILD"
socket=${DISTD_SOCKET:-${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/distd/distd.sock}}
socket=${socket:-/tmp/distd-$(id -u)/distd.sock}
echo "distd (pid $(head -1 "$socket.lock")) keeps serving $socket; SIGTERM stops it"
