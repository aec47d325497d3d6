#!/usr/bin/env bash
# The firmware's sources (TF-M v2.1.6, QCBOR, MCUboot, CMSIS_6) into third_party/tfm/ (ignored
# by git, never committed), for the TF-M Profile Small build of issue 13 (docs/firmware.md).
#
# Each tarball is taken from $PSAGW_VENDOR (default: ../shared/vendor beside the repository, or
# beside the repository a local clone was made from)
# and checked against the SHA-256 pinned in device/firmware/SOURCES, which is this repository's
# own record, not the cache's; a tarball that does not match is refused. Without the cache the
# same tag is cloned from upstream and its commit checked against the pinned one. TF-M's version
# step runs `git describe`, so its tree is made a git repository with its tag.
#
#   scripts/fetch-tfm.sh [DEST]    (default third_party/tfm)
# Exit 0 when every source is in place, 1 when one cannot be had (the reason is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEST=${1:-third_party/tfm}
VENDOR=${PSAGW_VENDOR:-$ROOT/../shared/vendor}
# a clone of a local repository (CI's clean clone) looks beside the repository it came from
if [ -z "${PSAGW_VENDOR:-}" ] && [ ! -d "$VENDOR" ]; then
  origin=$(git -C "$ROOT" remote get-url origin 2>/dev/null || true)
  if [ -n "$origin" ] && [ -d "$origin/../shared/vendor" ]; then
    VENDOR=$(cd "$origin/../shared/vendor" && pwd)
  fi
fi
mkdir -p "$DEST"

fetch_one() { # name url ref commit tarball sha256
  local name=$1 url=$2 ref=$3 commit=$4 tarball=$5 sum=$6 dir="$DEST/$1"
  if [ -f "$dir/.psagw-source" ] && [ "$(cat "$dir/.psagw-source")" = "$commit" ]; then
    echo "fetch-tfm: $name: in place ($ref)"
    return 0
  fi
  rm -rf "$dir"
  if [ -f "$VENDOR/$tarball" ]; then
    local got
    got=$(sha256sum "$VENDOR/$tarball" | cut -d' ' -f1)
    if [ "$got" != "$sum" ]; then
      echo "fetch-tfm: $VENDOR/$tarball: SHA-256 $got, not the pinned $sum: refused" >&2
      return 1
    fi
    mkdir -p "$dir"
    tar -xJf "$VENDOR/$tarball" -C "$dir" --strip-components=1 # git archive --prefix=NAME/
    echo "fetch-tfm: $name: from $VENDOR/$tarball (SHA-256 checked)"
  elif git clone -q --depth 1 --branch "$ref" "$url" "$dir" 2>/dev/null ||
       { git init -q "$dir" && git -C "$dir" fetch -q --depth 1 "$url" "$commit" 2>/dev/null &&
         git -C "$dir" checkout -q FETCH_HEAD; }; then
    local head
    head=$(git -C "$dir" rev-parse HEAD)
    if [ "$head" != "$commit" ]; then
      echo "fetch-tfm: $url $ref is $head upstream, not the pinned $commit: refused" >&2
      rm -rf "$dir"
      return 1
    fi
    rm -rf "$dir/.git"
    echo "fetch-tfm: $name: from $url at $ref (commit checked)"
  else
    rm -rf "$dir"
    echo "fetch-tfm: $name: not in $VENDOR and $url cannot be reached" >&2
    return 1
  fi
  if [ "$name" = trusted-firmware-m ]; then
    # cmake/version.cmake asks git for the version
    git -C "$dir" init -q
    git -C "$dir" add -A
    git -C "$dir" -c user.name=psagw -c user.email=psagw@localhost commit -q -m "$ref"
    git -C "$dir" tag "$ref"
  fi
  echo "$commit" > "$dir/.psagw-source"
}

rc=0
while read -r name url ref commit tarball sum; do
  case $name in ''|'#'*) continue ;; esac
  fetch_one "$name" "$url" "$ref" "$commit" "$tarball" "$sum" || rc=1
done < device/firmware/SOURCES
exit $rc
