/* Tests of src/daemon/tls.c in a real sd-event loop over real TCP connections on 127.0.0.1:
 * contexts and pins, client and server bridges against each other (sha-exact bulk both ways,
 * backpressure, half-close, every verify failure, deadlines), the stealth peek against a
 * plain OpenSSL client thread (decoy bytes, SSH banner, silence, splice), and interop with
 * the stock openssl s_server / s_client and curl. The CA and certificates are made with
 * the openssl CLI at test time. */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "stealth.h"
#include "tls.h"

#define SHORT_USEC (300 * USEC_PER_MSEC)

extern char **environ;

static char dir[] = "/tmp/alknet-test-tls.XXXXXX";
static bool valgrind;
static sd_event *e;

static char *path(const char *name) {
        static char buf[8][256];
        static unsigned i;
        char *p = buf[i++ % ELEMENTSOF(buf)];

        snprintf(p, sizeof buf[0], "%s/%s", dir, name);
        return p;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static uint64_t deadline_usec(void) {
        return (valgrind ? 300 : 60) * USEC_PER_SEC;
}

typedef bool (*Predicate)(void *userdata);

/* Runs the loop until pred holds, failing the test at the deadline. */
static void run_until(Predicate pred, void *userdata) {
        uint64_t end = now_usec() + deadline_usec();

        while (!pred(userdata)) {
                uint64_t n = now_usec();
                ck_assert_msg(n < end, "deadline passed");
                ck_assert_int_ge(sd_event_run(e, end - n), 0);
        }
}

static bool flag_set(void *userdata) {
        return *(bool *) userdata;
}

static void run_until_flag(bool *flag) {
        run_until(flag_set, flag);
}

/* ---- Sockets ---- */

static int listener_new(uint16_t *ret_port) {
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof sin;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sin, sizeof sin), 0);
        ck_assert_int_eq(listen(fd, 16), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &sin, &len), 0);
        *ret_port = ntohs(sin.sin_port);
        return fd;
}

static int connect_to(uint16_t port) {
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *) &sin, sizeof sin), 0);
        ck_assert_int_ge(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
        return fd;
}

/* A connected TCP pair on loopback: connect() completes from the backlog, no loop needed. */
static void tcp_pair(int *ret_client, int *ret_server) {
        uint16_t port;
        int l = listener_new(&port);

        *ret_client = connect_to(port);
        *ret_server = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        ck_assert_int_ge(*ret_server, 0);
        close(l);
}

/* ---- One bridge end and its callbacks ---- */

typedef struct End {
        TlsBridge *b;
        int app_fd; /* from ready() */
        bool ready, failed, closed, finished;
        TlsFailure failure;
        int error;
        char reason[512];
        char alpn[64], version[32], server_name[256], subject[256], pin[TLS_PIN_SIZE];
        bool have_alpn;

        /* stealth policy of the peek callback */
        bool splice;             /* OTHER: hold, then splice to splice_port from a defer */
        bool decoy_on_silence;   /* NEED_MORE at TIMEOUT/EOF: send the decoy anyway */
        uint16_t splice_port;
        uint64_t splice_idle_usec; /* tls_bridge_splice()'s idle timeout */
        sd_event_source *splice_defer;
        unsigned peek_calls;
        uint8_t peeked[TLS_PEEK_MAX];
        size_t n_peeked;
        TlsPeekEvent last_event;
        uint64_t peek_end_usec;  /* when a TIMEOUT/EOF event came */
        char decoy[STEALTH_DECOY_SIZE];
        int decoy_len;
} End;

static void end_init(End *x) {
        *x = (End) { .app_fd = -EBADF, .failure = _TLS_FAILURE_INVALID, .decoy_len = -1 };
}

static void end_done(End *x) {
        x->b = tls_bridge_free(x->b);
        x->splice_defer = sd_event_source_disable_unref(x->splice_defer);
        x->app_fd = safe_close(x->app_fd);
}

static bool end_finished(void *userdata) {
        return ((End *) userdata)->finished;
}

static bool end_ready_or_finished(void *userdata) {
        End *x = userdata;
        return x->ready || x->finished;
}

static void copy_str(char *dst, size_t size, const char *src) {
        snprintf(dst, size, "%s", strempty(src));
}

static void on_ready(TlsBridge *b, int fd, const TlsInfo *info, void *userdata) {
        End *x = userdata;

        ck_assert_ptr_eq(b, x->b);
        ck_assert(!x->ready);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
        ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        ck_assert_ptr_eq(info, tls_bridge_get_info(b));
        x->ready = true;
        x->app_fd = fd;
        x->have_alpn = info->alpn != NULL;
        copy_str(x->alpn, sizeof x->alpn, info->alpn);
        copy_str(x->version, sizeof x->version, info->version);
        copy_str(x->server_name, sizeof x->server_name, info->server_name);
        copy_str(x->subject, sizeof x->subject, info->peer_subject);
        copy_str(x->pin, sizeof x->pin, info->peer_pin);
        /* Nothing but the peek-mode actions' -EBUSY from here on. */
        ck_assert_int_eq(tls_bridge_hand_over(b), -EBUSY);
        ck_assert_int_eq(tls_bridge_hold(b), -EBUSY);
}

static void on_failed(TlsBridge *b, TlsFailure failure, int error, const char *reason, void *userdata) {
        End *x = userdata;

        ck_assert(!x->finished);
        ck_assert_ptr_nonnull(reason);
        x->failed = x->finished = true;
        x->failure = failure;
        x->error = error;
        copy_str(x->reason, sizeof x->reason, reason);
        x->b = tls_bridge_free(b); /* freeing inside the callback is allowed */
}

static void on_closed(TlsBridge *b, int error, void *userdata) {
        End *x = userdata;

        ck_assert(!x->finished);
        x->closed = x->finished = true;
        x->error = error;
        x->b = tls_bridge_free(b);
}

static int on_splice_defer(sd_event_source *s, void *userdata) {
        End *x = userdata;
        int fd = connect_to(x->splice_port); /* "dialled" the fallback backend */

        ck_assert_int_eq(tls_bridge_splice(x->b, fd, x->splice_idle_usec), 0);
        return 0;
}

static void send_decoy(End *x, TlsBridge *b) {
        x->decoy_len = stealth_decoy_response(x->decoy, sizeof x->decoy, time(NULL));
        ck_assert_int_gt(x->decoy_len, 0);
        ck_assert_int_eq(tls_bridge_send_and_close(b, x->decoy, (size_t) x->decoy_len), 0);
}

/* The stealth policy the server role implements, in small. */
static void on_peek(TlsBridge *b, const uint8_t *buf, size_t n, TlsPeekEvent event, void *userdata) {
        End *x = userdata;

        ck_assert_ptr_eq(b, x->b);
        ck_assert_uint_le(n, TLS_PEEK_MAX);
        ck_assert_uint_ge(n, x->n_peeked);
        ck_assert_mem_eq(buf, x->peeked, x->n_peeked); /* earlier bytes stay */
        if (event == TLS_PEEK_DATA)
                ck_assert_uint_gt(n, x->n_peeked);
        else
                x->peek_end_usec = now_usec();
        x->peek_calls++;
        memcpy(x->peeked, buf, n);
        x->n_peeked = n;
        x->last_event = event;

        switch (stealth_classify(buf, n)) {
        case STEALTH_SSH:
                ck_assert_int_eq(tls_bridge_hand_over(b), 0);
                ck_assert_int_eq(tls_bridge_hand_over(b), -EBUSY);
                break;
        case STEALTH_OTHER:
                if (x->splice) {
                        ck_assert_int_eq(tls_bridge_hold(b), 0);
                        ck_assert_int_eq(sd_event_add_defer(e, &x->splice_defer, on_splice_defer, x), 0);
                } else
                        send_decoy(x, b);
                break;
        default:
                if (event != TLS_PEEK_DATA && x->decoy_on_silence)
                        send_decoy(x, b);
                break;
        }
}

static const TlsBridgeCallbacks callbacks = {
        .ready = on_ready,
        .peek = on_peek,
        .failed = on_failed,
        .closed = on_closed,
};

/* ---- Certificates, made once per run with the openssl CLI ---- */

static void sh(const char *fmt, ...) _printf_(1, 2);
static void sh(const char *fmt, ...) {
        char cmd[4096];
        va_list ap;
        int r;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        r = system(cmd);
        if (r != 0) {
                fprintf(stderr, "command failed (%d): %s\n", r, cmd);
                exit(EXIT_FAILURE);
        }
}

static void make_certificates(void) {
        const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";

        sh("cd %s && openssl req -x509 %s -keyout ca.key -out ca.pem -subj /CN=alknet-test-ca -days 2 "
           "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null",
           dir, ec);
        sh("cd %s && openssl req -x509 %s -keyout other-ca.key -out other-ca.pem -subj /CN=other-ca -days 2 "
           "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null",
           dir, ec);
        sh("cd %s && openssl req %s -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null && "
           "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' >san.ext && "
           "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
           "-extfile san.ext -out server.pem 2>/dev/null && cat server.pem ca.pem >fullchain.pem && "
           "cat server.pem server.key >combined.pem",
           dir, ec);
        /* A second key pair: the wrong key for server.pem, and a pin that matches nothing. */
        sh("cd %s && openssl req -x509 %s -keyout stranger.key -out stranger.pem -subj /CN=localhost -days 2 "
           "2>/dev/null && echo 'not a certificate' >garbage.pem",
           dir, ec);
        /* Pins the way curl's documentation computes them, to check ours against. */
        sh("cd %s && for c in server stranger; do printf 'sha256//%%s' \"$(openssl x509 -in $c.pem -pubkey -noout "
           "| openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)\" >$c.pin; done",
           dir);
}

