#!/usr/bin/env bash
# cloud-certs.sh DIR: a throwaway PKI for a local stand-in of AWS IoT: a CA, a server
# certificate for localhost / 127.0.0.1, and client certificates gateway and observer.
# Used by the demo; the tests and the benchmark make theirs the same way.
set -euo pipefail
d=$1
mkdir -p "$d"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=psagw local cloud CA" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
for name in server gateway observer; do
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
