#!/usr/bin/env bash
# Builds the Debian packages (psagw, psagw-tools) with debhelper, then checks them with lintian.
#
#   scripts/deb.sh [ARCH]     ARCH: the host architecture (default: this machine's); arm64
#                             cross-builds (scripts/arm64.sh installs what that needs)
#
# The source tree given to dpkg-buildpackage is a copy in build-deb/ of what git tracks plus
# third_party/mbedtls (fetched by the bootstrap, never committed), so the repository stays
# clean and the packages come out in build-deb/.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-$(dpkg --print-architecture)}
VERSION=$(dpkg-parsechangelog -S Version)
OUT=build-deb
SRC=$OUT/src-$ARCH/psagw-$VERSION
[ -f third_party/mbedtls/include/mbedtls/ssl.h ] || scripts/fetch-mbedtls.sh
rm -rf "$OUT/src-$ARCH"
mkdir -p "$SRC"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$SRC"
else
  tar --exclude='./build*' --exclude=./third_party -cf - . | tar -xf - -C "$SRC"
fi
mkdir -p "$SRC/third_party"
cp -a third_party/mbedtls "$SRC/third_party/"
flags=(-b -us -uc)
if [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
  flags+=(-a"$ARCH" -Pcross,nocheck)
fi
echo "deb: building psagw $VERSION for $ARCH in $SRC"
(cd "$SRC" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage "${flags[@]}") \
  > "$OUT/build-$ARCH.log" 2>&1 || { tail -40 "$OUT/build-$ARCH.log"; echo "deb: build failed (log: $OUT/build-$ARCH.log)"; exit 1; }
mv "$OUT/src-$ARCH"/*.deb "$OUT/src-$ARCH"/*.changes "$OUT/src-$ARCH"/*.buildinfo "$OUT/"
CHANGES="$OUT/psagw_${VERSION}_$ARCH.changes"
echo "deb: lintian"
# errors fail the build; warnings are printed (each one we keep is justified in
# debian/*.lintian-overrides)
lintian --fail-on error --display-info --tag-display-limit 0 "$CHANGES" | tee "$OUT/lintian-$ARCH.txt"
ls -l "$OUT"/*_"$ARCH".deb
