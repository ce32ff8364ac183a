/* Tests of the network-change watcher: hand-built and mutated rtnetlink datagrams fed to
 * the parser, and real changes made with ip(8) inside a network namespace of our own
 * (root only), watched through a real sd-event loop. The host's network is never touched. */
#include <check.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "macro.h"
#include "netwatch.h"

#define QUIET_USEC (100 * USEC_PER_MSEC)
#define DEADLINE_USEC (10 * USEC_PER_SEC)

static sd_event *e;
static Netwatch *w;
static unsigned calls, last_changes, all_changes;
static unsigned ticks, ticks_max, ticks_at_first_call;
static sd_event_source *tick;

/* Set by main's probe: what this kernel lets a namespace create. */
static const char *dev_type; /* "dummy", or "ifb" where the dummy driver is missing */
static bool have_veth;

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static void on_change(Netwatch *nw, unsigned changes, void *userdata) {
        ck_assert_ptr_eq(nw, w);
        if (userdata)
                w = netwatch_free(w);
        if (calls == 0)
                ticks_at_first_call = ticks;
        calls++;
        last_changes = changes;
        all_changes |= changes;
}

static void reset_counts(void) {
        calls = last_changes = all_changes = 0;
}

/* Runs the loop until *counter reaches want or the time is up; never sleeps blindly. */
static void run_until(const unsigned *counter, unsigned want, uint64_t usec) {
        uint64_t deadline = now_usec() + usec;

        for (;;) {
                uint64_t now = now_usec();
                if ((counter && *counter >= want) || now >= deadline)
                        return;
                ck_assert_int_ge(sd_event_run(e, deadline - now), 0);
        }
}

static void run_for(uint64_t usec) {
        run_until(NULL, 0, usec);
}

/* Long enough for a burst to have been reported if anything was pending. */
static void settle(void) {
        run_for(4 * QUIET_USEC);
}

static void sh(const char *fmt, ...) _printf_(1, 2);
static void sh(const char *fmt, ...) {
        char cmd[512];
        va_list ap;
        int status;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        status = system(cmd);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "command failed: %s", cmd);
}

