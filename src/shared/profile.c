/* Tunnel profiles: parsing and checking every setting, whole-profile validation, conflict
 * checks between profiles, and the keyfile text form. Pure code: no I/O, no logging. */
#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "ini.h"
#include "profile.h"

typedef enum KeyId {
        KEY_SERVER,
        KEY_USER,
        KEY_IDENTITY,
        KEY_HOST_KEY,
        KEY_HOST_KEY_POLICY,
        KEY_TRANSPORT,
        KEY_TLS_SERVER_NAME,
        KEY_TLS_VERIFY,
        KEY_TLS_CA,
        KEY_TLS_PIN,
        KEY_PROXY,
        KEY_AUTO_START,
        KEY_KEEPALIVE_INTERVAL,
        KEY_KEEPALIVE_COUNT_MAX,
        KEY_LISTEN,
        KEY_USERNAME,
        KEY_PASSWORD_FILE,
        KEY_LOCAL,
        KEY_REMOTE,
        _KEY_MAX,
} KeyId;

static const ProfileKey profile_key_table[_KEY_MAX] = {
        [KEY_SERVER] = { "Tunnel", "Server", false },
        [KEY_USER] = { "Tunnel", "User", false },
        [KEY_IDENTITY] = { "Tunnel", "Identity", false },
        [KEY_HOST_KEY] = { "Tunnel", "HostKey", true },
        [KEY_HOST_KEY_POLICY] = { "Tunnel", "HostKeyPolicy", false },
        [KEY_TRANSPORT] = { "Tunnel", "Transport", false },
        [KEY_TLS_SERVER_NAME] = { "Tunnel", "TLSServerName", false },
        [KEY_TLS_VERIFY] = { "Tunnel", "TLSVerify", false },
        [KEY_TLS_CA] = { "Tunnel", "TLSCA", false },
        [KEY_TLS_PIN] = { "Tunnel", "TLSPin", false },
        [KEY_PROXY] = { "Tunnel", "Proxy", false },
        [KEY_AUTO_START] = { "Tunnel", "AutoStart", false },
        [KEY_KEEPALIVE_INTERVAL] = { "Tunnel", "KeepaliveInterval", false },
        [KEY_KEEPALIVE_COUNT_MAX] = { "Tunnel", "KeepaliveCountMax", false },
        [KEY_LISTEN] = { "Socks", "Listen", true },
        [KEY_USERNAME] = { "Socks", "Username", false },
        [KEY_PASSWORD_FILE] = { "Socks", "PasswordFile", false },
        [KEY_LOCAL] = { "Forward", "Local", true },
        [KEY_REMOTE] = { "Forward", "Remote", true },
};

static const char *const sections[] = { "Tunnel", "Socks", "Forward" };

static const char *const host_key_policy_table[_HOST_KEY_POLICY_MAX] = {
        [HOST_KEY_POLICY_STRICT] = "strict",
        [HOST_KEY_POLICY_ACCEPT_NEW] = "accept-new",
};

static const char *const transport_table[_TRANSPORT_MAX] = {
        [TRANSPORT_TCP] = "tcp",
        [TRANSPORT_TLS] = "tls",
};

#define KEEPALIVE_INTERVAL_MIN_USEC USEC_PER_SEC
#define KEEPALIVE_INTERVAL_MAX_USEC (3600 * USEC_PER_SEC)
#define KEEPALIVE_COUNT_MAX_MAX 100u
/* RFC 1929 carries the user name in one length byte. */
#define SOCKS_USERNAME_MAX 255u
#define USER_MAX 32u
#define DNS_NAME_MAX 253u
#define DNS_LABEL_MAX 63u
#define PROXY_SOCKS5_PORT_DEFAULT 1080u
#define PROXY_HTTP_PORT_DEFAULT 8080u

const char *host_key_policy_to_string(HostKeyPolicy p) {
        return p >= 0 && p < _HOST_KEY_POLICY_MAX ? host_key_policy_table[p] : NULL;
}

HostKeyPolicy host_key_policy_from_string(const char *s) {
        for (int i = 0; s && i < _HOST_KEY_POLICY_MAX; i++)
                if (streq(s, host_key_policy_table[i]))
                        return i;
        return _HOST_KEY_POLICY_INVALID;
}

const char *transport_to_string(Transport t) {
        return t >= 0 && t < _TRANSPORT_MAX ? transport_table[t] : NULL;
}

Transport transport_from_string(const char *s) {
        for (int i = 0; s && i < _TRANSPORT_MAX; i++)
                if (streq(s, transport_table[i]))
                        return i;
        return _TRANSPORT_INVALID;
}

const ProfileKey *profile_keys(size_t *ret_n) {
        if (ret_n)
                *ret_n = _KEY_MAX;
        return profile_key_table;
}

const ProfileKey *profile_key_lookup(const char *key) {
        for (size_t i = 0; key && i < _KEY_MAX; i++)
                if (streq(key, profile_key_table[i].key))
                        return &profile_key_table[i];
        return NULL;
}

static void *mfree(void *p) {
        free(p);
        return NULL;
}

static const char *key_name(KeyId k) {
        return profile_key_table[k].key;
}

/* ---------------------------------------------------------------------------------------- */
/* Errors */

/* Reasons end up in logs and in JSON replies: no control characters, no invalid UTF-8. */
static void sanitize(char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        *s = '?';
}

_printf_(4, 5) static int err_setf(ProfileError *err, int r, const char *field, const char *fmt, ...) {
        va_list ap;

        if (!err)
                return r;
        (void) snprintf(err->field, sizeof err->field, "%s", field);
        sanitize(err->field);
        err->line = 0;
        va_start(ap, fmt);
        (void) vsnprintf(err->reason, sizeof err->reason, fmt, ap);
        va_end(ap);
        sanitize(err->reason);
        return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Lexical checks */

static bool is_alnum(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_base64(char c) {
        return is_alnum(c) || c == '+' || c == '/';
}

bool profile_name_is_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n == 0 || n > PROFILE_NAME_MAX || streq(name, ".") || streq(name, ".."))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(name[i]) && !strchr("_.-", name[i]))
                        return false;
        return true;
}

/* Host names as resolvers take them: labels of letters, digits, '-' (not at either end)
 * and '_' (real hosts use it), an optional trailing dot. A last label of only digits would
 * be a mistyped IPv4 address ("10.0.0.256"), not a name. */
static bool dns_name_is_valid(const char *s, size_t n) {
        size_t start = 0;
        bool all_digits = true;

        if (n > 0 && s[n - 1] == '.')
                n--;
        if (n == 0 || n > DNS_NAME_MAX)
                return false;

        for (size_t i = 0; i <= n; i++) {
                if (i == n || s[i] == '.') {
                        size_t len = i - start;

                        if (len == 0 || len > DNS_LABEL_MAX || s[start] == '-' || s[i - 1] == '-')
                                return false;
                        if (i < n)
                                all_digits = true;
                        start = i + 1;
                        continue;
                }
                if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_')
                        return false;
                if (!is_digit(s[i]))
                        all_digits = false;
        }
        return !all_digits;
}

/* Parses an IP literal of family af from s[0..n); ret_addr may be NULL. */
static bool ip_parse(int af, const char *s, size_t n, void *ret_addr) {
        char buf[INET6_ADDRSTRLEN + 1];
        unsigned char addr[sizeof(struct in6_addr)];

        if (n >= sizeof buf)
                return false;
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (inet_pton(af, buf, addr) != 1)
                return false;
        if (ret_addr)
                memcpy(ret_addr, addr, af == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr));
        return true;
}

static bool is_ipv4(const char *s, size_t n) {
        return ip_parse(AF_INET, s, n, NULL);
}

static bool is_ipv6(const char *s, size_t n) {
        return ip_parse(AF_INET6, s, n, NULL);
}

