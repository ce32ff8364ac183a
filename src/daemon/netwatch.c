/* Watches rtnetlink for network changes that make a failed connection worth retrying at
 * once, and CLOCK_BOOTTIME against CLOCK_MONOTONIC for resume from suspend. */
#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "netwatch.h"

/* What counts as a change (everything else is noise and ignored):
 * - RTM_NEWROUTE for a unicast default route (dst_len 0) in the main table, IPv4 or IPv6.
 *   Routes are not remembered: the kernel does not re-announce a default route when an
 *   RA refreshes its lifetime, so each announcement is a real change.
 * - An address that becomes usable: not tentative or DAD-failed, scope global or site
 *   (link- and host-scope addresses, so fe80::/10, ::1 and 127.0.0.1 on lo, cannot carry
 *   a tunnel to another host). Addresses are remembered, because the kernel announces
 *   RTM_NEWADDR again on every lifetime refresh (each IPv6 RA, each DHCP renewal) and
 *   announces an IPv6 address again without the tentative flag once DAD is done: only
 *   the first usable announcement counts.
 * - A non-loopback link that is administratively up and newly has IFF_RUNNING or
 *   IFF_LOWER_UP. Links are remembered because RTM_NEWLINK also comes for MTU,
 *   statistics and wireless events, and carrier changes arrive with ifi_change 0.
 * - ENOBUFS (the kernel dropped notifications) or a truncated datagram: anything may
 *   have changed; the remembered links and addresses are then dumped again.
 * What is remembered starts from a dump (links, then addresses) on the same socket,
 * whose replies never count as changes. */

/* The kernel builds dump datagrams of at most 32 KiB and notifications of about a page. */
#define NETWATCH_BUFFER_SIZE (32u * 1024u)
/* Datagrams read per wakeup before other sources get their turn. */
#define NETWATCH_READS_PER_WAKEUP 64u
#define NETWATCH_TIMER_ACCURACY_USEC (1 * USEC_PER_MSEC)
/* Suspend checks need no precision; a coarse slack lets the kernel batch the wakeup. */
#define NETWATCH_RESUME_ACCURACY_USEC (5 * USEC_PER_SEC)

typedef enum DumpStage {
        DUMP_NONE,
        DUMP_LINKS,
        DUMP_ADDRESSES,
} DumpStage;

typedef struct LinkEntry {
        int ifindex;
        unsigned flags;
} LinkEntry;

typedef struct AddressEntry {
        int ifindex;
        uint8_t family;
        uint8_t prefixlen;
        uint8_t address[16]; /* IPv4 in the first 4 bytes, the rest zero */
} AddressEntry;

/* A sorted set (glibc tsearch tree) with a size limit. */
typedef struct Table {
        void *root;
        size_t n;
        size_t max;
        size_t entry_size;
        int (*compare)(const void *, const void *);
} Table;

struct Netwatch {
        sd_event *event;
        sd_event_source *io;
        sd_event_source *debounce;
        sd_event_source *resume;
        int fd;
        uint32_t portid;

        NetwatchCallback callback;
        void *userdata;

        uint64_t quiet_usec;
        uint64_t max_delay_usec;
        unsigned pending;
        uint64_t burst_start_usec;

        DumpStage dump;
        uint32_t seq;
        uint32_t dump_seq;
        bool resync; /* dump again once the running dump ends */

        Table links;
        Table addresses;

        uint64_t sleep_usec; /* CLOCK_BOOTTIME - CLOCK_MONOTONIC at the last check */

        union {
                struct nlmsghdr header; /* aligns the buffer for the netlink macros */
                uint8_t bytes[NETWATCH_BUFFER_SIZE];
        } buffer;
};

static int compare_int(int a, int b) {
        return (a > b) - (a < b);
}

static int link_compare(const void *a, const void *b) {
        const LinkEntry *x = a, *y = b;
        return compare_int(x->ifindex, y->ifindex);
}

static int address_compare(const void *a, const void *b) {
        const AddressEntry *x = a, *y = b;
        int r;

        r = compare_int(x->ifindex, y->ifindex);
        if (r != 0)
                return r;
        r = compare_int(x->family, y->family);
        if (r != 0)
                return r;
        r = compare_int(x->prefixlen, y->prefixlen);
        if (r != 0)
                return r;
        return memcmp(x->address, y->address, sizeof x->address);
}

