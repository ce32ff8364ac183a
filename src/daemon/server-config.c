/* Parsing of [Server] settings. Values are checked here; files they name are read when the
 * server starts (and again on reload). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

#include "authorized-keys.h"
#include "dial.h"
#include "resolve.h"
#include "server-config.h"

void server_config_init(ServerConfig *c) {
        *c = (ServerConfig) {
                .login_grace_usec = SERVER_LOGIN_GRACE_DEFAULT_USEC,
                .max_sessions = SERVER_MAX_SESSIONS_DEFAULT,
                .max_per_source = SERVER_MAX_PER_SOURCE_DEFAULT,
                .max_auth_tries = SERVER_MAX_AUTH_TRIES_DEFAULT,
                .max_channels = SERVER_MAX_CHANNELS_DEFAULT,
                .max_remote_forwards = SERVER_MAX_REMOTE_FORWARDS_DEFAULT,
        };
}

void server_config_done(ServerConfig *c) {
        for (size_t i = 0; i < c->n_listen; i++)
                free(c->listen[i].host);
        free(c->listen);
        free(c->host_key);
        free(c->authorized_keys);
        free(c->trusted_user_ca_keys);
        free(c->tls_certificate);
        free(c->tls_key);
        free(c->stealth_fallback);
        free(c->outbound_proxy);
        free(c->ciphers);
        strv_free(c->permit_open);
        strv_free(c->deny_open);
        server_config_init(c);
}

static int parse_port(const char *s, uint16_t *ret) {
        char *end;
        unsigned long v;

        if (!*s || *s == '-' || *s == '+')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v == 0 || v > 65535)
                return -EINVAL;
        *ret = (uint16_t) v;
        return 0;
}

int server_listen_parse(const char *s, ServerListen *ret) {
        char host[INET6_ADDRSTRLEN + 2];
        const char *rest, *colon;
        unsigned char buf[16];
        ServerTransport t;
        uint16_t port;
        size_t n;

        if ((rest = startswith(s, "tcp:")))
                t = SERVER_TRANSPORT_TCP;
        else if ((rest = startswith(s, "tls:")))
                t = SERVER_TRANSPORT_TLS;
        else
                return -EINVAL;

        if (*rest == '[') {
                const char *close = strchr(rest, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                n = (size_t) (close - rest - 1);
                if (n >= sizeof host)
                        return -EINVAL;
                memcpy(host, rest + 1, n);
                host[n] = '\0';
                if (inet_pton(AF_INET6, host, buf) != 1)
                        return -EINVAL;
                colon = close + 1;
        } else {
                colon = strrchr(rest, ':');
                if (!colon)
                        return -EINVAL;
                n = (size_t) (colon - rest);
                if (n >= sizeof host)
                        return -EINVAL;
                memcpy(host, rest, n);
                host[n] = '\0';
                if (streq(host, "*"))
                        strcpy(host, "0.0.0.0");
                if (inet_pton(AF_INET, host, buf) != 1)
                        return -EINVAL;
        }
        if (parse_port(colon + 1, &port) < 0)
                return -EINVAL;
        *ret = (ServerListen) { .transport = t, .host = strdup(host), .port = port };
        return ret->host ? 0 : -ENOMEM;
}

static int set_string(char **field, const char *value) {
        char *v = NULL;

        if (!isempty(value)) {
                v = strdup(value);
                if (!v)
                        return -ENOMEM;
        }
        free(*field);
        *field = v;
        return 0;
}

static int set_path(char **field, const char *value, char *reason, size_t size) {
        if (!isempty(value) && value[0] != '/') {
                snprintf(reason, size, "not an absolute path: %s", value);
                return -EINVAL;
        }
        return set_string(field, value);
}

/* Checked here, not by libssh when the server starts: a typo must not stop the server. */
static int set_ciphers(ServerConfig *c, const char *value, char *reason, size_t size) {
        static const char known[] = SERVER_CIPHERS_DEFAULT;

        if (isempty(value))
                return set_string(&c->ciphers, NULL);
        for (const char *p = value;;) {
                size_t n = strcspn(p, ","), k;
                bool found = false;

                for (const char *q = known; *q; q += k + (q[k] == ',')) {
                        k = strcspn(q, ",");
                        found = found || (n > 0 && n == k && strncmp(p, q, n) == 0);
                }
                if (!found) {
                        snprintf(reason, size, "unknown cipher '%.*s'; known: %s", (int) MIN(n, (size_t) 64), p,
                                 known);
                        return -EINVAL;
                }
                if (p[n] == '\0')
                        break;
                p += n + 1;
        }
        return set_string(&c->ciphers, value);
}

