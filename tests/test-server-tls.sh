#!/usr/bin/env bash
# alknetd client -> alknetd server: SOCKS (socks5h), Local= and Remote= sha256-exact over
# plain TCP and over TLS (a test CA made with openssl here); TLS failures (wrong CA, wrong
# name both ways, wrong pin) end in backoff with reason tls-failed; stealth (the nginx 404
# byte for byte, the fallback backend spliced, an SSH banner without ALPN, a silent client
# closed at the peek deadline, 200 idle connections); certificates re-read on SIGHUP; no
# destination in either log; both daemons stop with status 0.
# Checks are single-quoted strings run by eval in fx_check: they use variables set here.
# shellcheck disable=SC2016,SC2034
set -euo pipefail

SRC=${ALKNET_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
# shellcheck source=lib/fixtures.sh
. "$SRC/tests/lib/fixtures.sh"

for need in curl openssl sha256sum python3 ssh-keygen base64 timeout; do
        command -v "$need" >/dev/null || { echo "$need not found; skipping"; exit 77; }
done
[[ -x ${ALKNETD:-} && -x ${ALKNETCTL:-} ]] || { echo "ALKNETD/ALKNETCTL not set; skipping"; exit 77; }

# Transfer size in MiB; sanitizer and valgrind runs may pass a smaller one.
SIZE=${ALKNET_TEST_SIZE_MIB:-256}
IDLE=200

fx_init
fx_start_http
fx_make_file big.bin "$SIZE"
BIG_SHA=$FX_FILE_SHA256
fx_make_file small.bin 256K
SMALL_SHA=$FX_FILE_SHA256
HTTP_NAME=localhost # a name: the SOCKS target must travel unresolved

# ---- keys and certificates ----
K=$FX_DIR/keys
mkdir -p "$K"
ssh-keygen -q -t ed25519 -N '' -C alknet-test-server -f "$K/host" >/dev/null
HOST_FP=$(ssh-keygen -lf "$K/host.pub" | awk '{print $2}')
ssh-keygen -q -t ed25519 -N '' -C alknet-test-client -f "$K/client" >/dev/null
cp "$K/client.pub" "$K/authorized_keys"

cat >"$K/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
cat >"$K/leaf.ext" <<'EOF'
[v3_leaf]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = ${ENV::LEAF_SAN}
EOF

# openssl's output only when it fails.
quiet() {
        "$@" >"$K/openssl.out" 2>&1 || { cat "$K/openssl.out" >&2; return 1; }
}

make_ca() { # NAME CN
        quiet openssl req -x509 -config "$K/ca.cnf" -extensions v3_ca -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
                -nodes -keyout "$K/$1.key" -out "$K/$1.pem" -days 2 -subj "/CN=$2"
}

make_leaf() { # NAME CA SERIAL CN SAN
        quiet openssl req -new -config "$K/ca.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                -keyout "$K/$1.key" -out "$K/$1.csr" -subj "/CN=$4"
        LEAF_SAN=$5 quiet openssl x509 -req -in "$K/$1.csr" -CA "$K/$2.pem" -CAkey "$K/$2.key" -set_serial "$3" \
                -days 2 -extfile "$K/leaf.ext" -extensions v3_leaf -out "$K/$1.pem"
}

pin_of() { # CERT
        printf 'sha256//%s' "$(openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der |
                openssl dgst -sha256 -binary | base64)"
}

make_ca ca "alknet test CA"
make_ca wrongca "alknet other CA"
make_leaf server ca 4097 localhost "DNS:localhost,IP:127.0.0.1"
make_leaf renewed ca 8193 localhost "DNS:localhost,IP:127.0.0.1"
make_leaf othername ca 12289 other.example "DNS:other.example"
SERVER_PIN=$(pin_of "$K/server.pem")
# What the server presents: replaced in place, as certbot does, for the reload checks.
install -m 0644 "$K/server.pem" "$K/live.pem"
install -m 0600 "$K/server.key" "$K/live.key"

