#!/usr/bin/env bash
# The server role against the stock OpenSSH client: ssh -D, -L, -W and -R with sha256-exact
# transfers under forced re-keying, a remote forward taken over after its client vanished,
# keys and certificates accepted and refused, refused requests and destinations (a denied
# address in every spelling the resolver takes, a name resolving to one), the
# per-source and login-grace limits, the fail2ban filter on the real log, ServerStatus
# through alknetctl, OutboundProxy= through real microsocks and tinyproxy (the name passed
# unresolved, the policy first, a proxy that is down), no destination in the log, and a
# clean stop.
set -euo pipefail

SRC=${ALKNET_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=lib/fixtures.sh
. "$SRC/tests/lib/fixtures.sh"

for need in curl socat sha256sum python3 sftp timeout; do
        command -v "$need" >/dev/null || { echo "$need not found; skipping"; exit 77; }
done
[[ -x ${ALKNETD:-} && -x ${ALKNETCTL:-} ]] || { echo "ALKNETD/ALKNETCTL not set; skipping"; exit 77; }

# Transfer size in MiB; sanitizer and valgrind runs may pass a smaller one.
SIZE=${ALKNET_TEST_SIZE_MIB:-256}
# Checks never pipe into "grep -q": it stops reading at the first match, the writer dies of
# SIGPIPE, and with pipefail a passing check fails (seen under ASan).
# Bulk data from the client to the server (ssh -L upload, ssh -R download) runs at $SIZE
# MiB; ALKNET_TEST_SERVER_BULK_UP=0 falls back to the 256 KiB file.
BULK_UP=${ALKNET_TEST_SERVER_BULK_UP:-1}

fx_init
fx_start_http
fx_start_sink
fx_start_echo # the policy-denied destination: something does listen there
fx_make_file big.bin "$SIZE"
BIG_SHA=$FX_FILE_SHA256
fx_make_file small.bin 256K
SMALL_SHA=$FX_FILE_SHA256

D=$FX_DIR/server
K=$D/keys
mkdir -p "$D/etc" "$D/state" "$K"
CTL=("$ALKNETCTL" --socket "$D/control")
LOG=$D/alknetd.log
PORT=$(fx_free_port)
LOGIN=alknet

# ---- keys, certificates, authorized_keys ----
for k in ok unknown from restrict permitopen command other t1 t2 t3 \
        cert_valid cert_expired cert_principal cert_otherca cert_force ca ca2; do
        ssh-keygen -q -t ed25519 -N '' -C "test-$k" -f "$K/$k"
done
fp() { ssh-keygen -lf "$K/$1.pub" | awk '{print $2}'; }
sign() { # KEY CA ssh-keygen-options...
        local key=$1 ca=$2
        shift 2
        ssh-keygen -q -s "$K/$ca" -I "id-$key" "$@" "$K/$key.pub"
}
sign cert_valid ca -n "$LOGIN" -V -5m:+1h
sign cert_expired ca -n "$LOGIN" -V 20200101:20200102
sign cert_principal ca -n someone-else -V -5m:+1h
sign cert_otherca ca2 -n "$LOGIN" -V -5m:+1h
sign cert_force ca -n "$LOGIN" -V -5m:+1h -O force-command=x
{
        cat "$K/ok.pub" "$K/other.pub"
        printf 'from="10.0.0.0/8" %s\n' "$(cat "$K/from.pub")"
        printf 'restrict %s\n' "$(cat "$K/restrict.pub")"
        printf 'permitopen="localhost:%s" %s\n' "$FX_HTTP_PORT" "$(cat "$K/permitopen.pub")"
        printf 'command="x" %s\n' "$(cat "$K/command.pub")"
} >"$D/authorized_keys"
cp "$K/ca.pub" "$D/user_ca.pub"

write_config() { # extra [Server] lines
        {
                printf '[Server]\nListen=tcp:127.0.0.1:%s\n' "$PORT"
                printf 'AuthorizedKeys=%s\nTrustedUserCAKeys=%s\n' "$D/authorized_keys" "$D/user_ca.pub"
                printf 'MaxAuthTries=2\nDenyOpen=127.0.0.1:%s\nDenyOpen=[::1]:%s\n' "$FX_ECHO_PORT" "$FX_ECHO_PORT"
                printf '%s\n' "$@"
        } >"$D/etc/alknetd.conf"
}
write_config

wrap=()
[[ -n ${ALKNET_VALGRIND:-} ]] && wrap=(valgrind --error-exitcode=99 --leak-check=full
        --errors-for-leak-kinds=definite --log-file="$D/valgrind.%p.log")
fx_bg "$LOG" "${wrap[@]}" "$ALKNETD" --control "$D/control" --config-dir "$D/etc" --state-dir "$D/state" \
        --log-level debug
DAEMON_PID=$FX_LAST_PID
fx_wait_until 30 test -S "$D/control"
fx_wait_port "$PORT" 30
fx_check "daemon is up with the server role listening" kill -0 "$DAEMON_PID"
fx_check "the host key was generated in the state directory" test -s "$D/state/ssh_host_ed25519_key"

# The client trusts exactly the daemon's generated host key.
KH=$D/known_hosts
printf '[127.0.0.1]:%s %s\n' "$PORT" "$(ssh-keygen -y -f "$D/state/ssh_host_ed25519_key")" >"$KH"

SSH_BASE=(-F /dev/null -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes
        -o UserKnownHostsFile="$KH" -o GlobalKnownHostsFile=/dev/null -o ExitOnForwardFailure=yes
        -o RekeyLimit=8M -o ConnectTimeout=10 -p "$PORT" -l "$LOGIN")
# ssh_as KEY ARGS...: a foreground client with one identity (and its certificate, if any).
ssh_as() {
        local k=$1
        shift
        timeout 60 ssh "${SSH_BASE[@]}" -i "$K/$k" "$@"
}

sha_of() { sha256sum | cut -d' ' -f1; }
# The sha256 of an HTTP response's body (stdin).
body_sha() {
        python3 -c 'import hashlib, sys
head, _, body = sys.stdin.buffer.read().partition(b"\r\n\r\n")
print(hashlib.sha256(body).hexdigest() if head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200") else "status: " + head[:40].decode(errors="replace"))'
}
GET_SMALL=$'GET /small.bin HTTP/1.0\r\nHost: x\r\n\r\n'
# ssh -W to the HTTP fixture with a GET of small.bin: the body's sha256.
w_get() { # KEY HOST
        printf '%s' "$GET_SMALL" | ssh_as "$1" -W "$2:$FX_HTTP_PORT" 127.0.0.1 | body_sha
}

count() { grep -cE "$1" "$LOG" || true; }
log_has() { grep -qF -- "$1" "$LOG"; }
auth_line() { # KEY RESULT
        printf 'auth attempt remote_addr=127.0.0.1 user=%s key_fingerprint=%s result=%s' "$LOGIN" "$(fp "$1")" "$2"
}
server_json() { "${CTL[@]}" server --json; }
json_field() { # FIELD
        server_json | python3 -c 'import json, sys; print(json.load(sys.stdin)["server"][sys.argv[1]])' "$1"
}
n_sessions() {
        server_json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["server"]["sessions"]))'
}

