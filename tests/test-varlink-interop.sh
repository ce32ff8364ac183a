#!/usr/bin/env bash
# Interop and hostile-input test of alknetd's control socket, spoken to by an independent
# Python Varlink client (tools/varlink-call.py and inline snippets) rather than our C code.
set -u

if [ -z "${ALKNETD:-}" ] || [ ! -x "$ALKNETD" ]; then
        echo "ALKNETD must name the daemon under test; skipping"
        exit 77
fi
command -v python3 >/dev/null || { echo "python3 not found; skipping"; exit 77; }

SRC=${ALKNET_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
CALL="$SRC/tools/varlink-call.py"
IDL="$SRC/src/daemon/io.alknet.Manager.varlink"

# 1,000 idle connections below need the descriptors, in the snippets and in the daemon.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 4096 ]; then
        ulimit -n 4096
else
        ulimit -n "$hard"
fi

T=$(mktemp -d /tmp/alknet-test-interop.XXXXXX)
SOCK="$T/control"
export SOCK
DAEMON_PID=

cleanup() {
        if [ -n "$DAEMON_PID" ]; then
                kill "$DAEMON_PID" 2>/dev/null
                wait "$DAEMON_PID" 2>/dev/null
        fi
        rm -rf "$T"
}
trap cleanup EXIT

passed=0
failed=0

ok() {
        passed=$((passed + 1))
        printf 'ok   %s\n' "$1"
}

# bad DESC [DETAIL]
bad() {
        failed=$((failed + 1))
        printf 'FAIL %s\n' "$1"
        [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/       /'
        return 0
}

# Helpers shared by the snippets. Every snippet exits 0 when its check holds and prints why
# not otherwise; `timeout` bounds each one, whatever the daemon does.
PYLIB='
import json, os, socket, struct, sys, time

SOCK = os.environ["SOCK"]

def connect(timeout=10):
    # With a timeout Python connects non-blocking, and Linux fails such a connect to a
    # Unix socket with EAGAIN while the listen backlog is full. A blocking connect waits
    # for room instead, bounded by SO_SNDTIMEO, as alknetctl does.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", timeout, 0))
    try:
        s.connect(SOCK)
    except BlockingIOError:
        s.close()
        raise TimeoutError("listen backlog full for %d s" % timeout)
    s.settimeout(timeout)
    return s

def call(method, parameters=None, **flags):
    return json.dumps(dict(method=method, parameters=parameters or {}, **flags)).encode() + b"\0"

def read_replies(s, n):
    buf, out = b"", []
    while len(out) < n:
        while b"\0" not in buf:
            data = s.recv(65536)
            if not data:
                raise ConnectionError(f"closed after {len(out)} replies")
            buf += data
        msg, buf = buf.split(b"\0", 1)
        out.append(json.loads(msg))
    return out

def closed(s, timeout=10):
    """Whether the daemon closes s within timeout; anything it sends first is skipped."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        pass
    return False

def answers():
    """Whether a fresh connection gets ListProfiles answered within 10 s."""
    with connect() as s:
        s.sendall(call("io.alknet.Manager.ListProfiles"))
        r = read_replies(s, 1)[0]
    return isinstance(r.get("parameters", {}).get("profiles"), list)

def check(cond, why):
    if not cond:
        print(why)
        sys.exit(1)
'

# py DESC SNIPPET: runs SNIPPET after the helpers; DESC passes when it exits 0.
py() {
        local out
        if out=$(timeout 120 python3 -c "$PYLIB$2" 2>&1); then
                ok "$1"
        else
                bad "$1" "$out"
        fi
}

# vcall OUT CMD-ARGS...: varlink-call.py into $T/OUT, returns its exit code
vcall() {
        local out=$1
        shift
        timeout 60 python3 "$CALL" --timeout 10 "$SOCK" "$@" >"$T/$out" 2>"$T/$out.err"
}

# jcheck DESC FILE PYTHON-EXPR: the first JSON line of FILE, as r, satisfies EXPR
jcheck() {
        local out
        if out=$(python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).readline())
idl = open(sys.argv[2], "rb").read()
if not ('"$3"'):
    print(json.dumps(r)[:2000]); sys.exit(1)
' "$2" "$IDL" 2>&1); then
                ok "$1"
        else
                bad "$1" "$out$(cat "$2.err" 2>/dev/null)"
        fi
}

# --- start the daemon --------------------------------------------------------------------

mkdir -p "$T/etc" "$T/state"
# Changing methods need uid 0 or the admin group: make ours the admin group.
printf '[Control]\nAdminGroup=%s\n' "$(id -g)" >"$T/etc/alknetd.conf"

"$ALKNETD" --control "$SOCK" --config-dir "$T/etc" --state-dir "$T/state" 2>"$T/alknetd.log" &
DAEMON_PID=$!

deadline=$((SECONDS + 20))
while [ ! -S "$SOCK" ] && kill -0 "$DAEMON_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        sleep 0.05
done
if [ ! -S "$SOCK" ]; then
        bad "alknetd creates its control socket" "$(cat "$T/alknetd.log")"
        echo "$passed passed, $failed failed"
        exit 1
fi
ok "alknetd creates its control socket"

# --- org.varlink.service -----------------------------------------------------------------

vcall info org.varlink.service.GetInfo
rc=$?
[ $rc -eq 0 ] && ok "GetInfo exits 0" || bad "GetInfo exits 0 (got $rc)" "$(cat "$T/info.err")"
jcheck "GetInfo names vendor, product, version, url" "$T/info" \
        'all(isinstance(r["parameters"].get(k), str) and r["parameters"][k] for k in ("vendor", "product", "version", "url"))'
jcheck "GetInfo lists org.varlink.service and io.alknet.Manager" "$T/info" \
        '{"org.varlink.service", "io.alknet.Manager"} <= set(r["parameters"]["interfaces"])'

vcall desc org.varlink.service.GetInterfaceDescription '{"interface":"io.alknet.Manager"}'
jcheck "GetInterfaceDescription returns io.alknet.Manager.varlink byte for byte" "$T/desc" \
        'r["parameters"]["description"].encode() == idl'

vcall desc2 org.varlink.service.GetInterfaceDescription '{"interface":"org.varlink.service"}'
jcheck "GetInterfaceDescription describes org.varlink.service" "$T/desc2" \
        '"interface org.varlink.service" in r["parameters"]["description"].splitlines() and "method GetInfo()" in r["parameters"]["description"]'

vcall nointf org.varlink.service.GetInterfaceDescription '{"interface":"com.example.Nothing"}'
rc=$?
[ $rc -eq 1 ] && ok "unknown interface: exit 1" || bad "unknown interface: exit 1 (got $rc)"
jcheck "unknown interface: InterfaceNotFound naming it" "$T/nointf" \
        'r == {"error": "org.varlink.service.InterfaceNotFound", "parameters": {"interface": "com.example.Nothing"}}'

vcall nomethod io.alknet.Manager.NoSuchMethod
rc=$?
[ $rc -eq 1 ] && ok "unknown method: exit 1" || bad "unknown method: exit 1 (got $rc)"
jcheck "unknown method: MethodNotFound naming it" "$T/nomethod" \
        'r == {"error": "org.varlink.service.MethodNotFound", "parameters": {"method": "io.alknet.Manager.NoSuchMethod"}}'

vcall nomethod2 org.varlink.service.NoSuchMethod
jcheck "unknown method of org.varlink.service: MethodNotFound" "$T/nomethod2" \
        'r["error"] == "org.varlink.service.MethodNotFound"'

vcall noparam io.alknet.Manager.GetProfile
rc=$?
[ $rc -eq 1 ] && ok "missing parameter: exit 1" || bad "missing parameter: exit 1 (got $rc)"
jcheck "missing parameter: InvalidParameter naming it" "$T/noparam" \
        'r == {"error": "org.varlink.service.InvalidParameter", "parameters": {"parameter": "name"}}'

# --- io.alknet.Manager -------------------------------------------------------------------

vcall list io.alknet.Manager.ListProfiles
rc=$?
[ $rc -eq 0 ] && ok "ListProfiles exits 0" || bad "ListProfiles exits 0 (got $rc)" "$(cat "$T/list.err")"
jcheck "ListProfiles of an empty config: no profiles" "$T/list" 'r == {"parameters": {"profiles": []}}'

vcall more --more io.alknet.Manager.ListProfiles
rc=$?
lines=$(wc -l <"$T/more")
[ $rc -eq 0 ] && [ "$lines" -eq 1 ] && ok "ListProfiles with more: one final reply" ||
        bad "ListProfiles with more: one final reply (exit $rc, $lines lines)" "$(cat "$T/more" "$T/more.err")"

vcall badserver io.alknet.Manager.AddProfile \
        '{"name":"interop","settings":[{"key":"Server","value":"example.org:99999"}]}'
rc=$?
[ $rc -eq 1 ] && ok "AddProfile with a bad server: exit 1" || bad "AddProfile with a bad server: exit 1 (got $rc)"
jcheck "AddProfile with a bad server: InvalidProfile, field Server" "$T/badserver" \
        'r["error"] == "io.alknet.Manager.InvalidProfile" and r["parameters"]["field"] == "Server" and r["parameters"]["reason"]'

vcall list2 io.alknet.Manager.ListProfiles
jcheck "the refused profile was not added" "$T/list2" 'r == {"parameters": {"profiles": []}}'

# --- pipelining --------------------------------------------------------------------------

py "pipelining: three calls in one send, three replies in order" '
with connect() as s:
    s.sendall(call("org.varlink.service.GetInfo") + call("io.alknet.Manager.ListProfiles")
              + call("io.alknet.Manager.NoSuchMethod"))
    r = read_replies(s, 3)
check("vendor" in r[0].get("parameters", {}), r)
check(r[1] == {"parameters": {"profiles": []}}, r)
check(r[2].get("error") == "org.varlink.service.MethodNotFound", r)
'

py "oneway: no reply, the next call gets the next reply" '
with connect() as s:
    s.sendall(call("org.varlink.service.GetInfo", oneway=True) + call("io.alknet.Manager.ListProfiles"))
    r = read_replies(s, 1)
    check(r[0] == {"parameters": {"profiles": []}}, r)
    s.sendall(call("io.alknet.Manager.GetProfile", {"name": "none"}))
    r = read_replies(s, 1)
    check(r[0].get("error") == "io.alknet.Manager.NoSuchProfile", r)
'

py "a call followed by garbage: the call is answered, then the connection closed" '
with connect() as s:
    s.sendall(call("io.alknet.Manager.ListProfiles") + b"garbage\0")
    r = read_replies(s, 1)
    check(r[0] == {"parameters": {"profiles": []}}, r)
    check(closed(s), "still open")
'

# --- hostile input -----------------------------------------------------------------------

py "a 10 MB message is refused at the cap and the connection closed" '
data = b"{\"method\":\"io.alknet.Manager.ListProfiles\",\"parameters\":{\"x\":\"" + b"x" * (10 << 20) + b"\"}}\0"
sent = 0
with connect() as s:
    try:
        while sent < len(data):
            sent += s.send(data[sent:sent + 65536])
    except (BrokenPipeError, ConnectionResetError):
        pass
    check(sent < len(data), "all 10 MB were taken")
    check(closed(s), "still open after %d bytes" % sent)
print("closed after", sent, "bytes")
check(answers(), "no answer afterwards")
'

py "non-JSON closes that connection only" '
with connect() as other, connect() as s:
    s.sendall(b"hello, this is not JSON\0")
    check(closed(s), "still open")
    other.sendall(call("io.alknet.Manager.ListProfiles"))
    check(read_replies(other, 1)[0] == {"parameters": {"profiles": []}}, "other connection lost")
check(answers(), "no answer afterwards")
'

py "not an object, trailing garbage, an empty message: each closes its connection" '
for bad in (b"[1]\0", b"\"x\"\0", b"{}x\0", b"\0", b"{\"method\":\"io.alknet.Manager.ListProfiles\"}}\0",
            b"{\"method\":\"a\\u0000.b.C\"}\0", b"{\"method\":\"\xff\"}\0"):
    with connect() as s:
        s.sendall(bad)
        check(closed(s), "still open after %r" % bad)
check(answers(), "no answer afterwards")
'

py "a depth bomb closes that connection only" '
with connect() as other:
    for bomb in (b"{\"a\":" + b"[" * 20000 + b"\0", b"{\"a\":" * 5000 + b"1" + b"}" * 5000 + b"\0"):
        with connect() as s:
            s.sendall(bomb)
            check(closed(s), "still open after a bomb of %d bytes" % len(bomb))
    other.sendall(call("io.alknet.Manager.ListProfiles"))
    check(read_replies(other, 1)[0] == {"parameters": {"profiles": []}}, "other connection lost")
check(answers(), "no answer afterwards")
'

py "a silent client and a half-sent call do not delay another client" '
with connect() as silent, connect() as half:
    half.sendall(b"{\"method\":\"io.alknet.Manager.Li")
    t = time.monotonic()
    check(answers(), "no answer")
    print("answered in %.3f s" % (time.monotonic() - t))
'

py "half a message, then hang up: the daemon carries on" '
for cut in (1, 20, 40):
    s = connect()
    s.sendall(call("io.alknet.Manager.ListProfiles")[:cut])
    s.close()
check(answers(), "no answer afterwards")
'

py "1,000 idle connections at once: the daemon still answers" '
conns = []
try:
    for i in range(1000):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(SOCK)  # blocking: waits for the daemon to accept, `timeout` bounds it
        conns.append(s)
    t = time.monotonic()
    check(answers(), "no answer with 1,000 connections open")
    print("answered in %.3f s with %d connections open" % (time.monotonic() - t, len(conns)))
finally:
    for s in conns:
        s.close()
'

vcall after io.alknet.Manager.ListProfiles
rc=$?
[ $rc -eq 0 ] && ok "varlink-call works after the connection storm" ||
        bad "varlink-call works after the connection storm (exit $rc)" "$(cat "$T/after.err")"

if [ -n "${ALKNETCTL:-}" ] && [ -x "$ALKNETCTL" ]; then
        if out=$(timeout 60 "$ALKNETCTL" --socket "$SOCK" --timeout 10 list 2>&1); then
                ok "alknetctl list works after the hostile clients"
        else
                bad "alknetctl list works after the hostile clients" "$out"
        fi
fi

# --- shutdown ----------------------------------------------------------------------------

if kill -0 "$DAEMON_PID" 2>/dev/null; then
        ok "alknetd is still running"
else
        bad "alknetd is still running" "$(tail -20 "$T/alknetd.log")"
fi

kill -TERM "$DAEMON_PID" 2>/dev/null
deadline=$((SECONDS + 20))
while kill -0 "$DAEMON_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        sleep 0.05
done
if kill -0 "$DAEMON_PID" 2>/dev/null; then
        bad "alknetd stops on SIGTERM within 20 s"
else
        wait "$DAEMON_PID"
        rc=$?
        DAEMON_PID=
        [ $rc -eq 0 ] && ok "alknetd exits 0 on SIGTERM" ||
                bad "alknetd exits 0 on SIGTERM (got $rc)" "$(tail -20 "$T/alknetd.log")"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
