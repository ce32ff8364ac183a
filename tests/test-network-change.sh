#!/usr/bin/env bash
# Network-change watching end to end, in a network namespace of its own: a tunnel that
# waits in backoff because its sshd is away comes back as soon as rtnetlink reports a
# change (a link gaining carrier, a new global address, a new default route), well before
# the retry time the daemon itself reported; events netwatch must ignore (a link up without
# carrier, host- and link-scope addresses, a prefix route, a default route outside the main
# table) leave the backoff alone until that retry time.
#
# Runs as root only: it re-executes itself under `unshare -n`, so the namespace, its veth
# pair and its addresses die with this script's process.
set -euo pipefail

skip() {
        echo "$*; skipping"
        exit 77
}

if [[ ${ALKNET_NETWATCH_IN_NETNS:-} != 1 ]]; then
        [[ $EUID -eq 0 ]] || skip "not root (a network namespace is needed)"
        for need in unshare ip; do
                command -v "$need" >/dev/null || skip "$need not found"
        done
        unshare -n true 2>/dev/null || skip "unshare -n does not work here"
        ALKNET_NETWATCH_IN_NETNS=1 exec unshare -n -- bash "${BASH_SOURCE[0]}" "$@"
fi

SRC=${ALKNET_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# shellcheck source=lib/fixtures.sh
. "$SRC/tests/lib/fixtures.sh"

for need in curl sha256sum python3; do
        command -v "$need" >/dev/null || skip "$need not found"
done
[[ -x /usr/sbin/sshd ]] || skip "/usr/sbin/sshd not found"
[[ -x ${ALKNETD:-} && -x ${ALKNETCTL:-} ]] || skip "ALKNETD/ALKNETCTL not set"

# The fresh namespace has only lo, and it is down. lo events are ignored by netwatch.
ip link set lo up
ip link add nwprobe0 type veth peer name nwprobe1 2>/dev/null || skip "no veth links here"
ip link del nwprobe0

fx_init
# Keys, host key pin and port first; the server itself starts later.
fx_start_sshd
fx_sshd_kill_all
fx_start_http
fx_make_file small.bin 256K
SMALL_SHA=$FX_FILE_SHA256

D=$FX_DIR/alknet
mkdir -p "$D/etc/profiles.d" "$D/state"
CTL=("$ALKNETCTL" --socket "$D/control")
DAEMON_LOG=$D/alknetd.log
SOCKS=$(fx_free_port)

fx_bg "$DAEMON_LOG" "$ALKNETD" --control "$D/control" --config-dir "$D/etc" --state-dir "$D/state" --log-level debug
DAEMON_PID=$FX_LAST_PID
fx_wait_until 30 test -S "$D/control"
fx_check "the daemon is up" kill -0 "$DAEMON_PID"
fx_check "the daemon watches rtnetlink" eval '[[ $(<"$DAEMON_LOG") != *"Cannot watch for network changes"* ]]'

"${CTL[@]}" add work --server "127.0.0.1:$FX_SSHD_PORT" --user "$FX_USER" --identity "$FX_CLIENT_KEY" \
        --host-key "$FX_HOSTKEY_FP" --socks "127.0.0.1:$SOCKS" >/dev/null
"${CTL[@]}" up work --no-wait >/dev/null

# ST_STATE ST_NEXT (nextAttemptUSec, CLOCK_REALTIME, 0 when none) ST_ATTEMPTS ST_SINCE
read_status() {
        local line
        line=$("${CTL[@]}" status work --json | python3 -c '
import json, sys
t = json.load(sys.stdin)["tunnels"][0]
print(t["state"], t.get("nextAttemptUSec", 0), t.get("attempts", 0), t.get("sinceUSec", 0))') || return 1
        read -r ST_STATE ST_NEXT ST_ATTEMPTS ST_SINCE <<<"$line"
}

# wait_backoff MIN_USEC: until the tunnel waits in backoff with at least MIN_USEC to go
# before its retry; sets BK_NEXT and BK_ATTEMPTS.
wait_backoff() {
        local deadline=$(($(_fx_now_us) + 40000000))
        while (($(_fx_now_us) < deadline)); do
                if read_status && [[ $ST_STATE == backoff ]] && ((ST_NEXT - $(_fx_now_us) >= $1)); then
                        BK_NEXT=$ST_NEXT
                        BK_ATTEMPTS=$ST_ATTEMPTS
                        return 0
                fi
                sleep 0.1
        done
        return 1
}

# wait_up SECONDS: sets UP_SINCE, when the daemon says the tunnel went up.
wait_up() {
        local deadline=$(($(_fx_now_us) + $1 * 1000000))
        while (($(_fx_now_us) < deadline)); do
                if read_status && [[ $ST_STATE == up ]]; then
                        UP_SINCE=$ST_SINCE
                        return 0
                fi
                sleep 0.05
        done
        return 1
}

log_lines() {
        wc -l <"$DAEMON_LOG"
}

# The daemon's log after line MARK.
log_after() {
        tail -n +"$(($1 + 1))" "$DAEMON_LOG"
}

socks_fetch_ok() {
        [[ $(curl -sS --fail --max-time 20 -x "socks5h://127.0.0.1:$SOCKS" "$FX_HTTP_URL/small.bin" |
                sha256sum | cut -d' ' -f1) == "$SMALL_SHA" ]]
}

fatal() {
        fx_fail "$1" "$(tail -n 30 "$DAEMON_LOG")"
        fx_summary
}

# ---- negative control: sshd is back, only ignored events happen, the backoff runs out ----
# Attempt 3 waits 4 s (+-10 %): time for sshd and the noise, and for a wrong retry to show.
wait_backoff 3200000 || fatal "the tunnel reaches a backoff of several seconds (sshd is not running)"
neg_next=$BK_NEXT
neg_attempts=$BK_ATTEMPTS
mark=$(log_lines)
fx_sshd_restart
ip link add v0 type veth peer name v1                 # links that are down
ip link set v0 up                                     # up, but no carrier: the peer is down
ip addr add 127.0.0.2/8 dev lo                        # host scope, on loopback
ip addr add 10.200.0.1/24 dev v0 scope link           # link scope
ip addr add fe80::1234/64 dev v0                      # link-local
ip route add 10.201.0.0/24 dev v0                     # not a default route
ip route add default dev v0 table 100                 # a default route, but not in main
noise_end=$(_fx_now_us)
# The debounce is 0.5 s: the last sample, 0.3 s before the retry, must be well after it.
fx_check "the noise is over at least 1.2 s before the retry time ($(((neg_next - noise_end) / 1000)) ms)" \
        eval '(( noise_end + 1200000 <= neg_next ))'
stayed=1
while (($(_fx_now_us) < neg_next - 300000)); do
        read_status || { stayed=0; break; }
        if [[ $ST_STATE != backoff || $ST_NEXT != "$neg_next" ]]; then
                stayed=0
                break
        fi
        sleep 0.1
done
fx_check "without a network change the tunnel stays in backoff (attempt $neg_attempts) until its retry time" \
        eval '(( stayed == 1 ))'
wait_up 15 || fatal "the tunnel comes up on its own retry"
# The backoff timer was armed from the loop's time, a little before the reported time was
# read: a few ms early is still "at its retry time".
fx_check "it comes up at its retry time, not before ($(((UP_SINCE - neg_next) / 1000)) ms after it)" \
        eval '(( UP_SINCE >= neg_next - 250000 ))'
neg_log=$(log_after "$mark")
fx_check "ignored events are not reported as changes" \
        eval '[[ $neg_log != *"Network changed"* && $neg_log != *"network changed"* && $neg_log != *" is up."* && $neg_log != *"New address"* && $neg_log != *"New default route"* ]]'
fx_check "curl through the SOCKS port after the plain retry" socks_fetch_ok

# ---- a real change retries at once ----
# round NAME MIN_USEC BIT TRIGGER...: sshd goes away, the tunnel backs off until at least
# MIN_USEC are left before its retry, sshd returns (the tunnel cannot know), TRIGGER runs.
round() {
        local name=$1 min=$2 bit=$3 next attempts early_ms changes line_retry line_up
        shift 3
        fx_sshd_kill_all
        if ! wait_backoff "$min"; then
                fx_fail "$name: the tunnel backs off for at least $((min / 1000)) ms"
                return 0
        fi
        next=$BK_NEXT
        attempts=$BK_ATTEMPTS
        fx_sshd_restart
        if ! read_status || [[ $ST_STATE != backoff || $ST_NEXT != "$next" ]]; then
                fx_fail "$name: still in the same backoff once sshd is back" "$ST_STATE $ST_NEXT (wanted backoff $next)"
                return 0
        fi
        mark=$(log_lines)
        "$@"
        if ! wait_up 15; then
                fx_fail "$name: the tunnel comes up" "$(log_after "$mark")"
                return 0
        fi
        early_ms=$(((next - UP_SINCE) / 1000))
        fx_check "$name: the tunnel is up $early_ms ms before its retry time (attempt $attempts)" \
                eval '(( UP_SINCE + 2000000 <= next ))'
        # The debug line of netwatch: "Network changed (0x4), retrying tunnels in backoff."
        changes=$(log_after "$mark" | sed -n 's/^Network changed (\(0x[0-9a-f]*\)).*/\1/p' | head -n 1 || true)
        fx_check "$name: netwatch reports the change (${changes:-none}, wanted bit $bit)" \
                eval '[[ -n $changes ]] && (( changes & bit ))'
        line_retry=$(log_after "$mark" | grep -n -m1 -F "Tunnel work: network changed, retrying now" | cut -d: -f1 || true)
        line_up=$(log_after "$mark" | grep -n -m1 -F "Tunnel work: up" | cut -d: -f1 || true)
        fx_check "$name: the tunnel logs 'network changed, retrying now' before it is up" \
                eval '[[ -n $line_retry && -n $line_up ]] && (( line_retry < line_up ))'
        fx_check "$name: curl through the SOCKS port" socks_fetch_ok
}

# Attempt 4 waits 8 s (+-10 %): seconds to spare even on a loaded machine.
round "link gains carrier" 6000000 0x4 ip link set v1 up
round "new global address" 6000000 0x2 ip addr add 10.200.1.1/24 dev v0
round "new default route" 6000000 0x1 ip route add default via 10.200.1.2 dev v0

# ---- clean stop ----
"${CTL[@]}" down work >/dev/null
kill -TERM "$DAEMON_PID"
stop_rc=0
wait "$DAEMON_PID" || stop_rc=$?
fx_check "SIGTERM stops the daemon with status 0 (got $stop_rc)" eval '[[ $stop_rc == 0 ]]'
if ((FX_FAILED > 0)); then
        echo "---- daemon log (last 40 lines) ----"
        tail -n 40 "$DAEMON_LOG"
fi
fx_summary