ACCEPTS=0 # authentications the test made succeed: each is exactly one accept line

# ---- ssh -N -D: SOCKS through the server, under forced re-keying ----
SOCKS=$(fx_free_port)
fx_bg "$D/ssh-D.log" ssh "${SSH_BASE[@]}" -v -i "$K/ok" -N -D "127.0.0.1:$SOCKS" 127.0.0.1
SSH_D_PID=$FX_LAST_PID
ACCEPTS=$((ACCEPTS + 1))
fx_wait_port "$SOCKS" 20 || true
fx_check "ssh -D: curl through SOCKS (socks5h), $SIZE MiB exact" eval '[[ $(curl -sS --fail --max-time 120 \
        -x "socks5h://127.0.0.1:$SOCKS" "http://localhost:$FX_HTTP_PORT/big.bin" | sha_of) == $BIG_SHA ]]'
if ((SIZE >= 16)); then
        kex=$(grep -c "SSH2_MSG_KEXINIT sent" "$D/ssh-D.log" || true)
        fx_check "the client re-keyed during the transfer ($kex key exchanges)" eval '((kex >= 2))'
fi
fx_check "the authorized key was accepted, with the log line" log_has "$(auth_line ok accept)"
session_listed() { # KEY: a row REMOTE TRANSPORT USER KEY CHANNELS DURATION
        "${CTL[@]}" server | awk -v u="$LOGIN" -v k="$(fp "$1")" \
                '$1 == "127.0.0.1" && $2 == "tcp" && $3 == u && $4 == k && $5 ~ /^[0-9]+$/ { f = 1 } END { exit !f }'
}
fx_check "alknetctl server lists the session" session_listed ok
fx_check "alknetctl server has the sessions table header" eval \
        '"${CTL[@]}" server | grep -E "^REMOTE +TRANSPORT +USER +KEY +CHANNELS +DURATION$"'

# ---- ssh -L: download and upload ----
LHTTP=$(fx_free_port)
LSINK=$(fx_free_port)
fx_bg "$D/ssh-L.log" ssh "${SSH_BASE[@]}" -i "$K/ok" -N -L "127.0.0.1:$LHTTP:localhost:$FX_HTTP_PORT" \
        -L "127.0.0.1:$LSINK:127.0.0.1:$FX_SINK_PORT" 127.0.0.1
SSH_L_PID=$FX_LAST_PID
ACCEPTS=$((ACCEPTS + 1))
fx_wait_port "$LHTTP" 20 || true
fx_check "ssh -L: download, $SIZE MiB exact" eval \
        '[[ $(curl -sS --fail --max-time 120 "http://127.0.0.1:$LHTTP/big.bin" | sha_of) == $BIG_SHA ]]'
if [[ $BULK_UP == 1 ]]; then
        UP_FILE=big.bin UP_SHA=$BIG_SHA UP_SIZE="$SIZE MiB"
else
        UP_FILE=small.bin UP_SHA=$SMALL_SHA UP_SIZE="256 KiB"
fi
socat -u "OPEN:$FX_WWW/$UP_FILE" "TCP:127.0.0.1:$LSINK" || true
fx_sink_wait 1 60 || true
fx_check "ssh -L: upload to a sink, $UP_SIZE exact" eval '[[ $(cat "$FX_SINK_DIR"/1.sha256) == $UP_SHA ]]'

# ---- ssh -W ----
fx_check "ssh -W: an HTTP request on stdin, the body exact" eval '[[ $(w_get ok 127.0.0.1) == $SMALL_SHA ]]'
ACCEPTS=$((ACCEPTS + 1))

# ---- ssh -R on a fixed port; the client vanishes; the same key takes the port over ----
RPORT=$(fx_free_port)
start_r() { # KEY LOG
        fx_bg "$2" ssh "${SSH_BASE[@]}" -i "$K/$1" -N -R "127.0.0.1:$RPORT:127.0.0.1:$FX_HTTP_PORT" 127.0.0.1
}
r_get_small() { [[ $(curl -sS --fail --max-time 20 "http://127.0.0.1:$RPORT/small.bin" | sha_of) == "$SMALL_SHA" ]]; }
start_r ok "$D/ssh-R1.log"
R1=$FX_LAST_PID
ACCEPTS=$((ACCEPTS + 1))
fx_wait_port "$RPORT" 20 || true
fx_check "ssh -R: download through the remote forward, $UP_SIZE exact" eval \
        '[[ $(curl -sS --fail --max-time 120 "http://127.0.0.1:$RPORT/$UP_FILE" | sha_of) == $UP_SHA ]]'

