#!/usr/bin/env bash
# cloud-certs.sh DIR [CLIENT...]: a throwaway PKI for a local stand-in of AWS IoT: a CA
# (ca.pem), a server certificate for localhost / 127.0.0.1 (server.pem, server.key), and a
# client certificate and key per CLIENT name (default: gateway observer). Used by the demo,
# the cloud tests and bench/cloud.sh.
set -euo pipefail
d=$1
shift
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(gateway observer)
mkdir -p "$d"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=psagw local cloud CA" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
for name in server "${clients[@]}"; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
  if [ "$name" = server ]; then
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$d/$name.ext"
  else
    printf 'extendedKeyUsage=clientAuth\n' >"$d/$name.ext"
  fi
  openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/$name.ext" -out "$d/$name.pem" 2>/dev/null
done