static void read_file(const char *name, char *buf, size_t size) {
        FILE *f = fopen(path(name), "re");
        size_t n;

        ck_assert_ptr_nonnull(f);
        n = fread(buf, 1, size - 1, f);
        buf[n] = 0;
        fclose(f);
}

static SSL_CTX *server_ctx(void) {
        SSL_CTX *ctx = NULL;

        ck_assert_int_eq(tls_server_ctx_new(path("fullchain.pem"), path("server.key"), &ctx, NULL), 0);
        return ctx;
}

static SSL_CTX *client_ctx(bool verify, const char *ca, const char *pin) {
        SSL_CTX *ctx = NULL;
        char *error = NULL;
        int r = tls_client_ctx_new(verify, ca ? path(ca) : NULL, pin, &ctx, &error);

        ck_assert_msg(r == 0, "tls_client_ctx_new: %d %s", r, strna(error));
        return ctx;
}

/* ---- Contexts ---- */

START_TEST(test_failure_strings) {
        static const char *const names[] = { "verify-failed", "name-mismatch", "pin-mismatch", "alpn-missing",
                                             "handshake-timeout", "protocol", "io" };

        ck_assert_int_eq(ELEMENTSOF(names), _TLS_FAILURE_MAX);
        for (TlsFailure f = 0; f < _TLS_FAILURE_MAX; f++) {
                ck_assert_str_eq(tls_failure_to_string(f), names[f]);
                ck_assert_int_eq(tls_failure_from_string(names[f]), f);
        }
        ck_assert_ptr_null(tls_failure_to_string(_TLS_FAILURE_MAX));
        ck_assert_ptr_null(tls_failure_to_string(_TLS_FAILURE_INVALID));
        ck_assert_int_eq(tls_failure_from_string("tls-failed"), _TLS_FAILURE_INVALID);
        ck_assert_int_eq(tls_failure_from_string(NULL), _TLS_FAILURE_INVALID);
}
END_TEST

static const struct {
        const char *pin;
        int r;
        uint8_t first, last;
} pins[] = {
        { "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 0, 0x00, 0x00 },
        { "sha256////////////////////////////////////////////8=", 0, 0xff, 0xff },
        { "sha256//AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=", 0, 0x01, 0x20 },
        { "sha256////////////////////////////////////////////9=", -EINVAL }, /* stray bits */
        { "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", -EINVAL },  /* unpadded */
        { "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", -EINVAL }, /* 31 bytes */
        { "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", -EINVAL }, /* 33 bytes */
        { "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA A=", -EINVAL }, /* a blank */
        { "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA*A=", -EINVAL },
        { "sha1//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", -EINVAL },
        { "SHA256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", -EINVAL },
        { "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", -EINVAL },
        { "sha256//", -EINVAL },
        { "", -EINVAL },
        { NULL, -EINVAL },
};

START_TEST(test_pin_parse) {
        uint8_t d[32];

        memset(d, 0x5a, sizeof d);
        ck_assert_int_eq(tls_pin_parse(pins[_i].pin, d), pins[_i].r);
        if (pins[_i].r == 0) {
                ck_assert_uint_eq(d[0], pins[_i].first);
                ck_assert_uint_eq(d[31], pins[_i].last);
        } else
                for (size_t k = 0; k < sizeof d; k++)
                        ck_assert_uint_eq(d[k], 0x5a);
}
END_TEST

static const struct {
        const char *cert, *key;
        int r;
} server_ctxs[] = {
        { "fullchain.pem", "server.key", 0 },
        { "server.pem", "server.key", 0 },
        { "combined.pem", NULL, 0 },
        { "missing.pem", "server.key", -ENOENT },
        { "fullchain.pem", "missing.key", -ENOENT },
        { "garbage.pem", "server.key", -EBADMSG },
        { "fullchain.pem", "garbage.pem", -EBADMSG },
        { "server.pem", NULL, -EBADMSG }, /* no key in the certificate file */
        { "fullchain.pem", "stranger.key", -EKEYREJECTED },
        { "stranger.pem", "server.key", -EKEYREJECTED },
};

START_TEST(test_server_ctx) {
        SSL_CTX *ctx = NULL;
        char *error = NULL;
        int r;

        r = tls_server_ctx_new(path(server_ctxs[_i].cert), server_ctxs[_i].key ? path(server_ctxs[_i].key) : NULL,
                               &ctx, &error);
        ck_assert_msg(r == server_ctxs[_i].r, "%s %s: %d (%s)", server_ctxs[_i].cert, strna(server_ctxs[_i].key), r,
                      strna(error));
        if (r == 0) {
                ck_assert_ptr_nonnull(ctx);
                ck_assert_ptr_null(error);
        } else {
                ck_assert_ptr_null(ctx);
                ck_assert_ptr_nonnull(error);
                ck_assert_ptr_nonnull(strstr(error, dir)); /* names the file */
        }
        free(error);
        tls_ctx_unref(ctx);
        ck_assert_int_eq(ERR_peek_error(), 0); /* nothing left in OpenSSL's queue */
}
END_TEST

START_TEST(test_server_pin) {
        _cleanup_(tls_ctx_unrefp) SSL_CTX *ctx = server_ctx();
        char pin[TLS_PIN_SIZE], want[128];
        uint8_t d[32];

        read_file("server.pin", want, sizeof want);
        ck_assert_int_eq(tls_server_ctx_get_pin(ctx, pin), 0);
        ck_assert_str_eq(pin, want);
        ck_assert_int_eq(tls_pin_parse(pin, d), 0);
}
END_TEST

/* The system store is parsed once and shared; forgetting it gives the next context a
 * fresh one while contexts already made keep theirs. */
START_TEST(test_client_system_store) {
        SSL_CTX *a = NULL, *b = NULL, *c = NULL, *d = NULL;

        ck_assert_int_eq(tls_client_ctx_new(true, NULL, NULL, &a, NULL), 0);
        ck_assert_int_eq(tls_client_ctx_new(true, NULL, "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &b,
                                            NULL), 0);
        ck_assert_ptr_eq(SSL_CTX_get_cert_store(a), SSL_CTX_get_cert_store(b));
        ck_assert_int_gt(sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(a))), 0);

        ck_assert_int_eq(tls_client_ctx_new(true, path("ca.pem"), NULL, &c, NULL), 0); /* its own */
        ck_assert_ptr_ne(SSL_CTX_get_cert_store(c), SSL_CTX_get_cert_store(a));

        tls_forget_system_store();
        ck_assert_int_eq(tls_client_ctx_new(true, NULL, NULL, &d, NULL), 0);
        ck_assert_ptr_ne(SSL_CTX_get_cert_store(d), SSL_CTX_get_cert_store(a));
        /* a's store outlived the forgetting: still readable (valgrind/ASan would tell). */
        ck_assert_int_gt(sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(a))), 0);

        tls_ctx_unref(a);
        tls_ctx_unref(b);
        tls_ctx_unref(c);
        tls_ctx_unref(d);
        tls_forget_system_store();
}
END_TEST

START_TEST(test_client_ctx) {
        SSL_CTX *ctx = NULL;
        char *error = NULL;

        ck_assert_int_eq(tls_client_ctx_new(true, NULL, NULL, &ctx, NULL), 0); /* the system store */
        ctx = tls_ctx_unref(ctx);
        ck_assert_int_eq(tls_client_ctx_new(false, path("missing.pem"), NULL, &ctx, NULL), 0); /* not read */
        ctx = tls_ctx_unref(ctx);

        ck_assert_int_eq(tls_client_ctx_new(true, path("missing.pem"), NULL, &ctx, &error), -ENOENT);
        ck_assert_ptr_null(ctx);
        ck_assert_ptr_nonnull(strstr(error, "missing.pem"));
        free(error);
        ck_assert_int_eq(tls_client_ctx_new(true, path("garbage.pem"), NULL, &ctx, &error), -EBADMSG);
        free(error);
        ck_assert_int_eq(tls_client_ctx_new(false, NULL, "sha256//nope", &ctx, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "sha256//nope"));
        free(error);
        ck_assert_ptr_null(ctx);
        ck_assert_int_eq(ERR_peek_error(), 0);
}
END_TEST