static int set_bool(bool *field, const char *value, char *reason, size_t size) {
        if (streq(value, "yes") || streq(value, "true") || streq(value, "1") || streq(value, "on"))
                *field = true;
        else if (streq(value, "no") || streq(value, "false") || streq(value, "0") || streq(value, "off"))
                *field = false;
        else {
                snprintf(reason, size, "not a boolean: %s", value);
                return -EINVAL;
        }
        return 0;
}

static int set_unsigned(unsigned *field, const char *value, unsigned min, unsigned max, char *reason, size_t size) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(value, &end, 10);
        if (!*value || *value == '-' || errno || *end || v < min || v > max) {
                snprintf(reason, size, "not a number in %u-%u: %s", min, max, value);
                return -EINVAL;
        }
        *field = (unsigned) v;
        return 0;
}

static int append(char ***list, const char *value) {
        size_t n = 0;
        char **l;

        while (*list && (*list)[n])
                n++;
        if (n >= SERVER_POLICY_MAX)
                return -E2BIG;
        l = realloc(*list, (n + 2) * sizeof *l);
        if (!l)
                return -ENOMEM;
        l[n] = strdup(value);
        if (!l[n]) {
                *list = l;
                l[n] = NULL;
                return -ENOMEM;
        }
        l[n + 1] = NULL;
        *list = l;
        return 0;
}

static bool policy_entry_valid(const char *entry);

bool server_config_fails_closed(const ServerConfig *c, const char *key) {
        if (streq(key, "OutboundProxy"))
                return c->outbound_proxy_invalid;
        if (streq(key, "PermitOpen") || streq(key, "DenyOpen"))
                return c->policy_invalid;
        return false;
}