static void *table_find(Table *t, const void *key) {
        void **p = tfind(key, &t->root, t->compare);
        return p ? *p : NULL;
}

/* Returns the new entry, or NULL when the table is full or memory is short; the caller
 * then treats the key as untracked. */
static void *table_add(Table *t, const void *key) {
        void *e, **p;

        if (t->n >= t->max)
                return NULL;
        e = malloc(t->entry_size);
        if (!e)
                return NULL;
        memcpy(e, key, t->entry_size);
        p = tsearch(e, &t->root, t->compare);
        if (!p || *p != e) {
                free(e);
                return p ? *p : NULL;
        }
        t->n++;
        return e;
}

static void table_remove(Table *t, const void *key) {
        void **p = tfind(key, &t->root, t->compare);
        void *e;

        if (!p)
                return;
        e = *p;
        (void) tdelete(key, &t->root, t->compare);
        free(e);
        t->n--;
}

static void table_clear(Table *t) {
        tdestroy(t->root, free);
        t->root = NULL;
        t->n = 0;
}

static uint64_t clock_usec(clockid_t clock) {
        struct timespec ts;

        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* How long the system has been suspended since boot: CLOCK_MONOTONIC stops during
 * suspend, CLOCK_BOOTTIME does not. */
static uint64_t sleep_usec(void) {
        uint64_t boot = clock_usec(CLOCK_BOOTTIME), mono = clock_usec(CLOCK_MONOTONIC);
        return boot > mono ? boot - mono : 0;
}

static void note_change(Netwatch *w, unsigned change) {
        uint64_t now, deadline;
        int r;

        if (sd_event_now(w->event, CLOCK_MONOTONIC, &now) < 0)
                now = clock_usec(CLOCK_MONOTONIC);
        if (w->pending == 0)
                w->burst_start_usec = now;
        w->pending |= change;

        deadline = MIN(now + w->quiet_usec, w->burst_start_usec + w->max_delay_usec);
        r = sd_event_source_set_time(w->debounce, deadline);
        if (r >= 0)
                r = sd_event_source_set_enabled(w->debounce, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "Failed to arm the network change timer: %m");
}

static int on_debounce(sd_event_source *s, uint64_t usec, void *userdata) {
        Netwatch *w = userdata;
        unsigned changes = w->pending;

        w->pending = 0;
        log_debug("Network changed (0x%x), retrying tunnels in backoff.", changes);
        /* Last: the callback may free w. */
        if (changes != 0)
                w->callback(w, changes, w->userdata);
        return 0;
}

static int on_resume_check(sd_event_source *s, uint64_t usec, void *userdata) {
        Netwatch *w = userdata;
        uint64_t slept = sleep_usec();
        int r;

        if (slept >= w->sleep_usec + NETWATCH_RESUME_MIN_USEC) {
                log_debug("Resumed after %" PRIu64 " s of suspend.", (slept - w->sleep_usec) / USEC_PER_SEC);
                note_change(w, NETWATCH_CHANGE_RESUME);
        }
        w->sleep_usec = slept;

        r = sd_event_source_set_time_relative(s, NETWATCH_RESUME_CHECK_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Failed to re-arm the suspend check, resume goes unnoticed: %m");
        return 0;
}

static int dump_request(Netwatch *w, DumpStage stage) {
        struct {
                struct nlmsghdr header;
                union {
                        struct ifinfomsg ifi;
                        struct ifaddrmsg ifa;
                };
        } req = {};
        struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };

        assert(stage != DUMP_NONE);

        if (++w->seq == 0)
                w->seq = 1;
        req.header.nlmsg_type = stage == DUMP_LINKS ? RTM_GETLINK : RTM_GETADDR;
        req.header.nlmsg_len = stage == DUMP_LINKS ? NLMSG_LENGTH(sizeof req.ifi) : NLMSG_LENGTH(sizeof req.ifa);
        req.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        req.header.nlmsg_seq = w->seq;

        if (sendto(w->fd, &req, req.header.nlmsg_len, 0, (struct sockaddr *) &kernel, sizeof kernel) < 0) {
                w->dump = DUMP_NONE;
                return -errno;
        }
        w->dump = stage;
        w->dump_seq = w->seq;
        return 0;
}

/* Forgets what is known and learns it again, silently. */
static void resync(Netwatch *w) {
        int r;

        if (w->dump != DUMP_NONE) {
                w->resync = true;
                return;
        }
        w->resync = false;
        table_clear(&w->links);
        table_clear(&w->addresses);
        r = dump_request(w, DUMP_LINKS);
        if (r < 0)
                /* Without the dump, existing addresses count as new when next refreshed:
                 * at worst one early retry. */
                log_debug_errno(r, "Failed to request the link dump: %m");
}

static void dump_finished(Netwatch *w) {
        int r;

        if (w->dump == DUMP_LINKS) {
                r = dump_request(w, DUMP_ADDRESSES);
                if (r < 0)
                        log_debug_errno(r, "Failed to request the address dump: %m");
                return;
        }
        w->dump = DUMP_NONE;
        if (w->resync)
                resync(w);
}

static void overrun(Netwatch *w) {
        log_debug("rtnetlink notifications were lost, assuming the network changed.");
        note_change(w, NETWATCH_CHANGE_OVERRUN);
        resync(w);
}

/* Carrier and operational state count only while the link is administratively up. */
static unsigned link_ready_bits(unsigned flags) {
        return (flags & IFF_UP) ? flags & (IFF_RUNNING | IFF_LOWER_UP) : 0;
}

static void handle_link(Netwatch *w, const struct nlmsghdr *h, bool from_dump) {
        const struct ifinfomsg *ifi;
        LinkEntry key = {}, *e;
        unsigned old = 0, new;

        if (h->nlmsg_len < NLMSG_SPACE(sizeof *ifi))
                return;
        ifi = NLMSG_DATA(h);
        /* AF_BRIDGE and others repeat a device's state for their own purposes. */
        if (ifi->ifi_family != AF_UNSPEC)
                return;

        key.ifindex = ifi->ifi_index;
        if (h->nlmsg_type == RTM_DELLINK) {
                table_remove(&w->links, &key);
                return;
        }

        new = ifi->ifi_flags;
        e = table_find(&w->links, &key);
        if (e) {
                old = e->flags;
                e->flags = new;
        } else {
                key.flags = new;
                (void) table_add(&w->links, &key);
        }

        if (from_dump || (new & IFF_LOOPBACK))
                return;
        if (link_ready_bits(new) & ~link_ready_bits(old)) {
                log_debug("Link %i is up.", ifi->ifi_index);
                note_change(w, NETWATCH_CHANGE_LINK);
        }
}

static bool address_usable(int family, const uint8_t *address, uint8_t scope, uint32_t flags) {
        if (flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED))
                return false;
        if (scope >= RT_SCOPE_LINK)
                return false;
        /* fe80::/10 is always link scope; do not rely on the scope field alone. */
        if (family == AF_INET6 && address[0] == 0xfe && (address[1] & 0xc0) == 0x80)
                return false;
        return true;
}

