#!/usr/bin/env bash
# Fetches Mbed TLS 3.6 (the device emulator's TLS and PSA crypto) from Debian trixie's *source*
# package into third_party/mbedtls (ignored by git, never committed). bookworm ships only 2.28
# as a binary, which cannot be built as a pure PSA crypto client (docs/architecture.md).
#
# The trixie deb-src entry lives in a temporary sources file passed to apt with -o options, so
# the machine's own apt configuration is never changed. Idempotent: quick when it is there.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=third_party/mbedtls
WANT_MAJOR_MINOR="3.6"

have_version() {
  local h=$DEST/include/mbedtls/build_info.h
  [ -f "$h" ] && grep -q "#define MBEDTLS_VERSION_STRING *\"$WANT_MAJOR_MINOR\." "$h"
}
if have_version; then
  exit 0
fi

SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
command -v dpkg-source >/dev/null || { $SUDO apt-get install -y -q --no-install-recommends dpkg-dev; }

tmp=$(mktemp -d /tmp/psagw-mbedtls.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/trixie-src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
# the same mirror as the machine's own entries, if it names another one
mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -1 | awk '{print $2}')
[ -n "$mirror" ] && sed -i "s|http://deb.debian.org/debian|$mirror|" "$tmp/trixie-src.sources"

apt_opts=(-o "Dir::Etc::sourcelist=$tmp/trixie-src.sources" -o "Dir::Etc::sourceparts=-"
          -o "APT::Get::List-Cleanup=0")
echo "fetch-mbedtls: apt-get source mbedtls from trixie"
$SUDO apt-get "${apt_opts[@]}" update -q >/dev/null
(cd "$tmp" && apt-get "${apt_opts[@]}" source -q mbedtls/trixie >/dev/null 2>"$tmp/err" ||
  { cat "$tmp/err" >&2; exit 1; })
src=$(find "$tmp" -maxdepth 1 -type d -name 'mbedtls-*' | head -1)
[ -n "$src" ] || { echo "fetch-mbedtls: no source tree unpacked" >&2; exit 1; }
rm -rf "$DEST"
mkdir -p third_party
mv "$src" "$DEST"
have_version || { echo "fetch-mbedtls: $DEST is not Mbed TLS $WANT_MAJOR_MINOR" >&2; exit 1; }
echo "fetch-mbedtls: $(grep -o 'MBEDTLS_VERSION_STRING *"[^"]*"' $DEST/include/mbedtls/build_info.h) in $DEST"
