/* Unit tests for the profile model (src/shared/profile.c): every key's good and bad values
 * with exact codes, fields and reasons, validation, conflicts, the file form and privacy. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ini.h"
#include "profile.h"

#define B43 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"
#define B42 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
#define FP1 "SHA256:" B43
#define FP2 "SHA256:0123456789+/abcdefghijklmnopqrstuvwxyzABCDE"
#define PIN "sha256//" B43 "="
#define HEADER "# Managed by alknetd; changes here are overwritten.\n"

static Profile *new_profile(const char *name) {
        Profile *p = NULL;

        ck_assert_int_eq(profile_new(name, &p, NULL), 0);
        ck_assert_ptr_nonnull(p);
        return p;
}

static void set_ok(Profile *p, const char *key, const char *value) {
        ProfileError err = {};
        int r = profile_set(p, key, value, &err);

        ck_assert_msg(r == 0, "%s=%s: %d %s: %s", key, value, r, err.field, err.reason);
}

static Profile *parse_ok(const char *name, const char *text) {
        ProfileError err = {};
        Profile *p = NULL;
        int r = profile_parse(name, text, strlen(text), &p, &err);

        ck_assert_msg(r == 0, "%d line %u %s: %s", r, err.line, err.field, err.reason);
        return p;
}

static char *format_ok(const Profile *p) {
        char *text = NULL;

        ck_assert_int_eq(profile_format(p, &text), 0);
        ck_assert_ptr_nonnull(text);
        return text;
}

/* profile_parse(profile_format(p)) is equal to p. */
static void assert_round_trip(const Profile *p) {
        _cleanup_(freep) char *text = format_ok(p), *text2 = NULL;
        _cleanup_(profile_freep) Profile *q = NULL;

        q = parse_ok(p->name, text);
        ck_assert_msg(profile_equal(p, q), "not equal after round trip:\n%s", text);
        text2 = format_ok(q);
        ck_assert_str_eq(text, text2);
}

/* ---------------------------------------------------------------------------------------- */

static const struct {
        const char *key, *value;
        const char *line; /* the line(s) profile_format() writes for the key; NULL: none */
} good[] = {
        { "Server", "vps.example.com", "Server=vps.example.com" },
        { "Server", "vps.example.com:22", "Server=vps.example.com" },
        { "Server", "vps.example.com:2222", "Server=vps.example.com:2222" },
        { "Server", "VPS.Example.COM", "Server=VPS.Example.COM" },
        { "Server", "192.0.2.1", "Server=192.0.2.1" },
        { "Server", "192.0.2.1:443", "Server=192.0.2.1:443" },
        { "Server", "[2001:db8::1]:22", "Server=[2001:db8::1]" },
        { "Server", "[2001:db8::1]:2222", "Server=[2001:db8::1]:2222" },
        { "Server", "2001:db8::1", "Server=[2001:db8::1]" },
        { "Server", "[::1]", "Server=[::1]" },
        { "Server", "::ffff:192.0.2.1", "Server=[::ffff:192.0.2.1]" },
        { "Server", "my_host.example.com.", "Server=my_host.example.com." },
        { "Server", "localhost:1", "Server=localhost:1" },
        { "Server", "a-b.c:65535", "Server=a-b.c:65535" },
        { "Server", "host:00022", "Server=host" },
        { "Server", "1host.example", "Server=1host.example" },
        { "Server", "xn--bcher-kva.example", "Server=xn--bcher-kva.example" },
        { "Server", "", NULL },
        { "User", "deploy", "User=deploy" },
        { "User", "a.b_c-d", "User=a.b_c-d" },
        { "User", "_svc", "User=_svc" },
        { "User", "9x", "User=9x" },
        { "User", "alknet", NULL },
        { "User", "", NULL },
        { "Identity", "/etc/alknet/keys/work", "Identity=/etc/alknet/keys/work" },
        { "Identity", "/k", "Identity=/k" },
        { "Identity", "/etc/alknet/.keys/..work", "Identity=/etc/alknet/.keys/..work" },
        { "Identity", "/a b/c\\d", "Identity=/a b/c\\d" },
        { "Identity", "", NULL },
        { "HostKey", FP1, "HostKey=" FP1 },
        { "HostKey", FP2, "HostKey=" FP2 },
        { "HostKey", "", NULL },
        { "HostKeyPolicy", "accept-new", "HostKeyPolicy=accept-new" },
        { "HostKeyPolicy", "strict", NULL },
        { "HostKeyPolicy", "", NULL },
        { "Transport", "tls", "Transport=tls" },
        { "Transport", "tcp", NULL },
        { "TLSServerName", "front.example.com", "TLSServerName=front.example.com" },
        { "TLSServerName", "localhost", "TLSServerName=localhost" },
        { "TLSVerify", "no", "TLSVerify=no" },
        { "TLSVerify", "off", "TLSVerify=no" },
        { "TLSVerify", "0", "TLSVerify=no" },
        { "TLSVerify", "false", "TLSVerify=no" },
        { "TLSVerify", "FALSE", "TLSVerify=no" },
        { "TLSVerify", "yes", NULL },
        { "TLSVerify", "On", NULL },
        { "TLSVerify", "1", NULL },
        { "TLSVerify", "true", NULL },
        { "TLSCA", "/etc/alknet/ca.pem", "TLSCA=/etc/alknet/ca.pem" },
        { "TLSPin", PIN, "TLSPin=" PIN },
        { "Proxy", "socks5://127.0.0.1:9050", "Proxy=socks5://127.0.0.1:9050" },
        { "Proxy", "socks5://proxy.example", "Proxy=socks5://proxy.example:1080" },
        { "Proxy", "socks5h://tor.example:9150", "Proxy=socks5://tor.example:9150" },
        { "Proxy", "http://proxy.example", "Proxy=http://proxy.example:8080" },
        { "Proxy", "http://proxy.example:3128/", "Proxy=http://proxy.example:3128" },
        { "Proxy", "HTTP://[::1]:3128", "Proxy=http://[::1]:3128" },
        { "Proxy", "Socks5://[2001:db8::7]", "Proxy=socks5://[2001:db8::7]:1080" },
        { "Proxy", "", NULL },
        { "AutoStart", "yes", "AutoStart=yes" },
        { "AutoStart", "on", "AutoStart=yes" },
        { "AutoStart", "1", "AutoStart=yes" },
        { "AutoStart", "TRUE", "AutoStart=yes" },
        { "AutoStart", "no", NULL },
        { "KeepaliveInterval", "15", NULL },
        { "KeepaliveInterval", "15s", NULL },
        { "KeepaliveInterval", "15000ms", NULL },
        { "KeepaliveInterval", "30", "KeepaliveInterval=30s" },
        { "KeepaliveInterval", "1500ms", "KeepaliveInterval=1500ms" },
        { "KeepaliveInterval", "2min", "KeepaliveInterval=2min" },
        { "KeepaliveInterval", "1m", "KeepaliveInterval=1min" },
        { "KeepaliveInterval", "1h", "KeepaliveInterval=1h" },
        { "KeepaliveInterval", "3600s", "KeepaliveInterval=1h" },
        { "KeepaliveInterval", "120sec", "KeepaliveInterval=2min" },
        { "KeepaliveInterval", "90s", "KeepaliveInterval=90s" },
        { "KeepaliveInterval", "1s", "KeepaliveInterval=1s" },
        { "KeepaliveInterval", "1000000us", "KeepaliveInterval=1s" },
        { "KeepaliveInterval", "0", "KeepaliveInterval=0" },
        { "KeepaliveInterval", "0s", "KeepaliveInterval=0" },
        { "KeepaliveCountMax", "1", "KeepaliveCountMax=1" },
        { "KeepaliveCountMax", "100", "KeepaliveCountMax=100" },
        { "KeepaliveCountMax", "007", "KeepaliveCountMax=7" },
        { "KeepaliveCountMax", "3", NULL },
        { "Listen", "127.0.0.1:1081", "Listen=127.0.0.1:1081" },
        { "Listen", "*:1080", "Listen=0.0.0.0:1080" },
        { "Listen", "0.0.0.0:1", "Listen=0.0.0.0:1" },
        { "Listen", "[::1]:1080", "Listen=[::1]:1080" },
        { "Listen", "[::]:65535", "Listen=[::]:65535" },
        { "Listen", "/run/alknet/socks.sock", "Listen=/run/alknet/socks.sock" },
        { "Listen", "/run/a:b.sock", "Listen=/run/a:b.sock" },
        { "Listen", "", "Listen=" },
        { "Username", "alice", "Username=alice" },
        { "Username", "Alice Smith", "Username=Alice Smith" },
        { "Username", "user@example=1", "Username=user@example=1" },
        { "Username", "\xc3\xbc", "Username=\xc3\xbc" },
        { "PasswordFile", "/etc/alknet/socks.pw", "PasswordFile=/etc/alknet/socks.pw" },
        { "Local", "5432:db.internal:5432", "Local=127.0.0.1:5432:db.internal:5432" },
        { "Local", "127.0.0.1:5432:db.internal:5432", "Local=127.0.0.1:5432:db.internal:5432" },
        { "Local", "*:8080:10.0.0.5:80", "Local=0.0.0.0:8080:10.0.0.5:80" },
        { "Local", "[::1]:8080:[2001:db8::5]:80", "Local=[::1]:8080:[2001:db8::5]:80" },
        { "Local", "8080:[2001:db8::5]:80", "Local=127.0.0.1:8080:[2001:db8::5]:80" },
        { "Local", "[::]:1:h.example.:65535", "Local=[::]:1:h.example.:65535" },
        { "Local", "/run/alknet/pg.sock:db.internal:5432", "Local=/run/alknet/pg.sock:db.internal:5432" },
        { "Local", "/run/alknet/pg.sock:[::1]:5432", "Local=/run/alknet/pg.sock:[::1]:5432" },
        { "Local", "", NULL },
        { "Remote", "8080:127.0.0.1:80", "Remote=127.0.0.1:8080:127.0.0.1:80" },
        { "Remote", "0.0.0.0:8080:127.0.0.1:80", "Remote=0.0.0.0:8080:127.0.0.1:80" },
        { "Remote", "*:8080:localhost:80", "Remote=0.0.0.0:8080:localhost:80" },
        { "Remote", "localhost:8080:127.0.0.1:80", "Remote=localhost:8080:127.0.0.1:80" },
        { "Remote", "gw.example.com:8080:127.0.0.1:80", "Remote=gw.example.com:8080:127.0.0.1:80" },
        { "Remote", "[::]:8080:[::1]:80", "Remote=[::]:8080:[::1]:80" },
        { "Remote", "8080:/run/app.sock", "Remote=127.0.0.1:8080:/run/app.sock" },
        { "Remote", "0.0.0.0:8080:/run/app.sock", "Remote=0.0.0.0:8080:/run/app.sock" },
        { "Remote", "[::1]:8080:/run/a:b.sock", "Remote=[::1]:8080:/run/a:b.sock" },
        { "Remote", "", NULL },
};

