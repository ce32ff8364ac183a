/* TLS contexts and the TLS <-> socketpair bridge. OpenSSL works on the non-blocking socket
 * itself (its socket BIO). Every SSL_* call that returns WANT_READ/WANT_WRITE records the
 * readiness it waits for, and one step function runs the state machine as far as it can
 * after each wakeup, so no progress ever waits for an fd event that already came (bytes
 * OpenSSL holds decrypted never show up as fd readiness). */
#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include "tls.h"

/* Rounds of the pump per wakeup: a peer that is always ready (the backend of a splice
 * on loopback) must not keep the loop to itself. */
#define PUMP_ROUNDS_MAX 64

static const char *const tls_failure_table[_TLS_FAILURE_MAX] = {
        [TLS_FAILURE_VERIFY_FAILED] = "verify-failed",
        [TLS_FAILURE_NAME_MISMATCH] = "name-mismatch",
        [TLS_FAILURE_PIN_MISMATCH] = "pin-mismatch",
        [TLS_FAILURE_ALPN_MISSING] = "alpn-missing",
        [TLS_FAILURE_HANDSHAKE_TIMEOUT] = "handshake-timeout",
        [TLS_FAILURE_PROTOCOL] = "protocol",
        [TLS_FAILURE_IO] = "io",
};

const char *tls_failure_to_string(TlsFailure f) {
        if (f < 0 || f >= _TLS_FAILURE_MAX)
                return NULL;
        return tls_failure_table[f];
}

TlsFailure tls_failure_from_string(const char *s) {
        if (!s)
                return _TLS_FAILURE_INVALID;
        for (TlsFailure f = 0; f < _TLS_FAILURE_MAX; f++)
                if (streq(s, tls_failure_table[f]))
                        return f;
        return _TLS_FAILURE_INVALID;
}

/* ---- Errors ---- */

/* Empties OpenSSL's error queue into -errno (a system error if there is one, a key that
 * does not match its certificate, else fallback) and, with ret_error, "what: reason". */
_printf_(3, 4) static int openssl_fail(int fallback, char **ret_error, const char *fmt, ...) {
        char what[512], reason[256] = "";
        unsigned long e;
        int r = fallback;
        va_list ap;

        while ((e = ERR_get_error()) != 0) {
                if (ERR_SYSTEM_ERROR(e))
                        r = -(int) ERR_GET_REASON(e);
                else if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
                        r = -EKEYREJECTED;
                if (!reason[0]) {
                        const char *s = ERR_reason_error_string(e);

                        if (s)
                                snprintf(reason, sizeof reason, "%s", s);
                        else if (ERR_SYSTEM_ERROR(e))
                                snprintf(reason, sizeof reason, "%s", strerror((int) ERR_GET_REASON(e)));
                }
        }
        if (ret_error) {
                va_start(ap, fmt);
                vsnprintf(what, sizeof what, fmt, ap);
                va_end(ap);
                if (asprintf(ret_error, "%s: %s", what, reason[0] ? reason : strerror(-r)) < 0)
                        *ret_error = NULL;
        }
        return r;
}

_printf_(3, 4) static int plain_fail(int r, char **ret_error, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return r;
}

/* ---- Pins ---- */

static void pin_format(const uint8_t digest[32], char ret[TLS_PIN_SIZE]) {
        memcpy(ret, "sha256//", 8);
        EVP_EncodeBlock((unsigned char *) ret + 8, digest, 32); /* 44 characters and a NUL */
}

int tls_pin_parse(const char *pin, uint8_t ret[32]) {
        const char *b = pin ? startswith(pin, "sha256//") : NULL;
        char again[TLS_PIN_SIZE];
        uint8_t buf[33];

        if (!b || strlen(b) != 44)
                return -EINVAL;
        if (EVP_DecodeBlock(buf, (const unsigned char *) b, 44) != 33)
                return -EINVAL;
        /* Only the one canonical spelling: exactly one '=' and no stray bits, which the
         * decoder would quietly accept (it also skips blanks). */
        pin_format(buf, again);
        if (!streq(again, pin))
                return -EINVAL;
        memcpy(ret, buf, 32);
        return 0;
}

static int cert_pin_digest(X509 *cert, uint8_t ret[32]) {
        unsigned char *der = NULL;
        int len, r = 0;

        /* The SubjectPublicKeyInfo, as curl's --pinnedpubkey hashes it. */
        len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
        if (len <= 0)
                return -ENOMEM;
        if (EVP_Digest(der, (size_t) len, ret, NULL, EVP_sha256(), NULL) != 1)
                r = -ENOMEM;
        OPENSSL_free(der);
        ERR_clear_error();
        return r;
}

/* ---- Contexts ---- */

SSL_CTX *tls_ctx_unref(SSL_CTX *ctx) {
        SSL_CTX_free(ctx);
        return NULL;
}

/* A client context carries what tls_client_ctx_new() was told, for the bridge's checks. */
typedef struct ClientPolicy {
        bool verify;
        bool has_pin;
        uint8_t pin[32];
} ClientPolicy;

static int policy_index = -1;
static pthread_once_t policy_once = PTHREAD_ONCE_INIT;

static void policy_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
        free(ptr);
}

static void policy_index_init(void) {
        policy_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, policy_free);
}

static const ClientPolicy *ctx_policy(SSL_CTX *ctx) {
        (void) pthread_once(&policy_once, policy_index_init);
        return policy_index < 0 ? NULL : SSL_CTX_get_ex_data(ctx, policy_index);
}

