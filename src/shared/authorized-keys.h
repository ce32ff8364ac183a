/* OpenSSH authorized_keys (and TrustedUserCAKeys) parsing with the key options that matter
 * to a forwarding-only server, plus OpenSSH-style pattern and CIDR matching. An option we
 * cannot honour refuses its key: the line is reported and skipped, never half-applied. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ssh-cert.h"

/* Longest line; longer ones are reported and skipped. A 16384-bit RSA key takes ~2.8 KiB. */
#define AUTHORIZED_KEYS_LINE_MAX (16u * 1024u)
/* Keys kept from one file; the lines after that are reported once and ignored. */
#define AUTHORIZED_KEYS_ENTRIES_MAX 4096u
/* Options on one line, each permitopen=/permitlisten= counting as one (OpenSSH allows
 * 4096 permits; a line cannot hold that many anyway). */
#define AUTHORIZED_KEYS_OPTIONS_MAX 1024u
/* Names in one principals= option. */
#define AUTHORIZED_KEYS_PRINCIPALS_MAX 256u
/* Per-line errors kept; more are only counted. */
#define AUTHORIZED_KEYS_ERRORS_MAX 64u

/* A port field's "*". */
#define AUTHORIZED_PERMIT_PORT_ANY (-1)

typedef struct AuthorizedPermit {
        char *host;             /* "*" for any host; IPv6 without brackets */
        int port;               /* 1..65535, or AUTHORIZED_PERMIT_PORT_ANY */
} AuthorizedPermit;

/* What a key (or certificate) may forward. */
typedef struct ForwardPermissions {
        bool allowed;                   /* port forwarding at all (off after "restrict") */
        AuthorizedPermit *open;         /* permitopen=: when non-empty, the only -L/-D/-W targets */
        size_t n_open;
        AuthorizedPermit *listen;       /* permitlisten=: when non-empty, the only -R binds */
        size_t n_listen;
} ForwardPermissions;

typedef struct AuthorizedKeyOptions {
        bool restricted;                /* "restrict" was given */
        bool cert_authority;            /* the key is a CA for user certificates */
        char *from;                     /* from= pattern list, NULL when absent */
        char **principals;              /* principals= (cert-authority lines), NULL-terminated; NULL when absent */
        size_t n_principals;
        uint64_t expiry_time;           /* expiry-time= as seconds since the epoch; 0 when absent */
        ForwardPermissions forward;
} AuthorizedKeyOptions;

typedef struct AuthorizedKey {
        unsigned line;                  /* 1-based line number */
        SshKeyType type;
        uint8_t *blob;                  /* the decoded key blob; its type matches the line's */
        size_t blob_size;
        char *comment;                  /* the rest of the line, NULL when there is none */
        AuthorizedKeyOptions options;
} AuthorizedKey;

typedef struct AuthorizedKeysError {
        unsigned line;
        int error;                      /* -EBADMSG, -EOPNOTSUPP, -E2BIG, -EMSGSIZE */
        char *message;                  /* why the line was skipped, without the line number */
} AuthorizedKeysError;

typedef struct AuthorizedKeys {
        AuthorizedKey *entries;
        size_t n_entries;
        AuthorizedKeysError *errors;
        size_t n_errors;
        size_t n_errors_dropped;        /* beyond AUTHORIZED_KEYS_ERRORS_MAX */
} AuthorizedKeys;

typedef enum AuthorizedKeysFlags {
        /* TrustedUserCAKeys format: "keytype base64 [comment]" lines, options refused. */
        AUTHORIZED_KEYS_NO_OPTIONS = 1u << 0,
} AuthorizedKeysFlags;

/* Parses a whole file. Bad lines never fail the parse: each is reported in ret->errors
 * with its line number and skipped. Returns 0, -ENOMEM, or -EINVAL for bad arguments.
 * text need not be NUL-terminated; a NUL byte inside a line makes that line bad. */
int authorized_keys_parse(const char *text, size_t size, AuthorizedKeysFlags flags, AuthorizedKeys **ret);
AuthorizedKeys *authorized_keys_free(AuthorizedKeys *k);

static inline void authorized_keys_freep(AuthorizedKeys **k) {
        if (*k)
                *k = authorized_keys_free(*k);
}

/* Whether the peer may use this entry according to its from= option (true without one).
 * Only the address counts: nothing is resolved, so a host-name pattern never matches, and
 * a negated one never excludes. IPv4-mapped IPv6 peers are matched as IPv4. */
/* Strict RFC 4648 base64 (padding required) of s[0..n) into a new buffer. -EBADMSG. */
int base64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_size);

bool authorized_keys_match_from(const AuthorizedKey *entry, const struct sockaddr *peer);

/* May the holder open a connection to host:port (-L, -D, -W)? False when forwarding is
 * off; with permitopen= entries the host must equal one (case-insensitively, no patterns,
 * as OpenSSH) or be "*", and the port must equal or be "*". */
bool permitopen_allows(const ForwardPermissions *p, const char *host, uint16_t port);

/* May the holder listen on host:port (-R)? False when forwarding is off; with
 * permitlisten= entries the requested bind address, as the client sent it ("localhost",
 * "127.0.0.1", "" or "*" for all addresses; NULL counts as ""), must match an entry's
 * host as an OpenSSH pattern, case-insensitively ("*", and so a bare port, matches any),
 * and the port must equal or be "*". Port 0 (server-chosen) is allowed only by "*". */
bool permitlisten_allows(const ForwardPermissions *p, const char *host, uint16_t port);

/* Deep copy and release, for handing a key's permissions to a session. */
int forward_permissions_copy(const ForwardPermissions *from, ForwardPermissions *ret);
void forward_permissions_done(ForwardPermissions *p);

/* OpenSSH match_pattern(): '*' matches any run, '?' one character; exact otherwise. */
bool ssh_pattern_match(const char *s, const char *pattern, bool fold_case);
/* OpenSSH match_pattern_list(): a comma-separated list, '!' negates. 1 when a positive
 * pattern matches and no negated one does, -1 when a negated one matches, 0 otherwise. */
int ssh_pattern_match_list(const char *s, const char *list, bool fold_case);

typedef struct SshCidr {
        int family;             /* AF_INET or AF_INET6 */
        uint8_t addr[16];
        unsigned prefix;        /* 0..32 or 0..128 */
} SshCidr;

/* "a.b.c.d", "a.b.c.d/n", "x:y::z", "x:y::z/n". Host bits set after the prefix are an
 * error, as in OpenSSH. -EINVAL when s is not such a thing. */
int ssh_cidr_parse(const char *s, SshCidr *ret);
bool ssh_cidr_match(const SshCidr *c, const struct sockaddr *sa);
/* A certificate's source-address list: comma-separated addresses or CIDRs, no patterns.
 * 1 match, 0 no match, -EINVAL when the list is malformed (which refuses the cert). */
int ssh_cidr_list_match(const char *list, const struct sockaddr *peer);
