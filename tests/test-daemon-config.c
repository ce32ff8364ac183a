/* Unit tests for alknetd.conf: every key, bad values, unknown keys and sections, drop-ins. */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "daemon-config.h"
#include "log.h"
#include "macro.h"
#include "resolve.h"
#include "server.h"

static void parse(DaemonConfig *c, const char *text, LoadProblems *problems) {
        daemon_config_init(c);
        ck_assert_int_eq(daemon_config_parse(c, "test.conf", text, strlen(text), problems), 0);
}

START_TEST(test_defaults) {
        DaemonConfig c;
        LoadProblems p = {};

        parse(&c, "", &p);
        ck_assert(!c.admin_gid_set);
        ck_assert_uint_eq(c.max_connections, CONTROL_MAX_CONNECTIONS_DEFAULT);
        ck_assert_uint_eq(c.max_message_size, CONTROL_MAX_MESSAGE_SIZE_DEFAULT);
        ck_assert_uint_eq(p.n, 0);
}
END_TEST

START_TEST(test_good_values) {
        DaemonConfig c;
        LoadProblems p = {};

        parse(&c, "# comment\n[Control]\nAdminGroup=4242\nMaxConnections=8\nMaxMessageSize=128K\n", &p);
        ck_assert_uint_eq(p.n, 0);
        ck_assert(c.admin_gid_set);
        ck_assert_uint_eq(c.admin_gid, 4242);
        ck_assert_uint_eq(c.max_connections, 8);
        ck_assert_uint_eq(c.max_message_size, 128 * 1024);

        parse(&c, "[Control]\nAdminGroup=root\nMaxMessageSize=1M\n", &p);
        ck_assert(c.admin_gid_set);
        ck_assert_uint_eq(c.admin_gid, 0);
        ck_assert_uint_eq(c.max_message_size, 1024 * 1024);

        /* An empty value restores the default. */
        parse(&c, "[Control]\nAdminGroup=4242\nAdminGroup=\nMaxConnections=9\nMaxConnections=\n", &p);
        ck_assert(!c.admin_gid_set);
        ck_assert_uint_eq(c.max_connections, CONTROL_MAX_CONNECTIONS_DEFAULT);
        load_problems_done(&p);
}
END_TEST

static const struct {
        const char *text;
        unsigned line;
        const char *field;
        const char *reason;
} bad[] = {
        { "[Control]\nAdminGroup=no-such-group-here\n", 2, "AdminGroup", "no such group: no-such-group-here" },
        { "[Control]\nMaxConnections=0\n", 2, "MaxConnections", "not a number in 1-4096: 0" },
        { "[Control]\nMaxConnections=4097\n", 2, "MaxConnections", "not a number in 1-4096: 4097" },
        { "[Control]\nMaxConnections=-1\n", 2, "MaxConnections", "not a number in 1-4096: -1" },
        { "[Control]\nMaxConnections=12x\n", 2, "MaxConnections", "not a number in 1-4096: 12x" },
        { "[Control]\nMaxMessageSize=1K\n", 2, "MaxMessageSize", "not a size in 4K-16M: 1K" },
        { "[Control]\nMaxMessageSize=17M\n", 2, "MaxMessageSize", "not a size in 4K-16M: 17M" },
        { "[Control]\nMaxMessageSize=64Q\n", 2, "MaxMessageSize", "not a size in 4K-16M: 64Q" },
        { "[Control]\nFoo=bar\n", 2, "Foo", "unknown key" },
        { "\n[Nope]\nFoo=bar\n", 3, "Foo", "unknown section [Nope]" },
        { "[Control]\nno equals sign\n", 2, "", NULL },
        { "Key=before-section\n", 1, "", NULL },
};

START_TEST(test_bad_values) {
        DaemonConfig c;
        LoadProblems p = {};

        parse(&c, bad[_i].text, &p);
        ck_assert_uint_eq(p.n, 1);
        ck_assert_str_eq(p.items[0].file, "test.conf");
        ck_assert_uint_eq(p.items[0].line, bad[_i].line);
        ck_assert_str_eq(p.items[0].field, bad[_i].field);
        if (bad[_i].reason)
                ck_assert_str_eq(p.items[0].reason, bad[_i].reason);
        /* A bad value leaves the default in force. */
        ck_assert(!c.admin_gid_set);
        ck_assert_uint_eq(c.max_connections, CONTROL_MAX_CONNECTIONS_DEFAULT);
        ck_assert_uint_eq(c.max_message_size, CONTROL_MAX_MESSAGE_SIZE_DEFAULT);
        load_problems_done(&p);
}
END_TEST

