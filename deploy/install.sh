#!/bin/sh
# Installs lagom as systemd services on this host (run as root):
#   deploy/install.sh [--bin PATH] [--config FILE] [--env FILE] [--certs DIR --node NAME]
# - the binary to /usr/local/bin/lagom (default: target/release/lagom)
# - the shared configuration to /etc/lagom/lagom.toml, this host's settings to /etc/lagom/lagom.env
#   (from lagom.env.example when no --env is given and none exists yet)
# - the certificates: ca.pem and node NAME's NAME.pem + NAME.key only (never ca.key, never another
#   node's key) to /etc/lagom/certs, the key readable by the service user only
# - the user and group `lagom`, the units, the UDP buffer sysctl; then `systemctl daemon-reload`.
# Nothing is enabled or started: `systemctl enable --now lagom-server` (or lagom-supervisor, or
# lagom-worker@N) on the hosts that run each role.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=$here/../target/release/lagom
config=
env=
certs=
node=
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        --env) env=$2; shift 2 ;;
        --certs) certs=$2; shift 2 ;;
        --node) node=$2; shift 2 ;;
        *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
[ -x "$bin" ] || { echo "install.sh: $bin is not an executable (cargo build --release)" >&2; exit 1; }

id lagom >/dev/null 2>&1 || useradd --system --home-dir /var/lib/lagom --shell /usr/sbin/nologin lagom
install -m 0755 "$bin" /usr/local/bin/lagom
install -d -m 0750 -o root -g lagom /etc/lagom
if [ -n "$config" ]; then
    /usr/local/bin/lagom config --config "$config" >/dev/null  # refuse a config lagom rejects
    install -m 0640 -o root -g lagom "$config" /etc/lagom/lagom.toml
fi
if [ -n "$env" ]; then
    install -m 0640 -o root -g lagom "$env" /etc/lagom/lagom.env
elif [ ! -e /etc/lagom/lagom.env ]; then
    install -m 0640 -o root -g lagom "$here/lagom.env.example" /etc/lagom/lagom.env
fi
if [ -n "$certs" ]; then
    [ -n "$node" ] || { echo "install.sh: --certs needs --node NAME (this host's node name: only its key is installed)" >&2; exit 2; }
    case $node in
        ca|*/*|.*) echo "install.sh: '$node' is not a node name" >&2; exit 2 ;;
    esac
    for f in "$certs/ca.pem" "$certs/$node.pem" "$certs/$node.key"; do
        [ -f "$f" ] || { echo "install.sh: $f is missing (lagom certs --dir DIR ... --workers $node:SLOTS)" >&2; exit 1; }
    done
    install -d -m 0750 -o root -g lagom /etc/lagom/certs
    install -m 0644 "$certs/ca.pem" "$certs/$node.pem" /etc/lagom/certs/
    install -m 0640 -o root -g lagom "$certs/$node.key" /etc/lagom/certs/
fi
for unit in lagom-server.service lagom-supervisor.service lagom-worker@.service; do
    install -m 0644 "$here/$unit" /etc/systemd/system/
done
install -m 0644 "$here/99-lagom-udp-buffers.conf" /etc/sysctl.d/
sysctl -q -p /etc/sysctl.d/99-lagom-udp-buffers.conf || echo "install.sh: could not apply the UDP buffer sysctl now" >&2
install -d -m 0755 /usr/local/share/doc/lagom
install -m 0644 "$here/../README.md" /usr/local/share/doc/lagom/README.md
systemctl daemon-reload
echo "installed; enable the role of this host, e.g. systemctl enable --now lagom-supervisor"