/* An encrypted key must fail to load, not ask for a passphrase on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata) {
        return 0;
}

static void ctx_setup(SSL_CTX *ctx) {
        (void) SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        /* Renegotiation (TLS 1.2) would let a peer restart handshakes inside the stream. */
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
        /* Partial writes and a moving buffer: the bridge's buffer is compacted between
         * retries. Released buffers: idle and half-open connections cost less memory. */
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                      SSL_MODE_RELEASE_BUFFERS);
        SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg) {
        static const char *const preference[] = { TLS_ALPN_ALKNET, "http/1.1" };

        for (size_t p = 0; p < ELEMENTSOF(preference); p++) {
                size_t want = strlen(preference[p]);

                for (unsigned i = 0; i < inlen;) {
                        unsigned l = in[i];

                        /* OpenSSL checked the list already; stay safe regardless. */
                        if (l == 0 || l > inlen - i - 1)
                                return SSL_TLSEXT_ERR_ALERT_FATAL;
                        if (l == want && memcmp(in + i + 1, preference[p], l) == 0) {
                                *out = in + i + 1;
                                *outlen = (unsigned char) l;
                                return SSL_TLSEXT_ERR_OK;
                        }
                        i += 1 + l;
                }
        }
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol, as nginx */
}

int tls_server_ctx_new(const char *cert_file, const char *key_file, SSL_CTX **ret, char **ret_error) {
        _cleanup_(tls_ctx_unrefp) SSL_CTX *ctx = NULL;

        assert(cert_file);
        assert(ret);

        ERR_clear_error();
        ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx)
                return openssl_fail(-ENOMEM, ret_error, "Failed to create a TLS server context");
        ctx_setup(ctx);
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
                return openssl_fail(-EBADMSG, ret_error, "Failed to load the certificate chain from %s", cert_file);
        if (SSL_CTX_use_PrivateKey_file(ctx, key_file ?: cert_file, SSL_FILETYPE_PEM) != 1)
                return openssl_fail(-EBADMSG, ret_error, "Failed to load the private key from %s", key_file ?: cert_file);
        if (SSL_CTX_check_private_key(ctx) != 1)
                return openssl_fail(-EKEYREJECTED, ret_error, "The private key in %s does not match the certificate in %s",
                                    key_file ?: cert_file, cert_file);
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);

        *ret = TAKE_PTR(ctx);
        return 0;
}

int tls_server_ctx_get_pin(SSL_CTX *ctx, char ret[TLS_PIN_SIZE]) {
        X509 *cert = SSL_CTX_get0_certificate(ctx);
        uint8_t digest[32];
        int r;

        if (!cert)
                return -ENOENT;
        r = cert_pin_digest(cert, digest);
        if (r < 0)
                return r;
        pin_format(digest, ret);
        return 0;
}

DEFINE_VOID_CLEANUP_FUNC(X509_STORE, X509_STORE_free);

static X509_STORE *system_store = NULL;

void tls_forget_system_store(void) {
        X509_STORE_free(system_store);
        system_store = NULL;
}

/* Shares the system store with ctx, loading it first if needed. */
static int use_system_store(SSL_CTX *ctx) {
        if (!system_store) {
                _cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();

                if (!store || X509_STORE_set_default_paths(store) != 1)
                        return -EBADMSG;
                system_store = TAKE_PTR(store);
        }
        /* set1: ctx takes a reference of its own, so forgetting the store later leaves
         * the contexts of connections in progress intact. */
        SSL_CTX_set1_cert_store(ctx, system_store);
        return 0;
}

int tls_client_ctx_new(bool verify, const char *ca_file, const char *pin, SSL_CTX **ret, char **ret_error) {
        static const unsigned char alpn[] = "\x0a" TLS_ALPN_ALKNET;
        _cleanup_(tls_ctx_unrefp) SSL_CTX *ctx = NULL;
        _cleanup_(freep) ClientPolicy *policy = NULL;

        assert(ret);

        policy = calloc(1, sizeof *policy);
        if (!policy)
                return -ENOMEM;
        policy->verify = verify;
        if (pin) {
                if (tls_pin_parse(pin, policy->pin) < 0)
                        return plain_fail(-EINVAL, ret_error, "Malformed TLS pin, expected sha256//<base64>: %s", pin);
                policy->has_pin = true;
        }

        ERR_clear_error();
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx)
                return openssl_fail(-ENOMEM, ret_error, "Failed to create a TLS client context");
        ctx_setup(ctx);
        if (verify) {
                if (ca_file) {
                        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
                                return openssl_fail(-EBADMSG, ret_error, "Failed to load CA certificates from %s",
                                                    ca_file);
                } else if (use_system_store(ctx) < 0)
                        return openssl_fail(-EBADMSG, ret_error, "Failed to load the system's CA certificates");
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        } else
                SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1) != 0) /* 0 is success here */
                return openssl_fail(-ENOMEM, ret_error, "Failed to set ALPN");
        /* Every connection is a fresh handshake: nothing to resume. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

        (void) ctx_policy(ctx); /* allocates the index once */
        if (policy_index < 0)
                return openssl_fail(-ENOMEM, ret_error, "Failed to allocate TLS context data");
        if (SSL_CTX_set_ex_data(ctx, policy_index, policy) != 1)
                return openssl_fail(-ENOMEM, ret_error, "Failed to attach TLS context data");
        TAKE_PTR(policy);

        *ret = TAKE_PTR(ctx);
        return 0;
}

