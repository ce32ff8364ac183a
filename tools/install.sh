#!/bin/bash
# Builds alknet, installs it under /usr/local (configuration in /etc/alknet, state in
# /var/lib/alknet), enables the control socket and adds a local demo profile.
# Usage: sudo tools/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $EUID -ne 0 ]]; then
        echo "install: run as root: sudo tools/install.sh" >&2
        exit 1
fi
export PATH=/usr/local/sbin:/usr/local/bin:$PATH

tools/deps.sh --build

[[ -f build/build.ninja ]] || meson setup build
meson compile -C build
meson install -C build

# The alknet user and group, from the installed sysusers.d snippet.
systemd-sysusers

if [[ ! -d /run/systemd/system ]]; then
        # Not booted with systemd (a container or chroot): enable for the next boot only.
        systemctl enable alknetd.socket
        echo "install: systemd is not running here; alknetd.socket is enabled for the next boot."
        echo "install: to try the daemon now: alknetd --control /tmp/alknet.sock --config-dir /etc/alknet --state-dir /var/lib/alknet"
        exit 0
fi

systemctl daemon-reload
systemctl enable --now alknetd.socket

# The first call starts alknetd through the socket.
if ! alknetctl show demo >/dev/null 2>&1; then
        alknetctl add demo --server 127.0.0.1:22 --autostart no
fi
alknetctl list
