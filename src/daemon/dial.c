/* Dialling a tunnel's TCP connection in the event loop: resolve, connect to the addresses in
 * order, then the upstream proxy handshake (SOCKS5 or HTTP CONNECT) if there is one. */
#include <assert.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include "dial.h"
#include "http-connect.h"
#include "resolve.h"
#include "socks5.h"

typedef enum DialState {
        DIAL_RESOLVING,
        DIAL_CONNECTING,
        DIAL_SOCKS5_METHOD, /* greeting sent (or being sent), waiting for the method selection */
        DIAL_SOCKS5_REPLY,  /* CONNECT sent, waiting for the reply */
        DIAL_HTTP_RESPONSE, /* CONNECT sent, waiting for the response header */
} DialState;

#define DIAL_OUT_MAX MAX(SOCKS5_REQUEST_MAX, HTTP_CONNECT_REQUEST_MAX)

struct Dial {
        sd_event *event;
        DialCallback cb;
        void *userdata;

        char *host; /* the target */
        uint16_t port;
        DialProxyType proxy_type;
        char *proxy_host;
        uint16_t proxy_port;
        uint64_t connect_timeout_usec;
        DialAddressFilter filter; /* direct dials only */
        void *filter_userdata;

        DialState state;
        ResolveQuery *query;
        ResolvedAddresses *addresses;
        size_t next_address;
        int last_error;      /* of the last failed connect */
        bool any_timeout;    /* some address timed out */
        bool any_tried;      /* some address passed the filter */

        int fd;
        sd_event_source *io;
        sd_event_source *deadline;       /* the whole dial */
        sd_event_source *connect_timer;  /* the current connect() */
        sd_event_source *defer;          /* reports a failure of dial_start()'s own steps */
        int deferred_error;
        TunnelReason deferred_reason;

        /* What is still to be sent to the proxy: out[out_sent..out_len). */
        uint8_t out[DIAL_OUT_MAX];
        size_t out_len, out_sent;
};

static void dial_free(Dial *d) {
        d->query = resolve_query_cancel(d->query);
        d->addresses = resolved_addresses_free(d->addresses);
        d->io = sd_event_source_disable_unref(d->io);
        d->fd = safe_close(d->fd);
        d->deadline = sd_event_source_disable_unref(d->deadline);
        d->connect_timer = sd_event_source_disable_unref(d->connect_timer);
        d->defer = sd_event_source_disable_unref(d->defer);
        sd_event_unref(d->event);
        free(d->host);
        free(d->proxy_host);
        free(d);
}

Dial *dial_cancel(Dial *d) {
        if (d)
                dial_free(d);
        return NULL;
}

/* Frees the dial before calling back, so the callback may do anything, even dial again. */
static void dial_complete(Dial *d, int r, TunnelReason reason) {
        DialCallback cb = d->cb;
        void *userdata = d->userdata;
        int fd = -EBADF;

        if (r >= 0)
                fd = TAKE_FD(d->fd);
        else if (d->proxy_type != DIAL_PROXY_NONE)
                reason = TUNNEL_REASON_PROXY_FAILED;
        dial_free(d);
        cb(r < 0 ? r : 0, fd, r < 0 ? reason : TUNNEL_REASON_NONE, userdata);
}

static void dial_fail(Dial *d, int r, TunnelReason reason) {
        assert(r < 0);
        dial_complete(d, r, reason);
}

static int timer_arm(Dial *d, sd_event_source **s, uint64_t usec, sd_event_time_handler_t handler) {
        struct timespec ts;
        uint64_t now;

        *s = sd_event_source_disable_unref(*s);
        /* From the real now, not sd_event_now(): that is when the loop last woke up, which
         * can be long ago when we are not called from a callback. 1 µs accuracy: the
         * default would add up to 250 ms. */
        if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
                return -errno;
        now = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
        return sd_event_add_time(d->event, s, CLOCK_MONOTONIC, usec > UINT64_MAX - now ? UINT64_MAX : now + usec, 1,
                                 handler, d);
}

