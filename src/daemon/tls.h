/* TLS for SSH over port 443 (OpenSSL 3): client and server contexts with ALPN alknet-ssh,
 * and a bridge that runs one TLS connection non-blocking in the event loop and hands libssh
 * a plain byte stream (one end of a socketpair), plus the server's stealth peek. */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* The ALPN protocol name both ends of an alknet TLS transport use. */
#define TLS_ALPN_ALKNET "alknet-ssh"

/* "sha256//" + 44 characters of padded base64 + NUL: curl's --pinnedpubkey format. */
#define TLS_PIN_SIZE 53u

/* Bytes buffered per direction per bridge: caps what one peer can make us hold. Only
 * allocated once the stream is handed over, so handshakes and peeks cost no buffers. */
#define TLS_BRIDGE_BUFFER_SIZE (128u * 1024u)
/* Default deadline from tls_bridge_new() to a finished handshake. */
#define TLS_HANDSHAKE_TIMEOUT_DEFAULT_USEC (30 * USEC_PER_SEC)
/* Default time a stealth peek waits for a client's first bytes. */
#define TLS_PEEK_TIMEOUT_DEFAULT_USEC (3 * USEC_PER_SEC)
/* How long a stream half closed one way may stay without any byte moving before the
 * bridge gives up on the other direction (a peer that never sends close_notify). */
#define TLS_BRIDGE_HALF_CLOSE_IDLE_USEC (30 * USEC_PER_SEC)
/* tls_bridge_send_and_close(): time for the bytes, close_notify, and the peer's EOF. */
#define TLS_BRIDGE_LINGER_USEC (5 * USEC_PER_SEC)
/* Most bytes a peek reads (strlen("SSH-2.0-")). */
#define TLS_PEEK_MAX 8u

typedef enum TlsSide {
        TLS_SIDE_CLIENT,
        TLS_SIDE_SERVER,
        _TLS_SIDE_MAX,
        _TLS_SIDE_INVALID = -EINVAL,
} TlsSide;

/* Why a handshake failed; the strings are stable (logs, tests). */
typedef enum TlsFailure {
        TLS_FAILURE_VERIFY_FAILED,     /* "verify-failed": chain not trusted, expired, ... */
        TLS_FAILURE_NAME_MISMATCH,     /* "name-mismatch": chain fine, not for this name/IP */
        TLS_FAILURE_PIN_MISMATCH,      /* "pin-mismatch": public key is not the pinned one */
        TLS_FAILURE_ALPN_MISSING,      /* "alpn-missing": server did not select alknet-ssh */
        TLS_FAILURE_HANDSHAKE_TIMEOUT, /* "handshake-timeout" */
        TLS_FAILURE_PROTOCOL,          /* "protocol": not TLS, no common version or cipher,
                                        * an alert from the peer (e.g. it rejected us) */
        TLS_FAILURE_IO,                /* "io": connection reset or closed mid-handshake, or a
                                        * local failure (socketpair, memory) */
        _TLS_FAILURE_MAX,
        _TLS_FAILURE_INVALID = -EINVAL,
} TlsFailure;

const char *tls_failure_to_string(TlsFailure f) _pure_;
TlsFailure tls_failure_from_string(const char *s) _pure_;

/* ---- Contexts ----
 * An SSL_CTX is reference counted (SSL_CTX_free() drops one): every bridge holds its own
 * reference, so a context can be replaced (reload) while old connections keep using it. */

/* A server context: TLS 1.2 and 1.3, the certificate chain from cert_file (PEM, leaf
 * first: certbot's fullchain.pem) and its key from key_file (NULL: in cert_file too).
 * Reloading is calling this again with the same files and swapping the result in for new
 * connections (certbot renewals replace the files in place).
 *
 * ALPN: the client's list is searched for "alknet-ssh" first, whatever its position;
 * else "http/1.1" is selected, so that a browser or scanner sees what nginx (without
 * http2) would answer and the stealth decoy speaks the selected protocol; a list with
 * neither is refused with the no_application_protocol alert, as nginx >= 1.21.4 does.
 * A client that sends no ALPN extension gets none back (the stealth peek decides).
 *
 * -ENOENT, -EACCES, ... when a file cannot be read, -EBADMSG when it holds no usable
 * certificate or key, -EKEYREJECTED when the key does not belong to the certificate,
 * -ENOMEM. With ret_error, a message for the log is returned on failure (to free). */
int tls_server_ctx_new(const char *cert_file, const char *key_file, SSL_CTX **ret, char **ret_error);

