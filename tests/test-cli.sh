#!/usr/bin/env bash
# Integration test of alknetctl against a real alknetd started by hand in a temp dir: every
# verb, the exit codes and error lines, read-only admin profiles, reload problems, access control.
set -u

if [ -z "${ALKNETD:-}" ] || [ -z "${ALKNETCTL:-}" ] || [ ! -x "$ALKNETD" ] || [ ! -x "$ALKNETCTL" ]; then
        echo "ALKNETD and ALKNETCTL must name the binaries under test; skipping"
        exit 77
fi
command -v python3 >/dev/null || { echo "python3 not found; skipping"; exit 77; }

T=$(mktemp -d /tmp/alknet-test-cli.XXXXXX)
DAEMON_PID=
FAKE_PID=
MONITOR_PID=

cleanup() {
        local pid
        for pid in $MONITOR_PID $DAEMON_PID $FAKE_PID; do
                kill "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
        done
        rm -rf "$T"
}
trap cleanup EXIT

passed=0
failed=0
rc=0

ok() {
        passed=$((passed + 1))
        printf 'ok   %s\n' "$1"
}

# bad DESC [DETAIL]: a failed check, with what was seen
bad() {
        failed=$((failed + 1))
        printf 'FAIL %s\n' "$1"
        [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/       /'
        return 0
}

seen() {
        printf 'exit %s\n' "$rc"
        printf 'stdout: %s\n' "$(head -c 3000 "$T/out")"
        printf 'stderr: %s\n' "$(head -c 3000 "$T/err")"
}

# t DESC RC CMD...: runs CMD, keeps its output for the checks after it, checks the exit code
t() {
        local desc=$1 want=$2
        shift 2
        "$@" >"$T/out" 2>"$T/err"
        rc=$?
        if [ "$rc" -eq "$want" ]; then
                ok "$desc"
        else
                bad "$desc (expected exit $want)" "$(seen)"
        fi
}

# out_line / err_line DESC LINE: the last command printed exactly this line
out_line() {
        if grep -qFx -- "$2" "$T/out"; then ok "$1"; else bad "$1: no line '$2'" "$(seen)"; fi
}
err_line() {
        if grep -qFx -- "$2" "$T/err"; then ok "$1"; else bad "$1: no line '$2'" "$(seen)"; fi
}
# out_has / err_has DESC STRING: the output contains STRING
out_has() {
        if grep -qF -- "$2" "$T/out"; then ok "$1"; else bad "$1: no '$2'" "$(seen)"; fi
}
err_has() {
        if grep -qF -- "$2" "$T/err"; then ok "$1"; else bad "$1: no '$2'" "$(seen)"; fi
}
# out_match DESC ERE
out_match() {
        if grep -qE -- "$2" "$T/out"; then ok "$1"; else bad "$1: nothing matches /$2/" "$(seen)"; fi
}
out_lacks() {
        if ! grep -qF -- "$2" "$T/out"; then ok "$1"; else bad "$1: unexpected '$2'" "$(seen)"; fi
}
# one_line DESC: stderr is a single line
err_one_line() {
        if [ "$(wc -l <"$T/err")" -eq 1 ]; then ok "$1"; else bad "$1: stderr is not one line" "$(seen)"; fi
}
file_line() {
        if grep -qFx -- "$3" "$2" 2>/dev/null; then
                ok "$1"
        else
                bad "$1: no line '$3' in $2" "$(cat "$2" 2>&1)"
        fi
}
file_lacks() {
        if ! grep -qF -- "$3" "$2"; then ok "$1"; else bad "$1: unexpected '$3' in $2" "$(cat "$2")"; fi
}

# Under the valgrind test setup every alknetctl run is checked too (exit 99 on an error).
CTL=("$ALKNETCTL")
if [ -n "${ALKNET_VALGRIND:-}" ] && command -v valgrind >/dev/null; then
        CTL=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "$ALKNETCTL")
