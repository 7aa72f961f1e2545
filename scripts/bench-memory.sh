#!/usr/bin/env bash
# Resident memory of the gateway daemon with 5 devices streaming at 1 Hz:
# three serial oximeters (Masimo, Contec V7, Nonin) on pseudo-terminals and
# two MQTT wearables (SenML, Open mHealth) publishing to the gateway's own
# MQTT server, all played by vitalsim. Prints VmRSS and VmHWM (peak) of `vitalgate run` after
# SECONDS (default 120) seconds.
#
#   scripts/bench-memory.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-120}"
cargo build --release -q -p vitalgate -p vitalsim
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
profiles=(masimo-rad-8 contec-cms50d-plus-v7 nonin-3150-wristox2 senml-wearable openmhealth-wearable)
args=()
for p in "${profiles[@]}"; do args+=(--profile "device-profiles/$p.toml"); done
# The simulator's MQTT devices connect (retrying) once the gateway listens.
target/release/vitalsim "${args[@]}" --scenario stable --mqtt "127.0.0.1:$port" > "$work/devices.txt" 2>/dev/null & pids+=($!)
sleep 1

target/release/vitalgate keygen identity "$work/identity.key" > /dev/null 2>&1
recipient="$(target/release/vitalgate keygen recipient "$work/recipient.key" 2>/dev/null)"
{
    printf '[mqtt_server]\nlisten = "127.0.0.1:%s"\n' "$port"
    printf '\n[chain]\ndirectory = "%s/ledger"\nidentity = "%s/identity.key"\nrecipients = ["%s"]\n' "$work" "$work" "$recipient"
    i=0
    while read -r line; do
        id="$(sed -n 's/.*device=\([^ ]*\).*/\1/p' <<<"$line")"
        path="$(sed -n 's/.*path=\([^ ]*\).*/\1/p' <<<"$line")"
        printf '\n[[device]]\nid = "%s"\npatient = "sim-patient-1"\nprofile = "%s/device-profiles/%s.toml"\n' "$id" "$PWD" "${profiles[$i]}"
        [ -n "$path" ] && printf 'port = "%s"\n' "$path"
        i=$((i + 1))
    done < "$work/devices.txt"
} > "$work/vitalgate.toml"

VITALGATE_LOG=warn target/release/vitalgate run --live --config "$work/vitalgate.toml" > "$work/view.txt" & gw=$!; pids+=($gw)
sleep "$secs"
# The last live-view frame: proof the five devices were streaming.
tac "$work/view.txt" | sed -n '1,/^vitalgate  received/p' | tac
grep -E 'VmRSS|VmHWM' "/proc/$gw/status"
echo "ledger on disk: $(du -sh "$work/ledger" | cut -f1)"