static bool sh_ok(const char *cmd) {
        int status = system(cmd);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void watch_start(void) {
        ck_assert_int_eq(sd_event_new(&e), 0);
        ck_assert_int_eq(netwatch_new(e, on_change, NULL, &w), 0);
        netwatch_set_debounce(w, QUIET_USEC, 2 * USEC_PER_SEC);
        reset_counts();
        ticks = ticks_max = ticks_at_first_call = 0;
}

static void watch_stop(void) {
        tick = sd_event_source_disable_unref(tick);
        w = netwatch_free(w);
        e = sd_event_unref(e);
}

/* A fresh namespace per test (also without CK_FORK: the process moves on to a new one),
 * with d0 up and lo down; the watcher starts after that and must stay silent. */
static void netns_setup(void) {
        ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
        sh("ip link add d0 type %s", dev_type);
        sh("ip link set d0 up");
        watch_start();
        settle();
        ck_assert_uint_eq(calls, 0);
}

static void netns_teardown(void) {
        watch_stop();
}

/* The parser tests run in a namespace of their own when we may make one, so that nothing
 * real arrives while the loop runs; otherwise in the host's, which they only read. */
static void parser_setup(void) {
        if (dev_type)
                ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
        watch_start();
}

/* Reports what is pending so the next assertion starts from nothing. */
static void flush(void) {
        unsigned before = calls;

        if (netwatch_pending(w) == 0)
                return;
        netwatch_set_debounce(w, 0, 0);
        run_until(&calls, before + 1, DEADLINE_USEC);
        ck_assert_uint_eq(calls, before + 1);
        ck_assert_uint_eq(netwatch_pending(w), 0);
}

/* Waits for exactly one report of exactly `changes`, and then for quiet. */
static void expect_one(unsigned changes) {
        run_until(&calls, 1, DEADLINE_USEC);
        settle();
        ck_assert_uint_eq(calls, 1);
        ck_assert_uint_eq(last_changes, changes);
        reset_counts();
}

static void expect_none(void) {
        settle();
        ck_assert_uint_eq(calls, 0);
        ck_assert_uint_eq(netwatch_pending(w), 0);
}

/* ---- real changes in a namespace ---- */

START_TEST(test_loopback_ignored) {
        /* lo brings 127.0.0.1 and ::1 (host scope) and a loopback link: none carry a tunnel. */
        sh("ip link set lo up");
        sh("ip addr add 127.0.0.5/8 dev lo");
        expect_none();
}
END_TEST

START_TEST(test_baseline) {
        /* What exists when the watcher starts is learnt silently, and its refreshes are
         * not news either. */
        watch_stop();
        sh("ip addr add 10.0.0.1/24 dev d0 valid_lft 1000 preferred_lft 1000");
        sh("ip -6 addr add 2001:db8::1/64 dev d0 valid_lft 1000 preferred_lft 1000");
        sh("ip link add d1 type %s", dev_type);
        sh("ip link set d1 up");
        watch_start();
        expect_none();
        sh("ip addr change 10.0.0.1/24 dev d0 valid_lft 2000 preferred_lft 2000");
        sh("ip -6 addr change 2001:db8::1/64 dev d0 valid_lft 2000 preferred_lft 2000");
        expect_none();
        sh("ip link set d1 down");
        expect_none();
        sh("ip link set d1 up");
        expect_one(NETWATCH_CHANGE_LINK);
}
END_TEST

START_TEST(test_address_ipv4) {
        sh("ip addr add 10.0.0.1/24 dev d0");
        expect_one(NETWATCH_CHANGE_ADDRESS);
}
END_TEST

START_TEST(test_address_ipv6) {
        sh("ip -6 addr add 2001:db8::1/64 dev d0");
        expect_one(NETWATCH_CHANGE_ADDRESS);
}
END_TEST

START_TEST(test_address_refresh_ignored) {
        /* A DHCP renewal or an RA re-announces the address with new lifetimes. */
        sh("ip addr add 10.0.0.1/24 dev d0 valid_lft 1000 preferred_lft 1000");
        sh("ip -6 addr add 2001:db8::1/64 dev d0 valid_lft 1000 preferred_lft 1000");
        expect_one(NETWATCH_CHANGE_ADDRESS);
        sh("ip addr change 10.0.0.1/24 dev d0 valid_lft 2000 preferred_lft 2000");
        sh("ip -6 addr change 2001:db8::1/64 dev d0 valid_lft 2000 preferred_lft 2000");
        expect_none();
        /* Gone and back is new again. */
        sh("ip addr del 10.0.0.1/24 dev d0");
        expect_none();
        sh("ip addr add 10.0.0.1/24 dev d0");
        expect_one(NETWATCH_CHANGE_ADDRESS);
}
END_TEST

START_TEST(test_link_scope_ignored) {
        sh("ip -6 addr add fe80::1234/64 dev d0");
        sh("ip -6 addr add fe80::5678/64 dev d0 scope global");
        sh("ip addr add 169.254.3.4/16 dev d0 scope link");
        sh("ip addr add 10.7.0.1/24 dev d0 scope host");
        expect_none();
}
END_TEST

START_TEST(test_tentative_ignored) {
        if (!have_veth) {
                fprintf(stderr, "test_tentative_ignored: no veth driver, skipped\n");
                return;
        }
        /* veth does duplicate address detection (dummy and ifb do not). */
        sh("ip link add v0 type veth peer name v1");
        sh("ip link set v0 up");
        sh("ip link set v1 up");
        expect_one(NETWATCH_CHANGE_LINK);

        sh("ip -6 addr add 2001:db8::5/64 dev v0");
        ck_assert_msg(sh_ok("ip -6 addr show dev v0 tentative | grep -q 2001:db8::5"),
                      "the address should start tentative, or this test proves nothing");
        run_until(&calls, 1, DEADLINE_USEC);
        ck_assert_uint_eq(calls, 1);
        /* Reported only once DAD had finished. */
        ck_assert(!sh_ok("ip -6 addr show dev v0 tentative | grep -q 2001:db8::5"));
        ck_assert(sh_ok("ip -6 addr show dev v0 | grep -q 2001:db8::5"));
        settle();
        ck_assert_uint_eq(calls, 1);
        ck_assert_uint_eq(last_changes, NETWATCH_CHANGE_ADDRESS);
}
END_TEST

START_TEST(test_default_route_ipv4) {
        sh("ip addr add 10.0.0.1/24 dev d0");
        expect_one(NETWATCH_CHANGE_ADDRESS);
        sh("ip route add default via 10.0.0.254 dev d0");
        expect_one(NETWATCH_CHANGE_ROUTE);
        /* Another default route (a second uplink) is a change too. */
        sh("ip route add default via 10.0.0.253 dev d0 metric 50");
        expect_one(NETWATCH_CHANGE_ROUTE);
}
END_TEST

START_TEST(test_default_route_ipv6) {
        sh("ip -6 route add default dev d0");
        expect_one(NETWATCH_CHANGE_ROUTE);
}
END_TEST

START_TEST(test_unrelated_changes) {
        sh("ip addr add 10.0.0.1/24 dev d0");
        sh("ip route add default via 10.0.0.254 dev d0");
        expect_one(NETWATCH_CHANGE_ADDRESS | NETWATCH_CHANGE_ROUTE);

        sh("ip route add 192.0.2.0/24 dev d0");
        sh("ip route add 10.5.0.0/16 via 10.0.0.254");
        sh("ip -6 route add 2001:db8:1::/48 dev d0");
        sh("ip route add default dev d0 table 100");
        sh("ip route add default dev d0 table 1000");
        sh("ip route add blackhole default metric 500");
        sh("ip -6 route add unreachable default metric 500");
        sh("ip route del 192.0.2.0/24 dev d0");
        sh("ip route del default via 10.0.0.254 dev d0");
        sh("ip addr del 10.0.0.1/24 dev d0");
        sh("ip link set d0 mtu 1400");
        sh("ip link set d0 down");
        sh("ip link add d1 type %s", dev_type);
        sh("ip link set d1 name d2");
        sh("ip link del d2");
        expect_none();
}
END_TEST

START_TEST(test_link_up) {
        sh("ip link add d1 type %s", dev_type);
        expect_none();
        sh("ip link set d1 up");
        expect_one(NETWATCH_CHANGE_LINK);
        sh("ip link set d0 down");
        expect_none();
        sh("ip link set d0 up");
        expect_one(NETWATCH_CHANGE_LINK);
}
END_TEST

START_TEST(test_carrier) {
        if (!have_veth) {
                fprintf(stderr, "test_carrier: no veth driver, skipped\n");
                return;
        }
        /* Up without carrier (the peer is down) is not yet a usable link. */
        sh("ip link add v0 type veth peer name v1");
        sh("ip link set v0 up");
        expect_none();
        sh("ip link set v1 up");
        expect_one(NETWATCH_CHANGE_LINK);
        /* The peer going down takes our carrier; its return is a change. */
        sh("ip link set v1 down");
        expect_none();
        sh("ip link set v1 up");
        expect_one(NETWATCH_CHANGE_LINK);
}
END_TEST

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        ticks++;
        sh("ip addr add 10.1.%u.%u/32 dev d0", ticks / 200, ticks % 200 + 1);
        if (ticks >= ticks_max)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        ck_assert_int_ge(sd_event_source_set_time_relative(s, *(const uint64_t *) userdata), 0);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

START_TEST(test_burst_debounced) {
        static const uint64_t interval = 25 * USEC_PER_MSEC;

        /* 20 changes spread over half a second, closer together than the quiet period. */
        netwatch_set_debounce(w, NETWATCH_QUIET_USEC, NETWATCH_MAX_DELAY_USEC);
        ticks_max = 20;
        ck_assert_int_ge(sd_event_add_time_relative(e, &tick, CLOCK_MONOTONIC, interval, 1, on_tick,
                                                    (void *) &interval), 0);
        run_until(&calls, 1, 4 * DEADLINE_USEC);
        ck_assert_uint_eq(calls, 1);
        ck_assert_uint_eq(ticks_at_first_call, 20);
        run_for(3 * NETWATCH_QUIET_USEC);
        ck_assert_uint_eq(calls, 1);
        ck_assert_uint_eq(last_changes, NETWATCH_CHANGE_ADDRESS);
}
END_TEST

START_TEST(test_max_delay) {
        static const uint64_t interval = 50 * USEC_PER_MSEC;

        /* Changes that never stop still get reported, every max delay at the latest. */
        netwatch_set_debounce(w, 300 * USEC_PER_MSEC, 600 * USEC_PER_MSEC);
        ticks_max = 40;
        ck_assert_int_ge(sd_event_add_time_relative(e, &tick, CLOCK_MONOTONIC, interval, 1, on_tick,
                                                    (void *) &interval), 0);
        run_until(&ticks, ticks_max, 4 * DEADLINE_USEC);
        ck_assert_uint_eq(ticks, 40);
        ck_assert_uint_ge(calls, 2);
        ck_assert_uint_lt(ticks_at_first_call, 40);
        ck_assert_uint_eq(all_changes, NETWATCH_CHANGE_ADDRESS);
}
END_TEST

START_TEST(test_overrun) {
        char path[] = "/tmp/test-netwatch-XXXXXX";
        FILE *f;
        int fd;

        /* Far more notifications than the socket buffer holds while the loop is not
         * reading: the kernel drops some and tells us with ENOBUFS. */
        fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        f = fdopen(fd, "w");
        ck_assert_ptr_nonnull(f);
        for (unsigned i = 0; i < 3000; i++)
                fprintf(f, "address add 10.2.%u.%u/32 dev d0\n", i / 200, i % 200 + 1);
        ck_assert_int_eq(fclose(f), 0);
        sh("ip -batch %s", path);
        ck_assert_int_eq(unlink(path), 0);

        /* Working through the backlog must not be cut into several reports. */
        netwatch_set_debounce(w, QUIET_USEC, 60 * USEC_PER_SEC);
        run_until(&calls, 1, DEADLINE_USEC);
        settle();
        ck_assert_uint_eq(calls, 1);
        ck_assert(last_changes & NETWATCH_CHANGE_OVERRUN);
        reset_counts();

        /* The state was dumped again: a refresh of an address whose notification was
         * dropped (the last ones are) is still nothing... */
        sh("ip addr change 10.2.14.200/32 dev d0 valid_lft 1000 preferred_lft 1000");
        sh("ip addr change 10.2.0.1/32 dev d0 valid_lft 1000 preferred_lft 1000");
        expect_none();
        /* ...and a new one is one change. */
        sh("ip addr add 10.3.0.1/32 dev d0");
        expect_one(NETWATCH_CHANGE_ADDRESS);
}
END_TEST

/* ---- hand-built datagrams ---- */

typedef struct Msg {
        union {
                struct nlmsghdr h;
                uint8_t b[512];
        };
} Msg;

static void msg_init(Msg *m, uint16_t type, const void *payload, size_t size) {
        memset(m, 0, sizeof *m);
        m->h.nlmsg_type = type;
        m->h.nlmsg_len = NLMSG_LENGTH(size);
        memcpy(NLMSG_DATA(&m->h), payload, size);
}

static void msg_attr(Msg *m, uint16_t type, const void *data, size_t size) {
        struct rtattr *a = (struct rtattr *) (m->b + NLMSG_ALIGN(m->h.nlmsg_len));

        ck_assert_uint_le(NLMSG_ALIGN(m->h.nlmsg_len) + RTA_SPACE(size), sizeof m->b);
        a->rta_type = type;
        a->rta_len = RTA_LENGTH(size);
        memcpy(RTA_DATA(a), data, size);
        m->h.nlmsg_len = NLMSG_ALIGN(m->h.nlmsg_len) + RTA_LENGTH(size);
}

static void feed(const Msg *m) {
        netwatch_process_datagram(w, m->b, m->h.nlmsg_len);
}

static void address_msg(Msg *m, uint16_t type, int family, const char *text, uint8_t scope, uint8_t flags) {
        struct ifaddrmsg ifa = {
                .ifa_family = family,
                .ifa_prefixlen = family == AF_INET ? 24 : 64,
                .ifa_flags = flags,
                .ifa_scope = scope,
                .ifa_index = 1000,
        };
        uint8_t address[16];
        uint32_t extended = flags;

        ck_assert_int_eq(inet_pton(family, text, address), 1);
        msg_init(m, type, &ifa, sizeof ifa);
        msg_attr(m, IFA_FLAGS, &extended, sizeof extended);
        /* The address last, so that every truncation loses it. */
        msg_attr(m, family == AF_INET ? IFA_LOCAL : IFA_ADDRESS, address, family == AF_INET ? 4 : 16);
}

static void route_msg(Msg *m, uint16_t type, int family, uint8_t dst_len, uint8_t rtype, uint32_t table) {
        struct rtmsg rtm = {
                .rtm_family = family,
                .rtm_dst_len = dst_len,
                .rtm_table = RT_TABLE_UNSPEC,
                .rtm_protocol = RTPROT_BOOT,
                .rtm_scope = RT_SCOPE_UNIVERSE,
                .rtm_type = rtype,
        };
        uint32_t oif = 1000;

        msg_init(m, type, &rtm, sizeof rtm);
        msg_attr(m, RTA_OIF, &oif, sizeof oif);
        /* The table last: without it the route is in no table we watch. */
        msg_attr(m, RTA_TABLE, &table, sizeof table);
}

static void link_msg(Msg *m, uint16_t type, int ifindex, unsigned flags) {
        struct ifinfomsg ifi = {
                .ifi_family = AF_UNSPEC,
                .ifi_index = ifindex,
                .ifi_flags = flags,
        };
        msg_init(m, type, &ifi, sizeof ifi);
}

#define LINK_READY (IFF_UP | IFF_RUNNING | IFF_LOWER_UP)

START_TEST(test_parse_truncated) {
        Msg msgs[3];
        unsigned want[3] = { NETWATCH_CHANGE_ADDRESS, NETWATCH_CHANGE_ROUTE, NETWATCH_CHANGE_LINK };

        address_msg(&msgs[0], RTM_NEWADDR, AF_INET, "192.0.2.7", RT_SCOPE_UNIVERSE, 0);
        route_msg(&msgs[1], RTM_NEWROUTE, AF_INET, 0, RTN_UNICAST, RT_TABLE_MAIN);
        link_msg(&msgs[2], RTM_NEWLINK, 1000, LINK_READY);

        for (size_t i = 0; i < ELEMENTSOF(msgs); i++) {
                uint32_t full = msgs[i].h.nlmsg_len;

                for (uint32_t len = 0; len < full; len++) {
                        Msg m = msgs[i];

                        /* The datagram ends early but the header claims the whole message. */
                        netwatch_process_datagram(w, m.b, len);
                        ck_assert_uint_eq(netwatch_pending(w), 0);
                        /* The header agrees with the shorter datagram. */
                        m.h.nlmsg_len = len;
                        netwatch_process_datagram(w, m.b, len);
                        ck_assert_msg(netwatch_pending(w) == 0, "message %zu cut at %u was taken", i, len);
                }
                feed(&msgs[i]);
                ck_assert_uint_eq(netwatch_pending(w), want[i]);
                flush();
        }
}
END_TEST

START_TEST(test_parse_routes) {
        static const struct {
                uint16_t type;
                int family;
                uint8_t dst_len, rtype;
                uint32_t table;
                unsigned flags;
                bool wanted;
        } cases[] = {
                { RTM_NEWROUTE, AF_INET, 0, RTN_UNICAST, RT_TABLE_MAIN, 0, true },
                { RTM_NEWROUTE, AF_INET6, 0, RTN_UNICAST, RT_TABLE_MAIN, 0, true },
                { RTM_DELROUTE, AF_INET, 0, RTN_UNICAST, RT_TABLE_MAIN, 0, false },
                { RTM_NEWROUTE, AF_INET, 24, RTN_UNICAST, RT_TABLE_MAIN, 0, false },
                { RTM_NEWROUTE, AF_INET6, 128, RTN_UNICAST, RT_TABLE_MAIN, 0, false },
                { RTM_NEWROUTE, AF_INET, 0, RTN_BLACKHOLE, RT_TABLE_MAIN, 0, false },
                { RTM_NEWROUTE, AF_INET6, 0, RTN_UNREACHABLE, RT_TABLE_MAIN, 0, false },
                { RTM_NEWROUTE, AF_INET, 0, RTN_LOCAL, RT_TABLE_LOCAL, 0, false },
                { RTM_NEWROUTE, AF_INET, 0, RTN_UNICAST, 100, 0, false },
                { RTM_NEWROUTE, AF_INET, 0, RTN_UNICAST, 0x10000 + RT_TABLE_MAIN, 0, false },
                { RTM_NEWROUTE, AF_INET6, 0, RTN_UNICAST, RT_TABLE_MAIN, RTM_F_CLONED, false },
                { RTM_NEWROUTE, AF_UNSPEC, 0, RTN_UNICAST, RT_TABLE_MAIN, 0, false },
                { RTM_NEWROUTE, AF_BRIDGE, 0, RTN_UNICAST, RT_TABLE_MAIN, 0, false },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Msg m;

                route_msg(&m, cases[i].type, cases[i].family, cases[i].dst_len, cases[i].rtype, cases[i].table);
                ((struct rtmsg *) NLMSG_DATA(&m.h))->rtm_flags = cases[i].flags;
                feed(&m);
                ck_assert_msg(netwatch_pending(w) == (cases[i].wanted ? NETWATCH_CHANGE_ROUTE : 0u), "case %zu", i);
                flush();
        }
}
END_TEST

START_TEST(test_parse_route_table_field) {
        struct rtmsg rtm = {
                .rtm_family = AF_INET,
                .rtm_table = RT_TABLE_MAIN,
                .rtm_type = RTN_UNICAST,
        };
        uint16_t short_table = RT_TABLE_MAIN;
        Msg m;

        /* Without RTA_TABLE the header's table counts. */
        msg_init(&m, RTM_NEWROUTE, &rtm, sizeof rtm);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), NETWATCH_CHANGE_ROUTE);
        flush();

        /* RTA_TABLE wins over the header. */
        rtm.rtm_table = RT_TABLE_COMPAT;
        msg_init(&m, RTM_NEWROUTE, &rtm, sizeof rtm);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), 0);
        msg_attr(&m, RTA_TABLE, &(uint32_t) { RT_TABLE_MAIN }, sizeof(uint32_t));
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), NETWATCH_CHANGE_ROUTE);
        flush();

        /* An RTA_TABLE of the wrong size makes the message malformed. */
        rtm.rtm_table = RT_TABLE_MAIN;
        msg_init(&m, RTM_NEWROUTE, &rtm, sizeof rtm);
        msg_attr(&m, RTA_TABLE, &short_table, sizeof short_table);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), 0);
}
END_TEST