START_TEST(test_bridge_new_invalid) {
        _cleanup_(tls_ctx_unrefp) SSL_CTX *sctx = server_ctx(), *cctx = client_ctx(true, "ca.pem", NULL),
                                          *nctx = client_ctx(false, NULL, NULL);
        TlsBridge *b = NULL;
        int c, s;

        tcp_pair(&c, &s);
        ck_assert_int_eq(tls_bridge_new(e, s, &(TlsBridgeParams) { .side = TLS_SIDE_SERVER, .ctx = cctx }, &callbacks,
                                        NULL, &b), -EINVAL);
        ck_assert_int_eq(tls_bridge_new(e, c, &(TlsBridgeParams) { .side = TLS_SIDE_CLIENT, .ctx = sctx,
                                                                   .server_name = "localhost" }, &callbacks, NULL, &b),
                         -EINVAL);
        /* A verifying client needs a name to check. */
        ck_assert_int_eq(tls_bridge_new(e, c, &(TlsBridgeParams) { .side = TLS_SIDE_CLIENT, .ctx = cctx }, &callbacks,
                                        NULL, &b), -EINVAL);
        ck_assert_int_eq(tls_bridge_new(e, c, &(TlsBridgeParams) { .side = TLS_SIDE_CLIENT, .ctx = cctx,
                                                                   .server_name = "" }, &callbacks, NULL, &b),
                         -EINVAL);
        ck_assert_int_eq(tls_bridge_new(e, c, &(TlsBridgeParams) { .side = TLS_SIDE_CLIENT, .ctx = nctx, .peek = true },
                                        &callbacks, NULL, &b), -EINVAL);
        ck_assert_int_eq(tls_bridge_new(e, s, &(TlsBridgeParams) { .side = _TLS_SIDE_MAX, .ctx = sctx }, &callbacks,
                                        NULL, &b), -EINVAL);
        ck_assert_ptr_null(b);
        /* The fds stayed ours. */
        ck_assert_int_ge(fcntl(c, F_GETFD), 0);
        ck_assert_int_ge(fcntl(s, F_GETFD), 0);

        /* Created and freed before the loop ran: no callback, fd closed. */
        ck_assert_int_eq(tls_bridge_new(e, c, &(TlsBridgeParams) { .side = TLS_SIDE_CLIENT, .ctx = nctx }, &callbacks,
                                        NULL, &b), 0);
        ck_assert_ptr_null(tls_bridge_get_info(b));
        ck_assert_int_eq(tls_bridge_hand_over(b), -EBUSY);
        ck_assert_int_eq(tls_bridge_send_and_close(b, "x", 1), -EBUSY);
        ck_assert_int_eq(tls_bridge_splice(b, 0, 0), -EBUSY);
        b = tls_bridge_free(b);
        ck_assert_int_eq(fcntl(c, F_GETFD), -1);
        for (int i = 0; i < 5; i++)
                ck_assert_int_ge(sd_event_run(e, 1000), 0);
        close(s);
}
END_TEST

/* ---- Client and server bridge against each other ---- */

typedef struct Pair {
        End client, server;
        SSL_CTX *cctx, *sctx;
} Pair;

static void pair_start(Pair *p, SSL_CTX *cctx, const char *name, SSL_CTX *sctx, const TlsBridgeParams *server_params) {
        TlsBridgeParams cp = { .side = TLS_SIDE_CLIENT, .ctx = cctx, .server_name = name };
        TlsBridgeParams sp = server_params ? *server_params : (TlsBridgeParams) { .side = TLS_SIDE_SERVER };
        int c, s;

        sp.ctx = sctx;
        end_init(&p->client);
        end_init(&p->server);
        tcp_pair(&c, &s);
        ck_assert_int_eq(tls_bridge_new(e, c, &cp, &callbacks, &p->client, &p->client.b), 0);
        ck_assert_int_eq(tls_bridge_new(e, s, &sp, &callbacks, &p->server, &p->server.b), 0);
}

static bool pair_ready_or_finished(void *userdata) {
        Pair *p = userdata;
        return end_ready_or_finished(&p->client) && end_ready_or_finished(&p->server);
}

static void pair_done(Pair *p) {
        end_done(&p->client);
        end_done(&p->server);
}

/* An application stream on a ready fd: sends pseudo-random bytes, hashes both ways. */
typedef struct Stream {
        int fd;
        sd_event_source *io;
        uint64_t to_send, sent, received;
        uint64_t rng;
        uint8_t chunk[64 * 1024];
        size_t chunk_len, chunk_pos;
        EVP_MD_CTX *send_md, *recv_md;
        bool send_done, eof;
        bool hold_reading;     /* don't read until the peer's sender was blocked once */
        struct Stream *peer;
        uint64_t blocked_in_flight; /* sent by us, not yet received, when we first blocked */
} Stream;

static void stream_update(Stream *s) {
        uint32_t events = (s->send_done ? 0 : EPOLLOUT) | (s->eof || s->hold_reading ? 0 : EPOLLIN);

        if (events == 0)
                ck_assert_int_ge(sd_event_source_set_enabled(s->io, SD_EVENT_OFF), 0);
        else {
                ck_assert_int_ge(sd_event_source_set_io_events(s->io, events), 0);
                ck_assert_int_ge(sd_event_source_set_enabled(s->io, SD_EVENT_ON), 0);
        }
}

static void stream_send(Stream *s) {
        while (!s->send_done) {
                ssize_t k;

                if (s->sent == s->to_send) {
                        ck_assert_int_eq(shutdown(s->fd, SHUT_WR), 0);
                        s->send_done = true;
                        break;
                }
                if (s->chunk_pos == s->chunk_len) {
                        s->chunk_len = (size_t) MIN((uint64_t) sizeof s->chunk, s->to_send - s->sent);
                        for (size_t i = 0; i < s->chunk_len; i += 8) {
                                s->rng ^= s->rng << 13;
                                s->rng ^= s->rng >> 7;
                                s->rng ^= s->rng << 17;
                                memcpy(s->chunk + i, &s->rng, MIN((size_t) 8, s->chunk_len - i));
                        }
                        s->chunk_pos = 0;
                        ck_assert_int_eq(EVP_DigestUpdate(s->send_md, s->chunk, s->chunk_len), 1);
                }
                k = send(s->fd, s->chunk + s->chunk_pos, s->chunk_len - s->chunk_pos, MSG_NOSIGNAL);
                if (k < 0) {
                        ck_assert_int_eq(errno, EAGAIN);
                        if (s->peer->hold_reading) {
                                s->blocked_in_flight = s->sent - s->peer->received;
                                s->peer->hold_reading = false;
                                stream_update(s->peer);
                        }
                        break;
                }
                s->chunk_pos += (size_t) k;
                s->sent += (uint64_t) k;
        }
}

static void stream_recv(Stream *s) {
        uint8_t buf[32 * 1024];

        while (!s->eof && !s->hold_reading) {
                ssize_t k = recv(s->fd, buf, sizeof buf, 0);

                if (k < 0) {
                        ck_assert_int_eq(errno, EAGAIN);
                        break;
                }
                if (k == 0)
                        s->eof = true;
                ck_assert_int_eq(EVP_DigestUpdate(s->recv_md, buf, (size_t) k), 1);
                s->received += (uint64_t) k;
        }
}

static int on_stream(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Stream *s = userdata;

        if (revents & EPOLLOUT)
                stream_send(s);
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                stream_recv(s);
        stream_update(s);
        return 0;
}

static void stream_start(Stream *s, int fd, uint64_t to_send, uint64_t seed, Stream *peer) {
        *s = (Stream) { .fd = fd, .to_send = to_send, .rng = seed, .peer = peer };
        s->send_md = EVP_MD_CTX_new();
        s->recv_md = EVP_MD_CTX_new();
        ck_assert_int_eq(EVP_DigestInit_ex(s->send_md, EVP_sha256(), NULL), 1);
        ck_assert_int_eq(EVP_DigestInit_ex(s->recv_md, EVP_sha256(), NULL), 1);
        ck_assert_int_ge(sd_event_add_io(e, &s->io, fd, EPOLLIN | EPOLLOUT, on_stream, s), 0);
}

static void stream_free(Stream *s) {
        s->io = sd_event_source_disable_unref(s->io);
        EVP_MD_CTX_free(s->send_md);
        EVP_MD_CTX_free(s->recv_md);
}

static void digest_final(EVP_MD_CTX *md, uint8_t out[32]) {
        ck_assert_int_eq(EVP_DigestFinal_ex(md, out, NULL), 1);
}

typedef struct Transfer {
        Stream *a, *b;
        Pair *p;
} Transfer;

static bool transfer_done(void *userdata) {
        Transfer *t = userdata;
        return t->a->eof && t->b->eof && t->a->send_done && t->b->send_done && t->p->client.finished &&
               t->p->server.finished;
}

/* _i: 0 both read at once; 1 the server reads only after the client's sender was blocked
 * (everything between is held by bounded buffers, nothing is lost); 2 as 0 over TLS 1.2. */