/* The profile every good value is applied to: valid, and with TLS so TLS keys validate. */
static Profile *base_profile(void) {
        Profile *p = new_profile("base");

        set_ok(p, "Server", "base.example");
        set_ok(p, "Transport", "tls");
        return p;
}

static bool has_key_line(const char *text, const char *key) {
        char buf[64];

        snprintf(buf, sizeof buf, "\n%s=", key);
        return strstr(text, buf);
}

START_TEST(test_good_value) {
        _cleanup_(profile_freep) Profile *p = base_profile(), *base = base_profile();
        _cleanup_(freep) char *text = NULL;
        ProfileError err = { .field = "sentinel", .line = 42, .reason = "sentinel" };

        ck_assert_int_eq(profile_set(p, good[_i].key, good[_i].value, &err), 0);
        /* err is written only on failure */
        ck_assert_str_eq(err.field, "sentinel");
        ck_assert_uint_eq(err.line, 42);

        text = format_ok(p);
        if (good[_i].line) {
                char want[512];

                snprintf(want, sizeof want, "\n%s\n", good[_i].line);
                ck_assert_msg(strstr(text, want), "%s=%s: want %s in:\n%s", good[_i].key, good[_i].value, good[_i].line, text);
        } else if (!streq(good[_i].key, "Server") && !streq(good[_i].key, "Transport"))
                ck_assert_msg(!has_key_line(text, good[_i].key), "%s written:\n%s", good[_i].key, text);

        if (profile_validate(p, NULL) == 0)
                assert_round_trip(p);

        /* A value differs from the base exactly when it is written out differently. */
        _cleanup_(freep) char *base_text = format_ok(base);
        ck_assert_int_eq(profile_equal(p, base), streq(text, base_text));
}
END_TEST