int server_config_set(ServerConfig *c, const char *key, const char *value, char *reason, size_t size) {
        c->seen = true;

        if (streq(key, "Listen")) {
                ServerListen l, *a;

                if (isempty(value)) {
                        for (size_t i = 0; i < c->n_listen; i++)
                                free(c->listen[i].host);
                        c->n_listen = 0;
                        return 0;
                }
                if (c->n_listen >= SERVER_LISTEN_MAX) {
                        snprintf(reason, size, "more than %u listeners", SERVER_LISTEN_MAX);
                        return -E2BIG;
                }
                if (server_listen_parse(value, &l) < 0) {
                        snprintf(reason, size, "not tcp:ADDRESS:PORT or tls:ADDRESS:PORT: %s", value);
                        return -EINVAL;
                }
                a = realloc(c->listen, (c->n_listen + 1) * sizeof *a);
                if (!a) {
                        free(l.host);
                        return -ENOMEM;
                }
                c->listen = a;
                a[c->n_listen++] = l;
                return 0;
        }
        if (streq(key, "HostKey"))
                return set_path(&c->host_key, value, reason, size);
        if (streq(key, "AuthorizedKeys"))
                return set_path(&c->authorized_keys, value, reason, size);
        if (streq(key, "TrustedUserCAKeys"))
                return set_path(&c->trusted_user_ca_keys, value, reason, size);
        if (streq(key, "TLSCertificate"))
                return set_path(&c->tls_certificate, value, reason, size);
        if (streq(key, "TLSKey"))
                return set_path(&c->tls_key, value, reason, size);
        if (streq(key, "Stealth"))
                return set_bool(&c->stealth, value, reason, size);
        if (streq(key, "GatewayPorts"))
                return set_bool(&c->gateway_ports, value, reason, size);
        if (streq(key, "StealthFallback")) {
                ServerListen l;
                char spec[300];

                if (isempty(value))
                        return set_string(&c->stealth_fallback, NULL);
                snprintf(spec, sizeof spec, "tcp:%s", value);
                if (server_listen_parse(spec, &l) < 0) {
                        snprintf(reason, size, "not ADDRESS:PORT: %s", value);
                        return -EINVAL;
                }
                free(l.host);
                return set_string(&c->stealth_fallback, value);
        }
        if (streq(key, "OutboundProxy")) {
                /* The dialer's own parser: a URL it refuses would refuse every channel. */
                DialProxyType type;
                _cleanup_(freep) char *host = NULL;
                uint16_t port;

                /* Fails closed: a proxy that was asked for (for privacy, say) but cannot be
                 * used must not turn into direct connections. */
                c->outbound_proxy_invalid = !isempty(value) && dial_proxy_parse(value, &type, &host, &port) < 0;
                if (c->outbound_proxy_invalid) {
                        free(c->outbound_proxy);
                        c->outbound_proxy = NULL;
                        snprintf(reason, size,
                                 "not socks5://HOST:PORT or http://HOST:PORT: %s; every channel is refused, none goes direct",
                                 value);
                        return -EINVAL;
                }
                return set_string(&c->outbound_proxy, value);
        }
        if (streq(key, "Ciphers"))
                return set_ciphers(c, value, reason, size);
        if (streq(key, "LoginGraceTime")) {
                unsigned v;
                int r = set_unsigned(&v, value, 1, 600, reason, size);
                if (r >= 0)
                        c->login_grace_usec = (uint64_t) v * USEC_PER_SEC;
                return r;
        }
        if (streq(key, "MaxSessions"))
                return set_unsigned(&c->max_sessions, value, 1, 65536, reason, size);
        if (streq(key, "MaxConnectionsPerSource"))
                return set_unsigned(&c->max_per_source, value, 1, 65536, reason, size);
        if (streq(key, "MaxAuthTries"))
                return set_unsigned(&c->max_auth_tries, value, 1, 100, reason, size);
        if (streq(key, "MaxChannelsPerSession"))
                return set_unsigned(&c->max_channels, value, 1, 65536, reason, size);
        if (streq(key, "MaxRemoteForwardsPerSession"))
                return set_unsigned(&c->max_remote_forwards, value, 0, 1024, reason, size);
        if (streq(key, "PermitOpen") || streq(key, "DenyOpen")) {
                char ***l = streq(key, "PermitOpen") ? &c->permit_open : &c->deny_open;
                if (isempty(value)) {
                        *l = strv_free(*l);
                        return 0;
                }
                /* Fails closed: without a DenyOpen= entry its destinations would be open,
                 * without the only PermitOpen= entry every destination would. */
                if (!policy_entry_valid(value)) {
                        c->policy_invalid = true;
                        snprintf(reason, size,
                                 "not HOST-GLOB:PORTS, CIDR:PORTS or [IPV6-CIDR]:PORTS with PORTS *, N or N-M: %s; "
                                 "every channel is refused, none goes direct",
                                 value);
                        return -EINVAL;
                }
                /* Past the cap likewise: a dropped DenyOpen= entry would open its
                 * destinations. */
                int r = append(l, value);
                if (r == -E2BIG) {
                        c->policy_invalid = true;
                        snprintf(reason, size,
                                 "more than %u %s= entries; every channel is refused, none goes direct",
                                 SERVER_POLICY_MAX, key);
                }
                return r;
        }
        snprintf(reason, size, "unknown key");
        return -ENOENT;
}

/* ---- PermitOpen= / DenyOpen= ---- */

/* One way the resolver may take a destination. An address (AF_INET, AF_INET6) meets CIDR
 * entries, and host patterns in its canonical text; a name (AF_UNSPEC) meets host patterns
 * only. */
typedef struct PolicyReading {
        int family;
        uint8_t addr[16];
        char text[RESOLVE_HOST_MAX + 2];
} PolicyReading;

/* A name, the address it spells after its trailing dot is dropped, and the loopback
 * address that address stands for when it is the unspecified one, or the IPv4 address an
 * IPv4-compatible IPv6 one stands for (never both). */
#define POLICY_READINGS_MAX 3u

static int digit_value(char c, unsigned base) {
        int v;

        if (c >= '0' && c <= '9')
                v = c - '0';
        else if (c >= 'a' && c <= 'f')
                v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
                v = c - 'A' + 10;
        else
                return -1;
        return (unsigned) v < base ? v : -1;
}

