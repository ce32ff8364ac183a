/* OpenSSH authorized_keys parsing (sshd(8) "AUTHORIZED_KEYS FILE FORMAT") for the options a
 * forwarding-only server can honour, and the pattern/CIDR matching those options need. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "authorized-keys.h"
#include "macro.h"

/* Options that only concern sessions, X11, agents, ptys or rc files. This server never
 * offers any of those, so they change nothing and are accepted. */
static const char *const ignored_flags[] = {
        "no-pty", "pty",
        "no-agent-forwarding", "agent-forwarding",
        "no-X11-forwarding", "X11-forwarding",
        "no-user-rc", "user-rc",
        "no-touch-required",
};

static bool is_ignored_flag(const char *name, size_t n) {
        for (size_t i = 0; i < ELEMENTSOF(ignored_flags); i++)
                if (n == strlen(ignored_flags[i]) && strncasecmp(name, ignored_flags[i], n) == 0)
                        return true;
        return false;
}

static bool is_space(char c) {
        return c == ' ' || c == '\t';
}

/* An option name or value as it may appear in an error message: printable ASCII only,
 * at most 64 characters. */
static void printable(const char *s, size_t n, char out[static 68]) {
        size_t o = 0;

        for (size_t i = 0; i < n && o < 64; i++)
                out[o++] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : '?';
        if (n > 64) {
                memcpy(out + o, "...", 3);
                o += 3;
        }
        out[o] = 0;
}

typedef struct Parser {
        AuthorizedKeys *keys;
        size_t entries_allocated;
        size_t errors_allocated;
        unsigned line;
} Parser;

static int add_error(Parser *p, int error, const char *fmt, ...) _printf_(3, 4);
static int add_error(Parser *p, int error, const char *fmt, ...) {
        AuthorizedKeys *k = p->keys;
        va_list ap;
        char *m;
        int r;

        if (k->n_errors >= AUTHORIZED_KEYS_ERRORS_MAX) {
                k->n_errors_dropped++;
                return 0;
        }
        if (k->n_errors >= p->errors_allocated) {
                size_t n = MAX(p->errors_allocated * 2, (size_t) 8);
                AuthorizedKeysError *e = reallocarray(k->errors, n, sizeof *e);

                if (!e)
                        return -ENOMEM;
                k->errors = e;
                p->errors_allocated = n;
        }
        va_start(ap, fmt);
        r = vasprintf(&m, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        k->errors[k->n_errors++] = (AuthorizedKeysError) { .line = p->line, .error = error, .message = m };
        return 0;
}

/* Strict RFC 4648 base64 with padding; the bits past the last byte must be zero, as in
 * OpenSSH's b64_pton. */
int base64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_size) {
        _cleanup_(freep) uint8_t *out = NULL;
        size_t o = 0, pad = 0;

        if (n == 0 || n % 4 != 0)
                return -EBADMSG;
        if (s[n - 1] == '=')
                pad++;
        if (s[n - 2] == '=')
                pad++;
        out = malloc(n / 4 * 3);
        if (!out)
                return -ENOMEM;

        for (size_t i = 0; i < n; i += 4) {
                uint32_t v = 0;

                for (size_t j = 0; j < 4; j++) {
                        char c = s[i + j];
                        unsigned d;

                        if (c >= 'A' && c <= 'Z')
                                d = (unsigned) (c - 'A');
                        else if (c >= 'a' && c <= 'z')
                                d = (unsigned) (c - 'a' + 26);
                        else if (c >= '0' && c <= '9')
                                d = (unsigned) (c - '0' + 52);
                        else if (c == '+')
                                d = 62;
                        else if (c == '/')
                                d = 63;
                        else if (c == '=' && i + j >= n - pad)
                                d = 0;
                        else
                                return -EBADMSG;
                        v = v << 6 | d;
                }
                out[o++] = (uint8_t) (v >> 16);
                out[o++] = (uint8_t) (v >> 8);
                out[o++] = (uint8_t) v;
                if (i + 4 == n && ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff))))
                        return -EBADMSG;
        }
        *ret_size = o - pad;
        *ret = TAKE_PTR(out);
        return 0;
}

