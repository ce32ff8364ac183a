#!/usr/bin/env python3
"""Minimal Varlink client (https://varlink.org), Python 3 standard library only.

Calls one method on a Unix socket and prints each reply as one line of JSON.
It shares no code with alknet's C side, so the tests can use it to check that
side against the protocol as written down here:

  * A message is a JSON object followed by one NUL byte; both directions are
    a stream of such messages, in order, with no other framing.
  * A call:  {"method": "interface.Method", "parameters": {...}}
    optionally with "more": true (the caller accepts several replies) or
    "oneway": true (the caller wants no reply at all).
  * A reply: {"parameters": {...}}, or {"error": "interface.Error",
    "parameters": {...}} when the call failed. A reply to a "more" call may
    carry "continues": true, meaning more replies to the same call follow.
  * Every service implements org.varlink.service (GetInfo,
    GetInterfaceDescription) and answers with its standard errors
    (MethodNotFound, InvalidParameter, ...).

Exit status: 0 success; 1 the service replied with an error (printed too);
2 bad usage; 3 no complete answer (cannot connect, connection closed,
timeout, malformed reply).
"""

import argparse
import json
import socket
import struct
import sys


def replies(sock):
    """Yields the messages read from sock, one JSON object per NUL."""
    buf = b""
    while True:
        while b"\0" not in buf:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed by the service")
            buf += data
        message, buf = buf.split(b"\0", 1)
        reply = json.loads(message)
        if not isinstance(reply, dict):
            raise ValueError("reply is not a JSON object")
        yield reply


def connect(sock, path, timeout):
    """Connect, waiting while the service's listen backlog is full. With a timeout
    Python connects non-blocking, and Linux then fails at once with EAGAIN; a blocking
    connect waits for room, bounded by SO_SNDTIMEO (0: for ever)."""
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(timeout), int(timeout % 1 * 1e6)))
    try:
        sock.connect(path)
    except BlockingIOError:
        raise TimeoutError("the service's listen backlog stayed full")
    sock.settimeout(timeout or None)


def main():
    ap = argparse.ArgumentParser(description="Call a Varlink method and print the replies.")
    ap.add_argument("--more", action="store_true",
                    help="ask for several replies and print them until the last")
    ap.add_argument("--timeout", type=float, default=30.0, metavar="S",
                    help="seconds to wait for connecting and for each reply; 0 waits forever")
    ap.add_argument("socket", help="path of the service's Unix socket")
    ap.add_argument("method", help="fully qualified method, e.g. org.varlink.service.GetInfo")
    ap.add_argument("parameters", nargs="?", default="{}", help="a JSON object (default {})")
    args = ap.parse_args()

    try:
        parameters = json.loads(args.parameters)
    except ValueError as e:
        ap.error(f"PARAMETERS is not JSON: {e}")
    if not isinstance(parameters, dict):
        ap.error("PARAMETERS must be a JSON object")

    call = {"method": args.method, "parameters": parameters}
    if args.more:
        call["more"] = True

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            connect(sock, args.socket, args.timeout)
            sock.sendall(json.dumps(call).encode() + b"\0")
            for reply in replies(sock):
                print(json.dumps(reply, ensure_ascii=False, separators=(",", ":")), flush=True)
                if "error" in reply:
                    return 1
                if not reply.get("continues"):
                    return 0
    except (OSError, ValueError) as e:  # socket errors, timeouts, bad JSON or UTF-8
        print(f"varlink-call: {args.socket}: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
