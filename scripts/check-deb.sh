#!/usr/bin/env bash
# Checks a built vitalgate .deb without installing it on this machine:
#
#   scripts/check-deb.sh target/debian/vitalgate_*.deb
#
# - control: fields, dependencies (no libdbus: it is built in), conffiles;
# - contents: every expected path with its mode and owner;
# - maintainer scripts: users and directories created, the service never
#   enabled or started by the package;
# - the unit as installed (scripts/check-unit.sh on the extracted package);
# - sysusers.d and tmpfiles.d applied to a scratch root (copies of this
#   machine's user database): the user, its groups, the directory modes;
# - the packaged configuration read by the packaged binary: refused as
#   shipped (the placeholder recipient), accepted once a recipient is set
#   and the commented device examples are bound.
set -euo pipefail
cd "$(dirname "$0")/.."

deb=${1:?usage: scripts/check-deb.sh PACKAGE.deb}
[ -f "$deb" ] || { echo "check-deb: no file $deb" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
    echo "check-deb: FAIL: $*" >&2
    failures=$((failures + 1))
}
ok() { echo "check-deb: ok: $*"; }

echo "== dpkg-deb --info $deb"
dpkg-deb --info "$deb" | tee "$work/info"
field() { dpkg-deb --field "$deb" "$1"; }

[ "$(field Package)" = vitalgate ] || fail "Package is not vitalgate"
for f in Version Architecture Maintainer Section Priority Description Depends; do
    [ -n "$(field "$f")" ] || fail "control field $f is empty"
done
depends=$(field Depends)
case "$depends" in *libc6*) ok "depends on libc6" ;; *) fail "Depends lacks libc6: $depends" ;; esac
case "$depends" in *dbus*) fail "Depends names libdbus (it should be built in): $depends" ;; *) ok "no libdbus dependency" ;; esac
case "$depends" in *systemd-sysusers*) ok "depends on a systemd-sysusers provider" ;; *) fail "Depends lacks systemd-sysusers: $depends" ;; esac

mkdir "$work/control"
dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$work/control"
if [ "$(cat "$work/control/conffiles" 2>/dev/null)" = /etc/vitalgate/vitalgate.toml ]; then
    ok "conffiles: /etc/vitalgate/vitalgate.toml"
else
    fail "conffiles is not exactly /etc/vitalgate/vitalgate.toml: $(cat "$work/control/conffiles" 2>/dev/null || echo missing)"
fi

echo "== maintainer scripts"
for s in postinst prerm postrm; do
    [ -x "$work/control/$s" ] || fail "no executable $s"
    sh -n "$work/control/$s" || fail "$s is not valid sh"
done
postinst="$work/control/postinst"
grep -q 'systemd-sysusers.*vitalgate\.conf' "$postinst" && ok "postinst runs systemd-sysusers vitalgate.conf" ||
    fail "postinst does not run systemd-sysusers vitalgate.conf"
grep -q 'systemd-tmpfiles.*--create vitalgate\.conf' "$postinst" && ok "postinst runs systemd-tmpfiles --create vitalgate.conf" ||
    fail "postinst does not run systemd-tmpfiles --create vitalgate.conf"
# The package must not start the service, nor enable it on a fresh install
# (`deb-systemd-helper enable` appears only under `was-enabled`, i.e. it
# keeps an administrator's earlier choice across upgrades).
if grep -Eq 'deb-systemd-invoke (start|\$_dh_action)' "$postinst"; then
    fail "postinst starts the service"
else
    ok "postinst does not start the service (try-restart on upgrade only)"
fi
if grep -B2 'deb-systemd-helper enable' "$postinst" | grep -q 'was-enabled'; then
    ok "postinst enables only what the administrator had enabled"
elif grep -q 'deb-systemd-helper enable' "$postinst"; then
    fail "postinst enables the service"
fi
grep -q '#DEBHELPER#' "$postinst" && fail "#DEBHELPER# left in postinst"
[ "$(grep -c 'deb-systemd-helper update-state' "$postinst")" = 1 ] ||
    fail "the generated fragments appear more than once in postinst"