# SIGKILL: no SSH disconnect message; the kernel closes the socket.
# (disowned first: bash would print a "Killed" job notice)
disown "$R1"
kill -KILL "$R1"
fx_wait_until 5 eval '! kill -0 "$R1"' || true
start_r ok "$D/ssh-R2.log"
R2=$FX_LAST_PID
ACCEPTS=$((ACCEPTS + 1))
fx_check "after SIGKILL, the same key gets the port again at once" fx_wait_until 5 r_get_small
fx_check "the new client holds the forward (ExitOnForwardFailure did not end it)" kill -0 "$R2"

# Frozen: no FIN, no RST, the old session looks alive. The same key asks again.
taken=$(count 'remote forward taken over')
kill -STOP "$R2"
start_r ok "$D/ssh-R3.log"
R3=$FX_LAST_PID
ACCEPTS=$((ACCEPTS + 1))
fx_check "a frozen client's port is taken over by its key's new session (log line)" \
        fx_wait_until 10 eval '(( $(count "remote forward taken over remote_addr=127.0.0.1 port=$RPORT") > taken ))'
fx_check "the taken-over forward carries data at once" fx_wait_until 5 r_get_small
fx_check "the new client holds the forward" kill -0 "$R3"
other_rc=0
ssh_as other -N -R "127.0.0.1:$RPORT:127.0.0.1:$FX_HTTP_PORT" 127.0.0.1 >"$D/ssh-R-other.log" 2>&1 || other_rc=$?
ACCEPTS=$((ACCEPTS + 1))
fx_check "another key cannot take the port (ssh exits: $other_rc)" eval \
        '[[ $other_rc == 255 ]] && grep -q "remote port forwarding failed" "$D/ssh-R-other.log"'
disown "$R2"
kill -KILL "$R2"
kill -CONT "$R2" 2>/dev/null || true
fx_wait_until 5 eval '! kill -0 "$R2" 2>/dev/null' || true
fx_check "the forward survives the frozen client's end" r_get_small

# ---- authentication ----
auth_fails() { # KEY: the login is refused as such (not a channel refusal)
        local rc=0
        ssh_as "$1" -W "127.0.0.1:$FX_HTTP_PORT" 127.0.0.1 </dev/null >"$D/auth.out" 2>&1 || rc=$?
        [[ $rc == 255 ]] && grep -q "Permission denied (publickey)" "$D/auth.out"
}
fx_check "an unknown key is refused" auth_fails unknown
fx_check "... with the log line result=reject" log_has "$(auth_line unknown reject) reason=unknown-key"
fx_check "from=\"10.0.0.0/8\" refuses the key from 127.0.0.1" auth_fails from
fx_check "... with reason=from-mismatch" log_has "$(auth_line from reject) reason=from-mismatch"
fx_check "an unknown option (command=) refuses the key" auth_fails command
fx_check "... named in a warning when the file is read" grep -q 'option "command" is not supported; key refused' "$LOG"

restrict_rc=0
printf '%s' "$GET_SMALL" | ssh_as restrict -W "127.0.0.1:$FX_HTTP_PORT" 127.0.0.1 >"$D/restrict.out" 2>&1 ||
        restrict_rc=$?
ACCEPTS=$((ACCEPTS + 1))
fx_check "restrict: authenticated" log_has "$(auth_line restrict accept)"
fx_check "restrict: forwarding refused (-W fails: $restrict_rc)" eval \
        '[[ $restrict_rc == 255 ]] && grep -q "administratively prohibited" "$D/restrict.out"'

fx_check "permitopen=\"localhost:PORT\": that destination works" eval '[[ $(w_get permitopen localhost) == $SMALL_SHA ]]'
ACCEPTS=$((ACCEPTS + 1))
w_refused() { # KEY DESTINATION: authenticated, but the channel is refused
        local rc=0
        ssh_as "$1" -W "$2" 127.0.0.1 </dev/null >"$D/w.out" 2>&1 || rc=$?
        [[ $rc == 255 ]] && grep -q "administratively prohibited" "$D/w.out"
}
fx_check "permitopen: the same port by another name is refused" w_refused permitopen "127.0.0.1:$FX_HTTP_PORT"
ACCEPTS=$((ACCEPTS + 1))
fx_check "permitopen: another port is refused" w_refused permitopen "localhost:$FX_ECHO_PORT"
ACCEPTS=$((ACCEPTS + 1))

fx_check "a certificate from the trusted CA is accepted and forwards" eval '[[ $(w_get cert_valid 127.0.0.1) == $SMALL_SHA ]]'
ACCEPTS=$((ACCEPTS + 1))
fx_check "... logged with reason=certificate and its key id" \
        grep -qF "$(auth_line cert_valid accept) reason=certificate ca_fingerprint=$(fp ca) key_id=id-cert_valid" "$LOG"
fx_check "an expired certificate is refused" auth_fails cert_expired
fx_check "... reason=cert-expired" log_has "$(auth_line cert_expired reject) reason=cert-expired"
fx_check "a certificate for another principal is refused" auth_fails cert_principal
fx_check "... reason=cert-principal" log_has "$(auth_line cert_principal reject) reason=cert-principal"
fx_check "a certificate signed by another CA is refused" auth_fails cert_otherca
fx_check "... reason=cert-unknown-ca" log_has "$(auth_line cert_otherca reject) reason=cert-unknown-ca"
fx_check "a certificate with force-command is refused" auth_fails cert_force
fx_check "... reason=cert-critical-option" log_has "$(auth_line cert_force reject) reason=cert-critical-option"