static void handle_address(Netwatch *w, const struct nlmsghdr *h, bool from_dump) {
        const struct ifaddrmsg *ifa;
        const struct rtattr *a;
        const uint8_t *local = NULL, *address = NULL;
        AddressEntry key = {};
        size_t size;
        uint32_t flags;
        int len;

        if (h->nlmsg_len < NLMSG_SPACE(sizeof *ifa))
                return;
        ifa = NLMSG_DATA(h);
        switch (ifa->ifa_family) {
        case AF_INET:
                size = 4;
                break;
        case AF_INET6:
                size = 16;
                break;
        default:
                return;
        }
        flags = ifa->ifa_flags;

        len = (int) (h->nlmsg_len - NLMSG_SPACE(sizeof *ifa));
        for (a = IFA_RTA(ifa); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                size_t payload = RTA_PAYLOAD(a);

                switch (a->rta_type) {
                case IFA_LOCAL:
                case IFA_ADDRESS:
                        if (payload != size)
                                return; /* malformed: skip the whole message */
                        if (a->rta_type == IFA_LOCAL)
                                local = RTA_DATA(a);
                        else
                                address = RTA_DATA(a);
                        break;
                case IFA_FLAGS:
                        /* The full 32-bit flags; ifa_flags holds only the low 8. */
                        if (payload != sizeof flags)
                                return;
                        memcpy(&flags, RTA_DATA(a), sizeof flags);
                        break;
                }
        }
        /* IFA_LOCAL is our end of a point-to-point link, where IFA_ADDRESS is the peer. */
        if (!local)
                local = address;
        if (!local)
                return;

        key.ifindex = (int) ifa->ifa_index;
        key.family = ifa->ifa_family;
        key.prefixlen = ifa->ifa_prefixlen;
        memcpy(key.address, local, size);

        if (h->nlmsg_type == RTM_DELADDR || !address_usable(ifa->ifa_family, key.address, ifa->ifa_scope, flags)) {
                table_remove(&w->addresses, &key);
                return;
        }
        if (table_find(&w->addresses, &key))
                return; /* a refresh */
        (void) table_add(&w->addresses, &key);
        if (from_dump)
                return;
        log_debug("New address on link %i.", key.ifindex);
        note_change(w, NETWATCH_CHANGE_ADDRESS);
}