/* ---- Proxy handshake ---- */

static int socks5_reply_to_errno(uint8_t code) {
        switch (code) {
        case SOCKS5_REPLY_NOT_ALLOWED:
                return -EACCES;
        case SOCKS5_REPLY_NETWORK_UNREACHABLE:
                return -ENETUNREACH;
        case SOCKS5_REPLY_HOST_UNREACHABLE:
                return -EHOSTUNREACH;
        case SOCKS5_REPLY_CONNECTION_REFUSED:
                return -ECONNREFUSED;
        case SOCKS5_REPLY_TTL_EXPIRED:
                return -ETIMEDOUT;
        case SOCKS5_REPLY_COMMAND_NOT_SUPPORTED:
                return -EOPNOTSUPP;
        case SOCKS5_REPLY_ADDRESS_TYPE_NOT_SUPPORTED:
                return -EAFNOSUPPORT;
        case SOCKS5_REPLY_GENERAL_FAILURE:
        default:
                return -ECONNABORTED;
        }
}

static int http_status_to_errno(int status) {
        switch (status) {
        case 401:
        case 403:
        case 407:
                return -EACCES;
        case 504:
                return -ETIMEDOUT;
        default:
                /* 500, 502, 503: what proxies answer when they cannot reach the target. */
                return status >= 500 ? -ECONNREFUSED : -EPROTO;
        }
}

static int dial_update_io(Dial *d) {
        /* Edge-triggered while waiting for a reply: bytes are only peeked until the whole
         * reply is there, so level-triggered polling would spin on an incomplete one. */
        return sd_event_source_set_io_events(d->io, d->out_sent < d->out_len ? EPOLLOUT
                                                                             : EPOLLIN | EPOLLRDHUP | EPOLLET);
}

static int dial_queue(Dial *d, size_t n) {
        d->out_len = n;
        d->out_sent = 0;
        return dial_update_io(d);
}

static int dial_flush(Dial *d) {
        while (d->out_sent < d->out_len) {
                ssize_t k = send(d->fd, d->out + d->out_sent, d->out_len - d->out_sent, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return -errno;
                }
                d->out_sent += (size_t) k;
        }
        return dial_update_io(d);
}

/* Removes exactly n bytes, which a peek has shown are there, from the socket. */
static int dial_consume(Dial *d, size_t n) {
        uint8_t scratch[512];

        while (n > 0) {
                ssize_t k = recv(d->fd, scratch, MIN(n, sizeof scratch), 0);
                if (k < 0)
                        return errno == EINTR ? 0 : -errno;
                if (k == 0)
                        return -ECONNRESET;
                n -= (size_t) k;
        }
        return 0;
}

static int dial_proxy_begin(Dial *d) {
        int r;

        if (d->proxy_type == DIAL_PROXY_SOCKS5) {
                r = socks5_build_client_greeting(d->out, sizeof d->out);
                d->state = DIAL_SOCKS5_METHOD;
        } else {
                r = http_connect_build_request(d->host, d->port, (char *) d->out, sizeof d->out);
                d->state = DIAL_HTTP_RESPONSE;
        }
        if (r < 0)
                return r;
        r = dial_queue(d, (size_t) r);
        if (r < 0)
                return r;
        return dial_flush(d);
}

/* Handles what the proxy sent so far. eof: the proxy has closed its side, so what is in
 * the socket is all there will be. Returns 1 when the tunnel through it is open, 0 to wait
 * for more bytes, < 0 on failure. */
