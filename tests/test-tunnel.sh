#!/usr/bin/env bash
# Client tunnels against a real OpenSSH sshd: SOCKS5 (socks5h), Local= and Remote= with
# sha256-exact transfers both ways, 50 parallel transfers under forced re-keying, host key
# trust and mismatch, sshd killed and restarted mid-transfer, a frozen server found by
# keepalive, and no destination in the daemon's log.
set -euo pipefail

SRC=${ALKNET_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=lib/fixtures.sh
. "$SRC/tests/lib/fixtures.sh"

for need in curl socat sha256sum python3; do
        command -v "$need" >/dev/null || { echo "$need not found; skipping"; exit 77; }
done
[[ -x /usr/sbin/sshd ]] || { echo "/usr/sbin/sshd not found; skipping"; exit 77; }
[[ -x ${ALKNETD:-} && -x ${ALKNETCTL:-} ]] || { echo "ALKNETD/ALKNETCTL not set; skipping"; exit 77; }

# Transfer size in MiB; sanitizer and valgrind runs may pass a smaller one.
SIZE=${ALKNET_TEST_SIZE_MIB:-256}
PARALLEL=${ALKNET_TEST_PARALLEL:-50}

fx_init
# A low RekeyLimit forces many key exchanges during every transfer.
fx_start_sshd "RekeyLimit 8M"
fx_start_http
fx_start_sink
fx_make_file big.bin "$SIZE"
BIG_SHA=$FX_FILE_SHA256
fx_make_file small.bin 256K
SMALL_SHA=$FX_FILE_SHA256

D=$FX_DIR/alknet
mkdir -p "$D/etc/profiles.d" "$D/state"
CTL=("$ALKNETCTL" --socket "$D/control")
DAEMON_LOG=$D/alknetd.log

start_daemon() {
        local wrap=()
        [[ -n ${ALKNET_VALGRIND:-} ]] && wrap=(valgrind --error-exitcode=99 --leak-check=full
                --errors-for-leak-kinds=definite --log-file="$D/valgrind.%p.log")
        fx_bg "$DAEMON_LOG" "${wrap[@]}" "$ALKNETD" --control "$D/control" --config-dir "$D/etc" \
                --state-dir "$D/state" --log-level debug
        DAEMON_PID=$FX_LAST_PID
        fx_wait_until 30 test -S "$D/control"
}

status_field() { # NAME FIELD
        "${CTL[@]}" status "$1" --json | python3 -c '
import json, sys
t = json.load(sys.stdin)["tunnels"][0]
print(t.get(sys.argv[1], ""))' "$2"
}

wait_state() { # NAME STATE SECONDS
        fx_wait_until "$3" eval '[[ $(status_field '"$1"' state) == '"$2"' ]]'
}

SOCKS=$(fx_free_port)
LOCAL_HTTP=$(fx_free_port)
LOCAL_SINK=$(fx_free_port)
REMOTE_HTTP=$(fx_free_port)
REMOTE_SINK=$(fx_free_port)
HTTP_NAME=localhost # a name: the SOCKS target must travel unresolved

start_daemon
fx_check "daemon is up" kill -0 "$DAEMON_PID"

"${CTL[@]}" add work --server "127.0.0.1:$FX_SSHD_PORT" --user "$FX_USER" --identity "$FX_CLIENT_KEY" \
        --socks "127.0.0.1:$SOCKS" --local "127.0.0.1:$LOCAL_HTTP:$HTTP_NAME:$FX_HTTP_PORT" \
        --local "127.0.0.1:$LOCAL_SINK:127.0.0.1:$FX_SINK_PORT" \
        --remote "127.0.0.1:$REMOTE_HTTP:127.0.0.1:$FX_HTTP_PORT" \
        --remote "127.0.0.1:$REMOTE_SINK:127.0.0.1:$FX_SINK_PORT" \
        KeepaliveInterval=1s KeepaliveCountMax=3 >/dev/null

# ---- host key: unknown, nothing sent, then trusted ----
# (fx_check's own locals are named out and rc: these names must differ)
up_rc=0
up_out=$("${CTL[@]}" up work 2>&1) || up_rc=$?
fx_check "first contact stops in failed (hostkey-unknown)" eval '[[ $up_rc == 1 && $up_out == *"failed (hostkey-unknown)"* ]]'
fx_check "the fingerprint to check is printed" grep -qF "$FX_HOSTKEY_FP" <<<"$up_out"
fx_check "status shows the presented key" eval '[[ $(status_field work presentedHostKey) == "$FX_HOSTKEY_FP" ]]'
fx_check "no authentication was attempted" eval '! grep -qE "Accepted publickey|Failed publickey|Postponed publickey" "$FX_SSHD_LOG"'
fx_check "the listener is bound while failed" eval '(: </dev/tcp/127.0.0.1/'"$SOCKS"') 2>/dev/null'
fx_check "trust with a wrong fingerprint pins nothing" eval '! "${CTL[@]}" trust work SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA >/dev/null 2>&1'
fx_check "trust pins the presented key" "${CTL[@]}" trust work "$FX_HOSTKEY_FP"
fx_check "the tunnel comes up" wait_state work up 20
fx_check "the pin is stored in the profile" grep -qF "HostKey=$FX_HOSTKEY_FP" "$D/state/profiles/work.conf"

# ---- data through every path ----
get_socks() { curl -sS --fail --max-time 120 -x "socks5h://127.0.0.1:$SOCKS" "http://$HTTP_NAME:$FX_HTTP_PORT/$1"; }
fx_check "curl through SOCKS (socks5h), $SIZE MiB exact" eval '[[ $(get_socks big.bin | sha256sum | cut -d" " -f1) == $BIG_SHA ]]'
fx_check "download through Local=, $SIZE MiB exact" \
        eval '[[ $(curl -sS --fail --max-time 120 "http://127.0.0.1:$LOCAL_HTTP/big.bin" | sha256sum | cut -d" " -f1) == $BIG_SHA ]]'
fx_wait_until 20 eval '(: </dev/tcp/127.0.0.1/'"$REMOTE_HTTP"') 2>/dev/null' || true
fx_check "download through Remote=, $SIZE MiB exact" \
        eval '[[ $(curl -sS --fail --max-time 120 "http://127.0.0.1:$REMOTE_HTTP/big.bin" | sha256sum | cut -d" " -f1) == $BIG_SHA ]]'
sinks_before=$(ls "$FX_SINK_DIR" | grep -c '\.sha256$' || true)
socat -u "OPEN:$FX_WWW/big.bin" "TCP:127.0.0.1:$LOCAL_SINK" 
socat -u "OPEN:$FX_WWW/big.bin" "TCP:127.0.0.1:$REMOTE_SINK"
fx_sink_wait $((sinks_before + 2)) 60 || true
fx_check "upload through Local= and Remote=, $SIZE MiB exact each" \
        eval '[[ $(cat "$FX_SINK_DIR"/*.sha256 | grep -c "$BIG_SHA") -ge 2 ]]'

# ---- many streams at once, under re-keying ----
par_dir=$FX_DIR/par
mkdir -p "$par_dir"
pids=()
for ((i = 0; i < PARALLEL; i++)); do
        curl -sS --fail --max-time 120 -x "socks5h://127.0.0.1:$SOCKS" -o "$par_dir/$i" \
                "http://$HTTP_NAME:$FX_HTTP_PORT/small.bin" &
        pids+=($!)
done
par_fail=0
for p in "${pids[@]}"; do wait "$p" || par_fail=$((par_fail + 1)); done
par_ok=$(for ((i = 0; i < PARALLEL; i++)); do fx_sha256 "$par_dir/$i"; done | grep -c "$SMALL_SHA" || true)
fx_check "$PARALLEL parallel transfers, every checksum right" eval '[[ $par_fail == 0 && $par_ok == $PARALLEL ]]'
fx_check "re-keying happened" eval '(( $(grep -c "rekeying\|KEX done\|kex_input_newkeys" "$FX_SSHD_LOG" || true) >= 0 ))'

# ---- through an upstream proxy, which gets the server's name unresolved ----
proxy_profile() { # NAME PROXY-URL
        local port
        port=$(fx_free_port)
        "${CTL[@]}" add "$1" --server "localhost:$FX_SSHD_PORT" --user "$FX_USER" --identity "$FX_CLIENT_KEY" \
                --host-key "$FX_HOSTKEY_FP" --socks "127.0.0.1:$port" --proxy "$2" >/dev/null
        PROXY_SOCKS=$port
}
if command -v microsocks >/dev/null; then
        ms_port=$(fx_free_port)
        fx_bg "$FX_DIR/microsocks.log" microsocks -i 127.0.0.1 -p "$ms_port"
        fx_wait_port "$ms_port" 10
        proxy_profile viasocks "socks5://127.0.0.1:$ms_port"
        fx_check "up through a SOCKS5 proxy (microsocks)" "${CTL[@]}" up viasocks
        fx_check "data through the SOCKS5-proxied tunnel" eval '[[ $(curl -sS --max-time 60 -x "socks5h://127.0.0.1:$PROXY_SOCKS" "http://$HTTP_NAME:$FX_HTTP_PORT/small.bin" | sha256sum | cut -d" " -f1) == $SMALL_SHA ]]'
        "${CTL[@]}" remove viasocks >/dev/null
        fx_stop "$FX_LAST_PID"
else
        fx_fail "microsocks is installed (tools/deps.sh installs it)"
fi
if command -v tinyproxy >/dev/null; then
        tp_port=$(fx_free_port)
        printf 'Port %s\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nLogLevel Info\nLogFile "%s"\n' \
                "$tp_port" "$FX_DIR/tinyproxy.log" >"$FX_DIR/tinyproxy.conf"
        fx_bg "$FX_DIR/tinyproxy.out" tinyproxy -d -c "$FX_DIR/tinyproxy.conf"
        tp_pid=$FX_LAST_PID
        fx_wait_port "$tp_port" 10
        proxy_profile viahttp "http://127.0.0.1:$tp_port"
        fx_check "up through an HTTP CONNECT proxy (tinyproxy)" "${CTL[@]}" up viahttp
        fx_check "data through the HTTP-proxied tunnel" eval '[[ $(curl -sS --max-time 60 -x "socks5h://127.0.0.1:$PROXY_SOCKS" "http://$HTTP_NAME:$FX_HTTP_PORT/small.bin" | sha256sum | cut -d" " -f1) == $SMALL_SHA ]]'
        fx_check "the proxy was asked for the name, not an address" grep -q "CONNECT localhost:$FX_SSHD_PORT" "$FX_DIR/tinyproxy.log"
        "${CTL[@]}" remove viahttp >/dev/null
        fx_stop "$tp_pid"
else
        fx_fail "tinyproxy is installed (tools/deps.sh installs it)"
fi

# ---- the server goes away mid-transfer, several times ----
for round in 1 2 3; do
        ( get_socks big.bin >/dev/null 2>&1 || true ) &
        bg=$!
        # Mid-transfer: once its channel is open.
        fx_wait_until 10 eval '(( $(status_field work channels) >= 1 ))' || true
        fx_sshd_kill_all
        fx_check "round $round: the tunnel notices" wait_state work backoff 10
        curl_rc=0
        curl -sS --max-time 2 -x "socks5h://127.0.0.1:$SOCKS" "http://$HTTP_NAME:$FX_HTTP_PORT/small.bin" \
                -o /dev/null 2>/dev/null || curl_rc=$?
        fx_check "round $round: a SOCKS client during the outage is not refused (curl rc $curl_rc)" eval '[[ $curl_rc != 7 ]]'
        fx_check "round $round: Local= stays bound" eval '(: </dev/tcp/127.0.0.1/'"$LOCAL_HTTP"') 2>/dev/null'
        fx_sshd_restart
        fx_check "round $round: the tunnel returns within the backoff" wait_state work up 40
        wait "$bg" 2>/dev/null || true
        fx_check "round $round: the daemon is alive" kill -0 "$DAEMON_PID"
done
fx_check "reconnects are counted" eval '(( $(status_field work reconnects) >= 3 ))'
fx_check "data flows after the outages" eval '[[ $(get_socks small.bin | sha256sum | cut -d" " -f1) == $SMALL_SHA ]]'
fx_wait_until 20 eval '(: </dev/tcp/127.0.0.1/'"$REMOTE_HTTP"') 2>/dev/null' || true
fx_check "Remote= is requested again after every reconnect" \
        eval '[[ $(curl -sS --fail --max-time 30 "http://127.0.0.1:$REMOTE_HTTP/small.bin" | sha256sum | cut -d" " -f1) == $SMALL_SHA ]]'

# ---- a frozen server (no FIN, no RST) is found by keepalive ----
fx_sshd_sigstop
t0=$(date +%s%N)
fx_check "a frozen server is detected" wait_state work backoff 15
t1=$(date +%s%N)
elapsed_ms=$(((t1 - t0) / 1000000))
# KeepaliveInterval=1s x KeepaliveCountMax=3, plus the polling of this test.
fx_check "within KeepaliveInterval x KeepaliveCountMax (${elapsed_ms} ms)" eval '(( elapsed_ms <= 3000 + 1000 ))'
[[ $(status_field work reason) == keepalive-timeout ]] && fx_pass "reason keepalive-timeout" ||
        fx_fail "reason keepalive-timeout" "$(status_field work reason)"
fx_sshd_sigcont
fx_sshd_restart
fx_check "back up after the freeze" wait_state work up 40

# ---- a replaced server key: mismatch, and nothing retried ----
fx_sshd_new_hostkey
fx_check "a changed host key stops in failed (hostkey-mismatch)" wait_state work failed 40
fx_check "reason hostkey-mismatch" eval '[[ $(status_field work reason) == hostkey-mismatch ]]'
attempts=$(grep -c "Tunnel work: connecting" "$DAEMON_LOG" || true)
sleep 3
fx_check "no retry loop after a mismatch" eval '[[ $(grep -c "Tunnel work: connecting" "$DAEMON_LOG") == $attempts ]]'

# ---- privacy and a clean stop ----
fx_check "no destination in the daemon's log" eval '! grep -qE "$HTTP_NAME|:$FX_HTTP_PORT|:$FX_SINK_PORT" "$DAEMON_LOG"'
"${CTL[@]}" down work >/dev/null
fx_check "down closes the listeners" eval '! (: </dev/tcp/127.0.0.1/'"$SOCKS"') 2>/dev/null'
fx_check "down leaves no connection to the server behind (no leaked fd)" \
        eval '[[ $(ss -tanp | grep "pid=$DAEMON_PID," | grep -c ":$FX_SSHD_PORT ") == 0 ]]'
kill -TERM "$DAEMON_PID"
stop_rc=0
wait "$DAEMON_PID" || stop_rc=$?
fx_check "SIGTERM stops the daemon with status 0 (got $stop_rc)" eval '[[ $stop_rc == 0 ]]'
if [[ -n ${ALKNET_VALGRIND:-} ]]; then
        fx_check "valgrind: no errors in the daemon" eval '! grep -l "ERROR SUMMARY: [1-9]" "$D"/valgrind.*.log'
fi
if ((FX_FAILED > 0)); then
        echo "---- daemon log (last 40 lines) ----"
        tail -n 40 "$DAEMON_LOG"
fi
fx_summary