/* The pin of the server context's certificate ("sha256//..."), for showing the admin
 * what TLSPin= a client would use. -ENOENT without a certificate. */
int tls_server_ctx_get_pin(SSL_CTX *ctx, char ret[TLS_PIN_SIZE]);

/* A client context. verify: check the server's chain against ca_file (PEM, one or more
 * CAs) or, with ca_file NULL, the system store, and the name given to tls_bridge_new().
 * verify false (TLSVerify=no) skips both; the caller should warn loudly. pin (NULL or
 * "sha256//<base64 of the SHA-256 of the server certificate's SubjectPublicKeyInfo>",
 * as curl --pinnedpubkey) is checked against the leaf certificate either way. Every
 * connection offers exactly ALPN "alknet-ssh" and fails unless the server selects it.
 * -EINVAL on a malformed pin, -ENOENT, -EBADMSG ... when ca_file is unusable.
 *
 * The system store is parsed once (about 20 ms of the loop's time for Debian's bundle)
 * and shared by every context made afterwards; tls_forget_system_store() drops it, so
 * that the next context reads it again (on reload: ca-certificates may have changed). */
int tls_client_ctx_new(bool verify, const char *ca_file, const char *pin, SSL_CTX **ret, char **ret_error);
void tls_forget_system_store(void);

/* Parses "sha256//<44 characters of padded base64>" into the 32-byte digest.
 * -EINVAL on anything else. */
int tls_pin_parse(const char *pin, uint8_t ret[32]);

/* SSL_CTX_free() as a function returning NULL (accepts NULL). */
SSL_CTX *tls_ctx_unref(SSL_CTX *ctx);
DEFINE_POINTER_CLEANUP_FUNC(SSL_CTX, tls_ctx_unref);

/* ---- Bridge ---- */

typedef struct TlsBridge TlsBridge;

/* What the handshake settled, for logs; no secrets. Valid until the bridge is freed. */
typedef struct TlsInfo {
        const char *alpn;         /* the selected ALPN protocol, NULL when none was */
        const char *version;      /* "TLSv1.3", "TLSv1.2" */
        const char *cipher;       /* "TLS_AES_256_GCM_SHA384", ... */
        const char *server_name;  /* client: the name checked; server: the SNI the client
                                   * sent, non-printable bytes replaced by '?'; or NULL */
        const char *peer_subject; /* client: the server certificate's subject (RFC 2253,
                                   * escaped); server: NULL */
        const char *peer_pin;     /* client: the server certificate's pin (so that an
                                   * admin can copy it into TLSPin=); server: NULL */
} TlsInfo;

typedef enum TlsPeekEvent {
        TLS_PEEK_DATA,    /* more bytes came; more may come */
        TLS_PEEK_TIMEOUT, /* the peek deadline passed */
        TLS_PEEK_EOF,     /* the client closed (close_notify or TCP EOF) */
        _TLS_PEEK_EVENT_MAX,
        _TLS_PEEK_EVENT_INVALID = -EINVAL,
} TlsPeekEvent;

/* Callbacks come only from the event loop, never from inside a tls_bridge_*() call. Any
 * of them may free the bridge. After failed() or closed() nothing more is called and
 * the bridge is inert (its sockets are closed): the owner frees it.
 *
 * ready(): the stream is handed over. fd is the caller's end of a socketpair (CLOEXEC,
 *   NONBLOCK) and belongs to the callee now: give it to libssh (SSH_OPTIONS_FD or
 *   ssh_bind_accept_fd). Closing it ends the stream in an orderly way: close_notify
 *   goes to the peer, and closed() follows once both directions are done.
 * peek(): server peek mode only, after a handshake that did not select alknet-ssh: buf
 *   holds the n first bytes (n <= TLS_PEEK_MAX; for TLS_PEEK_DATA n >= 1). Decide with
 *   stealth_classify(), then call exactly one of tls_bridge_hand_over(),
 *   tls_bridge_send_and_close(), tls_bridge_splice(), tls_bridge_hold(), or free the
 *   bridge; or, after TLS_PEEK_DATA, nothing, to wait for more bytes (the deadline
 *   stays; with TLS_PEEK_MAX bytes no more are read). After TLS_PEEK_TIMEOUT or
 *   TLS_PEEK_EOF, doing nothing closes the connection (close_notify) and closed() follows.
 * failed(): the handshake (or the client's checks of it) failed: a category, -errno
 *   (-ETIMEDOUT, -ECONNRESET, -EPROTO, -EPERM for verify/pin/ALPN failures, ...) and a
 *   reason for the log (OpenSSL's text, the verify error, the pins compared).
 * closed(): after ready(), hand_over, splice or send_and_close: the stream ended. error
 *   0 when both directions were closed in order (send_and_close: bytes and close_notify
 *   delivered), else -errno: -ECONNRESET (reset, or TCP EOF without close_notify),
 *   -ETIMEDOUT (TLS_BRIDGE_HALF_CLOSE_IDLE_USEC / TLS_BRIDGE_LINGER_USEC ran out),
 *   -EPROTO (TLS error), or what a socket call failed with. Bytes already decrypted
 *   still reach the local side before closed() after a network error. */
