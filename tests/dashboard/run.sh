#!/usr/bin/env bash
# Runs dashboard_test.mjs against a distd of its own. Usage: run.sh BIN_DIR ARTIFACT_DIR
# Needs Debian's chromium and Node.js (scripts/deps.sh installs both) and playwright-core,
# which it installs with npm into $DISTD_NODE_DIR (default ~/.cache/distd-test-node) once.
set -uo pipefail
BIN=$(cd "$1" && pwd)
ARTIFACTS=$2
HERE=$(cd "$(dirname "$0")" && pwd)
PLAYWRIGHT_VERSION=1.64.1
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "SKIP: no $CHROMIUM (scripts/deps.sh installs it)"; exit 77; }
command -v node >/dev/null || { echo "SKIP: no node (scripts/deps.sh installs it)"; exit 77; }
NODE_DIR=${DISTD_NODE_DIR:-$HOME/.cache/distd-test-node}
if [ ! -f "$NODE_DIR/node_modules/playwright-core/package.json" ]; then
  mkdir -p "$NODE_DIR"
  (cd "$NODE_DIR" && flock .lock npm install --no-save --no-audit --no-fund --silent \
    "playwright-core@$PLAYWRIGHT_VERSION") || { echo "FAIL: cannot install playwright-core"; exit 1; }
fi

T=$(mktemp -d /tmp/distd-dashboard-XXXXXX)
DPID=
cleanup() {
  [ -z "$DPID" ] || { kill -TERM "$DPID"; wait "$DPID"; }
  rm -rf "$T"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN/distd" --listen "unix:$T/d.sock" --state-dir "$T/state" --jobs 2 --grace 1s \
  --http-listen "127.0.0.1:$port" >"$T/distd.log" 2>&1 &
DPID=$!
export DISTD_ADDR=unix:$T/d.sock
for _ in $(seq 1 200); do
  "$BIN/distctl" status >/dev/null 2>&1 && break
  sleep 0.05
done
mkdir -p "$ARTIFACTS"
URL="http://127.0.0.1:$port/" DISTCTL=$BIN/distctl SCREENSHOT=$ARTIFACTS/dashboard.png \
  CHROMIUM=$CHROMIUM PLAYWRIGHT_FROM=$NODE_DIR/ node "$HERE/dashboard_test.mjs"
code=$?
"$BIN/distctl" abort >/dev/null 2>&1
"$BIN/distctl" build close red >/dev/null 2>&1
if [ "$code" -ne 0 ]; then
  echo "--- distd.log (last 30 lines)"
  tail -n 30 "$T/distd.log"
  exit 1
fi
echo "PASS; screenshot: $ARTIFACTS/dashboard.png"
