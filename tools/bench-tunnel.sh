#!/bin/bash
# Benchmark (not a test): alknetd against OpenSSH `ssh -N -D`, both through the same private
# sshd on 127.0.0.1 in one run; then alknetd's server role against sshd. Prints each number
# for both and the ratio.
#
# Usage: tools/bench-tunnel.sh [--build DIR] [--ssh-only] [--no-server-role] [--size MIB]
#                              [--rounds N] [--requests N] [--concurrency N] [--channels N]
#   --build DIR       where alknetd and alknetctl are built (default: $ALKNET_BUILD_ROOT or ./build;
#                     $ALKNETD and $ALKNETCTL override)
#   --ssh-only        measure the ssh -D baseline only (no server role either)
#   --no-server-role  skip the rows of a second alknetd as the server (--server-role: default)
#   --size MIB        bulk download size (default 1024)
#   --rounds N        bulk and request rounds per tool, the median is shown (default 3)
#   --requests N      small HTTP requests per round (default 5000)
#   --concurrency N   requests in flight at once (default 200)
#   --channels N      SOCKS connections held open for the RSS figure (default 1000)
#
# Targets from issue 3: bulk >= 1.0x ssh -D, requests/s >= 1.2x, p99 <= ssh -D. From issue 4:
# alknetd client -> alknetd server bulk >= 1.5x ssh -D -> sshd.
#
# The server role: a second alknetd with a [Server] section, measured twice, from an alknetd
# client profile and from `ssh -N -D`; the baseline is the ssh -D -> sshd column of the same
# run. Each cipher row restricts the alknetd server with its [Server] Ciphers= the way sshd
# is restricted with its Ciphers. Every row says the cipher that was actually negotiated,
# read from libssh's log of a probe client.
#
# Needs nginx (tools/deps.sh installs it), curl, python3, OpenSSH. Everything stays on loopback
# and stops by PID when the script exits.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ALKNET_BUILD_ROOT:-$ROOT/build}
SSH_ONLY=0
SERVER_ROLE=1
SIZE_MIB=1024
ROUNDS=3
REQUESTS=5000
CONCURRENCY=200
CHANNELS=1000
CIPHERS=(chacha20-poly1305@openssh.com aes128-gcm@openssh.com)

die() {
        echo "bench-tunnel: $*" >&2
        exit 1
}

usage() {
        sed -n '6,16p' "$0" | sed 's/^# \{0,1\}//'
        exit "${1:-2}"
}

posint() {
        [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive integer, not '$2'"
        echo "$2"
}

while (($#)); do
        case $1 in
        --build) BUILD=${2:?--build needs a directory}; shift ;;
        --ssh-only) SSH_ONLY=1 ;;
        --server-role) SERVER_ROLE=1 ;;
        --no-server-role) SERVER_ROLE=0 ;;
        --size) SIZE_MIB=$(posint "$1" "${2-}"); shift ;;
        --rounds) ROUNDS=$(posint "$1" "${2-}"); shift ;;
        --requests) REQUESTS=$(posint "$1" "${2-}"); shift ;;
        --concurrency) CONCURRENCY=$(posint "$1" "${2-}"); shift ;;
        --channels) CHANNELS=$(posint "$1" "${2-}"); shift ;;
        -h | --help) usage 0 ;;
        *) echo "bench-tunnel: unknown argument '$1'" >&2; usage 2 ;;
        esac
        shift
done
((ROUNDS <= 20 && SIZE_MIB <= 8192 && REQUESTS <= 100000 && CONCURRENCY <= 2000 && CHANNELS <= 10000)) ||
        die "limits: --rounds 20, --size 8192, --requests 100000, --concurrency 2000, --channels 10000"

((!SSH_ONLY)) || SERVER_ROLE=0

ALKNETD=${ALKNETD:-$BUILD/src/daemon/alknetd}
ALKNETCTL=${ALKNETCTL:-$BUILD/src/ctl/alknetctl}
if ((!SSH_ONLY)); then
        [[ -x $ALKNETD && -x $ALKNETCTL ]] ||
                die "no alknetd/alknetctl in $BUILD (build first, give --build DIR, or use --ssh-only)"
fi
for need in curl python3 nginx ssh; do
        command -v "$need" >/dev/null || die "$need not found (tools/deps.sh installs the test packages)"
done