/* Decimal digits only. -EINVAL: not a number; -ERANGE: above max. */
static int parse_uint(const char *s, size_t n, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (n == 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!is_digit(s[i]))
                        return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                uint64_t d = (uint64_t) (s[i] - '0');

                if (d > max || v > (max - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

/* -EINVAL: not a number; -ERANGE: 0 or above 65535. */
static int parse_port(const char *s, size_t n, uint16_t *ret) {
        uint64_t v;
        int r;

        r = parse_uint(s, n, UINT16_MAX, &v);
        if (r < 0)
                return r;
        if (v == 0)
                return -ERANGE;
        *ret = (uint16_t) v;
        return 0;
}

static int parse_boolean(const char *s) {
        static const char *const yes[] = { "yes", "true", "1", "on" };
        static const char *const no[] = { "no", "false", "0", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

typedef enum PathProblem {
        PATH_OK,
        PATH_NOT_ABSOLUTE,
        PATH_NOT_NORMALIZED,
        PATH_TRAILING_SLASH,
        PATH_TOO_LONG,
} PathProblem;

/* Absolute, without "//", "." or ".." components or a trailing '/', at most max bytes. */
static PathProblem path_check(const char *s, size_t n, size_t max) {
        if (n == 0 || s[0] != '/')
                return PATH_NOT_ABSOLUTE;
        if (n > max)
                return PATH_TOO_LONG;
        if (s[n - 1] == '/')
                return PATH_TRAILING_SLASH;
        for (size_t i = 0; i < n; i++) {
                size_t len;

                if (s[i] != '/')
                        continue;
                len = strcspn(s + i + 1, "/");
                len = MIN(len, n - i - 1);
                if (len == 0 || (len == 1 && s[i + 1] == '.') || (len == 2 && s[i + 1] == '.' && s[i + 2] == '.'))
                        return PATH_NOT_NORMALIZED;
        }
        return PATH_OK;
}

static int path_error(ProfileError *err, KeyId k, PathProblem pp, const char *what, size_t max, const char *value) {
        /* value is NULL where the path must not be quoted (forward targets). */
        const char *sep = value ? ": " : "";

        value = strempty(value);
        switch (pp) {
        case PATH_NOT_ABSOLUTE:
                return err_setf(err, -EINVAL, key_name(k), "%s is not absolute%s%s", what, sep, value);
        case PATH_TOO_LONG:
                return err_setf(err, -EINVAL, key_name(k), "%s is too long (max %zu bytes)", what, max);
        case PATH_TRAILING_SLASH:
                return err_setf(err, -EINVAL, key_name(k), "%s must not end in '/'%s%s", what, sep, value);
        case PATH_NOT_NORMALIZED:
        default:
                return err_setf(err, -EINVAL, key_name(k),
                                "%s is not normalized (no \"//\", \".\" or \"..\")%s%s", what, sep, value);
        }
}

/* ---------------------------------------------------------------------------------------- */
/* Hosts, ports, addresses */

typedef struct Field {
        const char *s;
        size_t n;
} Field;

/* Splits s at ':' outside of brackets into at most max fields. A field starting with '/'
 * after the first one is a socket path and runs to the end, since a path may contain ':'.
 * Brackets hold IPv6 literals only, so a missing ']' cannot pull a forward's target into
 * the bind field (which may be quoted in a reason).
 * Returns the count, or -EINVAL for a stray bracket or too many fields. */
static int split_fields(const char *s, Field *f, size_t max) {
        size_t n = 0;

        for (;;) {
                const char *end;

                if (n >= max)
                        return -EINVAL;
                f[n].s = s;
                if (*s == '[') {
                        size_t len = strspn(s + 1, "0123456789abcdefABCDEF:.");

                        end = s + 1 + len;
                        if (*end != ']' || (end[1] != ':' && end[1] != '\0'))
                                return -EINVAL;
                        end++;
                } else if (*s == '/' && n > 0)
                        end = s + strlen(s);
                else {
                        end = s + strcspn(s, ":");
                        if (memchr(s, '[', end - s) || memchr(s, ']', end - s))
                                return -EINVAL;
                }
                f[n].n = (size_t) (end - s);
                n++;
                if (*end == '\0')
                        return (int) n;
                s = end + 1;
        }
}

enum {
        HOST_IP = 1 << 0,       /* IPv4 literal, IPv6 literal in brackets */
        HOST_DNS = 1 << 1,      /* DNS name */
        HOST_WILDCARD = 1 << 2, /* "*": 0.0.0.0 */
};

typedef enum HostProblem {
        HOST_OK,
        HOST_BAD_IPV6,
        HOST_BAD_NAME,
        HOST_NOT_IP,
        HOST_BAD_IP,
} HostProblem;

static const char *const host_problem_public[] = {
        [HOST_BAD_IPV6] = "not a valid IPv6 address",
        [HOST_BAD_NAME] = "not a valid host name",
        [HOST_NOT_IP] = "must be an IP address or '*', not a host name",
        [HOST_BAD_IP] = "not a valid IP address",
};

/* For forward targets, which are never quoted. */
static const char *const host_problem_private[] = {
        [HOST_BAD_IPV6] = "target host is not a valid IPv6 address",
        [HOST_BAD_NAME] = "target host is not a valid host name",
        [HOST_NOT_IP] = "target host must be an IP address",
        [HOST_BAD_IP] = "target host is not a valid IP address",
};

/* Parses one host field as `kinds` allows; the result has no brackets. */
static HostProblem parse_host(const char *s, size_t n, unsigned kinds, char **ret) {
        if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
                if (!(kinds & HOST_IP) || !is_ipv6(s + 1, n - 2))
                        return HOST_BAD_IPV6;
                s++;
                n -= 2;
        } else if ((kinds & HOST_WILDCARD) && n == 1 && s[0] == '*') {
                s = "0.0.0.0";
                n = strlen(s);
        } else if ((kinds & HOST_IP) && is_ipv4(s, n)) {
                /* accepted as is */
        } else if (dns_name_is_valid(s, n)) {
                if (!(kinds & HOST_DNS))
                        return HOST_NOT_IP;
        } else
                return (kinds & HOST_DNS) ? HOST_BAD_NAME : HOST_BAD_IP;

        *ret = strndup(s, n);
        return HOST_OK;
}

static void address_done(Address *a) {
        a->host = mfree(a->host);
        a->path = mfree(a->path);
        a->port = 0;
}

static void forward_done(Forward *f) {
        address_done(&f->listen);
        address_done(&f->target);
}

static int address_copy(const Address *a, Address *ret) {
        Address c = { .port = a->port };

        if (a->host && !(c.host = strdup(a->host)))
                return -ENOMEM;
        if (a->path && !(c.path = strdup(a->path))) {
                free(c.host);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

static bool address_equal(const Address *a, const Address *b) {
        return streq_ptr(a->host, b->host) && streq_ptr(a->path, b->path) && a->port == b->port;
}

static bool host_is_ipv6(const char *host) {
        return host && strchr(host, ':');
}

int address_format(const Address *a, char **ret) {
        char *s;

        assert(a);
        assert(ret);

        if (a->path)
                s = strdup(a->path);
        else if (!a->host)
                return -EINVAL;
        else if (asprintf(&s, host_is_ipv6(a->host) ? "[%s]:%u" : "%s:%u", a->host, a->port) < 0)
                s = NULL;
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int forward_format(const Forward *f, char **ret) {
        _cleanup_(freep) char *l = NULL, *t = NULL;
        char *s;
        int r;

        assert(f);
        assert(ret);

        r = address_format(&f->listen, &l);
        if (r < 0)
                return r;
        r = address_format(&f->target, &t);
        if (r < 0)
                return r;
        if (asprintf(&s, "%s:%s", l, t) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int host_problem_error(ProfileError *err, KeyId k, HostProblem hp, const char *s, size_t n) {
        return err_setf(err, -EINVAL, key_name(k), "%s: %.*s", host_problem_public[hp], (int) n, s);
}

static int port_error(ProfileError *err, KeyId k, int r, const char *s, size_t n) {
        if (r == -ERANGE)
                return err_setf(err, -EINVAL, key_name(k), "port out of range (1-65535): %.*s", (int) n, s);
        if (n == 0)
                return err_setf(err, -EINVAL, key_name(k), "missing port");
        return err_setf(err, -EINVAL, key_name(k), "not a valid port: %.*s", (int) n, s);
}

/* "host", "host:port", "[v6]", "[v6]:port", and with allow_bare_v6 also "v6". */
static int parse_host_port(const char *value, KeyId k, unsigned kinds, uint16_t default_port, bool allow_bare_v6,
                           Address *ret, ProfileError *err) {
        Field f[2];
        char *host = NULL;
        uint16_t port = default_port;
        HostProblem hp;
        int n, r;

        if (allow_bare_v6 && value[0] != '[' && strchr(value, ':') != strrchr(value, ':')) {
                if (!is_ipv6(value, strlen(value)))
                        return err_setf(err, -EINVAL, key_name(k), "%s: %s", host_problem_public[HOST_BAD_IPV6], value);
                host = strdup(value);
        } else {
                n = split_fields(value, f, ELEMENTSOF(f));
                if (n < 0)
                        return err_setf(err, -EINVAL, key_name(k), "expected host[:port] (IPv6 in brackets): %s", value);
                if (n == 2) {
                        r = parse_port(f[1].s, f[1].n, &port);
                        if (r < 0)
                                return port_error(err, k, r, f[1].s, f[1].n);
                }
                hp = parse_host(f[0].s, f[0].n, kinds, &host);
                if (hp != HOST_OK)
                        return host_problem_error(err, k, hp, f[0].s, f[0].n);
        }
        if (!host)
                return -ENOMEM;

        *ret = (Address) { .host = host, .port = port };
        return 0;
}

/* A SOCKS listen address: "IP:port", "[v6]:port", "*:port" or an absolute socket path.
 * Never a name: we do not resolve to find out where to listen. */
static int parse_listen(const char *value, Address *ret, ProfileError *err) {
        Field f[2];
        char *host = NULL;
        uint16_t port;
        HostProblem hp;
        int n, r;

        if (value[0] == '/') {
                PathProblem pp = path_check(value, strlen(value), PROFILE_SOCKET_PATH_MAX);
                char *path;

                if (pp != PATH_OK)
                        return path_error(err, KEY_LISTEN, pp, "socket path", PROFILE_SOCKET_PATH_MAX, value);
                path = strdup(value);
                if (!path)
                        return -ENOMEM;
                *ret = (Address) { .path = path };
                return 0;
        }

        if (value[0] != '[' && strchr(value, ':') != strrchr(value, ':'))
                return err_setf(err, -EINVAL, "Listen", "IPv6 addresses must be in brackets: %s", value);
        n = split_fields(value, f, ELEMENTSOF(f));
        if (n != 2)
                return err_setf(err, -EINVAL, "Listen", "expected IP:port, [IPv6]:port, *:port or an absolute socket path: %s", value);
        r = parse_port(f[1].s, f[1].n, &port);
        if (r < 0)
                return port_error(err, KEY_LISTEN, r, f[1].s, f[1].n);
        hp = parse_host(f[0].s, f[0].n, HOST_IP | HOST_WILDCARD, &host);
        if (hp != HOST_OK)
                return host_problem_error(err, KEY_LISTEN, hp, f[0].s, f[0].n);
        if (!host)
                return -ENOMEM;
        *ret = (Address) { .host = host, .port = port };
        return 0;
}

/* Local=[bind:]port:host:hostport or /path.sock:host:hostport;
 * Remote=[bind:]port:host:hostport or [bind:]port:/path.sock.
 * The target is where connections go and must never reach a log. In a garbled line any
 * field may be the target ("db:5432:5432:" puts it in the port field), so reasons quote
 * nothing but a listen port made of digits only. */
static int parse_forward(const char *value, KeyId k, Forward *ret, ProfileError *err) {
        bool remote = k == KEY_REMOTE;
        _cleanup_(forward_done) Forward fw = {};
        Field f[4], *t;
        HostProblem hp;
        size_t nf, nlisten;
        int n, r;

        n = split_fields(value, f, ELEMENTSOF(f));
        if (n < 2)
                return err_setf(err, -EINVAL, key_name(k), remote ?
                                "expected [bind:]port:host:hostport or [bind:]port:/socket/path" :
                                "expected [bind:]port:host:hostport or /socket/path:host:hostport");
        nf = (size_t) n;

        if (f[nf - 1].s[0] == '/' && nf > 1) {
                if (!remote)
                        return err_setf(err, -EINVAL, key_name(k), "unix socket targets are only supported in Remote=");
                nlisten = nf - 1;
        } else
                nlisten = nf - 2;

        if (f[0].s[0] == '/') {
                PathProblem pp;

                if (remote)
                        return err_setf(err, -EINVAL, key_name(k), "unix socket listeners are only supported in Local=");
                if (nlisten != 1)
                        return err_setf(err, -EINVAL, key_name(k), "expected /socket/path:host:hostport");
                pp = path_check(f[0].s, f[0].n, PROFILE_SOCKET_PATH_MAX);
                if (pp != PATH_OK) {
                        return path_error(err, k, pp, "socket path", PROFILE_SOCKET_PATH_MAX, NULL);
                }
                fw.listen.path = strndup(f[0].s, f[0].n);
                if (!fw.listen.path)
                        return -ENOMEM;
        } else {
                if (nlisten != 1 && nlisten != 2)
                        return err_setf(err, -EINVAL, key_name(k), remote ?
                                        "expected [bind:]port:host:hostport or [bind:]port:/socket/path" :
                                        "expected [bind:]port:host:hostport or /socket/path:host:hostport");
                const Field *port = &f[nlisten - 1];
                uint64_t v;

                r = parse_port(port->s, port->n, &fw.listen.port);
                if (r == -ERANGE && remote && parse_uint(port->s, port->n, UINT16_MAX, &v) == 0 && v == 0)
                        return err_setf(err, -EINVAL, key_name(k),
                                        "dynamic remote ports (port 0) are not supported, give a port (1-65535)");
                if (r == -ERANGE)
                        return port_error(err, k, r, port->s, port->n);
                if (r < 0)
                        return err_setf(err, -EINVAL, key_name(k), port->n == 0 ? "missing port" : "port is not a number");
                if (nlisten == 2) {
                        hp = parse_host(f[0].s, f[0].n, remote ? HOST_IP | HOST_WILDCARD | HOST_DNS : HOST_IP | HOST_WILDCARD,
                                        &fw.listen.host);
                        if (hp == HOST_BAD_IPV6)
                                return err_setf(err, -EINVAL, key_name(k), "bind address is not a valid IPv6 address");
                        if (hp == HOST_NOT_IP)
                                return err_setf(err, -EINVAL, key_name(k),
                                                "bind address must be an IP address or '*', not a host name");
                        if (hp != HOST_OK)
                                return err_setf(err, -EINVAL, key_name(k), remote ?
                                                "bind address is not a valid IP address or host name" :
                                                "bind address is not a valid IP address");
                } else
                        fw.listen.host = strdup("127.0.0.1");
                if (!fw.listen.host)
                        return -ENOMEM;
        }

        t = &f[nlisten];
        if (t->s[0] == '/') {
                PathProblem pp = path_check(t->s, t->n, PROFILE_SOCKET_PATH_MAX);

                if (pp != PATH_OK)
                        return path_error(err, k, pp, "target socket path", PROFILE_SOCKET_PATH_MAX, NULL);
                fw.target.path = strndup(t->s, t->n);
                if (!fw.target.path)
                        return -ENOMEM;
        } else {
                r = parse_port(t[1].s, t[1].n, &fw.target.port);
                if (r == -ERANGE)
                        return err_setf(err, -EINVAL, key_name(k), "target port out of range (1-65535)");
                if (r < 0)
                        return err_setf(err, -EINVAL, key_name(k), t[1].n == 0 ? "missing target port" : "target port is not a number");
                hp = parse_host(t->s, t->n, HOST_IP | HOST_DNS, &fw.target.host);
                if (hp != HOST_OK)
                        return err_setf(err, -EINVAL, key_name(k), "%s", host_problem_private[hp]);
                if (!fw.target.host)
                        return -ENOMEM;
        }

        *ret = fw;
        fw = (Forward) {};
        return 0;
}

/* socks5://host[:port] or http://host[:port], stored with the port spelled out. */
static int parse_proxy(const char *value, char **ret, ProfileError *err) {
        static const struct {
                const char *scheme, *canonical;
                uint16_t port;
        } schemes[] = {
                { "socks5", "socks5", PROXY_SOCKS5_PORT_DEFAULT },
                /* curl's name for "the proxy resolves": what we always do anyway */
                { "socks5h", "socks5", PROXY_SOCKS5_PORT_DEFAULT },
                { "http", "http", PROXY_HTTP_PORT_DEFAULT },
        };
        _cleanup_(freep) char *authority = NULL;
        _cleanup_(address_done) Address a = {};
        const char *sep, *rest;
        size_t i, n;
        int r;

        /* Credentials never belong in a reason: refuse user info before quoting anything. */
        if (strchr(value, '@'))
                return err_setf(err, -EINVAL, "Proxy", "user info (user:password@) is not supported in proxy URLs");

        sep = strstr(value, "://");
        for (i = 0; sep && i < ELEMENTSOF(schemes); i++)
                if (strlen(schemes[i].scheme) == (size_t) (sep - value) &&
                    strncasecmp(value, schemes[i].scheme, sep - value) == 0)
                        break;
        if (!sep || i >= ELEMENTSOF(schemes))
                return err_setf(err, -EINVAL, "Proxy", "expected socks5://host[:port] or http://host[:port]: %s", value);

        rest = sep + 3;
        n = strcspn(rest, "/?#");
        if (rest[n] == '?')
                return err_setf(err, -EINVAL, "Proxy", "proxy URL must not have a query: %s", value);
        if (rest[n] == '#')
                return err_setf(err, -EINVAL, "Proxy", "proxy URL must not have a fragment: %s", value);
        /* "http://proxy:3128/" is common and means the same; anything longer is a path. */
        if (rest[n] == '/' && rest[n + 1] != '\0')
                return err_setf(err, -EINVAL, "Proxy", "proxy URL must not have a path: %s", value);
        if (n == 0)
                return err_setf(err, -EINVAL, "Proxy", "missing proxy host: %s", value);

        authority = strndup(rest, n);
        if (!authority)
                return -ENOMEM;
        r = parse_host_port(authority, KEY_PROXY, HOST_IP | HOST_DNS, schemes[i].port, false, &a, err);
        if (r < 0)
                return r;

        if (asprintf(ret, host_is_ipv6(a.host) ? "%s://[%s]:%u" : "%s://%s:%u", schemes[i].canonical, a.host, a.port) < 0)
                return -ENOMEM;
        return 0;
}

/* "15", "15s", "500ms", "2min", "1h": one number and an optional unit. */
static int parse_timespan(const char *s, uint64_t *ret) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                { "", USEC_PER_SEC },
                { "us", 1 },         { "usec", 1 },
                { "ms", USEC_PER_MSEC }, { "msec", USEC_PER_MSEC },
                { "s", USEC_PER_SEC }, { "sec", USEC_PER_SEC },
                { "second", USEC_PER_SEC }, { "seconds", USEC_PER_SEC },
                { "m", 60 * USEC_PER_SEC }, { "min", 60 * USEC_PER_SEC },
                { "minute", 60 * USEC_PER_SEC }, { "minutes", 60 * USEC_PER_SEC },
                { "h", 3600 * USEC_PER_SEC }, { "hr", 3600 * USEC_PER_SEC },
                { "hour", 3600 * USEC_PER_SEC }, { "hours", 3600 * USEC_PER_SEC },
        };
        size_t digits = strspn(s, "0123456789");
        uint64_t v;
        int r;

        r = parse_uint(s, digits, UINT64_MAX, &v);
        if (r == -ERANGE)
                return r;
        if (r < 0)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (streq(s + digits, units[i].suffix)) {
                        if (v > UINT64_MAX / units[i].usec)
                                return -ERANGE;
                        *ret = v * units[i].usec;
                        return 0;
                }
        return -EINVAL;
}

static void format_timespan(char *buf, size_t size, uint64_t usec) {
        if (usec == 0)
                (void) snprintf(buf, size, "0");
        else if (usec % (3600 * USEC_PER_SEC) == 0)
                (void) snprintf(buf, size, "%" PRIu64 "h", usec / (3600 * USEC_PER_SEC));
        else if (usec % (60 * USEC_PER_SEC) == 0)
                (void) snprintf(buf, size, "%" PRIu64 "min", usec / (60 * USEC_PER_SEC));
        else if (usec % USEC_PER_SEC == 0)
                (void) snprintf(buf, size, "%" PRIu64 "s", usec / USEC_PER_SEC);
        else if (usec % USEC_PER_MSEC == 0)
                (void) snprintf(buf, size, "%" PRIu64 "ms", usec / USEC_PER_MSEC);
        else
                (void) snprintf(buf, size, "%" PRIu64 "us", usec);
}

static bool user_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > USER_MAX || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && !strchr("._-", s[i]))
                        return false;
        return true;
}

static bool fingerprint_is_valid(const char *s) {
        const char *b = startswith(s, "SHA256:");

        if (!b || strlen(b) != 43)
                return false;
        for (size_t i = 0; i < 43; i++)
                if (!is_base64(b[i]))
                        return false;
        return true;
}

static bool pin_is_valid(const char *s) {
        const char *b = startswith(s, "sha256//");

        if (!b || strlen(b) != 44 || b[43] != '=')
                return false;
        for (size_t i = 0; i < 43; i++)
                if (!is_base64(b[i]))
                        return false;
        return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Profile objects */

static void address_list_free(Address **l, size_t *n) {
        for (size_t i = 0; i < *n; i++)
                address_done(&(*l)[i]);
        *l = mfree(*l);
        *n = 0;
}

static void forward_list_free(Forward **l, size_t *n) {
        for (size_t i = 0; i < *n; i++)
                forward_done(&(*l)[i]);
        *l = mfree(*l);
        *n = 0;
}

static int strv_clear(char ***l) {
        char **e = calloc(1, sizeof(char *));

        if (!e)
                return -ENOMEM;
        strv_free(*l);
        *l = e;
        return 0;
}

static size_t strv_length(char *const *l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

Profile *profile_free(Profile *p) {
        if (!p)
                return NULL;
        free(p->name);
        free(p->source);
        free(p->server_host);
        free(p->user);
        free(p->identity);
        strv_free(p->host_keys);
        free(p->tls_server_name);
        free(p->tls_ca);
        free(p->tls_pin);
        free(p->proxy);
        address_list_free(&p->socks_listen, &p->n_socks_listen);
        free(p->socks_username);
        free(p->socks_password_file);
        forward_list_free(&p->local, &p->n_local);
        forward_list_free(&p->remote, &p->n_remote);
        free(p);
        return NULL;
}

int profile_new(const char *name, Profile **ret, ProfileError *err) {
        _cleanup_(profile_freep) Profile *p = NULL;

        assert(ret);

        if (!profile_name_is_valid(name))
                return err_setf(err, -EINVAL, "Name", "not a valid profile name ([A-Za-z0-9_.-], 1-64 characters): %s",
                                strna(name));

        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->name = strdup(name);
        p->host_keys = calloc(1, sizeof(char *));
        if (!p->name || !p->host_keys)
                return -ENOMEM;
        p->server_port = PROFILE_SSH_PORT_DEFAULT;
        p->host_key_policy = HOST_KEY_POLICY_STRICT;
        p->transport = TRANSPORT_TCP;
        p->tls_verify = true;
        p->auto_start = false;
        p->keepalive_interval_usec = PROFILE_KEEPALIVE_INTERVAL_DEFAULT_USEC;
        p->keepalive_count_max = PROFILE_KEEPALIVE_COUNT_MAX_DEFAULT;

        *ret = TAKE_PTR(p);
        return 0;
}

static int strdup_ptr(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int forward_copy(const Forward *f, Forward *ret) {
        Forward c = {};

        if (address_copy(&f->listen, &c.listen) < 0)
                return -ENOMEM;
        if (address_copy(&f->target, &c.target) < 0) {
                address_done(&c.listen);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

int profile_dup(const Profile *p, Profile **ret) {
        _cleanup_(profile_freep) Profile *c = NULL;
        size_t n;

        assert(p);
        assert(ret);

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (Profile) {
                .server_port = p->server_port,
                .read_only = p->read_only,
                .host_key_policy = p->host_key_policy,
                .transport = p->transport,
                .tls_verify = p->tls_verify,
                .auto_start = p->auto_start,
                .keepalive_interval_usec = p->keepalive_interval_usec,
                .keepalive_count_max = p->keepalive_count_max,
                .socks_listen_set = p->socks_listen_set,
        };
        if (strdup_ptr(p->name, &c->name) < 0 || strdup_ptr(p->source, &c->source) < 0 ||
            strdup_ptr(p->server_host, &c->server_host) < 0 || strdup_ptr(p->user, &c->user) < 0 ||
            strdup_ptr(p->identity, &c->identity) < 0 || strdup_ptr(p->tls_server_name, &c->tls_server_name) < 0 ||
            strdup_ptr(p->tls_ca, &c->tls_ca) < 0 || strdup_ptr(p->tls_pin, &c->tls_pin) < 0 ||
            strdup_ptr(p->proxy, &c->proxy) < 0 || strdup_ptr(p->socks_username, &c->socks_username) < 0 ||
            strdup_ptr(p->socks_password_file, &c->socks_password_file) < 0)
                return -ENOMEM;

        n = strv_length(p->host_keys);
        c->host_keys = calloc(n + 1, sizeof(char *));
        if (!c->host_keys)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(c->host_keys[i] = strdup(p->host_keys[i])))
                        return -ENOMEM;

        if (p->n_socks_listen > 0) {
                c->socks_listen = calloc(p->n_socks_listen, sizeof(Address));
                if (!c->socks_listen)
                        return -ENOMEM;
                for (; c->n_socks_listen < p->n_socks_listen; c->n_socks_listen++)
                        if (address_copy(&p->socks_listen[c->n_socks_listen], &c->socks_listen[c->n_socks_listen]) < 0)
                                return -ENOMEM;
        }
        if (p->n_local > 0) {
                c->local = calloc(p->n_local, sizeof(Forward));
                if (!c->local)
                        return -ENOMEM;
                for (; c->n_local < p->n_local; c->n_local++)
                        if (forward_copy(&p->local[c->n_local], &c->local[c->n_local]) < 0)
                                return -ENOMEM;
        }
        if (p->n_remote > 0) {
                c->remote = calloc(p->n_remote, sizeof(Forward));
                if (!c->remote)
                        return -ENOMEM;
                for (; c->n_remote < p->n_remote; c->n_remote++)
                        if (forward_copy(&p->remote[c->n_remote], &c->remote[c->n_remote]) < 0)
                                return -ENOMEM;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

size_t profile_socks_listen(const Profile *p, const Address **ret) {
        static const Address default_listen = {
                .host = (char *) "127.0.0.1",
                .port = PROFILE_SOCKS_PORT_DEFAULT,
        };

        assert(p);
        assert(ret);

        if (!p->socks_listen_set) {
                *ret = &default_listen;
                return 1;
        }
        *ret = p->socks_listen;
        return p->n_socks_listen;
}

/* ---------------------------------------------------------------------------------------- */
/* Setting keys */

static void replace_str(char **dst, char *s) {
        free(*dst);
        *dst = s;
}

/* Every value must survive the trip through a file: the INI parser strips blanks around a
 * value and ends it at a newline. Says nothing about the value, which may be private. */
static int check_value_text(KeyId k, const char *value, ProfileError *err) {
        size_t n = strlen(value);

        for (size_t i = 0; i < n; i++)
                if ((unsigned char) value[i] < 0x20 || value[i] == 0x7f)
                        return err_setf(err, -EINVAL, key_name(k), "value contains control characters");
        if (n > 0 && (strchr(" \t", value[0]) || strchr(" \t", value[n - 1])))
                return err_setf(err, -EINVAL, key_name(k), "value has leading or trailing whitespace");
        return 0;
}

static int set_path(char **dst, KeyId k, const char *value, ProfileError *err) {
        PathProblem pp = path_check(value, strlen(value), PROFILE_PATH_MAX);
        char *s;

        if (pp != PATH_OK)
                return path_error(err, k, pp, "path", PROFILE_PATH_MAX, value);
        s = strdup(value);
        if (!s)
                return -ENOMEM;
        replace_str(dst, s);
        return 0;
}

static int list_full_error(KeyId k, ProfileError *err) {
        return err_setf(err, -E2BIG, key_name(k), "too many entries (max %u)", PROFILE_LIST_MAX);
}

static int append_address(Address **l, size_t *n, Address *a) {
        Address *m = reallocarray(*l, *n + 1, sizeof(Address));

        if (!m)
                return -ENOMEM;
        *l = m;
        m[(*n)++] = *a;
        *a = (Address) {};
        return 0;
}

static int append_forward(Forward **l, size_t *n, Forward *f) {
        Forward *m = reallocarray(*l, *n + 1, sizeof(Forward));

        if (!m)
                return -ENOMEM;
        *l = m;
        m[(*n)++] = *f;
        *f = (Forward) {};
        return 0;
}

/* Every key back to its default; for Listen "never set", which means 127.0.0.1:1080. */
static int reset_key(Profile *p, KeyId k) {
        switch (k) {
        case KEY_SERVER:
                p->server_host = mfree(p->server_host);
                p->server_port = PROFILE_SSH_PORT_DEFAULT;
                return 0;
        case KEY_USER:
                p->user = mfree(p->user);
                return 0;
        case KEY_IDENTITY:
                p->identity = mfree(p->identity);
                return 0;
        case KEY_HOST_KEY:
                return strv_clear(&p->host_keys);
        case KEY_HOST_KEY_POLICY:
                p->host_key_policy = HOST_KEY_POLICY_STRICT;
                return 0;
        case KEY_TRANSPORT:
                p->transport = TRANSPORT_TCP;
                return 0;
        case KEY_TLS_SERVER_NAME:
                p->tls_server_name = mfree(p->tls_server_name);
                return 0;
        case KEY_TLS_VERIFY:
                p->tls_verify = true;
                return 0;
        case KEY_TLS_CA:
                p->tls_ca = mfree(p->tls_ca);
                return 0;
        case KEY_TLS_PIN:
                p->tls_pin = mfree(p->tls_pin);
                return 0;
        case KEY_PROXY:
                p->proxy = mfree(p->proxy);
                return 0;
        case KEY_AUTO_START:
                p->auto_start = false;
                return 0;
        case KEY_KEEPALIVE_INTERVAL:
                p->keepalive_interval_usec = PROFILE_KEEPALIVE_INTERVAL_DEFAULT_USEC;
                return 0;
        case KEY_KEEPALIVE_COUNT_MAX:
                p->keepalive_count_max = PROFILE_KEEPALIVE_COUNT_MAX_DEFAULT;
                return 0;
        case KEY_LISTEN:
                address_list_free(&p->socks_listen, &p->n_socks_listen);
                p->socks_listen_set = false;
                return 0;
        case KEY_USERNAME:
                p->socks_username = mfree(p->socks_username);
                return 0;
        case KEY_PASSWORD_FILE:
                p->socks_password_file = mfree(p->socks_password_file);
                return 0;
        case KEY_LOCAL:
                forward_list_free(&p->local, &p->n_local);
                return 0;
        case KEY_REMOTE:
                forward_list_free(&p->remote, &p->n_remote);
                return 0;
        case _KEY_MAX:
        default:
                break;
        }
        assert(false);
        return -EINVAL;
}

static int set_key(Profile *p, KeyId k, const char *value, ProfileError *err) {
        char *s;
        int r;

        r = check_value_text(k, value, err);
        if (r < 0)
                return r;

        if (isempty(value)) {
                r = reset_key(p, k);
                if (r >= 0 && k == KEY_LISTEN)
                        p->socks_listen_set = true; /* "Listen=" disables SOCKS */
                return r;
        }

        switch (k) {
        case KEY_SERVER: {
                Address a;

                r = parse_host_port(value, k, HOST_IP | HOST_DNS, PROFILE_SSH_PORT_DEFAULT, true, &a, err);
                if (r < 0)
                        return r;
                replace_str(&p->server_host, a.host);
                p->server_port = a.port;
                return 0;
        }
        case KEY_USER:
                if (!user_is_valid(value))
                        return err_setf(err, -EINVAL, key_name(k),
                                        "not a valid user name (1-32 of [A-Za-z0-9._-], not starting with '-'): %s", value);
                /* The default is stored as NULL, so that "User=alknet" and no User= are equal. */
                if (streq(value, PROFILE_USER_DEFAULT)) {
                        p->user = mfree(p->user);
                        return 0;
                }
                if (!(s = strdup(value)))
                        return -ENOMEM;
                replace_str(&p->user, s);
                return 0;

        case KEY_IDENTITY:
                return set_path(&p->identity, k, value, err);

        case KEY_HOST_KEY: {
                size_t n = strv_length(p->host_keys);
                char **l;

                if (!fingerprint_is_valid(value))
                        return err_setf(err, -EINVAL, key_name(k),
                                        "not a SHA256 fingerprint (SHA256: and 43 base64 characters): %s", value);
                if (n >= PROFILE_LIST_MAX)
                        return list_full_error(k, err);
                if (!(s = strdup(value)))
                        return -ENOMEM;
                l = reallocarray(p->host_keys, n + 2, sizeof(char *));
                if (!l) {
                        free(s);
                        return -ENOMEM;
                }
                l[n] = s;
                l[n + 1] = NULL;
                p->host_keys = l;
                return 0;
        }
        case KEY_HOST_KEY_POLICY: {
                HostKeyPolicy v = host_key_policy_from_string(value);

                if (v < 0)
                        return err_setf(err, -EINVAL, key_name(k), "expected strict or accept-new: %s", value);
                p->host_key_policy = v;
                return 0;
        }
        case KEY_TRANSPORT: {
                Transport v = transport_from_string(value);

                if (v < 0)
                        return err_setf(err, -EINVAL, key_name(k), "expected tcp or tls: %s", value);
                p->transport = v;
                return 0;
        }
        case KEY_TLS_SERVER_NAME:
                /* SNI carries names only (RFC 6066), so no IP literals here. */
                if (!dns_name_is_valid(value, strlen(value)))
                        return err_setf(err, -EINVAL, key_name(k), "not a valid host name: %s", value);
                if (!(s = strdup(value)))
                        return -ENOMEM;
                replace_str(&p->tls_server_name, s);
                return 0;

        case KEY_TLS_VERIFY:
        case KEY_AUTO_START:
                r = parse_boolean(value);
                if (r < 0)
                        return err_setf(err, -EINVAL, key_name(k), "not a boolean (yes/no, true/false, 1/0, on/off): %s", value);
                if (k == KEY_TLS_VERIFY)
                        p->tls_verify = r;
                else
                        p->auto_start = r;
                return 0;

        case KEY_TLS_CA:
                return set_path(&p->tls_ca, k, value, err);

        case KEY_TLS_PIN:
                if (!pin_is_valid(value))
                        return err_setf(err, -EINVAL, key_name(k),
                                        "not a public key pin (sha256// and 44 base64 characters): %s", value);
                if (!(s = strdup(value)))
                        return -ENOMEM;
                replace_str(&p->tls_pin, s);
                return 0;

        case KEY_PROXY:
                r = parse_proxy(value, &s, err);
                if (r < 0)
                        return r;
                replace_str(&p->proxy, s);
                return 0;

        case KEY_KEEPALIVE_INTERVAL: {
                uint64_t usec;

                r = parse_timespan(value, &usec);
                if (r == -EINVAL)
                        return err_setf(err, -EINVAL, key_name(k), "not a time span (like 15s, 500ms, 2min, 1h): %s", value);
                if (r < 0 || (usec != 0 && (usec < KEEPALIVE_INTERVAL_MIN_USEC || usec > KEEPALIVE_INTERVAL_MAX_USEC)))
                        return err_setf(err, -EINVAL, key_name(k), "out of range (1s-1h, or 0 to disable): %s", value);
                p->keepalive_interval_usec = usec;
                return 0;
        }
        case KEY_KEEPALIVE_COUNT_MAX: {
                uint64_t v = 0;

                r = parse_uint(value, strlen(value), KEEPALIVE_COUNT_MAX_MAX, &v);
                if (r == -EINVAL)
                        return err_setf(err, -EINVAL, key_name(k), "not a number: %s", value);
                if (r < 0 || v == 0)
                        return err_setf(err, -EINVAL, key_name(k), "out of range (1-%u): %s", KEEPALIVE_COUNT_MAX_MAX, value);
                p->keepalive_count_max = (unsigned) v;
                return 0;
        }
        case KEY_LISTEN: {
                _cleanup_(address_done) Address a = {};

                if (p->n_socks_listen >= PROFILE_LIST_MAX)
                        return list_full_error(k, err);
                r = parse_listen(value, &a, err);
                if (r < 0)
                        return r;
                r = append_address(&p->socks_listen, &p->n_socks_listen, &a);
                if (r < 0)
                        return r;
                p->socks_listen_set = true;
                return 0;
        }
        case KEY_USERNAME:
                if (strlen(value) > SOCKS_USERNAME_MAX)
                        return err_setf(err, -EINVAL, key_name(k), "too long (max %u bytes)", SOCKS_USERNAME_MAX);
                if (!(s = strdup(value)))
                        return -ENOMEM;
                replace_str(&p->socks_username, s);
                return 0;

        case KEY_PASSWORD_FILE:
                return set_path(&p->socks_password_file, k, value, err);

        case KEY_LOCAL:
        case KEY_REMOTE: {
                _cleanup_(forward_done) Forward f = {};
                Forward **l = k == KEY_LOCAL ? &p->local : &p->remote;
                size_t *n = k == KEY_LOCAL ? &p->n_local : &p->n_remote;

                if (*n >= PROFILE_LIST_MAX)
                        return list_full_error(k, err);
                r = parse_forward(value, k, &f, err);
                if (r < 0)
                        return r;
                return append_forward(l, n, &f);
        }
        case _KEY_MAX:
        default:
                break;
        }
        assert(false);
        return -EINVAL;
}

static int unknown_key_error(const char *key, ProfileError *err) {
        return err_setf(err, -ENOENT, key, "unknown key");
}

int profile_set(Profile *p, const char *key, const char *value, ProfileError *err) {
        const ProfileKey *k;

        assert(p);
        assert(key);
        assert(value);

        k = profile_key_lookup(key);
        if (!k)
                return unknown_key_error(key, err);
        return set_key(p, (KeyId) (k - profile_key_table), value, err);
}

int profile_reset(Profile *p, const char *key, ProfileError *err) {
        const ProfileKey *k;

        assert(p);
        assert(key);

        k = profile_key_lookup(key);
        if (!k)
                return unknown_key_error(key, err);
        return reset_key(p, (KeyId) (k - profile_key_table));
}

/* ---------------------------------------------------------------------------------------- */
/* Validation and conflicts */

static bool host_is_wildcard(const char *h) {
        unsigned char a[sizeof(struct in6_addr)];
        static const unsigned char zero[sizeof(struct in6_addr)];

        if (!h)
                return false;
        if (inet_pton(AF_INET, h, a) == 1)
                return memcmp(a, zero, sizeof(struct in_addr)) == 0;
        if (inet_pton(AF_INET6, h, a) == 1)
                return memcmp(a, zero, sizeof(struct in6_addr)) == 0;
        return false;
}

static bool hosts_equal(const char *a, const char *b) {
        unsigned char x[sizeof(struct in6_addr)], y[sizeof(struct in6_addr)];

        if (inet_pton(AF_INET, a, x) == 1 && inet_pton(AF_INET, b, y) == 1)
                return memcmp(x, y, sizeof(struct in_addr)) == 0;
        if (inet_pton(AF_INET6, a, x) == 1 && inet_pton(AF_INET6, b, y) == 1)
                return memcmp(x, y, sizeof(struct in6_addr)) == 0;
        return strcasecmp(a, b) == 0;
}

/* Whether binding both would fail: equal socket paths, or the same port on equal hosts or
 * with a wildcard on either side (on Linux "::" also takes IPv4 unless v6only is set). */
static bool addresses_overlap(const Address *a, const Address *b) {
        if (a->path || b->path)
                return a->path && b->path && streq(a->path, b->path);
        if (!a->host || !b->host || a->port != b->port)
                return false;
        return host_is_wildcard(a->host) || host_is_wildcard(b->host) || hosts_equal(a->host, b->host);
}

typedef struct Listener {
        const Address *address;
        KeyId key;
        size_t index;
        bool is_default;
} Listener;

/* The addresses this profile binds on this host: SOCKS (default included) and Local=. */
static size_t collect_listeners(const Profile *p, Listener out[static 2 * PROFILE_LIST_MAX]) {
        const Address *socks;
        size_t n = 0, ns;

        ns = MIN(profile_socks_listen(p, &socks), (size_t) PROFILE_LIST_MAX);
        for (size_t i = 0; i < ns; i++)
                out[n++] = (Listener) { &socks[i], KEY_LISTEN, i, !p->socks_listen_set };
        for (size_t i = 0; i < MIN(p->n_local, (size_t) PROFILE_LIST_MAX); i++)
                out[n++] = (Listener) { &p->local[i].listen, KEY_LOCAL, i, false };
        return n;
}

/* by_profile: the other user is a profile of that name; else a key in this profile. */
static int address_in_use_error(ProfileError *err, int r, KeyId k, const Address *a, const char *by_profile, const char *by_key) {
        _cleanup_(freep) char *s = NULL;
        int q;

        q = address_format(a, &s);
        if (q < 0)
                return q;
        if (by_profile)
                return err_setf(err, r, key_name(k), "%s is already used by profile %s", s, by_profile);
        return err_setf(err, r, key_name(k), "%s is already used by %s in this profile", s, by_key);
}

/* As profile_validate(); on failure also says which setting is at fault (list index, or
 * SIZE_MAX for a single-valued key), so that a file parser can name the line. */
static int validate(const Profile *p, ProfileError *err, KeyId *ret_key, size_t *ret_index) {
        static const KeyId tls_keys[] = { KEY_TLS_SERVER_NAME, KEY_TLS_VERIFY, KEY_TLS_CA, KEY_TLS_PIN };
        Listener l[2 * PROFILE_LIST_MAX];
        KeyId key = _KEY_MAX;
        size_t index = SIZE_MAX, n;
        int r = 0;

        if (!profile_name_is_valid(p->name))
                return err_setf(err, -EINVAL, "Name", "not a valid profile name ([A-Za-z0-9_.-], 1-64 characters): %s",
                                strna(p->name));

        if (!p->server_host) {
                key = KEY_SERVER;
                r = err_setf(err, -EINVAL, key_name(key), "missing");
                goto fail;
        }

        if (p->transport != TRANSPORT_TLS)
                for (size_t i = 0; i < ELEMENTSOF(tls_keys); i++) {
                        bool set = (tls_keys[i] == KEY_TLS_SERVER_NAME && p->tls_server_name) ||
                                   (tls_keys[i] == KEY_TLS_VERIFY && !p->tls_verify) ||
                                   (tls_keys[i] == KEY_TLS_CA && p->tls_ca) ||
                                   (tls_keys[i] == KEY_TLS_PIN && p->tls_pin);
                        if (set) {
                                key = tls_keys[i];
                                r = err_setf(err, -EINVAL, key_name(key), "only valid with Transport=tls");
                                goto fail;
                        }
                }

        if (!p->socks_username != !p->socks_password_file) {
                /* The field names what is missing; the line (key) is where the other one is. */
                key = p->socks_username ? KEY_USERNAME : KEY_PASSWORD_FILE;
                r = err_setf(err, -EINVAL, p->socks_username ? "PasswordFile" : "Username",
                             p->socks_username ? "required when Username= is set" : "required when PasswordFile= is set");
                goto fail;
        }

        n = collect_listeners(p, l);
        for (size_t j = 1; j < n; j++)
                for (size_t i = 0; i < j; i++)
                        if (addresses_overlap(l[i].address, l[j].address)) {
                                key = l[j].key;
                                index = l[j].index;
                                r = address_in_use_error(err, -EINVAL, key, l[j].address, NULL,
                                                         l[i].is_default ? "the default Listen=" :
                                                         l[i].key == KEY_LISTEN ? "Listen=" : "Local=");
                                goto fail;
                        }

        for (size_t j = 1; j < MIN(p->n_remote, (size_t) PROFILE_LIST_MAX); j++)
                for (size_t i = 0; i < j; i++)
                        if (addresses_overlap(&p->remote[i].listen, &p->remote[j].listen)) {
                                key = KEY_REMOTE;
                                index = j;
                                r = address_in_use_error(err, -EINVAL, key, &p->remote[j].listen, NULL, "Remote=");
                                goto fail;
                        }

        return 0;

fail:
        if (r != -ENOMEM) {
                if (ret_key)
                        *ret_key = key;
                if (ret_index)
                        *ret_index = index;
        }
        return r;
}

int profile_validate(const Profile *p, ProfileError *err) {
        assert(p);
        return validate(p, err, NULL, NULL);
}

int profile_conflicts(const Profile *a, const Profile *b, ProfileError *err) {
        Listener la[2 * PROFILE_LIST_MAX], lb[2 * PROFILE_LIST_MAX];
        size_t na, nb;

        assert(a);
        assert(b);

        na = collect_listeners(a, la);
        nb = collect_listeners(b, lb);
        for (size_t j = 0; j < nb; j++)
                for (size_t i = 0; i < na; i++)
                        if (addresses_overlap(la[i].address, lb[j].address))
                                return address_in_use_error(err, -EADDRINUSE, lb[j].key, lb[j].address,
                                                            strna(a->name), NULL);
        return 0;
}

static bool strv_equal(char *const *a, char *const *b) {
        size_t n = strv_length(a);

        if (n != strv_length(b))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return true;
}

static bool forwards_equal(const Forward *a, size_t na, const Forward *b, size_t nb) {
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (!address_equal(&a[i].listen, &b[i].listen) || !address_equal(&a[i].target, &b[i].target))
                        return false;
        return true;
}

bool profile_equal(const Profile *a, const Profile *b) {
        const Address *sa, *sb;
        size_t na, nb;

        assert(a);
        assert(b);

        na = profile_socks_listen(a, &sa);
        nb = profile_socks_listen(b, &sb);
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (!address_equal(&sa[i], &sb[i]))
                        return false;

        return streq_ptr(a->name, b->name) &&
               streq_ptr(a->server_host, b->server_host) &&
               a->server_port == b->server_port &&
               streq(a->user ?: PROFILE_USER_DEFAULT, b->user ?: PROFILE_USER_DEFAULT) &&
               streq_ptr(a->identity, b->identity) &&
               strv_equal(a->host_keys, b->host_keys) &&
               a->host_key_policy == b->host_key_policy &&
               a->transport == b->transport &&
               streq_ptr(a->tls_server_name, b->tls_server_name) &&
               a->tls_verify == b->tls_verify &&
               streq_ptr(a->tls_ca, b->tls_ca) &&
               streq_ptr(a->tls_pin, b->tls_pin) &&
               streq_ptr(a->proxy, b->proxy) &&
               a->auto_start == b->auto_start &&
               a->keepalive_interval_usec == b->keepalive_interval_usec &&
               a->keepalive_count_max == b->keepalive_count_max &&
               streq_ptr(a->socks_username, b->socks_username) &&
               streq_ptr(a->socks_password_file, b->socks_password_file) &&
               forwards_equal(a->local, a->n_local, b->local, b->n_local) &&
               forwards_equal(a->remote, a->n_remote, b->remote, b->n_remote);
}

/* ---------------------------------------------------------------------------------------- */
/* Files */

typedef struct ParseState {
        Profile *profile;
        ProfileError err;
        bool failed_in_callback;
        /* Where each setting came from, so that validation errors can name a line. */
        unsigned key_line[_KEY_MAX];
        unsigned list_line[_KEY_MAX][PROFILE_LIST_MAX];
} ParseState;

static size_t list_count(const Profile *p, KeyId k) {
        switch (k) {
        case KEY_HOST_KEY:
                return strv_length(p->host_keys);
        case KEY_LISTEN:
                return p->n_socks_listen;
        case KEY_LOCAL:
                return p->n_local;
        case KEY_REMOTE:
                return p->n_remote;
        default:
                return 0;
        }
}

static int parse_assignment(const char *section, const char *key, const char *value, unsigned line, void *userdata) {
        ParseState *st = userdata;
        const ProfileKey *pk;
        KeyId k;
        bool known = false;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(sections); i++)
                known = known || streq(section, sections[i]);

        pk = profile_key_lookup(key);
        if (!known)
                r = err_setf(&st->err, -ENOENT, key, "unknown section [%s]", section);
        else if (!pk)
                r = unknown_key_error(key, &st->err);
        else if (!streq(pk->section, section))
                r = err_setf(&st->err, -ENOENT, key, "belongs in [%s], not [%s]", pk->section, section);
        else {
                k = (KeyId) (pk - profile_key_table);
                r = set_key(st->profile, k, value, &st->err);
                if (r >= 0) {
                        size_t n = list_count(st->profile, k);

                        st->key_line[k] = line;
                        if (pk->list && n > 0)
                                st->list_line[k][n - 1] = line;
                        return 0;
                }
        }
        st->failed_in_callback = true;
        st->err.line = line;
        return r;
}

int profile_parse(const char *name, const char *text, size_t size, Profile **ret, ProfileError *err) {
        _cleanup_(freep) ParseState *st = NULL;
        _cleanup_(profile_freep) Profile *p = NULL;
        const char *reason = NULL;
        unsigned line = 0;
        KeyId key = _KEY_MAX;
        size_t index = SIZE_MAX;
        int r;

        assert(ret);

        r = profile_new(name, &p, err);
        if (r < 0)
                return r;

        /* Too big for the stack of a daemon callback: 19 * 64 line numbers. */
        st = calloc(1, sizeof *st);
        if (!st)
                return -ENOMEM;
        st->profile = p;

        r = ini_parse(text, size, parse_assignment, st, &line, &reason);
        if (r < 0) {
                if (r == -ENOMEM)
                        return r;
                if (!st->failed_in_callback) {
                        r = err_setf(&st->err, r, "", "%s", strna(reason));
                        st->err.line = line;
                }
                if (err)
                        *err = st->err;
                return r;
        }

        r = validate(p, err, &key, &index);
        if (r < 0) {
                if (err && key < _KEY_MAX)
                        err->line = index == SIZE_MAX ? st->key_line[key] :
                                    index < PROFILE_LIST_MAX ? st->list_line[key][index] : 0;
                return r;
        }

        *ret = TAKE_PTR(p);
        return 0;
}

static bool key_is_default(const Profile *p, KeyId k) {
        switch (k) {
        case KEY_SERVER:
                return !p->server_host;
        case KEY_USER:
                return !p->user || streq(p->user, PROFILE_USER_DEFAULT);
        case KEY_IDENTITY:
                return !p->identity;
        case KEY_HOST_KEY:
                return strv_length(p->host_keys) == 0;
        case KEY_HOST_KEY_POLICY:
                return p->host_key_policy == HOST_KEY_POLICY_STRICT;
        case KEY_TRANSPORT:
                return p->transport == TRANSPORT_TCP;
        case KEY_TLS_SERVER_NAME:
                return !p->tls_server_name;
        case KEY_TLS_VERIFY:
                return p->tls_verify;
        case KEY_TLS_CA:
                return !p->tls_ca;
        case KEY_TLS_PIN:
                return !p->tls_pin;
        case KEY_PROXY:
                return !p->proxy;
        case KEY_AUTO_START:
                return !p->auto_start;
        case KEY_KEEPALIVE_INTERVAL:
                return p->keepalive_interval_usec == PROFILE_KEEPALIVE_INTERVAL_DEFAULT_USEC;
        case KEY_KEEPALIVE_COUNT_MAX:
                return p->keepalive_count_max == PROFILE_KEEPALIVE_COUNT_MAX_DEFAULT;
        case KEY_LISTEN:
                return !p->socks_listen_set;
        case KEY_USERNAME:
                return !p->socks_username;
        case KEY_PASSWORD_FILE:
                return !p->socks_password_file;
        case KEY_LOCAL:
                return p->n_local == 0;
        case KEY_REMOTE:
                return p->n_remote == 0;
        case _KEY_MAX:
        default:
                return true;
        }
}

static int write_key(FILE *f, const Profile *p, KeyId k) {
        const char *name = key_name(k);
        char buf[32];
        int r;

        switch (k) {
        case KEY_SERVER:
                fprintf(f, host_is_ipv6(p->server_host) ? "%s=[%s]" : "%s=%s", name, p->server_host);
                if (p->server_port != PROFILE_SSH_PORT_DEFAULT)
                        fprintf(f, ":%u", p->server_port);
                fputc('\n', f);
                return 0;
        case KEY_USER:
                fprintf(f, "%s=%s\n", name, p->user);
                return 0;
        case KEY_IDENTITY:
                fprintf(f, "%s=%s\n", name, p->identity);
                return 0;
        case KEY_HOST_KEY:
                for (char **i = p->host_keys; i && *i; i++)
                        fprintf(f, "%s=%s\n", name, *i);
                return 0;
        case KEY_HOST_KEY_POLICY:
                fprintf(f, "%s=%s\n", name, strna(host_key_policy_to_string(p->host_key_policy)));
                return 0;
        case KEY_TRANSPORT:
                fprintf(f, "%s=%s\n", name, strna(transport_to_string(p->transport)));
                return 0;
        case KEY_TLS_SERVER_NAME:
                fprintf(f, "%s=%s\n", name, p->tls_server_name);
                return 0;
        case KEY_TLS_VERIFY:
                fprintf(f, "%s=%s\n", name, p->tls_verify ? "yes" : "no");
                return 0;
        case KEY_TLS_CA:
                fprintf(f, "%s=%s\n", name, p->tls_ca);
                return 0;
        case KEY_TLS_PIN:
                fprintf(f, "%s=%s\n", name, p->tls_pin);
                return 0;
        case KEY_PROXY:
                fprintf(f, "%s=%s\n", name, p->proxy);
                return 0;
        case KEY_AUTO_START:
                fprintf(f, "%s=%s\n", name, p->auto_start ? "yes" : "no");
                return 0;
        case KEY_KEEPALIVE_INTERVAL:
                format_timespan(buf, sizeof buf, p->keepalive_interval_usec);
                fprintf(f, "%s=%s\n", name, buf);
                return 0;
        case KEY_KEEPALIVE_COUNT_MAX:
                fprintf(f, "%s=%u\n", name, p->keepalive_count_max);
                return 0;
        case KEY_LISTEN:
                if (p->n_socks_listen == 0)
                        fprintf(f, "%s=\n", name);
                for (size_t i = 0; i < p->n_socks_listen; i++) {
                        _cleanup_(freep) char *s = NULL;

                        r = address_format(&p->socks_listen[i], &s);
                        if (r < 0)
                                return r;
                        fprintf(f, "%s=%s\n", name, s);
                }
                return 0;
        case KEY_USERNAME:
                fprintf(f, "%s=%s\n", name, p->socks_username);
                return 0;
        case KEY_PASSWORD_FILE:
                fprintf(f, "%s=%s\n", name, p->socks_password_file);
                return 0;
        case KEY_LOCAL:
        case KEY_REMOTE: {
                const Forward *l = k == KEY_LOCAL ? p->local : p->remote;
                size_t n = k == KEY_LOCAL ? p->n_local : p->n_remote;

                for (size_t i = 0; i < n; i++) {
                        _cleanup_(freep) char *s = NULL;

                        r = forward_format(&l[i], &s);
                        if (r < 0)
                                return r;
                        fprintf(f, "%s=%s\n", name, s);
                }
                return 0;
        }
        case _KEY_MAX:
        default:
                break;
        }
        return -EINVAL;
}

int profile_format(const Profile *p, char **ret_text) {
        _cleanup_(freep) char *text = NULL;
        size_t size = 0;
        FILE *f;
        int r = 0;

        assert(p);
        assert(ret_text);

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;

        fputs("# Managed by alknetd; changes here are overwritten.\n", f);
        for (size_t s = 0; s < ELEMENTSOF(sections) && r >= 0; s++) {
                bool header = false;

                for (KeyId k = 0; k < _KEY_MAX && r >= 0; k++) {
                        if (!streq(profile_key_table[k].section, sections[s]) || key_is_default(p, k))
                                continue;
                        if (!header) {
                                fprintf(f, "\n[%s]\n", sections[s]);
                                header = true;
                        }
                        r = write_key(f, p, k);
                }
        }

        if (ferror(f) && r >= 0)
                r = -ENOMEM;
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0)
                return r;
        *ret_text = TAKE_PTR(text);
        return 0;
}