/* IPv4 the way getaddrinfo() reads it (glibc's inet_aton() without the junk it allows after
 * a space): one to four parts, each decimal, octal with a leading 0 or hex with 0x, the last
 * one filling the remaining bytes: 127.1, 2130706433, 0x7f000001, 0177.0.0.1, 0. */
static bool ipv4_parse_aton(const char *s, uint8_t ret[4]) {
        static const uint32_t max[4] = { 0xffffffffu, 0xffffffu, 0xffffu, 0xffu };
        uint32_t parts[3], a;
        uint64_t v;
        size_t n = 0;

        for (;;) {
                unsigned base = 10;
                int d;

                if (*s < '0' || *s > '9')
                        return false;
                if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && digit_value(s[2], 16) >= 0) {
                        base = 16;
                        s += 2;
                } else if (s[0] == '0')
                        base = 8;
                for (v = 0; (d = digit_value(*s, base)) >= 0; s++) {
                        v = v * base + (unsigned) d;
                        if (v > 0xffffffffu)
                                return false;
                }
                if (*s != '.')
                        break;
                if (n >= ELEMENTSOF(parts) || v > 0xff)
                        return false;
                parts[n++] = (uint32_t) v;
                s++;
        }
        if (*s || v > max[n])
                return false;
        a = (uint32_t) v;
        for (size_t i = 0; i < n; i++)
                a |= parts[i] << (24 - 8 * i);
        ret[0] = (uint8_t) (a >> 24);
        ret[1] = (uint8_t) (a >> 16);
        ret[2] = (uint8_t) (a >> 8);
        ret[3] = (uint8_t) a;
        return true;
}

/* An address as the dialer would connect to it: IPv4 in any inet_aton() spelling, IPv6
 * with its %scope ignored, IPv4-mapped IPv6 as the IPv4 address. */
static bool address_parse(const char *s, int *ret_family, uint8_t ret_addr[16]) {
        char buf[INET6_ADDRSTRLEN];
        struct in6_addr in6;
        size_t n = strcspn(s, "%");

        if (ipv4_parse_aton(s, ret_addr)) {
                *ret_family = AF_INET;
                return true;
        }
        if (n >= sizeof buf)
                return false;
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (inet_pton(AF_INET6, buf, &in6) != 1)
                return false;
        if (IN6_IS_ADDR_V4MAPPED(&in6)) {
                *ret_family = AF_INET;
                memcpy(ret_addr, in6.s6_addr + 12, 4);
        } else {
                *ret_family = AF_INET6;
                memcpy(ret_addr, in6.s6_addr, 16);
        }
        return true;
}

static void add_address(PolicyReading *r, size_t *n, int family, const void *addr) {
        static const uint8_t zero[16] = {};
        static const uint8_t loopback4[16] = { 127, 0, 0, 1 };
        static const uint8_t loopback6[16] = { [15] = 1 };
        size_t size = family == AF_INET ? 4 : 16;

        r[*n] = (PolicyReading) { .family = family };
        memcpy(r[*n].addr, addr, size);
        (void) inet_ntop(family, addr, r[*n].text, sizeof r[*n].text);
        (*n)++;
        /* Linux connects 0.0.0.0 to 127.0.0.1 and :: to ::1. */
        if (memcmp(addr, zero, size) == 0)
                add_address(r, n, family, family == AF_INET ? loopback4 : loopback6);
        /* An IPv4-compatible ::a.b.c.d (deprecated) can reach a.b.c.d through a sit tunnel:
         * it is that IPv4 address too. */
        else if (family == AF_INET6) {
                struct in6_addr a; /* aligned for the macro */

                memcpy(&a, addr, sizeof a);
                if (IN6_IS_ADDR_V4COMPAT(&a))
                        add_address(r, n, AF_INET, a.s6_addr + 12);
        }
}

/* The readings of a destination as the client sent it; 0 when it cannot be one (empty,
 * or longer than any name the resolver takes). */