START_TEST(test_parse_size) {
        size_t v = 0;

        ck_assert_int_eq(parse_size("4096", &v), 0);
        ck_assert_uint_eq(v, 4096);
        ck_assert_int_eq(parse_size("64K", &v), 0);
        ck_assert_uint_eq(v, 65536);
        ck_assert_int_eq(parse_size("2M", &v), 0);
        ck_assert_uint_eq(v, 2 * 1024 * 1024);
        ck_assert_int_eq(parse_size("10B", &v), 0);
        ck_assert_uint_eq(v, 10);
        v = 7;
        ck_assert_int_eq(parse_size("", &v), -EINVAL);
        ck_assert_int_eq(parse_size("K", &v), -EINVAL);
        ck_assert_int_eq(parse_size("-1", &v), -EINVAL);
        ck_assert_int_eq(parse_size("1G", &v), -EINVAL);
        ck_assert_int_eq(parse_size("99999999999999999999", &v), -EINVAL);
        ck_assert_int_eq(parse_size("18446744073709551615K", &v), -ERANGE);
        ck_assert_uint_eq(v, 7);
}
END_TEST

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
}

START_TEST(test_load_dropins) {
        char dir[] = "/tmp/test-daemon-config-XXXXXX", path[256], cmd[300];
        DaemonConfig c;
        LoadProblems p = {};

        ck_assert_ptr_nonnull(mkdtemp(dir));

        /* Missing files are fine. */
        daemon_config_init(&c);
        ck_assert_int_eq(daemon_config_load(&c, dir, &p), 0);
        ck_assert_uint_eq(p.n, 0);

        snprintf(path, sizeof path, "%s/alknetd.conf", dir);
        write_file(path, "[Control]\nMaxConnections=10\nAdminGroup=10\n");
        snprintf(path, sizeof path, "%s/alknetd.conf.d", dir);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        snprintf(path, sizeof path, "%s/alknetd.conf.d/20-b.conf", dir);
        write_file(path, "[Control]\nMaxConnections=30\n");
        snprintf(path, sizeof path, "%s/alknetd.conf.d/10-a.conf", dir);
        write_file(path, "[Control]\nMaxConnections=20\nBogus=1\n");
        snprintf(path, sizeof path, "%s/alknetd.conf.d/30-c.conf.disabled", dir);
        write_file(path, "[Control]\nMaxConnections=40\n");

        daemon_config_init(&c);
        ck_assert_int_eq(daemon_config_load(&c, dir, &p), 0);
        /* Drop-ins apply in name order over the main file. */
        ck_assert_uint_eq(c.max_connections, 30);
        ck_assert_uint_eq(c.admin_gid, 10);
        ck_assert_uint_eq(p.n, 1);
        ck_assert_str_eq(p.items[0].field, "Bogus");
        ck_assert_uint_eq(p.items[0].line, 3);
        ck_assert_ptr_nonnull(strstr(p.items[0].file, "alknetd.conf.d/10-a.conf"));
        load_problems_done(&p);

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_server_section) {
        DaemonConfig c;
        LoadProblems p = {};

        parse(&c,
              "[Server]\n"
              "Listen=tcp:0.0.0.0:2222\n"
              "Listen=tls:[::]:443\n"
              "Listen=tcp:*:22\n"
              "AuthorizedKeys=/etc/alknet/authorized_keys\n"
              "TrustedUserCAKeys=/etc/alknet/user_ca.pub\n"
              "TLSCertificate=/etc/alknet/tls/fullchain.pem\n"
              "TLSKey=/etc/alknet/tls/privkey.pem\n"
              "Stealth=yes\n"
              "StealthFallback=127.0.0.1:8080\n"
              "LoginGraceTime=5\n"
              "MaxSessions=10\n"
              "MaxConnectionsPerSource=3\n"
              "MaxAuthTries=2\n"
              "MaxChannelsPerSession=7\n"
              "MaxRemoteForwardsPerSession=0\n"
              "Ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com\n"
              "GatewayPorts=yes\n"
              "PermitOpen=*.internal:443\n"
              "DenyOpen=10.0.0.0/8:*\n"
              "DenyOpen=[2001:db8::]/32:1-1024\n"
              "DenyOpen=[::1]:22\n"
              "DenyOpen=*.Example.:65535\n"
              "DenyOpen=127.0.0.1/32:1\n"
              "OutboundProxy=socks5://127.0.0.1:9050\n",
              &p);
        ck_assert_uint_eq(p.n, 0);
        ck_assert(c.server.seen);
        ck_assert_uint_eq(c.server.n_listen, 3);
        ck_assert_int_eq(c.server.listen[0].transport, SERVER_TRANSPORT_TCP);
        ck_assert_str_eq(c.server.listen[0].host, "0.0.0.0");
        ck_assert_uint_eq(c.server.listen[0].port, 2222);
        ck_assert_int_eq(c.server.listen[1].transport, SERVER_TRANSPORT_TLS);
        ck_assert_str_eq(c.server.listen[1].host, "::");
        ck_assert_uint_eq(c.server.listen[1].port, 443);
        ck_assert_str_eq(c.server.listen[2].host, "0.0.0.0");
        ck_assert_str_eq(c.server.authorized_keys, "/etc/alknet/authorized_keys");
        ck_assert(c.server.stealth);
        ck_assert_str_eq(c.server.stealth_fallback, "127.0.0.1:8080");
        ck_assert_uint_eq(c.server.login_grace_usec, 5 * USEC_PER_SEC);
        ck_assert_uint_eq(c.server.max_sessions, 10);
        ck_assert_uint_eq(c.server.max_per_source, 3);
        ck_assert_uint_eq(c.server.max_auth_tries, 2);
        ck_assert_uint_eq(c.server.max_channels, 7);
        ck_assert_uint_eq(c.server.max_remote_forwards, 0);
        ck_assert_str_eq(c.server.ciphers, "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com");
        ck_assert(c.server.gateway_ports);
        ck_assert_str_eq(c.server.permit_open[0], "*.internal:443");
        ck_assert_str_eq(c.server.deny_open[0], "10.0.0.0/8:*");
        ck_assert_str_eq(c.server.deny_open[4], "127.0.0.1/32:1");
        ck_assert_ptr_null(c.server.deny_open[5]);
        ck_assert_str_eq(c.server.outbound_proxy, "socks5://127.0.0.1:9050");
        daemon_config_done(&c);
}
END_TEST

