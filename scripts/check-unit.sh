#!/usr/bin/env bash
# Checks systemd/vitalgate.service with systemd-analyze (systemd >= 250 for
# `security --offline`), without a running systemd:
#
#   scripts/check-unit.sh            the unit in this checkout
#   scripts/check-unit.sh ROOT       the unit as installed in ROOT (a built
#                                    package extracted with dpkg-deb -x)
#
# 1. `security --offline --threshold=20`: fails when the overall exposure is
#    above 2.0 (the threshold is on systemd's x10 scale: 20 = 2.0).
# 2. `verify --root`: systemd parses the unit and its dependencies, and
#    checks that ExecStart's binary exists and is executable — in ROOT, the
#    binary from the package. Without ROOT only the unit's text can be
#    checked, so the root holds a stand-in executable at /usr/bin/vitalgate
#    (a syntax check; the check with ROOT is the real one). The host's own
#    units are copied in so that what the unit names (sysinit.target,
#    modprobe@.service, ...) resolves as on a Debian machine.
#    `verify` exits 0 after "..., ignoring" warnings, so any line it prints
#    about vitalgate fails the check too.
set -euo pipefail
cd "$(dirname "$0")/.."

root=${1:-}
unit_rel=usr/lib/systemd/system/vitalgate.service
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -n "$root" ]; then
    unit="$root/$unit_rel"
    what="the unit as installed from the package ($root)"
else
    unit=systemd/vitalgate.service
    what="systemd/vitalgate.service (syntax; binary not built yet)"
fi
[ -f "$unit" ] || { echo "check-unit: no unit at $unit" >&2; exit 1; }

echo "== systemd-analyze security --offline=yes --threshold=20: $what"
if ! systemd-analyze security --offline=yes --threshold=20 "$unit" >"$work/security.log" 2>&1; then
    cat "$work/security.log"
    echo "check-unit: exposure above 2.0 (or systemd-analyze security failed)" >&2
    exit 1
fi
tail -n 1 "$work/security.log"

echo "== systemd-analyze verify: $what"
vroot="$work/root"
mkdir -p "$vroot/usr/lib/systemd/system" "$vroot/usr/bin"
cp -a /usr/lib/systemd/system/. "$vroot/usr/lib/systemd/system/"
if [ -n "$root" ]; then
    cp -a "$root/usr/bin/vitalgate" "$vroot/usr/bin/vitalgate"
else
    printf '#!/bin/sh\nexit 0\n' >"$vroot/usr/bin/vitalgate"
    chmod 0755 "$vroot/usr/bin/vitalgate"
fi
cp "$unit" "$vroot/$unit_rel"
out="$work/verify.log"
status=0
systemd-analyze verify --root="$vroot" vitalgate.service >"$out" 2>&1 || status=$?
cat "$out"
if [ "$status" -ne 0 ] || grep -q vitalgate "$out"; then
    echo "check-unit: systemd-analyze verify found problems (exit $status)" >&2
    exit 1
fi
echo "check-unit: ok"