# Both tunnels hold --channels sockets at once on each side of every hop.
hard=$(ulimit -Hn)
want=$((CHANNELS * 4 + 1024))
[[ $hard == unlimited ]] || ((want <= hard)) || want=$hard
ulimit -n "$want"

# shellcheck source=SCRIPTDIR/../tests/lib/fixtures.sh
. "$ROOT/tests/lib/fixtures.sh"
fx_init
fx_start_sshd "Ciphers ${CIPHERS[0]}"
fx_start_http
[[ $FX_HTTP_KIND == nginx ]] || die "nginx did not start; see its log in $FX_DIR/nginx"
fx_start_hold
fx_make_file check.bin 16
CHECK_SHA=$FX_FILE_SHA256
fx_make_file small.bin 1K
SMALL_BYTES=1024

cat >"$FX_DIR/socks-hold.py" <<'PY'
"""Holds many SOCKS5 channels open and reads a process's RSS meanwhile. Usage: PROXY_PORT
TARGET_PORT COUNT PID. Speaks RFC 1928 itself: no-auth, then CONNECT to 127.0.0.1 (IPv4)."""
import asyncio, json, resource, socket, sys, time

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def socks_open(proxy_port, port):
    r, w = await asyncio.open_connection("127.0.0.1", proxy_port)
    w.write(b"\x05\x01\x00")
    await w.drain()
    if await r.readexactly(2) != b"\x05\x00":
        raise OSError("SOCKS method refused")
    w.write(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + port.to_bytes(2, "big"))
    await w.drain()
    rep = await r.readexactly(4)
    if rep[1] != 0:
        raise OSError(f"SOCKS reply {rep[1]}")
    await r.readexactly({1: 4, 4: 16}.get(rep[3], 0) + 2)
    return r, w


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def hold(proxy_port, port, count, pid):
    sem = asyncio.Semaphore(64)  # opens in flight: a listen backlog of 128 must not overflow
    conns, errors = [], [0]

    async def open_one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(socks_open(proxy_port, port), 20)
                if await asyncio.wait_for(r.readexactly(1), 20) != b"x":
                    raise OSError("hold server did not greet")
                conns.append(w)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                errors[0] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(open_one() for _ in range(count)))
    wall = time.perf_counter() - t0
    await asyncio.sleep(0.5)  # let the tunnel settle its buffers before reading RSS
    rss = rss_kib(pid)
    for w in conns:
        w.close()
    return {"held": len(conns), "errors": errors[0], "rss_kib": rss, "seconds": wall}


print(json.dumps(asyncio.run(hold(*map(int, sys.argv[1:])))))
PY

pyjson() {
        python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

median() {
        printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

# ---- the tunnels ----
# Tools, by key: alk = alknetd client -> sshd, ssh = ssh -D -> sshd, and for the server role
# alks = alknetd client -> alknetd server, ssha = ssh -D -> alknetd server.

SSH_SOCKS=$(fx_free_port)
ALK_SOCKS=$(fx_free_port)
ALKS_SOCKS=$(fx_free_port)
SSHA_SOCKS=$(fx_free_port)
SRV_PORT=$(fx_free_port)
SSH_PID=
ALK_PID=
SSHA_PID=
SRV_PID=
SRV_USER=alknet

port_of() {
        case $1 in
        ssh) echo "$SSH_SOCKS" ;;
        alk) echo "$ALK_SOCKS" ;;
        alks) echo "$ALKS_SOCKS" ;;
        ssha) echo "$SSHA_SOCKS" ;;
        *) echo direct ;;
        esac
}

name_of() {
        case $1 in
        ssh) echo "ssh -D -> sshd" ;;
        alk) echo "alknetd -> sshd" ;;
        alks) echo "alknetd -> alknetd server" ;;
        ssha) echo "ssh -D -> alknetd server" ;;
        *) echo "$1" ;;
        esac
}

ssh_up() {
        fx_bg "$FX_DIR/ssh-D.log" ssh "${FX_SSH_OPTS[@]}" -N -D "127.0.0.1:$SSH_SOCKS" 127.0.0.1
        SSH_PID=$FX_LAST_PID
        fx_wait_port "$SSH_SOCKS" 10 || die "ssh -D did not come up; $(tail -n 5 "$FX_DIR/ssh-D.log")"
        tunnel_works "$SSH_SOCKS" || die "no data through ssh -D; $(tail -n 5 "$FX_DIR/ssh-D.log")"
}