static const struct {
        const char *line;
        const char *field;
} bad_server[] = {
        { "Listen=2222", "Listen" },
        { "Listen=udp:0.0.0.0:53", "Listen" },
        { "Listen=tcp:0.0.0.0:0", "Listen" },
        { "Listen=tcp:0.0.0.0:65536", "Listen" },
        { "Listen=tcp:example.com:22", "Listen" },
        { "Listen=tls:[::1:443", "Listen" },
        { "AuthorizedKeys=relative/path", "AuthorizedKeys" },
        { "Stealth=maybe", "Stealth" },
        { "StealthFallback=localhost", "StealthFallback" },
        { "LoginGraceTime=0", "LoginGraceTime" },
        { "MaxAuthTries=101", "MaxAuthTries" },
        { "MaxRemoteForwardsPerSession=1025", "MaxRemoteForwardsPerSession" },
        { "MaxRemoteForwardsPerSession=-1", "MaxRemoteForwardsPerSession" },
        { "Ciphers=aes128-cbc", "Ciphers" },
        { "Ciphers=3des-cbc", "Ciphers" },
        { "Ciphers=aes128-gcm@openssh.com,", "Ciphers" },
        { "Ciphers=,aes128-ctr", "Ciphers" },
        { "Ciphers=aes128-ctr,,aes256-ctr", "Ciphers" },
        { "Ciphers=aes128", "Ciphers" },
        { "Ciphers=aes128-ctr aes256-ctr", "Ciphers" },
        { "OutboundProxy=ftp://x:1", "OutboundProxy" },
        { "OutboundProxy=socks5://127.0.0.1", "OutboundProxy" },
        { "OutboundProxy=http://proxy:3128/", "OutboundProxy" },
        { "OutboundProxy=socks5://::1:1080", "OutboundProxy" },
        { "PermitOpen=nocolon", "PermitOpen" },
        /* A DenyOpen= entry that could never match would let through what it names. */
        { "DenyOpen=10.0.0.0/33:*", "DenyOpen" },
        { "DenyOpen=10.0.0.0/8:0", "DenyOpen" },
        { "DenyOpen=db.internal:65536", "DenyOpen" },
        { "DenyOpen=db.internal:5-4", "DenyOpen" },
        { "DenyOpen=db.internal:22-", "DenyOpen" },
        { "DenyOpen=db.internal:-22", "DenyOpen" },
        { "DenyOpen=db.internal:+22", "DenyOpen" },
        { "DenyOpen=db.internal:x", "DenyOpen" },
        { "DenyOpen=db.internal:", "DenyOpen" },
        { "DenyOpen=:22", "DenyOpen" },
        { "DenyOpen=::1:22", "DenyOpen" },         /* IPv6 needs brackets */
        { "DenyOpen=[10.0.0.1]:22", "DenyOpen" },  /* IPv4 has none */
        { "DenyOpen=[db.internal]:22", "DenyOpen" },
        { "DenyOpen=[::1]22", "DenyOpen" },
        { "DenyOpen=[::1/200]:22", "DenyOpen" },
        { "DenyOpen=db/internal:22", "DenyOpen" },
        { "PermitOpen=[::1:22", "PermitOpen" },
        { "Bogus=1", "Bogus" },
};

START_TEST(test_server_bad_values) {
        char text[256];
        DaemonConfig c;
        LoadProblems p = {};

        snprintf(text, sizeof text, "[Server]\n%s\n", bad_server[_i].line);
        parse(&c, text, &p);
        ck_assert_uint_eq(p.n, 1);
        ck_assert_uint_eq(p.items[0].line, 2);
        ck_assert_str_eq(p.items[0].field, bad_server[_i].field);
        ck_assert_uint_eq(c.server.n_listen, 0);
        load_problems_done(&p);
        daemon_config_done(&c);
}
END_TEST