typedef struct TlsBridgeCallbacks {
        void (*ready)(TlsBridge *b, int fd, const TlsInfo *info, void *userdata);
        void (*peek)(TlsBridge *b, const uint8_t *buf, size_t n, TlsPeekEvent event, void *userdata);
        void (*failed)(TlsBridge *b, TlsFailure failure, int error, const char *reason, void *userdata);
        void (*closed)(TlsBridge *b, int error, void *userdata);
} TlsBridgeCallbacks;

typedef struct TlsBridgeParams {
        TlsSide side;
        SSL_CTX *ctx;                    /* from tls_{client,server}_ctx_new() for that side */
        const char *server_name;         /* client: SNI (not sent for an IP literal) and the
                                          * name or IP the certificate must match; required
                                          * when the context verifies; copied */
        uint64_t handshake_timeout_usec; /* 0: TLS_HANDSHAKE_TIMEOUT_DEFAULT_USEC */
        bool peek;                       /* server: stealth peek mode (else ready() at once) */
        uint64_t peek_timeout_usec;      /* 0: TLS_PEEK_TIMEOUT_DEFAULT_USEC */
} TlsBridgeParams;

/* Starts a TLS handshake on net_fd (a connected socket), which the bridge owns on
 * success (on failure it stays the caller's). Callbacks: ready and failed always, closed
 * always, peek in peek mode. -EINVAL on bad parameters (no server name for a verifying
 * client, a client context for the server side or the reverse), -ENOMEM.
 *
 * The process must ignore SIGPIPE: OpenSSL's socket BIO writes with write(). */
int tls_bridge_new(sd_event *e, int net_fd, const TlsBridgeParams *p, const TlsBridgeCallbacks *cb, void *userdata,
                   TlsBridge **ret);

/* Closes at once (no close_notify), never calls back. Accepts NULL, returns NULL. Safe
 * inside the bridge's own callbacks. */
TlsBridge *tls_bridge_free(TlsBridge *b);
DEFINE_POINTER_CLEANUP_FUNC(TlsBridge, tls_bridge_free);

/* NULL until the handshake finished. */
const TlsInfo *tls_bridge_get_info(TlsBridge *b);

/* Peek mode, after peek() or tls_bridge_hold(): the stream goes to a new socketpair, with
 * the peeked bytes first; ready() follows from the loop. -EBUSY in any other state,
 * -errno when the socketpair cannot be made (the bridge stays as it was). */
int tls_bridge_hand_over(TlsBridge *b);

/* Peek mode, likewise: sends bytes (e.g. the stealth decoy; n <= TLS_BRIDGE_BUFFER_SIZE,
 * may be 0), then close_notify and TCP FIN, then reads and discards whatever the client
 * still sends until its EOF (so that unread request bytes do not turn our close into a
 * reset that destroys the response), all within TLS_BRIDGE_LINGER_USEC; closed() follows.
 * -EBUSY, -EMSGSIZE, -ENOMEM. */
int tls_bridge_send_and_close(TlsBridge *b, const void *bytes, size_t n);

/* Peek mode, likewise: connects the decrypted stream to fd (a connected socket, e.g. to
 * the StealthFallback= web backend; the bridge owns it on success) byte for byte, the
 * peeked bytes first, with half-close passed on both ways; closed() at the end. With
 * idle_timeout_usec > 0, a stretch that long without a byte either way ends it
 * (closed() with -ETIMEDOUT). */
int tls_bridge_splice(TlsBridge *b, int fd, uint64_t idle_timeout_usec);

/* Peek mode, from peek(): stop reading and stop the peek deadline until the caller calls
 * one of the three above (e.g. while it connects to the fallback backend under its own
 * deadline). -EBUSY when not peeking. */
int tls_bridge_hold(TlsBridge *b);