cut_before=$(count 'connection refused remote_addr=127\.0\.0\.1 reason=max-auth-tries')
tries_rc=0
timeout 60 ssh "${SSH_BASE[@]}" -i "$K/t1" -i "$K/t2" -i "$K/t3" -W "127.0.0.1:$FX_HTTP_PORT" 127.0.0.1 \
        </dev/null >"$D/tries.out" 2>&1 || tries_rc=$?
fx_check "MaxAuthTries=2 with 3 keys offered: refused (ssh: $tries_rc)" eval '[[ $tries_rc == 255 ]]'
fx_check "... the connection is cut with reason=max-auth-tries" eval \
        '(( $(count "connection refused remote_addr=127\.0\.0\.1 reason=max-auth-tries") == cut_before + 1 ))'
fx_check "... after two keys: the third was never looked at" eval \
        'log_has "$(auth_line t2 reject)" && ! grep -qF "$(fp t3)" "$LOG"'

# ---- refused requests and destinations ----
refused_channel() { # ssh ARGS...: authenticated, then the request refused
        local rc=0
        ssh_as ok "$@" </dev/null >"$D/refused.out" 2>&1 || rc=$?
        [[ $rc == 255 ]] && grep -q "open failed: administratively prohibited" "$D/refused.out"
}
fx_check "a shell is refused" refused_channel -T 127.0.0.1
ACCEPTS=$((ACCEPTS + 1))
fx_check "exec is refused (ssh host true)" refused_channel 127.0.0.1 true
ACCEPTS=$((ACCEPTS + 1))
sftp_rc=0
timeout 60 sftp -F /dev/null -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
        -o UserKnownHostsFile="$KH" -o GlobalKnownHostsFile=/dev/null -i "$K/ok" -P "$PORT" \
        -b /dev/null "$LOGIN@127.0.0.1" >"$D/sftp.out" 2>&1 || sftp_rc=$?
ACCEPTS=$((ACCEPTS + 1))
fx_check "a subsystem is refused (sftp: $sftp_rc)" eval '[[ $sftp_rc != 0 ]]'
fx_check "-W alknet-control:1 is refused (reserved name)" w_refused ok alknet-control:1
ACCEPTS=$((ACCEPTS + 1))
fx_check "the denied destination is alive" eval '[[ $(printf ping | socat -t 2 - "TCP:127.0.0.1:$FX_ECHO_PORT") == ping ]]'
fx_check "DenyOpen=127.0.0.1:PORT refuses that destination" w_refused ok "127.0.0.1:$FX_ECHO_PORT"
ACCEPTS=$((ACCEPTS + 1))
# The dialer connects 127.0.0.1 however it is spelled (and 0.0.0.0 too: Linux takes it for
# 127.0.0.1), as the HTTP fixture shows; the policy reads each spelling as the address.
for dest in 127.1 0.0.0.0 '[::ffff:127.0.0.1]'; do
        fx_check "ssh -W $dest:HTTP-PORT reaches 127.0.0.1 (no policy on that port)" \
                eval '[[ $(w_get ok "$dest") == $SMALL_SHA ]]'
        ACCEPTS=$((ACCEPTS + 1))
done
for dest in 127.1 127.0.1 2130706433 0x7f000001 0177.0.0.1 0.0.0.0 0 '[::ffff:127.0.0.1]'; do
        fx_check "... and refuses it written $dest" w_refused ok "$dest:$FX_ECHO_PORT"
        ACCEPTS=$((ACCEPTS + 1))
done
# A name is checked by what it resolves to: localhost is ::1 and 127.0.0.1, both denied.
denied_lines() { count '^channel open refused remote_addr=127\.0\.0\.1 reason=denied-address$'; }
fx_check "... and refuses a name that resolves to it (localhost)" w_refused ok "localhost:$FX_ECHO_PORT"
ACCEPTS=$((ACCEPTS + 1))
fx_check "... after the lookup, with the log line reason=denied-address" \
        fx_wait_until 5 eval '(( $(denied_lines) == 1 ))'
fx_check "the daemon is alive after the refusals" kill -0 "$DAEMON_PID"