fi

ctl() {
        "${CTL[@]}" --socket "$T/control" "$@"
}

fingerprint() {
        python3 -c 'import base64, hashlib, sys; print("SHA256:" + base64.b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).decode().rstrip("="))' "$1"
}

# Ports on 127.0.0.1 nothing should be using; random so that a leftover from an aborted run
# does not collide. The daemon may bind the SOCKS and Local= ones.
BASE=$((20000 + RANDOM % 20000))
SSH_PORT=$BASE          # nobody listens here; no profile is started anyway (AutoStart=no)
SOCKS_ADMIN=$((BASE + 1))
SOCKS1=$((BASE + 2))
SOCKS2=$((BASE + 3))
LOCAL1=$((BASE + 4))
LOCAL2=$((BASE + 5))
REMOTE1=$((BASE + 6))
SOCKS_NEW=$((BASE + 7))
HK1=$(fingerprint one)
HK2=$(fingerprint two)

# uid 65534 must be able to walk to the socket for the access control checks.
chmod 0755 "$T"
mkdir -p "$T/etc/profiles.d" "$T/state" "$T/bin"
chmod 0755 "$T/etc" "$T/etc/profiles.d" "$T/state" "$T/bin"

cat >"$T/etc/profiles.d/admin.conf" <<EOF
[Tunnel]
Server=127.0.0.1:$SSH_PORT
AutoStart=no

[Socks]
Listen=127.0.0.1:$SOCKS_ADMIN
EOF

"$ALKNETD" --control "$T/control" --config-dir "$T/etc" --state-dir "$T/state" >"$T/alknetd.log" 2>&1 &
DAEMON_PID=$!

# Ready when a call gets through (the socket file alone may exist before listen()).
deadline=$((SECONDS + 20))
until [ -S "$T/control" ] && ctl list >/dev/null 2>&1; do
        if ! kill -0 "$DAEMON_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
                echo "alknetd did not come up; its output:"
                cat "$T/alknetd.log"
                exit 1
        fi
        sleep 0.05
done

# ---- local usage, no daemon needed ----

t "--version" 0 ctl --version
out_match "--version prints the version" '^alknetctl [0-9]+\.[0-9]+'
t "help" 0 ctl help
out_has "help lists the setting keys" "KeepaliveCountMax"
out_has "help lists the add flags" "--socks-password-file"
# With no verb alknetctl runs status: same exit code, same profiles, same errors.
ctl >"$T/noverb.out" 2>"$T/noverb.err"
noverb_rc=$?
ctl status >"$T/out" 2>"$T/err"
rc=$?
if [ "$noverb_rc" -eq "$rc" ] && [ "$(awk '{ print $1 }' "$T/noverb.out")" = "$(awk '{ print $1 }' "$T/out")" ] &&
        cmp -s "$T/noverb.err" "$T/err"; then
        ok "no verb runs status"
else
        bad "no verb runs status" "$(printf 'without a verb: exit %s\n%s\n%s\n' "$noverb_rc" "$(cat "$T/noverb.out")" "$(cat "$T/noverb.err")"; seen)"
fi
t "unknown verb" 2 ctl frobnicate
err_line "unknown verb message" "alknetctl: unknown verb 'frobnicate' (see 'alknetctl --help')"
t "show without a name" 2 ctl show
t "show with two names" 2 ctl show a b
t "bad flag" 2 ctl add x --server 127.0.0.1:22 --bogus 1
err_has "bad flag is named" "'--bogus'"
err_one_line "bad flag: one line"
t "flag without value" 2 ctl add x --server
t "bad Key" 2 ctl add x Server=127.0.0.1:22 Bogus=1
err_line "bad Key is named" "alknetctl: unknown setting 'Bogus' (see 'alknetctl help' for the keys)"
t "argument that is not Key=Value" 2 ctl add x frob
t "setting flag with a verb that takes none" 2 ctl list --server 127.0.0.1:22
t "set without settings" 2 ctl set x
t "bad --timeout" 2 ctl --timeout soon list