# ---- the two daemons ----
S=$FX_DIR/server
C=$FX_DIR/client
mkdir -p "$S/etc" "$S/state" "$C/etc/profiles.d" "$C/state"
SCTL=("$ALKNETCTL" --socket "$S/control")
CTL=("$ALKNETCTL" --socket "$C/control")
TCP_PORT=$(fx_free_port)
TLS_PORT=$(fx_free_port)

write_server_conf() { # extra [Server] lines...
        {
                echo "[Server]"
                echo "Listen=tcp:127.0.0.1:$TCP_PORT"
                echo "Listen=tls:127.0.0.1:$TLS_PORT"
                echo "HostKey=$K/host"
                echo "AuthorizedKeys=$K/authorized_keys"
                echo "TLSCertificate=$K/live.pem"
                echo "TLSKey=$K/live.key"
                echo "Stealth=yes"
                printf '%s\n' "$@"
        } >"$S/etc/alknetd.conf"
}

start_daemon() { # DIR; sets DAEMON_PID
        local wrap=()
        [[ -n ${ALKNET_VALGRIND:-} ]] && wrap=(valgrind --error-exitcode=99 --leak-check=full
                --errors-for-leak-kinds=definite --log-file="$1/valgrind.%p.log")
        fx_bg "$1/alknetd.log" "${wrap[@]}" "$ALKNETD" --control "$1/control" --config-dir "$1/etc" \
                --state-dir "$1/state" --log-level debug
        DAEMON_PID=$FX_LAST_PID
        fx_wait_until 30 test -S "$1/control"
}

write_server_conf
start_daemon "$S"
SERVER_PID=$DAEMON_PID
start_daemon "$C"
CLIENT_PID=$DAEMON_PID
if ! fx_wait_port "$TCP_PORT" 10 || ! fx_wait_port "$TLS_PORT" 10; then
        echo "the server role does not listen; its log:"
        tail -n 30 "$S/alknetd.log"
        exit 1
fi
fx_check "both daemons are up, the server listens on tcp and tls" kill -0 "$SERVER_PID" "$CLIENT_PID"

status_field() { # NAME FIELD
        "${CTL[@]}" status "$1" --json | python3 -c '
import json, sys
t = json.load(sys.stdin)["tunnels"][0]
print(t.get(sys.argv[1], ""))' "$2"
}

wait_state() { # NAME STATE SECONDS
        fx_wait_until "$3" eval '[[ $(status_field '"$1"' state) == '"$2"' ]]'
}

# A standstill of about 15 s (curl averages its speed over 5 s, then needs 10 s below
# the limit) fails the transfer, however long the whole transfer may take under a
# sanitizer. The data profiles send keepalives only every 60 s: a lost wakeup in a relay
# is not rescued by keepalive traffic before that.
sha_of_url() { # URL [curl options...]
        local url=$1
        shift
        curl -sS --fail --max-time 300 --speed-limit 1 --speed-time 10 "$@" "$url" | sha256sum | cut -d' ' -f1
}

# The big downloads read at a bounded pace, so that the relays run into backpressure on
# the way (the reader, not the tunnel, sets the pace: a stall at the end of a transfer
# showed up this way).
BIG_PACE=(--limit-rate 200M)

# Prints how long the previous check took, for the big transfers (no assertion on speed).
lap() {
        local now
        now=$(_fx_now_us)
        [[ -z ${LAP:-} ]] || printf '     (%d.%01d s)\n' $(((now - LAP) / 1000000)) $(((now - LAP) / 100000 % 10))
        LAP=$now
}

add_profile() { # NAME SERVER-PORT [flags...]
        local name=$1 port=$2
        shift 2
        "${CTL[@]}" add "$name" --server "127.0.0.1:$port" --user alknet --identity "$K/client" \
                --host-key "$HOST_FP" "$@" >/dev/null
}

# ---- data over TCP and over TLS: SOCKS, Local=, Remote= ----
declare -A SOCKS LOCAL REMOTE
for t in tcp tls; do
        SOCKS[$t]=$(fx_free_port)
        LOCAL[$t]=$(fx_free_port)
        REMOTE[$t]=$(fx_free_port)