static size_t destination_readings(const char *host, PolicyReading r[static POLICY_READINGS_MAX]) {
        uint8_t addr[16];
        size_t n = 0, len = strlen(host);
        int family;

        if (len == 0 || len >= sizeof r[0].text)
                return 0;
        if (address_parse(host, &family, addr)) {
                add_address(r, &n, family, addr);
                return n;
        }
        /* A name; "db.internal." is "db.internal". If what is left spells an address, some
         * resolver may take it as one: DenyOpen= sees that too, PermitOpen= then needs both. */
        r[0] = (PolicyReading) { .family = AF_UNSPEC };
        memcpy(r[0].text, host, len + 1);
        if (len > 1 && host[len - 1] == '.')
                r[0].text[len - 1] = '\0';
        n = 1;
        if (address_parse(r[0].text, &family, addr))
                add_address(r, &n, family, addr);
        return n;
}

/* ::ffff:a.b.c.d/96+n is a.b.c.d/n: mapped destinations are read as IPv4. */
static void cidr_unmap(SshCidr *c) {
        static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

        if (c->family != AF_INET6 || c->prefix < 96 || memcmp(c->addr, mapped, sizeof mapped) != 0)
                return;
        c->family = AF_INET;
        memmove(c->addr, c->addr + 12, 4);
        memset(c->addr + 4, 0, 12);
        c->prefix -= 96;
}

/* One PermitOpen=/DenyOpen= entry: "HOST-GLOB:PORTS", "CIDR:PORTS" or "[IPv6 CIDR]:PORTS",
 * PORTS "*", "N" or "N-M" (1..65535). */
typedef struct PolicyEntry {
        char pattern[RESOLVE_HOST_MAX + 2]; /* a glob, without one trailing dot */
        bool is_cidr;
        SshCidr cidr; /* IPv4-mapped IPv6 ranges as IPv4 */
        unsigned long lo, hi;
} PolicyEntry;

static int parse_port_number(const char *s, char **end, unsigned long *ret) {
        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        *ret = strtoul(s, end, 10);
        return errno || *ret < 1 || *ret > 65535 ? -EINVAL : 0;
}

/* Strict: every entry the daemon keeps parses, so none can silently match nothing. */
static int policy_entry_parse(const char *entry, PolicyEntry *ret) {
        const char *ports, *colon;
        bool bracketed = entry[0] == '[';
        char *end;
        size_t n;

        *ret = (PolicyEntry) {};
        if (bracketed) {
                /* "[v6]:ports" or "[v6]/prefix:ports" */
                const char *close = strchr(entry, ']');
                size_t extra;

                if (!close)
                        return -EINVAL;
                extra = close[1] == '/' ? strcspn(close + 1, ":") : 0;
                if (close[1 + extra] != ':')
                        return -EINVAL;
                n = (size_t) (close - entry - 1);
                if (n + extra >= sizeof ret->pattern)
                        return -EINVAL;
                memcpy(ret->pattern, entry + 1, n);
                memcpy(ret->pattern + n, close + 1, extra);
                n += extra;
                ports = close + 2 + extra;
        } else {
                colon = strrchr(entry, ':');
                if (!colon)
                        return -EINVAL;
                n = (size_t) (colon - entry);
                if (n >= sizeof ret->pattern)
                        return -EINVAL;
                memcpy(ret->pattern, entry, n);
                ports = colon + 1;
        }
        ret->pattern[n] = '\0';
        if (n == 0)
                return -EINVAL;

        if (streq(ports, "*")) {
                ret->lo = 1;
                ret->hi = 65535;
        } else {
                if (parse_port_number(ports, &end, &ret->lo) < 0)
                        return -EINVAL;
                ret->hi = ret->lo;
                if (*end == '-' && parse_port_number(end + 1, &end, &ret->hi) < 0)
                        return -EINVAL;
                if (*end || ret->hi < ret->lo)
                        return -EINVAL;
        }

        if (ssh_cidr_parse(ret->pattern, &ret->cidr) >= 0) {
                /* An IPv6 range is written in brackets, an IPv4 one is not. */
                if ((ret->cidr.family == AF_INET6) != bracketed)
                        return -EINVAL;
                cidr_unmap(&ret->cidr);
                ret->is_cidr = true;
                return 0;
        }
        /* An IPv4 address spelt another way (127.1, 2130706433): that address, as
         * destinations are read; as a glob it would match nothing. */
        if (!bracketed && ipv4_parse_aton(ret->pattern, ret->cidr.addr)) {
                ret->cidr.family = AF_INET;
                ret->cidr.prefix = 32;
                ret->is_cidr = true;
                return 0;
        }
        /* Not an address or range: a host glob, which has no brackets, slashes or colons. */
        if (bracketed || strpbrk(ret->pattern, "/:[]"))
                return -EINVAL;
        if (n > 1 && ret->pattern[n - 1] == '.')
                ret->pattern[n - 1] = '\0';
        return 0;
}

