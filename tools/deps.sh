#!/bin/bash
# Installs the Debian packages alknet needs to build and to run its tests. The lists are
# defined here once; tools/install.sh and .ci/run call this script.
# Usage: tools/deps.sh [--build]     (--build: only what building needs)
set -euo pipefail

build_deps=(
        meson ninja-build pkg-config gcc clang
        libsystemd-dev libjson-c-dev check libssh-dev libssl-dev
        scdoc python3
)
test_deps=(
        systemd systemd-container man-db
        openssh-server openssh-client openssl curl socat nginx
        valgrind libclang-rt-14-dev
        util-linux iproute2 procps
        microsocks tinyproxy
        fail2ban
)

wanted=("${build_deps[@]}")
[[ ${1-} == --build ]] || wanted+=("${test_deps[@]}")

missing=()
for p in "${wanted[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
        echo "deps: all ${#wanted[@]} packages installed"
        exit 0
fi

if [[ $EUID -ne 0 ]]; then
        echo "deps: missing packages: ${missing[*]}" >&2
        echo "deps: run as root to install them: sudo $0" >&2
        exit 1
fi

echo "deps: installing ${missing[*]}"
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