static bool is_leap(int y) {
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* expiry-time: YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, local time unless a 'Z' follows
 * (OpenSSH's parse_absolute_time). */
static int parse_expiry_time(const char *s, uint64_t *ret) {
        static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        size_t n = strlen(s), digits;
        int f[6] = { 0, 0, 0, 0, 0, 0 };
        bool utc = false;
        struct tm tm = {};
        time_t t;

        if (n > 0 && (s[n - 1] == 'Z' || s[n - 1] == 'z')) {
                utc = true;
                n--;
        }
        if (n != 8 && n != 12 && n != 14)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!isdigit((unsigned char) s[i]))
                        return -EINVAL;
        digits = 0;
        for (size_t i = 0; i < n / 2 - 1; i++) {
                size_t w = i == 0 ? 4 : 2;

                for (size_t j = 0; j < w; j++)
                        f[i] = f[i] * 10 + (s[digits + j] - '0');
                digits += w;
        }
        if (f[0] < 1970 || f[1] < 1 || f[1] > 12 || f[2] < 1 ||
            f[2] > mdays[f[1] - 1] + (f[1] == 2 && is_leap(f[0])) ||
            f[3] > 23 || f[4] > 59 || f[5] > 59)
                return -EINVAL;
        tm.tm_year = f[0] - 1900;
        tm.tm_mon = f[1] - 1;
        tm.tm_mday = f[2];
        tm.tm_hour = f[3];
        tm.tm_min = f[4];
        tm.tm_sec = f[5];
        tm.tm_isdst = -1;
        t = utc ? timegm(&tm) : mktime(&tm);
        if (t == (time_t) -1)
                return -EINVAL;
        /* 0 means "no expiry" in the options: the epoch itself expired long ago anyway. */
        *ret = t > 0 ? (uint64_t) t : 1;
        return 0;
}

static int parse_port(const char *s, int *ret) {
        unsigned long v = 0;

        if (streq(s, "*")) {
                *ret = AUTHORIZED_PERMIT_PORT_ANY;
                return 0;
        }
        if (!*s || strlen(s) > 5)
                return -EINVAL;
        for (const char *c = s; *c; c++) {
                if (!isdigit((unsigned char) *c))
                        return -EINVAL;
                v = v * 10 + (unsigned long) (*c - '0');
        }
        if (v < 1 || v > 65535)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

/* "host:port", "[v6]:port"; with bare_port (permitlisten) also "port", meaning any host. */
static int parse_permit(const char *s, bool bare_port, AuthorizedPermit *ret) {
        _cleanup_(freep) char *host = NULL;
        const char *port;
        size_t hl;
        int p;

        if (*s == '[') {
                const char *close = strchr(s, ']');

                if (!close || close[1] != ':')
                        return -EINVAL;
                hl = (size_t) (close - s - 1);
                host = strndup(s + 1, hl);
                port = close + 2;
                /* brackets hold an IPv6 address: nothing else needs them */
                if (host && !strchr(host, ':'))
                        return -EINVAL;
        } else {
                const char *colon = strchr(s, ':');

                if (!colon) {
                        if (!bare_port)
                                return -EINVAL;
                        host = strdup("*");
                        port = s;
                } else {
                        if (strchr(colon + 1, ':'))
                                return -EINVAL; /* an IPv6 address without brackets */
                        hl = (size_t) (colon - s);
                        host = strndup(s, hl);
                        port = colon + 1;
                }
        }
        if (!host)
                return -ENOMEM;
        if (!*host || strlen(host) >= 1025)
                return -EINVAL;
        for (const char *c = host; *c; c++)
                if ((unsigned char) *c <= 0x20 || *c == 0x7f || *c == ',' || *c == '/')
                        return -EINVAL;
        if (parse_port(port, &p) < 0)
                return -EINVAL;
        *ret = (AuthorizedPermit) { .host = TAKE_PTR(host), .port = p };
        return 0;
}

static int add_permit(AuthorizedPermit **list, size_t *n, AuthorizedPermit p) {
        AuthorizedPermit *l;

        l = reallocarray(*list, *n + 1, sizeof *l);
        if (!l) {
                free(p.host);
                return -ENOMEM;
        }
        l[(*n)++] = p;
        *list = l;
        return 0;
}

/* A from= list is checked when the file is read, so that a typo refuses the key instead
 * of silently never (or always) matching. */
static bool from_list_valid(const char *list) {
        const char *p = list;

        for (;;) {
                const char *end = strchrnul(p, ',');
                size_t n = (size_t) (end - p);
                char entry[128];
                SshCidr c;

                if (n > 0 && *p == '!') {
                        p++;
                        n--;
                }
                if (n == 0 || n >= sizeof entry)
                        return false;
                memcpy(entry, p, n);
                entry[n] = 0;
                if (strchr(entry, '/') && ssh_cidr_parse(entry, &c) < 0)
                        return false;
                for (size_t i = 0; i < n; i++)
                        if ((unsigned char) entry[i] <= 0x20 || entry[i] == 0x7f)
                                return false;
                if (!*end)
                        return true;
                p = end + 1;
        }
}

static int parse_principals_option(const char *value, char ***ret, size_t *ret_n) {
        _cleanup_(strv_freep) char **l = NULL;
        const char *p = value;
        size_t n = 0;

        for (;;) {
                const char *end = strchrnul(p, ',');
                char **nl;

                if (end == p)
                        return -EINVAL;
                if (n >= AUTHORIZED_KEYS_PRINCIPALS_MAX)
                        return -E2BIG;
                nl = reallocarray(l, n + 2, sizeof *nl);
                if (!nl)
                        return -ENOMEM;
                l = nl;
                l[n] = strndup(p, (size_t) (end - p));
                if (!l[n])
                        return -ENOMEM;
                l[++n] = NULL;
                if (!*end)
                        break;
                p = end + 1;
        }
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

static void options_done(AuthorizedKeyOptions *o) {
        free(o->from);
        strv_free(o->principals);
        forward_permissions_done(&o->forward);
        *o = (AuthorizedKeyOptions) {};
}

/* Parses the options field s[0..n) into o (left to right, so "restrict,port-forwarding"
 * re-enables forwarding). Returns 0, -ENOMEM, or a negative errno after reporting why the
 * line is refused. */
static int parse_options(Parser *p, const char *s, size_t n, AuthorizedKeyOptions *o) {
        const char *end = s + n;
        unsigned count = 0;
        char shown[68];
        int r;

        while (s < end) {
                const char *name = s;
                _cleanup_(freep) char *value = NULL;
                size_t nl;
                bool has_value = false;

                while (s < end && *s != '=' && *s != ',')
                        s++;
                nl = (size_t) (s - name);
                printable(name, nl, shown);
                if (nl == 0)
                        return add_error(p, -EBADMSG, "empty option; key refused") ?: -EBADMSG;
                if (++count > AUTHORIZED_KEYS_OPTIONS_MAX)
                        return add_error(p, -E2BIG, "more than %u options; key refused",
                                         AUTHORIZED_KEYS_OPTIONS_MAX) ?: -E2BIG;

                if (s < end && *s == '=') {
                        size_t o_len = 0;

                        s++;
                        if (s >= end || *s != '"')
                                return add_error(p, -EBADMSG, "option \"%s\": value must be quoted; key refused",
                                                 shown) ?: -EBADMSG;
                        s++;
                        value = malloc((size_t) (end - s) + 1);
                        if (!value)
                                return -ENOMEM;
                        /* Only \" is an escape; any other backslash stays, as in OpenSSH. */
                        while (s < end && *s != '"') {
                                if (*s == '\\' && s + 1 < end && s[1] == '"')
                                        s++;
                                value[o_len++] = *s++;
                        }
                        if (s >= end)
                                return add_error(p, -EBADMSG, "option \"%s\": missing end quote; key refused",
                                                 shown) ?: -EBADMSG;
                        s++;
                        value[o_len] = 0;
                        has_value = true;
                }
                if (s < end) {
                        if (*s != ',')
                                return add_error(p, -EBADMSG, "option \"%s\": garbage after the value; key refused",
                                                 shown) ?: -EBADMSG;
                        s++;
                        if (s >= end)
                                return add_error(p, -EBADMSG, "empty option after ','; key refused") ?: -EBADMSG;
                }

#define NAME_IS(x) (nl == strlen(x) && strncasecmp(name, x, nl) == 0)
                if (NAME_IS("restrict") || NAME_IS("cert-authority") || NAME_IS("port-forwarding") ||
                    NAME_IS("no-port-forwarding")) {
                        if (has_value)
                                return add_error(p, -EBADMSG, "option \"%s\" takes no value; key refused",
                                                 shown) ?: -EBADMSG;
                        if (NAME_IS("restrict")) {
                                o->restricted = true;
                                o->forward.allowed = false;
                        } else if (NAME_IS("cert-authority"))
                                o->cert_authority = true;
                        else
                                o->forward.allowed = NAME_IS("port-forwarding");
                        continue;
                }

                if (is_ignored_flag(name, nl)) {
                        if (has_value)
                                return add_error(p, -EBADMSG, "option \"%s\" takes no value; key refused",
                                                 shown) ?: -EBADMSG;
                        continue;
                }

                if (NAME_IS("from") || NAME_IS("permitopen") || NAME_IS("permitlisten") ||
                    NAME_IS("principals") || NAME_IS("expiry-time")) {
                        if (!has_value)
                                return add_error(p, -EBADMSG, "option \"%s\" needs a value; key refused",
                                                 shown) ?: -EBADMSG;
                } else
                        /* command=, environment=, tunnel=, verify-required and anything we
                         * do not know: accepting the key without honouring it would grant
                         * more than the admin wrote. */
                        return add_error(p, -EOPNOTSUPP, "option \"%s\" is not supported; key refused",
                                         shown) ?: -EOPNOTSUPP;

                if (NAME_IS("from")) {
                        if (o->from)
                                return add_error(p, -EBADMSG, "more than one from= option; key refused") ?: -EBADMSG;
                        if (!from_list_valid(value))
                                return add_error(p, -EBADMSG, "invalid from= pattern list; key refused") ?: -EBADMSG;
                        o->from = TAKE_PTR(value);
                } else if (NAME_IS("permitopen") || NAME_IS("permitlisten")) {
                        bool listen = NAME_IS("permitlisten");
                        AuthorizedPermit permit;

                        r = parse_permit(value, listen, &permit);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                printable(value, strlen(value), shown);
                                return add_error(p, -EBADMSG, "invalid %s=\"%s\"; key refused",
                                                 listen ? "permitlisten" : "permitopen", shown) ?: -EBADMSG;
                        }
                        r = listen ? add_permit(&o->forward.listen, &o->forward.n_listen, permit)
                                   : add_permit(&o->forward.open, &o->forward.n_open, permit);
                        if (r < 0)
                                return r;
                } else if (NAME_IS("principals")) {
                        if (o->principals)
                                return add_error(p, -EBADMSG, "more than one principals= option; key refused") ?: -EBADMSG;
                        r = parse_principals_option(value, &o->principals, &o->n_principals);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0)
                                return add_error(p, r == -E2BIG ? r : -EBADMSG,
                                                 "invalid principals= list; key refused") ?: -EBADMSG;
                } else {
                        uint64_t t;

                        if (parse_expiry_time(value, &t) < 0) {
                                printable(value, strlen(value), shown);
                                return add_error(p, -EBADMSG, "invalid expiry-time=\"%s\"; key refused", shown) ?: -EBADMSG;
                        }
                        /* Several: the earliest counts, as in OpenSSH. */
                        if (o->expiry_time == 0 || t < o->expiry_time)
                                o->expiry_time = t;
                }
#undef NAME_IS
        }
        return 0;
}

/* The options field ends at the first space or tab outside quotes (\" does not end a
 * quote). Returns its length, or -EBADMSG for an unterminated quote. */
static int options_length(const char *s, size_t n) {
        bool quoted = false;
        size_t i;

        for (i = 0; i < n; i++) {
                if (quoted && s[i] == '\\' && i + 1 < n && s[i + 1] == '"')
                        i++;
                else if (s[i] == '"')
                        quoted = !quoted;
                else if (!quoted && is_space(s[i]))
                        break;
        }
        if (quoted)
                return -EBADMSG;
        return (int) i;
}

static size_t token_length(const char *s, size_t n) {
        size_t i = 0;

        while (i < n && !is_space(s[i]))
                i++;
        return i;
}

static size_t skip_space(const char *s, size_t n, size_t i) {
        while (i < n && is_space(s[i]))
                i++;
        return i;
}

static bool is_key_type_name(const char *s, size_t n) {
        char buf[64];

        if (n == 0 || n >= sizeof buf)
                return false;
        memcpy(buf, s, n);
        buf[n] = 0;
        return ssh_key_type_from_string(buf) >= 0 || ssh_key_type_is_known_unsupported(buf);
}

static int add_entry(Parser *p, AuthorizedKey *e) {
        AuthorizedKeys *k = p->keys;

        if (k->n_entries >= p->entries_allocated) {
                size_t n = MAX(p->entries_allocated * 2, (size_t) 16);
                AuthorizedKey *l = reallocarray(k->entries, n, sizeof *l);

                if (!l)
                        return -ENOMEM;
                k->entries = l;
                p->entries_allocated = n;
        }
        k->entries[k->n_entries++] = *e;
        *e = (AuthorizedKey) {};
        return 0;
}

static void entry_done(AuthorizedKey *e) {
        free(e->blob);
        free(e->comment);
        options_done(&e->options);
}

/* One non-empty, non-comment line s[0..n) without its line break. Returns 1 when a key
 * was added, 0 when the line was reported and skipped, -ENOMEM. */
static int parse_line(Parser *p, const char *s, size_t n, AuthorizedKeysFlags flags) {
        _cleanup_(entry_done) AuthorizedKey e = { .line = p->line, .options.forward.allowed = true };
        char type_name[64], shown[68];
        size_t i = 0, l;
        SshPublicKey key;
        int r;

        l = token_length(s, n);
        if (!is_key_type_name(s, l)) {
                if (flags & AUTHORIZED_KEYS_NO_OPTIONS) {
                        printable(s, l, shown);
                        return add_error(p, -EBADMSG, "\"%s\" is not a key type (options are not allowed here); key refused",
                                         shown);
                }
                r = options_length(s, n);
                if (r < 0)
                        return add_error(p, -EBADMSG, "missing end quote in options; key refused");
                l = (size_t) r;
                r = parse_options(p, s, l, &e.options);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return 0;
                i = skip_space(s, n, l);
                l = token_length(s + i, n - i);
                if (l == 0)
                        return add_error(p, -EBADMSG, "no key after the options; key refused");
        }

        printable(s + i, l, shown);
        if (l >= sizeof type_name)
                return add_error(p, -EBADMSG, "unknown key type \"%s\"; key refused", shown);
        memcpy(type_name, s + i, l);
        type_name[l] = 0;
        e.type = ssh_key_type_from_string(type_name);
        if (e.type < 0)
                return add_error(p, ssh_key_type_is_known_unsupported(type_name) ? -EOPNOTSUPP : -EBADMSG,
                                 "%s key type \"%s\"; key refused",
                                 ssh_key_type_is_known_unsupported(type_name) ? "unsupported" : "unknown", shown);

        i = skip_space(s, n, i + l);
        l = token_length(s + i, n - i);
        if (l == 0)
                return add_error(p, -EBADMSG, "no key data after \"%s\"; key refused", type_name);
        r = base64_decode(s + i, l, &e.blob, &e.blob_size);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return add_error(p, -EBADMSG, "invalid base64 key data; key refused");
        r = ssh_key_blob_parse(e.blob, e.blob_size, &key);
        if (r < 0)
                return add_error(p, r == -EOPNOTSUPP ? -EOPNOTSUPP : -EBADMSG,
                                 "malformed or unsupported %s key data; key refused", type_name);
        if (key.type != e.type)
                return add_error(p, -EBADMSG, "key data is not of type %s; key refused", type_name);

        i = skip_space(s, n, i + l);
        if (i < n) {
                size_t end = n;

                while (end > i && is_space(s[end - 1]))
                        end--;
                e.comment = strndup(s + i, end - i);
                if (!e.comment)
                        return -ENOMEM;
        }

        r = add_entry(p, &e);
        if (r < 0)
                return r;
        return 1;
}

int authorized_keys_parse(const char *text, size_t size, AuthorizedKeysFlags flags, AuthorizedKeys **ret) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = NULL;
        Parser p = {};
        size_t pos = 0;
        int r;

        if ((!text && size > 0) || !ret)
                return -EINVAL;
        k = calloc(1, sizeof *k);
        if (!k)
                return -ENOMEM;
        p.keys = k;

        while (pos < size) {
                const char *line = text + pos, *nl = memchr(line, '\n', size - pos);
                size_t n = nl ? (size_t) (nl - line) : size - pos, i;

                pos += n + (nl ? 1 : 0);
                p.line++;
                if (n > 0 && line[n - 1] == '\r')
                        n--;
                if (n > AUTHORIZED_KEYS_LINE_MAX) {
                        r = add_error(&p, -EMSGSIZE, "line longer than %u bytes; skipped", AUTHORIZED_KEYS_LINE_MAX);
                        if (r < 0)
                                return r;
                        continue;
                }
                i = skip_space(line, n, 0);
                if (i == n || line[i] == '#')
                        continue;
                if (memchr(line, 0, n)) {
                        r = add_error(&p, -EBADMSG, "NUL byte in line; skipped");
                        if (r < 0)
                                return r;
                        continue;
                }
                if (k->n_entries >= AUTHORIZED_KEYS_ENTRIES_MAX) {
                        r = add_error(&p, -E2BIG, "more than %u keys; this and all further lines ignored",
                                      AUTHORIZED_KEYS_ENTRIES_MAX);
                        if (r < 0)
                                return r;
                        break;
                }
                r = parse_line(&p, line + i, n - i, flags);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(k);
        return 0;
}

AuthorizedKeys *authorized_keys_free(AuthorizedKeys *k) {
        if (!k)
                return NULL;
        for (size_t i = 0; i < k->n_entries; i++)
                entry_done(&k->entries[i]);
        free(k->entries);
        for (size_t i = 0; i < k->n_errors; i++)
                free(k->errors[i].message);
        free(k->errors);
        free(k);
        return NULL;
}

static char fold(char c, bool fold_case) {
        return fold_case && c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

/* Glob matching with one backtrack point: linear-time per star instead of OpenSSH's
 * recursion, which is exponential for patterns like "*a*a*a*a*b". */
static bool pattern_match_n(const char *s, const char *pat, size_t pn, bool fold_case) {
        size_t si = 0, pi = 0, star = SIZE_MAX, mark = 0;

        while (s[si]) {
                if (pi < pn && (pat[pi] == '?' || (pat[pi] != '*' && fold(pat[pi], fold_case) == fold(s[si], fold_case)))) {
                        si++;
                        pi++;
                } else if (pi < pn && pat[pi] == '*') {
                        star = pi++;
                        mark = si;
                } else if (star != SIZE_MAX) {
                        pi = star + 1;
                        si = ++mark;
                } else
                        return false;
        }
        while (pi < pn && pat[pi] == '*')
                pi++;
        return pi == pn;
}

bool ssh_pattern_match(const char *s, const char *pattern, bool fold_case) {
        if (!s || !pattern)
                return false;
        return pattern_match_n(s, pattern, strlen(pattern), fold_case);
}

int ssh_pattern_match_list(const char *s, const char *list, bool fold_case) {
        bool positive = false;

        if (!s || !list)
                return 0;
        for (const char *p = list;;) {
                const char *end = strchrnul(p, ',');
                bool negated = *p == '!';
                const char *pat = p + negated;

                if (pattern_match_n(s, pat, (size_t) (end - pat), fold_case)) {
                        if (negated)
                                return -1;
                        positive = true;
                }
                if (!*end)
                        break;
                p = end + 1;
        }
        return positive;
}

int ssh_cidr_parse(const char *s, SshCidr *ret) {
        char buf[INET6_ADDRSTRLEN + 1];
        const char *slash;
        SshCidr c = {};
        size_t n;

        if (!s)
                return -EINVAL;
        slash = strchr(s, '/');
        n = slash ? (size_t) (slash - s) : strlen(s);
        if (n == 0 || n >= sizeof buf)
                return -EINVAL;
        memcpy(buf, s, n);
        buf[n] = 0;
        if (inet_pton(AF_INET, buf, c.addr) == 1) {
                c.family = AF_INET;
                c.prefix = 32;
        } else if (inet_pton(AF_INET6, buf, c.addr) == 1) {
                c.family = AF_INET6;
                c.prefix = 128;
        } else
                return -EINVAL;

        if (slash) {
                const char *d = slash + 1;
                unsigned v = 0;

                if (!*d || strlen(d) > 3)
                        return -EINVAL;
                for (; *d; d++) {
                        if (!isdigit((unsigned char) *d))
                                return -EINVAL;
                        v = v * 10 + (unsigned) (*d - '0');
                }
                if (v > c.prefix)
                        return -EINVAL;
                c.prefix = v;
        }

        /* Host bits past the prefix mean the admin meant something else (OpenSSH agrees). */
        for (unsigned bit = c.prefix; bit < (c.family == AF_INET ? 32u : 128u); bit++)
                if (c.addr[bit / 8] & (0x80 >> (bit % 8)))
                        return -EINVAL;
        *ret = c;
        return 0;
}

/* The peer's address as AF_INET or AF_INET6 bytes; IPv4-mapped IPv6 becomes IPv4, since
 * a dual-stack listener sees IPv4 clients that way. */
static int peer_address(const struct sockaddr *sa, int *ret_family, uint8_t ret_addr[16]) {
        if (!sa)
                return -EINVAL;
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;

                *ret_family = AF_INET;
                memcpy(ret_addr, &in->sin_addr, 4);
                return 0;
        }
        if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;

                if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
                        *ret_family = AF_INET;
                        memcpy(ret_addr, in6->sin6_addr.s6_addr + 12, 4);
                } else {
                        *ret_family = AF_INET6;
                        memcpy(ret_addr, in6->sin6_addr.s6_addr, 16);
                }
                return 0;
        }
        return -EAFNOSUPPORT;
}