START_TEST(test_parse_addresses) {
        static const struct {
                int family;
                const char *address;
                uint8_t scope;
                uint8_t flags;
                bool wanted;
        } cases[] = {
                { AF_INET, "192.0.2.1", RT_SCOPE_UNIVERSE, 0, true },
                { AF_INET, "192.0.2.2", RT_SCOPE_SITE, 0, true },
                { AF_INET, "169.254.1.1", RT_SCOPE_LINK, 0, false },
                { AF_INET, "127.0.0.1", RT_SCOPE_HOST, 0, false },
                { AF_INET, "192.0.2.3", RT_SCOPE_NOWHERE, 0, false },
                { AF_INET6, "2001:db8::1", RT_SCOPE_UNIVERSE, 0, true },
                { AF_INET6, "2001:db8::2", RT_SCOPE_UNIVERSE, IFA_F_TENTATIVE, false },
                { AF_INET6, "2001:db8::3", RT_SCOPE_UNIVERSE, IFA_F_DADFAILED | IFA_F_TENTATIVE, false },
                { AF_INET6, "2001:db8::4", RT_SCOPE_UNIVERSE, IFA_F_OPTIMISTIC, true },
                { AF_INET6, "2001:db8::5", RT_SCOPE_UNIVERSE, IFA_F_DEPRECATED, true },
                { AF_INET6, "fe80::1", RT_SCOPE_LINK, 0, false },
                { AF_INET6, "fe80::2", RT_SCOPE_UNIVERSE, 0, false }, /* the scope lies */
                { AF_INET6, "febf::2", RT_SCOPE_UNIVERSE, 0, false },
                { AF_INET6, "fec0::2", RT_SCOPE_UNIVERSE, 0, true },
                { AF_INET6, "::1", RT_SCOPE_HOST, 0, false },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Msg m;

                address_msg(&m, RTM_NEWADDR, cases[i].family, cases[i].address, cases[i].scope, cases[i].flags);
                feed(&m);
                ck_assert_msg(netwatch_pending(w) == (cases[i].wanted ? NETWATCH_CHANGE_ADDRESS : 0u), "case %zu", i);
                flush();
        }
}
END_TEST