static int dial_proxy_read(Dial *d, bool eof) {
        char buf[MAX(HTTP_CONNECT_RESPONSE_MAX, SOCKS5_MESSAGE_MAX)];
        uint8_t value = 0;
        ssize_t n;
        int k, r, status = 0;

        for (;;) {
                /* Only look: the bytes after the proxy's reply are the target's and stay in
                 * the socket for whoever reads it next. */
                n = recv(d->fd, buf, sizeof buf, MSG_PEEK);
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
                if (n == 0)
                        return -ECONNRESET;

                switch (d->state) {
                case DIAL_SOCKS5_METHOD:
                        k = socks5_parse_method_selection((const uint8_t *) buf, (size_t) n, &value);
                        break;
                case DIAL_SOCKS5_REPLY:
                        k = socks5_parse_connect_reply((const uint8_t *) buf, (size_t) n, &value);
                        break;
                case DIAL_HTTP_RESPONSE:
                        k = http_connect_parse_response(buf, (size_t) n, &status);
                        break;
                default:
                        return -EIO;
                }
                if (k < 0)
                        return k;
                if (k == 0) /* incomplete: the next bytes bring a new edge */
                        return eof ? -ECONNRESET : 0;

                r = dial_consume(d, (size_t) k);
                if (r < 0)
                        return r;

                switch (d->state) {
                case DIAL_SOCKS5_METHOD:
                        if (value != SOCKS5_METHOD_NO_AUTH)
                                return -EACCES;
                        r = socks5_build_connect_request(d->host, d->port, d->out, sizeof d->out);
                        if (r < 0)
                                return r;
                        d->state = DIAL_SOCKS5_REPLY;
                        r = dial_queue(d, (size_t) r);
                        if (r < 0)
                                return r;
                        return dial_flush(d);
                case DIAL_SOCKS5_REPLY:
                        return value == SOCKS5_REPLY_SUCCEEDED ? 1 : socks5_reply_to_errno(value);
                default:
                        if (status >= 100 && status < 200)
                                continue; /* interim; the real answer follows */
                        return status >= 200 && status < 300 ? 1 : http_status_to_errno(status);
                }
        }
}

/* ---- Connecting ---- */

static void dial_connect_next(Dial *d);

static void dial_connected(Dial *d) {
        int r;

        d->connect_timer = sd_event_source_disable_unref(d->connect_timer);
        if (d->proxy_type == DIAL_PROXY_NONE) {
                dial_complete(d, 0, TUNNEL_REASON_NONE);
                return;
        }

        r = dial_proxy_begin(d);
        if (r < 0)
                dial_fail(d, r, TUNNEL_REASON_PROXY_FAILED);
}

/* The current address failed with r: on to the next one. */
static void dial_address_failed(Dial *d, int r) {
        d->io = sd_event_source_disable_unref(d->io);
        d->fd = safe_close(d->fd);
        d->connect_timer = sd_event_source_disable_unref(d->connect_timer);
        d->last_error = r;
        if (r == -ETIMEDOUT)
                d->any_timeout = true;
        dial_connect_next(d);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Dial *d = userdata;
        int r;

        if (d->state == DIAL_CONNECTING) {
                int error = 0;
                socklen_t len = sizeof error;

                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        error = errno;
                if (error == 0 && !(revents & EPOLLOUT))
                        return 0;
                if (error != 0) {
                        dial_address_failed(d, -error);
                        return 0;
                }
                dial_connected(d);
                return 0;
        }

        if (d->out_sent < d->out_len) {
                r = dial_flush(d);
                if (r < 0)
                        dial_fail(d, r, TUNNEL_REASON_PROXY_FAILED);
                return 0;
        }

        r = dial_proxy_read(d, revents & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
        if (r < 0)
                dial_fail(d, r, TUNNEL_REASON_PROXY_FAILED);
        else if (r > 0)
                dial_complete(d, 0, TUNNEL_REASON_NONE);
        return 0;
}

static int on_connect_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        dial_address_failed(userdata, -ETIMEDOUT);
        return 0;
}