ssh_down() {
        fx_stop "$SSH_PID"
        SSH_PID=
}

ctl() {
        "$ALKNETCTL" --socket "$FX_DIR/control" --timeout 20 "$@"
}

tunnel_works() {
        curl -sS --fail --max-time 5 -x "socks5h://127.0.0.1:$1" -o "$FX_DIR/check.out" "$FX_HTTP_URL/check.bin" &&
                [[ $(fx_sha256 "$FX_DIR/check.out") == "$CHECK_SHA" ]]
}

# alk_fail PROFILE MESSAGE
alk_fail() {
        {
                echo "bench-tunnel: alknetd could not bring the tunnel $1 up: $2"
                echo "---- alknetctl status $1:"
                ctl status "$1" 2>&1 | head -n 20 || true
                echo "---- alknetd log (last 30 lines):"
                tail -n 30 "$FX_DIR/alknetd.log"
                if [[ $1 == benchsrv ]]; then
                        echo "---- alknetd server log (last 30 lines):"
                        tail -n 30 "$FX_DIR/srv.log"
                        echo "---- (--no-server-role skips the server role)"
                fi
                echo "---- (tools/bench-tunnel.sh --ssh-only measures the ssh -D baseline alone)"
        } >&2
        exit 1
}

alk_start() {
        mkdir -p "$FX_DIR/etc/profiles.d" "$FX_DIR/state"
        fx_bg "$FX_DIR/alknetd.log" "$ALKNETD" --control "$FX_DIR/control" \
                --config-dir "$FX_DIR/etc" --state-dir "$FX_DIR/state"
        ALK_PID=$FX_LAST_PID
        fx_wait_until 10 ctl list || alk_fail bench "its control socket does not answer"
        ctl add bench "Server=127.0.0.1:$FX_SSHD_PORT" "User=$FX_USER" "Identity=$FX_CLIENT_KEY" \
                "HostKey=$FX_HOSTKEY_FP" "Listen=127.0.0.1:$ALK_SOCKS" AutoStart=yes >"$FX_DIR/ctl.out" 2>&1 ||
                alk_fail bench "alknetctl add: $(cat "$FX_DIR/ctl.out")"
}

# alk_up [PROFILE PORT]: `up` waits for the first attempt; then what counts is data through
# the SOCKS port.
alk_up() {
        local p=${1:-bench} port=${2:-$ALK_SOCKS}
        ctl up "$p" >"$FX_DIR/ctl.out" 2>&1 || alk_fail "$p" "alknetctl up $p: $(cat "$FX_DIR/ctl.out")"
        fx_wait_until 20 tunnel_works "$port" ||
                alk_fail "$p" "alknetctl up $p succeeded, but no data passes through 127.0.0.1:$port in 20 s"
}

alk_down() {
        local p=${1:-bench}
        ctl down "$p" >"$FX_DIR/ctl.out" 2>&1 || alk_fail "$p" "alknetctl down $p: $(cat "$FX_DIR/ctl.out")"
}

# ---- the server role ----

# srv_start [CIPHER]: the second alknetd, with only a [Server] section; restricted to CIPHER
# when given. The host key is generated on the first start and kept.
srv_start() {
        local cmd
        mkdir -p "$FX_DIR/srv/etc" "$FX_DIR/srv/state"
        cat >"$FX_DIR/srv/etc/alknetd.conf" <<EOC
[Server]
Listen=tcp:127.0.0.1:$SRV_PORT
AuthorizedKeys=$FX_DIR/authorized_keys
Ciphers=${1:-}
EOC
        cmd=("$ALKNETD" --control "$FX_DIR/srv/control" --config-dir "$FX_DIR/srv/etc" --state-dir "$FX_DIR/srv/state")
        fx_bg "$FX_DIR/srv.log" "${cmd[@]}"
        SRV_PID=$FX_LAST_PID
        fx_wait_port "$SRV_PORT" 10 || die "the alknetd server did not listen; $(tail -n 10 "$FX_DIR/srv.log")"
        if [[ -z ${SRV_FP:-} ]]; then
                local key=$FX_DIR/srv/state/ssh_host_ed25519_key
                fx_wait_until 5 test -s "$key" || die "the alknetd server wrote no host key $key"
                SRV_FP=$(ssh-keygen -lf <(ssh-keygen -y -f "$key") | awk '{print $2}')
                printf '[127.0.0.1]:%s %s\n' "$SRV_PORT" "$(ssh-keygen -y -f "$key" | cut -d' ' -f1-2)" \
                        >"$FX_DIR/srv/known_hosts"
                SSHA_OPTS=(-F /dev/null -i "$FX_CLIENT_KEY" -o IdentitiesOnly=yes -o BatchMode=yes
                        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$FX_DIR/srv/known_hosts"
                        -o GlobalKnownHostsFile=/dev/null -o ExitOnForwardFailure=yes
                        -p "$SRV_PORT" -l "$SRV_USER")
        fi
}