START_TEST(test_transfer) {
        uint64_t size = (valgrind ? 4 : 64) * 1024 * 1024;
        Pair p = { .cctx = client_ctx(true, "ca.pem", NULL), .sctx = server_ctx() };
        uint8_t d1[32], d2[32];
        Stream a, b;
        Transfer t = { &a, &b, &p };

        if (_i == 2)
                ck_assert_int_eq(SSL_CTX_set_max_proto_version(p.cctx, TLS1_2_VERSION), 1);
        pair_start(&p, p.cctx, "localhost", p.sctx, NULL);
        run_until(pair_ready_or_finished, &p);
        ck_assert(p.client.ready && p.server.ready);
        ck_assert_str_eq(p.server.version, _i == 2 ? "TLSv1.2" : "TLSv1.3");
        ck_assert_str_eq(p.server.alpn, TLS_ALPN_ALKNET);

        stream_start(&a, p.client.app_fd, size, 0x9e3779b97f4a7c15ull, &b);
        stream_start(&b, p.server.app_fd, size + 12345, 0x2545f4914f6cdd1dull, &a);
        if (_i == 1)
                b.hold_reading = true;
        stream_update(&b);
        run_until(transfer_done, &t);

        ck_assert_uint_eq(a.sent, size);
        ck_assert_uint_eq(b.received, size);
        ck_assert_uint_eq(b.sent, size + 12345);
        ck_assert_uint_eq(a.received, size + 12345);
        digest_final(a.send_md, d1);
        digest_final(b.recv_md, d2);
        ck_assert_mem_eq(d1, d2, 32);
        digest_final(b.send_md, d1);
        digest_final(a.recv_md, d2);
        ck_assert_mem_eq(d1, d2, 32);
        /* Both directions closed in order: close_notify both ways. */
        ck_assert(p.client.closed && p.server.closed);
        ck_assert_int_eq(p.client.error, 0);
        ck_assert_int_eq(p.server.error, 0);
        if (_i == 1) {
                ck_assert_uint_gt(a.blocked_in_flight, 0);
                /* Socket buffers and two bridges' worth of buffers, not the whole transfer. */
                ck_assert_uint_lt(a.blocked_in_flight, 16 * 1024 * 1024);
        }

        stream_free(&a);
        stream_free(&b);
        pair_done(&p);
        tls_ctx_unref(p.cctx);
        tls_ctx_unref(p.sctx);
}
END_TEST

START_TEST(test_info) {
        Pair p = { .cctx = client_ctx(true, "ca.pem", NULL), .sctx = server_ctx() };
        char pin[TLS_PIN_SIZE];

        pair_start(&p, p.cctx, "localhost", p.sctx, NULL);
        run_until(pair_ready_or_finished, &p);
        ck_assert(p.client.ready && p.server.ready);
        ck_assert_str_eq(p.client.alpn, TLS_ALPN_ALKNET);
        ck_assert_str_eq(p.server.alpn, TLS_ALPN_ALKNET);
        ck_assert_str_eq(p.client.version, "TLSv1.3");
        ck_assert_str_eq(p.server.version, "TLSv1.3");
        ck_assert_str_eq(p.client.server_name, "localhost");
        ck_assert_str_eq(p.server.server_name, "localhost"); /* the SNI */
        ck_assert_str_eq(p.client.subject, "CN=localhost");
        ck_assert_int_eq(tls_server_ctx_get_pin(p.sctx, pin), 0);
        ck_assert_str_eq(p.client.pin, pin);
        ck_assert_str_eq(p.server.subject, "");
        ck_assert_str_eq(p.server.pin, "");

        pair_done(&p);
        tls_ctx_unref(p.cctx);
        tls_ctx_unref(p.sctx);
}
END_TEST

/* Server certificate: CN=localhost, SAN DNS:localhost IP:127.0.0.1, issued by ca.pem. */
static const struct {
        bool verify;
        const char *ca;
        const char *pin;  /* a file name holding the pin, or a literal */
        const char *name; /* the server name the client checks */
        TlsFailure failure; /* _TLS_FAILURE_INVALID: success */
        const char *reason;
} checks[] = {
        { true, "ca.pem", NULL, "localhost", _TLS_FAILURE_INVALID },
        { true, "ca.pem", NULL, "127.0.0.1", _TLS_FAILURE_INVALID },        /* IP SAN, no SNI */
        { true, "ca.pem", NULL, "LOCALHOST", _TLS_FAILURE_INVALID },        /* names are case-blind */
        { true, "ca.pem", "server.pin", "localhost", _TLS_FAILURE_INVALID }, /* CA and pin */
        { true, "other-ca.pem", NULL, "localhost", TLS_FAILURE_VERIFY_FAILED, "certificate verify failed: " },
        { true, "other-ca.pem", NULL, "elsewhere", TLS_FAILURE_VERIFY_FAILED, "certificate verify failed: " },
        { true, NULL, NULL, "localhost", TLS_FAILURE_VERIFY_FAILED, "certificate verify failed: " }, /* system store */
        { true, "ca.pem", NULL, "elsewhere", TLS_FAILURE_NAME_MISMATCH, "hostname mismatch for TLSServerName=" },
        { true, "ca.pem", NULL, "sub.localhost", TLS_FAILURE_NAME_MISMATCH, "hostname mismatch for TLSServerName=" },
        { true, "ca.pem", NULL, "127.0.0.2", TLS_FAILURE_NAME_MISMATCH, "IP address mismatch for TLSServerName=" },
        { true, "ca.pem", NULL, "::1", TLS_FAILURE_NAME_MISMATCH, "IP address mismatch" },
        { true, "ca.pem", "stranger.pin", "localhost", TLS_FAILURE_PIN_MISMATCH, "does not match the pin" },
        { false, NULL, "server.pin", "elsewhere", _TLS_FAILURE_INVALID },  /* TLSVerify=no: only the pin */
        { false, "other-ca.pem", "server.pin", "localhost", _TLS_FAILURE_INVALID },
        { false, NULL, "stranger.pin", "localhost", TLS_FAILURE_PIN_MISMATCH, "does not match the pin" },
        { false, NULL, NULL, "elsewhere", _TLS_FAILURE_INVALID },           /* TLSVerify=no, no pin */
        { false, NULL, NULL, NULL, _TLS_FAILURE_INVALID },                  /* ... and no name at all */
};

START_TEST(test_checks) {
        char pin[128] = "";
        Pair p = { .sctx = server_ctx() };

        if (checks[_i].pin)
                read_file(checks[_i].pin, pin, sizeof pin);
        p.cctx = client_ctx(checks[_i].verify, checks[_i].ca, checks[_i].pin ? pin : NULL);
        pair_start(&p, p.cctx, checks[_i].name, p.sctx, NULL);
        run_until(pair_ready_or_finished, &p);

        if (checks[_i].failure == _TLS_FAILURE_INVALID) {
                ck_assert_msg(p.client.ready, "failed: %s %s", strna(tls_failure_to_string(p.client.failure)),
                              p.client.reason);
                ck_assert(p.server.ready);
                ck_assert_str_eq(p.client.alpn, TLS_ALPN_ALKNET);
        } else {
                ck_assert(p.client.failed);
                ck_assert_msg(p.client.failure == checks[_i].failure, "got %s: %s",
                              strna(tls_failure_to_string(p.client.failure)), p.client.reason);
                ck_assert_int_eq(p.client.error, -EPERM);
                ck_assert_msg(strstr(p.client.reason, checks[_i].reason), "reason: %s", p.client.reason);
                if (checks[_i].failure == TLS_FAILURE_PIN_MISMATCH) {
                        /* TLS 1.3: the server finished before the client judged; it sees the
                         * stream end without close_notify. */
                        ck_assert(p.server.ready);
                        run_until(end_finished, &p.server);
                        ck_assert_int_eq(p.server.error, -ECONNRESET);
                } else {
                        /* The client's alert ends the server's handshake. */
                        run_until(end_finished, &p.server);
                        ck_assert(p.server.failed);
                        ck_assert_int_eq(p.server.failure, TLS_FAILURE_PROTOCOL);
                        ck_assert_msg(strstr(p.server.reason, "alert"), "reason: %s", p.server.reason);
                }
        }
        pair_done(&p);
        tls_ctx_unref(p.cctx);
        tls_ctx_unref(p.sctx);
}
END_TEST

static void expect_read(int fd, const char *want) {
        size_t n = strlen(want), got = 0;
        char buf[256];
        uint64_t end = now_usec() + deadline_usec();

        ck_assert_uint_le(n, sizeof buf);
        while (got < n) {
                ssize_t k = recv(fd, buf + got, n - got, 0);

                if (k < 0) {
                        ck_assert_int_eq(errno, EAGAIN);
                        ck_assert(now_usec() < end);
                        ck_assert_int_ge(sd_event_run(e, 100 * USEC_PER_MSEC), 0);
                        continue;
                }
                ck_assert_int_gt(k, 0);
                got += (size_t) k;
        }
        ck_assert_mem_eq(buf, want, n);
}

static void expect_eof(int fd) {
        uint64_t end = now_usec() + deadline_usec();
        char c;

        for (;;) {
                ssize_t k = recv(fd, &c, 1, 0);

                if (k == 0)
                        return;
                ck_assert_int_lt(k, 0);
                ck_assert_int_eq(errno, EAGAIN);
                ck_assert(now_usec() < end);
                ck_assert_int_ge(sd_event_run(e, 100 * USEC_PER_MSEC), 0);
        }
}

static void expect_nothing(int fd) {
        char c;

        for (int i = 0; i < 20; i++)
                ck_assert_int_ge(sd_event_run(e, 5 * USEC_PER_MSEC), 0);
        ck_assert_int_eq(recv(fd, &c, 1, 0), -1);
        ck_assert_int_eq(errno, EAGAIN);
}

/* _i: 0 the client's application half-closes first, 1 the server's; 2 and 3 the same over
 * TLS 1.2. The other direction keeps working after the first EOF, then closes too. */