/* An unusable PermitOpen=/DenyOpen= entry fails closed, like OutboundProxy=. */
START_TEST(test_server_policy_fails_closed) {
        DaemonConfig c;
        LoadProblems p = {};

        parse(&c, "[Server]\nDenyOpen=10.0.0.0/8:*\nDenyOpen=10.0.0.0/33:*\n", &p);
        ck_assert_uint_eq(p.n, 1);
        ck_assert_ptr_nonnull(strstr(p.items[0].reason, "every channel is refused"));
        ck_assert(c.server.policy_invalid);
        ck_assert(server_config_fails_closed(&c.server, "DenyOpen"));
        ck_assert(!server_config_fails_closed(&c.server, "MaxAuthTries"));
        ck_assert_str_eq(c.server.deny_open[0], "10.0.0.0/8:*");
        ck_assert_ptr_null(c.server.deny_open[1]);
        load_problems_done(&p);
        daemon_config_done(&c);

        parse(&c, "[Server]\nPermitOpen=db.internal:99999\n", &p);
        ck_assert(c.server.policy_invalid);
        ck_assert_ptr_null(c.server.permit_open); /* which alone would permit anything */
        load_problems_done(&p);
        daemon_config_done(&c);

        parse(&c, "[Server]\nMaxAuthTries=0\nPermitOpen=db.internal:5432\n", &p);
        ck_assert_uint_eq(p.n, 1);
        ck_assert(!c.server.policy_invalid);
        load_problems_done(&p);
        daemon_config_done(&c);
}
END_TEST

/* One DenyOpen= entry past SERVER_POLICY_MAX: dropping it would open its destinations. */
START_TEST(test_server_policy_cap_fails_closed) {
        _cleanup_(freep) char *text = NULL;
        size_t size = 64 + (SERVER_POLICY_MAX + 1) * 32, n;
        DaemonConfig c;
        LoadProblems p = {};

        text = malloc(size);
        ck_assert_ptr_nonnull(text);
        n = (size_t) snprintf(text, size, "[Server]\n");
        for (unsigned i = 0; i < SERVER_POLICY_MAX; i++)
                n += (size_t) snprintf(text + n, size - n, "DenyOpen=10.%u.%u.0/24:*\n", i / 256, i % 256);
        n += (size_t) snprintf(text + n, size - n, "DenyOpen=127.0.0.0/8:*\n");
        ck_assert_uint_lt(n, size);
        parse(&c, text, &p);
        ck_assert_uint_eq(p.n, 1);
        ck_assert_ptr_nonnull(strstr(p.items[0].reason, "every channel is refused"));
        ck_assert(c.server.policy_invalid);
        ck_assert(server_config_fails_closed(&c.server, "DenyOpen"));
        load_problems_done(&p);
        daemon_config_done(&c);
}
END_TEST

static struct sockaddr_storage peer(const char *text) {
        struct sockaddr_storage sa = {};

        if (inet_pton(AF_INET, text, &((struct sockaddr_in *) &sa)->sin_addr) == 1)
                sa.ss_family = AF_INET;
        else {
                ck_assert_int_eq(inet_pton(AF_INET6, text, &((struct sockaddr_in6 *) &sa)->sin6_addr), 1);
                sa.ss_family = AF_INET6;
        }
        return sa;
}

