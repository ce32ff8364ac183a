#!/usr/bin/env bash
# Self-test of tests/lib/fixtures.sh with OpenSSH only: the fixture sshd, HTTP server, sink
# and echo carry real traffic through ssh -D/-L/-R/-W, and kill/stop/new-host-key reach the client.
set -euo pipefail

SRC=${ALKNET_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=SCRIPTDIR/lib/fixtures.sh
. "$SRC/tests/lib/fixtures.sh"

for need in curl socat sha256sum; do
        command -v "$need" >/dev/null || { echo "$need not found; skipping"; exit 77; }
done
[[ -x /usr/sbin/sshd ]] || { echo "/usr/sbin/sshd not found; skipping"; exit 77; }

fx_init
fx_start_sshd
fx_start_http
fx_start_sink
fx_start_echo
fx_make_file big.bin 64
BIG_SHA=$FX_FILE_SHA256
fx_make_file small.bin 16K

SOCKS=$(fx_free_port)
LOCAL_SINK=$(fx_free_port)
LOCAL_ECHO=$(fx_free_port)
REMOTE_HTTP=$(fx_free_port)
SEEN_PIDS=()

# gone PID: the process has exited (an unreaped zombie counts as exited).
gone() { ! _fx_alive "$1"; }

# reap PID: $RC is its exit status once it has exited, else empty (never blocks).
reap() {
        RC=
        gone "$1" || return 0
        RC=0
        wait "$1" 2>/dev/null || RC=$?
}

# socks_get PORT PATH OUT: downloads $FX_HTTP_URL/PATH through the SOCKS5 proxy at PORT.
socks_get() {
        curl -sS --fail --max-time 20 -x "socks5h://127.0.0.1:$1" -o "$3" "$FX_HTTP_URL/$2"
}

same_sha() { [[ $(fx_sha256 "$1") == "$2" ]]; }

# start_client LOG SSH-ARGS...: ssh -N against the fixture sshd; $CLIENT is its PID.
start_client() {
        local log=$1
        shift
        fx_bg "$log" ssh "${FX_SSH_OPTS[@]}" -N "$@" 127.0.0.1
        CLIENT=$FX_LAST_PID
        SEEN_PIDS+=("$CLIENT")
}

# ---- the fixtures themselves ----

fx_check "host key fingerprint is OpenSSH SHA256 form" \
        grep -qE '^SHA256:[A-Za-z0-9+/]{43}$' <<<"$FX_HOSTKEY_FP"
fx_check "sshd listens on 127.0.0.1 only" \
        eval '[[ $(ss -Htln "( sport = :$FX_SSHD_PORT )" | awk "{print \$4}") == "127.0.0.1:$FX_SSHD_PORT" ]]'
fx_check "temp dir readable by unprivileged workers" \
        eval '[[ $(stat -c %a "$FX_DIR") == 755 ]]'
fx_check "HTTP ($FX_HTTP_KIND) serves the file directly" \
        eval 'curl -sS --fail -o "$FX_DIR/direct.bin" "$FX_HTTP_URL/big.bin" && same_sha "$FX_DIR/direct.bin" "$BIG_SHA"'

# ---- ssh -D, -L and -R through the fixture sshd ----

start_client "$FX_DIR/client1.log" -D "127.0.0.1:$SOCKS" \
        -L "127.0.0.1:$LOCAL_SINK:127.0.0.1:$FX_SINK_PORT" \
        -L "127.0.0.1:$LOCAL_ECHO:127.0.0.1:$FX_ECHO_PORT" \
        -R "127.0.0.1:$REMOTE_HTTP:127.0.0.1:$FX_HTTP_PORT"
fx_check "ssh -D listens" fx_wait_port "$SOCKS" 10
fx_check "sshd logged the public key login" grep -q "Accepted publickey for $FX_USER from 127.0.0.1" "$FX_SSHD_LOG"
fx_check "64 MiB through ssh -D: sha256 identical" \
        eval 'socks_get "$SOCKS" big.bin "$FX_DIR/socks.bin" && same_sha "$FX_DIR/socks.bin" "$BIG_SHA"'
if [[ $FX_HTTP_PUT == 1 ]]; then
        fx_check "64 MiB PUT upload through ssh -D: sha256 identical" \
                eval 'curl -sS --fail --max-time 20 -x "socks5h://127.0.0.1:$SOCKS" -T "$FX_WWW/big.bin" \
                        "$FX_HTTP_URL/upload/up.bin" && same_sha "$FX_UPLOAD/up.bin" "$BIG_SHA"'
fi
fx_check "-R port bound by sshd" fx_wait_port "$REMOTE_HTTP" 10
fx_check "64 MiB through ssh -R: sha256 identical" \
        eval 'curl -sS --fail --max-time 20 -o "$FX_DIR/remote.bin" "http://127.0.0.1:$REMOTE_HTTP/big.bin" &&
                same_sha "$FX_DIR/remote.bin" "$BIG_SHA"'
fx_check "64 MiB upload through ssh -L into the sink" \
        eval 'fx_wait_port "$LOCAL_SINK" 5 && socat -u "OPEN:$FX_WWW/big.bin" "TCP:127.0.0.1:$LOCAL_SINK" &&
                fx_sink_wait 1 20 && [[ $(cat "$FX_SINK_DIR"/*.sha256) == "$BIG_SHA" ]]'
fx_check "echo through ssh -L" \
        eval '[[ $(printf "ping\n" | socat -t 2 - "TCP:127.0.0.1:$LOCAL_ECHO") == ping ]]'

mapfile -t sessions < <(fx_sshd_session_pids)
SEEN_PIDS+=("${sessions[@]}")
fx_check "sshd session processes are found (${#sessions[@]})" eval '((${#sessions[@]} >= 1))'

# ---- kill everything sshd: the client must notice ----

fx_sshd_kill_all
fx_check "sshd session processes are gone after fx_sshd_kill_all" \
        eval 'for p in "${sessions[@]}"; do gone "$p" || exit 1; done'
fx_check "ssh client notices the killed server within 5 s" fx_wait_until 5 gone "$CLIENT"
reap "$CLIENT"
fx_check "ssh client exit status 255" eval '[[ $RC == 255 ]]'
fx_stop "$CLIENT"
fx_check "sshd port closed" eval '! _fx_listening "$FX_SSHD_PORT"'

# ---- restart: same port, same host key ----

fp=$FX_HOSTKEY_FP
fx_sshd_restart
fx_check "restart keeps the port and the host key" eval '[[ $FX_HOSTKEY_FP == "$fp" ]] && _fx_listening "$FX_SSHD_PORT"'
SEEN_PIDS+=("$FX_SSHD_PID")
start_client "$FX_DIR/client2.log" -o ServerAliveInterval=1 -o ServerAliveCountMax=2 -D "127.0.0.1:$SOCKS"
fx_check "ssh -D works again after the restart" \
        eval 'fx_wait_port "$SOCKS" 10 && socks_get "$SOCKS" small.bin "$FX_DIR/small.bin" &&
                same_sha "$FX_DIR/small.bin" "$FX_FILE_SHA256"'

# ---- a path that drops everything without FIN: SIGSTOP ----

fx_sshd_sigstop
fx_check "keepalives detect a stopped sshd within 6 s" fx_wait_until 6 gone "$CLIENT"
fx_check "ssh says the server stopped answering" grep -q "not responding" "$FX_DIR/client2.log"
fx_stop "$CLIENT"
fx_sshd_sigcont
fx_check "sshd answers again after SIGCONT" \
        eval '[[ $(printf "pong\n" | timeout 10 ssh "${FX_SSH_OPTS[@]}" -W "127.0.0.1:$FX_ECHO_PORT" 127.0.0.1) == pong ]]'

# ---- new host key: strict checking refuses, the updated known_hosts works ----

cp "$FX_KNOWN_HOSTS" "$FX_DIR/known_hosts.old"
fx_sshd_new_hostkey
SEEN_PIDS+=("$FX_SSHD_PID")
fx_check "new host key has a new fingerprint" \
        eval '[[ $FX_HOSTKEY_FP != "$fp" && $FX_HOSTKEY_FP_OLD == "$fp" ]]'
fx_check "old known_hosts is refused" \
        eval '! timeout 10 ssh -o UserKnownHostsFile="$FX_DIR/known_hosts.old" "${FX_SSH_OPTS[@]}" \
                -W "127.0.0.1:$FX_ECHO_PORT" 127.0.0.1 </dev/null 2>"$FX_DIR/mismatch.log" &&
                grep -q "REMOTE HOST IDENTIFICATION HAS CHANGED" "$FX_DIR/mismatch.log"'
fx_check "new known_hosts is accepted" \
        eval '[[ $(printf "hi\n" | timeout 10 ssh "${FX_SSH_OPTS[@]}" -W "127.0.0.1:$FX_ECHO_PORT" 127.0.0.1) == hi ]]'

# ---- everything stops by PID ----

SEEN_PIDS+=("${FX_PIDS[@]}")
for p in "${FX_PIDS[@]}"; do
        mapfile -t -O "${#SEEN_PIDS[@]}" SEEN_PIDS < <(_fx_descendants "$p")
done
fx_stop_all
fx_check "every started process is gone (${#SEEN_PIDS[@]} PIDs)" \
        eval 'for p in "${SEEN_PIDS[@]}"; do gone "$p" || { echo "$p alive"; exit 1; }; done'
fx_check "no test port listens any more" \
        eval 'for p in $(cat "$FX_DIR/ports"); do ! _fx_listening "$p" || { echo "$p"; exit 1; }; done'

fx_summary