/* ---- Bridge ---- */

typedef enum BridgeState {
        STATE_HANDSHAKE,
        STATE_PEEK,       /* server: reading the first bytes for the caller */
        STATE_HELD,       /* server: the caller decides later */
        STATE_PUMP,       /* bytes move between SSL and the local fd */
        STATE_SEND_CLOSE, /* writing the caller's bytes, then close_notify */
        STATE_LINGER,     /* close_notify and FIN sent: discarding until the client's EOF */
        STATE_DONE,
} BridgeState;

struct TlsBridge {
        sd_event *event;
        TlsSide side;
        BridgeState state;
        SSL *ssl;
        char *server_name;
        bool peek_mode;
        uint64_t handshake_timeout_usec, peek_timeout_usec;
        uint64_t idle_timeout_usec; /* pump: no byte either way this long ends it; 0: never */
        TlsBridgeCallbacks cb;
        void *userdata;

        int net_fd;
        int local_fd;
        int ready_fd; /* the caller's end, until ready() delivers it */
        sd_event_source *net_io, *local_io, *timer, *defer;

        unsigned busy; /* inside our own event handler: free later */
        bool dead;

        /* What the last SSL call that reads (handshake, SSL_read) and the last one that
         * writes (SSL_write, SSL_shutdown) wait for: EPOLLIN or EPOLLOUT. */
        uint32_t want_rd, want_wr;

        uint8_t peek[TLS_PEEK_MAX];
        size_t n_peek;

        uint8_t *in; /* network → local */
        size_t in_start, in_end;
        uint8_t *out; /* local → network (or send_and_close's bytes) */
        size_t out_start, out_end, out_size;

        bool net_rd_eof;    /* close_notify (or the end of a broken connection) read */
        bool net_wr_shut;   /* close_notify sent (or nothing can be sent any more) */
        bool net_dead;      /* SSL unusable: no more SSL calls */
        bool local_rd_eof;  /* the local side said EOF */
        bool local_wr_shut; /* shutdown(SHUT_WR) done on the local side (or it is gone) */
        bool local_dead;
        int error; /* the first error, for closed() */

        TlsInfo info;
        bool have_info;
        char alpn[256];
        char *subject;
        char *sni;
        char pin[TLS_PIN_SIZE];
};

const TlsInfo *tls_bridge_get_info(TlsBridge *b) {
        return b && b->have_info ? &b->info : NULL;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC */
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static void bridge_run(TlsBridge *b, bool timeout);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        bridge_run(userdata, true);
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        bridge_run(userdata, false);
        return 0;
}

static int on_defer(sd_event_source *s, void *userdata) {
        bridge_run(userdata, false);
        return 0;
}

/* From the real now, not sd_event_now(): that is when the loop last woke up, which can be
 * long ago. 1 µs accuracy: the default would add up to 250 ms. */