START_TEST(test_parse_address_lifecycle) {
        Msg m;
        uint32_t tentative = IFA_F_TENTATIVE;
        struct rtattr *flags_attr;

        /* New, then refreshed: one change. */
        address_msg(&m, RTM_NEWADDR, AF_INET6, "2001:db8::9", RT_SCOPE_UNIVERSE, 0);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), NETWATCH_CHANGE_ADDRESS);
        flush();
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), 0);

        /* The same address on another interface or with another prefix is another address. */
        ((struct ifaddrmsg *) NLMSG_DATA(&m.h))->ifa_index = 1001;
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), NETWATCH_CHANGE_ADDRESS);
        flush();
        ((struct ifaddrmsg *) NLMSG_DATA(&m.h))->ifa_index = 1000;
        ((struct ifaddrmsg *) NLMSG_DATA(&m.h))->ifa_prefixlen = 128;
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), NETWATCH_CHANGE_ADDRESS);
        flush();
        ((struct ifaddrmsg *) NLMSG_DATA(&m.h))->ifa_prefixlen = 64;

        /* Removed and added again: a change again. */
        m.h.nlmsg_type = RTM_DELADDR;
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), 0);
        m.h.nlmsg_type = RTM_NEWADDR;
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), NETWATCH_CHANGE_ADDRESS);
        flush();

        /* Tentative again (DAD restarts when the link comes back; the flag can come only
         * in IFA_FLAGS): not usable, and usable again afterwards is a change. */
        flags_attr = IFA_RTA(NLMSG_DATA(&m.h));
        ck_assert_uint_eq(flags_attr->rta_type, IFA_FLAGS);
        memcpy(RTA_DATA(flags_attr), &tentative, sizeof tentative);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), 0);
        memset(RTA_DATA(flags_attr), 0, sizeof tentative);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), NETWATCH_CHANGE_ADDRESS);
        flush();
}
END_TEST