static void handle_route(Netwatch *w, const struct nlmsghdr *h) {
        const struct rtmsg *rtm;
        const struct rtattr *a;
        uint32_t table;
        int len;

        if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_SPACE(sizeof *rtm))
                return;
        rtm = NLMSG_DATA(h);
        if ((rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) || rtm->rtm_dst_len != 0 || rtm->rtm_type != RTN_UNICAST ||
            (rtm->rtm_flags & RTM_F_CLONED))
                return;

        /* Table ids above 255 only come as RTA_TABLE. */
        table = rtm->rtm_table;
        len = (int) (h->nlmsg_len - NLMSG_SPACE(sizeof *rtm));
        for (a = RTM_RTA(rtm); RTA_OK(a, len); a = RTA_NEXT(a, len))
                if (a->rta_type == RTA_TABLE) {
                        if (RTA_PAYLOAD(a) != sizeof table)
                                return;
                        memcpy(&table, RTA_DATA(a), sizeof table);
                }
        if (table != RT_TABLE_MAIN)
                return;

        log_debug("New default route.");
        note_change(w, NETWATCH_CHANGE_ROUTE);
}

static void process_message(Netwatch *w, const struct nlmsghdr *h) {
        /* Multicast notifications carry the port and sequence of whoever made the change;
         * only replies to our own dump carry ours. */
        bool from_dump = w->dump != DUMP_NONE && h->nlmsg_pid == w->portid && h->nlmsg_seq == w->dump_seq;

        /* NLM_F_DUMP_INTR (the dump raced with a change) is not acted on: the change's own
         * notification follows and is judged against what the dump left. */
        switch (h->nlmsg_type) {
        case NLMSG_DONE:
        case NLMSG_ERROR:
                if (from_dump)
                        dump_finished(w);
                break;
        case RTM_NEWLINK:
        case RTM_DELLINK:
                handle_link(w, h, from_dump);
                break;
        case RTM_NEWADDR:
        case RTM_DELADDR:
                handle_address(w, h, from_dump);
                break;
        case RTM_NEWROUTE:
                handle_route(w, h);
                break;
        }
}

/* NLMSG_OK() without its signed/unsigned comparison, which clang warns about. */
static bool nlmsg_ok(const struct nlmsghdr *h, int len) {
        return len >= (int) sizeof(struct nlmsghdr) && h->nlmsg_len >= sizeof(struct nlmsghdr) &&
               h->nlmsg_len <= (unsigned) len;
}

/* buf must be aligned for struct nlmsghdr. Messages that do not fit what is left of the
 * datagram end the walk; each handler checks its own payload. */
static void process_buffer(Netwatch *w, const void *buf, size_t size) {
        const struct nlmsghdr *h;
        int len;

        if (size > NETWATCH_BUFFER_SIZE)
                return;
        len = (int) size;
        for (h = buf; nlmsg_ok(h, len); h = NLMSG_NEXT(h, len))
                process_message(w, h);
}