srv_stop() {
        fx_stop "$SRV_PID"
        SRV_PID=
}

# ssha_up [CIPHER]: ssh -D against the alknetd server, offering CIPHER only when given.
ssha_up() {
        local c=()
        [[ -z ${1:-} ]] || c=(-c "$1")
        fx_bg "$FX_DIR/ssh-D-srv.log" ssh "${SSHA_OPTS[@]}" "${c[@]}" -N -D "127.0.0.1:$SSHA_SOCKS" 127.0.0.1
        SSHA_PID=$FX_LAST_PID
        fx_wait_port "$SSHA_SOCKS" 10 || die "ssh -D to the alknetd server did not come up; $(tail -n 5 "$FX_DIR/ssh-D-srv.log")"
        tunnel_works "$SSHA_SOCKS" ||
                die "no data through ssh -D to the alknetd server; $(tail -n 5 "$FX_DIR/ssh-D-srv.log")"
}

ssha_down() {
        fx_stop "$SSHA_PID"
        SSHA_PID=
}

# ssh_cipher [-c CIPHER] SSH-OPTIONS...: the server->client cipher OpenSSH's ssh negotiates.
ssh_cipher() {
        { timeout 10 ssh -v "$@" -W "127.0.0.1:$FX_HOLD_PORT" 127.0.0.1 </dev/null 2>&1 || true; } |
                awk '/kex: server->client cipher:/ && !c {c = $5} END {print c}'
}

# The cipher an alknetd client negotiates with the alknetd server as it runs now, from
# libssh's own log (ALKNET_LIBSSH_VERBOSITY) of a short-lived probe daemon: the measured
# client stays quiet. Prints "c2s" or "c2s/s2c" when the directions differ.
alks_cipher() {
        local d=$FX_DIR/probe port pid out=
        rm -rf "$d"
        mkdir -p "$d/etc" "$d/state"
        port=$(fx_free_port)
        ALKNET_LIBSSH_VERBOSITY=2 fx_bg "$d/log" "$ALKNETD" --control "$d/control" \
                --config-dir "$d/etc" --state-dir "$d/state"
        pid=$FX_LAST_PID
        if fx_wait_until 10 "$ALKNETCTL" --socket "$d/control" list &&
                "$ALKNETCTL" --socket "$d/control" --timeout 20 add probe "Server=127.0.0.1:$SRV_PORT" \
                        "User=$SRV_USER" "Identity=$FX_CLIENT_KEY" "HostKey=$SRV_FP" "Listen=127.0.0.1:$port" \
                        AutoStart=yes >/dev/null 2>&1 &&
                "$ALKNETCTL" --socket "$d/control" --timeout 20 up probe >/dev/null 2>&1 &&
                fx_wait_until 10 grep -q 'Negotiated' "$d/log"; then
                # "[date time, 2] ssh_kex_select_methods:  Negotiated kex,hostkey,c2s,s2c,..."
                out=$(awk '/ssh_kex_select_methods: +Negotiated / {
                                sub(/.*Negotiated /, ""); split($0, f, ",")
                                print (f[3] == f[4] ? f[3] : f[3] "/" f[4]); exit
                        }' "$d/log")
        fi
        fx_stop "$pid"
        echo "${out:-unknown}"
}

# ---- measurements ----

# bulk PORT: MiB/s of one download of bulk.bin through the SOCKS port.
bulk() {
        local out size speed
        out=$(curl -sS --fail --max-time 300 -x "socks5h://127.0.0.1:$1" -o /dev/null \
                -w '%{size_download} %{speed_download}' "$FX_HTTP_URL/bulk.bin") || die "bulk download through port $1 failed"
        read -r size speed <<<"$out"
        ((size == BULK_BYTES)) || die "bulk download through port $1: $size bytes, expected $BULK_BYTES"
        awk -v s="$speed" 'BEGIN {printf "%.0f", s / 1048576}'
}

