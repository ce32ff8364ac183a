# Real-server fixtures for the shell tests and tools/bench-tunnel.sh: a private OpenSSH sshd,
# an HTTP server, a TCP sink and echo, free loopback ports, and pass/fail counting.
# Source it from bash (set -euo pipefail safe), call fx_init first; see the API list below.
#
# Every process started here is recorded by PID and stopped by PID (with its descendants) when
# the shell exits; the temp dir is removed. Only 127.0.0.1 is used.
#
# Call the fx_start_* / fx_bg / fx_make_file functions directly, never inside $(...): they set
# variables and record PIDs in the calling shell. OpenSSH takes the first value of an option:
# put -o overrides before "${FX_SSH_OPTS[@]}", and sshd_config overrides are the LINE
# arguments of fx_start_sshd (written first; no Match blocks).
#
#   fx_init                        temp dir $FX_DIR (mode 0755) and the EXIT trap
#   fx_at_exit CMD...              run CMD at exit, before the processes are stopped
#   fx_free_port                   prints a free 127.0.0.1 port (never the same one twice)
#   fx_wait_port PORT [SECONDS]    waits until something listens on 127.0.0.1:PORT
#   fx_wait_until SECONDS CMD...   polls CMD every 50 ms until it succeeds
#   fx_bg LOG CMD...               starts CMD in the background: $FX_LAST_PID, recorded
#   fx_stop PID...                 TERM (then KILL after 3 s) PID and its descendants
#   fx_stop_all                    fx_stop of everything recorded (the EXIT trap calls it)
#   fx_start_sshd [LINE...]        sshd; LINEs are sshd_config lines that take precedence
#   fx_sshd_restart [LINE...]      kill everything sshd, start it again (new LINEs if given)
#   fx_sshd_kill_all               SIGKILL the listener and every session process
#   fx_sshd_sigstop/fx_sshd_sigcont freeze/thaw the listener and every session process
#   fx_sshd_new_hostkey            new host key, restart; $FX_HOSTKEY_FP_OLD keeps the old one
#   fx_sshd_session_pids           prints the PIDs of the per-connection sshd processes
#   fx_start_http                  nginx (or python3 -m http.server) serving $FX_WWW
#   fx_make_file NAME SIZE         $FX_WWW/NAME of random bytes; SIZE in MiB, or with K/M/G
#   fx_sha256 FILE                 prints the hex sha256 of FILE
#   fx_start_sink                  TCP sink: $FX_SINK_DIR/N.sha256 and N.size per connection at EOF
#   fx_sink_wait COUNT [SECONDS]   waits for COUNT finished sink connections
#   fx_start_echo                  TCP echo server
#   fx_start_hold                  sends "x" on accept, keeps every connection open
#   fx_check NAME CMD...           runs CMD in a subshell, counts a pass or a failure, prints ok/FAIL
#   fx_pass NAME / fx_fail NAME [DETAIL]
#   fx_summary                     prints "N passed, N failed"; exits 1 on any failure
#
# Variables: FX_DIR FX_WWW FX_USER (the SSH login: the user running the test, root in CI; no
# users are created) FX_SSHD_PORT FX_SSHD_PID FX_SSHD_LOG FX_SSHD_CONFIG FX_HOSTKEY
# FX_HOSTKEY_FP FX_HOSTKEY_FP_OLD FX_KNOWN_HOSTS FX_CLIENT_KEY FX_SSH_OPTS (array: options
# for OpenSSH ssh against the fixture sshd, port included) FX_HTTP_PORT FX_HTTP_PID
# FX_HTTP_KIND (nginx|python) FX_HTTP_URL FX_HTTP_PUT (1 when PUT /upload/NAME works, into
# $FX_UPLOAD) FX_FILE FX_FILE_SHA256 (set by fx_make_file) FX_SINK_PORT FX_SINK_DIR
# FX_ECHO_PORT FX_HOLD_PORT FX_LAST_PID FX_PASSED FX_FAILED.

