/* Component tests of the client's local listeners: the SOCKS5 server and Local= forwards
 * over real sockets on 127.0.0.1/::1 in a real sd-event loop, with a ChannelOpener that
 * connects to an echo server run in the same loop (so bytes really flow), or fails, or
 * holds its answer. */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "client-listener.h"
#include "log.h"
#include "macro.h"
#include "profile.h"
#include "socks-server.h"
#include "socks5.h"

#define DEADLINE_USEC (10 * USEC_PER_SEC)
#define MAX_CALLS 64
#define MAX_CONNS 64

static sd_event *e;
static ClientListeners *listeners;
static char root[64];

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* Runs the loop until cond holds; fails the test at the deadline. */
#define RUN_UNTIL(cond)                                                              \
        do {                                                                         \
                uint64_t _deadline_ = now_usec() + DEADLINE_USEC;                    \
                while (!(cond)) {                                                    \
                        ck_assert_msg(now_usec() < _deadline_, "timed out: %s", #cond); \
                        (void) sd_event_run(e, 10 * USEC_PER_MSEC);                 \
                }                                                                    \
        } while (0)

/* Runs the loop for a while: for checking that something does not happen. */
static void run_for(uint64_t usec) {
        uint64_t end = now_usec() + usec;
        while (now_usec() < end)
                (void) sd_event_run(e, 5 * USEC_PER_MSEC);
}

/* ---- An echo server: the "destination" the test opener connects to. ---- */

static int echo_listen_fd = -EBADF;
static uint16_t echo_port;
static sd_event_source *echo_listen_src;
static struct {
        int fd;
        sd_event_source *src;
} echo_conns[MAX_CONNS];
static size_t n_echo_conns;

static void write_all_blocking(int fd, const void *p, size_t n) {
        const uint8_t *b = p;

        while (n > 0) {
                ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
                if (k < 0 && errno == EAGAIN) {
                        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
                        (void) poll(&pfd, 1, 100);
                        continue;
                }
                if (k < 0)
                        return; /* the peer is gone; the test notices elsewhere */
                b += k;
                n -= (size_t) k;
        }
}

static int echo_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        uint8_t buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

        if (n > 0)
                write_all_blocking(fd, buf, (size_t) n);
        else if (n == 0 || errno != EAGAIN) {
                (void) shutdown(fd, SHUT_WR);
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        }
        return 0;
}

static int echo_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (cfd < 0)
                return 0;
        ck_assert_uint_lt(n_echo_conns, MAX_CONNS);
        echo_conns[n_echo_conns].fd = cfd;
        ck_assert_int_ge(sd_event_add_io(e, &echo_conns[n_echo_conns].src, cfd, EPOLLIN, echo_io, NULL), 0);
        n_echo_conns++;
        return 0;
}

static uint16_t bound_port(int fd) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;

        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &ss, &len), 0);
        return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *) &ss)->sin_port
                                             : ((struct sockaddr_in6 *) &ss)->sin6_port);
}

static int listen_tcp4(uint16_t port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        ck_assert_int_ge(fd, 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        ck_assert_int_eq(listen(fd, 16), 0);
        return fd;
}

/* ---- The test opener. ---- */

typedef enum OpenerMode {
        OPENER_RELAY,      /* answers from a defer event: connects to the echo server, relays */
        OPENER_RELAY_SYNC, /* the same, inside open() */
        OPENER_FAIL,       /* answers from a defer event with fail_r / fail_reason */
        OPENER_FAIL_SYNC,  /* the same, inside open() */
        OPENER_REFUSE,     /* open() itself returns fail_r */
        OPENER_HOLD,       /* answers only when the test calls opener_answer() */
} OpenerMode;

typedef struct OpenCall {
        char host[300];
        uint16_t port;
        int fd;
        uint8_t initial[SOCKS5_MESSAGE_MAX];
        size_t n_initial;
        char orig_host[64];
        uint16_t orig_port;
        ChannelOpenedCallback cb;
        void *userdata;
        sd_event_source *defer;
        bool answered, cancelled;
} OpenCall;

static struct {
        OpenerMode mode;
        int fail_r, fail_reason;
        OpenCall calls[MAX_CALLS];
        size_t n_calls;
        unsigned n_cancelled;
} op;

/* One direction of a relay. */
static struct {
        int from, to;
        sd_event_source *src;
} pipes[2 * MAX_CONNS];
static size_t n_pipes;
static int relay_fds[2 * MAX_CONNS];
static size_t n_relay_fds;

static int pipe_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        size_t i = (size_t) (uintptr_t) userdata;
        uint8_t buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

        if (n > 0)
                write_all_blocking(pipes[i].to, buf, (size_t) n);
        else if (n == 0 || errno != EAGAIN) {
                (void) shutdown(pipes[i].to, SHUT_WR);
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        }
        return 0;
}

static void relay_start(int a, int b) {
        ck_assert_uint_lt(n_pipes + 2, ELEMENTSOF(pipes));
        relay_fds[n_relay_fds++] = a;
        relay_fds[n_relay_fds++] = b;
        for (int k = 0; k < 2; k++) {
                pipes[n_pipes].from = k == 0 ? a : b;
                pipes[n_pipes].to = k == 0 ? b : a;
                ck_assert_int_ge(sd_event_add_io(e, &pipes[n_pipes].src, pipes[n_pipes].from, EPOLLIN, pipe_io,
                                                 (void *) (uintptr_t) n_pipes),
                                 0);
                n_pipes++;
        }
}

static void opener_answer(OpenCall *c, int r, int reason) {
        ck_assert(!c->answered && !c->cancelled);
        c->answered = true;
        if (r < 0) {
                c->cb(r, reason, c->userdata);
                return;
        }

        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(echo_port) };
        int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(t, 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        /* Loopback connects complete in the kernel, without the echo server's accept. */
        ck_assert_int_eq(connect(t, (struct sockaddr *) &sa, sizeof sa), 0);
        ck_assert_int_eq(fcntl(t, F_SETFL, O_NONBLOCK), 0);
        write_all_blocking(t, c->initial, c->n_initial);
        c->cb(0, 0, c->userdata);
        relay_start(c->fd, t); /* ours from here on */
}

static int opener_defer(sd_event_source *s, void *userdata) {
        OpenCall *c = userdata;

        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        opener_answer(c, op.mode == OPENER_RELAY ? 0 : op.fail_r, op.fail_reason);
        return 0;
}

static int opener_open(void *ctx, const ChannelOpenRequest *req, ChannelOpenedCallback cb, void *userdata,
                       void **ret_handle) {
        OpenCall *c;

        ck_assert_ptr_eq(ctx, &op);
        if (op.mode == OPENER_REFUSE)
                return op.fail_r;
        ck_assert_uint_lt(op.n_calls, MAX_CALLS);
        ck_assert_uint_le(req->n_initial, sizeof c->initial);
        ck_assert_uint_lt(strlen(req->host), sizeof c->host);
        c = &op.calls[op.n_calls++];
        *c = (OpenCall) { .port = req->port, .fd = req->fd, .n_initial = req->n_initial, .orig_port = req->orig_port,
                          .cb = cb, .userdata = userdata };
        strcpy(c->host, req->host);
        snprintf(c->orig_host, sizeof c->orig_host, "%s", req->orig_host);
        if (req->n_initial > 0)
                memcpy(c->initial, req->initial, req->n_initial);
        *ret_handle = c;

        switch (op.mode) {
        case OPENER_RELAY_SYNC:
                opener_answer(c, 0, 0);
                break;
        case OPENER_FAIL_SYNC:
                opener_answer(c, op.fail_r, op.fail_reason);
                break;
        case OPENER_RELAY:
        case OPENER_FAIL:
                ck_assert_int_ge(sd_event_add_defer(e, &c->defer, opener_defer, c), 0);
                break;
        default:
                break;
        }
        return 0;
}