static int timer_arm(TlsBridge *b, uint64_t usec) {
        uint64_t now = now_usec(), when = usec > UINT64_MAX - now ? UINT64_MAX : now + usec;
        int r;

        if (b->timer) {
                r = sd_event_source_set_time(b->timer, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(b->timer, SD_EVENT_ONESHOT);
                return r;
        }
        return sd_event_add_time(b->event, &b->timer, CLOCK_MONOTONIC, when, 1, on_timer, b);
}

static void timer_disarm(TlsBridge *b) {
        if (b->timer)
                (void) sd_event_source_set_enabled(b->timer, SD_EVENT_OFF);
}

static bool timer_armed(TlsBridge *b) {
        int enabled = SD_EVENT_OFF;

        return b->timer && sd_event_source_get_enabled(b->timer, &enabled) >= 0 && enabled != SD_EVENT_OFF;
}

static void kick(TlsBridge *b) {
        (void) sd_event_source_set_enabled(b->defer, SD_EVENT_ONESHOT);
}

static void set_io(sd_event_source *s, uint32_t events) {
        if (!s)
                return;
        /* Off rather than an empty mask: EPOLLHUP/EPOLLERR come regardless of the mask and
         * would spin while we wait for the other side. */
        if (events == 0) {
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_io_events(s, events);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* Closes everything the bridge holds but the SSL object and the info strings. */
static void bridge_stop(TlsBridge *b) {
        b->net_io = sd_event_source_disable_unref(b->net_io);
        b->local_io = sd_event_source_disable_unref(b->local_io);
        b->timer = sd_event_source_disable_unref(b->timer);
        b->defer = sd_event_source_disable_unref(b->defer);
        b->net_fd = safe_close(b->net_fd);
        b->local_fd = safe_close(b->local_fd);
        b->ready_fd = safe_close(b->ready_fd);
        free(b->in);
        b->in = NULL;
        free(b->out);
        b->out = NULL;
        b->in_start = b->in_end = b->out_start = b->out_end = b->out_size = 0;
        b->state = STATE_DONE;
        ERR_clear_error();
}

static void bridge_destroy(TlsBridge *b) {
        bridge_stop(b);
        SSL_free(b->ssl);
        sd_event_unref(b->event);
        free(b->server_name);
        free(b->subject);
        free(b->sni);
        free(b);
}

TlsBridge *tls_bridge_free(TlsBridge *b) {
        if (!b)
                return NULL;
        if (b->busy > 0) {
                /* Inside one of our callbacks: the handler frees it when it unwinds. */
                b->dead = true;
                bridge_stop(b);
                return NULL;
        }
        bridge_destroy(b);
        return NULL;
}

static void bridge_fail(TlsBridge *b, TlsFailure f, int error, const char *reason) {
        bridge_stop(b);
        b->cb.failed(b, f, error, reason, b->userdata);
}

static void bridge_finish(TlsBridge *b, int error) {
        bridge_stop(b);
        b->cb.closed(b, error, b->userdata);
}

static void record_error(TlsBridge *b, int error) {
        if (b->error == 0)
                b->error = error;
}

/* After an SSL call returned n <= 0 (errno as the call left it in saved_errno): 0 and
 * *want when it waits for the socket, 1 at the peer's close_notify, else -errno. */
static int ssl_result(SSL *ssl, int n, int saved_errno, uint32_t *want) {
        unsigned long e;

        switch (SSL_get_error(ssl, n)) {
        case SSL_ERROR_WANT_READ:
                *want = EPOLLIN;
                return 0;
        case SSL_ERROR_WANT_WRITE:
                *want = EPOLLOUT;
                return 0;
        case SSL_ERROR_ZERO_RETURN:
                return 1;
        case SSL_ERROR_SYSCALL:
                return saved_errno > 0 ? -saved_errno : -ECONNRESET;
        case SSL_ERROR_SSL:
                e = ERR_peek_error();
                if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
                        return -ECONNRESET;
                if (ERR_SYSTEM_ERROR(e) && ERR_GET_REASON(e) > 0)
                        return -(int) ERR_GET_REASON(e);
                return -EPROTO;
        default:
                return -EPROTO;
        }
}

/* Replaces what a log line should not carry from a peer. */
static char *strdup_printable(const char *s) {
        char *c = strdup(s);

        if (c)
                for (char *p = c; *p; p++)
                        if (*p < 0x20 || *p >= 0x7f)
                                *p = '?';
        return c;
}

static void fill_info(TlsBridge *b) {
        const unsigned char *alpn = NULL;
        unsigned alpn_len = 0;

        SSL_get0_alpn_selected(b->ssl, &alpn, &alpn_len);
        if (alpn && alpn_len > 0) {
                memcpy(b->alpn, alpn, alpn_len);
                b->alpn[alpn_len] = 0;
                b->info.alpn = b->alpn;
        }
        b->info.version = SSL_get_version(b->ssl);
        b->info.cipher = SSL_get_cipher_name(b->ssl);

        if (b->side == TLS_SIDE_CLIENT) {
                X509 *cert = SSL_get0_peer_certificate(b->ssl);

                b->info.server_name = b->server_name;
                if (cert) {
                        BIO *mem = BIO_new(BIO_s_mem());
                        uint8_t digest[32];
                        char *data;
                        long len;

                        if (mem && X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0 &&
                            (len = BIO_get_mem_data(mem, &data)) >= 0) {
                                b->subject = strndup(data, (size_t) len);
                                b->info.peer_subject = b->subject;
                        }
                        BIO_free(mem);
                        if (cert_pin_digest(cert, digest) >= 0) {
                                pin_format(digest, b->pin);
                                b->info.peer_pin = b->pin;
                        }
                }
        } else {
                const char *sni = SSL_get_servername(b->ssl, TLSEXT_NAMETYPE_host_name);

                if (sni) {
                        b->sni = strdup_printable(sni);
                        b->info.server_name = b->sni;
                }
        }
        b->have_info = true;
        ERR_clear_error();
}

/* Moves to STATE_PUMP with fd as the local side; the peeked bytes go first. On failure
 * nothing changed and fd is still the caller's. */
static int pump_begin(TlsBridge *b, int fd) {
        _cleanup_(freep) uint8_t *in = NULL, *out = NULL;
        int r;

        in = malloc(TLS_BRIDGE_BUFFER_SIZE);
        out = malloc(TLS_BRIDGE_BUFFER_SIZE);
        if (!in || !out)
                return -ENOMEM;
        r = sd_event_add_io(b->event, &b->local_io, fd, EPOLLIN | EPOLLOUT, on_io, b);
        if (r < 0)
                return r;

        memcpy(in, b->peek, b->n_peek);
        b->in_start = 0;
        b->in_end = b->n_peek;
        b->in = TAKE_PTR(in);
        free(b->out);
        b->out = TAKE_PTR(out);
        b->out_start = b->out_end = 0;
        b->out_size = TLS_BRIDGE_BUFFER_SIZE;
        b->local_fd = fd;
        b->state = STATE_PUMP;
        timer_disarm(b);
        kick(b);
        return 0;
}

/* Makes the socketpair and starts pumping; ready() delivers the other end. */
static int hand_over(TlsBridge *b) {
        int sp[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
                return -errno;
        r = pump_begin(b, sp[0]);
        if (r < 0) {
                safe_close(sp[0]);
                safe_close(sp[1]);
                return r;
        }
        b->ready_fd = sp[1];
        return 0;
}

static void fail_handshake(TlsBridge *b, int n, int saved_errno) {
        int e = SSL_get_error(b->ssl, n);
        unsigned long err = ERR_peek_error();
        int lib = ERR_GET_LIB(err), reason = ERR_GET_REASON(err);
        char text[512];

        if (e == SSL_ERROR_SSL && lib == ERR_LIB_SSL && reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
                long v = SSL_get_verify_result(b->ssl);
                bool name = v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH;

                /* Not the name itself: this text is logged, and names stay out of logs
                 * (TLSServerName= is in the profile for whoever may read it). */
                snprintf(text, sizeof text, "certificate verify failed: %s%s", X509_verify_cert_error_string(v),
                         name ? " for TLSServerName=" : "");
                bridge_fail(b, name ? TLS_FAILURE_NAME_MISMATCH : TLS_FAILURE_VERIFY_FAILED, -EPERM, text);
        } else if (e == SSL_ERROR_SSL && lib == ERR_LIB_SSL && reason == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL &&
                   b->side == TLS_SIDE_CLIENT)
                bridge_fail(b, TLS_FAILURE_ALPN_MISSING, -EPERM,
                            "the server refused ALPN " TLS_ALPN_ALKNET " (no_application_protocol alert)");
        else if ((e == SSL_ERROR_SSL && lib == ERR_LIB_SSL && reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
                 (e == SSL_ERROR_SYSCALL && saved_errno <= 0))
                bridge_fail(b, TLS_FAILURE_IO, -ECONNRESET, "connection closed during the TLS handshake");
        else if (e == SSL_ERROR_SYSCALL) {
                snprintf(text, sizeof text, "TLS handshake: %s", strerror(saved_errno));
                bridge_fail(b, TLS_FAILURE_IO, -saved_errno, text);
        } else {
                const char *s = ERR_reason_error_string(err);

                snprintf(text, sizeof text, "TLS handshake failed: %s", s ?: "protocol error");
                bridge_fail(b, TLS_FAILURE_PROTOCOL, -EPROTO, text);
        }
}

/* The client's own checks once OpenSSL is done: the pin, then the ALPN. */
static bool client_checks(TlsBridge *b) {
        const ClientPolicy *policy = ctx_policy(SSL_get_SSL_CTX(b->ssl));
        char text[256];

        if (policy && policy->has_pin) {
                char want[TLS_PIN_SIZE];

                pin_format(policy->pin, want);
                if (!b->info.peer_pin || !streq(b->info.peer_pin, want)) {
                        snprintf(text, sizeof text, "the server's public key %s does not match the pin %s",
                                 strna(b->info.peer_pin), want);
                        bridge_fail(b, TLS_FAILURE_PIN_MISMATCH, -EPERM, text);
                        return false;
                }
        }
        if (!streq_ptr(b->info.alpn, TLS_ALPN_ALKNET)) {
                /* OpenSSL only accepts a selection we offered, so this is "none". */
                bridge_fail(b, TLS_FAILURE_ALPN_MISSING, -EPERM, "the server did not select ALPN " TLS_ALPN_ALKNET);
                return false;
        }
        return true;
}

static void step_handshake(TlsBridge *b) {
        int n, saved_errno, r;
        char text[128];

        ERR_clear_error();
        errno = 0;
        n = SSL_do_handshake(b->ssl);
        saved_errno = errno;
        if (n != 1) {
                r = ssl_result(b->ssl, n, saved_errno, &b->want_rd);
                if (r == 0)
                        return;
                fail_handshake(b, n, saved_errno);
                return;
        }

        fill_info(b);
        timer_disarm(b);
        if (b->side == TLS_SIDE_CLIENT && !client_checks(b))
                return;
        if (b->side == TLS_SIDE_SERVER && b->peek_mode && !streq_ptr(b->info.alpn, TLS_ALPN_ALKNET)) {
                b->state = STATE_PEEK;
                r = timer_arm(b, b->peek_timeout_usec);
                if (r < 0)
                        bridge_finish(b, r);
                return;
        }
        r = hand_over(b);
        if (r < 0) {
                snprintf(text, sizeof text, "Failed to create the socketpair: %s", strerror(-r));
                bridge_fail(b, TLS_FAILURE_IO, r, text);
        }
}

static int begin_send_close(TlsBridge *b, const void *bytes, size_t n) {
        uint8_t *copy = NULL;
        int r;

        if (n > TLS_BRIDGE_BUFFER_SIZE)
                return -EMSGSIZE;
        if (n > 0) {
                copy = malloc(n);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, bytes, n);
        }
        r = timer_arm(b, TLS_BRIDGE_LINGER_USEC);
        if (r < 0) {
                free(copy);
                return r;
        }
        free(b->out);
        b->out = copy;
        b->out_start = 0;
        b->out_end = b->out_size = n;
        b->state = STATE_SEND_CLOSE;
        kick(b);
        return 0;
}

static void net_dead(TlsBridge *b, int error) {
        b->net_dead = b->net_rd_eof = b->net_wr_shut = true;
        b->out_start = b->out_end = 0; /* nobody to send it to */
        record_error(b, error);
}

static void local_dead(TlsBridge *b, int error) {
        b->local_dead = b->local_rd_eof = b->local_wr_shut = true;
        b->in_start = b->in_end = 0;
        record_error(b, error);
}

/* Called with a terminal peek event: the caller's decision, or our close. */
static void peek_end(TlsBridge *b, TlsPeekEvent event) {
        int r;

        timer_disarm(b);
        b->cb.peek(b, b->peek, b->n_peek, event, b->userdata);
        if (b->dead || b->state != STATE_PEEK)
                return;
        r = begin_send_close(b, NULL, 0);
        if (r < 0)
                bridge_finish(b, r);
}

static void step_peek(TlsBridge *b) {
        while (b->state == STATE_PEEK && b->n_peek < TLS_PEEK_MAX) {
                int n, saved_errno, r;

                ERR_clear_error();
                errno = 0;
                n = SSL_read(b->ssl, b->peek + b->n_peek, (int) (TLS_PEEK_MAX - b->n_peek));
                saved_errno = errno;
                if (n > 0) {
                        b->n_peek += (size_t) n;
                        b->cb.peek(b, b->peek, b->n_peek, TLS_PEEK_DATA, b->userdata);
                        if (b->dead)
                                return;
                        continue;
                }
                r = ssl_result(b->ssl, n, saved_errno, &b->want_rd);
                if (r == 0)
                        return;
                if (r == 1 || r == -ECONNRESET) {
                        if (r < 0)
                                net_dead(b, r);
                        peek_end(b, TLS_PEEK_EOF);
                } else
                        bridge_finish(b, r);
                return;
        }
}

/* One pass over every direction; returns whether anything moved. */
static bool pump_round(TlsBridge *b) {
        bool progress = false;
        int n, saved_errno, r;

        /* network → in */
        if (!b->net_rd_eof) {
                if (b->in_start == b->in_end)
                        b->in_start = b->in_end = 0;
                else if (b->in_end == TLS_BRIDGE_BUFFER_SIZE && b->in_start > 0) {
                        memmove(b->in, b->in + b->in_start, b->in_end - b->in_start);
                        b->in_end -= b->in_start;
                        b->in_start = 0;
                }
        }
        if (!b->net_rd_eof && b->in_end < TLS_BRIDGE_BUFFER_SIZE) {
                ERR_clear_error();
                errno = 0;
                n = SSL_read(b->ssl, b->in + b->in_end, (int) (TLS_BRIDGE_BUFFER_SIZE - b->in_end));
                saved_errno = errno;
                if (n > 0) {
                        b->in_end += (size_t) n;
                        progress = true;
                } else {
                        r = ssl_result(b->ssl, n, saved_errno, &b->want_rd);
                        if (r == 1) {
                                b->net_rd_eof = true;
                                progress = true;
                        } else if (r < 0) {
                                net_dead(b, r);
                                progress = true;
                        }
                }
        }

        /* in → local */
        while (!b->local_dead && b->in_end > b->in_start) {
                ssize_t k = send(b->local_fd, b->in + b->in_start, b->in_end - b->in_start, MSG_DONTWAIT | MSG_NOSIGNAL);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                local_dead(b, -errno);
                        break;
                }
                b->in_start += (size_t) k;
                progress = true;
        }
        if (b->net_rd_eof && b->in_start == b->in_end && !b->local_wr_shut) {
                /* The peer's close_notify, passed on: libssh (or the backend) reads EOF. */
                (void) shutdown(b->local_fd, SHUT_WR);
                b->local_wr_shut = true;
                progress = true;
        }

        /* local → out */
        if (!b->local_rd_eof) {
                if (b->out_start == b->out_end)
                        b->out_start = b->out_end = 0;
                else if (b->out_end == b->out_size && b->out_start > 0) {
                        /* SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER makes this legal between
                         * retries of one SSL_write(). */
                        memmove(b->out, b->out + b->out_start, b->out_end - b->out_start);
                        b->out_end -= b->out_start;
                        b->out_start = 0;
                }
        }
        while (!b->local_rd_eof && b->out_end < b->out_size) {
                ssize_t k = recv(b->local_fd, b->out + b->out_end, b->out_size - b->out_end, MSG_DONTWAIT);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                local_dead(b, -errno);
                        break;
                }
                if (k == 0)
                        b->local_rd_eof = true;
                b->out_end += (size_t) k;
                progress = true;
                break;
        }

        /* out → network */
        if (!b->net_wr_shut && b->out_end > b->out_start) {
                ERR_clear_error();
                errno = 0;
                n = SSL_write(b->ssl, b->out + b->out_start, (int) (b->out_end - b->out_start));
                saved_errno = errno;
                if (n > 0) {
                        b->out_start += (size_t) n;
                        progress = true;
                } else {
                        r = ssl_result(b->ssl, n, saved_errno, &b->want_wr);
                        if (r != 0) {
                                net_dead(b, r < 0 ? r : -EPROTO);
                                progress = true;
                        }
                }
        }
        if (!b->net_wr_shut && b->local_rd_eof && b->out_start == b->out_end) {
                ERR_clear_error();
                errno = 0;
                n = SSL_shutdown(b->ssl);
                saved_errno = errno;
                if (n >= 0) {
                        /* close_notify is out; FIN too, for peers that read TCP EOF. */
                        (void) shutdown(b->net_fd, SHUT_WR);
                        b->net_wr_shut = true;
                        progress = true;
                } else {
                        r = ssl_result(b->ssl, n, saved_errno, &b->want_wr);
                        if (r != 0) {
                                net_dead(b, r < 0 ? r : -EPROTO);
                                progress = true;
                        }
                }
        }
        return progress;
}

static void step_pump(TlsBridge *b) {
        bool any = false;
        int r;

        for (unsigned round = 0;; round++) {
                if (!pump_round(b))
                        break;
                any = true;
                if (b->net_wr_shut && b->local_wr_shut)
                        break;
                if (round >= PUMP_ROUNDS_MAX) {
                        kick(b); /* more next iteration, after others had their turn */
                        break;
                }
        }

        if (b->net_wr_shut && b->local_wr_shut) {
                bridge_finish(b, b->error);
                return;
        }
        /* Half closed: the other direction must keep moving, or we give up. Likewise a
         * splice with an idle timeout, whatever its halves do. */
        if (b->net_wr_shut != b->local_wr_shut && (any || !timer_armed(b))) {
                r = timer_arm(b, b->idle_timeout_usec > 0 ? MIN(b->idle_timeout_usec, TLS_BRIDGE_HALF_CLOSE_IDLE_USEC)
                                                          : TLS_BRIDGE_HALF_CLOSE_IDLE_USEC);
                if (r < 0)
                        bridge_finish(b, r);
        } else if (b->idle_timeout_usec > 0 && (any || !timer_armed(b))) {
                r = timer_arm(b, b->idle_timeout_usec);
                if (r < 0)
                        bridge_finish(b, r);
        }
}

static void step_send_close(TlsBridge *b) {
        int n, saved_errno, r;

        if (b->net_dead) {
                bridge_finish(b, b->error);
                return;
        }

        while (b->out_start < b->out_end) {
                ERR_clear_error();
                errno = 0;
                n = SSL_write(b->ssl, b->out + b->out_start, (int) (b->out_end - b->out_start));
                saved_errno = errno;
                if (n > 0) {
                        b->out_start += (size_t) n;
                        continue;
                }
                r = ssl_result(b->ssl, n, saved_errno, &b->want_wr);
                if (r != 0)
                        bridge_finish(b, r < 0 ? r : -EPROTO);
                return;
        }

        ERR_clear_error();
        errno = 0;
        n = SSL_shutdown(b->ssl);
        saved_errno = errno;
        if (n < 0) {
                r = ssl_result(b->ssl, n, saved_errno, &b->want_wr);
                if (r != 0)
                        bridge_finish(b, r < 0 ? r : -EPROTO);
                return;
        }
        (void) shutdown(b->net_fd, SHUT_WR);
        free(b->out);
        b->out = NULL;
        b->out_start = b->out_end = b->out_size = 0;
        b->state = STATE_LINGER;
}

static void step_linger(TlsBridge *b) {
        uint8_t scratch[4096];

        /* Raw bytes: after our close_notify, whatever the client sends is of no interest,
         * but leaving it unread would make our close a reset. Bounded per wakeup. */
        for (unsigned i = 0; i < 16; i++) {
                ssize_t k = recv(b->net_fd, scratch, sizeof scratch, MSG_DONTWAIT);

                if (k == 0) {
                        bridge_finish(b, 0);
                        return;
                }
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                bridge_finish(b, -errno);
                        return;
                }
        }
        kick(b);
}

static void on_timeout(TlsBridge *b) {
        char text[128];

        switch (b->state) {
        case STATE_HANDSHAKE:
                snprintf(text, sizeof text, "no TLS handshake within %" PRIu64 " ms",
                         b->handshake_timeout_usec / USEC_PER_MSEC);
                bridge_fail(b, TLS_FAILURE_HANDSHAKE_TIMEOUT, -ETIMEDOUT, text);
                break;
        case STATE_PEEK:
                peek_end(b, TLS_PEEK_TIMEOUT);
                break;
        case STATE_PUMP:
        case STATE_SEND_CLOSE:
                bridge_finish(b, -ETIMEDOUT);
                break;
        case STATE_LINGER:
                bridge_finish(b, 0); /* all was delivered; the client just stays */
                break;
        default:
                break;
        }
}

static void update_events(TlsBridge *b) {
        uint32_t net = 0, local = 0;

        switch (b->state) {
        case STATE_HANDSHAKE:
                net = b->want_rd;
                break;
        case STATE_PEEK:
                net = b->n_peek < TLS_PEEK_MAX ? b->want_rd : 0;
                break;
        case STATE_PUMP:
                /* Exactly the conditions under which pump_round() tried, and was told to
                 * wait: nothing is awaited that was not asked for. */
                if (!b->net_rd_eof && b->in_end < TLS_BRIDGE_BUFFER_SIZE)
                        net |= b->want_rd;
                if (!b->net_wr_shut && (b->out_end > b->out_start || b->local_rd_eof))
                        net |= b->want_wr;
                if (!b->local_rd_eof && b->out_end < b->out_size)
                        local |= EPOLLIN;
                if (!b->local_dead && b->in_end > b->in_start)
                        local |= EPOLLOUT;
                break;
        case STATE_SEND_CLOSE:
                net = b->want_wr;
                break;
        case STATE_LINGER:
                net = EPOLLIN;
                break;
        default:
                break;
        }
        set_io(b->net_io, net);
        set_io(b->local_io, local);
}

static void bridge_step(TlsBridge *b, bool timeout) {
        if (timeout) {
                on_timeout(b);
                if (b->dead || b->state == STATE_DONE)
                        return;
        }

        for (;;) {
                BridgeState s;

                if (b->ready_fd >= 0) {
                        int fd = TAKE_FD(b->ready_fd);

                        b->cb.ready(b, fd, &b->info, b->userdata);
                        if (b->dead || b->state == STATE_DONE)
                                return;
                }

                s = b->state;
                switch (s) {
                case STATE_HANDSHAKE:
                        step_handshake(b);
                        break;
                case STATE_PEEK:
                        step_peek(b);
                        break;
                case STATE_PUMP:
                        step_pump(b);
                        break;
                case STATE_SEND_CLOSE:
                        step_send_close(b);
                        break;
                case STATE_LINGER:
                        step_linger(b);
                        break;
                case STATE_HELD:
                case STATE_DONE:
                        break;
                }
                if (b->dead || b->state == STATE_DONE)
                        return;
                if (b->state == s && b->ready_fd < 0)
                        break;
        }
        update_events(b);
}

static void bridge_run(TlsBridge *b, bool timeout) {
        b->busy++;
        bridge_step(b, timeout);
        if (--b->busy == 0 && b->dead)
                bridge_destroy(b);
}

static bool is_ip_literal(const char *s) {
        uint8_t buf[16];

        return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int setup_client(TlsBridge *b, const ClientPolicy *policy, const char *server_name) {
        _cleanup_(freep) char *name = NULL;
        size_t l;

        if (!server_name)
                return policy->verify ? -EINVAL : 0;
        /* "[::1]" as in a URL: the address without brackets. */
        l = strlen(server_name);
        name = l >= 2 && server_name[0] == '[' && server_name[l - 1] == ']' ? strndup(server_name + 1, l - 2)
                                                                           : strdup(server_name);
        if (!name)
                return -ENOMEM;
        if (isempty(name))
                return -EINVAL;

        if (is_ip_literal(name)) {
                /* RFC 6066 3: no IP literals in SNI. The certificate needs an IP SAN. */
                if (policy->verify && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(b->ssl), name) != 1)
                        return -EINVAL;
        } else {
                if (SSL_set_tlsext_host_name(b->ssl, name) != 1)
                        return -EINVAL;
                if (policy->verify) {
                        SSL_set_hostflags(b->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                        if (SSL_set1_host(b->ssl, name) != 1)
                                return -EINVAL;
                }
        }
        b->server_name = TAKE_PTR(name);
        return 0;
}

int tls_bridge_new(sd_event *e, int net_fd, const TlsBridgeParams *p, const TlsBridgeCallbacks *cb, void *userdata,
                   TlsBridge **ret) {
        _cleanup_(tls_bridge_freep) TlsBridge *b = NULL;
        const ClientPolicy *policy = NULL;
        int r, one = 1;

        assert(e);
        assert(p);
        assert(cb);
        assert(ret);

        if (net_fd < 0 || !p->ctx || !cb->ready || !cb->failed || !cb->closed)
                return -EINVAL;
        if (p->side == TLS_SIDE_CLIENT) {
                policy = ctx_policy(p->ctx);
                if (!policy || p->peek)
                        return -EINVAL;
        } else if (p->side == TLS_SIDE_SERVER) {
                if (ctx_policy(p->ctx) || (p->peek && !cb->peek))
                        return -EINVAL;
        } else
                return -EINVAL;

        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        *b = (TlsBridge) {
                .event = sd_event_ref(e),
                .side = p->side,
                .state = STATE_HANDSHAKE,
                .peek_mode = p->peek,
                .handshake_timeout_usec = p->handshake_timeout_usec ?: TLS_HANDSHAKE_TIMEOUT_DEFAULT_USEC,
                .peek_timeout_usec = p->peek_timeout_usec ?: TLS_PEEK_TIMEOUT_DEFAULT_USEC,
                .cb = *cb,
                .userdata = userdata,
                .net_fd = -EBADF,
                .local_fd = -EBADF,
                .ready_fd = -EBADF,
        };

        ERR_clear_error();
        b->ssl = SSL_new(p->ctx);
        if (!b->ssl || SSL_set_fd(b->ssl, net_fd) != 1)
                return -ENOMEM;
        if (p->side == TLS_SIDE_CLIENT) {
                SSL_set_connect_state(b->ssl);
                r = setup_client(b, policy, p->server_name);
                if (r < 0)
                        return r;
        } else
                SSL_set_accept_state(b->ssl);

        /* SSH is interactive: small packets must not wait for ACKs (not TCP: ignored). */
        (void) setsockopt(net_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

        r = sd_event_add_io(e, &b->net_io, net_fd, EPOLLIN, on_io, b);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(b->net_io, SD_EVENT_OFF);
        r = sd_event_add_defer(e, &b->defer, on_defer, b);
        if (r < 0)
                return r;
        r = timer_arm(b, b->handshake_timeout_usec);
        if (r < 0)
                return r;
        kick(b); /* the first handshake step runs from the loop */

        b->net_fd = net_fd;
        ERR_clear_error();
        *ret = TAKE_PTR(b);
        return 0;
}

static bool peeking(TlsBridge *b) {
        return b && !b->dead && (b->state == STATE_PEEK || b->state == STATE_HELD);
}

int tls_bridge_hand_over(TlsBridge *b) {
        int r;

        if (!peeking(b))
                return -EBUSY;
        r = hand_over(b);
        if (r < 0)
                return r;
        kick(b);
        return 0;
}

int tls_bridge_send_and_close(TlsBridge *b, const void *bytes, size_t n) {
        if (!peeking(b))
                return -EBUSY;
        if (n > 0 && !bytes)
                return -EINVAL;
        return begin_send_close(b, bytes, n);
}

int tls_bridge_splice(TlsBridge *b, int fd, uint64_t idle_timeout_usec) {
        int one = 1, r;

        if (!peeking(b))
                return -EBUSY;
        if (fd < 0)
                return -EINVAL;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        r = pump_begin(b, fd);
        if (r >= 0)
                b->idle_timeout_usec = idle_timeout_usec;
        return r;
}

int tls_bridge_hold(TlsBridge *b) {
        if (!peeking(b))
                return -EBUSY;
        b->state = STATE_HELD;
        timer_disarm(b);
        set_io(b->net_io, 0);
        return 0;
}