static bool policy_entry_valid(const char *entry) {
        PolicyEntry e;

        return policy_entry_parse(entry, &e) >= 0;
}

static bool policy_entry_matches(const char *entry, const PolicyReading *r, uint16_t port) {
        PolicyEntry e;

        if (policy_entry_parse(entry, &e) < 0 || port < e.lo || port > e.hi)
                return false; /* not kept at load time */
        if (e.is_cidr) {
                struct sockaddr_storage sa = {};

                if (r->family == AF_INET) {
                        sa.ss_family = AF_INET;
                        memcpy(&((struct sockaddr_in *) &sa)->sin_addr, r->addr, 4);
                } else if (r->family == AF_INET6) {
                        sa.ss_family = AF_INET6;
                        memcpy(&((struct sockaddr_in6 *) &sa)->sin6_addr, r->addr, 16);
                } else
                        return false; /* names are matched by name only */
                return ssh_cidr_match(&e.cidr, (struct sockaddr *) &sa);
        }
        return ssh_pattern_match(r->text, e.pattern, true);
}

static bool any_entry_matches(char *const *list, const PolicyReading *r, uint16_t port) {
        for (char *const *e = list; e && *e; e++)
                if (policy_entry_matches(*e, r, port))
                        return true;
        return false;
}

bool server_policy_allows(char *const *permit, char *const *deny, const char *host, uint16_t port) {
        PolicyReading r[POLICY_READINGS_MAX];
        size_t n;

        if (!host)
                return false;
        n = destination_readings(host, r);
        if (n == 0)
                return false;
        /* Deny wins when any reading matches; a permit must hold for every reading. */
        for (size_t i = 0; i < n; i++)
                if (any_entry_matches(deny, &r[i], port))
                        return false;
        if (!permit || !*permit)
                return true;
        for (size_t i = 0; i < n; i++)
                if (!any_entry_matches(permit, &r[i], port))
                        return false;
        return true;
}

bool server_policy_denies_address(char *const *deny, const struct sockaddr *sa, uint16_t port) {
        PolicyReading r[POLICY_READINGS_MAX];
        uint8_t addr[16];
        size_t n = 0;

        if (!sa)
                return true;
        if (sa->sa_family == AF_INET)
                add_address(r, &n, AF_INET, (const uint8_t *) &((const struct sockaddr_in *) sa)->sin_addr);
        else if (sa->sa_family == AF_INET6) {
                const struct in6_addr *in6 = &((const struct sockaddr_in6 *) sa)->sin6_addr;

                if (IN6_IS_ADDR_V4MAPPED(in6)) {
                        memcpy(addr, in6->s6_addr + 12, 4);
                        add_address(r, &n, AF_INET, addr);
                } else
                        add_address(r, &n, AF_INET6, in6->s6_addr);
        } else
                return true;
        for (size_t i = 0; i < n; i++)
                if (any_entry_matches(deny, &r[i], port))
                        return true;
        return false;
}

/* The bytes that identify a source: 4 of IPv4, 8 of IPv6 (its /64); 0 for others. */
static size_t source_bytes(const struct sockaddr_storage *sa, const uint8_t **ret) {
        if (sa->ss_family == AF_INET) {
                *ret = (const uint8_t *) &((const struct sockaddr_in *) sa)->sin_addr;
                return 4;
        }
        if (sa->ss_family == AF_INET6) {
                const struct in6_addr *a = &((const struct sockaddr_in6 *) sa)->sin6_addr;

                if (IN6_IS_ADDR_V4MAPPED(a)) {
                        *ret = &a->s6_addr[12];
                        return 4;
                }
                *ret = a->s6_addr;
                return 8;
        }
        *ret = NULL;
        return 0;
}

bool server_same_source(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
        const uint8_t *x, *y;
        size_t n = source_bytes(a, &x);

        return n > 0 && n == source_bytes(b, &y) && memcmp(x, y, n) == 0;
}