# ---- the admin profile from /etc ----

t "list" 0 ctl list
out_match "list header" '^NAME +SOURCE +SERVER +SOCKS +AUTOSTART$'
out_match "admin profile shows as /etc" "^admin +/etc +127\.0\.0\.1:$SSH_PORT +127\.0\.0\.1:$SOCKS_ADMIN +no$"

# ---- add with flags ----

t "add with flags and Key=Value" 0 ctl add work \
        --server "[::1]:$SSH_PORT" --user tunnel --host-key "$HK1" --host-key="$HK2" \
        --host-key-policy accept-new --autostart=no --keepalive-interval 20s --keepalive-count-max 5 \
        --socks "127.0.0.1:$SOCKS1" --socks="127.0.0.1:$SOCKS2" \
        --local "127.0.0.1:$LOCAL1:[2001:db8::5]:5432" --local="$T/pg.sock:db.internal:5432" \
        "Remote=127.0.0.1:$REMOTE1:127.0.0.1:80"
t "list after add" 0 ctl list
out_match "list row of the added profile" \
        "^work +managed +\[::1\]:$SSH_PORT +127\.0\.0\.1:$SOCKS1,127\.0\.0\.1:$SOCKS2 +no$"
out_match "list still shows admin" "^admin +/etc "

t "show" 0 ctl show work
out_line "show Name" "Name: work"
out_line "show Source" "Source: managed"
out_line "show File" "File: $T/state/profiles/work.conf"
out_line "show Server (IPv6)" "Server: [::1]:$SSH_PORT"
out_line "show User" "User: tunnel"
out_line "show Identity unset" "Identity: -"
out_line "show first HostKey" "HostKey: $HK1"
out_line "show second HostKey" "HostKey: $HK2"
out_line "show HostKeyPolicy" "HostKeyPolicy: accept-new"
out_line "show Transport" "Transport: tcp"
out_lacks "show: no TLS lines for tcp" "TLSVerify"
out_line "show Proxy unset" "Proxy: -"
out_line "show AutoStart" "AutoStart: no"
out_line "show KeepaliveInterval humanized" "KeepaliveInterval: 20s"
out_line "show KeepaliveCountMax" "KeepaliveCountMax: 5"
out_line "show first Listen" "Listen: 127.0.0.1:$SOCKS1"
out_line "show second Listen" "Listen: 127.0.0.1:$SOCKS2"
out_line "show Username unset" "Username: -"
out_line "show Local with IPv6 target" "Local: 127.0.0.1:$LOCAL1:[2001:db8::5]:5432"
out_line "show unix Local" "Local: $T/pg.sock:db.internal:5432"
out_line "show Remote" "Remote: 127.0.0.1:$REMOTE1:127.0.0.1:80"

t "show --json" 0 ctl show work --json
cp "$T/out" "$T/show.json"
t "show --json parses and holds the settings" 0 python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))["profile"]
T, ssh, s1, s2, l1, r1, hk1, hk2 = sys.argv[2:]
assert p["name"] == "work", p["name"]
assert p["source"] == "managed", p["source"]
assert p["readOnly"] is False
assert p["server"] == "[::1]:" + ssh, p["server"]
assert p["user"] == "tunnel"
assert p["hostKeys"] == [hk1, hk2], p["hostKeys"]
assert p["hostKeyPolicy"] == "accept-new"
assert p["autoStart"] is False
assert p["keepaliveIntervalUSec"] == 20000000, p["keepaliveIntervalUSec"]
assert p["keepaliveCountMax"] == 5
assert p["socksListen"] == ["127.0.0.1:" + s1, "127.0.0.1:" + s2], p["socksListen"]
assert p["local"] == ["127.0.0.1:%s:[2001:db8::5]:5432" % l1, T + "/pg.sock:db.internal:5432"], p["local"]
assert p["remote"] == ["127.0.0.1:%s:127.0.0.1:80" % r1], p["remote"]
assert p.get("identity") is None
' "$T/show.json" "$T" "$SSH_PORT" "$SOCKS1" "$SOCKS2" "$LOCAL1" "$REMOTE1" "$HK1" "$HK2"

