#!/usr/bin/env bash
# Makes what a first remote set-up of distd needs, with the openssl command line:
#   ca.crt ca.key          a CA of its own (keep ca.key off the build hosts)
#   server.crt server.key  distd's certificate, for localhost, 127.0.0.1, ::1 and each HOST
#   client.crt client.key  a client certificate, common name "ci-agent", for --tls-cert
#   tokens                 distd's --token-file: "ci" (builds named ci-*) and "admin"
#   ci.token admin.token   the token of each, for distctl --token-file
# Usage: docker/gen-certs.sh DIR [HOST|IP ...]   (DIR is made, mode 0700; existing files in
# it are not overwritten). The certificates last 825 days.
#   distd --listen tcp:0.0.0.0:7070 --tls-cert DIR/server.crt --tls-key DIR/server.key \
#         --token-file DIR/tokens
#   distctl --addr tcp:HOST:7070 --tls-ca DIR/ca.crt --token-file DIR/ci.token ...
set -euo pipefail

if [ $# -lt 1 ] || [ "${1:0:1}" = "-" ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
dir=$1
shift
command -v openssl >/dev/null || { echo "gen-certs: openssl is not installed" >&2; exit 1; }
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
for f in ca.crt server.crt client.crt tokens; do
  if [ -e "$dir/$f" ]; then
    echo "gen-certs: $dir/$f exists; remove it, or choose another directory" >&2
    exit 1
  fi
done

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for host in "$@"; do
  if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then
    san="$san,IP:$host"
  elif [[ $host =~ ^[A-Za-z0-9.-]+$ ]]; then
    san="$san,DNS:$host"
  else
    echo "gen-certs: \"$host\" is not a host name or an IP address" >&2
    exit 2
  fi
done

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# sign NAME CN EXTENSIONS: NAME.crt for NAME.key, signed by the CA.
sign() {
  local ext
  ext=$(mktemp)
  printf '%s\n' "$3" >"$ext"
  openssl req -new -key "$dir/$1.key" -subj "/CN=$2" -out "$dir/$1.csr"
  openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -sha256 -extfile "$ext" -out "$dir/$1.crt" 2>/dev/null
  rm -f "$ext" "$dir/$1.csr"
}

key "$dir/ca.key"
openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=distd CA" -days 825 -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$dir/ca.crt"
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
} >"$dir/tokens"
echo "ci $ci" >"$dir/ci.token"
echo "admin $admin" >"$dir/admin.token"
chmod 644 "$dir/ca.crt" "$dir/server.crt" "$dir/client.crt"
echo "gen-certs: made $dir/{ca,server,client}.{crt,key}, $dir/tokens, $dir/ci.token and $dir/admin.token (server names: $san)"