static void opener_cancel(void *ctx, void *handle) {
        OpenCall *c = handle;

        ck_assert(!c->answered && !c->cancelled);
        c->cancelled = true;
        (void) sd_event_source_set_enabled(c->defer, SD_EVENT_OFF);
        op.n_cancelled++;
}

static const ChannelOpener test_opener = { .ctx = &op, .open = opener_open, .cancel = opener_cancel };

/* ---- Fixture. ---- */

static void setup(void) {
        ck_assert_int_ge(sd_event_new(&e), 0);
        memset(&op, 0, sizeof op);
        n_echo_conns = n_pipes = n_relay_fds = 0;
        listeners = NULL;

        echo_listen_fd = listen_tcp4(0);
        echo_port = bound_port(echo_listen_fd);
        ck_assert_int_ge(sd_event_add_io(e, &echo_listen_src, echo_listen_fd, EPOLLIN, echo_accept, NULL), 0);

        strcpy(root, "/tmp/test-socks-server-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(root));
}

static void teardown(void) {
        char cmd[128];

        listeners = client_listeners_free(listeners);
        for (size_t i = 0; i < op.n_calls; i++)
                sd_event_source_disable_unref(op.calls[i].defer);
        for (size_t i = 0; i < n_pipes; i++)
                sd_event_source_disable_unref(pipes[i].src);
        for (size_t i = 0; i < n_relay_fds; i++)
                safe_close(relay_fds[i]);
        for (size_t i = 0; i < n_echo_conns; i++) {
                sd_event_source_disable_unref(echo_conns[i].src);
                safe_close(echo_conns[i].fd);
        }
        echo_listen_src = sd_event_source_disable_unref(echo_listen_src);
        echo_listen_fd = safe_close(echo_listen_fd);
        e = sd_event_unref(e);

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        ck_assert_int_eq(system(cmd), 0);
}

static void address_set(Address *a, const char *host, uint16_t port, const char *path) {
        *a = (Address) { .host = host ? strdup(host) : NULL, .port = port, .path = path ? strdup(path) : NULL };
}

/* A profile whose SOCKS listens on listen_host:0 (none if NULL). */
static Profile *profile_make(const char *listen_host) {
        Profile *p = NULL;
        ProfileError err;

        ck_assert_int_eq(profile_new("test", &p, &err), 0);
        p->socks_listen_set = true;
        if (listen_host) {
                p->socks_listen = calloc(1, sizeof(Address));
                ck_assert_ptr_nonnull(p->socks_listen);
                address_set(&p->socks_listen[0], listen_host, 0, NULL);
                p->n_socks_listen = 1;
        }
        return p;
}

static void profile_add_local(Profile *p, const char *host, uint16_t port, const char *path, const char *thost,
                              uint16_t tport) {
        Forward *f = realloc(p->local, (p->n_local + 1) * sizeof *f);

        ck_assert_ptr_nonnull(f);
        p->local = f;
        f = &p->local[p->n_local++];
        address_set(&f->listen, host, port, path);
        address_set(&f->target, thost, tport, NULL);
}

static void profile_set_auth(Profile *p, const char *user, const char *password_text) {
        char path[128];
        FILE *f;

        snprintf(path, sizeof path, "%s/password", root);
        f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        fputs(password_text, f);
        ck_assert_int_eq(fclose(f), 0);
        p->socks_username = strdup(user);
        p->socks_password_file = strdup(path);
}

static void start(Profile *p, const ClientListenersLimits *limits) {
        _cleanup_(freep) char *what = NULL;
        int r;

        r = client_listeners_new(e, p, &test_opener, limits, &listeners, &what);
        ck_assert_msg(r >= 0, "client_listeners_new: %s: %s", strna(what), strerror(-r));
        ck_assert_ptr_null(what);
        profile_free(p);
}

static char *mfree_str(char *p) {
        free(p);
        return NULL;
}

static uint16_t port_of(const char *address) {
        return (uint16_t) atoi(strrchr(address, ':') + 1);
}

/* ---- Client side helpers. ---- */

static int connect_to(const char *address) {
        int fd;

        if (address[0] == '/') {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };

                snprintf(sa.sun_path, sizeof sa.sun_path, "%s", address);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        } else if (address[0] == '[') {
                struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port_of(address)) };
                char host[64];

                snprintf(host, sizeof host, "%.*s", (int) (strchr(address, ']') - address - 1), address + 1);
                ck_assert_int_eq(inet_pton(AF_INET6, host, &sa.sin6_addr), 1);
                fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        } else {
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port_of(address)) };
                char host[64];

                snprintf(host, sizeof host, "%.*s", (int) (strrchr(address, ':') - address), address);
                ck_assert_int_eq(inet_pton(AF_INET, host, &sa.sin_addr), 1);
                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        }
        return fd;
}

static int socks_connect(void) {
        return connect_to(client_listeners_socks_addresses(listeners)[0]);
}

static void send_bytes(int fd, const void *p, size_t n) {
        ck_assert_int_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t) n);
}

/* Reads exactly n bytes, running the loop meanwhile; fails on EOF. */
static void recv_exact(int fd, uint8_t *buf, size_t n) {
        uint64_t deadline = now_usec() + DEADLINE_USEC;
        size_t got = 0;

        while (got < n) {
                ssize_t k = recv(fd, buf + got, n - got, MSG_DONTWAIT);
                if (k > 0) {
                        got += (size_t) k;
                        continue;
                }
                ck_assert_msg(k < 0 && errno == EAGAIN, "connection ended after %zu of %zu bytes", got, n);
                ck_assert_msg(now_usec() < deadline, "timed out after %zu of %zu bytes", got, n);
                (void) sd_event_run(e, 10 * USEC_PER_MSEC);
        }
}

static void expect_bytes(int fd, const void *expected, size_t n) {
        uint8_t buf[1024];

        ck_assert_uint_le(n, sizeof buf);
        recv_exact(fd, buf, n);
        for (size_t i = 0; i < n; i++)
                ck_assert_msg(buf[i] == ((const uint8_t *) expected)[i], "byte %zu: got 0x%02x, want 0x%02x", i,
                              buf[i], ((const uint8_t *) expected)[i]);
}

/* Waits for the end of the stream, with no byte before it. */
static void expect_eof(int fd) {
        uint64_t deadline = now_usec() + DEADLINE_USEC;

        for (;;) {
                uint8_t b;
                ssize_t k = recv(fd, &b, 1, MSG_DONTWAIT);
                if (k == 0 || (k < 0 && errno == ECONNRESET))
                        return;
                ck_assert_msg(k < 0, "unexpected byte 0x%02x instead of the end", b);
                ck_assert_int_eq(errno, EAGAIN);
                ck_assert_msg(now_usec() < deadline, "connection still open at the deadline");
                (void) sd_event_run(e, 10 * USEC_PER_MSEC);
        }
}

static void expect_open(int fd) {
        uint8_t b;

        ck_assert_int_eq(recv(fd, &b, 1, MSG_DONTWAIT), -1);
        ck_assert_int_eq(errno, EAGAIN);
}