t "list --json parses" 0 python3 -c '
import json, subprocess, sys
r = json.loads(subprocess.run(sys.argv[1:], check=True, capture_output=True).stdout)
names = [p["name"] for p in r["profiles"]]
assert names == ["admin", "work"], names
' "$ALKNETCTL" --socket "$T/control" --json list

F="$T/state/profiles/work.conf"
file_line "stored file: Server" "$F" "Server=[::1]:$SSH_PORT"
file_line "stored file: HostKey" "$F" "HostKey=$HK2"
file_line "stored file: Listen" "$F" "Listen=127.0.0.1:$SOCKS2"
file_line "stored file: unix Local" "$F" "Local=$T/pg.sock:db.internal:5432"
file_line "stored file: Remote" "$F" "Remote=127.0.0.1:$REMOTE1:127.0.0.1:80"

# ---- set ----

t "set replaces a list and a value" 0 ctl set work "Local=127.0.0.1:$LOCAL2:db2.internal:5432" User=other
t "show after set" 0 ctl show work
out_line "set: the new Local" "Local: 127.0.0.1:$LOCAL2:db2.internal:5432"
out_lacks "set: the old Locals are gone" "db.internal"
out_line "set: User changed" "User: other"
out_line "set: HostKeys kept" "HostKey: $HK2"
file_line "stored file after set: Local" "$F" "Local=127.0.0.1:$LOCAL2:db2.internal:5432"
file_lacks "stored file after set: old Local gone" "$F" "db.internal:5432"
file_line "stored file after set: User" "$F" "User=other"
t "set with a flag" 0 ctl set work --keepalive-interval 90s
t "show after set with a flag" 0 ctl show work
out_line "set: KeepaliveInterval humanized" "KeepaliveInterval: 1min 30s"

# ---- errors the daemon reports ----

t "show an unknown profile" 1 ctl show nosuch
err_line "unknown profile message" "alknetctl: no such profile: nosuch"
t "remove an unknown profile" 1 ctl remove nosuch
t "set an unknown profile" 1 ctl set nosuch User=x
t "invalid server" 1 ctl add broken --server "127.0.0.1:99999" --autostart no --socks none
err_has "invalid server names the field" "alknetctl: invalid profile: Server: "
err_one_line "invalid server: one line"
t "missing server" 1 ctl add broken --autostart no --socks none
err_has "missing server names the field" "alknetctl: invalid profile: Server: "
t "duplicate name" 1 ctl add work --server 127.0.0.1:22 --autostart no --socks none
err_line "duplicate name message" "alknetctl: profile already exists: work"
t "SOCKS port of another managed profile" 1 ctl add other --server "127.0.0.1:$SSH_PORT" --autostart no --socks "127.0.0.1:$SOCKS1"
err_has "SOCKS conflict names the field" "Listen"
t "SOCKS port of the /etc profile" 1 ctl add other --server "127.0.0.1:$SSH_PORT" --autostart no --socks "127.0.0.1:$SOCKS_ADMIN"
t "set into a conflict" 1 ctl set work "Listen=127.0.0.1:$SOCKS_ADMIN"
t "invalid profile name" 1 ctl add "../x" --server 127.0.0.1:22 --socks none
err_has "invalid name names the field" "alknetctl: invalid profile: Name: "
t "set admin profile" 1 ctl set admin User=x
err_has "set admin: read-only" "read-only"
err_one_line "read-only: one line"
t "remove admin profile" 1 ctl remove admin
err_has "remove admin: read-only" "read-only"