static bool cidr_match_address(const SshCidr *c, int family, const uint8_t addr[16]) {
        unsigned full = c->prefix / 8, rest = c->prefix % 8;

        if (c->family != family)
                return false;
        if (memcmp(c->addr, addr, full) != 0)
                return false;
        if (rest == 0)
                return true;
        return ((c->addr[full] ^ addr[full]) & (uint8_t) (0xff << (8 - rest))) == 0;
}

bool ssh_cidr_match(const SshCidr *c, const struct sockaddr *sa) {
        uint8_t addr[16];
        int family;

        if (!c || peer_address(sa, &family, addr) < 0)
                return false;
        return cidr_match_address(c, family, addr);
}

int ssh_cidr_list_match(const char *list, const struct sockaddr *peer) {
        bool found = false;
        uint8_t addr[16];
        int family = AF_UNSPEC;

        if (!list)
                return -EINVAL;
        if (peer && peer_address(peer, &family, addr) < 0)
                family = AF_UNSPEC;
        /* The whole list is checked even after a match: a malformed one refuses the
         * certificate wherever it is used from. */
        for (const char *p = list;;) {
                const char *end = strchrnul(p, ',');
                size_t n = (size_t) (end - p);
                char entry[INET6_ADDRSTRLEN + 5];
                SshCidr c;

                if (n == 0 || n >= sizeof entry)
                        return -EINVAL;
                memcpy(entry, p, n);
                entry[n] = 0;
                if (ssh_cidr_parse(entry, &c) < 0)
                        return -EINVAL;
                if (family != AF_UNSPEC && cidr_match_address(&c, family, addr))
                        found = true;
                if (!*end)
                        break;
                p = end + 1;
        }
        return found;
}

