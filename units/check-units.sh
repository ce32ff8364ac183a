#!/bin/bash
# Offline checks of the unit files: `systemd-analyze verify` must print nothing (it exits 0
# even for unknown keys), and the service's exposure score must stay at or below 2.0.
# Usage: check-units.sh SERVICE-FOR-VERIFY SOCKET SERVICE
set -euo pipefail

verify_service=$(realpath "$1") socket=$(realpath "$2") service=$(realpath "$3")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# verify wants the unit names as installed, side by side.
cp "$verify_service" "$dir/alknetd.service"
cp "$socket" "$dir/alknetd.socket"
cd "$dir"

pass=0 fail=0
check() {
        local name=$1; shift
        if "$@"; then
                echo "ok: $name"; pass=$((pass + 1))
        else
                echo "FAIL: $name"; fail=$((fail + 1))
        fi
}

verify_quiet() {
        local err
        # The man pages are not installed yet when this runs from the build tree.
        err=$(systemd-analyze verify --man=no ./alknetd.service ./alknetd.socket 2>&1 >/dev/null) || true
        [[ -z $err ]] || { printf '%s\n' "$err"; return 1; }
}
check "systemd-analyze verify prints nothing" verify_quiet

cp "$service" "$dir/alknetd.service"
security() {
        local out
        out=$(systemd-analyze security --offline=true --threshold=20 ./alknetd.service 2>&1) \
                || { printf '%s\n' "$out"; return 1; }
        printf '%s\n' "$out" | tail -n 1
}
check "exposure score at most 2.0" security

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