# SYNs dropped because a listen queue was full (host-wide; each costs the client a 1 s
# retransmit, which is what a p99 near 1,000 ms means).
listen_overflows() {
        nstat -asz TcpExtListenOverflows 2>/dev/null | awk '$1 == "TcpExtListenOverflows" {print $2; f=1} END {if (!f) print 0}'
}

# small PORT|direct: prints "req/s p50_ms p99_ms failed overflows" of one round. curl's parallel mode
# is an event loop in C: one process, ten times the rate ssh -D reaches here, so the client
# is not what is measured. Connection: close makes every request a new SOCKS connection.
small() {
        local proxy=() t0 t1 o0 o1
        [[ $1 == direct ]] || proxy=(-x "socks5h://127.0.0.1:$1")
        t0=$EPOCHREALTIME
        o0=$(listen_overflows)
        curl -s --no-progress-meter -Z --parallel-max "$CONCURRENCY" --parallel-immediate "${proxy[@]}" \
                --max-time 30 -H 'Connection: close' -o /dev/null \
                -w '%{http_code} %{size_download} %{time_total} %{errormsg}\n' \
                "$FX_HTTP_URL/small.bin?[1-$REQUESTS]" >"$FX_DIR/small.out" 2>>"$FX_DIR/small.err" || true
        t1=$EPOCHREALTIME
        o1=$(listen_overflows)
        # The commonest failure, to name it in the report.
        awk -v size="$SMALL_BYTES" '!($1 == 200 && $2 == size) { $2 = $3 = ""; print }' "$FX_DIR/small.out" |
                sed -E 's/after [0-9]+ ms/after N ms/; s/port [0-9]+/port N/g' >>"$FX_DIR/fail-$1.txt"
        awk -v size="$SMALL_BYTES" '$1 == 200 && $2 == size { print $3 * 1000 }' "$FX_DIR/small.out" |
                sort -g | awk -v t0="$t0" -v t1="$t1" -v n="$REQUESTS" -v o=$((o1 - o0)) '
                        { t[NR] = $1 }
                        END {
                                p50 = NR ? t[int((NR - 1) * 0.50) + 1] : 0
                                p99 = NR ? t[int((NR - 1) * 0.99) + 1] : 0
                                printf "%.0f %.1f %.1f %d %d\n", NR / (t1 - t0), p50, p99, n - NR, o
                        }'
}

rss_mib() {
        awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}

# held PORT PID: prints "rss_mib held errors" with CHANNELS connections open through PORT.
held() {
        local j
        j=$(python3 "$FX_DIR/socks-hold.py" "$1" "$FX_HOLD_PORT" "$CHANNELS" "$2")
        printf '%s %s %s\n' "$(awk -v k="$(pyjson rss_kib <<<"$j")" 'BEGIN {printf "%.1f", k / 1024}')" \
                "$(pyjson held <<<"$j")" "$(pyjson errors <<<"$j")"
}

declare -A R   # results: R[metric,tool]
declare -A NEG # ciphers negotiated: NEG[phase,tool], phase "req" or a cipher's short name
declare -A RAW # every round's figure, for the spread: RAW[metric,tool]

tools=(ssh)
((SSH_ONLY)) || tools=(alk ssh)
srv_tools=()
((!SERVER_ROLE)) || srv_tools=(alks ssha)

if ((!SSH_ONLY)); then
        alk_start
        alk_up
        R[rss_idle,alk]=$(rss_mib "$ALK_PID")
fi
ssh_up
R[rss_idle,ssh]=$(rss_mib "$SSH_PID")

echo "bench-tunnel: holding $CHANNELS channels open..."
for t in "${tools[@]}"; do
        if [[ $t == ssh ]]; then pid=$SSH_PID; else pid=$ALK_PID; fi
        out=$(held "$(port_of "$t")" "$pid")
        read -r "R[rss_held,$t]" "R[held,$t]" "R[held_err,$t]" <<<"$out"
done