# ---- OutboundProxy= (reloaded): direct-tcpip through real SOCKS5 and HTTP CONNECT proxies ----
# microsocks prints each target as the request carried it: a name (ATYP domain) as the
# name, an address as the address. tinyproxy logs the CONNECT request line. The -D session
# above predates the reload: the proxy applies to its new channels too.
# microsocks and tinyproxy drop a connection whose client half-closes, and ssh -W sends
# EOF as soon as its input ends: held.py keeps ssh's input open until the reply has ended.
cat >"$D/held.py" <<'PY'
"""Runs ARGV with stdin's bytes as its input, which stays open until its output ends."""
import subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
p.stdin.write(sys.stdin.buffer.read())
p.stdin.flush()
sys.stdout.buffer.write(p.stdout.read())
p.stdin.close()
sys.exit(p.wait())
PY
proxy_w_get() { # HOST: ssh -W through the server with a GET of small.bin, body exact
        [[ $(printf '%s' "$GET_SMALL" | python3 "$D/held.py" timeout 60 ssh "${SSH_BASE[@]}" -i "$K/ok" \
                -W "$1:$FX_HTTP_PORT" 127.0.0.1 | body_sha) == "$SMALL_SHA" ]]
}
proxy_d_get() { # HOST: curl through the ssh -D session, the name passed on (socks5h), body exact
        [[ $(curl -sS --fail --max-time 30 --socks5-hostname "127.0.0.1:$SOCKS" \
                "http://$1:$FX_HTTP_PORT/small.bin" | sha_of) == "$SMALL_SHA" ]]
}
proxy_d_refused() { # DESTINATION: the SOCKS open through ssh -D fails (curl 97: proxy handshake)
        local rc=0
        curl -sS --max-time 30 --socks5-hostname "127.0.0.1:$SOCKS" "http://$1/" >/dev/null 2>"$D/curl-D.err" || rc=$?
        [[ $rc == 97 ]]
}
lines_with() { grep -cF -- "$1" "$2" 2>/dev/null || true; } # STRING FILE
proxy_log_lines() { count '^channel open failed remote_addr=127\.0\.0\.1 reason=proxy-failed'; }
# proxy_down_checks KIND FAILURES NAMES: with the proxy stopped, opens through ssh -W and -D
# are refused, both clients live on, and the log has FAILURES proxy-failed lines since
# $failed_before, none naming a destination (NAMES, an extended regex).
proxy_down_checks() {
        local failures=$2 names=$3 # the eval below runs inside fx_check, with its own $2, $3
        fx_check "$1 proxy down: ssh -W is refused (channel open failure)" w_refused ok "localhost:$FX_HTTP_PORT"
        ACCEPTS=$((ACCEPTS + 1))
        fx_check "$1 proxy down: the SOCKS open through ssh -D fails" proxy_d_refused "localhost:$FX_HTTP_PORT"
        fx_check "... the daemon and the ssh -D session are alive" kill -0 "$DAEMON_PID" "$SSH_D_PID"
        fx_check "... each failure is logged, reason=proxy-failed, without the destination" eval \
                '(( $(proxy_log_lines) == failed_before + failures )) && ! grep "^channel open failed" "$LOG" | grep -E "$names"'
}
reload_with() { # [Server] lines on top of the base config
        write_config "$@"
        "${CTL[@]}" reload >/dev/null
}
have_proxies=1
for need in microsocks tinyproxy; do
        command -v "$need" >/dev/null || { fx_fail "$need is installed (tools/deps.sh installs it)"; have_proxies=0; }
done
if ((have_proxies)); then
        # -- SOCKS5 (microsocks) --
        MS_PORT=$(fx_free_port)
        MS_LOG=$D/microsocks.log
        start_microsocks() {
                fx_bg "$MS_LOG" microsocks -i 127.0.0.1 -p "$MS_PORT"
                MS_PID=$FX_LAST_PID
                fx_wait_port "$MS_PORT" 10
        }
        start_microsocks
        reload_with "OutboundProxy=socks5://127.0.0.1:$MS_PORT"
        MS_NAME="connected to localhost:$FX_HTTP_PORT"
        fx_check "socks5 proxy: ssh -W localhost:PORT, the body exact" proxy_w_get localhost
        ACCEPTS=$((ACCEPTS + 1))
        fx_check "... went through microsocks, the name unresolved (ATYP domain: \"$MS_NAME\")" \
                fx_wait_until 5 eval '(( $(lines_with "$MS_NAME" "$MS_LOG") == 1 ))'
        fx_check "socks5 proxy: curl --socks5-hostname through ssh -D (opened before the reload)" proxy_d_get localhost
        fx_check "... went through microsocks, the name unresolved" \
                fx_wait_until 5 eval '(( $(lines_with "$MS_NAME" "$MS_LOG") == 2 ))'
        fx_check "socks5 proxy: ssh -W to an IPv4 address, the body exact" proxy_w_get 127.0.0.1
        ACCEPTS=$((ACCEPTS + 1))
        fx_check "... went through microsocks as the address" \
                fx_wait_until 5 eval '(( $(lines_with "connected to 127.0.0.1:$FX_HTTP_PORT" "$MS_LOG") == 1 ))'

        ms_seen=$(wc -l <"$MS_LOG")
        fx_check "socks5 proxy: DenyOpen= still refuses its destination (ssh -W)" w_refused ok "127.0.0.1:$FX_ECHO_PORT"
        ACCEPTS=$((ACCEPTS + 1))
        fx_check "socks5 proxy: DenyOpen= still refuses its destination (ssh -D)" proxy_d_refused "127.0.0.1:$FX_ECHO_PORT"
        fx_check "socks5 proxy: a reserved alknet- name is still refused" w_refused ok alknet-control:1
        ACCEPTS=$((ACCEPTS + 1))
        # Nothing is resolved here on the way to a proxy: the spelling alone must do.
        for dest in 2130706433 127.1 0 '[::ffff:127.0.0.1]'; do
                fx_check "socks5 proxy: DenyOpen= refuses its destination written $dest" \
                        w_refused ok "$dest:$FX_ECHO_PORT"
                ACCEPTS=$((ACCEPTS + 1))
        done
        fx_check "... none of them reached microsocks" eval '(( $(wc -l <"$MS_LOG") == ms_seen ))'

        failed_before=$(proxy_log_lines)
        fx_stop "$MS_PID"
        proxy_down_checks socks5 2 "localhost|$FX_HTTP_PORT"
        start_microsocks
        fx_check "socks5 proxy back: ssh -W works again without a reload" proxy_w_get localhost
        ACCEPTS=$((ACCEPTS + 1))
        fx_check "... through microsocks" fx_wait_until 5 eval '(( $(lines_with "$MS_NAME" "$MS_LOG") == 3 ))'

        # -- HTTP CONNECT (tinyproxy) --
        TP_PORT=$(fx_free_port)
        TP_LOG=$D/tinyproxy.log
        : >"$TP_LOG"
        {
                if [[ $EUID -eq 0 ]]; then
                        # It drops privileges before it opens the log.
                        printf 'User nobody\nGroup nogroup\n'
                        chmod 0666 "$TP_LOG"
                fi
                printf 'Port %s\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\n' "$TP_PORT"
                printf 'LogFile "%s"\nLogLevel Connect\nAllow 127.0.0.1\n' "$TP_LOG"
                # CONNECT to the HTTP fixture's port only: tinyproxy refuses any other.
                printf 'ConnectPort %s\n' "$FX_HTTP_PORT"
        } >"$D/tinyproxy.conf"
        fx_bg "$D/tinyproxy.out" tinyproxy -d -c "$D/tinyproxy.conf"
        TP_PID=$FX_LAST_PID
        fx_wait_port "$TP_PORT" 10 || true
        reload_with "OutboundProxy=http://127.0.0.1:$TP_PORT"
        TP_NAME="CONNECT localhost:$FX_HTTP_PORT HTTP/1.1"
        fx_check "http proxy: ssh -W localhost:PORT, the body exact" proxy_w_get localhost
        ACCEPTS=$((ACCEPTS + 1))
        fx_check "... went through tinyproxy, the name unresolved (\"$TP_NAME\")" \
                fx_wait_until 5 eval '(( $(lines_with "$TP_NAME" "$TP_LOG") == 1 ))'
        fx_check "http proxy: curl --socks5-hostname through ssh -D" proxy_d_get localhost
        fx_check "... went through tinyproxy, the name unresolved" \
                fx_wait_until 5 eval '(( $(lines_with "$TP_NAME" "$TP_LOG") == 2 ))'

        fx_check "http proxy: DenyOpen= still refuses its destination (ssh -W)" w_refused ok "127.0.0.1:$FX_ECHO_PORT"
        ACCEPTS=$((ACCEPTS + 1))
        fx_check "http proxy: DenyOpen= still refuses its destination (ssh -D)" proxy_d_refused "127.0.0.1:$FX_ECHO_PORT"
        fx_check "... neither reached tinyproxy" eval '(( $(lines_with ":$FX_ECHO_PORT " "$TP_LOG") == 0 ))'

        failed_before=$(proxy_log_lines)
        fx_check "http proxy: a destination tinyproxy refuses (not a ConnectPort) is refused" \
                w_refused ok "localhost:$FX_SINK_PORT"
        ACCEPTS=$((ACCEPTS + 1))
        fx_check "... tinyproxy got it by name and refused it" \
                fx_wait_until 5 eval '(( $(lines_with "CONNECT localhost:$FX_SINK_PORT HTTP/1.1" "$TP_LOG") == 1 ))'
        fx_stop "$TP_PID"
        proxy_down_checks http 3 "localhost|$FX_HTTP_PORT|$FX_SINK_PORT"

        # Without OutboundProxy= the server dials directly again.
        reload_with
        fx_check "OutboundProxy= removed on reload: ssh -W connects directly (both proxies down)" proxy_w_get localhost
        ACCEPTS=$((ACCEPTS + 1))

        # A proxy that cannot be used fails closed: nothing goes direct instead.
        write_config "OutboundProxy=socks5://127.0.0.1"
        reload_out=$("${CTL[@]}" reload 2>&1 || true)
        fx_check "an unusable OutboundProxy= is reported by alknetctl reload" \
                grep -F "every channel is refused" <<<"$reload_out"
        fx_check "... and ssh -W is refused although a direct connection would work" \
                w_refused ok "localhost:$FX_HTTP_PORT"
        ACCEPTS=$((ACCEPTS + 1))
        fx_check "... logged as reason=proxy-invalid" \
                fx_wait_until 5 eval '(( $(count "^channel open failed remote_addr=127\\.0\\.0\\.1 reason=proxy-invalid$") == 1 ))'
        reload_with
