/* Tunnel profiles: the typed form of a profile keyfile, its validation and its text form.
 * Pure code: no I/O, no logging. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define PROFILE_NAME_MAX 64u
#define PROFILE_SOCKS_PORT_DEFAULT 1080u
#define PROFILE_SSH_PORT_DEFAULT 22u
#define PROFILE_USER_DEFAULT "alknet"
#define PROFILE_KEEPALIVE_INTERVAL_DEFAULT_USEC (15 * USEC_PER_SEC)
#define PROFILE_KEEPALIVE_COUNT_MAX_DEFAULT 3u
/* Caps on repeatable keys, so a file or a control client cannot make us allocate without limit. */
#define PROFILE_LIST_MAX 64u
/* Longest Identity=, TLSCA=, PasswordFile= path: below PATH_MAX so that every setting,
 * normalised, still fits on one INI_LINE_MAX line and the file form round-trips. */
#define PROFILE_PATH_MAX 4000u
/* Longest unix socket path for listeners and Remote= targets: sizeof(sun_path) - 1. */
#define PROFILE_SOCKET_PATH_MAX 107u

typedef enum HostKeyPolicy {
        HOST_KEY_POLICY_STRICT,
        HOST_KEY_POLICY_ACCEPT_NEW,
        _HOST_KEY_POLICY_MAX,
        _HOST_KEY_POLICY_INVALID = -EINVAL,
} HostKeyPolicy;

typedef enum Transport {
        TRANSPORT_TCP,
        TRANSPORT_TLS,
        _TRANSPORT_MAX,
        _TRANSPORT_INVALID = -EINVAL,
} Transport;

/* A place to listen or to connect to: host and port, or a unix socket path. */
typedef struct Address {
        char *host; /* IPv4/IPv6 literal or DNS name, without brackets; NULL for a unix path */
        uint16_t port;
        char *path; /* absolute unix socket path, or NULL */
} Address;

/* One Local= or Remote= line. */
typedef struct Forward {
        Address listen;
        Address target;
} Forward;

typedef struct Profile {
        char *name;
        char *source; /* path of the file it was read from, or NULL while not yet stored */
        bool read_only; /* admin file in /etc: the control socket may not change it */

        /* [Tunnel] */
        char *server_host;
        uint16_t server_port;
        char *user; /* NULL: PROFILE_USER_DEFAULT */
        char *identity;
        char **host_keys; /* NULL-terminated, "SHA256:<43 base64 chars>"; never NULL after profile_new() */
        HostKeyPolicy host_key_policy;
        Transport transport;
        char *tls_server_name;
        bool tls_verify;
        char *tls_ca;
        char *tls_pin; /* "sha256//<base64>" */
        char *proxy; /* "socks5://host:port" or "http://host:port", normalised */
        bool auto_start;
        uint64_t keepalive_interval_usec;
        unsigned keepalive_count_max;

        /* [Socks] */
        bool socks_listen_set; /* false: default 127.0.0.1:1080; true with n_socks_listen == 0: disabled */
        Address *socks_listen;
        size_t n_socks_listen;
        char *socks_username;
        char *socks_password_file;

        /* [Forward] */
        Forward *local;
        size_t n_local;
        Forward *remote;
        size_t n_remote;
} Profile;

/* What went wrong, precisely enough to show to a user: the key ("Server", "Local", ...,
 * or "Name", or "" for a syntax error), the line for file input (0 otherwise) and why. */
typedef struct ProfileError {
        char field[32];
        unsigned line;
        char reason[256];
} ProfileError;

bool profile_name_is_valid(const char *name);

/* A profile with every default set. -EINVAL (err: field "Name") for a bad name. */
int profile_new(const char *name, Profile **ret, ProfileError *err);
Profile *profile_free(Profile *p);
DEFINE_POINTER_CLEANUP_FUNC(Profile, profile_free);
int profile_dup(const Profile *p, Profile **ret);

/* Applies one Key=Value as a file line would: list keys (HostKey, Listen, Local, Remote)
 * append, and an empty value empties the list (for Listen: disables SOCKS); other keys
 * replace, and an empty value restores the default. Keys are unique across sections, so
 * the section is not needed here. -ENOENT for an unknown key, -EINVAL for a bad value,
 * -E2BIG when a list would exceed PROFILE_LIST_MAX; err names the key and the reason. */
int profile_set(Profile *p, const char *key, const char *value, ProfileError *err);

/* Returns the key's default (list keys: emptied, Listen: back to the default). */
int profile_reset(Profile *p, const char *key, ProfileError *err);

/* Parses a whole keyfile (sections [Tunnel], [Socks], [Forward]); a key in the wrong
 * section or an unknown section is an error. Runs profile_validate() at the end.
 * -EBADMSG for a syntax error, -ENOENT unknown key/section, -EINVAL bad value; err->line set. */
int profile_parse(const char *name, const char *text, size_t size, Profile **ret, ProfileError *err);

/* Whole-profile checks: Server= present, TLS keys only with Transport=tls, SOCKS auth
 * needs both Username= and PasswordFile=, no listen address used twice within the profile. */
int profile_validate(const Profile *p, ProfileError *err);

/* True when a and b hold the same name and settings; source and read_only are ignored, and
 * a never-set Listen= equals an explicit Listen=127.0.0.1:1080. */
bool profile_equal(const Profile *a, const Profile *b);

/* The SOCKS listen addresses in effect: the configured ones, the default 127.0.0.1:1080
 * when Listen= was never set, none when SOCKS is disabled. Returns the count; *ret points
 * into p or to static storage. */
size_t profile_socks_listen(const Profile *p, const Address **ret);

/* Returns -EADDRINUSE when a and b would listen on the same local address (SOCKS and Local=
 * listeners; equal unix paths; same port with equal or wildcard host), naming b's field. */
int profile_conflicts(const Profile *a, const Profile *b, ProfileError *err);

/* The keyfile text; profile_parse() of it yields an equal profile. Only non-default
 * values are written. */
int profile_format(const Profile *p, char **ret_text);

/* Text forms used by the control interface and the CLI ("127.0.0.1:1080", "[::1]:22",
 * "/run/x.sock", "127.0.0.1:5432:db.internal:5432"). */
int address_format(const Address *a, char **ret);
int forward_format(const Forward *f, char **ret);

const char *host_key_policy_to_string(HostKeyPolicy p) _pure_;
HostKeyPolicy host_key_policy_from_string(const char *s) _pure_;
const char *transport_to_string(Transport t) _pure_;
Transport transport_from_string(const char *s) _pure_;

/* The key names in file order, each with its section, for help texts and --json. */
typedef struct ProfileKey {
        const char *section;
        const char *key;
        bool list;
} ProfileKey;
const ProfileKey *profile_keys(size_t *ret_n);
const ProfileKey *profile_key_lookup(const char *key) _pure_;