# ---- tunnels, without an SSH server: the profile's server is a closed port ----

# tunnel_json NAME PYTHON-EXPR: the expression, over the tunnel's status as t, is true
tunnel_json() {
        "$ALKNETCTL" --socket "$T/control" --json status "$1" 2>/dev/null | python3 -c '
import json, sys
t = json.load(sys.stdin)["tunnels"][0]
sys.exit(0 if eval(sys.argv[1]) else 1)
' "$2"
}
# wait_tunnel DESC NAME PYTHON-EXPR: polls the status until the expression holds
wait_tunnel() {
        local deadline=$((SECONDS + 30))
        until tunnel_json "$2" "$3"; do
                if [ "$SECONDS" -ge "$deadline" ]; then
                        bad "$1" "$("$ALKNETCTL" --socket "$T/control" --json status "$2" 2>&1)"
                        return 1
                fi
                sleep 0.1
        done
        ok "$1"
}

if ! command -v ssh-keygen >/dev/null; then
        echo "skip tunnel checks: ssh-keygen not found"
else
        ssh-keygen -q -t ed25519 -N '' -C alknet-test -f "$T/id" >/dev/null
        t "add a profile whose server is a closed port" 0 ctl add tun \
                --server "127.0.0.1:$SSH_PORT" --identity "$T/id" --autostart no --socks none

        t "status of a tunnel never started" 0 ctl status --json tun
        t "a tunnel never started is down" 0 tunnel_json tun 't["state"] == "down" and t["attempts"] == 0'
        t "up against a closed port fails" 1 ctl up tun
        out_match "up: backoff line" '^tun: backoff \(connect-refused\), retrying (in [0-9]+s|now)$'
        t "up --no-wait is only valid with up and restart" 2 ctl down tun --no-wait
        t "up an unknown profile" 1 ctl up nosuch
        err_line "up an unknown profile: message" "alknetctl: no such profile: nosuch"

        # After the third failure the next attempt is about 4 s away: time for the human
        # output to see "backoff" rather than the instant of "connecting" between attempts.
        wait_tunnel "status --json: backoff (connect-refused), attempts counted" tun \
                't["state"] == "backoff" and t["reason"] == "connect-refused" and t["attempts"] >= 3 and t.get("nextAttemptUSec", 0) > 0'
        t "status" 0 ctl status
        out_match "status header" '^NAME +STATE +SINCE +RTT +RECONNECTS +CHANNELS +IN +OUT$'
        out_match "status row of the tunnel" '^tun +backoff \(connect-refused\) +[0-9]+s +- +0 +0 +0B +0B$'
        out_match "status row of a profile never started" '^admin +down +'
        t "status NAME" 0 ctl status tun
        out_line "status NAME: State" "State: backoff"
        out_line "status NAME: Reason" "Reason: connect-refused"
        out_match "status NAME: Next attempt" '^Next attempt: .+ \((in [0-9]+s|now)\)$'
        out_match "status NAME: Attempts" '^Attempts: [0-9]+$'
        out_line "status NAME: Channels" "Channels: 0 open, 0 total"
        out_line "status NAME: no listeners" "Listeners: -"
        t "status of an unknown profile" 1 ctl status nosuch

        t "trust with no key presented" 1 ctl trust tun
        err_line "trust with no key presented: message" \
                "alknetctl: no host key to trust: tun has not been presented one (run alknetctl up tun first)"
        t "trust with a malformed fingerprint" 2 ctl trust tun SHA256:tooshort
        t "trust a profile never started" 1 ctl trust admin

        # monitor: the initial line of the tunnel, then the change that down makes.
        "${CTL[@]}" --socket "$T/control" --json monitor tun >"$T/monitor.out" 2>"$T/monitor.err" &
        MONITOR_PID=$!
        deadline=$((SECONDS + 20))
        until grep -q '"name":"tun"' "$T/monitor.out" 2>/dev/null; do
                [ "$SECONDS" -ge "$deadline" ] && break
                sleep 0.05
        done
        if grep -q '"name":"tun"' "$T/monitor.out"; then
                ok "monitor --json prints the tunnel's state at once"
        else
                bad "monitor --json prints the tunnel's state at once" "$(cat "$T/monitor.out" "$T/monitor.err")"
        fi
        t "monitor --json: every line one JSON object of tun" 0 python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines, "no lines"
