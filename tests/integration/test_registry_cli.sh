#!/usr/bin/env bash
# `psagw device ...`: every subcommand, and bad input that must leave the registry unchanged.
. "$(dirname "$0")/lib.sh"

dev() { "$PSAGW" device "$@" --registry "$REG"; }

dev add s1 --role sensor --psk $PSK_A >/dev/null || fail "add s1"
[ "$(stat -c %a $REG)" = 600 ] || fail "registry file mode is $(stat -c %a $REG), not 600"
ok "registry is created 0600"
out=$(dev add s2 --role monitor --generate-psk --attestation required)
echo "$out" | grep -Eq '^psk=[0-9a-f]{32}$' || fail "generated psk not printed once: $out"
echo $PSK_B > $WORK/k; chmod 600 $WORK/k
dev add s3 --role custom --psk-file $WORK/k --acl-pub 'plant/%c/#' --acl-sub 'plant/#' >/dev/null
dev list > $WORK/list
grep -q "^s1 .*sensor .*default .*active" $WORK/list || fail "list: $(cat $WORK/list)"
grep -q "^s2 .*monitor .*required" $WORK/list || fail "list: $(cat $WORK/list)"
grep -qi "$PSK_A\|$PSK_B" $WORK/list && fail "list printed a key"
dev show s3 > $WORK/show
grep -q "acl_pub *plant/%c/#" $WORK/show || fail "show: $(cat $WORK/show)"
grep -q "psk *16 bytes (not shown)" $WORK/show || fail "show: $(cat $WORK/show)"
grep -qi "$PSK_B" $WORK/show && fail "show printed the key"
ok "add (hex, file, generated), list and show; keys never printed"

snapshot() { sqlite3 "$REG" "SELECT id, role, hex(psk), revoked FROM devices ORDER BY id"; }
before=$(snapshot)
expect_error() { # description, then the command
  local what=$1; shift
  if out=$("$@" 2>&1); then fail "$what succeeded: $out"; fi
  [ -n "$out" ] || fail "$what failed silently"
  [ "$(snapshot)" = "$before" ] || fail "$what changed the registry"
}
expect_error "malformed hex" dev add x1 --role sensor --psk 00112233445566778899aabbccddeefg
expect_error "odd hex" dev add x1 --role sensor --psk 0011223344556677889
expect_error "short key" dev add x1 --role sensor --psk 0011223344556677
expect_error "duplicate id" dev add s1 --role sensor --psk $PSK_B
expect_error "unreadable key file" dev add x1 --role sensor --psk-file $WORK/nonexistent
expect_error "bad role" dev add x1 --role admin --psk $PSK_A
expect_error "bad id" dev add 'a/b' --role sensor --psk $PSK_A
expect_error "two key sources" dev add x1 --role sensor --psk $PSK_A --generate-psk
expect_error "bad ACL pattern" dev add x1 --role custom --psk $PSK_A --acl-pub 'a/#/b'
expect_error "remove unknown" dev remove nobody
expect_error "revoke unknown" dev revoke nobody
expect_error "show unknown" dev show nobody
printf 'imp1:%s\nimp2:zz\n' $PSK_A > $WORK/bad.psk
expect_error "import with a bad line" dev import $WORK/bad.psk
{ dev import $WORK/bad.psk 2>&1 || true; } | grep -q "bad.psk:2:" || fail "import error names no line"
printf 'imp1:%s\ns1:%s\n' $PSK_A $PSK_B > $WORK/dup.psk
expect_error "import with a duplicate" dev import $WORK/dup.psk
expect_error "import unreadable" dev import $WORK/nonexistent.psk
ok "bad input: clear error, non-zero exit, registry unchanged"

printf '# mosquitto psk_file\nimp1:%s\n\nimp2:%s\n' $PSK_A $PSK_C > $WORK/good.psk
dev import $WORK/good.psk --role monitor | grep -q "imported 2 devices" || fail "import"
dev list | grep -q "^imp2 .*monitor" || fail "imported device missing"
ok "import of a mosquitto psk_file"

dev revoke s1 >/dev/null && dev list | grep -q "^s1 .*revoked" || fail "revoke"
dev unrevoke s1 >/dev/null && dev list | grep -q "^s1 .*active" || fail "unrevoke"
dev remove s1 >/dev/null && ! dev list | grep -q "^s1 " || fail "remove"
ok "revoke, unrevoke, remove"

"$PSAGW" device list --registry $WORK/missing.db >/dev/null 2>&1 && fail "list of a missing registry"
{ "$PSAGW" device list --registry $WORK/missing.db 2>&1 || true; } | grep -q "cannot open registry" \
  || fail "missing registry error unclear"
printf 'registry = "%s";\n' "$REG" > $WORK/gw.conf
"$PSAGW" device list --config $WORK/gw.conf | grep -q "^imp1 " || fail "--config registry path"
ok "registry path from --config; a missing registry is a clear error"