void netwatch_process_datagram(Netwatch *w, const void *buf, size_t size) {
        _cleanup_(freep) void *copy = NULL;

        assert(w);
        if (size == 0 || size > NETWATCH_BUFFER_SIZE)
                return;
        /* An exact-size copy: aligned, and an over-read is caught by the sanitizers. */
        copy = malloc(size);
        if (!copy)
                return;
        memcpy(copy, buf, size);
        process_buffer(w, copy, size);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Netwatch *w = userdata;

        for (unsigned i = 0; i < NETWATCH_READS_PER_WAKEUP; i++) {
                struct sockaddr_nl sender = {};
                struct iovec iov = { .iov_base = w->buffer.bytes, .iov_len = sizeof w->buffer.bytes };
                struct msghdr mh = {
                        .msg_name = &sender,
                        .msg_namelen = sizeof sender,
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                };
                ssize_t n;

                n = recvmsg(fd, &mh, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return 0;
                        if (errno == EINTR)
                                continue;
                        if (errno == ENOBUFS) {
                                overrun(w);
                                continue;
                        }
                        log_error_errno(errno, "Failed to read rtnetlink, network changes go unnoticed: %m");
                        return sd_event_source_set_enabled(s, SD_EVENT_OFF);
                }
                /* Only the kernel may speak; a local process could unicast to our port. */
                if (mh.msg_namelen != sizeof sender || sender.nl_family != AF_NETLINK || sender.nl_pid != 0)
                        continue;
                process_buffer(w, w->buffer.bytes, (size_t) n);
                if (mh.msg_flags & MSG_TRUNC)
                        overrun(w);
        }
        return 0;
}

int netwatch_new(sd_event *e, NetwatchCallback cb, void *userdata, Netwatch **ret) {
        _cleanup_(netwatch_freep) Netwatch *w = NULL;
        struct sockaddr_nl sa = {
                .nl_family = AF_NETLINK,
                .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE |
                             RTMGRP_IPV6_ROUTE,
        };
        socklen_t salen = sizeof sa;
        int r;

        assert(e);
        assert(cb);
        assert(ret);

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->fd = -EBADF;
        w->event = sd_event_ref(e);
        w->callback = cb;
        w->userdata = userdata;
        w->quiet_usec = NETWATCH_QUIET_USEC;
        w->max_delay_usec = NETWATCH_MAX_DELAY_USEC;
        w->links = (Table) { .max = NETWATCH_LINKS_MAX, .entry_size = sizeof(LinkEntry), .compare = link_compare };
        w->addresses = (Table) {
                .max = NETWATCH_ADDRESSES_MAX,
                .entry_size = sizeof(AddressEntry),
                .compare = address_compare,
        };

        w->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
        if (w->fd < 0)
                return -errno;
        if (bind(w->fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        if (getsockname(w->fd, (struct sockaddr *) &sa, &salen) < 0)
                return -errno;
        w->portid = sa.nl_pid;

        r = sd_event_add_io(e, &w->io, w->fd, EPOLLIN, on_io, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(w->io, "netwatch");

        r = sd_event_add_time(e, &w->debounce, CLOCK_MONOTONIC, 0, NETWATCH_TIMER_ACCURACY_USEC, on_debounce, w);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(w->debounce, SD_EVENT_OFF);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(w->debounce, "netwatch-debounce");

        /* A CLOCK_BOOTTIME timer runs on during suspend, so it fires right after a resume
         * that outlasted it; the clock comparison then tells a resume from a plain tick. */
        w->sleep_usec = sleep_usec();
        r = sd_event_add_time_relative(e, &w->resume, CLOCK_BOOTTIME, NETWATCH_RESUME_CHECK_USEC,
                                       NETWATCH_RESUME_ACCURACY_USEC, on_resume_check, w);
        if (r < 0)
                log_debug_errno(r, "No CLOCK_BOOTTIME timers, resume from suspend goes unnoticed: %m");
        else
                (void) sd_event_source_set_description(w->resume, "netwatch-resume");

        resync(w);

        *ret = TAKE_PTR(w);
        return 0;
}

Netwatch *netwatch_free(Netwatch *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->io);
        sd_event_source_disable_unref(w->debounce);
        sd_event_source_disable_unref(w->resume);
        safe_close(w->fd);
        table_clear(&w->links);
        table_clear(&w->addresses);
        sd_event_unref(w->event);
        free(w);
        return NULL;
}

void netwatch_set_debounce(Netwatch *w, uint64_t quiet_usec, uint64_t max_delay_usec) {
        assert(w);
        w->quiet_usec = quiet_usec;
        w->max_delay_usec = MAX(max_delay_usec, quiet_usec);
}

unsigned netwatch_pending(const Netwatch *w) {
        assert(w);
        return w->pending;
}