# Variables set here are for the sourcing script.
# shellcheck disable=SC2034

FX_DIR=
FX_PIDS=()
FX_AT_EXIT=()
FX_PASSED=0
FX_FAILED=0

_fx_log() {
        printf 'fixtures: %s\n' "$*" >&2
}

# Microseconds since the epoch (bash 5: no fork per poll).
_fx_now_us() {
        local t=$EPOCHREALTIME
        echo $((10#${t%.*} * 1000000 + 10#${t#*.}))
}

fx_init() {
        local need
        for need in ssh ssh-keygen pgrep ss; do
                command -v "$need" >/dev/null || { _fx_log "$need not found"; return 1; }
        done
        FX_DIR=$(mktemp -d /tmp/alknet-fx.XXXXXX)
        # nginx workers (nobody) and a daemon dropping privileges must reach the files.
        chmod 0755 "$FX_DIR"
        FX_WWW=$FX_DIR/www
        mkdir -m 0755 "$FX_WWW"
        : >"$FX_DIR/ports"
        FX_USER=$(id -un)
        trap _fx_exit EXIT
}

fx_at_exit() {
        local q
        printf -v q '%q ' "$@"
        FX_AT_EXIT+=("$q")
}

_fx_exit() {
        local rc=$? c
        set +e
        for c in "${FX_AT_EXIT[@]}"; do
                eval "$c"
        done
        fx_stop_all
        [[ -n $FX_DIR && -d $FX_DIR ]] && rm -rf "$FX_DIR"
        exit "$rc"
}

fx_free_port() {
        local lo hi p i
        read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
        # Below the ephemeral range, so that outgoing connections never take it meanwhile.
        for ((i = 0; i < 500; i++)); do
                p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
                ((p >= lo && p <= hi)) && continue
                grep -qx "$p" "$FX_DIR/ports" && continue
                [[ -z $(ss -Htan "( sport = :$p )" 2>/dev/null) ]] || continue
                echo "$p" >>"$FX_DIR/ports"
                echo "$p"
                return 0
        done
        _fx_log "no free port found"
        return 1
}

# fx_wait_until SECONDS CMD...: 0 as soon as CMD succeeds, 1 after SECONDS.
fx_wait_until() {
        local secs=$1 deadline
        shift
        deadline=$(($(_fx_now_us) + ${secs%.*} * 1000000))
        while ! "$@" >/dev/null 2>&1; do
                (($(_fx_now_us) < deadline)) || return 1
                sleep 0.05
        done
}

_fx_listening() {
        [[ -n $(ss -Htln "( sport = :$1 )" 2>/dev/null) ]]
}

# Checks for a listening socket instead of connecting, so that a probe never counts as a
# client (a sink would record an empty upload, sshd would log a failed connection).
fx_wait_port() {
        fx_wait_until "${2:-10}" _fx_listening "$1" || {
                _fx_log "nothing listens on 127.0.0.1:$1 after ${2:-10} s"
                return 1
        }
}

fx_bg() {
        local log=$1
        shift
        "$@" >>"$log" 2>&1 &
        FX_LAST_PID=$!
        FX_PIDS+=("$FX_LAST_PID")
}

# Descendants of PID, deepest last, by walking the parent links (pgrep -P).
_fx_descendants() {
        local c
        for c in $(pgrep -P "$1" 2>/dev/null); do
                echo "$c"
                _fx_descendants "$c"
        done
}

_fx_alive() {
        local p
        for p in "$@"; do
                # A zombie (our unreaped child) counts as gone.
                local st
                st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
                st=${st##*) }
                [[ ${st:0:1} == Z ]] && continue
                return 0
        done
        return 1
}

_fx_forget() {
        local p keep=() q
        for q in "${FX_PIDS[@]}"; do
                for p in "$@"; do
                        [[ $q == "$p" ]] && continue 2
                done
                keep+=("$q")
        done
        FX_PIDS=("${keep[@]}")
}

fx_stop() {
        local pids=() p
        for p in "$@"; do
                [[ -n $p ]] || continue
                # shellcheck disable=SC2207 # PIDs: plain words
                pids+=("$p" $(_fx_descendants "$p"))
        done
        ((${#pids[@]})) || return 0
        kill -TERM "${pids[@]}" 2>/dev/null || true
        kill -CONT "${pids[@]}" 2>/dev/null || true
        if ! fx_wait_until 3 eval '! _fx_alive '"${pids[*]}"; then
                kill -KILL "${pids[@]}" 2>/dev/null || true
        fi
        # Our own children: reaped here (no "Killed" job notice later); descendants that
        # were reparented are reaped by their new parent.
        for p in "$@"; do
                wait "$p" 2>/dev/null || true
        done
        fx_wait_until 2 eval '! _fx_alive '"${pids[*]}" || true
        _fx_forget "$@"
        return 0
}

fx_stop_all() {
        local i
        for ((i = ${#FX_PIDS[@]} - 1; i >= 0; i--)); do
                fx_stop "${FX_PIDS[i]}"
        done
        FX_PIDS=()
}

# ---- sshd ----

_fx_sshd_write_config() {
        local line
        {
                # sshd takes the first value of a keyword: the caller's lines go first.
                for line in "$@"; do
                        printf '%s\n' "$line"
                done
                cat <<EOF
ListenAddress 127.0.0.1:$FX_SSHD_PORT
HostKey $FX_HOSTKEY
PidFile $FX_DIR/sshd.pid
AuthorizedKeysFile $FX_DIR/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
GatewayPorts no
PermitTunnel no
X11Forwarding no
PermitUserEnvironment no
UseDNS no
PrintMotd no
MaxStartups 100:30:200
LogLevel VERBOSE
EOF
        } >"$FX_SSHD_CONFIG"
}

_fx_sshd_gen_hostkey() {
        rm -f "$FX_HOSTKEY" "$FX_HOSTKEY.pub"
        ssh-keygen -q -t ed25519 -N '' -C alknet-test-host -f "$FX_HOSTKEY" >/dev/null
        FX_HOSTKEY_FP=$(ssh-keygen -lf "$FX_HOSTKEY.pub" | awk '{print $2}')
        printf '[127.0.0.1]:%s %s\n' "$FX_SSHD_PORT" "$(cut -d' ' -f1-2 "$FX_HOSTKEY.pub")" >"$FX_KNOWN_HOSTS"
        export FX_HOSTKEY_FP FX_KNOWN_HOSTS
}

_fx_sshd_launch() {
        local n
        # Privilege separation needs this directory when sshd runs as root (Debian's unit
        # creates it; there is no unit here).
        [[ $EUID -ne 0 || -d /run/sshd ]] || mkdir -m 0755 /run/sshd
        /usr/sbin/sshd -t -f "$FX_SSHD_CONFIG" || { _fx_log "sshd rejects $FX_SSHD_CONFIG"; return 1; }
        n=$(grep -c "Server listening on 127.0.0.1 port $FX_SSHD_PORT" "$FX_SSHD_LOG" 2>/dev/null || true)
        # -D: stays in the foreground so $! is the listener; -e: logs to stderr (the log file).
        fx_bg "$FX_SSHD_LOG" /usr/sbin/sshd -D -e -f "$FX_SSHD_CONFIG"
        FX_SSHD_PID=$FX_LAST_PID
        export FX_SSHD_PID
        if ! fx_wait_until 10 eval \
                '(( $(grep -c "Server listening on 127.0.0.1 port $FX_SSHD_PORT" "$FX_SSHD_LOG") > '"${n:-0}"' ))'; then
                _fx_log "sshd did not start; its log:"
                tail -n 20 "$FX_SSHD_LOG" >&2
                return 1
        fi
}

fx_start_sshd() {
        [[ -x /usr/sbin/sshd ]] || { _fx_log "/usr/sbin/sshd not found"; return 1; }
        FX_SSHD_PORT=$(fx_free_port)
        FX_SSHD_CONFIG=$FX_DIR/sshd_config
        FX_SSHD_LOG=$FX_DIR/sshd.log
        FX_HOSTKEY=$FX_DIR/ssh_host_ed25519_key
        FX_KNOWN_HOSTS=$FX_DIR/known_hosts
        FX_CLIENT_KEY=$FX_DIR/client_ed25519
        FX_HOSTKEY_FP_OLD=
        export FX_SSHD_PORT FX_CLIENT_KEY FX_USER
        _fx_sshd_gen_hostkey
        ssh-keygen -q -t ed25519 -N '' -C alknet-test-client -f "$FX_CLIENT_KEY" >/dev/null
        cp "$FX_CLIENT_KEY.pub" "$FX_DIR/authorized_keys"
        chmod 0644 "$FX_DIR/authorized_keys"
        FX_SSH_OPTS=(-F /dev/null -i "$FX_CLIENT_KEY" -o IdentitiesOnly=yes -o BatchMode=yes
                -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$FX_KNOWN_HOSTS"
                -o GlobalKnownHostsFile=/dev/null -o ExitOnForwardFailure=yes
                -p "$FX_SSHD_PORT" -l "$FX_USER")
        _fx_sshd_write_config "$@"
        _fx_sshd_launch
}

# The per-connection processes (privsep monitor, pre-auth and session children).
fx_sshd_session_pids() {
        [[ -n ${FX_SSHD_PID:-} ]] && _fx_descendants "$FX_SSHD_PID"
        return 0
}

fx_sshd_kill_all() {
        local pids=() more i p
        [[ -n ${FX_SSHD_PID:-} ]] || return 0
        # Freeze first: the listener cannot fork new sessions and no child can fork a
        # grandchild that would escape the walk. Orphans would be reparented away from us.
        kill -STOP "$FX_SSHD_PID" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
                more=()
                for p in $(_fx_descendants "$FX_SSHD_PID"); do
                        [[ " ${pids[*]} " == *" $p "* ]] || more+=("$p")
                done
                ((${#more[@]})) || break
                kill -STOP "${more[@]}" 2>/dev/null || true
                pids+=("${more[@]}")
        done
        kill -KILL "$FX_SSHD_PID" "${pids[@]}" 2>/dev/null || true
        # Reaped right here, so that bash prints no "Killed" job notice later.
        wait "$FX_SSHD_PID" 2>/dev/null || true
        fx_wait_until 5 eval '! _fx_alive '"${pids[*]}" || true
        _fx_forget "$FX_SSHD_PID"
        FX_SSHD_PID=
        return 0
}

fx_sshd_restart() {
        fx_sshd_kill_all
        (($#)) && _fx_sshd_write_config "$@"
        _fx_sshd_launch
}

_fx_sshd_tree() {
        [[ -n ${FX_SSHD_PID:-} ]] || return 0
        echo "$FX_SSHD_PID"
        _fx_descendants "$FX_SSHD_PID"
}

# A path that loses packets without FIN/RST: every sshd process stops.
fx_sshd_sigstop() {
        local p i
        # Twice, in case a child forked between the walk and the signal.
        for i in 1 2; do
                for p in $(_fx_sshd_tree); do
                        kill -STOP "$p" 2>/dev/null || true
                done
        done
        return 0
}

fx_sshd_sigcont() {
        local p
        for p in $(_fx_sshd_tree); do
                kill -CONT "$p" 2>/dev/null || true
        done
        return 0
}

# The names the tunnel-test brief used.
fx_sshd_stop_sigstop() { fx_sshd_sigstop; }
fx_sshd_stop_sigcont() { fx_sshd_sigcont; }

fx_sshd_new_hostkey() {
        FX_HOSTKEY_FP_OLD=$FX_HOSTKEY_FP
        export FX_HOSTKEY_FP_OLD
        fx_sshd_kill_all
        _fx_sshd_gen_hostkey
        _fx_sshd_launch
}

# ---- HTTP ----

_fx_start_nginx() {
        local user_line=
        [[ $EUID -eq 0 ]] && user_line="user nobody nogroup;"
        mkdir -p "$FX_DIR/nginx"
        FX_UPLOAD=$FX_DIR/upload
        mkdir -p "$FX_UPLOAD"
        # Workers (nobody) write uploads here; the dir is private to this test run.
        chmod 0777 "$FX_UPLOAD"
        cat >"$FX_DIR/nginx/nginx.conf" <<EOF
$user_line
worker_processes 1;
pid $FX_DIR/nginx/nginx.pid;
error_log $FX_DIR/nginx/error.log warn;
daemon off;
events { worker_connections 8192; }
http {
        access_log off;
        sendfile on;
        tcp_nopush on;
        keepalive_requests 100000;
        client_max_body_size 0;
        client_body_temp_path $FX_DIR/nginx/body;
        proxy_temp_path $FX_DIR/nginx/proxy;
        fastcgi_temp_path $FX_DIR/nginx/fastcgi;
        uwsgi_temp_path $FX_DIR/nginx/uwsgi;
        scgi_temp_path $FX_DIR/nginx/scgi;
        default_type application/octet-stream;
        server {
                listen 127.0.0.1:$FX_HTTP_PORT backlog=4096;
                root $FX_WWW;
                location /upload/ {
                        alias $FX_UPLOAD/;
                        dav_methods PUT;
                        create_full_put_path off;
                }
        }
}
EOF
        fx_bg "$FX_DIR/nginx/stderr.log" nginx -e "$FX_DIR/nginx/error.log" -p "$FX_DIR/nginx/" -c "$FX_DIR/nginx/nginx.conf"
        FX_HTTP_PID=$FX_LAST_PID
        FX_HTTP_KIND=nginx
        FX_HTTP_PUT=1
}

_fx_start_python_http() {
        fx_bg "$FX_DIR/http.log" python3 -m http.server --bind 127.0.0.1 --directory "$FX_WWW" "$FX_HTTP_PORT"
        FX_HTTP_PID=$FX_LAST_PID
        FX_HTTP_KIND=python
        FX_HTTP_PUT=0
}

fx_start_http() {
        FX_HTTP_PORT=$(fx_free_port)
        if command -v nginx >/dev/null && [[ ${FX_HTTP_FORCE_PYTHON:-0} != 1 ]]; then
                _fx_start_nginx
        else
                command -v python3 >/dev/null || { _fx_log "neither nginx nor python3 found"; return 1; }
                _fx_start_python_http
        fi
        FX_HTTP_URL=http://127.0.0.1:$FX_HTTP_PORT
        export FX_HTTP_PORT FX_HTTP_URL FX_HTTP_KIND FX_HTTP_PUT
        if ! fx_wait_port "$FX_HTTP_PORT" 10; then
                cat "$FX_DIR"/nginx/*.log "$FX_DIR/http.log" 2>/dev/null | tail -n 20 >&2
                return 1
        fi
}

fx_sha256() {
        sha256sum "$1" | cut -d' ' -f1
}

fx_make_file() {
        local name=$1 size=$2
        [[ $size =~ ^[0-9]+$ ]] && size=${size}M
        FX_FILE=$FX_WWW/$name
        head -c "$size" /dev/urandom >"$FX_FILE"
        chmod 0644 "$FX_FILE"
        FX_FILE_SHA256=$(fx_sha256 "$FX_FILE")
}

# ---- raw TCP targets ----

# One asyncio process serves the raw TCP fixtures (a fork per connection would be 1,000
# processes for the benchmark's held channels).
_fx_write_tcp_server() {
        [[ -e $FX_DIR/fx-tcp.py ]] && return 0
        cat >"$FX_DIR/fx-tcp.py" <<'PY'
"""Loopback TCP fixtures: sink (sha256 per connection), echo, hold (sends one byte, keeps open)."""
import asyncio, hashlib, os, resource, sys

mode, port = sys.argv[1], int(sys.argv[2])
outdir = sys.argv[3] if len(sys.argv) > 3 else None
seq = 0
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

async def sink(r, w):
    global seq
    seq += 1
    n, h, size = seq, hashlib.sha256(), 0
    while data := await r.read(1 << 16):
        h.update(data)
        size += len(data)
    tmp = os.path.join(outdir, f".{n}.tmp")
    with open(tmp, "w") as f:
        f.write(h.hexdigest() + "\n")
    os.rename(tmp, os.path.join(outdir, f"{n}.sha256"))
    with open(os.path.join(outdir, f"{n}.size"), "w") as f:
        f.write(f"{size}\n")
    w.close()

async def echo(r, w):
    while data := await r.read(1 << 16):
        w.write(data)
        await w.drain()
    w.close()

async def hold(r, w):
    w.write(b"x")
    await w.drain()
    while await r.read(1 << 12):
        pass
    w.close()

async def main():
    handler = {"sink": sink, "echo": echo, "hold": hold}[mode]
    server = await asyncio.start_server(handler, "127.0.0.1", port, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
PY
}

# _fx_start_tcp MODE PORT [DIR]
_fx_start_tcp() {
        command -v python3 >/dev/null || { _fx_log "python3 not found"; return 1; }
        _fx_write_tcp_server
        fx_bg "$FX_DIR/tcp-$1.log" python3 "$FX_DIR/fx-tcp.py" "$@"
        fx_wait_port "$2" 10
}

fx_start_sink() {
        FX_SINK_PORT=$(fx_free_port)
        FX_SINK_DIR=$FX_DIR/sink
        mkdir -p "$FX_SINK_DIR"
        export FX_SINK_PORT FX_SINK_DIR
        _fx_start_tcp sink "$FX_SINK_PORT" "$FX_SINK_DIR"
}

_fx_sink_count_ge() {
        local files=("$FX_SINK_DIR"/*.sha256)
        [[ -e ${files[0]} ]] || files=()
        ((${#files[@]} >= $1))
}

fx_sink_wait() {
        fx_wait_until "${2:-30}" _fx_sink_count_ge "$1"
}

fx_start_echo() {
        FX_ECHO_PORT=$(fx_free_port)
        export FX_ECHO_PORT
        _fx_start_tcp echo "$FX_ECHO_PORT"
}

# A server that sends one byte on accept and keeps every connection open until the peer
# closes it: a held channel is then proven end to end.
fx_start_hold() {
        FX_HOLD_PORT=$(fx_free_port)
        export FX_HOLD_PORT
        _fx_start_tcp hold "$FX_HOLD_PORT"
}

# ---- results ----

fx_pass() {
        FX_PASSED=$((FX_PASSED + 1))
        printf 'ok   %s\n' "$1"
}

fx_fail() {
        FX_FAILED=$((FX_FAILED + 1))
        printf 'FAIL %s\n' "$1"
        [[ -z ${2:-} ]] || printf '%s\n' "$2" | sed 's/^/       /'
        return 0
}

fx_check() {
        local name=$1 out rc
        shift
        out=$FX_DIR/check.out
        # A subshell: an `exit` or a set -e failure inside CMD ends only the check.
        if ("$@") >"$out" 2>&1; then
                fx_pass "$name"
        else
                rc=$?
                fx_fail "$name" "$(printf 'exit %s: %s\n' "$rc" "$*"; tail -c 2000 "$out")"
        fi
}

fx_summary() {
        echo "$FX_PASSED passed, $FX_FAILED failed"
        ((FX_FAILED == 0)) || exit 1
}