fi

# ---- MaxRemoteForwardsPerSession=2 (reloaded): the third -R of one session is refused ----
write_config MaxRemoteForwardsPerSession=2
"${CTL[@]}" reload >/dev/null
# ssh takes the first value of an option: ExitOnForwardFailure=no goes before SSH_BASE's yes.
# Three different forwards: ssh drops a repeated one. They are asked for in order.
fx_bg "$D/ssh-R-cap.log" timeout 60 ssh -o ExitOnForwardFailure=no "${SSH_BASE[@]}" -i "$K/ok" -N \
        -R "0:127.0.0.1:$FX_HTTP_PORT" -R "0:127.0.0.1:$FX_ECHO_PORT" -R "0:127.0.0.1:$FX_SINK_PORT" 127.0.0.1
R_CAP_PID=$FX_LAST_PID
ACCEPTS=$((ACCEPTS + 1))
fx_check "MaxRemoteForwardsPerSession=2: two of three remote forwards are allocated, one refused" \
        fx_wait_until 20 eval '(( $(grep -c "^Allocated port" "$D/ssh-R-cap.log") == 2 &&
                $(grep -c "remote port forwarding failed" "$D/ssh-R-cap.log") == 1 ))'
fx_check "... with the log line reason=max-remote-forwards" \
        log_has "remote forward refused remote_addr=127.0.0.1 reason=max-remote-forwards"
r_cap_port=$(grep -F "for remote forward to 127.0.0.1:$FX_HTTP_PORT" "$D/ssh-R-cap.log" |
        sed -n 's/^Allocated port \([0-9]*\) .*/\1/p')
fx_check "... an allocated one carries data" \
        eval '[[ $(curl -sS --max-time 10 "http://127.0.0.1:$r_cap_port/small.bin" | sha_of) == "$SMALL_SHA" ]]'
fx_stop "$R_CAP_PID"

# ---- Ciphers= (reloaded): only the named ciphers are offered ----
write_config Ciphers=aes128-gcm@openssh.com
"${CTL[@]}" reload >/dev/null
cipher_w_get() { # CIPHER: ssh -W with only that cipher, the body exact; the negotiated one on stderr
        printf '%s' "$GET_SMALL" | ssh_as ok -v -c "$1" -W "127.0.0.1:$FX_HTTP_PORT" 127.0.0.1 2>"$D/cipher.err" | body_sha
}
fx_check "Ciphers=aes128-gcm@openssh.com: a client offering only it gets the body exact" \
        eval '[[ $(cipher_w_get aes128-gcm@openssh.com) == "$SMALL_SHA" ]] &&
                grep -q "cipher: aes128-gcm@openssh.com" "$D/cipher.err"'