#define L "Local"
#define R "Remote"
static const struct {
        const char *key, *value;
        int r;
        const char *reason; /* a stable substring of the reason */
        const char *hidden; /* must not appear in the reason (forward targets, credentials) */
} bad[] = {
        { "Bogus", "x", -ENOENT, "unknown key", NULL },
        { "server", "x", -ENOENT, "unknown key", NULL },
        { "Name", "x", -ENOENT, "unknown key", NULL },
        { "Server", "host:0", -EINVAL, "port out of range (1-65535): 0", NULL },
        { "Server", "host:65536", -EINVAL, "port out of range (1-65535): 65536", NULL },
        { "Server", "host:99999999999999999999", -EINVAL, "port out of range (1-65535): 99999999999999999999", NULL },
        { "Server", "host:abc", -EINVAL, "not a valid port: abc", NULL },
        { "Server", "host:-1", -EINVAL, "not a valid port: -1", NULL },
        { "Server", "host:+22", -EINVAL, "not a valid port: +22", NULL },
        { "Server", "host:", -EINVAL, "missing port", NULL },
        { "Server", "-bad.example", -EINVAL, "not a valid host name: -bad.example", NULL },
        { "Server", "bad-.example", -EINVAL, "not a valid host name: bad-.example", NULL },
        { "Server", "a..b", -EINVAL, "not a valid host name: a..b", NULL },
        { "Server", ".example", -EINVAL, "not a valid host name: .example", NULL },
        { "Server", "..", -EINVAL, "not a valid host name: ..", NULL },
        { "Server", "10.0.0.256", -EINVAL, "not a valid host name: 10.0.0.256", NULL },
        { "Server", "host name", -EINVAL, "not a valid host name: host name", NULL },
        { "Server", "*", -EINVAL, "not a valid host name: *", NULL },
        { "Server", ":22", -EINVAL, "not a valid host name: ", NULL },
        { "Server", "h\xc3\xa9.example", -EINVAL, "not a valid host name: h??.example", NULL },
        { "Server", "[192.0.2.1]:22", -EINVAL, "not a valid IPv6 address: [192.0.2.1]", NULL },
        { "Server", "[::1", -EINVAL, "expected host[:port] (IPv6 in brackets): [::1", NULL },
        { "Server", "[::1]x", -EINVAL, "expected host[:port]", NULL },
        { "Server", "[::1]:22:33", -EINVAL, "expected host[:port]", NULL },
        { "Server", "2001:db8::zz", -EINVAL, "not a valid IPv6 address: 2001:db8::zz", NULL },
        { "Server", "host:22:33", -EINVAL, "not a valid IPv6 address: host:22:33", NULL },
        { "Server", " host", -EINVAL, "value has leading or trailing whitespace", NULL },
        { "Server", "host ", -EINVAL, "value has leading or trailing whitespace", NULL },
        { "Server", "host\t", -EINVAL, "value contains control characters", NULL },
        { "Server", "host\n", -EINVAL, "value contains control characters", NULL },
        { "Server", "ho\x01st", -EINVAL, "value contains control characters", NULL },
        { "Server", "host\x7f", -EINVAL, "value contains control characters", NULL },
        { "User", "-x", -EINVAL, "not a valid user name (1-32 of [A-Za-z0-9._-], not starting with '-'): -x", NULL },
        { "User", "a b", -EINVAL, "not a valid user name", NULL },
        { "User", "a:b", -EINVAL, "not a valid user name", NULL },
        { "User", "r\xc3\xa9", -EINVAL, "not a valid user name", NULL },
        { "Identity", "keys/work", -EINVAL, "path is not absolute: keys/work", NULL },
        { "Identity", "~/key", -EINVAL, "path is not absolute: ~/key", NULL },
        { "Identity", "/etc/../x", -EINVAL, "path is not normalized", NULL },
        { "Identity", "/etc//x", -EINVAL, "path is not normalized", NULL },
        { "Identity", "/etc/./x", -EINVAL, "path is not normalized", NULL },
        { "Identity", "/etc/x/.", -EINVAL, "path is not normalized", NULL },
        { "Identity", "/etc/x/..", -EINVAL, "path is not normalized", NULL },
        { "Identity", "/etc/x/", -EINVAL, "path must not end in '/': /etc/x/", NULL },
        { "Identity", "/", -EINVAL, "path must not end in '/'", NULL },
        { "HostKey", "SHA256:" B42, -EINVAL, "not a SHA256 fingerprint (SHA256: and 43 base64 characters)", NULL },
        { "HostKey", "SHA256:" B43 "A", -EINVAL, "not a SHA256 fingerprint", NULL },
        { "HostKey", "SHA256:" B42 "=", -EINVAL, "not a SHA256 fingerprint", NULL },
        { "HostKey", "SHA256:" B42 "-", -EINVAL, "not a SHA256 fingerprint", NULL },
        { "HostKey", "sha256:" B43, -EINVAL, "not a SHA256 fingerprint", NULL },
        { "HostKey", "MD5:aa:bb", -EINVAL, "not a SHA256 fingerprint (SHA256: and 43 base64 characters): MD5:aa:bb", NULL },
        { "HostKeyPolicy", "loose", -EINVAL, "expected strict or accept-new: loose", NULL },
        { "HostKeyPolicy", "Strict", -EINVAL, "expected strict or accept-new: Strict", NULL },
        { "Transport", "udp", -EINVAL, "expected tcp or tls: udp", NULL },
        { "Transport", "TLS", -EINVAL, "expected tcp or tls: TLS", NULL },
        { "TLSServerName", "192.0.2.1", -EINVAL, "not a valid host name: 192.0.2.1", NULL },
        { "TLSServerName", "[::1]", -EINVAL, "not a valid host name: [::1]", NULL },
        { "TLSServerName", "a_b..c", -EINVAL, "not a valid host name: a_b..c", NULL },
        { "TLSVerify", "maybe", -EINVAL, "not a boolean (yes/no, true/false, 1/0, on/off): maybe", NULL },
        { "TLSVerify", "2", -EINVAL, "not a boolean", NULL },
        { "AutoStart", "y", -EINVAL, "not a boolean", NULL },
        { "TLSCA", "ca.pem", -EINVAL, "path is not absolute: ca.pem", NULL },
        { "TLSPin", "sha256//" B43, -EINVAL, "not a public key pin (sha256// and 44 base64 characters)", NULL },
        { "TLSPin", "sha256//" B43 "==", -EINVAL, "not a public key pin", NULL },
        { "TLSPin", "sha256//" B43 "A", -EINVAL, "not a public key pin", NULL },
        { "TLSPin", "sha1//" B43 "=", -EINVAL, "not a public key pin", NULL },
        { "Proxy", "http://user:secret@proxy.example:3128", -EINVAL, "user info (user:password@) is not supported", "secret" },
        { "Proxy", "socks5://:pw@127.0.0.1", -EINVAL, "user info", "pw" },
        { "Proxy", "socks4://proxy.example", -EINVAL, "expected socks5://host[:port] or http://host[:port]: socks4://proxy.example", NULL },
        { "Proxy", "proxy.example:3128", -EINVAL, "expected socks5://host[:port] or http://host[:port]", NULL },
        { "Proxy", "http:/proxy.example", -EINVAL, "expected socks5://host[:port] or http://host[:port]", NULL },
        { "Proxy", "http://proxy.example:3128/path", -EINVAL, "proxy URL must not have a path: http://proxy.example:3128/path", NULL },
        { "Proxy", "http://proxy.example//", -EINVAL, "proxy URL must not have a path", NULL },
        { "Proxy", "http://proxy.example?x=1", -EINVAL, "proxy URL must not have a query", NULL },
        { "Proxy", "http://proxy.example#f", -EINVAL, "proxy URL must not have a fragment", NULL },
        { "Proxy", "http://", -EINVAL, "missing proxy host", NULL },
        { "Proxy", "http:///", -EINVAL, "missing proxy host", NULL },
        { "Proxy", "http://proxy.example:0", -EINVAL, "port out of range (1-65535): 0", NULL },
        { "Proxy", "http://proxy.example:", -EINVAL, "missing port", NULL },
        { "Proxy", "socks5://-bad", -EINVAL, "not a valid host name: -bad", NULL },
        { "Proxy", "socks5://::1", -EINVAL, "expected host[:port] (IPv6 in brackets)", NULL },
        { "KeepaliveInterval", "500ms", -EINVAL, "out of range (1s-1h, or 0 to disable): 500ms", NULL },
        { "KeepaliveInterval", "3601s", -EINVAL, "out of range (1s-1h, or 0 to disable): 3601s", NULL },
        { "KeepaliveInterval", "2h", -EINVAL, "out of range", NULL },
        { "KeepaliveInterval", "61min", -EINVAL, "out of range", NULL },
        { "KeepaliveInterval", "99999999999999999999", -EINVAL, "out of range", NULL },
        { "KeepaliveInterval", "18446744073709551615h", -EINVAL, "out of range", NULL },
        { "KeepaliveInterval", "1000000000000h", -EINVAL, "out of range", NULL },
        { "KeepaliveInterval", "abc", -EINVAL, "not a time span (like 15s, 500ms, 2min, 1h): abc", NULL },
        { "KeepaliveInterval", "15 s", -EINVAL, "not a time span", NULL },
        { "KeepaliveInterval", "-1", -EINVAL, "not a time span", NULL },
        { "KeepaliveInterval", "1.5s", -EINVAL, "not a time span", NULL },
        { "KeepaliveInterval", "s", -EINVAL, "not a time span", NULL },
        { "KeepaliveInterval", "15x", -EINVAL, "not a time span", NULL },
        { "KeepaliveInterval", "1min 30s", -EINVAL, "not a time span", NULL },
        { "KeepaliveCountMax", "0", -EINVAL, "out of range (1-100): 0", NULL },
        { "KeepaliveCountMax", "101", -EINVAL, "out of range (1-100): 101", NULL },
        { "KeepaliveCountMax", "99999999999999999999999", -EINVAL, "out of range (1-100)", NULL },
        { "KeepaliveCountMax", "x", -EINVAL, "not a number: x", NULL },
        { "KeepaliveCountMax", "-1", -EINVAL, "not a number: -1", NULL },
        { "KeepaliveCountMax", "+1", -EINVAL, "not a number", NULL },
        { "KeepaliveCountMax", "1.0", -EINVAL, "not a number", NULL },
        { "Listen", "localhost:1080", -EINVAL, "must be an IP address or '*', not a host name: localhost", NULL },
        { "Listen", "vpn.example.com:1080", -EINVAL, "must be an IP address or '*', not a host name: vpn.example.com", NULL },
        { "Listen", "127.0.0.1:0", -EINVAL, "port out of range (1-65535): 0", NULL },
        { "Listen", "127.0.0.1:65536", -EINVAL, "port out of range (1-65535): 65536", NULL },
        { "Listen", "127.0.0.1:abc", -EINVAL, "not a valid port: abc", NULL },
        { "Listen", "127.0.0.1:", -EINVAL, "missing port", NULL },
        { "Listen", "127.0.0.1", -EINVAL, "expected IP:port, [IPv6]:port, *:port or an absolute socket path: 127.0.0.1", NULL },
        { "Listen", "1080", -EINVAL, "expected IP:port", NULL },
        { "Listen", "socks.sock", -EINVAL, "expected IP:port", NULL },
        { "Listen", "::1:1080", -EINVAL, "IPv6 addresses must be in brackets: ::1:1080", NULL },
        { "Listen", "[1.2.3.4]:1080", -EINVAL, "not a valid IPv6 address: [1.2.3.4]", NULL },
        { "Listen", "[::1]", -EINVAL, "expected IP:port", NULL },
        { "Listen", "300.1.1.1:1080", -EINVAL, "not a valid IP address: 300.1.1.1", NULL },
        { "Listen", ":1080", -EINVAL, "not a valid IP address: ", NULL },
        { "Listen", "/run/../x.sock", -EINVAL, "socket path is not normalized", NULL },
        { "Listen", "/run/x/", -EINVAL, "socket path must not end in '/'", NULL },
        { "PasswordFile", "pw", -EINVAL, "path is not absolute: pw", NULL },
        { "Username", "a\tb", -EINVAL, "value contains control characters", NULL },

        /* Local=: the listen side may be quoted, the target never. */
        { L, "0:db.internal:5432", -EINVAL, "port out of range (1-65535): 0", "db.internal" },
        { L, "65536:db.internal:5432", -EINVAL, "port out of range (1-65535): 65536", "db.internal" },
        { L, "abc:db.internal:5432", -EINVAL, "port is not a number", "abc" },
        { L, "db.internal:5432:5432:", -EINVAL, "bind address must be an IP address or '*', not a host name", "db.internal" },
        { L, "5432:db.internal:5432:", -EINVAL, "port is not a number", "db.internal" },
        { L, "/run/db.internal/../x:h:1", -EINVAL, "socket path is not normalized (no \"//\", \".\" or \"..\")", "db.internal" },
        { L, ":db.internal:5432", -EINVAL, "missing port", "db.internal" },
        { L, "5432:db.internal:0", -EINVAL, "target port out of range (1-65535)", "db.internal" },
        { L, "5432:db.internal:65536", -EINVAL, "target port out of range (1-65535)", "db.internal" },
        { L, "5432:db.internal:abc", -EINVAL, "target port is not a number", "db.internal" },
        { L, "5432:db.internal:", -EINVAL, "missing target port", "db.internal" },
        { L, "5432:bad_host-.internal:22", -EINVAL, "target host is not a valid host name", "bad_host" },
        { L, "5432::22", -EINVAL, "target host is not a valid host name", NULL },
        { L, "5432:[db.internal]:22", -EINVAL, "expected [bind:]port:host:hostport", "db.internal" },
        { L, "5432:[fe80::1::2]:22", -EINVAL, "target host is not a valid IPv6 address", "fe80" },
        { L, "5432:2001:db8::5:80", -EINVAL, "expected [bind:]port:host:hostport or /socket/path:host:hostport", "2001:db8" },
        { L, "5432:db.internal:22:33:44", -EINVAL, "expected [bind:]port:host:hostport", "db.internal" },
        { L, "5432", -EINVAL, "expected [bind:]port:host:hostport", NULL },
        { L, "5432:db.internal", -EINVAL, "expected [bind:]port:host:hostport", "db.internal" },
        { L, "[::1:8080:db.internal:80", -EINVAL, "expected [bind:]port:host:hostport", "db.internal" },
        { L, "localhost:5432:db.internal:22", -EINVAL, "bind address must be an IP address or '*', not a host name", "db.internal" },
        { L, "db.internal:5432:h:22", -EINVAL, "bind address must be an IP address or '*', not a host name", "db.internal" },
        { L, "10.0.0.300:80:db.internal:80", -EINVAL, "bind address is not a valid IP address", "10.0.0.300" },
        { L, "[10.0.0.1]:80:db.internal:80", -EINVAL, "bind address is not a valid IPv6 address", "10.0.0.1" },
        { L, "[::1::2]:80:db.internal:80", -EINVAL, "bind address is not a valid IPv6 address", "db.internal" },
        { L, "[::1:8080:[db.internal]:22", -EINVAL, "expected [bind:]port:host:hostport", "db.internal" },
        { L, "[::1:8080:10.9.8.7]:22:80", -EINVAL, "port is not a number", "10.9.8.7" },
        { L, "8080:/run/app.sock", -EINVAL, "unix socket targets are only supported in Remote=", "app.sock" },
        { L, "127.0.0.1:8080:/run/app.sock", -EINVAL, "unix socket targets are only supported in Remote=", "app.sock" },
        { L, "/run/pg.sock:/run/app.sock", -EINVAL, "unix socket targets are only supported in Remote=", "app.sock" },
        { L, "/run/x/../pg.sock:db.internal:5432", -EINVAL, "socket path is not normalized", "db.internal" },
        { L, "/run/pg.sock:db.internal", -EINVAL, "expected /socket/path:host:hostport", "db.internal" },
        { L, "/run/pg.sock:127.0.0.1:db.internal:80", -EINVAL, "expected /socket/path:host:hostport", "db.internal" },
        { L, "/run/pg.sock:db.internal:99999", -EINVAL, "target port out of range (1-65535)", "db.internal" },

        /* Remote= */
        { R, "0:127.0.0.1:80", -EINVAL, "dynamic remote ports (port 0) are not supported", NULL },
        { R, "0.0.0.0:0:secret.example:80", -EINVAL, "dynamic remote ports (port 0) are not supported", "secret" },
        { R, "000:secret.example:80", -EINVAL, "dynamic remote ports (port 0) are not supported", "secret" },
        { R, "65536:secret.example:80", -EINVAL, "port out of range (1-65535): 65536", "secret" },
        { R, "x:secret.example:80", -EINVAL, "port is not a number", "secret" },
        { R, "secret.example:80:8080:", -EINVAL, "missing target port", "secret" },
        { R, "8080:secret.example:80:", -EINVAL, "port is not a number", "secret" },
        { R, "/run/x.sock:secret.example:80", -EINVAL, "unix socket listeners are only supported in Local=", "secret" },
        { R, "8080:/run/../secret.sock", -EINVAL, "target socket path is not normalized", "secret" },
        { R, "8080:/run/secret/", -EINVAL, "target socket path must not end in '/'", "secret" },
        { R, "8080:secret.example:99999", -EINVAL, "target port out of range (1-65535)", "secret" },
        { R, "8080:secret.example:0", -EINVAL, "target port out of range (1-65535)", "secret" },
        { R, "8080:secret.example", -EINVAL, "expected [bind:]port:host:hostport or [bind:]port:/socket/path", "secret" },
        { R, "8080:-secret.example:80", -EINVAL, "target host is not a valid host name", "secret" },
        { R, "8080:[secret]:80", -EINVAL, "expected [bind:]port:host:hostport or [bind:]port:/socket/path", "secret" },
        { R, "8080:[5ec::1::2]:80", -EINVAL, "target host is not a valid IPv6 address", "5ec" },
        { R, "bad host:8080:secret.example:80", -EINVAL, "bind address is not a valid IP address or host name", "secret" },
        { R, "a:b:8080:/run/secret.sock", -EINVAL, "expected [bind:]port:host:hostport or [bind:]port:/socket/path", "secret" },
        { R, "8080", -EINVAL, "expected [bind:]port:host:hostport", NULL },
};
#undef L
#undef R