START_TEST(test_parse_address_point_to_point) {
        struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_prefixlen = 32, .ifa_index = 1000 };
        uint8_t local[4] = { 10, 8, 0, 2 }, peer[4] = { 10, 8, 0, 1 }, other_peer[4] = { 10, 8, 0, 3 };
        Msg m;

        /* Our end is IFA_LOCAL; a new peer for the same local address is not a new address. */
        msg_init(&m, RTM_NEWADDR, &ifa, sizeof ifa);
        msg_attr(&m, IFA_ADDRESS, peer, sizeof peer);
        msg_attr(&m, IFA_LOCAL, local, sizeof local);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), NETWATCH_CHANGE_ADDRESS);
        flush();
        msg_init(&m, RTM_NEWADDR, &ifa, sizeof ifa);
        msg_attr(&m, IFA_LOCAL, local, sizeof local);
        msg_attr(&m, IFA_ADDRESS, other_peer, sizeof other_peer);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), 0);
}
END_TEST

START_TEST(test_parse_address_malformed) {
        struct ifaddrmsg ifa4 = { .ifa_family = AF_INET, .ifa_prefixlen = 24, .ifa_index = 1000 };
        struct ifaddrmsg ifa0 = { .ifa_family = AF_UNSPEC, .ifa_prefixlen = 24, .ifa_index = 1000 };
        uint8_t sixteen[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
        uint8_t three[3] = { 192, 0, 2 };
        uint16_t short_flags = 0;
        Msg m;

        /* An address of the other family's size. */
        msg_init(&m, RTM_NEWADDR, &ifa4, sizeof ifa4);
        msg_attr(&m, IFA_LOCAL, sixteen, sizeof sixteen);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), 0);

        msg_init(&m, RTM_NEWADDR, &ifa4, sizeof ifa4);
        msg_attr(&m, IFA_ADDRESS, three, sizeof three);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), 0);

        /* A good address but a short IFA_FLAGS: the message as a whole is dropped. */
        msg_init(&m, RTM_NEWADDR, &ifa4, sizeof ifa4);
        msg_attr(&m, IFA_LOCAL, sixteen, 4);
        msg_attr(&m, IFA_FLAGS, &short_flags, sizeof short_flags);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), 0);

        /* No address at all. */
        msg_init(&m, RTM_NEWADDR, &ifa4, sizeof ifa4);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), 0);

        /* Unknown family. */
        msg_init(&m, RTM_NEWADDR, &ifa0, sizeof ifa0);
        msg_attr(&m, IFA_LOCAL, sixteen, 4);
        feed(&m);
        ck_assert_uint_eq(netwatch_pending(w), 0);

        /* Attribute lengths that lie: 0, below the header, past the message. */
        for (unsigned bad = 0; bad < 3; bad++) {
                struct rtattr *a;

                msg_init(&m, RTM_NEWADDR, &ifa4, sizeof ifa4);
                msg_attr(&m, IFA_LOCAL, sixteen, 4);
                a = IFA_RTA(NLMSG_DATA(&m.h));
                a->rta_len = bad == 0 ? 0 : bad == 1 ? 3 : 200;
                feed(&m);
                ck_assert_uint_eq(netwatch_pending(w), 0);
        }
}
END_TEST