static void expect_echo(int fd, const char *text) {
        send_bytes(fd, text, strlen(text));
        expect_bytes(fd, text, strlen(text));
}

static const uint8_t greeting_noauth[] = { 0x05, 0x01, 0x00 };
static const uint8_t method_noauth[] = { 0x05, 0x00 };
static const uint8_t reply_ok[] = { 0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0 };

static size_t build_request(uint8_t cmd, uint8_t atyp, const char *host, uint16_t port, uint8_t *out) {
        size_t n = 0;

        out[n++] = 0x05;
        out[n++] = cmd;
        out[n++] = 0x00;
        out[n++] = atyp;
        if (atyp == SOCKS5_ATYP_IPV4) {
                ck_assert_int_eq(inet_pton(AF_INET, host, out + n), 1);
                n += 4;
        } else if (atyp == SOCKS5_ATYP_IPV6) {
                ck_assert_int_eq(inet_pton(AF_INET6, host, out + n), 1);
                n += 16;
        } else {
                out[n++] = (uint8_t) strlen(host);
                memcpy(out + n, host, strlen(host));
                n += strlen(host);
        }
        out[n++] = (uint8_t) (port >> 8);
        out[n++] = (uint8_t) port;
        return n;
}

static void expect_reply_code(int fd, uint8_t code) {
        uint8_t want[10] = { 0x05, code, 0x00, 0x01 };
        expect_bytes(fd, want, sizeof want);
}

/* ---- SOCKS CONNECT. ---- */

static const struct {
        uint8_t atyp;
        const char *host;
        uint16_t port;
        const char *listen;
        const char *orig;
} connect_cases[] = {
        { SOCKS5_ATYP_IPV4, "10.20.30.40", 8080, "127.0.0.1", "127.0.0.1" },
        { SOCKS5_ATYP_IPV6, "2001:db8::17", 443, "::1", "::1" },
        { SOCKS5_ATYP_IPV6, "::ffff:192.0.2.1", 1, "127.0.0.1", "127.0.0.1" },
        { SOCKS5_ATYP_DOMAIN, "intranet.example", 65535, "127.0.0.1", "127.0.0.1" },
        /* a name that does not resolve anywhere: passed on as is, never looked up */
        { SOCKS5_ATYP_DOMAIN, "no-such-host.invalid", 80, "::1", "::1" },
};

START_TEST(test_connect) {
        uint8_t req[300];
        size_t n;
        int fd;

        op.mode = OPENER_RELAY;
        start(profile_make(connect_cases[_i].listen), NULL);
        fd = socks_connect();

        send_bytes(fd, greeting_noauth, sizeof greeting_noauth);
        expect_bytes(fd, method_noauth, sizeof method_noauth);
        n = build_request(SOCKS5_CMD_CONNECT, connect_cases[_i].atyp, connect_cases[_i].host, connect_cases[_i].port,
                          req);
        send_bytes(fd, req, n);
        expect_bytes(fd, reply_ok, sizeof reply_ok);

        ck_assert_uint_eq(op.n_calls, 1);
        ck_assert_str_eq(op.calls[0].host, connect_cases[_i].host);
        ck_assert_uint_eq(op.calls[0].port, connect_cases[_i].port);
        ck_assert_uint_eq(op.calls[0].n_initial, 0);
        ck_assert_str_eq(op.calls[0].orig_host, connect_cases[_i].orig);
        ck_assert_uint_ne(op.calls[0].orig_port, 0);
        ck_assert_uint_eq(client_listeners_n_handshakes(listeners), 0);

        expect_echo(fd, "hello through the tunnel");
        expect_echo(fd, "and again");
        close(fd);
}
END_TEST

/* Every byte in its own write, with the loop run in between: the parsers see every
 * truncation point. The synchronous opener answers inside open(). */
START_TEST(test_connect_dribbled_sync_opener) {
        uint8_t req[300], all[400];
        size_t n = 0;
        int fd;

        op.mode = OPENER_RELAY_SYNC;
        start(profile_make("127.0.0.1"), NULL);
        fd = socks_connect();

        memcpy(all, greeting_noauth, sizeof greeting_noauth);
        n = sizeof greeting_noauth;
        for (size_t i = 0; i < n; i++) {
                send_bytes(fd, all + i, 1);
                run_for(2 * USEC_PER_MSEC);
        }
        expect_bytes(fd, method_noauth, sizeof method_noauth);
        n = build_request(SOCKS5_CMD_CONNECT, SOCKS5_ATYP_DOMAIN, "db.internal", 5432, req);
        for (size_t i = 0; i < n; i++) {
                ck_assert_uint_eq(op.n_calls, 0);
                send_bytes(fd, req + i, 1);
                run_for(2 * USEC_PER_MSEC);
        }
        expect_bytes(fd, reply_ok, sizeof reply_ok);
        ck_assert_uint_eq(op.n_calls, 1);
        ck_assert_str_eq(op.calls[0].host, "db.internal");
        ck_assert_uint_eq(op.calls[0].port, 5432);
        expect_echo(fd, "x");
        close(fd);
}
END_TEST

/* Greeting, request and the first stream bytes in one write: the bytes after the request
 * reach the opener as initial, and arrive at the destination before later ones. */
START_TEST(test_initial_data) {
        uint8_t all[400];
        size_t n;
        int fd;

        op.mode = OPENER_RELAY;
        start(profile_make("127.0.0.1"), NULL);
        fd = socks_connect();

        memcpy(all, greeting_noauth, sizeof greeting_noauth);
        n = sizeof greeting_noauth;
        n += build_request(SOCKS5_CMD_CONNECT, SOCKS5_ATYP_DOMAIN, "web.example", 80, all + n);
        memcpy(all + n, "GET / HTTP/1.0\r\n", 16);
        n += 16;
        send_bytes(fd, all, n);

        expect_bytes(fd, method_noauth, sizeof method_noauth);
        expect_bytes(fd, reply_ok, sizeof reply_ok);
        ck_assert_uint_eq(op.n_calls, 1);
        ck_assert_uint_eq(op.calls[0].n_initial, 16);
        ck_assert(memcmp(op.calls[0].initial, "GET / HTTP/1.0\r\n", 16) == 0);
        expect_bytes(fd, "GET / HTTP/1.0\r\n", 16);
        expect_echo(fd, "\r\n");
        close(fd);
}
END_TEST

/* Data sent while the channel is still opening stays in the socket: none lost, none read
 * by the SOCKS server, all of it delivered once the relay runs. */
START_TEST(test_early_data_while_opening) {
        uint8_t req[300];
        size_t n;
        int fd;

        op.mode = OPENER_HOLD;
        start(profile_make("127.0.0.1"), NULL);
        fd = socks_connect();

        send_bytes(fd, greeting_noauth, sizeof greeting_noauth);
        expect_bytes(fd, method_noauth, sizeof method_noauth);
        n = build_request(SOCKS5_CMD_CONNECT, SOCKS5_ATYP_IPV4, "192.0.2.7", 25, req);
        send_bytes(fd, req, n);
        RUN_UNTIL(op.n_calls == 1);
        ck_assert_uint_eq(op.calls[0].n_initial, 0);

        send_bytes(fd, "EHLO early\r\n", 12);
        run_for(50 * USEC_PER_MSEC);
        expect_open(fd); /* no reply before the channel is open */
        ck_assert_uint_eq(client_listeners_n_handshakes(listeners), 1);

        opener_answer(&op.calls[0], 0, 0);
        expect_bytes(fd, reply_ok, sizeof reply_ok);
        expect_bytes(fd, "EHLO early\r\n", 12);
        ck_assert_uint_eq(client_listeners_n_handshakes(listeners), 0);
        close(fd);
}
END_TEST