START_TEST(test_half_close) {
        Pair p = { .cctx = client_ctx(true, "ca.pem", NULL), .sctx = server_ctx() };
        End *first, *second;

        if (_i >= 2)
                ck_assert_int_eq(SSL_CTX_set_max_proto_version(p.cctx, TLS1_2_VERSION), 1);
        pair_start(&p, p.cctx, "localhost", p.sctx, NULL);
        run_until(pair_ready_or_finished, &p);
        ck_assert(p.client.ready && p.server.ready);
        ck_assert_str_eq(p.client.version, _i >= 2 ? "TLSv1.2" : "TLSv1.3");
        first = _i % 2 == 0 ? &p.client : &p.server;
        second = _i % 2 == 0 ? &p.server : &p.client;

        ck_assert_int_eq(send(first->app_fd, "ping", 4, 0), 4);
        ck_assert_int_eq(shutdown(first->app_fd, SHUT_WR), 0);
        expect_read(second->app_fd, "ping");
        expect_eof(second->app_fd);
        ck_assert(!first->finished && !second->finished);

        /* Backwards, after the EOF. */
        ck_assert_int_eq(send(second->app_fd, "pong", 4, 0), 4);
        expect_read(first->app_fd, "pong");
        ck_assert_int_eq(send(second->app_fd, "more", 4, 0), 4);
        expect_read(first->app_fd, "more");
        expect_nothing(first->app_fd);
        ck_assert(!first->finished && !second->finished);

        ck_assert_int_eq(shutdown(second->app_fd, SHUT_WR), 0);
        expect_eof(first->app_fd);
        run_until(end_finished, &p.client);
        run_until(end_finished, &p.server);
        ck_assert(p.client.closed && p.server.closed);
        ck_assert_int_eq(p.client.error, 0);
        ck_assert_int_eq(p.server.error, 0);

        pair_done(&p);
        tls_ctx_unref(p.cctx);
        tls_ctx_unref(p.sctx);
}
END_TEST

/* The application closes its fd at once (what freeing a libssh session does): orderly. */
START_TEST(test_app_close) {
        Pair p = { .cctx = client_ctx(true, "ca.pem", NULL), .sctx = server_ctx() };

        pair_start(&p, p.cctx, "localhost", p.sctx, NULL);
        run_until(pair_ready_or_finished, &p);
        ck_assert_int_eq(send(p.client.app_fd, "bye", 3, 0), 3);
        p.client.app_fd = safe_close(p.client.app_fd);
        expect_read(p.server.app_fd, "bye");
        expect_eof(p.server.app_fd);
        p.server.app_fd = safe_close(p.server.app_fd);
        run_until(end_finished, &p.client);
        run_until(end_finished, &p.server);
        ck_assert_int_eq(p.client.error, 0);
        ck_assert_int_eq(p.server.error, 0);

        pair_done(&p);
        tls_ctx_unref(p.cctx);
        tls_ctx_unref(p.sctx);
}
END_TEST

/* One end vanishes without close_notify: the other reports it, and what it had already
 * decrypted still reaches its application before the EOF. */
START_TEST(test_peer_vanishes) {
        Pair p = { .cctx = client_ctx(true, "ca.pem", NULL), .sctx = server_ctx() };

        pair_start(&p, p.cctx, "localhost", p.sctx, NULL);
        run_until(pair_ready_or_finished, &p);
        ck_assert_int_eq(send(p.server.app_fd, "last words", 10, 0), 10);
        expect_read(p.client.app_fd, "last");
        p.server.b = tls_bridge_free(p.server.b); /* no close_notify, no callback */
        expect_read(p.client.app_fd, " words");
        expect_eof(p.client.app_fd);
        run_until(end_finished, &p.client);
        ck_assert(p.client.closed);
        ck_assert_int_eq(p.client.error, -ECONNRESET);
        ck_assert(!p.server.finished);

        pair_done(&p);
        tls_ctx_unref(p.cctx);
        tls_ctx_unref(p.sctx);
}
END_TEST

/* _i: 0 a client whose server never answers; 1 a server whose client never sends. */
START_TEST(test_handshake_timeout) {
        _cleanup_(tls_ctx_unrefp) SSL_CTX *ctx = _i == 0 ? client_ctx(true, "ca.pem", NULL) : server_ctx();
        TlsBridgeParams params = { .side = _i == 0 ? TLS_SIDE_CLIENT : TLS_SIDE_SERVER, .ctx = ctx,
                                   .server_name = _i == 0 ? "localhost" : NULL, .handshake_timeout_usec = SHORT_USEC };
        uint64_t start = now_usec();
        End x;
        int c, s;

        end_init(&x);
        tcp_pair(&c, &s);
        ck_assert_int_eq(tls_bridge_new(e, _i == 0 ? c : s, &params, &callbacks, &x, &x.b), 0);
        run_until(end_finished, &x);
        ck_assert(x.failed);
        ck_assert_int_eq(x.failure, TLS_FAILURE_HANDSHAKE_TIMEOUT);
        ck_assert_int_eq(x.error, -ETIMEDOUT);
        ck_assert_str_eq(x.reason, "no TLS handshake within 300 ms");
        ck_assert_uint_ge(now_usec() - start, SHORT_USEC);
        /* Our socket is closed: the silent peer reads EOF (after a ClientHello, for 0). */
        ck_assert_int_eq(fcntl(_i == 0 ? s : c, F_SETFL, 0), 0);
        {
                char buf[4096];
                ssize_t k;

                while ((k = recv(_i == 0 ? s : c, buf, sizeof buf, 0)) > 0)
                        ck_assert_int_eq(_i, 0);
                ck_assert_int_eq(k, 0);
        }
        end_done(&x);
        close(_i == 0 ? s : c);
}
END_TEST

/* Not TLS at all: a plain HTTP request to the TLS port. */
START_TEST(test_not_tls) {
        _cleanup_(tls_ctx_unrefp) SSL_CTX *ctx = server_ctx();
        static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        End x;
        int c, s;

        end_init(&x);
        tcp_pair(&c, &s);
        ck_assert_int_eq(tls_bridge_new(e, s, &(TlsBridgeParams) { .side = TLS_SIDE_SERVER, .ctx = ctx, .peek = true },
                                        &callbacks, &x, &x.b), 0);
        ck_assert_int_eq(send(c, req, sizeof req - 1, 0), (ssize_t) sizeof req - 1);
        run_until(end_finished, &x);
        ck_assert(x.failed);
        ck_assert_int_eq(x.failure, TLS_FAILURE_PROTOCOL);
        ck_assert_int_eq(x.error, -EPROTO);
        ck_assert_msg(strstr(x.reason, "http request"), "reason: %s", x.reason);
        ck_assert_uint_eq(x.peek_calls, 0);
        end_done(&x);
        close(c);
}
END_TEST

/* The client side's server closes at once after accepting. */
START_TEST(test_reset_in_handshake) {
        _cleanup_(tls_ctx_unrefp) SSL_CTX *ctx = client_ctx(true, "ca.pem", NULL);
        End x;
        int c, s;

        end_init(&x);
        tcp_pair(&c, &s);
        close(s);
        ck_assert_int_eq(tls_bridge_new(e, c, &(TlsBridgeParams) { .side = TLS_SIDE_CLIENT, .ctx = ctx,
                                                                   .server_name = "localhost" }, &callbacks, &x, &x.b),
                         0);
        run_until(end_finished, &x);
        ck_assert(x.failed);
        ck_assert_int_eq(x.failure, TLS_FAILURE_IO);
        ck_assert(x.error == -ECONNRESET || x.error == -EPIPE);
        end_done(&x);
}
END_TEST

/* ---- Stealth: a plain OpenSSL client in a thread against a peeking server bridge ---- */

typedef struct RawClient {
        uint16_t port;
        const char *alpn; /* wire format; NULL: no ALPN extension */
        size_t alpn_len;
        const char *parts[3]; /* one SSL_write each */
        bool close_after_parts;
        /* results */
        bool handshake_ok;
        char selected[64];
        char received[8192];
        size_t n_received;
        bool got_close_notify;
        int done_pipe[2];
        sd_event_source *done_io;
        bool done;
        pthread_t thread;
} RawClient;

static void *raw_client_thread(void *userdata) {
        RawClient *c = userdata;
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(c->port),
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct timeval tv = { .tv_sec = 60 };
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        SSL *ssl = NULL;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), n = 0;

        if (!ctx || fd < 0 || connect(fd, (struct sockaddr *) &sin, sizeof sin) < 0)
                goto out;
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        if (c->alpn)
                SSL_CTX_set_alpn_protos(ctx, (const unsigned char *) c->alpn, (unsigned) c->alpn_len);
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, "localhost");
        if (SSL_connect(ssl) != 1)
                goto out;
        c->handshake_ok = true;
        {
                const unsigned char *a;
                unsigned al;

                SSL_get0_alpn_selected(ssl, &a, &al);
                if (al > 0)
                        memcpy(c->selected, a, MIN((size_t) al, sizeof c->selected - 1));
        }
        for (size_t i = 0; i < ELEMENTSOF(c->parts) && c->parts[i]; i++)
                if (SSL_write(ssl, c->parts[i], (int) strlen(c->parts[i])) <= 0)
                        goto out;
        if (c->close_after_parts)
                (void) SSL_shutdown(ssl);
        while (c->n_received < sizeof c->received &&
               (n = SSL_read(ssl, c->received + c->n_received, (int) (sizeof c->received - c->n_received))) > 0)
                c->n_received += (size_t) n;
        if (SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN) {
                c->got_close_notify = true;
                if (!c->close_after_parts)
                        (void) SSL_shutdown(ssl); /* answer politely */
        }