START_TEST(test_bad_value) {
        _cleanup_(profile_freep) Profile *p = base_profile(), *base = base_profile();
        ProfileError err = {};
        const char *expect_field = bad[_i].key;

        ck_assert_int_eq(profile_set(p, bad[_i].key, bad[_i].value, &err), bad[_i].r);
        ck_assert_str_eq(err.field, expect_field);
        ck_assert_uint_eq(err.line, 0);
        ck_assert_msg(strstr(err.reason, bad[_i].reason), "%s=%s: reason \"%s\", want \"%s\"",
                      bad[_i].key, bad[_i].value, err.reason, bad[_i].reason);
        if (bad[_i].hidden)
                ck_assert_msg(!strstr(err.reason, bad[_i].hidden), "reason leaks \"%s\": %s", bad[_i].hidden, err.reason);
        /* Reasons are printable ASCII. */
        for (const char *c = err.reason; *c; c++)
                ck_assert(*c >= 0x20 && *c < 0x7f);
        /* A failed set changes nothing. */
        ck_assert(profile_equal(p, base));
}
END_TEST

/* No bad Local=/Remote= line names its target in the reason, whatever is wrong with it. */
START_TEST(test_privacy) {
        static const char *const binds[] = { "", "127.0.0.1:", "*:", "[::1]:", "bad bind:", "localhost:", "[::1:", "10.0.0.300:" };
        static const char *const ports[] = { "8080", "0", "65536", "x", "" };
        static const char *const targets[] = {
                "secret-target.example:22", "secret-target.example:0", "secret-target.example:65536",
                "secret-target.example:x", "secret-target.example:", "secret-target.example", "-secret-target:22",
                "[secret-target]:22", "[2001:db8::5ec]:99999", "2001:db8::5ec:22", "/run/secret-target/../x.sock",
                "/run/secret-target/", "secret-target.example:22:1", "10.1.2.3:99999",
        };
        static const char *const keys[] = { "Local", "Remote" };
        unsigned failures = 0;

        for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                for (size_t b = 0; b < ELEMENTSOF(binds); b++)
                        for (size_t po = 0; po < ELEMENTSOF(ports); po++)
                                for (size_t t = 0; t < ELEMENTSOF(targets); t++) {
                                        _cleanup_(profile_freep) Profile *p = new_profile("x");
                                        ProfileError err = {};
                                        char value[256];
                                        int r;

                                        snprintf(value, sizeof value, "%s%s:%s", binds[b], ports[po], targets[t]);
                                        r = profile_set(p, keys[k], value, &err);
                                        if (r == 0)
                                                continue;
                                        failures++;
                                        ck_assert_int_eq(r, -EINVAL);
                                        ck_assert_str_eq(err.field, keys[k]);
                                        ck_assert_msg(!strstr(err.reason, "secret") && !strstr(err.reason, "5ec") &&
                                                      !strstr(err.reason, "10.1.2.3"),
                                                      "%s=%s: %s", keys[k], value, err.reason);
                                }
        /* Nearly all of them are bad; make sure the loop really tested something. */
        ck_assert_uint_gt(failures, 800);
}
END_TEST

/* Limits that need long values. */
static char *repeat(char c, size_t n, const char *prefix, const char *suffix) {
        size_t lp = strlen(prefix), ls = strlen(suffix);
        char *s = malloc(lp + n + ls + 1);

        ck_assert_ptr_nonnull(s);
        memcpy(s, prefix, lp);
        memset(s + lp, c, n);
        memcpy(s + lp + n, suffix, ls + 1);
        return s;
}

static void check_set(const char *key, const char *value, int r, const char *reason) {
        _cleanup_(profile_freep) Profile *p = base_profile();
        ProfileError err = {};

        ck_assert_int_eq(profile_set(p, key, value, &err), r);
        if (r < 0) {
                ck_assert_str_eq(err.field, key);
                ck_assert_msg(strstr(err.reason, reason), "%s", err.reason);
        } else if (profile_validate(p, NULL) == 0)
                assert_round_trip(p);
}