echo "== dpkg-deb --contents"
dpkg-deb --contents "$deb" | tee "$work/contents"
# expect MODE OWNER PATH (cargo-deb writes owners as ids: 0/0 is root/root)
expect() {
    local mode=$1 owner=$2 path=$3 line
    line=$(awk -v p="./$path" '$6 == p' "$work/contents")
    if [ -z "$line" ]; then
        fail "missing /$path"
    elif [ "$(awk '{print $1, $2}' <<<"$line" | sed 's|^\([^ ]*\) 0/0$|\1 root/root|')" != "$mode $owner" ]; then
        fail "/$path is $(awk '{print $1, $2}' <<<"$line"), expected $mode $owner"
    else
        ok "/$path $mode $owner"
    fi
}
expect -rwxr-xr-x root/root usr/bin/vitalgate
expect -rw-r--r-- root/root usr/lib/systemd/system/vitalgate.service
expect -rw-r--r-- root/root usr/lib/sysusers.d/vitalgate.conf
expect -rw-r--r-- root/root usr/lib/tmpfiles.d/vitalgate.conf
expect -rw-r--r-- root/root etc/vitalgate/vitalgate.toml
expect -rw-r--r-- root/root usr/share/doc/vitalgate/copyright
expect -rw-r--r-- root/root usr/share/doc/vitalgate/README.md
expect -rw-r--r-- root/root usr/share/doc/vitalgate/INSTALL.md
for p in device-profiles/*.toml; do
    expect -rw-r--r-- root/root "usr/share/vitalgate/$p"
done
# Nothing else where the daemon keeps state: the package ships no keys and
# no ledger.
if grep -Eq '\./var/' "$work/contents"; then
    fail "the package ships files under /var"
fi

echo "== the extracted package"
root="$work/root"
dpkg-deb -x "$deb" "$root"
cmp -s systemd/vitalgate.service "$root/usr/lib/systemd/system/vitalgate.service" || fail "packaged unit differs from systemd/vitalgate.service"
cmp -s systemd/vitalgate.sysusers "$root/usr/lib/sysusers.d/vitalgate.conf" || fail "packaged sysusers differs from systemd/vitalgate.sysusers"
cmp -s systemd/vitalgate.tmpfiles "$root/usr/lib/tmpfiles.d/vitalgate.conf" || fail "packaged tmpfiles differs from systemd/vitalgate.tmpfiles"
cmp -s packaging/vitalgate.toml "$root/etc/vitalgate/vitalgate.toml" || fail "packaged configuration differs from packaging/vitalgate.toml"
bin="$root/usr/bin/vitalgate"
echo "-- ldd /usr/bin/vitalgate"
ldd "$bin" | tee "$work/ldd"
grep -q 'not found' "$work/ldd" && fail "unresolved shared libraries"
grep -q 'libdbus' "$work/ldd" && fail "the binary links libdbus dynamically"
"$bin" --version >/dev/null || fail "the packaged binary does not run"

echo "== the unit as installed"
scripts/check-unit.sh "$root" || fail "scripts/check-unit.sh on the package"

echo "== sysusers.d and tmpfiles.d in a scratch root"
sroot="$work/sysroot"
mkdir -p "$sroot/etc" "$sroot/var/lib" "$sroot/usr/lib"
cp /etc/passwd /etc/group "$sroot/etc/"
cp /etc/shadow /etc/gshadow "$sroot/etc/" 2>/dev/null || true
cp -a "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" "$sroot/usr/lib/"
systemd-sysusers --root="$sroot" vitalgate.conf
systemd-tmpfiles --root="$sroot" --create vitalgate.conf
user=$(awk -F: '$1 == "vitalgate"' "$sroot/etc/passwd")
[ -n "$user" ] || fail "no vitalgate user"
uid=$(cut -d: -f3 <<<"$user")
gid=$(cut -d: -f4 <<<"$user")
[ "$uid" -lt 1000 ] || fail "vitalgate is not a system user (uid $uid)"
[ "$(cut -d: -f7 <<<"$user")" = /usr/sbin/nologin ] || fail "vitalgate has a login shell"
for g in dialout bluetooth; do
    awk -F: -v g="$g" '$1 == g { print $4 }' "$sroot/etc/group" | tr , '\n' | grep -qx vitalgate &&
        ok "vitalgate is in group $g" || fail "vitalgate is not in group $g"
done
[ "$(stat -c '%a %u %g' "$sroot/var/lib/vitalgate")" = "700 $uid $gid" ] &&
    ok "/var/lib/vitalgate 0700 vitalgate:vitalgate" || fail "/var/lib/vitalgate is $(stat -c '%a %u %g' "$sroot/var/lib/vitalgate")"
[ "$(stat -c '%a %u %g' "$sroot/etc/vitalgate")" = "750 0 $gid" ] &&
    ok "/etc/vitalgate 0750 root:vitalgate" || fail "/etc/vitalgate is $(stat -c '%a %u %g' "$sroot/etc/vitalgate")"

echo "== the packaged configuration"
config="$root/etc/vitalgate/vitalgate.toml"
status=0
"$bin" check-config --config "$config" >"$work/check1" 2>&1 || status=$?
cat "$work/check1"
if [ "$status" -ne 0 ] && grep -q 'chain.recipients\[0\]' "$work/check1"; then
    ok "check-config refuses the configuration as shipped (placeholder recipient)"
else
    fail "check-config did not refuse the placeholder recipient (exit $status)"
fi
# Made usable as an engineer would: keys in a scratch state directory, a
# recipient, the commented device examples bound; profiles from the package.
state="$work/state"
mkdir -p "$state"
"$bin" keygen identity "$state/identity.key" >/dev/null
recipient=$("$bin" keygen recipient "$work/care-team.key" | grep -o 'x25519:[A-Za-z0-9_-]*' | head -n 1)
[ -n "$recipient" ] || fail "keygen recipient printed no x25519: key"
sed -e "s|x25519:REPLACE-with-the-care-team-key-printed-by-keygen|$recipient|" \
    -e "s|/var/lib/vitalgate|$state|g" \
    -e "s|/usr/share/vitalgate/|$root/usr/share/vitalgate/|g" \
    -e '/^# Devices:/,$ s/^# \(\[\[device\]\]\|[a-z_]* = \)/\1/' \
    "$config" >"$work/edited.toml"
status=0
"$bin" check-config --config "$work/edited.toml" >"$work/check2" 2>&1 || status=$?
cat "$work/check2"
if [ "$status" -eq 0 ] && grep -q ': ok, 3 devices' "$work/check2"; then
    ok "the configuration with a recipient and the three example devices is valid"
else
    fail "check-config refused the edited configuration (exit $status)"
fi

if [ "$failures" -ne 0 ]; then
    echo "check-deb: $failures failure(s)" >&2
    exit 1
fi
echo "check-deb: all checks passed for $deb"