out:
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        if (fd >= 0)
                close(fd);
        OPENSSL_thread_stop();
        (void) write(c->done_pipe[1], "x", 1);
        return NULL;
}

static int on_raw_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        RawClient *c = userdata;

        c->done = true;
        return sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

static void raw_client_start(RawClient *c, uint16_t port) {
        c->port = port;
        ck_assert_int_eq(pipe2(c->done_pipe, O_CLOEXEC), 0);
        ck_assert_int_ge(sd_event_add_io(e, &c->done_io, c->done_pipe[0], EPOLLIN, on_raw_done, c), 0);
        ck_assert_int_eq(pthread_create(&c->thread, NULL, raw_client_thread, c), 0);
}

static void raw_client_join(RawClient *c) {
        run_until_flag(&c->done);
        ck_assert_int_eq(pthread_join(c->thread, NULL), 0);
        c->done_io = sd_event_source_disable_unref(c->done_io);
        close(c->done_pipe[0]);
        close(c->done_pipe[1]);
}

/* A listener whose connection becomes a peeking server bridge. */
typedef struct Acceptor {
        int fd;
        uint16_t port;
        sd_event_source *io;
        SSL_CTX *ctx;
        End *end;
        uint64_t peek_timeout_usec;
} Acceptor;

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Acceptor *a = userdata;
        TlsBridgeParams params = { .side = TLS_SIDE_SERVER, .ctx = a->ctx, .peek = true,
                                   .peek_timeout_usec = a->peek_timeout_usec };
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        ck_assert_int_ge(c, 0);
        ck_assert_ptr_null(a->end->b);
        ck_assert_int_eq(tls_bridge_new(e, c, &params, &callbacks, a->end, &a->end->b), 0);
        return sd_event_source_set_enabled(s, SD_EVENT_OFF); /* one connection per test */
}

static void acceptor_start(Acceptor *a, End *end, uint64_t peek_timeout_usec) {
        *a = (Acceptor) { .ctx = server_ctx(), .end = end, .peek_timeout_usec = peek_timeout_usec };
        a->fd = listener_new(&a->port);
        ck_assert_int_ge(sd_event_add_io(e, &a->io, a->fd, EPOLLIN, on_accept, a), 0);
}

static void acceptor_stop(Acceptor *a) {
        a->io = sd_event_source_disable_unref(a->io);
        close(a->fd);
        tls_ctx_unref(a->ctx);
}

#define ALPN_H2_HTTP11 "\x02h2\x08http/1.1"
#define ALPN_ALL "\x02h2\x08http/1.1\x0a" TLS_ALPN_ALKNET

START_TEST(test_stealth_decoy) {
        static const char get[] = "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: probe\r\n\r\n";
        Acceptor a;
        End x;
        RawClient c = { .parts = { get } };

        end_init(&x);
        acceptor_start(&a, &x, 0);
        raw_client_start(&c, a.port);
        raw_client_join(&c);
        run_until(end_finished, &x);

        ck_assert(c.handshake_ok);
        ck_assert_str_eq(c.selected, "");
        ck_assert_int_eq(x.decoy_len, 289);
        ck_assert_uint_eq(c.n_received, (size_t) x.decoy_len);
        ck_assert_mem_eq(c.received, x.decoy, c.n_received);
        ck_assert(c.got_close_notify);
        ck_assert(x.closed && !x.ready);
        ck_assert_int_eq(x.error, 0);
        /* Decided at the first byte that differs: "G". */
        ck_assert_uint_eq(x.peek_calls, 1);
        ck_assert_int_eq(x.last_event, TLS_PEEK_DATA);
        ck_assert_uint_ge(x.n_peeked, 1);
        ck_assert_mem_eq(x.peeked, get, x.n_peeked);

        end_done(&x);
        acceptor_stop(&a);
}
END_TEST

/* A browser-like ALPN list: http/1.1 is selected, then the request gets the decoy. */
START_TEST(test_stealth_http11) {
        Acceptor a;
        End x;
        RawClient c = { .alpn = ALPN_H2_HTTP11, .alpn_len = sizeof ALPN_H2_HTTP11 - 1,
                        .parts = { "GET /favicon.ico HTTP/1.1\r\nHost: localhost\r\n\r\n" } };

        end_init(&x);
        acceptor_start(&a, &x, 0);
        raw_client_start(&c, a.port);
        raw_client_join(&c);
        run_until(end_finished, &x);
        ck_assert_str_eq(c.selected, "http/1.1");
        ck_assert_uint_eq(c.n_received, (size_t) x.decoy_len);
        ck_assert_mem_eq(c.received, x.decoy, c.n_received);
        end_done(&x);
        acceptor_stop(&a);
}
END_TEST

/* Only h2: refused with no_application_protocol, as nginx without http2 does. */
START_TEST(test_stealth_h2_only) {
        Acceptor a;
        End x;
        RawClient c = { .alpn = "\x02h2", .alpn_len = 3, .parts = { "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" } };

        end_init(&x);
        acceptor_start(&a, &x, 0);
        raw_client_start(&c, a.port);
        raw_client_join(&c);
        run_until(end_finished, &x);
        ck_assert(!c.handshake_ok);
        ck_assert(x.failed);
        ck_assert_int_eq(x.failure, TLS_FAILURE_PROTOCOL);
        ck_assert_msg(strstr(x.reason, "no application protocol"), "reason: %s", x.reason);
        end_done(&x);
        acceptor_stop(&a);
}
END_TEST

/* alknet-ssh anywhere in the list wins and skips the peek; the banner passes unchanged. */
START_TEST(test_stealth_alpn_alknet) {
        Acceptor a;
        End x;
        RawClient c = { .alpn = ALPN_ALL, .alpn_len = sizeof ALPN_ALL - 1, .parts = { "GET" } };

        end_init(&x);
        acceptor_start(&a, &x, 0);
        raw_client_start(&c, a.port);
        run_until(end_ready_or_finished, &x);
        ck_assert(x.ready);
        ck_assert_str_eq(x.alpn, TLS_ALPN_ALKNET);
        expect_read(x.app_fd, "GET"); /* not SSH, but the ALPN said so: not ours to judge */
        ck_assert_int_eq(send(x.app_fd, "SSH-2.0-alknet\r\n", 16, 0), 16);
        x.app_fd = safe_close(x.app_fd);
        raw_client_join(&c);
        run_until(end_finished, &x);
        ck_assert_uint_eq(x.peek_calls, 0);
        ck_assert_str_eq(c.selected, TLS_ALPN_ALKNET);
        ck_assert_uint_eq(c.n_received, 16);
        ck_assert_mem_eq(c.received, "SSH-2.0-alknet\r\n", 16);
        ck_assert_int_eq(x.error, 0);
        end_done(&x);
        acceptor_stop(&a);
}
END_TEST

/* No ALPN and an SSH banner in pieces: classified SSH, every byte kept, in order. */
START_TEST(test_stealth_ssh_banner) {
        static const char *const splits[][3] = {
                { "SSH-2.0-x\r\n", "hello", NULL },
                { "SSH-", "2.0-x\r\n", "hello" },
                { "S", "SH-2.0", "-x\r\nhello" },
        };
        Acceptor a;
        End x;
        RawClient c = { .parts = { splits[_i][0], splits[_i][1], splits[_i][2] } };

        end_init(&x);
        acceptor_start(&a, &x, 0);
        raw_client_start(&c, a.port);
        run_until(end_ready_or_finished, &x);
        ck_assert(x.ready);
        ck_assert_str_eq(x.alpn, "");
        expect_read(x.app_fd, "SSH-2.0-x\r\nhello");
        ck_assert_uint_eq(x.peek_calls, _i == 0 ? 1 : _i == 1 ? 2 : 3);
        ck_assert_int_eq(x.last_event, TLS_PEEK_DATA);
        ck_assert_uint_eq(x.n_peeked, 8);
        ck_assert_int_eq(send(x.app_fd, "SSH-2.0-server\r\n", 16, 0), 16);
        x.app_fd = safe_close(x.app_fd);
        raw_client_join(&c);
        run_until(end_finished, &x);
        ck_assert_uint_eq(c.n_received, 16);
        ck_assert_mem_eq(c.received, "SSH-2.0-server\r\n", 16);
        ck_assert(c.got_close_notify);
        ck_assert_int_eq(x.error, 0);
        end_done(&x);
        acceptor_stop(&a);
}
END_TEST

/* _i: 0 a client that sends nothing, 1 an incomplete banner: at the deadline, closed
 * without a word; 2 the same with the decoy policy. */