START_TEST(test_lengths) {
        char *s;

        /* paths: PROFILE_PATH_MAX bytes */
        s = repeat('a', PROFILE_PATH_MAX - 1, "/", "");
        check_set("Identity", s, 0, NULL);
        check_set("TLSCA", s, 0, NULL);
        free(s);
        s = repeat('a', PROFILE_PATH_MAX, "/", "");
        check_set("Identity", s, -EINVAL, "path is too long (max 4000 bytes)");
        check_set("PasswordFile", s, -EINVAL, "path is too long (max 4000 bytes)");
        free(s);

        /* socket paths: 107 bytes */
        s = repeat('s', PROFILE_SOCKET_PATH_MAX - 1, "/", "");
        check_set("Listen", s, 0, NULL);
        free(s);
        s = repeat('s', PROFILE_SOCKET_PATH_MAX, "/", "");
        check_set("Listen", s, -EINVAL, "socket path is too long (max 107 bytes)");
        free(s);
        s = repeat('s', PROFILE_SOCKET_PATH_MAX - 1, "/", ":h.example:22");
        check_set("Local", s, 0, NULL);
        free(s);
        s = repeat('s', PROFILE_SOCKET_PATH_MAX, "/", ":h.example:22");
        check_set("Local", s, -EINVAL, "socket path is too long (max 107 bytes)");
        free(s);
        s = repeat('s', PROFILE_SOCKET_PATH_MAX - 1, "8080:/", "");
        check_set("Remote", s, 0, NULL);
        free(s);
        s = repeat('s', PROFILE_SOCKET_PATH_MAX, "8080:/", "");
        check_set("Remote", s, -EINVAL, "target socket path is too long (max 107 bytes)");
        free(s);

        /* host names: labels up to 63, names up to 253 (254 with the trailing dot) */
        s = repeat('l', 63, "", ".example");
        check_set("Server", s, 0, NULL);
        free(s);
        s = repeat('l', 64, "", ".example");
        check_set("Server", s, -EINVAL, "not a valid host name");
        free(s);
        {
                char name[300] = "";
                for (int i = 0; i < 3; i++)
                        strcat(name, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."); /* 64 */
                strcat(name, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"); /* 61: 253 */
                ck_assert_uint_eq(strlen(name), 253);
                check_set("Server", name, 0, NULL);
                strcat(name, ".");
                check_set("Server", name, 0, NULL);
                check_set("TLSServerName", name, 0, NULL);
                name[253] = 'b';
                check_set("Server", name, -EINVAL, "not a valid host name");
                check_set("Local", "1:2:3", -EINVAL, "target host is not a valid host name");
        }

        /* user names */
        s = repeat('u', 32, "", "");
        check_set("User", s, 0, NULL);
        free(s);
        s = repeat('u', 33, "", "");
        check_set("User", s, -EINVAL, "not a valid user name");
        free(s);
        s = repeat('u', 255, "", "");
        check_set("Username", s, 0, NULL);
        free(s);
        s = repeat('u', 256, "", "");
        check_set("Username", s, -EINVAL, "too long (max 255 bytes)");
        free(s);

        /* A huge value is refused without trouble and without quoting all of it. */
        s = repeat('9', 100000, "host:", "");
        {
                _cleanup_(profile_freep) Profile *p = base_profile();
                ProfileError err = {};

                ck_assert_int_eq(profile_set(p, "Server", s, &err), -EINVAL);
                ck_assert(strstr(err.reason, "port out of range (1-65535): 999"));
                ck_assert_uint_lt(strlen(err.reason), sizeof err.reason);
        }
        free(s);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */

static const struct {
        const char *name;
        bool valid;
} names[] = {
        { "work-vps", true },
        { "a", true },
        { "_x.y-Z9", true },
        { "...", true },
        { ".hidden", true },
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true }, /* 64 */
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false }, /* 65 */
        { "", false },
        { ".", false },
        { "..", false },
        { "a/b", false },
        { "a b", false },
        { "a:b", false },
        { "w\xc3\xa9", false },
        { "a\nb", false },
};

START_TEST(test_names) {
        Profile *p = (Profile *) 0x1;
        ProfileError err = {};
        int r;

        ck_assert_int_eq(profile_name_is_valid(names[_i].name), names[_i].valid);
        r = profile_new(names[_i].name, &p, &err);
        if (names[_i].valid) {
                ck_assert_int_eq(r, 0);
                ck_assert_str_eq(p->name, names[_i].name);
                profile_free(p);
        } else {
                ck_assert_int_eq(r, -EINVAL);
                ck_assert_ptr_eq(p, (Profile *) 0x1);
                ck_assert_str_eq(err.field, "Name");
                ck_assert(strstr(err.reason, "not a valid profile name"));
                /* profile_parse says the same */
                memset(&err, 0, sizeof err);
                ck_assert_int_eq(profile_parse(names[_i].name, "[Tunnel]\nServer=h\n", 18, &p, &err), -EINVAL);
                ck_assert_str_eq(err.field, "Name");
        }
}
END_TEST

START_TEST(test_name_null) {
        Profile *p = NULL;

        ck_assert(!profile_name_is_valid(NULL));
        ck_assert_int_eq(profile_new(NULL, &p, NULL), -EINVAL);
        ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_defaults) {
        _cleanup_(profile_freep) Profile *p = new_profile("d");
        const Address *a;

        ck_assert_str_eq(p->name, "d");
        ck_assert_ptr_null(p->source);
        ck_assert(!p->read_only);
        ck_assert_ptr_null(p->server_host);
        ck_assert_uint_eq(p->server_port, 22);
        ck_assert_ptr_null(p->user);
        ck_assert_ptr_nonnull(p->host_keys);
        ck_assert_ptr_null(p->host_keys[0]);
        ck_assert_int_eq(p->host_key_policy, HOST_KEY_POLICY_STRICT);
        ck_assert_int_eq(p->transport, TRANSPORT_TCP);
        ck_assert(p->tls_verify);
        ck_assert(!p->auto_start);
        ck_assert_uint_eq(p->keepalive_interval_usec, 15 * USEC_PER_SEC);
        ck_assert_uint_eq(p->keepalive_count_max, 3);
        ck_assert(!p->socks_listen_set);
        ck_assert_uint_eq(profile_socks_listen(p, &a), 1);
        ck_assert_str_eq(a[0].host, "127.0.0.1");
        ck_assert_uint_eq(a[0].port, 1080);
        ck_assert_ptr_null(a[0].path);
        ck_assert_uint_eq(p->n_local + p->n_remote, 0);

        /* without Server= it does not validate, but it formats */
        ProfileError err = {};
        ck_assert_int_eq(profile_validate(p, &err), -EINVAL);
        ck_assert_str_eq(err.field, "Server");
        ck_assert_str_eq(err.reason, "missing");
        _cleanup_(freep) char *text = format_ok(p);
        ck_assert_str_eq(text, HEADER);

        set_ok(p, "Server", "h.example");
        _cleanup_(freep) char *text2 = format_ok(p);
        ck_assert_str_eq(text2, HEADER "\n[Tunnel]\nServer=h.example\n");
}
END_TEST

START_TEST(test_stored_values) {
        _cleanup_(profile_freep) Profile *p = new_profile("s");
        const Address *a;

        set_ok(p, "Server", "[2001:db8::1]:2222");
        ck_assert_str_eq(p->server_host, "2001:db8::1");
        ck_assert_uint_eq(p->server_port, 2222);
        set_ok(p, "Server", "vps.example");
        ck_assert_str_eq(p->server_host, "vps.example");
        ck_assert_uint_eq(p->server_port, 22);

        set_ok(p, "Listen", "*:1080");
        set_ok(p, "Listen", "[::1]:1081");
        set_ok(p, "Listen", "/run/s.sock");
        ck_assert_uint_eq(profile_socks_listen(p, &a), 3);
        ck_assert_str_eq(a[0].host, "0.0.0.0");
        ck_assert_uint_eq(a[0].port, 1080);
        ck_assert_str_eq(a[1].host, "::1");
        ck_assert_ptr_null(a[2].host);
        ck_assert_str_eq(a[2].path, "/run/s.sock");
        ck_assert_uint_eq(a[2].port, 0);

        set_ok(p, "Local", "5432:db.internal:5432");
        ck_assert_str_eq(p->local[0].listen.host, "127.0.0.1");
        ck_assert_uint_eq(p->local[0].listen.port, 5432);
        ck_assert_str_eq(p->local[0].target.host, "db.internal");
        ck_assert_uint_eq(p->local[0].target.port, 5432);
        set_ok(p, "Local", "/run/pg.sock:[2001:db8::5]:5432");
        ck_assert_str_eq(p->local[1].listen.path, "/run/pg.sock");
        ck_assert_ptr_null(p->local[1].listen.host);
        ck_assert_str_eq(p->local[1].target.host, "2001:db8::5");

        set_ok(p, "Remote", "8080:/run/app.sock");
        ck_assert_str_eq(p->remote[0].listen.host, "127.0.0.1");
        ck_assert_uint_eq(p->remote[0].listen.port, 8080);
        ck_assert_str_eq(p->remote[0].target.path, "/run/app.sock");
        ck_assert_ptr_null(p->remote[0].target.host);

        set_ok(p, "KeepaliveInterval", "1500ms");
        ck_assert_uint_eq(p->keepalive_interval_usec, 1500 * USEC_PER_MSEC);
        set_ok(p, "KeepaliveInterval", "0");
        ck_assert_uint_eq(p->keepalive_interval_usec, 0);
        set_ok(p, "Proxy", "socks5h://[::1]");
        ck_assert_str_eq(p->proxy, "socks5://[::1]:1080");

        /* Listen= disables, a later Listen= enables again with just that address */
        set_ok(p, "Listen", "");
        ck_assert(p->socks_listen_set);
        ck_assert_uint_eq(profile_socks_listen(p, &a), 0);
        set_ok(p, "Listen", "127.0.0.1:2000");
        ck_assert_uint_eq(profile_socks_listen(p, &a), 1);
        ck_assert_uint_eq(a[0].port, 2000);
}
END_TEST

/* A non-default value for every key, in profile_keys() order. */
static const char *const nondefault[][2] = {
        { "Server", "vps.example.com" },  { "User", "deploy" },
        { "Identity", "/etc/alknet/k" },  { "HostKey", FP1 },
        { "HostKeyPolicy", "accept-new" }, { "Transport", "tls" },
        { "TLSServerName", "front.example" }, { "TLSVerify", "no" },
        { "TLSCA", "/etc/ca.pem" },      { "TLSPin", PIN },
        { "Proxy", "http://p.example" }, { "AutoStart", "yes" },
        { "KeepaliveInterval", "1min" }, { "KeepaliveCountMax", "9" },
        { "Listen", "127.0.0.1:1081" },  { "Username", "u" },
        { "PasswordFile", "/etc/pw" },   { "Local", "1:h:2" },
        { "Remote", "1:h:2" },
};

START_TEST(test_reset) {
        _cleanup_(profile_freep) Profile *fresh = new_profile("r");
        size_t n;
        const ProfileKey *keys = profile_keys(&n);

        ck_assert_uint_eq(n, ELEMENTSOF(nondefault));
        for (size_t i = 0; i < n; i++) {
                _cleanup_(profile_freep) Profile *p = new_profile("r"), *q = new_profile("r");
                ProfileError err = {};

                ck_assert_str_eq(keys[i].key, nondefault[i][0]);
                set_ok(p, nondefault[i][0], nondefault[i][1]);
                ck_assert_msg(!profile_equal(p, fresh), "%s", nondefault[i][0]);
                ck_assert_int_eq(profile_reset(p, nondefault[i][0], &err), 0);
                ck_assert_msg(profile_equal(p, fresh), "%s", nondefault[i][0]);

                /* An empty value: the default too, except that Listen= disables SOCKS. */
                set_ok(q, nondefault[i][0], nondefault[i][1]);
                set_ok(q, nondefault[i][0], "");
                ck_assert_int_eq(profile_equal(q, fresh), !streq(nondefault[i][0], "Listen"));
        }

        /* Listen: reset after disabling brings the default back */
        _cleanup_(profile_freep) Profile *p = new_profile("r");
        set_ok(p, "Listen", "");
        ck_assert(!profile_equal(p, fresh));
        ck_assert_int_eq(profile_reset(p, "Listen", NULL), 0);
        ck_assert(!p->socks_listen_set);
        ck_assert(profile_equal(p, fresh));

        /* Lists are emptied by one empty value, whatever they held */
        set_ok(p, "HostKey", FP1);
        set_ok(p, "HostKey", FP2);
        set_ok(p, "HostKey", "");
        ck_assert_ptr_nonnull(p->host_keys);
        ck_assert_ptr_null(p->host_keys[0]);
        set_ok(p, "HostKey", FP2);
        ck_assert_str_eq(p->host_keys[0], FP2);
        ck_assert_ptr_null(p->host_keys[1]);

        ProfileError err = {};
        ck_assert_int_eq(profile_reset(p, "Bogus", &err), -ENOENT);
        ck_assert_str_eq(err.field, "Bogus");
        ck_assert_str_eq(err.reason, "unknown key");
}
END_TEST

START_TEST(test_list_caps) {
        static const char *const keys[] = { "HostKey", "Listen", "Local", "Remote" };
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

        for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
                _cleanup_(profile_freep) Profile *p = base_profile();
                _cleanup_(freep) char *text = NULL;
                size_t len = 0;
                FILE *f = open_memstream(&text, &len);
                ProfileError err = {};
                char value[128];

                fprintf(f, "[Tunnel]\nServer=h.example\n[%s]\n", k == 1 ? "Socks" : k == 0 ? "Tunnel" : "Forward");
                for (unsigned i = 0; i <= PROFILE_LIST_MAX; i++) {
                        if (k == 0)
                                snprintf(value, sizeof value, "SHA256:%.41s%c%c", B43, b64[i % 64], b64[i / 64]);
                        else if (k == 1)
                                snprintf(value, sizeof value, "127.0.0.1:%u", 2000 + i);
                        else
                                snprintf(value, sizeof value, "%u:h.example:22", 3000 + i);
                        fprintf(f, "%s=%s\n", keys[k], value);
                        if (i < PROFILE_LIST_MAX)
                                set_ok(p, keys[k], value);
                        else {
                                ck_assert_int_eq(profile_set(p, keys[k], value, &err), -E2BIG);
                                ck_assert_str_eq(err.field, keys[k]);
                                ck_assert_str_eq(err.reason, "too many entries (max 64)");
                        }
                }
                fclose(f);
                ck_assert_int_eq(profile_validate(p, NULL), 0);
                assert_round_trip(p);

                /* the same from a file, with the line of the 65th entry */
                Profile *q = NULL;
                memset(&err, 0, sizeof err);
                ck_assert_int_eq(profile_parse("base", text, len, &q, &err), -E2BIG);
                ck_assert_ptr_null(q);
                ck_assert_str_eq(err.field, keys[k]);
                ck_assert_uint_eq(err.line, 3 + PROFILE_LIST_MAX + 1);

                /* an empty value makes room again */
                set_ok(p, keys[k], "");
                set_ok(p, keys[k], value);
        }
}
END_TEST

