/* Unit tests for alknetd.conf: every key, bad values, unknown keys and sections, drop-ins. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "daemon-config.h"
#include "log.h"
#include "macro.h"
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
              "GatewayPorts=yes\n"
              "PermitOpen=*.internal:443\n"
              "DenyOpen=10.0.0.0/8:*\n"
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
        ck_assert(c.server.gateway_ports);
        ck_assert_str_eq(c.server.permit_open[0], "*.internal:443");
        ck_assert_str_eq(c.server.deny_open[0], "10.0.0.0/8:*");
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
        { "OutboundProxy=ftp://x:1", "OutboundProxy" },
        { "OutboundProxy=socks5://127.0.0.1", "OutboundProxy" },
        { "OutboundProxy=http://proxy:3128/", "OutboundProxy" },
        { "OutboundProxy=socks5://::1:1080", "OutboundProxy" },
        { "PermitOpen=nocolon", "PermitOpen" },
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
        { "10.0.0.0/8:*", NULL, "ten.example", 22, false }, /* names are never resolved */
        { "[2001:db8::]/32:443", NULL, "2001:db8::1", 443, true },
        { "[2001:db8::]/32:443", NULL, "2001:db9::1", 443, false },
        { NULL, "127.0.0.0/8:*", "127.0.0.1", 80, false },
        { NULL, "127.0.0.0/8:*", "localhost", 80, true },
        { NULL, "localhost:*", "localhost", 80, false },
        { "*:*", "*.internal:22", "db.internal", 22, false },
        { "*:*", "*.internal:22", "db.internal", 23, true },
};

START_TEST(test_server_policy) {
        char *permit[] = { (char *) policy[_i].permit, NULL };
        char *deny[] = { (char *) policy[_i].deny, NULL };

        ck_assert_msg(server_policy_allows(policy[_i].permit ? permit : NULL, policy[_i].deny ? deny : NULL,
                                           policy[_i].host, policy[_i].port) == policy[_i].allowed,
                      "case %d", _i);
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
        tcase_add_loop_test(tc, test_server_bad_values, 0, ELEMENTSOF(bad_server));
        tcase_add_loop_test(tc, test_server_policy, 0, ELEMENTSOF(policy));
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