START_TEST(test_stealth_silence) {
        Acceptor a;
        End x;
        RawClient c = { .parts = { _i == 1 ? "SSH-2." : NULL } };
        uint64_t start;

        end_init(&x);
        x.decoy_on_silence = _i == 2;
        acceptor_start(&a, &x, SHORT_USEC);
        start = now_usec();
        raw_client_start(&c, a.port);
        raw_client_join(&c);
        run_until(end_finished, &x);
        ck_assert(c.handshake_ok);
        ck_assert(c.got_close_notify);
        ck_assert_uint_ge(x.peek_end_usec - start, SHORT_USEC);
        ck_assert_int_eq(x.last_event, TLS_PEEK_TIMEOUT);
        ck_assert_uint_eq(x.n_peeked, _i == 1 ? 6 : 0);
        ck_assert_uint_eq(x.peek_calls, _i == 1 ? 2 : 1);
        if (_i == 2) {
                ck_assert_uint_eq(c.n_received, (size_t) x.decoy_len);
                ck_assert_mem_eq(c.received, x.decoy, c.n_received);
        } else
                ck_assert_uint_eq(c.n_received, 0);
        ck_assert(x.closed);
        ck_assert_int_eq(x.error, 0);
        end_done(&x);
        acceptor_stop(&a);
}
END_TEST

/* A client that closes (close_notify) before sending anything. */
START_TEST(test_stealth_eof) {
        Acceptor a;
        End x;
        RawClient c = { .close_after_parts = true };

        end_init(&x);
        acceptor_start(&a, &x, 0);
        raw_client_start(&c, a.port);
        raw_client_join(&c);
        run_until(end_finished, &x);
        ck_assert_int_eq(x.last_event, TLS_PEEK_EOF);
        ck_assert_uint_eq(x.n_peeked, 0);
        ck_assert(x.closed);
        end_done(&x);
        acceptor_stop(&a);
}
END_TEST

/* A backend connection for the splice test: reads the request, answers, closes. */
typedef struct Backend {
        int listen_fd, fd;
        uint16_t port;
        sd_event_source *listen_io, *io;
        char request[1024];
        size_t n_request;
        bool eof;
        bool silent; /* takes the request, never answers */
} Backend;

static const char backend_reply[] = "HTTP/1.1 200 OK\r\nServer: backend\r\nContent-Length: 5\r\n\r\nhello";

static int on_backend_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Backend *k = userdata;

        for (;;) {
                ssize_t n = recv(fd, k->request + k->n_request, sizeof k->request - 1 - k->n_request, 0);

                if (n < 0) {
                        ck_assert_int_eq(errno, EAGAIN);
                        break;
                }
                if (n == 0) {
                        k->eof = true;
                        return sd_event_source_set_enabled(s, SD_EVENT_OFF);
                }
                k->n_request += (size_t) n;
                k->request[k->n_request] = 0;
                if (strstr(k->request, "\r\n\r\n") && !k->silent) {
                        ck_assert_int_eq(send(fd, backend_reply, sizeof backend_reply - 1, 0),
                                         (ssize_t) sizeof backend_reply - 1);
                        ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
                }
        }
        return 0;
}

static int on_backend_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Backend *k = userdata;

        k->fd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        ck_assert_int_ge(k->fd, 0);
        ck_assert_int_ge(sd_event_add_io(e, &k->io, k->fd, EPOLLIN, on_backend_io, k), 0);
        return sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

START_TEST(test_stealth_splice) {
        static const char get[] = "GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n";
        Backend k = { .fd = -EBADF };
        Acceptor a;
        End x;
        RawClient c = { .parts = { "GET /ind", "ex.html HTTP/1.1\r\nHost: localhost\r\n\r\n" } };

        k.listen_fd = listener_new(&k.port);
        ck_assert_int_ge(sd_event_add_io(e, &k.listen_io, k.listen_fd, EPOLLIN, on_backend_accept, &k), 0);
        end_init(&x);
        x.splice = true;
        x.splice_port = k.port;
        acceptor_start(&a, &x, 0);
        raw_client_start(&c, a.port);
        raw_client_join(&c);
        run_until(end_finished, &x);

        ck_assert_str_eq(k.request, get); /* the peeked bytes first, then the rest */
        ck_assert_uint_eq(c.n_received, sizeof backend_reply - 1);
        ck_assert_mem_eq(c.received, backend_reply, c.n_received);
        ck_assert(c.got_close_notify);
        ck_assert(x.closed && !x.ready);
        ck_assert_int_eq(x.error, 0);
        ck_assert_uint_eq(x.peek_calls, 1);

        end_done(&x);
        acceptor_stop(&a);
        k.io = sd_event_source_disable_unref(k.io);
        k.listen_io = sd_event_source_disable_unref(k.listen_io);
        safe_close(k.fd);
        close(k.listen_fd);
}
END_TEST

/* A splice where nothing moves either way (a backend that never answers, a client that
 * never gives up) ends at its idle timeout: it holds a session slot of the server's. */
START_TEST(test_stealth_splice_idle) {
        static const char get[] = "GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n";
        Backend k = { .fd = -EBADF, .silent = true };
        Acceptor a;
        End x;
        RawClient c = { .parts = { get } };
        uint64_t t0;

        k.listen_fd = listener_new(&k.port);
        ck_assert_int_ge(sd_event_add_io(e, &k.listen_io, k.listen_fd, EPOLLIN, on_backend_accept, &k), 0);
        end_init(&x);
        x.splice = true;
        x.splice_port = k.port;
        x.splice_idle_usec = 300 * USEC_PER_MSEC;
        acceptor_start(&a, &x, 0);
        t0 = now_usec();
        raw_client_start(&c, a.port);
        run_until(end_finished, &x);
        ck_assert(x.closed && !x.ready);
        ck_assert_int_eq(x.error, -ETIMEDOUT);
        ck_assert_uint_ge(now_usec() - t0, 300 * USEC_PER_MSEC); /* not before it */
        ck_assert_str_eq(k.request, get);                        /* the request did go through */
        raw_client_join(&c);
        ck_assert_uint_eq(c.n_received, 0);

        end_done(&x);
        acceptor_stop(&a);
        k.io = sd_event_source_disable_unref(k.io);
        k.listen_io = sd_event_source_disable_unref(k.listen_io);
        safe_close(k.fd);
        close(k.listen_fd);
}
END_TEST

/* ---- Interop with stock tools ---- */

typedef struct Proc {
        pid_t pid;
        int in_fd;
        int out_fd;
        sd_event_source *out_io;
        char out[65536];
        size_t n_out;
        bool eof;
} Proc;

static Proc *procs[4];

static int on_proc_out(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Proc *p = userdata;
        ssize_t n = read(fd, p->out + p->n_out, sizeof p->out - 1 - p->n_out);

        if (n <= 0) {
                if (n < 0 && errno == EAGAIN)
                        return 0;
                p->eof = true;
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        }
        p->n_out += (size_t) n;
        p->out[p->n_out] = 0;
        return 0;
}