/* ---------------------------------------------------------------------------------------- */

static const struct {
        const char *text;
        int r;
        const char *field;
        unsigned line;
        const char *reason; /* exact */
} files[] = {
        /* good */
        { "[Tunnel]\nServer=h\n", 0, NULL, 0, NULL },
        { "", -EINVAL, "Server", 0, "missing" },
        { "[Tunnel]\nServer=h\n[Socks]\nListen=\n[Forward]\nLocal=1080:t:1\n", 0, NULL, 0, NULL },
        { "[Tunnel]\nServer=h\nTransport=tls\nTLSPin=" PIN "\nTLSVerify=no\n", 0, NULL, 0, NULL },
        { "[Tunnel]\nServer=h\n[Socks]\nUsername=u\nPasswordFile=/p\n", 0, NULL, 0, NULL },
        { "[Tunnel]\nServer=h\n[Socks]\nListen=127.0.0.1:2000\nListen=127.0.0.2:2000\nListen=127.0.0.1:2001\n", 0, NULL, 0, NULL },
        { "[Tunnel]\nServer=h\n[Forward]\nRemote=8080:a:1\nRemote=127.0.0.2:8080:a:1\nLocal=8080:a:1\n", 0, NULL, 0, NULL },
        { "[Tunnel]\nServer=h\n[Socks]\nListen=/run/a.sock\n[Forward]\nLocal=/run/b.sock:a:1\n", 0, NULL, 0, NULL },
        { "[Forward]\nLocal=1:a:1\n[Tunnel]\nServer=h\n[Forward]\nLocal=2:a:1\n", 0, NULL, 0, NULL },
        /* syntax */
        { "[Tunnel]\nServer=h\nfoo\n", -EBADMSG, "", 3, "missing '='" },
        { "Server=h\n", -EBADMSG, "", 1, "assignment outside of a section" },
        { "[Tunnel]\nServer=h\n[Socks\n", -EBADMSG, "", 3, "section header not closed" },
        /* keys and sections */
        { "[Tunnel]\nServer=h\n[Bogus]\nX=1\n", -ENOENT, "X", 4, "unknown section [Bogus]" },
        { "[tunnel]\nServer=h\n", -ENOENT, "Server", 2, "unknown section [tunnel]" },
        { "[Tunnel]\nServer=h\nListen=127.0.0.1:1\n", -ENOENT, "Listen", 3, "belongs in [Socks], not [Tunnel]" },
        { "[Forward]\nServer=h\n", -ENOENT, "Server", 2, "belongs in [Tunnel], not [Forward]" },
        { "[Tunnel]\nServr=h\n", -ENOENT, "Servr", 2, "unknown key" },
        { "[Tunnel]\nServerServerServerServerServerServer=h\n", -ENOENT, "ServerServerServerServerServerS", 2, "unknown key" },
        /* values */
        { "[Tunnel]\nServer=h\n\n# c\nKeepaliveCountMax=0\n", -EINVAL, "KeepaliveCountMax", 5, "out of range (1-100): 0" },
        { "[Tunnel]\r\nServer=h:70000\r\n", -EINVAL, "Server", 2, "port out of range (1-65535): 70000" },
        { "[Tunnel]\nServer=h\n[Forward]\nLocal=1:secret.example:0\n", -EINVAL, "Local", 4, "target port out of range (1-65535)" },
        /* validation, with the line of the setting at fault */
        { "[Tunnel]\nUser=x\n", -EINVAL, "Server", 0, "missing" },
        { "[Tunnel]\nServer=h\nServer=\n", -EINVAL, "Server", 3, "missing" },
        { "[Tunnel]\nServer=h\nTLSServerName=n.example\n", -EINVAL, "TLSServerName", 3, "only valid with Transport=tls" },
        { "[Tunnel]\nServer=h\nTLSVerify=no\n", -EINVAL, "TLSVerify", 3, "only valid with Transport=tls" },
        { "[Tunnel]\nTLSCA=/ca\nServer=h\n", -EINVAL, "TLSCA", 2, "only valid with Transport=tls" },
        { "[Tunnel]\nServer=h\nTLSPin=" PIN "\nTransport=tcp\n", -EINVAL, "TLSPin", 3, "only valid with Transport=tls" },
        { "[Tunnel]\nServer=h\nTransport=tls\nTLSPin=" PIN "\nTransport=\n", -EINVAL, "TLSPin", 4, "only valid with Transport=tls" },
        { "[Tunnel]\nServer=h\n[Socks]\nUsername=u\n", -EINVAL, "PasswordFile", 4, "required when Username= is set" },
        { "[Tunnel]\nServer=h\n[Socks]\n\nPasswordFile=/p\n", -EINVAL, "Username", 5, "required when PasswordFile= is set" },
        { "[Tunnel]\nServer=h\n[Socks]\nListen=127.0.0.1:1080\nListen=127.0.0.1:1080\n", -EINVAL, "Listen", 5,
          "127.0.0.1:1080 is already used by Listen= in this profile" },
        { "[Tunnel]\nServer=h\n[Forward]\nLocal=1080:db:5432\n", -EINVAL, "Local", 4,
          "127.0.0.1:1080 is already used by the default Listen= in this profile" },
        { "[Tunnel]\nServer=h\n[Socks]\nListen=*:2000\n[Forward]\nLocal=2:a:1\nLocal=2000:secret:1\n", -EINVAL, "Local", 7,
          "127.0.0.1:2000 is already used by Listen= in this profile" },
        { "[Tunnel]\nServer=h\n[Socks]\nListen=[::]:2000\nListen=127.0.0.1:2000\n", -EINVAL, "Listen", 5,
          "127.0.0.1:2000 is already used by Listen= in this profile" },
        { "[Tunnel]\nServer=h\n[Socks]\nListen=[::1]:2000\nListen=[0::1]:2000\n", -EINVAL, "Listen", 5,
          "[0::1]:2000 is already used by Listen= in this profile" },
        { "[Tunnel]\nServer=h\n[Socks]\nListen=\n[Forward]\nLocal=[::1]:5:a:1\nLocal=*:5:b:1\n", -EINVAL, "Local", 7,
          "0.0.0.0:5 is already used by Local= in this profile" },
        { "[Tunnel]\nServer=h\n[Socks]\nListen=/run/a.sock\n[Forward]\nLocal=/run/a.sock:a:1\n", -EINVAL, "Local", 6,
          "/run/a.sock is already used by Listen= in this profile" },
        { "[Tunnel]\nServer=h\n[Forward]\nRemote=8080:a:1\nRemote=127.0.0.1:8080:/run/b.sock\n", -EINVAL, "Remote", 5,
          "127.0.0.1:8080 is already used by Remote= in this profile" },
        { "[Tunnel]\nServer=h\n[Forward]\nRemote=*:8080:a:1\nRemote=gw.example:8080:a:1\n", -EINVAL, "Remote", 5,
          "gw.example:8080 is already used by Remote= in this profile" },
        { "[Tunnel]\nServer=h\n[Forward]\nRemote=GW.example:8080:a:1\nRemote=gw.example:8080:a:1\n", -EINVAL, "Remote", 5,
          "gw.example:8080 is already used by Remote= in this profile" },
        /* the last value wins for single keys; the file is read in order */
        { "[Tunnel]\nServer=a\nServer=h:0\n", -EINVAL, "Server", 3, "port out of range (1-65535): 0" },
};