START_TEST(test_parse_links) {
        static const struct {
                uint16_t type;
                int index;
                unsigned flags;
                unsigned family;
                bool wanted;
        } steps[] = {
                { RTM_NEWLINK, 1000, 0, AF_UNSPEC, false },                    /* created down */
                { RTM_NEWLINK, 1000, IFF_UP, AF_UNSPEC, false },               /* up, no carrier */
                { RTM_NEWLINK, 1000, IFF_UP | IFF_LOWER_UP, AF_UNSPEC, true }, /* carrier */
                { RTM_NEWLINK, 1000, LINK_READY, AF_UNSPEC, true },            /* running (802.1X done) */
                { RTM_NEWLINK, 1000, LINK_READY, AF_UNSPEC, false },           /* MTU, stats, wireless */
                { RTM_NEWLINK, 1000, LINK_READY | IFF_PROMISC, AF_UNSPEC, false },
                { RTM_NEWLINK, 1000, IFF_UP, AF_UNSPEC, false },               /* carrier lost */
                { RTM_NEWLINK, 1000, LINK_READY, AF_UNSPEC, true },            /* and back */
                { RTM_NEWLINK, 1000, 0, AF_UNSPEC, false },                    /* down */
                { RTM_NEWLINK, 1000, IFF_RUNNING | IFF_LOWER_UP, AF_UNSPEC, false }, /* carrier, admin down */
                { RTM_NEWLINK, 1000, LINK_READY, AF_UNSPEC, true },            /* admin up: now it counts */
                { RTM_DELLINK, 1000, 0, AF_UNSPEC, false },                    /* removed */
                { RTM_NEWLINK, 1000, LINK_READY, AF_UNSPEC, true },            /* a new one, already up */
                { RTM_NEWLINK, 1, IFF_LOOPBACK | LINK_READY, AF_UNSPEC, false },
                { RTM_NEWLINK, 1002, LINK_READY, AF_BRIDGE, false },
                { RTM_NEWLINK, 1003, LINK_READY, AF_UNSPEC, true },
        };

        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                Msg m;

                link_msg(&m, steps[i].type, steps[i].index, steps[i].flags);
                ((struct ifinfomsg *) NLMSG_DATA(&m.h))->ifi_family = steps[i].family;
                feed(&m);
                ck_assert_msg(netwatch_pending(w) == (steps[i].wanted ? NETWATCH_CHANGE_LINK : 0u), "step %zu", i);
                flush();
        }
}
END_TEST