bool authorized_keys_match_from(const AuthorizedKey *entry, const struct sockaddr *peer) {
        char text[INET6_ADDRSTRLEN];
        bool positive = false;
        uint8_t addr[16];
        int family;

        if (!entry)
                return false;
        if (!entry->options.from)
                return true;
        if (peer_address(peer, &family, addr) < 0 || !inet_ntop(family, addr, text, sizeof text))
                return false;

        /* Like OpenSSH's match_host_and_ip() with UseDNS=no: each entry is an address or
         * CIDR, or else a pattern matched against the address text ("192.168.1.*"). */
        for (const char *p = entry->options.from;;) {
                const char *end = strchrnul(p, ',');
                bool negated = *p == '!';
                const char *e = p + negated;
                size_t n = (size_t) (end - e);
                char buf[128];
                SshCidr c;
                bool match;

                if (n == 0 || n >= sizeof buf)
                        return false; /* rejected by the parser; never reached */
                memcpy(buf, e, n);
                buf[n] = 0;
                if (ssh_cidr_parse(buf, &c) >= 0)
                        match = cidr_match_address(&c, family, addr);
                else
                        match = pattern_match_n(text, buf, n, true);
                if (match) {
                        if (negated)
                                return false;
                        positive = true;
                }
                if (!*end)
                        break;
                p = end + 1;
        }
        return positive;
}