/* ---- RFC 1929. ---- */

static const struct {
        const char *file;  /* PasswordFile= content */
        const char *user;  /* what the client sends */
        const char *pass;
        bool ok;
} auth_cases[] = {
        { "s3cret\n", "alice", "s3cret", true },
        { "s3cret\r\n", "alice", "s3cret", true },
        { "s3cret", "alice", "s3cret", true },
        { "s3cret\n", "alice", "s3cret\n", false },
        { "s3cret\n", "alice", "s3cre", false },
        { "s3cret\n", "alice", "s3cret!", false },
        { "s3cret\n", "alicf", "s3cret", false },
        { "s3cret\n", "alic", "s3cret", false },
};

START_TEST(test_auth) {
        uint8_t msg[600], req[300];
        size_t n = 0, ul = strlen(auth_cases[_i].user), pl = strlen(auth_cases[_i].pass);
        const uint8_t greeting[] = { 0x05, 0x02, 0x00, 0x02 };
        const uint8_t method_userpass[] = { 0x05, 0x02 };
        const uint8_t auth_ok[] = { 0x01, 0x00 }, auth_fail[] = { 0x01, 0x01 };
        Profile *p = profile_make("127.0.0.1");
        int fd;

        op.mode = OPENER_RELAY;
        profile_set_auth(p, "alice", auth_cases[_i].file);
        start(p, NULL);
        fd = socks_connect();

        send_bytes(fd, greeting, sizeof greeting);
        expect_bytes(fd, method_userpass, sizeof method_userpass);
        msg[n++] = 0x01;
        msg[n++] = (uint8_t) ul;
        memcpy(msg + n, auth_cases[_i].user, ul);
        n += ul;
        msg[n++] = (uint8_t) pl;
        memcpy(msg + n, auth_cases[_i].pass, pl);
        n += pl;
        send_bytes(fd, msg, n);

        if (!auth_cases[_i].ok) {
                expect_bytes(fd, auth_fail, sizeof auth_fail);
                expect_eof(fd);
                ck_assert_uint_eq(op.n_calls, 0);
        } else {
                expect_bytes(fd, auth_ok, sizeof auth_ok);
                n = build_request(SOCKS5_CMD_CONNECT, SOCKS5_ATYP_DOMAIN, "intranet.example", 443, req);
                send_bytes(fd, req, n);
                expect_bytes(fd, reply_ok, sizeof reply_ok);
                ck_assert_uint_eq(op.n_calls, 1);
                ck_assert_str_eq(op.calls[0].host, "intranet.example");
                expect_echo(fd, "authenticated");
        }
        close(fd);
        RUN_UNTIL(client_listeners_n_handshakes(listeners) == 0);
}
END_TEST

/* Greeting, credentials, request and data in one write. */
START_TEST(test_auth_pipelined) {
        uint8_t all[600];
        size_t n = 0;
        const uint8_t head[] = { 0x05, 0x01, 0x02, 0x01, 0x01, 'u', 0x02, 'p', 'w' };
        const uint8_t answers[] = { 0x05, 0x02, 0x01, 0x00 };
        Profile *p = profile_make("127.0.0.1");
        int fd;

        op.mode = OPENER_RELAY;
        profile_set_auth(p, "u", "pw\n");
        start(p, NULL);
        fd = socks_connect();

        memcpy(all, head, sizeof head);
        n = sizeof head;
        n += build_request(SOCKS5_CMD_CONNECT, SOCKS5_ATYP_IPV4, "198.51.100.1", 22, all + n);
        memcpy(all + n, "SSH-2.0-x\r\n", 11);
        n += 11;
        send_bytes(fd, all, n);

        expect_bytes(fd, answers, sizeof answers);
        expect_bytes(fd, reply_ok, sizeof reply_ok);
        ck_assert_uint_eq(op.calls[0].n_initial, 11);
        expect_bytes(fd, "SSH-2.0-x\r\n", 11);
        close(fd);
}
END_TEST

static const struct {
        bool auth_configured;
        uint8_t greeting[8];
        size_t size;
} no_method_cases[] = {
        { true, { 0x05, 0x01, 0x00 }, 3 },        /* auth required, only no-auth offered */
        { true, { 0x05, 0x02, 0x00, 0x01 }, 4 },  /* ... and GSSAPI */
        { false, { 0x05, 0x01, 0x02 }, 3 },       /* no credentials: never username/password */
        { false, { 0x05, 0x02, 0x01, 0x80 }, 4 },
};

START_TEST(test_no_acceptable_method) {
        const uint8_t reject[] = { 0x05, 0xFF };
        Profile *p = profile_make("127.0.0.1");
        int fd;

        if (no_method_cases[_i].auth_configured)
                profile_set_auth(p, "alice", "pw\n");
        start(p, NULL);
        fd = socks_connect();
        send_bytes(fd, no_method_cases[_i].greeting, no_method_cases[_i].size);
        expect_bytes(fd, reject, sizeof reject);
        expect_eof(fd);
        ck_assert_uint_eq(op.n_calls, 0);
        close(fd);
        RUN_UNTIL(client_listeners_n_handshakes(listeners) == 0);
}
END_TEST

/* ---- Refusals: exact reply bytes, then the end. ---- */

static const struct {
        const char *name;
        uint8_t request[16];
        size_t size;
        int reply; /* -1: closed without a reply */
} refusal_cases[] = {
        { "BIND", { 0x05, 0x02, 0x00, 0x01, 127, 0, 0, 1, 0, 80 }, 10, SOCKS5_REPLY_COMMAND_NOT_SUPPORTED },
        { "UDP ASSOCIATE", { 0x05, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0, 0 }, 10, SOCKS5_REPLY_COMMAND_NOT_SUPPORTED },
        { "unknown command", { 0x05, 0x09, 0x00, 0x01, 0, 0, 0, 0, 0, 0 }, 10, SOCKS5_REPLY_COMMAND_NOT_SUPPORTED },
        { "unknown ATYP", { 0x05, 0x01, 0x00, 0x05, 1, 2, 3, 4 }, 8, SOCKS5_REPLY_ADDRESS_TYPE_NOT_SUPPORTED },
        { "ATYP 0", { 0x05, 0x01, 0x00, 0x00 }, 4, SOCKS5_REPLY_ADDRESS_TYPE_NOT_SUPPORTED },
        { "request version 4", { 0x04, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0, 80 }, 10, -1 },
        { "RSV not 0", { 0x05, 0x01, 0x01, 0x01, 127, 0, 0, 1, 0, 80 }, 10, -1 },
        { "empty domain", { 0x05, 0x01, 0x00, 0x03, 0x00, 0, 80 }, 7, -1 },
};

START_TEST(test_refusals) {
        int fd;

        start(profile_make("127.0.0.1"), NULL);
        fd = socks_connect();
        send_bytes(fd, greeting_noauth, sizeof greeting_noauth);
        expect_bytes(fd, method_noauth, sizeof method_noauth);
        send_bytes(fd, refusal_cases[_i].request, refusal_cases[_i].size);
        if (refusal_cases[_i].reply >= 0)
                expect_reply_code(fd, (uint8_t) refusal_cases[_i].reply);
        expect_eof(fd);
        ck_assert_msg(op.n_calls == 0, "%s reached the opener", refusal_cases[_i].name);
        close(fd);
        RUN_UNTIL(client_listeners_n_handshakes(listeners) == 0);
}
END_TEST