static void proc_start(Proc *p, char *const argv[]) {
        posix_spawn_file_actions_t fa;
        int in[2], out[2];

        *p = (Proc) { .pid = -1 };
        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        ck_assert_int_eq(posix_spawn_file_actions_init(&fa), 0);
        ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, in[0], 0), 0);
        ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, out[1], 1), 0);
        ck_assert_int_eq(posix_spawn_file_actions_addopen(&fa, 2, path("tool-stderr.log"), O_WRONLY | O_CREAT | O_APPEND,
                                                          0600), 0);
        ck_assert_int_eq(posix_spawnp(&p->pid, argv[0], &fa, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        close(in[0]);
        close(out[1]);
        p->in_fd = in[1];
        p->out_fd = out[0];
        ck_assert_int_ge(fcntl(p->out_fd, F_SETFL, O_NONBLOCK), 0);
        ck_assert_int_ge(sd_event_add_io(e, &p->out_io, p->out_fd, EPOLLIN, on_proc_out, p), 0);
        for (size_t i = 0; i < ELEMENTSOF(procs); i++)
                if (!procs[i]) {
                        procs[i] = p;
                        break;
                }
}

/* Stops it by PID; returns its exit status (or -signal). */
static int proc_stop(Proc *p, bool kill_it) {
        int status = 0;

        if (p->pid <= 0)
                return 0;
        if (kill_it)
                (void) kill(p->pid, SIGTERM);
        ck_assert_int_eq(waitpid(p->pid, &status, 0), p->pid);
        p->pid = -1;
        p->out_io = sd_event_source_disable_unref(p->out_io);
        safe_close(p->in_fd);
        safe_close(p->out_fd);
        for (size_t i = 0; i < ELEMENTSOF(procs); i++)
                if (procs[i] == p)
                        procs[i] = NULL;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

typedef struct Needle {
        Proc *p;
        const char *s;
} Needle;

static bool proc_has(void *userdata) {
        Needle *n = userdata;
        return strstr(n->p->out, n->s) != NULL;
}

static bool proc_eof(void *userdata) {
        return ((Proc *) userdata)->eof;
}

static void proc_wait_for(Proc *p, const char *s) {
        run_until(proc_has, &(Needle) { p, s });
}

/* openssl s_server on an ephemeral port; returns the port it printed. */
static uint16_t s_server_start(Proc *p, const char *alpn) {
        char *argv[] = { (char *) "openssl", (char *) "s_server", (char *) "-accept", (char *) "127.0.0.1:0",
                         (char *) "-cert", path("server.pem"), (char *) "-key", path("server.key"),
                         (char *) "-naccept", (char *) "1", alpn ? (char *) "-alpn" : NULL, (char *) alpn, NULL };
        unsigned port = 0;
        char *a;

        proc_start(p, argv);
        proc_wait_for(p, "ACCEPT 127.0.0.1:");
        proc_wait_for(p, "\n");
        a = strstr(p->out, "ACCEPT 127.0.0.1:");
        ck_assert_int_eq(sscanf(a, "ACCEPT 127.0.0.1:%u", &port), 1);
        ck_assert(port > 0 && port < 65536);
        return (uint16_t) port;
}

static void client_to(End *x, SSL_CTX *ctx, uint16_t port) {
        end_init(x);
        ck_assert_int_eq(tls_bridge_new(e, connect_to(port), &(TlsBridgeParams) { .side = TLS_SIDE_CLIENT, .ctx = ctx,
                                                                                 .server_name = "localhost" },
                                        &callbacks, x, &x->b), 0);
}

/* s_server without -alpn selects nothing: the client refuses. */
START_TEST(test_s_server_no_alpn) {
        _cleanup_(tls_ctx_unrefp) SSL_CTX *ctx = client_ctx(true, "ca.pem", NULL);
        Proc p;
        End x;

        client_to(&x, ctx, s_server_start(&p, NULL));
        run_until(end_finished, &x);
        ck_assert(x.failed);
        ck_assert_int_eq(x.failure, TLS_FAILURE_ALPN_MISSING);
        ck_assert_str_eq(x.reason, "the server did not select ALPN alknet-ssh");
        end_done(&x);
        proc_stop(&p, true);
}
END_TEST

/* s_server with another protocol only. */
START_TEST(test_s_server_other_alpn) {
        _cleanup_(tls_ctx_unrefp) SSL_CTX *ctx = client_ctx(true, "ca.pem", NULL);
        Proc p;
        End x;

        client_to(&x, ctx, s_server_start(&p, "h2,http/1.1"));
        run_until(end_finished, &x);
        ck_assert(x.failed);
        ck_assert_int_eq(x.failure, TLS_FAILURE_ALPN_MISSING);
        end_done(&x);
        proc_stop(&p, true);
}
END_TEST

/* s_server with -alpn alknet-ssh: ready, and bytes arrive in s_server's output. */
START_TEST(test_s_server_alpn) {
        _cleanup_(tls_ctx_unrefp) SSL_CTX *ctx = client_ctx(true, "ca.pem", NULL);
        Proc p;
        End x;

        client_to(&x, ctx, s_server_start(&p, TLS_ALPN_ALKNET));
        run_until(end_ready_or_finished, &x);
        ck_assert(x.ready);
        ck_assert_str_eq(x.alpn, TLS_ALPN_ALKNET);
        ck_assert_int_eq(send(x.app_fd, "hello from alknet\n", 18, 0), 18);
        proc_wait_for(&p, "hello from alknet\n");
        ck_assert_int_eq(write(p.in_fd, "hello from s_server\n", 20), 20);
        expect_read(x.app_fd, "hello from s_server\n");
        end_done(&x);
        proc_stop(&p, true);
}
END_TEST

/* s_client against the peeking server: _i 0 no ALPN and an SSH banner (stealth lets it
 * through), 1 with -alpn alknet-ssh (no peek), 2 as 0 over TLS 1.2. */
START_TEST(test_s_client) {
        char port[16];
        Acceptor a;
        Proc p;
        End x;

        end_init(&x);
        acceptor_start(&a, &x, 0);
        snprintf(port, sizeof port, "127.0.0.1:%u", a.port);
        {
                char *argv[] = { (char *) "openssl", (char *) "s_client", (char *) "-connect", port, (char *) "-quiet",
                                 (char *) "-servername", (char *) "localhost", (char *) "-CAfile", path("ca.pem"),
                                 (char *) "-verify_return_error", NULL, NULL, NULL };

                if (_i == 1) {
                        argv[10] = (char *) "-alpn";
                        argv[11] = (char *) TLS_ALPN_ALKNET;
                } else if (_i == 2)
                        argv[10] = (char *) "-tls1_2";
                proc_start(&p, argv);
        }
        ck_assert_int_eq(write(p.in_fd, "SSH-2.0-x\r\n", 11), 11);
        run_until(end_ready_or_finished, &x);
        ck_assert(x.ready);
        ck_assert_str_eq(x.alpn, _i == 1 ? TLS_ALPN_ALKNET : "");
        ck_assert_str_eq(x.version, _i == 2 ? "TLSv1.2" : "TLSv1.3");
        ck_assert_str_eq(x.server_name, "localhost");
        expect_read(x.app_fd, "SSH-2.0-x\r\n");
        ck_assert_uint_eq(x.peek_calls, _i == 1 ? 0 : 1);
        ck_assert_int_eq(send(x.app_fd, "SSH-2.0-alknet\r\n", 16, 0), 16);
        proc_wait_for(&p, "SSH-2.0-alknet\r\n");
        proc_stop(&p, true);
        end_done(&x);
        acceptor_stop(&a);
}
END_TEST

/* curl -k gets the decoy, byte for byte as curl -i shows it. */
START_TEST(test_curl_decoy) {
        char url[64];
        Acceptor a;
        Proc p;
        End x;

        end_init(&x);
        acceptor_start(&a, &x, 0);
        snprintf(url, sizeof url, "https://127.0.0.1:%u/", a.port);
        {
                char *argv[] = { (char *) "curl", (char *) "-sk", (char *) "-i", (char *) "--max-time", (char *) "30",
                                 url, NULL };
                proc_start(&p, argv);
        }
        run_until(proc_eof, &p);
        ck_assert_int_eq(proc_stop(&p, false), 0);
        run_until(end_finished, &x);
        ck_assert_int_eq(x.decoy_len, 289);
        ck_assert_uint_eq(p.n_out, (size_t) x.decoy_len);
        ck_assert_mem_eq(p.out, x.decoy, p.n_out);
        ck_assert_mem_eq(x.peeked, "GET ", MIN(x.n_peeked, (size_t) 4));
        ck_assert(x.closed);
        end_done(&x);
        acceptor_stop(&a);
}
END_TEST

/* ---- Setup ---- */

static void setup(void) {
        ck_assert_int_ge(sd_event_new(&e), 0);
}

static void teardown(void) {
        for (size_t i = 0; i < ELEMENTSOF(procs); i++)
                if (procs[i] && procs[i]->pid > 0) {
                        (void) kill(procs[i]->pid, SIGKILL);
                        (void) waitpid(procs[i]->pid, NULL, 0);
                }
        e = sd_event_unref(e);
}

static Suite *tls_suite(void) {
        Suite *s = suite_create("tls");
        TCase *tc;

        tc = tcase_create("contexts");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_failure_strings);
        tcase_add_loop_test(tc, test_pin_parse, 0, ELEMENTSOF(pins));
        tcase_add_loop_test(tc, test_server_ctx, 0, ELEMENTSOF(server_ctxs));
        tcase_add_test(tc, test_server_pin);
        tcase_add_test(tc, test_client_ctx);
        tcase_add_test(tc, test_client_system_store);
        tcase_add_test(tc, test_bridge_new_invalid);
        suite_add_tcase(s, tc);

        tc = tcase_create("bridge");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, valgrind ? 600 : 120);
        tcase_add_loop_test(tc, test_transfer, 0, 3);
        tcase_add_test(tc, test_info);
        tcase_add_loop_test(tc, test_checks, 0, ELEMENTSOF(checks));
        tcase_add_loop_test(tc, test_half_close, 0, 4);
        tcase_add_test(tc, test_app_close);
        tcase_add_test(tc, test_peer_vanishes);
        tcase_add_loop_test(tc, test_handshake_timeout, 0, 2);
        tcase_add_test(tc, test_not_tls);
        tcase_add_test(tc, test_reset_in_handshake);
        suite_add_tcase(s, tc);

        tc = tcase_create("stealth");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, valgrind ? 600 : 60);
        tcase_add_test(tc, test_stealth_decoy);
        tcase_add_test(tc, test_stealth_http11);
        tcase_add_test(tc, test_stealth_h2_only);
        tcase_add_test(tc, test_stealth_alpn_alknet);
        tcase_add_loop_test(tc, test_stealth_ssh_banner, 0, 3);
        tcase_add_loop_test(tc, test_stealth_silence, 0, 3);
        tcase_add_test(tc, test_stealth_eof);
        tcase_add_test(tc, test_stealth_splice);
        tcase_add_test(tc, test_stealth_splice_idle);
        suite_add_tcase(s, tc);

        tc = tcase_create("interop");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, valgrind ? 600 : 60);
        tcase_add_test(tc, test_s_server_no_alpn);
        tcase_add_test(tc, test_s_server_other_alpn);
        tcase_add_test(tc, test_s_server_alpn);
        tcase_add_loop_test(tc, test_s_client, 0, 3);
        tcase_add_test(tc, test_curl_decoy);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        SRunner *sr;
        int failed;

        /* OpenSSL's socket BIO writes with write(): a peer gone must not kill us. */
        signal(SIGPIPE, SIG_IGN);
        valgrind = getenv("ALKNET_VALGRIND") != NULL;
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return EXIT_FAILURE;
        }
        make_certificates();

        sr = srunner_create(tls_suite());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        sh("rm -rf %s", dir);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