# Added after the RSS figures, so that they are of the one tunnel to sshd. The request rounds
# run against the server as it is deployed, without a cipher restriction.
if ((SERVER_ROLE)); then
        echo "bench-tunnel: the server role, a second alknetd on 127.0.0.1:$SRV_PORT..."
        srv_start
        ctl add benchsrv "Server=127.0.0.1:$SRV_PORT" "User=$SRV_USER" "Identity=$FX_CLIENT_KEY" \
                "HostKey=$SRV_FP" "Listen=127.0.0.1:$ALKS_SOCKS" AutoStart=yes >"$FX_DIR/ctl.out" 2>&1 ||
                alk_fail benchsrv "alknetctl add: $(cat "$FX_DIR/ctl.out")"
        alk_up benchsrv "$ALKS_SOCKS"
        ssha_up "${CIPHERS[0]}"
        NEG[req,alks]=$(alks_cipher)
        NEG[req,ssha]=$(ssh_cipher -c "${CIPHERS[0]}" "${SSHA_OPTS[@]}")
fi

echo "bench-tunnel: $ROUNDS rounds of $REQUESTS requests, $CONCURRENCY at once..."
declare -A RPS P50 P99 ERRS OVF
for ((i = 0; i < ROUNDS; i++)); do
        for t in direct "${tools[@]}" "${srv_tools[@]}"; do
                out=$(small "$(port_of "$t")")
                read -r a b c d e <<<"$out"
                RPS[$t]+="$a " P50[$t]+="$b " P99[$t]+="$c " ERRS[$t]=$((${ERRS[$t]:-0} + d))
                OVF[$t]=$((${OVF[$t]:-0} + e))
        done
done
for t in direct "${tools[@]}" "${srv_tools[@]}"; do
        # shellcheck disable=SC2086
        R[rps,$t]=$(median ${RPS[$t]}) R[p50,$t]=$(median ${P50[$t]}) R[p99,$t]=$(median ${P99[$t]})
        RAW[rps,$t]=${RPS[$t]}
        R[req_err,$t]=${ERRS[$t]} R[ovf,$t]=${OVF[$t]}
done

echo "bench-tunnel: making a $SIZE_MIB MiB file of random bytes..."
fx_make_file bulk.bin "$SIZE_MIB"
BULK_BYTES=$(stat -c %s "$FX_FILE")

for c in "${CIPHERS[@]}"; do
        short=${c%%@*}
        if [[ $c != "${CIPHERS[0]}" ]]; then
                ssh_down
                ((SSH_ONLY)) || alk_down
                fx_sshd_restart "Ciphers $c"
                ((SSH_ONLY)) || alk_up
                ssh_up
        fi
        # The sshd offers this one cipher only; a probe shows what a client actually gets.
        [[ $(ssh_cipher "${FX_SSH_OPTS[@]}") == "$c" ]] || die "sshd does not negotiate $c"
        NEG[req,ssh]=${NEG[req,ssh]:-$c}
        if ((SERVER_ROLE)); then
                ssha_down
                alk_down benchsrv
                srv_stop
                srv_start "$c"
                alk_up benchsrv "$ALKS_SOCKS"
                ssha_up "$c"
                NEG[$short,alks]=$(alks_cipher)
                NEG[$short,ssha]=$(ssh_cipher -c "$c" "${SSHA_OPTS[@]}")
                [[ ${NEG[$short,ssha]} == "$c" ]] ||
                        die "ssh -c $c to the alknetd server negotiated '${NEG[$short,ssha]}'"
        fi
        echo "bench-tunnel: $ROUNDS rounds of $SIZE_MIB MiB with $short..."
        declare -A BULK=()
        for ((i = 0; i < ROUNDS; i++)); do
                for t in "${tools[@]}" "${srv_tools[@]}"; do
                        BULK[$t]+="$(bulk "$(port_of "$t")") "
                done
        done
        for t in "${tools[@]}" "${srv_tools[@]}"; do
                # shellcheck disable=SC2086
                R[bulk_$short,$t]=$(median ${BULK[$t]})
                RAW[bulk_$short,$t]=${BULK[$t]}
        done
done

# ---- report ----

ratio() { # ratio A B: A/B with two decimals, "-" when either is missing
        [[ -n ${1:-} && -n ${2:-} && $2 != 0 ]] || { echo -; return; }
        awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'
}

row() { # row LABEL METRIC [TARGET]; without a target, counts with no ratio
        local a=${R[$2,alk]:-} s=${R[$2,ssh]:-} r=-
        [[ -z ${3+x} ]] || r=$(ratio "$a" "$s")
        printf '%-42s %10s %10s %8s   %s\n' "$1" "${a:--}" "${s:--}" "$r" "${3:-}"
}

