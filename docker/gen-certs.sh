#!/usr/bin/env bash
# Makes what a first remote set-up of distd needs, with the openssl command line:
#   ca.crt ca.key          a CA of its own (keep ca.key off the build hosts)
#   server.crt server.key  distd's certificate, for localhost, 127.0.0.1, ::1 and each HOST
#   client.crt client.key  a client certificate, common name "ci-agent" (builds named ci-*)
#   tokens                 distd's --token-file: "ci" (builds named ci-*) and "admin"
#   ci.token admin.token   the token of each, for distctl --token-file
# Usage: docker/gen-certs.sh DIR [HOST|IP ...]   (DIR is made, mode 0700, if it is not there;
# files of these names in it are never overwritten). The certificates last 825 days. Keep
# ca.key off the build host: whoever has it can make client certificates.
#   distd --listen tcp:0.0.0.0:7070 --tls-cert DIR/server.crt --tls-key DIR/server.key \
#         --token-file DIR/tokens
#   distctl --addr tcp:HOST:7070 --tls-ca DIR/ca.crt --token-file DIR/ci.token ...
set -euo pipefail

if [ $# -lt 1 ] || [ "${1:0:1}" = "-" ]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
fi
dir=$1
shift
command -v openssl >/dev/null || { echo "gen-certs: openssl is not installed" >&2; exit 1; }
umask 077
if [ -e "$dir" ]; then
  # Its mode is left alone: it may be a directory of the user's such as "." or $HOME.
  [ -d "$dir" ] || { echo "gen-certs: $dir is not a directory" >&2; exit 1; }
  for f in ca.crt ca.key server.crt server.key client.crt client.key tokens ci.token admin.token; do
    if [ -e "$dir/$f" ]; then
      echo "gen-certs: $dir/$f exists; remove it, or choose another directory" >&2
      exit 1
    fi
  done
else
  mkdir -m 700 -p "$dir"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# openssl's messages are shown only when it fails.
trap 'echo "gen-certs: openssl failed:" >&2; cat "$log" >&2' ERR

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for host in "$@"; do
  if [[ $host =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || ($host == *:* && $host =~ ^[0-9A-Fa-f:.]+$) ]]; then
    san="$san,IP:$host"
  elif [[ $host =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
    san="$san,DNS:$host"
  else
    echo "gen-certs: \"$host\" is not a host name or an IP address" >&2
    exit 2
  fi
done

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>>"$log"; }
# sign NAME CN EXTENSIONS: NAME.crt for NAME.key, signed by the CA.
sign() {
  local ext
  ext=$(mktemp)
  printf '%s\n' "$3" >"$ext"
  openssl req -new -key "$dir/$1.key" -subj "/CN=$2" -out "$dir/$1.csr" 2>>"$log"
  openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -sha256 -extfile "$ext" -out "$dir/$1.crt" 2>>"$log"
  rm -f "$ext" "$dir/$1.csr"
}

key "$dir/ca.key"
openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=distd CA" -days 825 -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$dir/ca.crt" 2>>"$log"
key "$dir/server.key"
sign server distd "subjectAltName=$san
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth"
key "$dir/client.key"
sign client ci-agent "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
rm -f "$dir/ca.srl"

ci=$(openssl rand -hex 32)
admin=$(openssl rand -hex 32)
{
  echo "# NAME TOKEN [builds=PREFIX] [admin]: distd's --token-file"
  echo "ci $ci builds=ci-"
  echo "admin $admin admin"
  echo "# the client certificate client.crt (common name ci-agent): builds named ci-*, too"
  echo "ci-agent - builds=ci-"
} >"$dir/tokens"
echo "ci $ci" >"$dir/ci.token"
echo "admin $admin" >"$dir/admin.token"
chmod 644 "$dir/ca.crt" "$dir/server.crt" "$dir/client.crt"
echo "gen-certs: made $dir/{ca,server,client}.{crt,key}, $dir/tokens, $dir/ci.token and $dir/admin.token (server names: $san)"