START_TEST(test_parse_datagrams) {
        union {
                struct nlmsghdr h;
                uint8_t b[1024];
        } d;
        Msg a, r, l;
        size_t n;

        address_msg(&a, RTM_NEWADDR, AF_INET, "192.0.2.7", RT_SCOPE_UNIVERSE, 0);
        route_msg(&r, RTM_NEWROUTE, AF_INET6, 0, RTN_UNICAST, RT_TABLE_MAIN);
        link_msg(&l, RTM_NEWLINK, 1000, LINK_READY);

        /* Several messages in one datagram, each padded to the alignment. */
        memset(&d, 0, sizeof d);
        n = 0;
        memcpy(d.b + n, a.b, a.h.nlmsg_len);
        n += NLMSG_ALIGN(a.h.nlmsg_len);
        memcpy(d.b + n, r.b, r.h.nlmsg_len);
        n += NLMSG_ALIGN(r.h.nlmsg_len);
        memcpy(d.b + n, l.b, l.h.nlmsg_len);
        n += l.h.nlmsg_len;
        netwatch_process_datagram(w, d.b, n);
        ck_assert_uint_eq(netwatch_pending(w),
                          NETWATCH_CHANGE_ADDRESS | NETWATCH_CHANGE_ROUTE | NETWATCH_CHANGE_LINK);
        flush();

        /* A bad header ends the walk: what follows it is not read. */
        memset(&d, 0, sizeof d);
        d.h.nlmsg_len = 0;
        memcpy(d.b + NLMSG_HDRLEN, r.b, r.h.nlmsg_len);
        netwatch_process_datagram(w, d.b, NLMSG_HDRLEN + r.h.nlmsg_len);
        ck_assert_uint_eq(netwatch_pending(w), 0);
        d.h.nlmsg_len = 8;
        netwatch_process_datagram(w, d.b, NLMSG_HDRLEN + r.h.nlmsg_len);
        ck_assert_uint_eq(netwatch_pending(w), 0);
        d.h.nlmsg_len = UINT32_MAX;
        netwatch_process_datagram(w, d.b, NLMSG_HDRLEN + r.h.nlmsg_len);
        ck_assert_uint_eq(netwatch_pending(w), 0);

        /* Good messages before a bad one still count. */
        memset(&d, 0, sizeof d);
        memcpy(d.b, r.b, r.h.nlmsg_len);
        n = NLMSG_ALIGN(r.h.nlmsg_len);
        ((struct nlmsghdr *) (d.b + n))->nlmsg_len = 4000;
        netwatch_process_datagram(w, d.b, n + 64);
        ck_assert_uint_eq(netwatch_pending(w), NETWATCH_CHANGE_ROUTE);
        flush();

        /* Control messages and unknown types carry no change. */
        static const uint16_t types[] = { NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN,
                                          RTM_GETLINK, RTM_NEWNEIGH, RTM_NEWRULE, 0x7fff, 0xffff };
        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                memset(&d, 0, sizeof d);
                d.h.nlmsg_type = types[i];
                d.h.nlmsg_len = NLMSG_HDRLEN;
                netwatch_process_datagram(w, d.b, NLMSG_HDRLEN);
                d.h.nlmsg_len = 200;
                netwatch_process_datagram(w, d.b, 200);
                ck_assert_uint_eq(netwatch_pending(w), 0);
        }

        /* Nothing, and more than any datagram can be. */
        netwatch_process_datagram(w, d.b, 0);
        {
                _cleanup_(freep) uint8_t *huge = calloc(1, 64 * 1024);
                ck_assert_ptr_nonnull(huge);
                memcpy(huge, a.b, a.h.nlmsg_len);
                netwatch_process_datagram(w, huge, 64 * 1024);
        }
        ck_assert_uint_eq(netwatch_pending(w), 0);
}
END_TEST