for l in lines:
    assert json.loads(l)["status"]["name"] == "tun", l
' "$T/monitor.out"

        t "down" 0 ctl down tun
        out_line "down: status line" "tun: down"
        t "status --json after down" 0 tunnel_json tun 't["state"] == "down" and "nextAttemptUSec" not in t'

        deadline=$((SECONDS + 20))
        until grep -q '"state":"down"' "$T/monitor.out" 2>/dev/null; do
                [ "$SECONDS" -ge "$deadline" ] && break
                sleep 0.05
        done
        if grep -q '"state":"down"' "$T/monitor.out"; then
                ok "monitor --json streams the change to down"
        else
                bad "monitor --json streams the change to down" "$(cat "$T/monitor.out" "$T/monitor.err")"
        fi
        kill -INT "$MONITOR_PID" 2>/dev/null
        wait "$MONITOR_PID"
        rc=$?
        MONITOR_PID=
        if [ "$rc" -eq 0 ]; then
                ok "monitor exits 0 on SIGINT"
        else
                bad "monitor exits 0 on SIGINT" "exit $rc: $(cat "$T/monitor.err")"
        fi

        t "monitor of an unknown profile" 1 ctl monitor nosuch
        t "up --no-wait" 0 ctl up tun --no-wait
        out_match "up --no-wait: status line" '^tun: (connecting|backoff)'
        t "restart against a closed port fails" 1 ctl restart tun
        out_match "restart: backoff line" '^tun: backoff \(connect-refused\), retrying'
        t "down after restart" 0 ctl down tun
        t "remove the tunnel's profile" 0 ctl remove tun
fi

# ---- the control socket ----

t "unreachable socket" 3 "${CTL[@]}" --socket "$T/nope" list
err_line "unreachable socket message" \
        "alknetctl: cannot reach alknetd at $T/nope: No such file or directory (is alknetd.socket enabled?)"
t "socket from the environment" 0 env ALKNET_CONTROL_SOCKET="$T/control" "${CTL[@]}" list
out_match "socket from the environment: listing" '^work +managed'
t "--socket wins over the environment" 3 env ALKNET_CONTROL_SOCKET="$T/control" "${CTL[@]}" --socket "$T/nope" list

# A peer that accepts and never answers, and one that answers garbage.
python3 -c '
import os, socket, sys, threading
def serve(path, reply):
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(8)
    conns = []
    while True:
        c, _ = s.accept()
        conns.append(c)
        if reply:
            c.recv(65536)
            c.sendall(reply)
threading.Thread(target=serve, args=(sys.argv[1], b""), daemon=True).start()
threading.Thread(target=serve, args=(sys.argv[2], b"{\"parameters\": 7}\0"), daemon=True).start()
threading.Event().wait()
' "$T/hang" "$T/garbage" &
FAKE_PID=$!
deadline=$((SECONDS + 10))
until [ -S "$T/hang" ] && [ -S "$T/garbage" ]; do
        [ "$SECONDS" -ge "$deadline" ] && break
        sleep 0.05
done
t "no answer within --timeout" 3 "${CTL[@]}" --socket "$T/hang" --timeout 0.3 list
err_has "timeout message" "did not answer in time"
t "invalid reply" 3 "${CTL[@]}" --socket "$T/garbage" list
err_has "invalid reply message" "alknetctl: invalid reply from alknetd"

# ---- reload ----