/* A client that never closes after an error reply is let go after the linger time. */
START_TEST(test_linger_is_bounded) {
        uint64_t t0;
        int fd;

        start(profile_make("127.0.0.1"), NULL);
        fd = socks_connect();
        send_bytes(fd, greeting_noauth, sizeof greeting_noauth);
        expect_bytes(fd, method_noauth, sizeof method_noauth);
        send_bytes(fd, refusal_cases[0].request, refusal_cases[0].size);
        t0 = now_usec();
        expect_reply_code(fd, SOCKS5_REPLY_COMMAND_NOT_SUPPORTED);
        expect_eof(fd);
        send_bytes(fd, "ignored", 7);
        RUN_UNTIL(client_listeners_n_handshakes(listeners) == 0);
        ck_assert_uint_ge(now_usec() - t0, SOCKS_SERVER_LINGER_USEC);
        close(fd);
}
END_TEST

static const struct {
        uint8_t greeting[4];
        size_t size;
} bad_greetings[] = {
        { { 0x04, 0x01, 0x00 }, 3 }, /* SOCKS4 */
        { { 0x05, 0x00 }, 2 },       /* no methods */
        { { 'G', 'E', 'T', ' ' }, 4 },
};

START_TEST(test_bad_greeting_closes) {
        int fd;

        start(profile_make("127.0.0.1"), NULL);
        fd = socks_connect();
        send_bytes(fd, bad_greetings[_i].greeting, bad_greetings[_i].size);
        expect_eof(fd);
        close(fd);
        RUN_UNTIL(client_listeners_n_handshakes(listeners) == 0);
}
END_TEST

/* ---- Open failures. ---- */

static const struct {
        OpenerMode mode;
        int r, ssh_reason;
        uint8_t reply;
} failure_cases[] = {
        { OPENER_FAIL, -ECONNREFUSED, SSH_OPEN_ADMINISTRATIVELY_PROHIBITED, SOCKS5_REPLY_NOT_ALLOWED },
        { OPENER_FAIL, -ECONNREFUSED, SSH_OPEN_CONNECT_FAILED, SOCKS5_REPLY_CONNECTION_REFUSED },
        { OPENER_FAIL, -ECONNREFUSED, SSH_OPEN_UNKNOWN_CHANNEL_TYPE, SOCKS5_REPLY_GENERAL_FAILURE },
        { OPENER_FAIL, -ECONNREFUSED, SSH_OPEN_RESOURCE_SHORTAGE, SOCKS5_REPLY_GENERAL_FAILURE },
        { OPENER_FAIL, -ECONNREFUSED, 77, SOCKS5_REPLY_GENERAL_FAILURE },
        { OPENER_FAIL, -ETIMEDOUT, 0, SOCKS5_REPLY_GENERAL_FAILURE },
        { OPENER_FAIL, -ENOTCONN, 0, SOCKS5_REPLY_GENERAL_FAILURE },
        { OPENER_FAIL_SYNC, -ECONNREFUSED, SSH_OPEN_CONNECT_FAILED, SOCKS5_REPLY_CONNECTION_REFUSED },
        { OPENER_FAIL_SYNC, -ENOTCONN, 0, SOCKS5_REPLY_GENERAL_FAILURE },
        { OPENER_REFUSE, -ENOMEM, 0, SOCKS5_REPLY_GENERAL_FAILURE },
        { OPENER_REFUSE, -EBUSY, 0, SOCKS5_REPLY_GENERAL_FAILURE },
};

START_TEST(test_open_failure) {
        uint8_t req[300];
        size_t n;
        int fd;

        op.mode = failure_cases[_i].mode;
        op.fail_r = failure_cases[_i].r;
        op.fail_reason = failure_cases[_i].ssh_reason;
        start(profile_make("127.0.0.1"), NULL);
        fd = socks_connect();
        send_bytes(fd, greeting_noauth, sizeof greeting_noauth);
        expect_bytes(fd, method_noauth, sizeof method_noauth);
        n = build_request(SOCKS5_CMD_CONNECT, SOCKS5_ATYP_DOMAIN, "refused.example", 9, req);
        send_bytes(fd, req, n);
        expect_reply_code(fd, failure_cases[_i].reply);
        expect_eof(fd);
        close(fd);
        RUN_UNTIL(client_listeners_n_handshakes(listeners) == 0);
}
END_TEST

/* ---- Deadlines, caps, cancellation. ---- */

static const struct {
        uint8_t sent[8];
        size_t size;
} stall_cases[] = {
        { {}, 0 },                       /* nothing at all */
        { { 0x05 }, 1 },                 /* half a greeting */
        { { 0x05, 0x01, 0x00, 0x05 }, 4 }, /* greeting and a piece of the request */
};

START_TEST(test_handshake_deadline) {
        ClientListenersLimits limits = { .handshake_timeout_usec = 100 * USEC_PER_MSEC };
        uint64_t t0;
        int fd;

        start(profile_make("127.0.0.1"), &limits);
        t0 = now_usec();
        fd = socks_connect();
        if (stall_cases[_i].size > 0)
                send_bytes(fd, stall_cases[_i].sent, stall_cases[_i].size);
        if (stall_cases[_i].size >= 3)
                expect_bytes(fd, method_noauth, sizeof method_noauth);
        expect_eof(fd);
        ck_assert_uint_ge(now_usec() - t0, 100 * USEC_PER_MSEC);
        ck_assert_uint_eq(client_listeners_n_handshakes(listeners), 0);
        close(fd);
}
END_TEST

/* The deadline covers the client's part only: waiting for the channel is the opener's
 * business. A client that resets meanwhile cancels its open. */
START_TEST(test_opening_outlives_deadline_and_reset_cancels) {
        ClientListenersLimits limits = { .handshake_timeout_usec = 50 * USEC_PER_MSEC };
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        uint8_t req[300];
        size_t n;
        int fd;

        op.mode = OPENER_HOLD;
        start(profile_make("127.0.0.1"), &limits);
        fd = socks_connect();
        send_bytes(fd, greeting_noauth, sizeof greeting_noauth);
        expect_bytes(fd, method_noauth, sizeof method_noauth);
        n = build_request(SOCKS5_CMD_CONNECT, SOCKS5_ATYP_DOMAIN, "slow.example", 1, req);
        send_bytes(fd, req, n);
        RUN_UNTIL(op.n_calls == 1);
        run_for(200 * USEC_PER_MSEC);
        expect_open(fd);
        ck_assert(!op.calls[0].cancelled);

        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        close(fd); /* a reset */
        RUN_UNTIL(op.n_cancelled == 1);
        ck_assert(op.calls[0].cancelled);
        ck_assert_uint_eq(client_listeners_n_handshakes(listeners), 0);
}
END_TEST