START_TEST(test_callback_may_free) {
        Msg m;

        ck_assert_ptr_null(netwatch_free(NULL));
        w = netwatch_free(w);
        ck_assert_int_eq(netwatch_new(e, on_change, (void *) 1, &w), 0);
        netwatch_set_debounce(w, 0, 0);
        link_msg(&m, RTM_NEWLINK, 1000, LINK_READY);
        feed(&m);
        run_until(&calls, 1, DEADLINE_USEC);
        ck_assert_uint_eq(calls, 1);
        ck_assert_ptr_null(w);
        /* The loop goes on without it. */
        ck_assert_int_ge(sd_event_run(e, 0), 0);
}
END_TEST

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng(void) {
        /* xorshift64*: reproducible, so a failure can be replayed. */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (uint32_t) ((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

START_TEST(test_parse_mutations) {
        Msg templates[6];
        uint8_t buf[1024];

        address_msg(&templates[0], RTM_NEWADDR, AF_INET, "192.0.2.7", RT_SCOPE_UNIVERSE, 0);
        address_msg(&templates[1], RTM_DELADDR, AF_INET6, "2001:db8::7", RT_SCOPE_UNIVERSE, 0);
        route_msg(&templates[2], RTM_NEWROUTE, AF_INET, 0, RTN_UNICAST, RT_TABLE_MAIN);
        link_msg(&templates[3], RTM_NEWLINK, 1000, LINK_READY);
        link_msg(&templates[4], RTM_DELLINK, 1000, 0);
        msg_init(&templates[5], NLMSG_ERROR, &(struct nlmsgerr) { .error = -EINVAL }, sizeof(struct nlmsgerr));

        /* Random edits of real messages, several per datagram; the sanitizers and valgrind
         * judge. */
        for (unsigned iter = 0; iter < 20000; iter++) {
                size_t n = 0, parts = 1 + rng() % 3, edits;

                memset(buf, 0, sizeof buf);
                for (size_t p = 0; p < parts; p++) {
                        const Msg *t = &templates[rng() % ELEMENTSOF(templates)];
                        memcpy(buf + n, t->b, t->h.nlmsg_len);
                        n += NLMSG_ALIGN(t->h.nlmsg_len);
                }
                edits = rng() % 4;
                for (size_t k = 0; k < edits; k++)
                        buf[rng() % n] = (uint8_t) rng();
                if (rng() % 2)
                        n = rng() % (n + 1);
                netwatch_process_datagram(w, buf, n);
                if (iter % 1000 == 0)
                        flush();
        }
        /* Pure noise too. */
        for (unsigned iter = 0; iter < 2000; iter++) {
                size_t n = rng() % sizeof buf;
                for (size_t k = 0; k < n; k++)
                        buf[k] = (uint8_t) rng();
                netwatch_process_datagram(w, buf, n);
        }
        flush();
}
END_TEST

/* Forks a child into a new namespace to learn what the kernel allows; the test process
 * itself stays where it is. The answer comes through a pipe, not the exit status, which a
 * valgrind wrapper may replace. Returns false with a note when the namespace tests skip. */
enum {
        PROBE_UNSHARE = 1 << 0,
        PROBE_DUMMY = 1 << 1,
        PROBE_IFB = 1 << 2,
        PROBE_VETH = 1 << 3,
};

static bool netns_probe(void) {
        uint8_t answer = 0;
        int fds[2];
        pid_t pid;

        if (geteuid() != 0) {
                fprintf(stderr, "test-netwatch: not root, namespace tests skipped (parser tests run)\n");
                return false;
        }
        if (!sh_ok("ip -V >/dev/null 2>&1")) {
                fprintf(stderr, "test-netwatch: no ip(8), namespace tests skipped\n");
                return false;
        }
        if (pipe2(fds, O_CLOEXEC) < 0)
                return false;
        pid = fork();
        if (pid < 0)
                return false;
        if (pid == 0) {
                if (unshare(CLONE_NEWNET) == 0) {
                        answer |= PROBE_UNSHARE;
                        if (sh_ok("ip link add p0 type dummy 2>/dev/null"))
                                answer |= PROBE_DUMMY;
                        else if (sh_ok("ip link add p0 type ifb 2>/dev/null"))
                                answer |= PROBE_IFB;
                        if (sh_ok("ip link add p1 type veth peer name p2 2>/dev/null"))
                                answer |= PROBE_VETH;
                }
                _exit(write(fds[1], &answer, 1) == 1 ? 0 : 1);
        }
        close(fds[1]);
        if (read(fds[0], &answer, 1) != 1)
                answer = 0;
        close(fds[0]);
        (void) waitpid(pid, NULL, 0);

        if (!(answer & PROBE_UNSHARE)) {
                fprintf(stderr, "test-netwatch: unshare(CLONE_NEWNET) failed, namespace tests skipped\n");
                return false;
        }
        dev_type = answer & PROBE_DUMMY ? "dummy" : answer & PROBE_IFB ? "ifb" : NULL;
        have_veth = answer & PROBE_VETH;
        if (!dev_type) {
                fprintf(stderr, "test-netwatch: neither dummy nor ifb links, namespace tests skipped\n");
                return false;
        }
        return true;
}

int main(void) {
        Suite *s = suite_create("netwatch");
        TCase *tc;
        SRunner *sr;
        int failed;

        (void) netns_probe();

        tc = tcase_create("parser");
        tcase_add_checked_fixture(tc, parser_setup, watch_stop);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_parse_truncated);
        tcase_add_test(tc, test_parse_routes);
        tcase_add_test(tc, test_parse_route_table_field);
        tcase_add_test(tc, test_parse_addresses);
        tcase_add_test(tc, test_parse_address_lifecycle);
        tcase_add_test(tc, test_parse_address_point_to_point);
        tcase_add_test(tc, test_parse_address_malformed);
        tcase_add_test(tc, test_parse_links);
        tcase_add_test(tc, test_parse_datagrams);
        tcase_add_test(tc, test_parse_mutations);
        tcase_add_test(tc, test_callback_may_free);
        suite_add_tcase(s, tc);

        if (dev_type) {
                tc = tcase_create("netns");
                tcase_add_checked_fixture(tc, netns_setup, netns_teardown);
                tcase_set_timeout(tc, 60);
                tcase_add_test(tc, test_baseline);
                tcase_add_test(tc, test_loopback_ignored);
                tcase_add_test(tc, test_address_ipv4);
                tcase_add_test(tc, test_address_ipv6);
                tcase_add_test(tc, test_address_refresh_ignored);
                tcase_add_test(tc, test_link_scope_ignored);
                tcase_add_test(tc, test_tentative_ignored);
                tcase_add_test(tc, test_default_route_ipv4);
                tcase_add_test(tc, test_default_route_ipv6);
                tcase_add_test(tc, test_unrelated_changes);
                tcase_add_test(tc, test_link_up);
                tcase_add_test(tc, test_carrier);
                tcase_add_test(tc, test_burst_debounced);
                tcase_add_test(tc, test_max_delay);
                tcase_add_test(tc, test_overrun);
                suite_add_tcase(s, tc);
        }

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