done
add_profile viatcp "$TCP_PORT" --keepalive-interval 60s --socks "127.0.0.1:${SOCKS[tcp]}" \
        --local "127.0.0.1:${LOCAL[tcp]}:$HTTP_NAME:$FX_HTTP_PORT" \
        --remote "127.0.0.1:${REMOTE[tcp]}:127.0.0.1:$FX_HTTP_PORT"
add_profile viatls "$TLS_PORT" --transport tls --tls-ca "$K/ca.pem" --tls-server-name localhost \
        --keepalive-interval 60s --socks "127.0.0.1:${SOCKS[tls]}" \
        --local "127.0.0.1:${LOCAL[tls]}:$HTTP_NAME:$FX_HTTP_PORT" \
        --remote "127.0.0.1:${REMOTE[tls]}:127.0.0.1:$FX_HTTP_PORT"

for t in tcp tls; do
        name=via$t
        fx_check "$t: the tunnel comes up" "${CTL[@]}" up "$name"
        fx_check "$t: status --json says up" wait_state "$name" up 5
        LAP=$(_fx_now_us)
        fx_check "$t: SOCKS (socks5h), $SIZE MiB exact" \
                eval '[[ $(sha_of_url "http://$HTTP_NAME:$FX_HTTP_PORT/big.bin" "${BIG_PACE[@]}" -x "socks5h://127.0.0.1:${SOCKS[$t]}") == "$BIG_SHA" ]]'
        lap
        fx_check "$t: Local=, $SIZE MiB exact" \
                eval '[[ $(sha_of_url "http://127.0.0.1:${LOCAL[$t]}/big.bin" "${BIG_PACE[@]}") == "$BIG_SHA" ]]'
        lap
        # Remote= listens on the server's loopback once the server granted it.
        fx_wait_until 20 eval '[[ -n $(ss -Htln "( sport = :${REMOTE[$t]} )") ]]' || true
        LAP=$(_fx_now_us)
        fx_check "$t: Remote= (bound by the server), $SIZE MiB exact" \
                eval '[[ $(sha_of_url "http://127.0.0.1:${REMOTE[$t]}/big.bin" "${BIG_PACE[@]}") == "$BIG_SHA" ]]'
        lap
done