/* Starts connect() on one address. 0: in progress, 1: connected at once, < 0: failed. */
static int dial_connect_one(Dial *d, const ResolvedAddress *a) {
        static const int one = 1;
        int r;

        d->fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
        if (d->fd < 0)
                return -errno;
        /* The SSH handshake is many small messages: do not let them wait for each other. */
        if (setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
                return -errno;

        r = sd_event_add_io(d->event, &d->io, d->fd, EPOLLOUT, on_io, d);
        if (r < 0)
                return r;

        if (connect(d->fd, &a->sa, a->len) >= 0)
                return 1;
        if (errno != EINPROGRESS)
                return -errno;

        r = timer_arm(d, &d->connect_timer, d->connect_timeout_usec, on_connect_timeout);
        if (r < 0)
                return r;
        return 0;
}

static void dial_connect_next(Dial *d) {
        int r;

        d->state = DIAL_CONNECTING;
        while (d->next_address < d->addresses->n) {
                const ResolvedAddress *a = &d->addresses->addresses[d->next_address++];

                if (d->filter && !d->filter(&a->sa, a->len, d->port, d->filter_userdata))
                        continue;
                d->any_tried = true;
                r = dial_connect_one(d, a);
                if (r > 0)
                        dial_connected(d);
                if (r >= 0)
                        return;
                if (r == -ENOMEM) {
                        dial_fail(d, r, TUNNEL_REASON_CONNECT_REFUSED);
                        return;
                }

                d->io = sd_event_source_disable_unref(d->io);
                d->fd = safe_close(d->fd);
                d->last_error = r;
        }

        if (!d->any_tried)
                dial_fail(d, -EACCES, TUNNEL_REASON_CONNECT_REFUSED);
        else if (d->any_timeout)
                dial_fail(d, -ETIMEDOUT, TUNNEL_REASON_CONNECT_TIMEOUT);
        else
                dial_fail(d, d->last_error < 0 ? d->last_error : -ECONNREFUSED, TUNNEL_REASON_CONNECT_REFUSED);
}

static void on_resolved(int r, ResolvedAddresses *addresses, void *userdata) {
        Dial *d = userdata;

        d->query = NULL;
        if (r < 0) {
                dial_fail(d, r, TUNNEL_REASON_RESOLVE_FAILED);
                return;
        }
        d->addresses = addresses;
        d->next_address = 0;
        dial_connect_next(d);
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        Dial *d = userdata;

        dial_fail(d, -ETIMEDOUT,
                  d->state == DIAL_RESOLVING    ? TUNNEL_REASON_RESOLVE_FAILED
                  : d->state == DIAL_CONNECTING ? TUNNEL_REASON_CONNECT_TIMEOUT
                                                : TUNNEL_REASON_PROXY_FAILED);
        return 0;
}

static int on_defer(sd_event_source *s, void *userdata) {
        Dial *d = userdata;

        dial_fail(d, d->deferred_error, d->deferred_reason);
        return 0;
}

/* ---- Setup ---- */

int dial_proxy_parse(const char *url, DialProxyType *ret_type, char **ret_host, uint16_t *ret_port) {
        static const struct {
                const char *prefix;
                DialProxyType type;
        } schemes[] = {
                { "socks5://", DIAL_PROXY_SOCKS5 },
                { "http://", DIAL_PROXY_HTTP },
        };
        const char *rest = NULL, *host, *colon;
        size_t host_len;
        DialProxyType type = _DIAL_PROXY_TYPE_INVALID;
        char *end, *h;
        unsigned long port;

        for (size_t i = 0; url && !rest && i < ELEMENTSOF(schemes); i++) {
                rest = startswith(url, schemes[i].prefix);
                type = schemes[i].type;
        }
        if (!rest)
                return -EINVAL;

        if (rest[0] == '[') {
                const char *rb = strchr(rest, ']');
                if (!rb || rb[1] != ':')
                        return -EINVAL;
                host = rest + 1;
                host_len = (size_t) (rb - host);
                colon = rb + 1;
        } else {
                colon = strrchr(rest, ':');
                if (!colon)
                        return -EINVAL;
                host = rest;
                host_len = (size_t) (colon - rest);
                if (memchr(host, ':', host_len))
                        return -EINVAL; /* an IPv6 literal needs brackets */
        }
        if (host_len == 0 || host_len > RESOLVE_HOST_MAX)
                return -EINVAL;
        if (colon[1] < '0' || colon[1] > '9')
                return -EINVAL;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno != 0 || *end != '\0' || port == 0 || port > UINT16_MAX)
                return -EINVAL;

        h = strndup(host, host_len);
        if (!h)
                return -ENOMEM;
        *ret_type = type;
        *ret_host = h;
        *ret_port = (uint16_t) port;
        return 0;
}

