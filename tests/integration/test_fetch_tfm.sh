#!/usr/bin/env bash
# scripts/fetch-tfm.sh (issue 13, docs/firmware.md): the firmware's sources from the offline
# cache, each tarball checked against the SHA-256 this repository pins; TF-M's tree made a git
# repository with its tag (its version step runs git describe); a second run leaves them; a
# tarball that does not match is refused, not used. Skipped (77) where the cache is not there
# (and nothing would be fetched without a network either).
. "$(dirname "$0")/lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENDOR=${PSAGW_VENDOR:-$ROOT/../shared/vendor}
# as fetch-tfm.sh: a clone of a local repository looks beside the repository it came from
origin=$(git -C "$ROOT" remote get-url origin 2>/dev/null || true)
if [ -z "${PSAGW_VENDOR:-}" ] && [ ! -d "$VENDOR" ] && [ -n "$origin" ] && [ -d "$origin/../shared/vendor" ]; then
  VENDOR=$(cd "$origin/../shared/vendor" && pwd)
fi
[ -f "$VENDOR/trusted-firmware-m-TF-Mv2.1.6.tar.xz" ] || { echo "SKIP: no source cache at $VENDOR"; exit 77; }

PSAGW_VENDOR=$VENDOR bash "$ROOT/scripts/fetch-tfm.sh" $WORK/tfm > $WORK/out 2>&1 || fail "fetch: $(cat $WORK/out)"
[ "$(grep -c 'SHA-256 checked' $WORK/out)" = 4 ] || fail "not all four checked: $(cat $WORK/out)"
[ "$(git -C $WORK/tfm/trusted-firmware-m describe --tags)" = TF-Mv2.1.6 ] || fail "TF-M's git describe"
for d in trusted-firmware-m/CMakeLists.txt qcbor/inc/qcbor/qcbor.h mcuboot/boot/bootutil cmsis_6/CMSIS/Core; do
  [ -e "$WORK/tfm/$d" ] || fail "$d missing"
done
PSAGW_VENDOR=$VENDOR bash "$ROOT/scripts/fetch-tfm.sh" $WORK/tfm > $WORK/out2 2>&1 || fail "second run"
[ "$(grep -c 'in place' $WORK/out2)" = 4 ] || fail "second run: $(cat $WORK/out2)"
ok "the four sources from the cache, each SHA-256 checked against the pinned sum; TF-M described as TF-Mv2.1.6; a second run leaves them"

mkdir $WORK/vendor
cp "$VENDOR"/*.tar.xz $WORK/vendor/
printf 'x' >> $WORK/vendor/qcbor-v1.2.tar.xz
out=$(PSAGW_VENDOR=$WORK/vendor bash "$ROOT/scripts/fetch-tfm.sh" $WORK/tfm2 2>&1) && fail "a tampered tarball was taken"
echo "$out" | grep -q "qcbor-v1.2.tar.xz: SHA-256 .*, not the pinned .*: refused" || fail "tamper: $out"
[ ! -e $WORK/tfm2/qcbor ] || fail "the tampered tree was left"
ok "a tarball whose SHA-256 is not the pinned one is refused and not unpacked"