bool permitopen_allows(const ForwardPermissions *p, const char *host, uint16_t port) {
        if (!p || !p->allowed || !host)
                return false;
        if (p->n_open == 0)
                return true;
        for (size_t i = 0; i < p->n_open; i++) {
                const AuthorizedPermit *a = &p->open[i];

                if (a->port != AUTHORIZED_PERMIT_PORT_ANY && a->port != port)
                        continue;
                if (streq(a->host, "*") || strcasecmp(a->host, host) == 0)
                        return true;
        }
        return false;
}

bool permitlisten_allows(const ForwardPermissions *p, const char *host, uint16_t port) {
        if (!p || !p->allowed)
                return false;
        if (p->n_listen == 0)
                return true;
        for (size_t i = 0; i < p->n_listen; i++) {
                const AuthorizedPermit *a = &p->listen[i];

                if (a->port != AUTHORIZED_PERMIT_PORT_ANY && a->port != port)
                        continue;
                if (ssh_pattern_match(strempty(host), a->host, true))
                        return true;
        }
        return false;
}

static int permits_copy(const AuthorizedPermit *from, size_t n, AuthorizedPermit **ret) {
        AuthorizedPermit *l;

        if (n == 0) {
                *ret = NULL;
                return 0;
        }
        l = calloc(n, sizeof *l);
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                l[i].port = from[i].port;
                l[i].host = strdup(from[i].host);
                if (!l[i].host) {
                        for (size_t j = 0; j < i; j++)
                                free(l[j].host);
                        free(l);
                        return -ENOMEM;
                }
        }
        *ret = l;
        return 0;
}

int forward_permissions_copy(const ForwardPermissions *from, ForwardPermissions *ret) {
        ForwardPermissions c = { .allowed = from->allowed, .n_open = from->n_open, .n_listen = from->n_listen };
        int r;

        r = permits_copy(from->open, from->n_open, &c.open);
        if (r < 0)
                return r;
        r = permits_copy(from->listen, from->n_listen, &c.listen);
        if (r < 0) {
                c.n_listen = 0;
                forward_permissions_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

void forward_permissions_done(ForwardPermissions *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n_open; i++)
                free(p->open[i].host);
        free(p->open);
        for (size_t i = 0; i < p->n_listen; i++)
                free(p->listen[i].host);
        free(p->listen);
        *p = (ForwardPermissions) {};
}
