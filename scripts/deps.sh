#!/usr/bin/env bash
# Installs the Debian 12 packages distd builds and tests with, if any is missing.
# Usage: scripts/deps.sh   (as root, or with sudo available)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang clang-format libclang-rt-14-dev
  libabsl-dev libspdlog-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  libsqlite3-dev prometheus-cpp-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libssl-dev
  # The remote tests make their CA and certificates with the openssl command line.
  openssl
  procps util-linux spin python3
  # The dashboard's test drives Debian's Chromium (with playwright-core, from npm).
  chromium
  # The Slurm executor's test starts a one-node cluster of its own.
  slurmctld slurmd slurm-client munge
  # The peers of the benchmark (bench/), whose smoke run is one of the tests.
  make findutils parallel task-spooler
)

# Node.js for the dashboard's test, from Debian unless the machine has one already.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then packages+=(nodejs npm); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
echo "installing: ${missing[*]}" >&2
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
