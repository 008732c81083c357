#!/usr/bin/env bash
# Builds the image (docker/Dockerfile) with podman and runs builds through it: one in a
# container by itself, and one from a CI agent's container over TLS (docker/compose.yaml,
# with podman-compose). Separate from scripts/test.sh: building the image compiles distd
# once more, which takes minutes. Usage: docker/check.sh   (as root, or with sudo)
#
# On this kind of host (Debian 12, hybrid cgroups, root without CAP_SYS_RESOURCE) it needs:
#   - runc as podman's runtime (crun 1.8 refuses hybrid cgroups): a containers.conf of its own;
#   - explicit ulimits, which it cannot raise: nofile 20000, nproc 32768;
#   - a base image made here with debootstrap from the mirror apt already uses, so that
#     nothing but that mirror is reached. DISTD_BASE_IMAGE=IMAGE uses another one instead.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
missing=()
for p in podman runc debootstrap podman-compose containernetworking-plugins \
  golang-github-containernetworking-plugin-dnsname; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
fi

work=$(mktemp -d /tmp/distd-docker-XXXXXX)
cleanup() {
  "${sudo[@]}" podman rm -f distd-check >/dev/null 2>&1 || true
  [ -z "${compose_up:-}" ] || "${sudo[@]}" podman-compose -f docker/compose.yaml down -v \
    >/dev/null 2>&1 || true
  "${sudo[@]}" rm -rf "$work"
}
trap cleanup EXIT
printf '[engine]\nruntime = "runc"\n' >"$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf
podman=("${sudo[@]}" env "CONTAINERS_CONF=$CONTAINERS_CONF" podman)
ulimits=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)

base=${DISTD_BASE_IMAGE:-localhost/distd-base:bookworm}
if [ -z "${DISTD_BASE_IMAGE:-}" ] && ! "${podman[@]}" image exists "$base"; then
  # The first bookworm mirror of apt's own sources.
  mirror=$(awk '/^URIs:/ { uri = $2 } /^Suites:/ && / bookworm( |$)/ && uri { print uri; exit }' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' \
    /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || { echo "check: no bookworm mirror in apt's sources" >&2; exit 1; }
  echo "check: making $base with debootstrap from $mirror"
  "${sudo[@]}" debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  "${sudo[@]}" tar -C "$work/root" -c . | "${podman[@]}" import - "$base" >/dev/null
fi

echo "check: building the image"
start=$SECONDS
"${podman[@]}" build "${ulimits[@]}" --build-arg "BASE=$base" -t localhost/distd:latest \
  -f docker/Dockerfile . >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; exit 1; }
echo "check: built in $((SECONDS - start)) s; $("${podman[@]}" image inspect --format '{{.Size}}' localhost/distd:latest) bytes"

echo "check: a build in the container"
"${podman[@]}" run -d --name distd-check "${ulimits[@]}" localhost/distd:latest --jobs 2 >/dev/null
for _ in $(seq 1 100); do
  "${podman[@]}" exec distd-check distctl status >/dev/null 2>&1 && break
  sleep 0.1
done
[ "$("${podman[@]}" exec distd-check id -u)" = 10001 ] || { echo "check: distd runs as root" >&2; exit 1; }
"${podman[@]}" exec distd-check sh -c 'printf "sh -c \"echo %s > /tmp/%s.o\"\n" a a b b c c >/tmp/jobs.txt &&
  distctl run --bg -f /tmp/jobs.txt >/dev/null && distctl wait && cat /tmp/a.o /tmp/b.o /tmp/c.o' >"$work/out"
[ "$(tr -d '\n' <"$work/out")" = abc ] || { echo "check: the build printed $(cat "$work/out")" >&2; exit 1; }
code=0
"${podman[@]}" exec distd-check distctl run --bg -- sh -c 'exit 3' >/dev/null
"${podman[@]}" exec distd-check distctl wait >/dev/null 2>"$work/err" || code=$?
[ "$code" -eq 1 ] && grep -q "FAILED: sh -c 'exit 3'" "$work/err" ||
  { echo "check: a failing build: exit $code, $(cat "$work/err")" >&2; exit 1; }
"${podman[@]}" exec distd-check distctl run --bg -- sleep 977.9 >/dev/null 2>&1 ||
  "${podman[@]}" exec distd-check sh -c 'distctl build close default && distctl run --bg -- sleep 977.9' >/dev/null
"${podman[@]}" stop -t 20 distd-check >/dev/null
state=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' distd-check)
[ "$state" = 0 ] || { echo "check: distd exited $state on SIGTERM" >&2; "${podman[@]}" logs distd-check >&2; exit 1; }
"${podman[@]}" logs distd-check 2>&1 | grep -q "stopped" || { echo "check: no orderly stop" >&2; exit 1; }

echo "check: a CI agent's build over TLS (compose)"
compose_up=1
"${sudo[@]}" env "CONTAINERS_CONF=$CONTAINERS_CONF" podman-compose -f docker/compose.yaml up \
  --abort-on-container-exit --exit-code-from ci-agent >"$work/compose.log" 2>&1 || {
  tail -n 40 "$work/compose.log" >&2
  exit 1
}
# The agent's last job ran in distd's container: it names that container's host name.
distd_host=$("${podman[@]}" inspect --format '{{.Config.Hostname}}' docker_distd_1 2>/dev/null || true)
grep -q "the agent's build succeeded" "$work/compose.log" &&
  grep -q "linked on ${distd_host:-?}" "$work/compose.log" ||
  { tail -n 40 "$work/compose.log" >&2; exit 1; }
echo "check: passed"