ACCEPTS=$((ACCEPTS + 1))
# Which end notices first varies: ssh may say "no matching cipher" or just see the close.
kex_failures() { count '^Key exchange with 127\.0\.0\.1 failed'; }
no_common_cipher() { # CIPHER: refused before any data, and the daemon logged the failed key exchange
        local before
        before=$(kex_failures)
        [[ $(cipher_w_get "$1") != "$SMALL_SHA" ]] && ! grep -q "cipher: $1" "$D/cipher.err" &&
                fx_wait_until 5 eval '(( $(kex_failures) > before ))'
}
fx_check "... a client offering only chacha20-poly1305 finds no common cipher" \
        no_common_cipher chacha20-poly1305@openssh.com
write_config Ciphers=aes128-ctr,bogus-cipher
fx_check "an unknown cipher is reported by alknetctl reload, naming it" \
        eval '"${CTL[@]}" reload 2>&1 | grep -F "unknown cipher '"'"'bogus-cipher'"'"'"'
fx_check "... and the default list applies: chacha20-poly1305 works again" \
        eval '[[ $(cipher_w_get chacha20-poly1305@openssh.com) == "$SMALL_SHA" ]]'
ACCEPTS=$((ACCEPTS + 1))

# ---- an unusable DenyOpen= entry fails closed ----
write_config "DenyOpen=127.0.0.0/33:*"
fx_check "an unusable DenyOpen= entry is reported by alknetctl reload" \
        eval '"${CTL[@]}" reload 2>&1 | grep -F "every channel is refused"'
fx_check "... and ssh -W is refused although the policy would allow it" w_refused ok "127.0.0.1:$FX_HTTP_PORT"
ACCEPTS=$((ACCEPTS + 1))
fx_check "... logged as reason=policy-invalid" \
        fx_wait_until 5 eval '(( $(count "^channel open failed remote_addr=127\\.0\\.0\\.1 reason=policy-invalid$") == 1 ))'

# ---- limits (reloaded): MaxConnectionsPerSource=2, LoginGraceTime=2 ----
# Every client but the -D one ends first; the per-source count is of sessions.
fx_stop "$SSH_L_PID" "$R3"
fx_check "the other sessions are gone" fx_wait_until 10 eval '[[ $(n_sessions) == 1 ]]'
write_config MaxConnectionsPerSource=2 LoginGraceTime=2
"${CTL[@]}" reload >/dev/null
cat >"$D/idle.py" <<'PY'
"""Connects from a given source address, sends nothing, reads until EOF: "SECONDS BYTES"."""
import os, socket, sys, time
src, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket()
s.bind((src, 0))
s.connect(("127.0.0.1", port))
t0, n = time.monotonic(), 0
s.settimeout(30)
try:
    while data := s.recv(4096):
        n += len(data)
except OSError:
    pass
with open(out + ".tmp", "w") as f:
    f.write(f"{time.monotonic() - t0:.3f} {n}\n")
os.rename(out + ".tmp", out)
PY
# The -D session holds one of 127.0.0.1's two; one idle client takes the other.
opened=$(count 'connection opened')
fx_bg "$D/idle1.log" python3 "$D/idle.py" 127.0.0.1 "$PORT" "$D/idle1"
fx_wait_until 5 eval '(( $(count "connection opened") > opened ))' || true
fx_bg "$D/idle2.log" python3 "$D/idle.py" 127.0.0.3 "$PORT" "$D/idle2"
fx_wait_until 5 eval '(( $(count "connection opened") > opened + 1 ))' || true
python3 "$D/idle.py" 127.0.0.1 "$PORT" "$D/idle3" || true
read -r third_secs third_bytes <"$D/idle3" || true
fx_check "a third connection from one source is closed at once (${third_secs:-?} s, ${third_bytes:-?} bytes)" \
        eval '[[ $third_bytes == 0 ]] && python3 -c "import sys; sys.exit(not float(sys.argv[1]) < 1)" "$third_secs"'
fx_check "... with the log line reason=max-connections-per-source" \
        log_has "connection refused remote_addr=127.0.0.1 reason=max-connections-per-source"

# A real client from another source while two idle ones hold their connections.
t0=$(date +%s%N)
real_sha=$(printf '%s' "$GET_SMALL" | ssh_as ok -b 127.0.0.2 -W "127.0.0.1:$FX_HTTP_PORT" 127.0.0.1 | body_sha) || true
t1=$(date +%s%N)
ACCEPTS=$((ACCEPTS + 1))
real_ms=$(((t1 - t0) / 1000000))
fx_check "a real client is served while idle ones wait (${real_ms} ms)" eval \
        '[[ $real_sha == $SMALL_SHA && ! -e $D/idle1 && ! -e $D/idle2 ]] && ((real_ms < 1500))'
fx_wait_until 10 test -e "$D/idle1" -a -e "$D/idle2" || true
for i in 1 2; do
        read -r secs bytes <"$D/idle$i" || { secs=0 bytes=0; }
        fx_check "idle client $i is closed at LoginGraceTime=2 (${secs} s, got the banner: $bytes bytes)" eval \
                '((bytes > 0)) && python3 -c "import sys; sys.exit(not 1.5 <= float(sys.argv[1]) <= 5)" "$secs"'
done
fx_check "... with the log line reason=login-grace-time" eval \
        '(( $(count "connection refused remote_addr=127\.0\.0\.(1|3) reason=login-grace-time") == 2 ))'