START_TEST(test_half_open_cap) {
        ClientListenersLimits limits = { .max_handshakes = 3 };
        int fds[3], extra;

        op.mode = OPENER_RELAY;
        start(profile_make("127.0.0.1"), &limits);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = socks_connect();
        RUN_UNTIL(client_listeners_n_handshakes(listeners) == 3);

        extra = socks_connect();
        expect_eof(extra); /* closed at once, no greeting needed */
        close(extra);
        ck_assert_uint_eq(client_listeners_n_handshakes(listeners), 3);

        /* One finishes its handshake: room for a new one. */
        uint8_t req[300];
        size_t n = build_request(SOCKS5_CMD_CONNECT, SOCKS5_ATYP_IPV4, "10.0.0.1", 80, req);
        send_bytes(fds[0], greeting_noauth, sizeof greeting_noauth);
        expect_bytes(fds[0], method_noauth, sizeof method_noauth);
        send_bytes(fds[0], req, n);
        expect_bytes(fds[0], reply_ok, sizeof reply_ok);
        ck_assert_uint_eq(client_listeners_n_handshakes(listeners), 2);

        extra = socks_connect();
        RUN_UNTIL(client_listeners_n_handshakes(listeners) == 3);
        send_bytes(extra, greeting_noauth, sizeof greeting_noauth);
        expect_bytes(extra, method_noauth, sizeof method_noauth);
        close(extra);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
        RUN_UNTIL(client_listeners_n_handshakes(listeners) == 0);
}
END_TEST

/* ---- The listener set. ---- */