srow() { # srow LABEL METRIC [TARGET]: the server-role table, both against ssh -D -> sshd
        local a=${R[$2,alks]:-} b=${R[$2,ssha]:-} s=${R[$2,ssh]:-} ra=- rb=-
        [[ -z ${3+x} ]] || { ra=$(ratio "$a" "$s") rb=$(ratio "$b" "$s"); }
        printf '%-42s %9s %9s %9s %7s %7s   %s\n' "$1" "${a:--}" "${b:--}" "${s:--}" "$ra" "$rb" "${3:-}"
}

echo
printf 'alknetd vs OpenSSH ssh -D, same sshd on 127.0.0.1, %s vCPU; median of %s rounds\n' "$(nproc)" "$ROUNDS"
printf '%-42s %10s %10s %8s   %s\n' "" "alknetd" "ssh -D" "ratio" "target"
for c in "${CIPHERS[@]}"; do
        short=${c%%@*}
        row "bulk $SIZE_MIB MiB, $short (MiB/s)" "bulk_$short" ">= 1.00x"
done
row "$REQUESTS requests, $CONCURRENCY at once (req/s)" rps ">= 1.20x"
row "  p50 latency (ms)" p50 ""
row "  p99 latency (ms)" p99 "<= 1.00x"
row "  failed requests (all rounds)" req_err
row "  SYNs dropped, listen queue full" ovf
row "RSS idle, tunnel up (MiB)" rss_idle ""
row "RSS with $CHANNELS channels open (MiB)" rss_held ""
row "  channels that opened" held

if ((SERVER_ROLE)); then
        echo
        printf 'server role, same run: A = alknetd client -> alknetd server, B = ssh -D -> alknetd server,\n'
        printf 'C = ssh -D -> sshd (the baseline above); median of %s rounds\n' "$ROUNDS"
        printf '%-42s %9s %9s %9s %7s %7s   %s\n' "" "A" "B" "C" "A/C" "B/C" "target"
        for c in "${CIPHERS[@]}"; do
                short=${c%%@*}
                label="bulk $SIZE_MIB MiB, $short (MiB/s)"
                [[ ${NEG[$short,alks]} == "$c" ]] || label+=" [A: ${NEG[$short,alks]%%@*}]"
                srow "$label" "bulk_$short" "A/C >= 1.50x"
        done
        srow "$REQUESTS requests, $CONCURRENCY at once (req/s)" rps ""
        srow "  p50 latency (ms)" p50 ""
        srow "  p99 latency (ms)" p99 ""
        srow "  failed requests (all rounds)" req_err
        srow "  SYNs dropped, listen queue full" ovf
        printf 'ciphers negotiated (A from libssh'"'"'s log of a probe client, B and C from ssh -v):\n'
        for c in "${CIPHERS[@]}"; do
                short=${c%%@*}
                printf '  bulk %s rows: A %s, B %s, C %s\n' "$short" "${NEG[$short,alks]}" "${NEG[$short,ssha]}" "$c"
        done
        printf '  request rows: A %s (no restriction: what alknetd <-> alknetd picks), B %s, C %s\n' \
                "${NEG[req,alks]}" "${NEG[req,ssha]}" "${NEG[req,ssh]}"
fi

echo
for t in "${tools[@]}" "${srv_tools[@]}"; do
        port=$(port_of "$t")
        [[ -s $FX_DIR/fail-$port.txt ]] || continue
        printf '%s, commonest request failure: %s\n' "$(name_of "$t")" \
                "$(sort "$FX_DIR/fail-$port.txt" | uniq -c | sort -rn | head -n 1 | sed -E 's/^ *//')"
done
printf 'client ceiling, the same requests straight to nginx: %s req/s, p50 %s ms, p99 %s ms\n' \
        "${R[rps,direct]}" "${R[p50,direct]}" "${R[p99,direct]}"
# The medians hide how far rounds differ; on a shared machine that is the error bar.
echo "every round (MiB/s, req/s), in order:"
for m in "${CIPHERS[@]}" rps; do
        [[ $m == rps ]] || m=bulk_${m%%@*}
        for t in "${tools[@]}" "${srv_tools[@]}"; do
                printf '  %-24s %-26s %s\n' "$([[ $m == rps ]] && echo requests || echo "${m/_/ }")" \
                        "$(name_of "$t")" "${RAW[$m,$t]:-}"
        done
done