server_json() {
        "${SCTL[@]}" server --json
}
fx_check "the server shows an authenticated tls session and a tcp one" eval 'server_json | python3 -c "
import json, sys
s = json.load(sys.stdin)[\"server\"]
t = sorted(x[\"transport\"] for x in s[\"sessions\"] if x[\"authenticated\"])
assert t == [\"tcp\", \"tls\"], t
assert sorted(s[\"listeners\"]) == [\"tcp:127.0.0.1:$TCP_PORT\", \"tls:127.0.0.1:$TLS_PORT\"], s[\"listeners\"]
"'
"${CTL[@]}" down viatcp >/dev/null

# ---- TLS failures: retried (backoff), reason tls-failed, the message says which ----
wait_tls_failed() { # NAME WHICH
        wait_state "$1" backoff 15 || return 1
        [[ $(status_field "$1" reason) == tls-failed ]] || { status_field "$1" reason; return 1; }
        local message
        message=$(status_field "$1" message)
        echo "message: $message"
        [[ $message == *"$2"* ]]
}

add_profile wrongca "$TLS_PORT" --transport tls --tls-ca "$K/wrongca.pem" --tls-server-name localhost --socks none
add_profile wrongname "$TLS_PORT" --transport tls --tls-ca "$K/ca.pem" --tls-server-name other.example --socks none
add_profile wrongpin "$TLS_PORT" --transport tls --tls-ca "$K/ca.pem" --tls-server-name localhost --socks none \
        --tls-pin "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
PIN_SOCKS=$(fx_free_port)
add_profile pinonly "$TLS_PORT" --transport tls --tls-verify no --tls-pin "$SERVER_PIN" --socks "127.0.0.1:$PIN_SOCKS"
for p in wrongca wrongname wrongpin pinonly; do
        "${CTL[@]}" up "$p" --no-wait >/dev/null
done
fx_check "wrong CA: backoff, tls-failed, verify-failed" wait_tls_failed wrongca verify-failed
fx_check "wrong name (TLSServerName=other.example): backoff, tls-failed, name-mismatch" \
        wait_tls_failed wrongname name-mismatch
fx_check "wrong pin: backoff, tls-failed, pin-mismatch" wait_tls_failed wrongpin pin-mismatch
fx_check "tls-failed is retried (a second attempt within 5 s)" \
        fx_wait_until 5 eval '(( $(status_field wrongca attempts) >= 2 ))'
fx_check "the right pin with TLSVerify=no: up" wait_state pinonly up 15
fx_check "data through the pinned tunnel" \
        eval '[[ $(sha_of_url "http://$HTTP_NAME:$FX_HTTP_PORT/small.bin" -x "socks5h://127.0.0.1:$PIN_SOCKS") == "$SMALL_SHA" ]]'
fx_check "TLSVerify=no is logged as a warning" grep -q "TLSVerify=no" "$C/alknetd.log"
for p in wrongca wrongname wrongpin pinonly; do
        "${CTL[@]}" remove "$p" >/dev/null
done

# ---- stealth: the decoy ----
EXPECTED_BODY=$FX_DIR/decoy-body
printf '<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n' \
        >"$EXPECTED_BODY"
curl -sk --max-time 10 -D "$FX_DIR/decoy-head" -o "$FX_DIR/decoy-got" "https://127.0.0.1:$TLS_PORT/" || true
fx_check "decoy: status line HTTP/1.1 404 Not Found" eval '[[ $(head -n 1 "$FX_DIR/decoy-head") == $'"'"'HTTP/1.1 404 Not Found\r'"'"' ]]'
fx_check "decoy: Server: nginx" grep -qx $'Server: nginx\r' "$FX_DIR/decoy-head"
fx_check "decoy: Content-Length: 146" grep -qx $'Content-Length: 146\r' "$FX_DIR/decoy-head"
# The whole head in nginx's order, the date only by its form.
printf 'HTTP/1.1 404 Not Found\r\nServer: nginx\r\nDate: DATE\r\nContent-Type: text/html\r\nContent-Length: 146\r\nConnection: close\r\n\r\n' \
        >"$FX_DIR/decoy-head-expected"
fx_check "decoy: every header line in nginx's order, an HTTP date" eval '
        grep -qE $'"'"'^Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT\r$'"'"' "$FX_DIR/decoy-head" &&
        sed -E "s/^Date: .*\r$/Date: DATE\r/" "$FX_DIR/decoy-head" | cmp - "$FX_DIR/decoy-head-expected"'
fx_check "decoy: nginx's 404 body byte for byte" cmp "$EXPECTED_BODY" "$FX_DIR/decoy-got"

# A TLS client without ALPN that speaks SSH first gets the SSH server.
banner_out=$FX_DIR/banner.out
: >"$banner_out"
fx_bg "$FX_DIR/s_client.err" bash -c '{ printf "SSH-2.0-test\r\n"; sleep 30; } |
        openssl s_client -connect "127.0.0.1:'"$TLS_PORT"'" -quiet >"'"$banner_out"'"'
banner_pid=$FX_LAST_PID
fx_wait_until 10 grep -q "^SSH-2.0-" "$banner_out" || true
fx_stop "$banner_pid"
fx_check "s_client without ALPN sending SSH-2.0-test gets the banner SSH-2.0-Server" \
        eval '[[ $(head -n 1 "$banner_out" | tr -d "\r") == SSH-2.0-Server ]]'

# A TLS client that sends nothing is answered and closed at the peek deadline (3 s).
cat >"$FX_DIR/silent.py" <<'PY'
import socket, ssl, sys, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30))
t0 = time.monotonic()
got = b""
try:
    while d := s.recv(4096):
        got += d
except (ssl.SSLError, OSError):
    pass
print(f"{time.monotonic() - t0:.2f} {got[:22]!r}")
PY
silent=$(timeout 40 python3 "$FX_DIR/silent.py" "$TLS_PORT" || echo "99 error")
silent_s=${silent%% *}
fx_check "a silent TLS client is closed at the peek deadline (after ${silent_s} s)" \
        eval '(( $(awk -v t="$silent_s" "BEGIN { print (t >= 2.5 && t <= 8) }") ))'

# ---- stealth: the fallback backend, spliced byte for byte ----
write_server_conf "StealthFallback=127.0.0.1:$FX_HTTP_PORT"
kill -HUP "$SERVER_PID"
fx_wait_until 10 eval '[[ $(curl -sk --max-time 5 -o /dev/null -w "%{http_code}" "https://127.0.0.1:$TLS_PORT/small.bin") == 200 ]]' || true
fx_check "fallback: https://.../small.bin is the backend's file, exact" \
        eval '[[ $(curl -sSk --fail --max-time 30 "https://127.0.0.1:$TLS_PORT/small.bin" | sha256sum | cut -d" " -f1) == "$SMALL_SHA" ]]'
# The decoy's answer is a 404 too: the backend's differs in its Server header
# (server_tokens on) and its length.
backend_404() { # URL
        curl -sk --max-time 10 -D - -o /dev/null "$1" | grep -iE "^(HTTP/|Server:|Content-Length:)"
}
fx_check "fallback: a missing path gets the backend's own 404, not the decoy" eval '
        got=$(backend_404 "https://127.0.0.1:$TLS_PORT/nothing-here") &&
        [[ $got == "$(backend_404 "$FX_HTTP_URL/nothing-here")" && $got == *" 404 "* && $got != *$'"'"'Content-Length: 146\r'"'"'* ]]'
fx_check "fallback: alknet clients still get SSH" "${CTL[@]}" restart viatls
fx_check "fallback: data through the tls tunnel" \
        eval '[[ $(sha_of_url "http://$HTTP_NAME:$FX_HTTP_PORT/small.bin" -x "socks5h://127.0.0.1:${SOCKS[tls]}") == "$SMALL_SHA" ]]'

# ---- 200 idle TCP connections to the TLS port do not keep a real client out ----
# From 127.0.0.10-29, ten each: within the default per-source limit, as idle
# connections from many hosts would be.
cat >"$FX_DIR/idle.py" <<'PY'
import os, signal, socket, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
held = []
for i in range(n):
    s = socket.socket()
    s.bind((f"127.0.0.{10 + i // 10}", 0))
    s.connect(("127.0.0.1", port))
    held.append(s)
open(ready, "w").close()
signal.pause()
PY
fx_bg "$FX_DIR/idle.log" python3 "$FX_DIR/idle.py" "$TLS_PORT" "$IDLE" "$FX_DIR/idle.ready"
idle_pid=$FX_LAST_PID
fx_wait_until 10 test -e "$FX_DIR/idle.ready" || true
established() { ss -Htn state established "( dport = :$TLS_PORT )" | wc -l; }
fx_wait_until 5 eval '(( $(established) >= IDLE ))' || true
idle_accepted() {
        grep -cE "connection opened remote_addr=127\.0\.0\.(1[0-9]|2[0-9]) transport=tls" "$S/alknetd.log"
}
fx_wait_until 10 eval '(( $(idle_accepted) >= IDLE ))' || true
fx_check "$IDLE idle connections are held open, accepted by the server" \
        eval '(( $(established) >= IDLE && $(idle_accepted) >= IDLE ))'
t0=$(_fx_now_us)
"${CTL[@]}" restart viatls --no-wait >/dev/null
idle_ok=0
if wait_state viatls up 20 &&
        [[ $(sha_of_url "http://$HTTP_NAME:$FX_HTTP_PORT/small.bin" -x "socks5h://127.0.0.1:${SOCKS[tls]}" --max-time 20) == "$SMALL_SHA" ]]; then
        idle_ok=1
fi
idle_ms=$((($(_fx_now_us) - t0) / 1000))
fx_check "with $IDLE idle connections a client comes up and carries data (${idle_ms} ms)" \
        eval '(( idle_ok == 1 && idle_ms < 20000 ))'
fx_stop "$idle_pid"

# ---- certificates are re-read on SIGHUP ----
served_serial() {
        openssl s_client -connect "127.0.0.1:$TLS_PORT" -alpn alknet-ssh -showcerts </dev/null 2>/dev/null |
                openssl x509 -noout -serial 2>/dev/null
}
fx_check "the first certificate is served (serial 4097 = 0x1001)" eval '[[ $(served_serial) == serial=1001 ]]'

replace_cert() { # NAME
        install -m 0644 "$K/$1.pem" "$K/live.pem.new"
        install -m 0600 "$K/$1.key" "$K/live.key.new"
        mv -f "$K/live.pem.new" "$K/live.pem"
        mv -f "$K/live.key.new" "$K/live.key"
        kill -HUP "$SERVER_PID"
}

# A certificate for another name: the client refuses it (the chain is fine).
reloads=$(grep -c "Reloaded" "$S/alknetd.log" || true)
replace_cert othername
fx_wait_until 10 eval '(( $(grep -c "Reloaded" "$S/alknetd.log") > reloads ))' || true
"${CTL[@]}" restart viatls --no-wait >/dev/null
fx_check "a certificate for another name: backoff, tls-failed, name-mismatch" wait_tls_failed viatls name-mismatch

reloads=$(grep -c "Reloaded" "$S/alknetd.log" || true)
replace_cert renewed
fx_wait_until 10 eval '(( $(grep -c "Reloaded" "$S/alknetd.log") > reloads ))' || true
fx_check "after SIGHUP the renewed certificate is served (serial 8193 = 0x2001)" eval '[[ $(served_serial) == serial=2001 ]]'
"${CTL[@]}" restart viatls --no-wait >/dev/null
fx_check "a new client connection works with the renewed certificate" wait_state viatls up 20
fx_check "data through it" \
        eval '[[ $(sha_of_url "http://$HTTP_NAME:$FX_HTTP_PORT/small.bin" -x "socks5h://127.0.0.1:${SOCKS[tls]}") == "$SMALL_SHA" ]]'

# ---- privacy and a clean stop ----
for side in server client; do
        log=$FX_DIR/$side/alknetd.log
        # The server's own StealthFallback= is configuration, not a client's destination,
        # but it is the same host:port: none of its lines may show up either.
        fx_check "no destination in the $side's log" eval '! grep -nE "$HTTP_NAME:$FX_HTTP_PORT|127\.0\.0\.1:$FX_HTTP_PORT|[^0-9]$FX_HTTP_PORT([^0-9]|$)" "$log"'
done
fx_check "no TLSServerName= in the client's log, also not from the name mismatch" \
        eval '! grep -n "other\.example" "$FX_DIR/client/alknetd.log"'
fx_check "the server logs connections with transport=tls and transport=tcp" eval '
        grep -q "connection opened remote_addr=127.0.0.1 transport=tls" "$S/alknetd.log" &&
        grep -q "connection opened remote_addr=127.0.0.1 transport=tcp" "$S/alknetd.log"'
fx_check "both daemons are alive" kill -0 "$SERVER_PID" "$CLIENT_PID"
for pid in "$CLIENT_PID" "$SERVER_PID"; do
        kill -TERM "$pid"
        stop_rc=0
        wait "$pid" || stop_rc=$?
        fx_check "SIGTERM stops $([[ $pid == "$SERVER_PID" ]] && echo server || echo client) with status 0 (got $stop_rc)" \
                eval '[[ $stop_rc == 0 ]]'
done
# Sanitizer builds: UBSan reports without stopping the daemon, so its log is the evidence.
fx_check "no sanitizer report in either log" \
        eval '! grep -nE "runtime error:|ERROR: (Address|Leak)Sanitizer" "$S/alknetd.log" "$C/alknetd.log"'
if [[ -n ${ALKNET_VALGRIND:-} ]]; then
        fx_check "valgrind: no errors in either daemon" eval '
                ls "$S"/valgrind.*.log "$C"/valgrind.*.log &&
                grep -q "ERROR SUMMARY: 0 errors" "$S"/valgrind.*.log &&
                grep -q "ERROR SUMMARY: 0 errors" "$C"/valgrind.*.log &&
                ! grep -l "ERROR SUMMARY: [1-9]" "$S"/valgrind.*.log "$C"/valgrind.*.log'
fi
if ((FX_FAILED > 0)); then
        for side in server client; do
                echo "---- $side log (last 40 lines) ----"
                tail -n 40 "$FX_DIR/$side/alknetd.log"
        done
fi
fx_summary