# ---- fail2ban: the shipped filter against this log ----
FILTER=$SRC/tools/fail2ban/filter.d/alknetd.conf
if command -v fail2ban-regex >/dev/null; then
        rejects=$(count 'result=reject')
        accepts=$(count 'result=accept')
        cuts=$(count 'reason=max-auth-tries')
        limits=$(count 'reason=(login-grace-time|max-connections-per-source)')
        # As a syslog file or the journal's short output shows it.
        stamp=$(date '+%b %e %H:%M:%S')
        awk -v p="$stamp testhost alknetd[$DAEMON_PID]: " '{ print p $0 }' "$LOG" >"$D/syslog"
        f2b_matched() { # LOG FILTER [fail2ban-regex options]: "N M" lines and matched
                fail2ban-regex "${@:3}" "$1" "$2" | sed -nE 's/^Lines: ([0-9]+) lines, 0 ignored, ([0-9]+) matched.*/\1 \2/p'
        }
        read -r f2b_lines f2b_hits < <(f2b_matched "$D/syslog" "$FILTER") || true
        fx_check "fail2ban-regex: every failure line matches ($f2b_hits of $rejects rejects + $cuts cuts)" eval \
                '[[ $f2b_lines == $(wc -l <"$LOG") ]] && ((rejects >= 10 && accepts > 0 && f2b_hits == rejects + cuts))'
        fx_check "fail2ban-regex: no accept line matches" eval \
                '! fail2ban-regex --print-all-matched "$D/syslog" "$FILTER" | grep "result=accept"'
        read -r _ f2b_raw < <(f2b_matched "$LOG" "$FILTER" -d "{NONE}") || true
        fx_check "fail2ban-regex: the daemon's own stderr too ($f2b_raw)" eval '((f2b_raw == rejects + cuts))'
        read -r _ f2b_aggr < <(f2b_matched "$D/syslog" "$FILTER[mode=aggressive]") || true
        fx_check "fail2ban-regex mode=aggressive adds the limit lines ($f2b_aggr)" eval \
                '((limits == 3 && f2b_aggr == rejects + cuts + limits))'
        fx_check "the filter takes the address from remote_addr= with <HOST>" \
                grep -q 'remote_addr=<HOST>' "$FILTER"
else
        fx_fail "fail2ban-regex is installed (tools/deps.sh installs fail2ban)"
fi

# ---- ServerStatus through alknetctl ----
fx_check "ServerStatus: authAccepted is every accept the test made ($ACCEPTS)" eval \
        '[[ $(json_field authAccepted) == $ACCEPTS && $(count "result=accept") == $ACCEPTS ]]'
fx_check "ServerStatus: authRejected matches the reject lines ($(count 'result=reject'))" eval \
        '[[ $(json_field authRejected) == $(count "result=reject") ]]'
fx_check "ServerStatus: refusedByLimits counts the per-source and the remote-forward refusals" \
        eval '[[ $(json_field refusedByLimits) == 2 ]]'
fx_check "ServerStatus: sessionsTotal counts every connection" eval \
        '[[ $(json_field sessionsTotal) == $(count "connection opened") ]]'
fx_check "ServerStatus: channels were counted" eval '(( $(json_field channelsTotal) >= 10 ))'
fx_check "alknetctl server: running, the listener, the counters" eval '"${CTL[@]}" server >"$D/server.txt" &&
        grep -qx "Server role: running" "$D/server.txt" &&
        grep -qx "Listeners: tcp:127.0.0.1:$PORT" "$D/server.txt" &&
        grep -qx "Auth: $ACCEPTS accepted, $(count "result=reject") rejected" "$D/server.txt" &&
        grep -qx "Refused by limits: 2" "$D/server.txt"'

# A daemon without [Server]: the role is reported as not running.
N=$FX_DIR/noserver
mkdir -p "$N/etc" "$N/state"
fx_bg "$N/alknetd.log" "$ALKNETD" --control "$N/control" --config-dir "$N/etc" --state-dir "$N/state"
fx_wait_until 30 test -S "$N/control" || true
fx_check "alknetctl server without [Server]: not running, no listeners, no sessions" eval \
        '"$ALKNETCTL" --socket "$N/control" server >"$N/server.txt" &&
        grep -qx "Server role: not running" "$N/server.txt" && grep -qx "Listeners: -" "$N/server.txt" &&
        grep -qx "No sessions." "$N/server.txt"'
fx_stop "$FX_LAST_PID"

# ---- privacy and a clean stop ----
fx_check "no destination in the daemon's log" eval \
        '! grep -qE "localhost|alknet-control|[^0-9]($FX_HTTP_PORT|$FX_SINK_PORT|$FX_ECHO_PORT)([^0-9]|$)" "$LOG"'
fx_check "connection lines carry the address without a port" eval \
        '! grep -E "^connection (opened|closed)" "$LOG" | grep -vqE "^connection (opened remote_addr=127\.0\.0\.[0-9]+ transport=tcp|closed remote_addr=127\.0\.0\.[0-9]+ duration=[0-9]+)$"'
fx_check "the daemon stayed alive throughout" kill -0 "$DAEMON_PID"
kill -TERM "$DAEMON_PID"
stop_rc=0
wait "$DAEMON_PID" || stop_rc=$?
fx_check "SIGTERM stops the daemon with status 0, an ssh -D session open (got $stop_rc)" eval '[[ $stop_rc == 0 ]]'
fx_stop "$SSH_D_PID"
if [[ -n ${ALKNET_VALGRIND:-} ]]; then
        fx_check "valgrind: no errors in the daemon" eval '! grep -l "ERROR SUMMARY: [1-9]" "$D"/valgrind.*.log'
fi
if ((FX_FAILED > 0)); then
        echo "---- daemon log (last 60 lines) ----"
        tail -n 60 "$LOG"
fi
fx_summary
