/* Opens the TCP connection a client tunnel runs over, without blocking the loop: resolve,
 * connect to each address in turn, and optionally the SOCKS5 or HTTP CONNECT handshake with
 * an upstream proxy (Proxy=), which gets the target name unresolved. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "tunnel-state.h"

/* Whole dial (resolve, every connect, proxy handshake) and each single connect(). */
#define DIAL_TIMEOUT_DEFAULT_USEC (30 * USEC_PER_SEC)
#define DIAL_CONNECT_TIMEOUT_DEFAULT_USEC (10 * USEC_PER_SEC)

typedef enum DialProxyType {
        DIAL_PROXY_NONE,
        DIAL_PROXY_SOCKS5,
        DIAL_PROXY_HTTP,
        _DIAL_PROXY_TYPE_MAX,
        _DIAL_PROXY_TYPE_INVALID = -EINVAL,
} DialProxyType;

/* Asked about each address a direct dial resolved, before its connect(): true to try it,
 * false to skip it. sa carries the port too. Called from the event loop, never from inside
 * dial_start(); it must not cancel the dial. */
typedef bool (*DialAddressFilter)(const struct sockaddr *sa, socklen_t len, uint16_t port, void *userdata);

typedef struct DialParams {
        const char *host;              /* target: a name, or an IP literal (IPv6 without brackets) */
        uint16_t port;                 /* target port, 1..65535 */
        const char *proxy;             /* NULL or "": direct; else Profile.proxy, i.e.
                                        * "socks5://host:port" or "http://host:port" (IPv6 in brackets) */
        uint64_t timeout_usec;         /* 0: DIAL_TIMEOUT_DEFAULT_USEC */
        uint64_t connect_timeout_usec; /* 0: DIAL_CONNECT_TIMEOUT_DEFAULT_USEC */
        DialAddressFilter filter;      /* NULL: every address; unused with a proxy, which
                                        * resolves the target itself */
        void *filter_userdata;         /* must outlive the dial */
        bool peer_target;              /* the target is a peer's choice (the server role's
                                        * direct-tcpip): its name is looked up as RESOLVE_PEER */
} DialParams;

typedef struct Dial Dial;

/* Called once, from the event loop, never from inside dial_start(). The Dial is already
 * freed when this runs: forget the handle first thing.
 *
 * Success: r == 0, reason TUNNEL_REASON_NONE, fd is a connected TCP socket (CLOEXEC,
 * NONBLOCK, TCP_NODELAY) that now belongs to the callee. Through a proxy the handshake is
 * done and exactly the proxy's reply was consumed: whatever the target sent already (an SSH
 * banner) is still unread in the socket, so nothing has to be handed over besides the fd.
 *
 * Failure: r < 0, fd == -EBADF, and reason is
 *   TUNNEL_REASON_RESOLVE_FAILED   the target name did not resolve (r from resolve.h;
 *                                  -ETIMEDOUT when the whole-dial timeout hit first)
 *   TUNNEL_REASON_CONNECT_TIMEOUT  some address timed out (r == -ETIMEDOUT), or the
 *                                  whole-dial timeout hit while connecting
 *   TUNNEL_REASON_CONNECT_REFUSED  every address failed otherwise: r is the last connect()
 *                                  error (-ECONNREFUSED, -ENETUNREACH, -EHOSTUNREACH, ...);
 *                                  -EACCES when the filter refused every address and so
 *                                  nothing was tried (connect() itself fails so only when
 *                                  a security module forbids it: a refusal by policy too).
 *                                  When it refused some, the others' outcome counts.
 *   TUNNEL_REASON_PROXY_FAILED     with a proxy, any failure at all: resolving or connecting
 *                                  to the proxy (r as above), the proxy wanting
 *                                  authentication (-EACCES), a malformed reply (-EBADMSG,
 *                                  -EMSGSIZE), the proxy closing (-ECONNRESET), no answer in
 *                                  time (-ETIMEDOUT), or the proxy refusing or failing to
 *                                  reach the target (SOCKS5 REP or HTTP status mapped:
 *                                  -ECONNREFUSED, -EHOSTUNREACH, -ENETUNREACH, -EACCES,
 *                                  -ETIMEDOUT, -ECONNABORTED, -EPROTO, ...). The problem
 *                                  is on the proxy's path either way, so that is where
 *                                  the reason points the user.
 * Nothing here logs: r carries no name, the caller decides what to log. */
typedef void (*DialCallback)(int r, int fd, TunnelReason reason, void *userdata);

/* Starts a dial. The strings in p are copied. Fails only on bad parameters (-EINVAL: no
 * host, port 0, a proxy URL not in the form above, a target name the proxy protocol cannot
 * carry) or -ENOMEM; every later failure, also one to start a lookup, comes through cb. */
int dial_start(sd_event *e, const DialParams *p, DialCallback cb, void *userdata, Dial **ret);

/* Stops a dial that has not called back: closes its socket, cancels its lookup, and never
 * calls back. Accepts NULL; returns NULL. */
Dial *dial_cancel(Dial *d);
DEFINE_POINTER_CLEANUP_FUNC(Dial, dial_cancel);

/* Splits a proxy URL of the form dial_start() takes; host without brackets, to free. */
int dial_proxy_parse(const char *url, DialProxyType *ret_type, char **ret_host, uint16_t *ret_port);