START_TEST(test_listener_set) {
        char sock_path[100], socks_path[100], want[160];
        char *const *socks, *const *local;
        Profile *p = profile_make("::1");
        struct stat st;
        int fd;

        op.mode = OPENER_RELAY;
        snprintf(socks_path, sizeof socks_path, "%s/socks.sock", root);
        p->socks_listen = reallocarray(p->socks_listen, 2, sizeof(Address));
        ck_assert_ptr_nonnull(p->socks_listen);
        address_set(&p->socks_listen[p->n_socks_listen++], NULL, 0, socks_path);
        snprintf(sock_path, sizeof sock_path, "%s/pg.sock", root);
        profile_add_local(p, NULL, 0, sock_path, "db.internal", 5432);
        profile_add_local(p, "127.0.0.1", 0, NULL, "10.1.2.3", 22);
        profile_add_local(p, "::1", 0, NULL, "2001:db8::1", 8443);
        start(p, NULL);

        socks = client_listeners_socks_addresses(listeners);
        local = client_listeners_local_addresses(listeners);
        ck_assert_ptr_nonnull(socks[0]);
        ck_assert_str_eq(socks[1], socks_path);
        ck_assert_ptr_null(socks[2]);
        snprintf(want, sizeof want, "[::1]:%u", (unsigned) port_of(socks[0]));
        ck_assert_str_eq(socks[0], want);
        ck_assert_uint_ne(port_of(socks[0]), 0);
        ck_assert_str_eq(local[0], sock_path);
        snprintf(want, sizeof want, "127.0.0.1:%u", (unsigned) port_of(local[1]));
        ck_assert_str_eq(local[1], want);
        snprintf(want, sizeof want, "[::1]:%u", (unsigned) port_of(local[2]));
        ck_assert_str_eq(local[2], want);
        ck_assert_ptr_null(local[3]);

        ck_assert_int_eq(lstat(sock_path, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, CLIENT_LISTENERS_SOCKET_MODE);

        /* Local= on a unix socket: the forward target, the unix originator. */
        fd = connect_to(local[0]);
        expect_echo(fd, "over the unix socket");
        ck_assert_uint_eq(op.n_calls, 1);
        ck_assert_str_eq(op.calls[0].host, "db.internal");
        ck_assert_uint_eq(op.calls[0].port, 5432);
        ck_assert_str_eq(op.calls[0].orig_host, CLIENT_LISTENERS_UNIX_ORIG_HOST);
        ck_assert_uint_eq(op.calls[0].orig_port, CLIENT_LISTENERS_UNIX_ORIG_PORT);
        close(fd);

        /* Local= on TCP: the originator is the client's address and port. */
        fd = connect_to(local[1]);
        expect_echo(fd, "over tcp");
        ck_assert_uint_eq(op.n_calls, 2);
        ck_assert_str_eq(op.calls[1].host, "10.1.2.3");
        ck_assert_uint_eq(op.calls[1].port, 22);
        ck_assert_str_eq(op.calls[1].orig_host, "127.0.0.1");
        {
                struct sockaddr_in sa;
                socklen_t len = sizeof sa;
                ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
                ck_assert_uint_eq(op.calls[1].orig_port, ntohs(sa.sin_port));
        }
        close(fd);

        fd = connect_to(local[2]);
        expect_echo(fd, "over tcp6");
        ck_assert_str_eq(op.calls[2].host, "2001:db8::1");
        ck_assert_uint_eq(op.calls[2].port, 8443);
        ck_assert_str_eq(op.calls[2].orig_host, "::1");
        close(fd);

        /* SOCKS on [::1]. */
        fd = connect_to(socks[0]);
        send_bytes(fd, greeting_noauth, sizeof greeting_noauth);
        expect_bytes(fd, method_noauth, sizeof method_noauth);
        {
                uint8_t req[300];
                size_t n = build_request(SOCKS5_CMD_CONNECT, SOCKS5_ATYP_DOMAIN, "v6.example", 80, req);
                send_bytes(fd, req, n);
        }
        expect_bytes(fd, reply_ok, sizeof reply_ok);
        expect_echo(fd, "socks over ::1");
        close(fd);
        ck_assert_str_eq(op.calls[3].host, "v6.example");
        ck_assert_str_eq(op.calls[3].orig_host, "::1");

        /* SOCKS on a unix socket. */
        fd = connect_to(socks[1]);
        send_bytes(fd, greeting_noauth, sizeof greeting_noauth);
        expect_bytes(fd, method_noauth, sizeof method_noauth);
        {
                uint8_t req[300];
                size_t n = build_request(SOCKS5_CMD_CONNECT, SOCKS5_ATYP_IPV4, "192.0.2.80", 80, req);
                send_bytes(fd, req, n);
        }
        expect_bytes(fd, reply_ok, sizeof reply_ok);
        expect_echo(fd, "socks over a unix socket");
        close(fd);
        ck_assert_str_eq(op.calls[4].host, "192.0.2.80");
        ck_assert_str_eq(op.calls[4].orig_host, CLIENT_LISTENERS_UNIX_ORIG_HOST);
        ck_assert_uint_eq(op.calls[4].orig_port, CLIENT_LISTENERS_UNIX_ORIG_PORT);

        /* Freeing closes every listener and removes the socket file. */
        {
                char addrs[4][160];
                for (size_t i = 0; i < 3; i++)
                        snprintf(addrs[i], sizeof addrs[i], "%s", local[i]);
                snprintf(addrs[3], sizeof addrs[3], "%s", socks[0]);
                listeners = client_listeners_free(listeners);

                ck_assert_int_eq(lstat(sock_path, &st), -1);
                ck_assert_int_eq(errno, ENOENT);
                ck_assert_int_eq(lstat(socks_path, &st), -1);
                ck_assert_int_eq(errno, ENOENT);
                for (size_t i = 1; i < 4; i++) {
                        int s = socket(addrs[i][0] == '[' ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                        struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = htons(port_of(addrs[i])),
                                                    .sin6_addr = IN6ADDR_LOOPBACK_INIT };
                        struct sockaddr_in sa4 = { .sin_family = AF_INET, .sin_port = htons(port_of(addrs[i])),
                                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                        int r = addrs[i][0] == '[' ? connect(s, (struct sockaddr *) &sa6, sizeof sa6)
                                                  : connect(s, (struct sockaddr *) &sa4, sizeof sa4);
                        ck_assert_int_eq(r, -1);
                        ck_assert_int_eq(errno, ECONNREFUSED);
                        close(s);
                }
        }
}
END_TEST

START_TEST(test_socks_disabled_and_default) {
        Profile *p = profile_make(NULL);
        _cleanup_(freep) char *what = NULL;
        int r;

        start(p, NULL);
        ck_assert_ptr_null(client_listeners_socks_addresses(listeners)[0]);
        ck_assert_ptr_null(client_listeners_local_addresses(listeners)[0]);
        listeners = client_listeners_free(listeners);

        /* Listen= never set: 127.0.0.1:1080, unless something on this machine holds it. */
        p = profile_make(NULL);
        p->socks_listen_set = false;
        r = client_listeners_new(e, p, &test_opener, NULL, &listeners, &what);
        profile_free(p);
        if (r == -EADDRINUSE) {
                ck_assert_str_eq(what, "SOCKS listener 127.0.0.1:1080");
                return;
        }
        ck_assert_int_eq(r, 0);
        ck_assert_str_eq(client_listeners_socks_addresses(listeners)[0], "127.0.0.1:1080");
        ck_assert_ptr_null(client_listeners_socks_addresses(listeners)[1]);
}
END_TEST

/* Binding fails as a whole, names the address (never the target), and leaves nothing
 * behind: the unix socket bound before the failure is gone again. */
START_TEST(test_bind_conflict) {
        char sock_path[128], want[160];
        _cleanup_(freep) char *what = NULL;
        Profile *p = profile_make(NULL);
        int busy = listen_tcp4(0), r;
        uint16_t port = bound_port(busy);
        struct stat st;

        snprintf(sock_path, sizeof sock_path, "%s/first.sock", root);
        profile_add_local(p, NULL, 0, sock_path, "secret-target.example", 5432);
        profile_add_local(p, "127.0.0.1", port, NULL, "secret-target.example", 22);
        r = client_listeners_new(e, p, &test_opener, NULL, &listeners, &what);
        ck_assert_int_eq(r, -EADDRINUSE);
        ck_assert_ptr_null(listeners);
        snprintf(want, sizeof want, "Local= listener 127.0.0.1:%u", (unsigned) port);
        ck_assert_str_eq(what, want);
        ck_assert_ptr_null(strstr(what, "secret"));
        ck_assert_int_eq(lstat(sock_path, &st), -1);
        ck_assert_int_eq(errno, ENOENT);
        profile_free(p);
        what = mfree_str(what);

        /* The same for SOCKS. */
        p = profile_make(NULL);
        p->socks_listen = calloc(1, sizeof(Address));
        address_set(&p->socks_listen[0], "127.0.0.1", port, NULL);
        p->n_socks_listen = 1;
        r = client_listeners_new(e, p, &test_opener, NULL, &listeners, &what);
        ck_assert_int_eq(r, -EADDRINUSE);
        snprintf(want, sizeof want, "SOCKS listener 127.0.0.1:%u", (unsigned) port);
        ck_assert_str_eq(what, want);
        profile_free(p);
        close(busy);
}
END_TEST

/* What a Local= unix path may replace. */
START_TEST(test_unix_socket_path) {
        char path[100], want[200];
        _cleanup_(freep) char *what = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        Profile *p;
        int fd, r;
        FILE *f;

        snprintf(path, sizeof path, "%s/x.sock", root);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);

        /* A regular file is never removed. */
        f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        fclose(f);
        p = profile_make(NULL);
        profile_add_local(p, NULL, 0, path, "t.example", 1);
        r = client_listeners_new(e, p, &test_opener, NULL, &listeners, &what);
        ck_assert_int_eq(r, -EEXIST);
        snprintf(want, sizeof want, "Local= listener %s", path);
        ck_assert_str_eq(what, want);
        what = mfree_str(what);
        ck_assert_int_eq(access(path, F_OK), 0);
        ck_assert_int_eq(unlink(path), 0);

        /* A live socket is someone else's. */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        ck_assert_int_eq(listen(fd, 4), 0);
        r = client_listeners_new(e, p, &test_opener, NULL, &listeners, &what);
        ck_assert_int_eq(r, -EADDRINUSE);
        what = mfree_str(what);
        ck_assert_int_eq(access(path, F_OK), 0);

        /* Once its owner is gone it is stale and replaced. */
        close(fd);
        r = client_listeners_new(e, p, &test_opener, NULL, &listeners, &what);
        ck_assert_int_eq(r, 0);
        ck_assert_ptr_null(what);
        profile_free(p);

        /* A file put in place of ours meanwhile is not ours to unlink. */
        ck_assert_int_eq(unlink(path), 0);
        f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        fclose(f);
        listeners = client_listeners_free(listeners);
        ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

static const struct {
        const char *content; /* NULL: no file */
        size_t size;
        int r;
} password_file_cases[] = {
        { NULL, 0, -ENOENT },
        { "", 0, -EINVAL },
        { "\n", 1, -EINVAL },
        { "\r\n", 2, -EINVAL },
        { "a\0b\n", 4, -EINVAL },
        /* 256 bytes: longer than RFC 1929 allows */
        { "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 256, -E2BIG },
        /* 255 bytes and a newline: the longest that fits */
        { "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 256, 0 },
};

START_TEST(test_password_file_errors) {
        char path[128], want[200];
        _cleanup_(freep) char *what = NULL;
        Profile *p = profile_make("127.0.0.1");
        int r;

        snprintf(path, sizeof path, "%s/password", root);
        if (password_file_cases[_i].content) {
                size_t n = password_file_cases[_i].size;
                FILE *f = fopen(path, "we");
                ck_assert_ptr_nonnull(f);
                ck_assert_uint_eq(fwrite(password_file_cases[_i].content, 1, n, f), n);
                fclose(f);
        }
        p->socks_username = strdup("alice");
        p->socks_password_file = strdup(path);
        r = client_listeners_new(e, p, &test_opener, NULL, &listeners, &what);
        profile_free(p);
        ck_assert_int_eq(r, password_file_cases[_i].r);
        if (r == 0) {
                ck_assert_ptr_null(what);
                ck_assert_ptr_nonnull(listeners);
                return;
        }
        snprintf(want, sizeof want, "PasswordFile= %s", path);
        ck_assert_str_eq(what, want);
        ck_assert_ptr_null(listeners);
}
END_TEST

/* A Local= connection waits for its channel under a cap; freeing the set cancels. */
START_TEST(test_local_pending_cap_and_free) {
        ClientListenersLimits limits = { .max_pending_opens = 2 };
        Profile *p = profile_make(NULL);
        int fds[2], extra;

        op.mode = OPENER_HOLD;
        profile_add_local(p, "127.0.0.1", 0, NULL, "10.9.9.9", 9);
        start(p, &limits);

        for (size_t i = 0; i < 2; i++)
                fds[i] = connect_to(client_listeners_local_addresses(listeners)[0]);
        RUN_UNTIL(op.n_calls == 2);
        ck_assert_uint_eq(client_listeners_n_pending_opens(listeners), 2);

        extra = connect_to(client_listeners_local_addresses(listeners)[0]);
        expect_eof(extra);
        close(extra);
        ck_assert_uint_eq(op.n_calls, 2);

        listeners = client_listeners_free(listeners);
        ck_assert_uint_eq(op.n_cancelled, 2);
        for (size_t i = 0; i < 2; i++) {
                expect_eof(fds[i]);
                close(fds[i]);
        }
}
END_TEST

/* A failed Local= open closes the client; a reset client cancels its open. */
START_TEST(test_local_failure_and_reset) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        Profile *p = profile_make(NULL);
        int fd;

        op.mode = OPENER_HOLD;
        profile_add_local(p, "127.0.0.1", 0, NULL, "10.9.9.9", 9);
        start(p, NULL);

        fd = connect_to(client_listeners_local_addresses(listeners)[0]);
        RUN_UNTIL(op.n_calls == 1);
        opener_answer(&op.calls[0], -ECONNREFUSED, SSH_OPEN_CONNECT_FAILED);
        expect_eof(fd);
        close(fd);
        ck_assert_uint_eq(client_listeners_n_pending_opens(listeners), 0);

        fd = connect_to(client_listeners_local_addresses(listeners)[0]);
        RUN_UNTIL(op.n_calls == 2);
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        close(fd);
        RUN_UNTIL(op.n_cancelled == 1);
        ck_assert(op.calls[1].cancelled);
        ck_assert_uint_eq(client_listeners_n_pending_opens(listeners), 0);

        /* Synchronous answers inside open(), both ways. */
        op.mode = OPENER_FAIL_SYNC;
        op.fail_r = -ENOTCONN;
        fd = connect_to(client_listeners_local_addresses(listeners)[0]);
        expect_eof(fd);
        close(fd);
        op.mode = OPENER_RELAY_SYNC;
        fd = connect_to(client_listeners_local_addresses(listeners)[0]);
        expect_echo(fd, "sync");
        close(fd);
        op.mode = OPENER_REFUSE;
        op.fail_r = -ENOMEM;
        fd = connect_to(client_listeners_local_addresses(listeners)[0]);
        expect_eof(fd);
        close(fd);
        ck_assert_uint_eq(client_listeners_n_pending_opens(listeners), 0);
}
END_TEST

/* Freeing the set while SOCKS handshakes are in every state. */
START_TEST(test_free_with_handshakes) {
        uint8_t req[300];
        size_t n;
        int a, b, c;

        op.mode = OPENER_HOLD;
        start(profile_make("127.0.0.1"), NULL);
        a = socks_connect(); /* accepted, silent */
        b = socks_connect(); /* greeted */
        c = socks_connect(); /* opening */
        send_bytes(b, greeting_noauth, sizeof greeting_noauth);
        send_bytes(c, greeting_noauth, sizeof greeting_noauth);
        n = build_request(SOCKS5_CMD_CONNECT, SOCKS5_ATYP_DOMAIN, "held.example", 1, req);
        send_bytes(c, req, n);
        RUN_UNTIL(op.n_calls == 1 && client_listeners_n_handshakes(listeners) == 3);

        listeners = client_listeners_free(listeners);
        ck_assert_uint_eq(op.n_cancelled, 1);
        expect_eof(a);
        expect_bytes(b, method_noauth, sizeof method_noauth);
        expect_eof(b);
        expect_bytes(c, method_noauth, sizeof method_noauth);
        expect_eof(c);
        close(a);
        close(b);
        close(c);
}
END_TEST

/* At debug level, nothing logged about connections names a destination. */
START_TEST(test_no_destination_in_logs) {
        char path[128], text[65536];
        uint8_t req[300];
        size_t n;
        int saved, logfd, fd;
        ssize_t k;

        snprintf(path, sizeof path, "%s/log", root);
        logfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(logfd, 0);
        saved = dup(STDERR_FILENO);
        ck_assert_int_ge(dup2(logfd, STDERR_FILENO), 0);
        log_set_max_level(LOG_DEBUG);

        op.mode = OPENER_FAIL;
        op.fail_r = -ECONNREFUSED;
        op.fail_reason = SSH_OPEN_CONNECT_FAILED;
        {
                Profile *p = profile_make("127.0.0.1");
                profile_add_local(p, "127.0.0.1", 0, NULL, "forward-target.example", 5432);
                start(p, NULL);
        }
        fd = socks_connect();
        send_bytes(fd, greeting_noauth, sizeof greeting_noauth);
        n = build_request(SOCKS5_CMD_CONNECT, SOCKS5_ATYP_DOMAIN, "socks-target.example", 4711, req);
        send_bytes(fd, req, n);
        expect_bytes(fd, method_noauth, sizeof method_noauth);
        expect_reply_code(fd, SOCKS5_REPLY_CONNECTION_REFUSED);
        expect_eof(fd);
        close(fd);
        fd = socks_connect();
        n = build_request(SOCKS5_CMD_BIND, SOCKS5_ATYP_IPV4, "203.0.113.9", 4711, req);
        send_bytes(fd, greeting_noauth, sizeof greeting_noauth);
        send_bytes(fd, req, n);
        expect_bytes(fd, method_noauth, sizeof method_noauth);
        expect_reply_code(fd, SOCKS5_REPLY_COMMAND_NOT_SUPPORTED);
        expect_eof(fd);
        close(fd);
        fd = connect_to(client_listeners_local_addresses(listeners)[0]);
        expect_eof(fd);
        close(fd);
        listeners = client_listeners_free(listeners);

        log_set_max_level(LOG_ERR);
        ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
        close(saved);
        k = pread(logfd, text, sizeof text - 1, 0);
        close(logfd);
        ck_assert_int_gt(k, 0); /* debug lines were written */
        text[k] = '\0';
        ck_assert_msg(!strstr(text, "target"), "destination in the log: %s", text);
        ck_assert_msg(!strstr(text, "4711") && !strstr(text, "5432") && !strstr(text, "203.0.113.9"),
                      "destination in the log: %s", text);
}
END_TEST

int main(void) {
        Suite *s = suite_create("socks-server");
        TCase *tc = tcase_create("socks-server");
        SRunner *sr;
        int failed;

        log_set_max_level(getenv("TEST_DEBUG") ? LOG_DEBUG : LOG_ERR);
        tcase_set_timeout(tc, 60);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_loop_test(tc, test_connect, 0, ELEMENTSOF(connect_cases));
        tcase_add_test(tc, test_connect_dribbled_sync_opener);
        tcase_add_test(tc, test_initial_data);
        tcase_add_test(tc, test_early_data_while_opening);
        tcase_add_loop_test(tc, test_auth, 0, ELEMENTSOF(auth_cases));
        tcase_add_test(tc, test_auth_pipelined);
        tcase_add_loop_test(tc, test_no_acceptable_method, 0, ELEMENTSOF(no_method_cases));
        tcase_add_loop_test(tc, test_refusals, 0, ELEMENTSOF(refusal_cases));
        tcase_add_test(tc, test_linger_is_bounded);
        tcase_add_loop_test(tc, test_bad_greeting_closes, 0, ELEMENTSOF(bad_greetings));
        tcase_add_loop_test(tc, test_open_failure, 0, ELEMENTSOF(failure_cases));
        tcase_add_loop_test(tc, test_handshake_deadline, 0, ELEMENTSOF(stall_cases));
        tcase_add_test(tc, test_opening_outlives_deadline_and_reset_cancels);
        tcase_add_test(tc, test_half_open_cap);
        tcase_add_test(tc, test_listener_set);
        tcase_add_test(tc, test_socks_disabled_and_default);
        tcase_add_test(tc, test_bind_conflict);
        tcase_add_test(tc, test_unix_socket_path);
        tcase_add_loop_test(tc, test_password_file_errors, 0, ELEMENTSOF(password_file_cases));
        tcase_add_test(tc, test_local_pending_cap_and_free);
        tcase_add_test(tc, test_local_failure_and_reset);
        tcase_add_test(tc, test_free_with_handshakes);
        tcase_add_test(tc, test_no_destination_in_logs);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
