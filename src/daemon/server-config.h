/* The [Server] section of alknetd.conf: the forwarding-only SSH server role. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "macro.h"

#define SERVER_LOGIN_GRACE_DEFAULT_USEC (20 * USEC_PER_SEC)
#define SERVER_MAX_SESSIONS_DEFAULT 256u
#define SERVER_MAX_PER_SOURCE_DEFAULT 16u
#define SERVER_MAX_AUTH_TRIES_DEFAULT 6u
#define SERVER_MAX_CHANNELS_DEFAULT 256u
#define SERVER_MAX_REMOTE_FORWARDS_DEFAULT 16u
#define SERVER_LISTEN_MAX 16u
/* What Ciphers= may name, and its default: libssh 0.10's AEAD and CTR ciphers, in its
 * own order of preference (no CBC, no 3DES). */
#define SERVER_CIPHERS_DEFAULT \
        "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr"
#define SERVER_POLICY_MAX 256u

typedef enum ServerTransport {
        SERVER_TRANSPORT_TCP,
        SERVER_TRANSPORT_TLS,
} ServerTransport;

typedef struct ServerListen {
        ServerTransport transport;
        char *host; /* IP literal, without brackets */
        uint16_t port;
} ServerListen;

typedef struct ServerConfig {
        ServerListen *listen;
        size_t n_listen;
        char *host_key;             /* NULL: generated once in the state directory */
        char *authorized_keys;
        char *trusted_user_ca_keys;
        char *tls_certificate;
        char *tls_key;
        bool stealth;
        char *stealth_fallback;     /* host:port of a real web backend, or NULL */
        uint64_t login_grace_usec;
        unsigned max_sessions;
        unsigned max_per_source;
        unsigned max_auth_tries;
        unsigned max_channels;
        unsigned max_remote_forwards; /* listening ports per session; 0: no remote forwards */
        bool gateway_ports;         /* Remote forwards may bind non-loopback addresses */
        char **permit_open;         /* NULL-terminated "pattern:ports"; empty list: anything */
        char **deny_open;
        char *outbound_proxy;       /* socks5:// or http:// */
        char *ciphers;              /* NULL: SERVER_CIPHERS_DEFAULT */
        bool outbound_proxy_invalid; /* set but unusable: refuse every channel, never go direct */
        bool policy_invalid;        /* a PermitOpen=/DenyOpen= entry was unusable: likewise */
        bool seen;                  /* a [Server] section was present */
} ServerConfig;

void server_config_init(ServerConfig *c);
void server_config_done(ServerConfig *c);

/* One Key=Value of [Server]. -ENOENT unknown key, -EINVAL bad value (*ret_reason set,
 * a static or snprintf'd string in reason_buf). */
int server_config_set(ServerConfig *c, const char *key, const char *value, char *reason_buf, size_t reason_size);
/* After server_config_set() refused key: whether that made the server refuse every
 * channel (an unusable OutboundProxy=, PermitOpen= or DenyOpen=) rather than ignore it. */
bool server_config_fails_closed(const ServerConfig *c, const char *key);

/* "tcp:0.0.0.0:2222", "tls:[::]:443" */
int server_listen_parse(const char *s, ServerListen *ret);

/* The forwarding policy, PermitOpen=/DenyOpen= ("HOST-GLOB:PORTS" or "CIDR:PORTS", IPv6 in
 * brackets, PORTS "*", "N" or "N-M"), for a direct-tcpip destination as the client sent
 * it. The destination is read as the resolver would read it; each reading must pass:
 *   - an IPv4 address in any inet_aton() spelling (127.1, 2130706433, 0x7f000001,
 *     0177.0.0.1) is that address; an IPv6 address with a %scope is the address without
 *     it; ::ffff:a.b.c.d is the IPv4 address a.b.c.d;
 *   - 0.0.0.0 and :: (however spelled) are read as themselves and as 127.0.0.1 and ::1,
 *     where Linux connects them;
 *   - an address meets CIDR entries, and host globs in its canonical text (127.0.0.1);
 *   - anything else is a name, with one trailing dot dropped ("db.internal." is
 *     "db.internal", as is a glob's own trailing dot), and meets host globs only; when
 *     the name without its dot spells an address, it is read as that address too.
 * A DenyOpen= entry matching any reading refuses; a non-empty PermitOpen= must match
 * every reading. Empty destinations and ones longer than a DNS name are refused. Names
 * are not resolved here: server_policy_denies_address() is for what they resolve to. */
bool server_policy_allows(char *const *permit, char *const *deny, const char *host, uint16_t port);

/* After resolution: does a DenyOpen= entry refuse connecting to this address (read as
 * above: IPv4-mapped as IPv4, 0.0.0.0 and :: also as loopback)? Unknown families are
 * refused. */
bool server_policy_denies_address(char *const *deny, const struct sockaddr *sa, uint16_t port);

/* Whether two peers count as one source for MaxConnectionsPerSource=: the same IPv4
 * address (also when IPv4-mapped), or the same IPv6 /64, which one host usually has
 * whole (RFC 4291's interface identifiers) and can pick addresses from at will. */
bool server_same_source(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
