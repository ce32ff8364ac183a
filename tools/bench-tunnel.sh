#!/bin/bash
# Benchmark (not a test): alknetd against OpenSSH `ssh -N -D`, both through the same private
# sshd on 127.0.0.1 in one run; prints each number for both and the ratio.
#
# Usage: tools/bench-tunnel.sh [--build DIR] [--ssh-only] [--size MIB] [--rounds N]
#                              [--requests N] [--concurrency N] [--channels N]
#   --build DIR       where alknetd and alknetctl are built (default: $ALKNET_BUILD_ROOT or ./build;
#                     $ALKNETD and $ALKNETCTL override)
#   --ssh-only        measure the ssh -D baseline only
#   --size MIB        bulk download size (default 1024)
#   --rounds N        bulk and request rounds per tool, the median is shown (default 3)
#   --requests N      small HTTP requests per round (default 5000)
#   --concurrency N   requests in flight at once (default 200)
#   --channels N      SOCKS connections held open for the RSS figure (default 1000)
#
# Targets from issue 3: bulk >= 1.0x ssh -D, requests/s >= 1.2x, p99 <= ssh -D.
# Needs nginx (tools/deps.sh installs it), curl, python3, OpenSSH. Everything stays on loopback
# and stops by PID when the script exits.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ALKNET_BUILD_ROOT:-$ROOT/build}
SSH_ONLY=0
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
        sed -n '5,14p' "$0" | sed 's/^# \{0,1\}//'
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

# ---- the two tunnels ----

SSH_SOCKS=$(fx_free_port)
ALK_SOCKS=$(fx_free_port)
SSH_PID=
ALK_PID=

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

alk_fail() {
        {
                echo "bench-tunnel: alknetd could not bring the tunnel up: $*"
                echo "---- alknetctl status bench:"
                ctl status bench 2>&1 | head -n 20 || true
                echo "---- alknetd log (last 30 lines):"
                tail -n 30 "$FX_DIR/alknetd.log"
                echo "---- (tools/bench-tunnel.sh --ssh-only measures the ssh -D baseline alone)"
        } >&2
        exit 1
}

alk_start() {
        mkdir -p "$FX_DIR/etc/profiles.d" "$FX_DIR/state"
        fx_bg "$FX_DIR/alknetd.log" "$ALKNETD" --control "$FX_DIR/control" \
                --config-dir "$FX_DIR/etc" --state-dir "$FX_DIR/state"
        ALK_PID=$FX_LAST_PID
        fx_wait_until 10 ctl list || alk_fail "its control socket does not answer"
        ctl add bench "Server=127.0.0.1:$FX_SSHD_PORT" "User=$FX_USER" "Identity=$FX_CLIENT_KEY" \
                "HostKey=$FX_HOSTKEY_FP" "Listen=127.0.0.1:$ALK_SOCKS" AutoStart=yes >"$FX_DIR/ctl.out" 2>&1 ||
                alk_fail "alknetctl add: $(cat "$FX_DIR/ctl.out")"
}

# `up` waits for the first attempt; then what counts is data through the SOCKS port.
alk_up() {
        ctl up bench >"$FX_DIR/ctl.out" 2>&1 || alk_fail "alknetctl up bench: $(cat "$FX_DIR/ctl.out")"
        fx_wait_until 20 tunnel_works "$ALK_SOCKS" ||
                alk_fail "alknetctl up bench succeeded, but no data passes through 127.0.0.1:$ALK_SOCKS in 20 s"
}

alk_down() {
        ctl down bench >"$FX_DIR/ctl.out" 2>&1 || alk_fail "alknetctl down bench: $(cat "$FX_DIR/ctl.out")"
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

declare -A R # results: R[metric,tool]

tools=(ssh)
((SSH_ONLY)) || tools=(alk ssh)

if ((!SSH_ONLY)); then
        alk_start
        alk_up
        R[rss_idle,alk]=$(rss_mib "$ALK_PID")
fi
ssh_up
R[rss_idle,ssh]=$(rss_mib "$SSH_PID")

echo "bench-tunnel: holding $CHANNELS channels open..."
for t in "${tools[@]}"; do
        if [[ $t == ssh ]]; then port=$SSH_SOCKS pid=$SSH_PID; else port=$ALK_SOCKS pid=$ALK_PID; fi
        out=$(held "$port" "$pid")
        read -r "R[rss_held,$t]" "R[held,$t]" "R[held_err,$t]" <<<"$out"
done

echo "bench-tunnel: $ROUNDS rounds of $REQUESTS requests, $CONCURRENCY at once..."
declare -A RPS P50 P99 ERRS OVF
for ((i = 0; i < ROUNDS; i++)); do
        for t in direct "${tools[@]}"; do
                case $t in
                ssh) port=$SSH_SOCKS ;;
                alk) port=$ALK_SOCKS ;;
                *) port=direct ;;
                esac
                out=$(small "$port")
                read -r a b c d e <<<"$out"
                RPS[$t]+="$a " P50[$t]+="$b " P99[$t]+="$c " ERRS[$t]=$((${ERRS[$t]:-0} + d))
                OVF[$t]=$((${OVF[$t]:-0} + e))
        done
done
for t in direct "${tools[@]}"; do
        # shellcheck disable=SC2086
        R[rps,$t]=$(median ${RPS[$t]}) R[p50,$t]=$(median ${P50[$t]}) R[p99,$t]=$(median ${P99[$t]})
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
        timeout 10 ssh -v "${FX_SSH_OPTS[@]}" -W "127.0.0.1:$FX_HOLD_PORT" 127.0.0.1 </dev/null 2>&1 |
                grep -q "kex: server->client cipher: $c " || die "sshd does not negotiate $c"
        echo "bench-tunnel: $ROUNDS rounds of $SIZE_MIB MiB with $short..."
        declare -A BULK=()
        for ((i = 0; i < ROUNDS; i++)); do
                for t in "${tools[@]}"; do
                        if [[ $t == ssh ]]; then port=$SSH_SOCKS; else port=$ALK_SOCKS; fi
                        BULK[$t]+="$(bulk "$port") "
                done
        done
        for t in "${tools[@]}"; do
                # shellcheck disable=SC2086
                R[bulk_$short,$t]=$(median ${BULK[$t]})
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
echo
for t in "${tools[@]}"; do
        [[ $t == ssh ]] && port=$SSH_SOCKS || port=$ALK_SOCKS
        [[ -s $FX_DIR/fail-$port.txt ]] || continue
        printf '%s, commonest request failure: %s\n' "$([[ $t == ssh ]] && echo "ssh -D" || echo alknetd)" \
                "$(sort "$FX_DIR/fail-$port.txt" | uniq -c | sort -rn | head -n 1 | sed -E 's/^ *//')"
done
printf 'client ceiling, the same requests straight to nginx: %s req/s, p50 %s ms, p99 %s ms\n' \
        "${R[rps,direct]}" "${R[p50,direct]}" "${R[p99,direct]}"