int dial_start(sd_event *e, const DialParams *p, DialCallback cb, void *userdata, Dial **ret) {
        _cleanup_(dial_cancelp) Dial *d = NULL;
        const char *lookup;
        uint8_t scratch[DIAL_OUT_MAX];
        int r;

        if (!e || !p || !cb || isempty(p->host) || p->port == 0)
                return -EINVAL;

        d = calloc(1, sizeof(Dial));
        if (!d)
                return -ENOMEM;
        d->fd = -EBADF;
        d->event = sd_event_ref(e);
        d->cb = cb;
        d->userdata = userdata;
        d->port = p->port;
        d->connect_timeout_usec = p->connect_timeout_usec ?: DIAL_CONNECT_TIMEOUT_DEFAULT_USEC;
        d->state = DIAL_RESOLVING;
        d->host = strdup(p->host);
        if (!d->host)
                return -ENOMEM;

        if (!isempty(p->proxy)) {
                r = dial_proxy_parse(p->proxy, &d->proxy_type, &d->proxy_host, &d->proxy_port);
                if (r < 0)
                        return r;
                /* A target the proxy protocol cannot carry is a configuration error: say so
                 * now instead of failing every attempt. */
                if (d->proxy_type == DIAL_PROXY_SOCKS5)
                        r = socks5_build_connect_request(d->host, d->port, scratch, sizeof scratch);
                else
                        r = http_connect_build_request(d->host, d->port, (char *) scratch, sizeof scratch);
                if (r < 0)
                        return r == -ENOBUFS ? -EINVAL : r;
        } else {
                if (strlen(d->host) > RESOLVE_HOST_MAX)
                        return -EINVAL;
                d->filter = p->filter;
                d->filter_userdata = p->filter_userdata;
        }

        r = timer_arm(d, &d->deadline, p->timeout_usec ?: DIAL_TIMEOUT_DEFAULT_USEC, on_deadline);
        if (r < 0)
                return r;

        /* With a proxy only its own name is looked up here, ours; the target's goes to it
         * as is. */
        lookup = d->proxy_type == DIAL_PROXY_NONE ? d->host : d->proxy_host;
        r = resolve_start_class(e, lookup, d->proxy_type == DIAL_PROXY_NONE ? d->port : d->proxy_port,
                                d->proxy_type == DIAL_PROXY_NONE && p->peer_target ? RESOLVE_PEER : RESOLVE_OWN,
                                on_resolved, d, &d->query);
        if (r == -ENOMEM || r == -EINVAL)
                return r;
        if (r < 0) {
                /* -EBUSY (the lookup queue is full) or no thread: a failed attempt like any
                 * other, reported from the loop. A lookup that waits for a thread instead is
                 * still under the deadline above, which cancels it out of the queue. */
                d->deferred_error = r;
                d->deferred_reason = TUNNEL_REASON_RESOLVE_FAILED;
                r = sd_event_add_defer(e, &d->defer, on_defer, d);
                if (r < 0)
                        return r;
        }

        if (ret)
                *ret = d;
        d = NULL; /* from here on it frees itself, when it calls back */
        return 0;
}