cat >"$T/etc/profiles.d/new.conf" <<EOF
[Tunnel]
Server=127.0.0.1:$SSH_PORT
AutoStart=no

[Socks]
Listen=127.0.0.1:$SOCKS_NEW
EOF
cat >"$T/etc/profiles.d/broken.conf" <<EOF
[Tunnel]
Server=127.0.0.1:$SSH_PORT
Bogus=1
EOF
t "reload with a broken file" 0 ctl reload
out_line "reload counts the profiles that loaded" "Reloaded: 3 profiles."
err_has "reload reports file:line of the broken file" "broken.conf:3: "
t "list after reload" 0 ctl list
out_match "reload picked up the new /etc file" "^new +/etc +127\.0\.0\.1:$SSH_PORT +127\.0\.0\.1:$SOCKS_NEW +no$"
out_lacks "the broken file holds no profile" "broken"
out_match "managed profile survives reload" '^work +managed'
rm -f "$T/etc/profiles.d/broken.conf"
t "reload --json" 0 ctl --json reload
cp "$T/out" "$T/reload.json"
t "reload --json parses" 0 python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["profiles"] == 3 and r["problems"] == [], r
' "$T/reload.json"

# ---- remove ----

t "remove" 0 ctl remove work
if [ ! -e "$F" ]; then ok "remove deletes the stored file"; else bad "remove deletes the stored file" "$F still exists"; fi
t "show after remove" 1 ctl show work
t "list after remove" 0 ctl list
out_lacks "removed profile is not listed" "work"

# ---- access control ----

if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
        echo "skip access control checks: need root and setpriv"
else
        # The build tree may not be readable by uid 65534.
        cp "$ALKNETCTL" "$T/bin/alknetctl"
        chmod 0755 "$T/bin/alknetctl"
        # nobody GROUPS-OPTION ARGS...: alknetctl as uid 65534
        nobody() {
                local groups=$1
                shift
                setpriv --reuid=65534 --regid=65534 "$groups" "${CTL[@]:0:${#CTL[@]}-1}" "$T/bin/alknetctl" \
                        --socket "$T/control" "$@"
        }
        chmod 0600 "$T/control"
        t "socket without access" 3 nobody --clear-groups list
        err_has "socket without access: hint" "(run as root or as a member of the alknet group)"

        chmod 0666 "$T/control"
        t "unprivileged list" 0 nobody --clear-groups list
        out_match "unprivileged list shows profiles" '^admin +/etc'
        t "unprivileged show" 0 nobody --clear-groups show admin
        t "unprivileged add" 1 nobody --clear-groups \
                add mine --server "127.0.0.1:$SSH_PORT" --autostart no --socks none
        err_line "unprivileged add: permission denied" \
                "alknetctl: permission denied (run as root or as a member of the admin group)"
        t "unprivileged reload" 1 nobody --clear-groups reload
        err_has "unprivileged reload: permission denied" "permission denied"

        printf '[Control]\nAdminGroup=4242\n' >"$T/etc/alknetd.conf"
        t "reload with AdminGroup=4242" 0 ctl reload
        t "admin group member may add" 0 nobody --groups=4242 \
                add mine --server "127.0.0.1:$SSH_PORT" --autostart no --socks none
        t "admin group member's profile exists" 0 ctl show mine
        out_line "admin group member's profile has SOCKS disabled" "Listen: -"
        t "admin group member may remove" 0 nobody --groups=4242 remove mine
        t "non-member still may not add" 1 nobody --groups=4243 \
                add mine --server "127.0.0.1:$SSH_PORT" --autostart no --socks none
fi

if kill -0 "$DAEMON_PID" 2>/dev/null; then
        ok "alknetd still running"
else
        bad "alknetd still running" "$(tail -n 30 "$T/alknetd.log")"
fi

if [ "$failed" -gt 0 ]; then
        echo "alknetd output:"
        tail -n 50 "$T/alknetd.log"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