static const struct {
        const char *a, *b;
        bool same;
} sources[] = {
        { "192.0.2.1", "192.0.2.1", true },
        { "192.0.2.1", "192.0.2.2", false },
        { "192.0.2.1", "::ffff:192.0.2.1", true }, /* a dual-stack listener's view */
        { "::ffff:192.0.2.1", "::ffff:192.0.2.2", false },
        { "2001:db8:1:2::1", "2001:db8:1:2::1", true },
        { "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true }, /* one /64 */
        { "2001:db8:1:2::1", "2001:db8:1:3::1", false },
        { "2001:db8::1", "::ffff:32.1.13.184", false }, /* same first bytes, other family */
        { "::1", "::2", true },
        { "::1", "0.0.0.1", false },
};

START_TEST(test_server_same_source) {
        struct sockaddr_storage a = peer(sources[_i].a), b = peer(sources[_i].b), none = {};

        ck_assert_int_eq(server_same_source(&a, &b), sources[_i].same);
        ck_assert_int_eq(server_same_source(&b, &a), sources[_i].same);
        ck_assert(server_same_source(&a, &a));
        ck_assert(!server_same_source(&a, &none));
        ck_assert(!server_same_source(&none, &none));
}
END_TEST

/* A proxy that was asked for but cannot be used fails closed: no proxy, and the flag that
 * makes the server refuse every channel instead of connecting directly. A valid value or
 * an empty one (no proxy wanted) clears it; so does a later valid line. */
START_TEST(test_server_outbound_proxy_fails_closed) {
        DaemonConfig c;
        LoadProblems p = {};

        parse(&c, "[Server]\nOutboundProxy=socks5://127.0.0.1:9050\nOutboundProxy=socks5://tor\n", &p);
        ck_assert_uint_eq(p.n, 1);
        ck_assert_ptr_nonnull(strstr(p.items[0].reason, "every channel is refused"));
        ck_assert_ptr_null(c.server.outbound_proxy);
        ck_assert(c.server.outbound_proxy_invalid);
        load_problems_done(&p);
        daemon_config_done(&c);

        parse(&c, "[Server]\nOutboundProxy=socks5://tor\nOutboundProxy=http://127.0.0.1:3128\n", &p);
        ck_assert_uint_eq(p.n, 1);
        ck_assert_str_eq(c.server.outbound_proxy, "http://127.0.0.1:3128");
        ck_assert(!c.server.outbound_proxy_invalid);
        load_problems_done(&p);
        daemon_config_done(&c);

        parse(&c, "[Server]\nOutboundProxy=socks5://tor\nOutboundProxy=\n", &p);
        ck_assert_ptr_null(c.server.outbound_proxy);
        ck_assert(!c.server.outbound_proxy_invalid);
        load_problems_done(&p);
        daemon_config_done(&c);
}
END_TEST

static const struct {
        const char *permit, *deny, *host;
        uint16_t port;
        bool allowed;
} policy[] = {
        { NULL, NULL, "anything.example", 1, true },
        { "*.internal:443", NULL, "db.internal", 443, true },
        { "*.internal:443", NULL, "db.internal", 80, false },
        { "*.internal:443", NULL, "db.example", 443, false },
        { "*.INTERNAL:*", NULL, "db.internal", 5432, true },
        { "10.0.0.0/8:1-1024", NULL, "10.1.2.3", 22, true },
        { "10.0.0.0/8:1-1024", NULL, "10.1.2.3", 2222, false },
        { "10.0.0.0/8:*", NULL, "11.1.2.3", 22, false },
        { "10.0.0.0/8:*", NULL, "ten.example", 22, false }, /* names are not resolved here */
        { "[2001:db8::]/32:443", NULL, "2001:db8::1", 443, true },
        { "[2001:db8::]/32:443", NULL, "2001:db9::1", 443, false },
        { NULL, "127.0.0.0/8:*", "127.0.0.1", 80, false },
        { NULL, "127.0.0.0/8:*", "localhost", 80, true },
        { NULL, "localhost:*", "localhost", 80, false },
        /* Entries spelt as getaddrinfo() would read them are those addresses, too. */
        { NULL, "127.1:*", "127.0.0.1", 80, false },
        { "10.0.0.0/8:*", NULL, "::10.0.0.1", 80, false },  /* and the IPv6 reading too */
        { NULL, "127.1:*", "0x7f000001", 80, false },
        { NULL, "2130706433:*", "127.0.0.1", 80, false },
        { NULL, "127.000.000.001:*", "127.1", 80, false },
        { NULL, "127.1:*", "127.0.0.2", 80, true },
        { "0x0a000001:22", NULL, "10.0.0.1", 22, true },
        { "0x0a000001:22", NULL, "10.0.0.2", 22, false },
        { "*:*", "*.internal:22", "db.internal", 22, false },
        { "*:*", "*.internal:22", "db.internal", 23, true },

        /* IPv4 the way getaddrinfo() reads it: every inet_aton() spelling is the address. */
        { NULL, "127.0.0.0/8:*", "127.1", 80, false },
        { NULL, "127.0.0.0/8:*", "127.0.1", 80, false },
        { NULL, "127.0.0.0/8:*", "2130706433", 80, false },
        { NULL, "127.0.0.0/8:*", "0x7f000001", 80, false },
        { NULL, "127.0.0.0/8:*", "0X7F000001", 80, false },
        { NULL, "127.0.0.0/8:*", "0x7f.1", 80, false },
        { NULL, "127.0.0.0/8:*", "0177.0.0.1", 80, false },
        { NULL, "127.0.0.0/8:*", "017700000001", 80, false },
        { NULL, "127.0.0.0/8:*", "2130706432", 80, false },
        { NULL, "127.0.0.0/8:*", "2147483648", 80, true },      /* 128.0.0.0 */
        { NULL, "127.0.0.0/8:*", "0x80000000", 80, true },
        { NULL, "127.0.0.0/8:*", "128.1", 80, true },
        { NULL, "127.0.0.0/8:1-79", "127.1", 80, true },         /* the port still counts */
        { NULL, "127.0.0.0/8:*", "4294967296", 80, true },       /* too big: a name */
        { NULL, "127.0.0.0/8:*", "08.0.0.1", 80, true },         /* not octal: a name */
        { "127.0.0.0/8:*", NULL, "127.1", 80, true },
        { "127.0.0.0/8:*", NULL, "2130706433", 80, true },
        { "127.0.0.0/8:*", NULL, "0177.0.0.1", 80, true },
        { "127.0.0.0/8:*", NULL, "0x7f000001", 80, true },
        { "127.0.0.0/8:*", NULL, "128.1", 80, false },
        { "10.0.0.0/8:*", NULL, "10.1", 80, true },
        { "10.0.0.0/8:*", NULL, "167772161", 80, true },
        /* Host globs see an address in its canonical text. */
        { NULL, "127.0.0.*:*", "127.1", 80, false },
        { NULL, "127.0.0.*:*", "0x7f000001", 80, false },
        { "10.*:*", NULL, "167772161", 80, true },
        { "10.*:*", NULL, "0x0b000001", 80, false },

        /* 0.0.0.0 and :: connect to the local host: they are also 127.0.0.1 and ::1. */
        { NULL, "127.0.0.0/8:*", "0.0.0.0", 80, false },
        { NULL, "127.0.0.0/8:*", "0", 80, false },
        { NULL, "127.0.0.0/8:*", "0x0", 80, false },
        { NULL, "127.0.0.0/8:*", "00", 80, false },
        { NULL, "127.0.0.0/8:*", "0.0", 80, false },
        { NULL, "127.0.0.0/8:*", "::ffff:0.0.0.0", 80, false },
        { NULL, "127.0.0.1:*", "0", 80, false },
        { NULL, "0.0.0.0/32:*", "0", 80, false },                /* and still themselves */
        { NULL, "0.0.0.0/32:*", "127.0.0.1", 80, true },
        { NULL, "[::1]:*", "::", 80, false },
        { NULL, "[::1]:*", "0:0:0:0:0:0:0:0", 80, false },
        { NULL, "[::1]:*", "0::1", 80, false },
        { NULL, "[::]:*", "::", 80, false },
        { NULL, "[::]:*", "::1", 80, true },
        { NULL, "[::1]:*", "0.0.0.0", 80, true },                /* IPv4 stays IPv4 */
        { NULL, "127.0.0.0/8:*", "::", 80, true },
        { NULL, "localhost:*", "0.0.0.0", 80, true },            /* addresses are not names */
        { "127.0.0.0/8:*", NULL, "0.0.0.0", 80, false },         /* a permit needs both */
        { "0.0.0.0/8:*", NULL, "0.0.0.0", 80, false },
        { "0.0.0.0/0:*", NULL, "0", 80, true },
        { "*:*", NULL, "0.0.0.0", 80, true },
        { "[::]/0:*", NULL, "::", 80, true },

        /* IPv4-mapped IPv6 is the IPv4 address; so is a mapped CIDR entry. */
        { NULL, "127.0.0.0/8:*", "::ffff:127.0.0.1", 80, false },
        { NULL, "127.0.0.0/8:*", "::FFFF:7f00:1", 80, false },
        { NULL, "127.0.0.0/8:*", "0:0:0:0:0:ffff:127.0.0.1", 80, false },
        { NULL, "127.0.0.0/8:*", "::ffff:128.0.0.1", 80, true },
        { NULL, "127.0.0.0/8:*", "::127.0.0.1", 80, false },     /* IPv4-compatible: both */
        { "127.0.0.0/8:*", NULL, "::ffff:127.0.0.1", 80, true },
        { "[::ffff:0:0]/96:*", NULL, "::ffff:127.0.0.1", 80, true },
        { NULL, "[::ffff:127.0.0.0]/104:*", "127.0.0.1", 80, false },
        { NULL, "[::ffff:127.0.0.0]/104:*", "127.1", 80, false },
        { NULL, "[::ffff:127.0.0.0]/104:*", "::ffff:127.0.0.1", 80, false },
        { NULL, "[::ffff:127.0.0.0]/104:*", "128.0.0.1", 80, true },
        { NULL, "[::ffff:7f00:1]:*", "127.0.0.1", 80, false },
        { NULL, "[::]/0:*", "127.0.0.1", 80, true },             /* all IPv6 is not IPv4 */
        { "[::ffff:10.0.0.0]/104:*", NULL, "10.1.2.3", 80, true },

        /* A %scope is ignored. */
        { NULL, "[::1]:*", "::1%lo", 80, false },
        { NULL, "[::1]:*", "0::1%1", 80, false },
        { NULL, "[fe80::]/10:*", "fe80::1%eth0", 80, false },
        { NULL, "[fe80::]/10:*", "FE80::1%2", 80, false },
        { NULL, "[fe80::]/10:*", "febf::1%eth0", 80, false },
        { NULL, "[fe80::]/10:*", "fec0::1%eth0", 80, true },
        { "[fe80::]/10:22", NULL, "fe80::1%eth0", 22, true },
        { "[fe80::]/10:22", NULL, "fe80::1%eth0", 23, false },
        { "[fe80::]/10:22", NULL, "fec0::1%eth0", 22, false },

        /* One trailing dot is dropped, from the name and from a glob. */
        { NULL, "localhost:*", "localhost.", 80, false },
        { NULL, "localhost:*", "LOCALHOST.", 80, false },
        { NULL, "localhost.:*", "localhost", 80, false },
        { NULL, "*.localhost:*", "db.localhost.", 80, false },
        { NULL, "*.internal:*", "db.internal.", 80, false },
        { NULL, "*.internal:*", "db.internal.example", 80, true },
        { NULL, "localhost:*", "localhost..", 80, true },        /* no such name */
        { "*.internal:443", NULL, "db.internal.", 443, true },
        { "*.internal:443", NULL, "db.internal..", 443, false },
        { "localhost:*", NULL, "localhost.", 80, true },
        /* A name that spells an address without its dot may be read as that address: a
         * deny takes it, a permit needs the name and the address. */
        { NULL, "127.0.0.0/8:*", "127.0.0.1.", 80, false },
        { NULL, "127.0.0.0/8:*", "2130706433.", 80, false },
        { NULL, "127.0.0.0/8:*", "0.0.0.0.", 80, false },
        { "10.0.0.0/8:*", NULL, "10.1.2.3.", 80, false },
        { "*:*", NULL, "10.1.2.3.", 80, true },

        /* Not a destination at all. */
        { NULL, NULL, "", 80, false },
        { "*:*", NULL, "", 80, false },
};

START_TEST(test_server_policy) {
        char *permit[] = { (char *) policy[_i].permit, NULL };
        char *deny[] = { (char *) policy[_i].deny, NULL };

        ck_assert_msg(server_policy_allows(policy[_i].permit ? permit : NULL, policy[_i].deny ? deny : NULL,
                                           policy[_i].host, policy[_i].port) == policy[_i].allowed,
                      "case %d", _i);
}
END_TEST

/* The longest name the resolver takes, with and without its trailing dot; one more refused. */
START_TEST(test_server_policy_long_names) {
        char name[RESOLVE_HOST_MAX + 3];
        char *permit[] = { (char *) "*.example:*", NULL };

        memset(name, 'a', sizeof name);
        memcpy(name + RESOLVE_HOST_MAX - 8, ".example", 8);
        name[RESOLVE_HOST_MAX] = '\0';
        ck_assert(server_policy_allows(permit, NULL, name, 1));
        name[RESOLVE_HOST_MAX] = '.';
        name[RESOLVE_HOST_MAX + 1] = '\0';
        ck_assert(server_policy_allows(permit, NULL, name, 1));
        ck_assert(server_policy_allows(NULL, NULL, name, 1));
        name[RESOLVE_HOST_MAX + 1] = '.';
        name[RESOLVE_HOST_MAX + 2] = '\0';
        ck_assert(!server_policy_allows(permit, NULL, name, 1));
        ck_assert(!server_policy_allows(NULL, NULL, name, 1));
}
END_TEST

/* IPv4 spellings: whatever getaddrinfo() takes as an IPv4 address (AI_NUMERICHOST, the
 * parse it makes before any lookup) the policy reads as the same address, and whatever it
 * does not take is no IPv4 address to the policy either. */
static const char *const ipv4_spellings[] = {
        "127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "0X7F000001", "0x7F.1",
        "0177.0.0.1", "0177.01", "017700000001", "0", "00", "0x", "0x0", "0xg", "08", "09.1.1.1",
        "0x1.0x2.0x3.0x4", "0xff.0xffffff", "0x1ff.1", "1.2.3.4.5", "1.2.3.256", "1.2.65536",
        "1.2.65535", "1.16777216", "1.16777215", "4294967295", "4294967296", "0xffffffff",
        "0x100000000", "037777777777", "040000000000", "0x00000000000000000001",
        "0000000000000000000001", "99999999999999999999999", "1..2", ".1", "-1", "+1", " 1",
        "1 ", "127.0.0.1 x", "1.2.3.0x4", "1.2.3.04", "1.2.3.4x", "1e3", "a.b.c.d", "0x.1",
        "1.0x", "255.255.255.255", "256.1", "0xff.1.1.1",
};

START_TEST(test_server_policy_ipv4_like_getaddrinfo) {
        const char *s = ipv4_spellings[_i];
        struct addrinfo hints = { .ai_family = AF_INET, .ai_flags = AI_NUMERICHOST }, *ai = NULL;
        char *any_v4[] = { (char *) "0.0.0.0/0:*", NULL };

        if (getaddrinfo(s, NULL, &hints, &ai) == 0) {
                char text[INET_ADDRSTRLEN], entry[INET_ADDRSTRLEN + 8];
                /* 0.0.0.0 is 127.0.0.1 too: a permit must cover both */
                char *list[] = { entry, (char *) "127.0.0.1:*", NULL };

                ck_assert_ptr_nonnull(inet_ntop(AF_INET, &((struct sockaddr_in *) ai->ai_addr)->sin_addr, text,
                                                sizeof text));
                freeaddrinfo(ai);
                snprintf(entry, sizeof entry, "%s/32:*", text);
                list[1] = NULL;
                ck_assert_msg(!server_policy_allows(NULL, list, s, 1), "\"%s\" is %s, not denied", s, text);
                list[1] = (char *) "127.0.0.1:*";
                ck_assert_msg(server_policy_allows(list, NULL, s, 1), "\"%s\" is %s, not permitted", s, text);
        } else
                ck_assert_msg(server_policy_allows(NULL, any_v4, s, 1), "\"%s\" is no address", s);
}
END_TEST

/* After resolution: each address against DenyOpen=, read like a destination. */
static const struct {
        const char *deny, *address;
        uint16_t port;
        bool denied;
} resolved[] = {
        { "127.0.0.0/8:*", "127.0.0.1", 80, true },
        { "127.0.0.0/8:*", "127.255.0.9", 80, true },
        { "127.0.0.0/8:*", "10.0.0.1", 80, false },
        { "127.0.0.0/8:1-79", "127.0.0.1", 80, false },
        { "127.0.0.0/8:*", "0.0.0.0", 80, true },
        { "127.0.0.0/8:*", "::ffff:127.0.0.1", 80, true },
        { "127.0.0.0/8:*", "::ffff:0.0.0.0", 80, true },
        { "127.0.0.0/8:*", "::1", 80, false },
        { "[::1]:*", "::", 80, true },
        { "[::1]:*", "::1", 80, true },
        { "[::1]:*", "::2", 80, false },
        { "[::ffff:127.0.0.0]/104:*", "127.0.0.1", 80, true },
        { "10.*:*", "10.1.2.3", 80, true },                      /* a glob: the canonical text */
        { "*:25", "192.0.2.1", 25, true },
        { "*:25", "192.0.2.1", 26, false },
        { "localhost:*", "127.0.0.1", 80, false },               /* a name is no address */
        { "*.internal:*", "10.0.0.1", 80, false },
        { NULL, "127.0.0.1", 80, false },
};

START_TEST(test_server_policy_resolved) {
        char *deny[] = { (char *) resolved[_i].deny, NULL };
        struct sockaddr_storage ss = {};
        struct sockaddr_in *in = (struct sockaddr_in *) &ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;

        if (inet_pton(AF_INET, resolved[_i].address, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = htons(resolved[_i].port);
        } else {
                ck_assert_int_eq(inet_pton(AF_INET6, resolved[_i].address, &in6->sin6_addr), 1);
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(resolved[_i].port);
                in6->sin6_scope_id = 3;
        }
        ck_assert_msg(server_policy_denies_address(resolved[_i].deny ? deny : NULL, (struct sockaddr *) &ss,
                                                   resolved[_i].port) == resolved[_i].denied,
                      "case %d", _i);
}
END_TEST

START_TEST(test_server_policy_resolved_odd) {
        struct sockaddr_un un = { .sun_family = AF_UNIX };

        /* A family the dialer does not connect to is refused, not waved through. */
        ck_assert(server_policy_denies_address(NULL, (struct sockaddr *) &un, 80));
        ck_assert(server_policy_denies_address(NULL, NULL, 80));
}
END_TEST

int main(void) {
        Suite *s = suite_create("daemon-config");
        TCase *tc = tcase_create("daemon-config");
        SRunner *sr;
        int failed;

        log_set_max_level(LOG_ERR); /* the problems are asserted, not read */
        tcase_add_test(tc, test_defaults);
        tcase_add_test(tc, test_good_values);
        tcase_add_loop_test(tc, test_bad_values, 0, ELEMENTSOF(bad));
        tcase_add_test(tc, test_parse_size);
        tcase_add_test(tc, test_load_dropins);
        tcase_add_test(tc, test_server_section);
        tcase_add_test(tc, test_server_outbound_proxy_fails_closed);
        tcase_add_test(tc, test_server_policy_fails_closed);
        tcase_add_test(tc, test_server_policy_cap_fails_closed);
        tcase_add_loop_test(tc, test_server_same_source, 0, ELEMENTSOF(sources));
        tcase_add_loop_test(tc, test_server_bad_values, 0, ELEMENTSOF(bad_server));
        tcase_add_loop_test(tc, test_server_policy, 0, ELEMENTSOF(policy));
        tcase_add_test(tc, test_server_policy_long_names);
        tcase_add_loop_test(tc, test_server_policy_ipv4_like_getaddrinfo, 0, ELEMENTSOF(ipv4_spellings));
        tcase_add_loop_test(tc, test_server_policy_resolved, 0, ELEMENTSOF(resolved));
        tcase_add_test(tc, test_server_policy_resolved_odd);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