START_TEST(test_parse) {
        Profile *p = (Profile *) 0x1;
        ProfileError err = { .field = "sentinel", .line = 4242 };
        const char *text = files[_i].text;
        size_t size = strlen(text);
        int r;

        r = profile_parse("work", text, size, &p, &err);
        ck_assert_msg(r == files[_i].r, "%d != %d: %s: %s", r, files[_i].r, err.field, err.reason);
        if (r == 0) {
                ck_assert_str_eq(err.field, "sentinel");
                ck_assert_uint_eq(err.line, 4242);
                ck_assert_str_eq(p->name, "work");
                assert_round_trip(p);
                profile_free(p);
                return;
        }
        ck_assert_ptr_eq(p, (Profile *) 0x1);
        ck_assert_str_eq(err.field, files[_i].field);
        ck_assert_uint_eq(err.line, files[_i].line);
        ck_assert_str_eq(err.reason, files[_i].reason);
        ck_assert(!strstr(err.reason, "secret"));
        /* err may be NULL */
        ck_assert_int_eq(profile_parse("work", text, size, &p, NULL), files[_i].r);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */

static const struct {
        const char *a, *b; /* [Socks] and [Forward] lines; [Tunnel] Server= is added */
        int r;
        const char *field, *reason;
} conflicts[] = {
        { "", "", -EADDRINUSE, "Listen", "127.0.0.1:1080 is already used by profile work-vps" },
        { "", "Listen=127.0.0.1:1081\n", 0, NULL, NULL },
        { "Listen=127.0.0.1:1081\n", "Listen=127.0.0.1:1081\n", -EADDRINUSE, "Listen", "127.0.0.1:1081 is already used by profile work-vps" },
        { "Listen=0.0.0.0:1080\n", "", -EADDRINUSE, "Listen", "127.0.0.1:1080 is already used by profile work-vps" },
        { "Listen=127.0.0.1:1080\n", "Listen=*:1080\n", -EADDRINUSE, "Listen", "0.0.0.0:1080 is already used by profile work-vps" },
        { "Listen=127.0.0.1:1080\n", "Listen=127.0.0.2:1080\n", 0, NULL, NULL },
        { "Listen=127.0.0.1:1080\n", "Listen=127.0.0.1:1081\nListen=127.0.0.1:1082\n", 0, NULL, NULL },
        { "Listen=\n[Forward]\nLocal=5432:db:5432\n", "Listen=\n[Forward]\nLocal=*:5432:other:1\n", -EADDRINUSE, "Local",
          "0.0.0.0:5432 is already used by profile work-vps" },
        { "Listen=\n[Forward]\nLocal=5432:db:5432\n", "Listen=127.0.0.1:5432\n", -EADDRINUSE, "Listen",
          "127.0.0.1:5432 is already used by profile work-vps" },
        { "Listen=\n[Forward]\nLocal=5432:db:5432\n", "Listen=\n[Forward]\nLocal=5433:db:5432\n", 0, NULL, NULL },
        { "Listen=/run/a.sock\n", "Listen=\n[Forward]\nLocal=/run/a.sock:h:1\n", -EADDRINUSE, "Local",
          "/run/a.sock is already used by profile work-vps" },
        { "Listen=/run/a.sock\n", "Listen=/run/b.sock\n", 0, NULL, NULL },
        { "Listen=/run/a.sock\n", "Listen=127.0.0.1:1080\n", 0, NULL, NULL },
        { "Listen=[::1]:1080\n", "Listen=[::1]:1080\n", -EADDRINUSE, "Listen", "[::1]:1080 is already used by profile work-vps" },
        { "Listen=[::]:1080\n", "", -EADDRINUSE, "Listen", "127.0.0.1:1080 is already used by profile work-vps" },
        { "Listen=[::1]:1080\n", "", 0, NULL, NULL },
        { "Listen=\n", "Listen=\n", 0, NULL, NULL },
        { "Listen=\n[Forward]\nRemote=8080:a:1\n", "Listen=\n[Forward]\nRemote=8080:a:1\n", 0, NULL, NULL },
        { "Listen=\n[Forward]\nRemote=8080:a:1\n", "Listen=127.0.0.1:8080\n", 0, NULL, NULL },
};

static Profile *socks_profile(const char *name, const char *socks) {
        char text[512];

        snprintf(text, sizeof text, "[Tunnel]\nServer=h.example\n[Socks]\n%s", socks);
        return parse_ok(name, text);
}

START_TEST(test_parse_nul) {
        static const char text[] = "[Tunnel]\nServer=h\0x\n";
        Profile *p = NULL;
        ProfileError err = {};

        ck_assert_int_eq(profile_parse("work", text, sizeof text - 1, &p, &err), -EBADMSG);
        ck_assert_ptr_null(p);
        ck_assert_str_eq(err.field, "");
        ck_assert_uint_eq(err.line, 2);
        ck_assert_str_eq(err.reason, "NUL byte in text");
}
END_TEST

START_TEST(test_conflicts) {
        _cleanup_(profile_freep) Profile *a = socks_profile("work-vps", conflicts[_i].a),
                                         *b = socks_profile("home", conflicts[_i].b);
        ProfileError err = { .field = "sentinel" };

        ck_assert_int_eq(profile_conflicts(a, b, &err), conflicts[_i].r);
        if (conflicts[_i].r == 0) {
                ck_assert_str_eq(err.field, "sentinel");
                /* and symmetric */
                ck_assert_int_eq(profile_conflicts(b, a, NULL), 0);
                return;
        }
        ck_assert_str_eq(err.field, conflicts[_i].field);
        ck_assert_uint_eq(err.line, 0);
        ck_assert_str_eq(err.reason, conflicts[_i].reason);
        ck_assert_int_eq(profile_conflicts(b, a, NULL), -EADDRINUSE);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */

static const char rich_in[] =
        "# an admin's file\n"
        "[Forward]\n"
        "Local=5432:db.internal:5432\n"
        "[Tunnel]\n"
        "Server = vps.example.com:2222\n"
        "User=deploy\n"
        "Identity=/etc/alknet/keys/work\n"
        "HostKey=" FP1 "\n"
        "HostKey=" FP2 "\n"
        "HostKeyPolicy=accept-new\n"
        "Transport=tls\n"
        "TLSServerName=front.example.com\n"
        "TLSVerify=off\n"
        "TLSCA=/etc/alknet/ca.pem\n"
        "TLSPin=" PIN "\n"
        "Proxy=socks5h://127.0.0.1:9050\n"
        "AutoStart=true\n"
        "KeepaliveInterval=30\n"
        "KeepaliveCountMax=5\n"
        "[Socks]\n"
        "Listen=127.0.0.1:1081\n"
        "Listen=[::1]:1081\n"
        "Listen=/run/alknet/work.sock\n"
        "Username=alice\n"
        "PasswordFile=/etc/alknet/socks.pw\n"
        "[Forward]\n"
        "Local=/run/alknet/pg.sock:db.internal:5432\n"
        "Local=[::1]:8443:[2001:db8::5]:443\n"
        "Remote=*:8080:127.0.0.1:80\n"
        "Remote=9090:/run/app.sock\n";

static const char rich_out[] =
        HEADER
        "\n"
        "[Tunnel]\n"
        "Server=vps.example.com:2222\n"
        "User=deploy\n"
        "Identity=/etc/alknet/keys/work\n"
        "HostKey=" FP1 "\n"
        "HostKey=" FP2 "\n"
        "HostKeyPolicy=accept-new\n"
        "Transport=tls\n"
        "TLSServerName=front.example.com\n"
        "TLSVerify=no\n"
        "TLSCA=/etc/alknet/ca.pem\n"
        "TLSPin=" PIN "\n"
        "Proxy=socks5://127.0.0.1:9050\n"
        "AutoStart=yes\n"
        "KeepaliveInterval=30s\n"
        "KeepaliveCountMax=5\n"
        "\n"
        "[Socks]\n"
        "Listen=127.0.0.1:1081\n"
        "Listen=[::1]:1081\n"
        "Listen=/run/alknet/work.sock\n"
        "Username=alice\n"
        "PasswordFile=/etc/alknet/socks.pw\n"
        "\n"
        "[Forward]\n"
        "Local=127.0.0.1:5432:db.internal:5432\n"
        "Local=/run/alknet/pg.sock:db.internal:5432\n"
        "Local=[::1]:8443:[2001:db8::5]:443\n"
        "Remote=0.0.0.0:8080:127.0.0.1:80\n"
        "Remote=127.0.0.1:9090:/run/app.sock\n";

START_TEST(test_round_trip_rich) {
        _cleanup_(profile_freep) Profile *p = parse_ok("work-vps", rich_in), *q = NULL, *d = NULL;
        _cleanup_(freep) char *text = format_ok(p);
        size_t n;

        ck_assert_str_eq(text, rich_out);
        q = parse_ok("work-vps", text);
        ck_assert(profile_equal(p, q));
        assert_round_trip(q);

        /* The keys come out in profile_keys() order. */
        const ProfileKey *keys = profile_keys(&n);
        const char *at = text;
        for (size_t i = 0; i < n; i++) {
                char want[64];
                const char *f;

                snprintf(want, sizeof want, "\n%s=", keys[i].key);
                f = strstr(text, want);
                ck_assert_ptr_nonnull(f);
                ck_assert(f >= at);
                at = f;
        }

        /* dup: equal, independent, and carries the origin */
        free(p->source);
        p->source = strdup("/etc/alknet/profiles.d/work-vps.conf");
        p->read_only = true;
        ck_assert_int_eq(profile_dup(p, &d), 0);
        ck_assert(profile_equal(p, d));
        ck_assert_str_eq(d->source, p->source);
        ck_assert(d->read_only);
        ck_assert(profile_equal(p, q)); /* origin is not a setting */
        set_ok(d, "Local", "");
        set_ok(d, "HostKey", "");
        ck_assert(!profile_equal(p, d));
        ck_assert_uint_eq(p->n_local, 3);
        ck_assert_str_eq(p->host_keys[1], FP2);
}
END_TEST

START_TEST(test_round_trip_max) {
        _cleanup_(profile_freep) Profile *p = new_profile("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        char *path = repeat('p', PROFILE_PATH_MAX - 1, "/", "");
        char *sock = repeat('s', PROFILE_SOCKET_PATH_MAX - 1, "/", "");
        char *name = repeat('u', 255, "", "");
        char value[512];

        set_ok(p, "Server", "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535");
        set_ok(p, "Identity", path);
        set_ok(p, "Transport", "tls");
        set_ok(p, "TLSCA", path);
        set_ok(p, "Username", name);
        set_ok(p, "PasswordFile", path);
        set_ok(p, "Listen", sock);
        snprintf(value, sizeof value, "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.254]:00001:%s", sock);
        set_ok(p, "Remote", value);
        ck_assert_int_eq(profile_validate(p, NULL), 0);
        assert_round_trip(p);
        free(path);
        free(sock);
        free(name);
}
END_TEST

START_TEST(test_equal) {
        _cleanup_(profile_freep) Profile *a = new_profile("e"), *b = new_profile("e"), *c = new_profile("other");

        ck_assert(profile_equal(a, b));
        ck_assert(!profile_equal(a, c));
        /* an explicit default equals the implicit one */
        set_ok(b, "Listen", "127.0.0.1:1080");
        set_ok(b, "User", "alknet");
        ck_assert(profile_equal(a, b));
        set_ok(b, "Listen", "127.0.0.1:1081");
        ck_assert(!profile_equal(a, b));
        /* order of list entries matters */
        set_ok(a, "Listen", "127.0.0.1:1081");
        set_ok(a, "Listen", "127.0.0.1:1080");
        ck_assert(!profile_equal(a, b));
        /* a zeroed host_keys is an empty list */
        _cleanup_(profile_freep) Profile *d = new_profile("e"), *e = new_profile("e");
        d->host_keys = strv_free(d->host_keys);
        ck_assert(profile_equal(d, e));
}
END_TEST

START_TEST(test_address_format) {
        static const struct {
                Address a;
                const char *expect;
        } t[] = {
                { { .host = (char *) "127.0.0.1", .port = 1080 }, "127.0.0.1:1080" },
                { { .host = (char *) "::1", .port = 22 }, "[::1]:22" },
                { { .host = (char *) "vps.example.com", .port = 65535 }, "vps.example.com:65535" },
                { { .path = (char *) "/run/x.sock" }, "/run/x.sock" },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_(freep) char *s = NULL;

                ck_assert_int_eq(address_format(&t[i].a, &s), 0);
                ck_assert_str_eq(s, t[i].expect);
        }

        char *s = (char *) 0x1;
        ck_assert_int_eq(address_format(&(Address) {}, &s), -EINVAL);
        ck_assert_ptr_eq(s, (char *) 0x1);

        static const struct {
                Forward f;
                const char *expect;
        } fw[] = {
                { { { (char *) "127.0.0.1", 5432, NULL }, { (char *) "db.internal", 5432, NULL } }, "127.0.0.1:5432:db.internal:5432" },
                { { { (char *) "::1", 8443, NULL }, { (char *) "2001:db8::5", 443, NULL } }, "[::1]:8443:[2001:db8::5]:443" },
                { { { NULL, 0, (char *) "/run/pg.sock" }, { (char *) "db", 5432, NULL } }, "/run/pg.sock:db:5432" },
                { { { (char *) "0.0.0.0", 8080, NULL }, { NULL, 0, (char *) "/run/app.sock" } }, "0.0.0.0:8080:/run/app.sock" },
        };
        for (size_t i = 0; i < ELEMENTSOF(fw); i++) {
                _cleanup_(freep) char *f = NULL;

                ck_assert_int_eq(forward_format(&fw[i].f, &f), 0);
                ck_assert_str_eq(f, fw[i].expect);
        }
        ck_assert_int_eq(forward_format(&(Forward) { .listen = fw[0].f.listen }, &s), -EINVAL);
        ck_assert_ptr_eq(s, (char *) 0x1);
}
END_TEST

START_TEST(test_tables) {
        size_t n = 0;
        const ProfileKey *k = profile_keys(&n);

        ck_assert_str_eq(host_key_policy_to_string(HOST_KEY_POLICY_STRICT), "strict");
        ck_assert_str_eq(host_key_policy_to_string(HOST_KEY_POLICY_ACCEPT_NEW), "accept-new");
        ck_assert_ptr_null(host_key_policy_to_string(_HOST_KEY_POLICY_MAX));
        ck_assert_ptr_null(host_key_policy_to_string(_HOST_KEY_POLICY_INVALID));
        ck_assert_int_eq(host_key_policy_from_string("strict"), HOST_KEY_POLICY_STRICT);
        ck_assert_int_eq(host_key_policy_from_string("accept-new"), HOST_KEY_POLICY_ACCEPT_NEW);
        ck_assert_int_eq(host_key_policy_from_string("Strict"), -EINVAL);
        ck_assert_int_eq(host_key_policy_from_string(NULL), -EINVAL);
        ck_assert_str_eq(transport_to_string(TRANSPORT_TCP), "tcp");
        ck_assert_str_eq(transport_to_string(TRANSPORT_TLS), "tls");
        ck_assert_ptr_null(transport_to_string(_TRANSPORT_MAX));
        ck_assert_int_eq(transport_from_string("tls"), TRANSPORT_TLS);
        ck_assert_int_eq(transport_from_string("tcp"), TRANSPORT_TCP);
        ck_assert_int_eq(transport_from_string(""), -EINVAL);

        ck_assert_uint_eq(n, 19);
        ck_assert_str_eq(k[0].section, "Tunnel");
        ck_assert_str_eq(k[0].key, "Server");
        ck_assert(!k[0].list);
        ck_assert_str_eq(k[18].section, "Forward");
        ck_assert_str_eq(k[18].key, "Remote");
        ck_assert(k[18].list);
        for (size_t i = 0; i < n; i++)
                ck_assert_ptr_eq(profile_key_lookup(k[i].key), &k[i]);
        ck_assert_str_eq(profile_key_lookup("Listen")->section, "Socks");
        ck_assert(profile_key_lookup("HostKey")->list);
        ck_assert(!profile_key_lookup("Username")->list);
        ck_assert_ptr_null(profile_key_lookup("listen"));
        ck_assert_ptr_null(profile_key_lookup(""));
        ck_assert_ptr_eq(profile_keys(NULL), k);
}
END_TEST

static Suite *profile_suite(void) {
        Suite *s = suite_create("profile");
        TCase *tc;

        tc = tcase_create("values");
        tcase_add_loop_test(tc, test_good_value, 0, ELEMENTSOF(good));
        tcase_add_loop_test(tc, test_bad_value, 0, ELEMENTSOF(bad));
        tcase_add_test(tc, test_privacy);
        tcase_add_test(tc, test_lengths);
        tcase_add_loop_test(tc, test_names, 0, ELEMENTSOF(names));
        tcase_add_test(tc, test_name_null);
        tcase_add_test(tc, test_defaults);
        tcase_add_test(tc, test_stored_values);
        tcase_add_test(tc, test_reset);
        tcase_add_test(tc, test_list_caps);
        suite_add_tcase(s, tc);

        tc = tcase_create("profiles");
        tcase_add_loop_test(tc, test_parse, 0, ELEMENTSOF(files));
        tcase_add_test(tc, test_parse_nul);
        tcase_add_loop_test(tc, test_conflicts, 0, ELEMENTSOF(conflicts));
        tcase_add_test(tc, test_round_trip_rich);
        tcase_add_test(tc, test_round_trip_max);
        tcase_add_test(tc, test_equal);
        tcase_add_test(tc, test_address_format);
        tcase_add_test(tc, test_tables);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(profile_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
