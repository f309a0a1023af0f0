#!/bin/sh
# Checks the systemd units with `systemd-analyze verify`: every key known, every directive valid,
# the command executable. The units name the installed path /usr/local/bin/lagom; the check runs
# on copies that point at LAGOM_BIN (default: target/release/lagom, built first) instead.
# Any message from systemd-analyze counts as a failure. Checked twice: as a CPU host installs
# them, and with the GPU drop-in deploy/gpu.conf.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${LAGOM_BIN:-$here/../target/release/lagom}
if [ ! -x "$bin" ]; then
    echo "verify.sh: $bin is not an executable (build it: cargo build --release)" >&2
    exit 1
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for unit in "$here"/*.service; do
    sed "s|/usr/local/bin/lagom|$bin|g" "$unit" >"$tmp/$(basename "$unit")"
done
cd "$tmp"
# A template is checked through one instance.
set -- lagom-server.service lagom-supervisor.service lagom-worker@0.service
cp lagom-worker@.service lagom-worker@0.service 2>/dev/null || true
out=$(systemd-analyze verify "$@" 2>&1) || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
    echo "$out" >&2
    exit 1
fi
# The same units as a GPU host installs them: with deploy/gpu.conf as a drop-in.
for unit in lagom-server.service lagom-supervisor.service lagom-worker@.service; do
    mkdir -p "$unit.d"
    cp "$here/gpu.conf" "$unit.d/gpu.conf"
done
out=$(systemd-analyze verify "$@" 2>&1) || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
    echo "with gpu.conf: $out" >&2
    exit 1
fi
echo "systemd units verified: $*, each also with gpu.conf"
