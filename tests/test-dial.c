/* Tests of resolve.c and dial.c in a real sd-event loop with real sockets on 127.0.0.1 and
 * ::1: lookups with and without a thread, cancellation, connect failures and timeouts,
 * scripted proxies checked byte by byte, and real microsocks (SOCKS5) and tinyproxy (HTTP
 * CONNECT) processes started by the test. */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "dial.h"
#include "resolve.h"

#define DEADLINE_USEC (10 * USEC_PER_SEC)
#define SHORT_USEC (200 * USEC_PER_MSEC)

extern char **environ;

static sd_event *e;

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* Runs the loop until *done, failing the test at the deadline. */
static void run_until(const bool *done) {
        uint64_t end = now_usec() + DEADLINE_USEC;

        while (!*done) {
                uint64_t n = now_usec();
                ck_assert_msg(n < end, "deadline passed");
                ck_assert_int_ge(sd_event_run(e, end - n), 0);
        }
}

/* Runs the loop for usec with nothing expected to finish: no callback may come. */
static void run_for(uint64_t usec) {
        uint64_t end = now_usec() + usec;

        for (uint64_t n; (n = now_usec()) < end;)
                ck_assert_int_ge(sd_event_run(e, end - n), 0);
}

static unsigned count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;

        ck_assert_ptr_nonnull(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

/* ---- A getaddrinfo() stand-in for the worker threads ---- */

static struct {
        pthread_mutex_t lock;
        int gate[2];       /* while block is set, a lookup waits for one byte from gate[0] */
        atomic_bool block;
        int eai;           /* != 0: fail with this */
        int sys_errno;     /* errno for EAI_SYSTEM */
        bool unix_only;    /* answer with one AF_UNIX entry */
        struct sockaddr_storage addrs[RESOLVE_ADDRESSES_MAX + 4];
        size_t n_addrs;
        unsigned calls;
        char names[1024]; /* every name looked up, each followed by a space */
} fake = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int fake_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                            struct addrinfo **res) {
        struct addrinfo *first = NULL, **tail = &first;
        char c;

        pthread_mutex_lock(&fake.lock);
        fake.calls++;
        strncat(fake.names, node, sizeof fake.names - strlen(fake.names) - 2);
        strcat(fake.names, " ");
        pthread_mutex_unlock(&fake.lock);

        ck_assert_int_eq(hints->ai_family, AF_UNSPEC);
        ck_assert_int_eq(hints->ai_socktype, SOCK_STREAM);
        ck_assert_int_eq(hints->ai_flags & AI_ADDRCONFIG, 0);

        if (atomic_load(&fake.block))
                ck_assert_int_eq(read(fake.gate[0], &c, 1), 1);
        if (fake.eai != 0) {
                errno = fake.sys_errno;
                return fake.eai;
        }
        for (size_t i = 0; i < (fake.unix_only ? 1 : fake.n_addrs); i++) {
                struct addrinfo *ai = calloc(1, sizeof(struct addrinfo) + sizeof(struct sockaddr_storage));

                ck_assert_ptr_nonnull(ai);
                ai->ai_addr = (struct sockaddr *) (ai + 1);
                if (fake.unix_only) {
                        ai->ai_family = AF_UNIX;
                        ai->ai_addrlen = sizeof(sa_family_t) + 2;
                        ai->ai_addr->sa_family = AF_UNIX;
                } else {
                        ai->ai_family = fake.addrs[i].ss_family;
                        ai->ai_addrlen = ai->ai_family == AF_INET ? sizeof(struct sockaddr_in)
                                                                 : sizeof(struct sockaddr_in6);
                        memcpy(ai->ai_addr, &fake.addrs[i], ai->ai_addrlen);
                }
                ai->ai_socktype = SOCK_STREAM;
                *tail = ai;
                tail = &ai->ai_next;
        }
        *res = first;
        return 0;
}

static void fake_freeaddrinfo(struct addrinfo *ai) {
        while (ai) {
                struct addrinfo *next = ai->ai_next;
                free(ai);
                ai = next;
        }
}

static void fake_install(void) {
        resolve_set_backend(fake_getaddrinfo, fake_freeaddrinfo);
}

static void fake_add(int family, const char *ip, uint16_t port) {
        struct sockaddr_storage *ss = &fake.addrs[fake.n_addrs++];

        memset(ss, 0, sizeof *ss);
        if (family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *) ss;
                in->sin_family = AF_INET;
                in->sin_port = htons(port);
                ck_assert_int_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1);
        } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ss;
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                ck_assert_int_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
        }
}

/* Lets n blocked lookups go on. */
static void fake_release(unsigned n) {
        for (unsigned i = 0; i < n; i++)
                ck_assert_int_eq(write(fake.gate[1], "x", 1), 1);
}

static unsigned fake_calls(void) {
        unsigned n;

        pthread_mutex_lock(&fake.lock);
        n = fake.calls;
        pthread_mutex_unlock(&fake.lock);
        return n;
}

/* ---- Sockets and processes ---- */

static int fds_to_close[64];
static size_t n_fds_to_close;
static pid_t pids_to_stop[4];
static size_t n_pids_to_stop;
static char tmp_dir[64];

static void keep_fd(int fd) {
        ck_assert_uint_lt(n_fds_to_close, ELEMENTSOF(fds_to_close));
        fds_to_close[n_fds_to_close++] = fd;
}

static int socket_bound(int family, const char *ip, uint16_t port, uint16_t *ret_port) {
        struct sockaddr_storage ss = {};
        socklen_t len;
        int fd;

        fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int) { 1 }, sizeof(int)), 0);
        if (family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *) &ss;
                in->sin_family = AF_INET;
                in->sin_port = htons(port);
                ck_assert_int_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1);
                len = sizeof(*in);
        } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                ck_assert_int_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
                len = sizeof(*in6);
        }
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &ss, len), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &ss, &len), 0);
        *ret_port = ntohs(family == AF_INET ? ((struct sockaddr_in *) &ss)->sin_port
                                            : ((struct sockaddr_in6 *) &ss)->sin6_port);
        keep_fd(fd);
        return fd;
}

static int listener(int family, const char *ip, uint16_t *ret_port) {
        int fd = socket_bound(family, ip, 0, ret_port);
        ck_assert_int_eq(listen(fd, 16), 0);
        return fd;
}

/* A port where connect() is refused: bound (so nobody else takes it) but not listening. */
static uint16_t refused_port(int family, const char *ip) {
        uint16_t port;
        (void) socket_bound(family, ip, 0, &port);
        return port;
}

/* A port where SYNs are dropped: a listener with backlog 0 that never accepts, its queue
 * filled by connections of ours until one no longer completes. */
static uint16_t blackhole_port(void) {
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        uint16_t port;
        int lfd = socket_bound(AF_INET, "127.0.0.1", 0, &port);

        ck_assert_int_eq(listen(lfd, 0), 0);
        in.sin_port = htons(port);
        for (int i = 0;; i++) {
                struct pollfd p;
                int fd;

                ck_assert_int_lt(i, 8);
                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                ck_assert_int_ge(fd, 0);
                keep_fd(fd);
                if (connect(fd, (struct sockaddr *) &in, sizeof in) < 0)
                        ck_assert_int_eq(errno, EINPROGRESS);
                p = (struct pollfd) { .fd = fd, .events = POLLOUT };
                if (poll(&p, 1, 300) == 0)
                        return port; /* this SYN was dropped: so will the next ones be */
        }
}

static uint16_t free_port(void) {
        uint16_t port;
        int fd = socket_bound(AF_INET, "127.0.0.1", 0, &port);

        /* Released again for the program that is to listen there. */
        fds_to_close[--n_fds_to_close] = -1;
        close(fd);
        return port;
}

static void assert_nonblock_cloexec_nodelay(int fd) {
        int v = 0;
        socklen_t len = sizeof v;

        ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
        ck_assert_int_eq(v, 1);
}

/* Reads exactly n bytes (the socket is non-blocking). */
static void read_exactly(int fd, char *buf, size_t n) {
        size_t got = 0;
        uint64_t end = now_usec() + DEADLINE_USEC;

        while (got < n) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t k;

                ck_assert_uint_lt(now_usec(), end);
                ck_assert_int_ge(poll(&p, 1, 100), 0);
                k = read(fd, buf + got, n - got);
                if (k < 0 && errno == EAGAIN)
                        continue;
                ck_assert_int_gt(k, 0);
                got += (size_t) k;
        }
}

static void assert_reads(int fd, const char *want) {
        char buf[256] = {};
        size_t n = strlen(want);

        ck_assert_uint_lt(n, sizeof buf);
        read_exactly(fd, buf, n);
        ck_assert_str_eq(buf, want);
        /* and nothing more */
        ck_assert_int_eq(recv(fd, buf, sizeof buf, MSG_DONTWAIT), -1);
        ck_assert_int_eq(errno, EAGAIN);
}

static pid_t spawn(const char *const argv[]) {
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int r;

        ck_assert_int_eq(posix_spawn_file_actions_init(&fa), 0);
        ck_assert_int_eq(posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0), 0);
        ck_assert_int_eq(posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0), 0);
        ck_assert_int_eq(posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0), 0);
        r = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *) argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        ck_assert_msg(r == 0, "cannot start %s (%s): tools/deps.sh installs it", argv[0], strerror(r));
        ck_assert_uint_lt(n_pids_to_stop, ELEMENTSOF(pids_to_stop));
        pids_to_stop[n_pids_to_stop++] = pid;
        return pid;
}

/* Polls (no fixed sleep) until something listens on 127.0.0.1:port. */
static void wait_listening(pid_t pid, uint16_t port) {
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        uint64_t end = now_usec() + DEADLINE_USEC;

        for (;;) {
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

                ck_assert_int_ge(fd, 0);
                r = connect(fd, (struct sockaddr *) &in, sizeof in);
                close(fd);
                if (r == 0)
                        return;
                ck_assert_msg(waitpid(pid, NULL, WNOHANG) == 0, "proxy exited");
                ck_assert_msg(now_usec() < end, "proxy does not listen on port %u", port);
                (void) poll(NULL, 0, 20);
        }
}

static bool file_contains(const char *path, const char *needle) {
        char buf[16384] = {};
        FILE *f = fopen(path, "re");
        size_t n;

        if (!f)
                return false;
        n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        return strstr(buf, needle);
}

/* ---- Scripted peer: a listener that accepts one connection and plays a script ---- */

typedef enum StepType {
        STEP_END,
        STEP_EXPECT,      /* these bytes must arrive next, exactly */
        STEP_SEND,        /* in one write */
        STEP_SEND_SLOWLY, /* one byte per loop iteration, 2 ms apart */
        STEP_CLOSE,
} StepType;

typedef struct Step {
        StepType type;
        const char *bytes;
        size_t len;
} Step;

#define EXPECT(s) { STEP_EXPECT, s, sizeof(s) - 1 }
#define SEND(s) { STEP_SEND, s, sizeof(s) - 1 }
#define SEND_SLOWLY(s) { STEP_SEND_SLOWLY, s, sizeof(s) - 1 }
#define CLOSE { STEP_CLOSE, NULL, 0 }
#define END { STEP_END, NULL, 0 }

typedef struct Peer {
        int lfd, cfd;
        uint16_t port;
        sd_event_source *listen_source, *conn_source, *timer;
        const Step *steps;
        size_t step, off;
        char in[1024];
        size_t in_len;
        unsigned accepted;
} Peer;

static Peer peer;

static void peer_advance(Peer *p);

static int on_peer_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        peer_advance(userdata);
        return 0;
}

static void peer_advance(Peer *p) {
        for (;;) {
                const Step *st = &p->steps[p->step];

                switch (st->type) {
                case STEP_END:
                        return;
                case STEP_EXPECT:
                        if (p->in_len < st->len)
                                return;
                        ck_assert_mem_eq(p->in, st->bytes, st->len);
                        memmove(p->in, p->in + st->len, p->in_len - st->len);
                        p->in_len -= st->len;
                        break;
                case STEP_SEND:
                        ck_assert_int_eq(send(p->cfd, st->bytes, st->len, MSG_NOSIGNAL), (ssize_t) st->len);
                        break;
                case STEP_SEND_SLOWLY:
                        if (p->off < st->len) {
                                ck_assert_int_eq(send(p->cfd, st->bytes + p->off, 1, MSG_NOSIGNAL), 1);
                                p->off++;
                                p->timer = sd_event_source_disable_unref(p->timer);
                                ck_assert_int_ge(sd_event_add_time_relative(e, &p->timer, CLOCK_MONOTONIC,
                                                                            2 * USEC_PER_MSEC, 1, on_peer_timer, p),
                                                 0);
                                return;
                        }
                        p->off = 0;
                        break;
                case STEP_CLOSE:
                        p->conn_source = sd_event_source_disable_unref(p->conn_source);
                        p->cfd = safe_close(p->cfd);
                        break;
                }
                p->step++;
        }
}

static int on_peer_data(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Peer *p = userdata;
        ssize_t k;

        k = read(fd, p->in + p->in_len, sizeof p->in - p->in_len);
        if (k <= 0) {
                /* The dialer went away: keep the rest of the script from running. */
                p->conn_source = sd_event_source_disable_unref(p->conn_source);
                return 0;
        }
        p->in_len += (size_t) k;
        peer_advance(p);
        return 0;
}

static int on_peer_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Peer *p = userdata;

        ck_assert_int_lt(p->cfd, 0); /* one connection per script */
        p->cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(p->cfd, 0);
        p->accepted++;
        ck_assert_int_ge(sd_event_add_io(e, &p->conn_source, p->cfd, EPOLLIN, on_peer_data, p), 0);
        peer_advance(p);
        return 0;
}

static uint16_t peer_start(int family, const char *ip, const Step *steps) {
        peer.steps = steps;
        peer.lfd = listener(family, ip, &peer.port);
        ck_assert_int_ge(sd_event_add_io(e, &peer.listen_source, peer.lfd, EPOLLIN, on_peer_accept, &peer), 0);
        return peer.port;
}

static void peer_stop(void) {
        peer.timer = sd_event_source_disable_unref(peer.timer);
        peer.conn_source = sd_event_source_disable_unref(peer.conn_source);
        peer.listen_source = sd_event_source_disable_unref(peer.listen_source);
        peer.cfd = safe_close(peer.cfd);
}

static bool peer_done(void) {
        return peer.steps && peer.steps[peer.step].type == STEP_END;
}

static void peer_wait(void) {
        uint64_t end = now_usec() + DEADLINE_USEC;

        while (!peer_done()) {
                uint64_t n = now_usec();
                ck_assert_uint_lt(n, end);
                ck_assert_int_ge(sd_event_run(e, end - n), 0);
        }
}

/* ---- Fixtures ---- */

static void setup(void) {
        ck_assert_int_ge(sd_event_new(&e), 0);
        memset(&peer, 0, sizeof peer);
        peer.lfd = peer.cfd = -EBADF;
        ck_assert_int_eq(pipe2(fake.gate, O_CLOEXEC), 0);
        atomic_store(&fake.block, false);
        fake.eai = fake.sys_errno = 0;
        fake.unix_only = false;
        fake.n_addrs = 0;
        fake.calls = 0;
        fake.names[0] = 0;
        n_fds_to_close = 0;
        n_pids_to_stop = 0;
        tmp_dir[0] = 0;
}

static void teardown(void) {
        char cmd[128];

        /* Let blocked lookups finish, and those waiting behind them run without blocking,
         * so that no thread outlives the test. */
        atomic_store(&fake.block, false);
        fake_release(RESOLVE_THREADS_MAX);
        ck_assert_int_eq(resolve_wait_idle(DEADLINE_USEC), 0);
        resolve_set_backend(NULL, NULL);
        safe_close(fake.gate[0]);
        safe_close(fake.gate[1]);

        peer_stop();
        for (size_t i = 0; i < n_fds_to_close; i++)
                safe_close(fds_to_close[i]);
        for (size_t i = 0; i < n_pids_to_stop; i++) {
                ck_assert_int_eq(kill(pids_to_stop[i], SIGTERM), 0);
                ck_assert_int_eq(waitpid(pids_to_stop[i], NULL, 0), pids_to_stop[i]);
        }
        if (tmp_dir[0]) {
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
                ck_assert_int_eq(system(cmd), 0);
        }
        e = sd_event_unref(e);
}

/* ---- Resolve ---- */

typedef struct Answer {
        bool done;
        unsigned calls;
        int r;
        ResolvedAddresses *a;
} Answer;

static void on_answer(int r, ResolvedAddresses *a, void *userdata) {
        Answer *x = userdata;

        x->calls++;
        x->done = true;
        x->r = r;
        x->a = a;
}

static void answer_done(Answer *x) {
        x->a = resolved_addresses_free(x->a);
}

static const struct {
        const char *host;
        int family;
} literals[] = {
        { "127.0.0.1", AF_INET },
        { "10.1.2.3", AF_INET },
        { "::1", AF_INET6 },
        { "fe80::1", AF_INET6 },
        { "::ffff:192.0.2.1", AF_INET6 },
};

START_TEST(test_resolve_literal) {
        ResolveQuery *q = NULL;
        Answer x = {};
        char text[INET6_ADDRSTRLEN];
        const ResolvedAddress *a;

        ck_assert_int_eq(resolve_start(e, literals[_i].host, 2222, on_answer, &x, &q), 0);
        ck_assert_ptr_nonnull(q);
        /* no thread for a literal, and no callback from inside resolve_start() */
        ck_assert_uint_eq(resolve_threads_running(), 0);
        ck_assert(!x.done);
        run_until(&x.done);
        ck_assert_uint_eq(x.calls, 1);
        ck_assert_int_eq(x.r, 0);
        ck_assert_uint_eq(x.a->n, 1);
        a = &x.a->addresses[0];
        ck_assert_int_eq(a->sa.sa_family, literals[_i].family);
        if (literals[_i].family == AF_INET) {
                ck_assert_uint_eq(a->len, sizeof(struct sockaddr_in));
                ck_assert_uint_eq(ntohs(a->in.sin_port), 2222);
                ck_assert_ptr_nonnull(inet_ntop(AF_INET, &a->in.sin_addr, text, sizeof text));
        } else {
                ck_assert_uint_eq(a->len, sizeof(struct sockaddr_in6));
                ck_assert_uint_eq(ntohs(a->in6.sin6_port), 2222);
                ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &a->in6.sin6_addr, text, sizeof text));
        }
        ck_assert_str_eq(text, literals[_i].host);
        answer_done(&x);
}
END_TEST

START_TEST(test_resolve_localhost) {
        Answer x = {};
        bool found = false;

        ck_assert_int_eq(resolve_start(e, "localhost", 80, on_answer, &x, NULL), 0);
        ck_assert(!x.done);
        run_until(&x.done);
        ck_assert_int_eq(x.r, 0);
        ck_assert_uint_ge(x.a->n, 1);
        for (size_t i = 0; i < x.a->n; i++) {
                const ResolvedAddress *a = &x.a->addresses[i];
                if (a->sa.sa_family == AF_INET) {
                        ck_assert_uint_eq(ntohs(a->in.sin_port), 80);
                        found = found || a->in.sin_addr.s_addr == htonl(INADDR_LOOPBACK);
                } else {
                        ck_assert_int_eq(a->sa.sa_family, AF_INET6);
                        ck_assert_uint_eq(ntohs(a->in6.sin6_port), 80);
                }
        }
        ck_assert(found);
        answer_done(&x);
}
END_TEST

/* There is no network here: the resolver says "no such name" at once (measured: ~10 ms).
 * On a machine whose DNS server is unreachable the answer is -EAGAIN after the resolver's
 * own timeouts, which the deadline of the test still covers. */
START_TEST(test_resolve_nonexistent) {
        Answer x = {};
        uint64_t t = now_usec();

        ck_assert_int_eq(resolve_start(e, "nonexistent.invalid", 22, on_answer, &x, NULL), 0);
        run_until(&x.done);
        ck_assert_int_eq(x.r, -ENXIO);
        ck_assert_ptr_null(x.a);
        ck_assert_uint_lt(now_usec() - t, 5 * USEC_PER_SEC);
}
END_TEST

START_TEST(test_resolve_bad_arguments) {
        char long_name[RESOLVE_HOST_MAX + 2];
        ResolveQuery *q = (ResolveQuery *) 0x1;

        memset(long_name, 'a', sizeof long_name - 1);
        long_name[sizeof long_name - 1] = 0;
        ck_assert_int_eq(resolve_start(e, "", 1, on_answer, NULL, &q), -EINVAL);
        ck_assert_int_eq(resolve_start(e, NULL, 1, on_answer, NULL, &q), -EINVAL);
        ck_assert_int_eq(resolve_start(e, long_name, 1, on_answer, NULL, &q), -EINVAL);
        ck_assert_int_eq(resolve_start(e, "localhost", 1, NULL, NULL, &q), -EINVAL);
        ck_assert_int_eq(resolve_start(NULL, "localhost", 1, on_answer, NULL, &q), -EINVAL);
        ck_assert_ptr_eq(q, (ResolveQuery *) 0x1); /* untouched on failure */
        long_name[RESOLVE_HOST_MAX] = 0;          /* exactly the longest */
        fake_install();
        fake.eai = EAI_NONAME;
        ck_assert_int_eq(resolve_start(e, long_name, 1, on_answer, NULL, &q), 0);
        q = resolve_query_cancel(q);
        ck_assert_ptr_null(q);
        ck_assert_ptr_null(resolve_query_cancel(NULL));
}
END_TEST

static const struct {
        int eai, sys_errno, want;
} eai_table[] = {
        { EAI_NONAME, 0, -ENXIO },
        { EAI_NODATA, 0, -ENXIO },
        { EAI_ADDRFAMILY, 0, -ENXIO },
        { EAI_AGAIN, 0, -EAGAIN },
        { EAI_FAIL, 0, -EIO },
        { EAI_MEMORY, 0, -ENOMEM },
        { EAI_SYSTEM, EMFILE, -EMFILE },
        { EAI_SYSTEM, 0, -EIO },
        { EAI_SERVICE, 0, -EIO },
        { EAI_BADFLAGS, 0, -EIO },
};

START_TEST(test_resolve_errors) {
        Answer x = {};

        fake_install();
        fake.eai = eai_table[_i].eai;
        fake.sys_errno = eai_table[_i].sys_errno;
        ck_assert_int_eq(resolve_start(e, "name.test", 22, on_answer, &x, NULL), 0);
        run_until(&x.done);
        ck_assert_int_eq(x.r, eai_table[_i].want);
        ck_assert_ptr_null(x.a);
        ck_assert_str_eq(fake.names, "name.test ");
}
END_TEST

START_TEST(test_resolve_no_usable_address) {
        Answer x = {};

        fake_install();
        fake.unix_only = true;
        ck_assert_int_eq(resolve_start(e, "name.test", 22, on_answer, &x, NULL), 0);
        run_until(&x.done);
        ck_assert_int_eq(x.r, -ENXIO);
        ck_assert_ptr_null(x.a);
}
END_TEST

/* A long answer is cut at RESOLVE_ADDRESSES_MAX, order kept. */
START_TEST(test_resolve_address_cap) {
        Answer x = {};
        char ip[32];

        fake_install();
        for (unsigned i = 0; i < RESOLVE_ADDRESSES_MAX + 3; i++) {
                snprintf(ip, sizeof ip, "192.0.2.%u", i + 1);
                fake_add(AF_INET, ip, 7);
        }
        ck_assert_int_eq(resolve_start(e, "many.test", 22, on_answer, &x, NULL), 0);
        run_until(&x.done);
        ck_assert_int_eq(x.r, 0);
        ck_assert_uint_eq(x.a->n, RESOLVE_ADDRESSES_MAX);
        for (unsigned i = 0; i < RESOLVE_ADDRESSES_MAX; i++)
                ck_assert_uint_eq(ntohl(x.a->addresses[i].in.sin_addr.s_addr), 0xc0000201u + i);
        answer_done(&x);
}
END_TEST

/* Cancelled while the thread is inside getaddrinfo(): no callback, ever, and (valgrind,
 * ASan) nothing leaks once the thread comes back. */
START_TEST(test_resolve_cancel_while_running) {
        ResolveQuery *q;
        Answer x = {};

        fake_install();
        atomic_store(&fake.block, true);
        fake_add(AF_INET, "127.0.0.1", 22);
        ck_assert_int_eq(resolve_start(e, "slow.test", 22, on_answer, &x, &q), 0);
        ck_assert_uint_eq(resolve_threads_running(), 1);
        run_for(20 * USEC_PER_MSEC);
        ck_assert(!x.done);
        q = resolve_query_cancel(q);
        fake_release(1);
        ck_assert_int_eq(resolve_wait_idle(DEADLINE_USEC), 0);
        ck_assert_uint_eq(resolve_threads_running(), 0);
        run_for(50 * USEC_PER_MSEC);
        ck_assert_uint_eq(x.calls, 0);
        ck_assert_uint_eq(fake_calls(), 1);
}
END_TEST

/* Cancelled after the thread finished but before the loop saw it: the answer is freed. */
START_TEST(test_resolve_cancel_after_answer) {
        ResolveQuery *q;
        Answer x = {};

        fake_install();
        fake_add(AF_INET, "127.0.0.1", 22);
        ck_assert_int_eq(resolve_start(e, "quick.test", 22, on_answer, &x, &q), 0);
        ck_assert_int_eq(resolve_wait_idle(DEADLINE_USEC), 0);
        q = resolve_query_cancel(q);
        run_for(50 * USEC_PER_MSEC);
        ck_assert_uint_eq(x.calls, 0);
}
END_TEST

/* ---- The thread cap and the wait queue ---- */

static unsigned answer_seq; /* order of callbacks across queries */

typedef struct SeqAnswer {
        Answer answer;
        unsigned seq;
} SeqAnswer;

static void on_seq_answer(int r, ResolvedAddresses *a, void *userdata) {
        SeqAnswer *x = userdata;

        on_answer(r, a, &x->answer);
        x->seq = ++answer_seq;
}

/* Runs the loop until the fake was called n times in all (a lookup thread is inside it). */
static void wait_fake_calls(unsigned n) {
        uint64_t end = now_usec() + DEADLINE_USEC;

        while (fake_calls() < n) {
                ck_assert_msg(now_usec() < end, "only %u lookups started, want %u", fake_calls(), n);
                ck_assert_int_ge(sd_event_run(e, 1 * USEC_PER_MSEC), 0);
        }
        ck_assert_uint_eq(fake_calls(), n);
}

/* What the fake looked up after its first `skip` calls. */
static const char *names_after(unsigned skip) {
        static char copy[sizeof fake.names];
        const char *p = copy;

        pthread_mutex_lock(&fake.lock);
        memcpy(copy, fake.names, sizeof copy);
        pthread_mutex_unlock(&fake.lock);
        for (unsigned i = 0; i < skip; i++) {
                p = strchr(p, ' ');
                ck_assert_ptr_nonnull(p);
                p++;
        }
        return p;
}

/* Takes every thread slot with a lookup of "slow<i>.test" that blocks in the fake. */
static void fill_threads(ResolveQuery *q[RESOLVE_THREADS_MAX], Answer x[RESOLVE_THREADS_MAX]) {
        char name[32];

        fake_install();
        atomic_store(&fake.block, true);
        if (fake.n_addrs == 0)
                fake_add(AF_INET, "127.0.0.1", 22);
        for (unsigned i = 0; i < RESOLVE_THREADS_MAX; i++) {
                snprintf(name, sizeof name, "slow%u.test", i);
                ck_assert_int_eq(resolve_start(e, name, 22, on_answer, &x[i], &q[i]), 0);
        }
        ck_assert_uint_eq(resolve_threads_running(), RESOLVE_THREADS_MAX);
        wait_fake_calls(RESOLVE_THREADS_MAX);
}

/* Lets the blocked lookups and all that wait behind them finish, and checks the answers
 * of the blocked ones. */
static void drain_threads(Answer x[RESOLVE_THREADS_MAX]) {
        atomic_store(&fake.block, false);
        fake_release(RESOLVE_THREADS_MAX);
        ck_assert_int_eq(resolve_wait_idle(DEADLINE_USEC), 0);
        for (unsigned i = 0; i < RESOLVE_THREADS_MAX; i++) {
                run_until(&x[i].done);
                ck_assert_uint_eq(x[i].calls, 1);
                ck_assert_int_eq(x[i].r, 0);
                answer_done(&x[i]);
        }
}

/* Names peers ask for get at most RESOLVE_THREADS_PEER_MAX threads: with those held (a
 * peer's names whose DNS never answers), the daemon's own lookups still run, and a thread
 * that frees up takes the daemon's own waiting lookup before a peer's that waited longer. */
START_TEST(test_resolve_peer_class) {
        enum { N_PEER = RESOLVE_THREADS_PEER_MAX + 1, N_OWN = RESOLVE_THREADS_MAX - RESOLVE_THREADS_PEER_MAX + 1 };
        ResolveQuery *p[N_PEER], *o[N_OWN];
        Answer px[N_PEER] = {}, ox[N_OWN] = {};
        char name[32];

        fake_install();
        atomic_store(&fake.block, true);
        fake_add(AF_INET, "127.0.0.1", 22);
        ck_assert_int_eq(resolve_start_class(e, "x.test", 22, _RESOLVE_CLASS_MAX, on_answer, &px[0], &p[0]), -EINVAL);

        for (unsigned i = 0; i < N_PEER; i++) {
                snprintf(name, sizeof name, "peer%u.test", i);
                ck_assert_int_eq(resolve_start_class(e, name, 22, RESOLVE_PEER, on_answer, &px[i], &p[i]), 0);
        }
        /* The last peer lookup waits although threads are free. */
        ck_assert_uint_eq(resolve_threads_running(), RESOLVE_THREADS_PEER_MAX);
        ck_assert_uint_eq(resolve_queries_waiting(), 1);
        wait_fake_calls(RESOLVE_THREADS_PEER_MAX);

        /* The daemon's own take the rest of the threads, then wait too. */
        for (unsigned i = 0; i < N_OWN; i++) {
                snprintf(name, sizeof name, "own%u.test", i);
                ck_assert_int_eq(resolve_start(e, name, 22, on_answer, &ox[i], &o[i]), 0);
        }
        ck_assert_uint_eq(resolve_threads_running(), RESOLVE_THREADS_MAX);
        ck_assert_uint_eq(resolve_queries_waiting(), 2);
        wait_fake_calls(RESOLVE_THREADS_MAX);

        /* Whichever thread comes back runs the own lookup, not the peer's older one. */
        fake_release(1);
        wait_fake_calls(RESOLVE_THREADS_MAX + 1);
        snprintf(name, sizeof name, "own%u.test ", N_OWN - 1);
        ck_assert_str_eq(names_after(RESOLVE_THREADS_MAX), name);
        ck_assert_uint_eq(resolve_queries_waiting(), 1);

        atomic_store(&fake.block, false);
        fake_release(RESOLVE_THREADS_MAX);
        ck_assert_int_eq(resolve_wait_idle(DEADLINE_USEC), 0);
        for (unsigned i = 0; i < N_PEER; i++) {
                run_until(&px[i].done);
                ck_assert_int_eq(px[i].r, 0);
                answer_done(&px[i]);
        }
        for (unsigned i = 0; i < N_OWN; i++) {
                run_until(&ox[i].done);
                ck_assert_int_eq(ox[i].r, 0);
                answer_done(&ox[i]);
        }
        ck_assert_uint_eq(fake_calls(), N_PEER + N_OWN);
}
END_TEST

/* With every thread busy, more lookups wait without calling back, literals still need no
 * slot, and the waiting ones start in the order they came, as threads free up, on the
 * threads that are already there. */
START_TEST(test_resolve_queue_fifo) {
        ResolveQuery *q[RESOLVE_THREADS_MAX], *w[8];
        Answer x[RESOLVE_THREADS_MAX] = {}, lit = {};
        SeqAnswer y[ELEMENTSOF(w)] = {};
        char name[32], want[128] = "";
        unsigned answered = 0;

        fill_threads(q, x);
        for (unsigned i = 0; i < ELEMENTSOF(w); i++) {
                snprintf(name, sizeof name, "w%u.test", i);
                w[i] = NULL;
                ck_assert_int_eq(resolve_start(e, name, 22, on_seq_answer, &y[i], &w[i]), 0);
                ck_assert_ptr_nonnull(w[i]);
                ck_assert_uint_eq(resolve_queries_waiting(), i + 1);
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s ", name);
        }
        ck_assert_uint_eq(resolve_threads_running(), RESOLVE_THREADS_MAX);
        run_for(50 * USEC_PER_MSEC);
        for (unsigned i = 0; i < ELEMENTSOF(w); i++)
                ck_assert_uint_eq(y[i].answer.calls, 0);
        ck_assert_uint_eq(fake_calls(), RESOLVE_THREADS_MAX);

        ck_assert_int_eq(resolve_start(e, "::1", 22, on_answer, &lit, NULL), 0);
        run_until(&lit.done);
        ck_assert_int_eq(lit.r, 0);
        answer_done(&lit);

        /* One thread comes back; the rest stay blocked, so that one runs every waiting
         * lookup, one after the other, and their answers come in that order. */
        atomic_store(&fake.block, false);
        fake_release(1);
        run_until(&y[ELEMENTSOF(w) - 1].answer.done);
        ck_assert_str_eq(names_after(RESOLVE_THREADS_MAX), want);
        for (unsigned i = 0; i < ELEMENTSOF(w); i++) {
                ck_assert_uint_eq(y[i].answer.calls, 1);
                ck_assert_int_eq(y[i].answer.r, 0);
                ck_assert_uint_eq(y[i].answer.a->n, 1);
                if (i > 0)
                        ck_assert_uint_gt(y[i].seq, y[i - 1].seq);
                answer_done(&y[i].answer);
        }
        ck_assert_uint_eq(resolve_queries_waiting(), 0);
        ck_assert_uint_eq(resolve_threads_running(), RESOLVE_THREADS_MAX - 1);
        for (unsigned i = 0; i < RESOLVE_THREADS_MAX; i++)
                answered += x[i].calls;
        ck_assert_uint_eq(answered, 1);

        drain_threads(x);
        ck_assert_uint_eq(fake_calls(), RESOLVE_THREADS_MAX + ELEMENTSOF(w));
}
END_TEST

/* A waiting lookup that is cancelled leaves the queue, is never looked up and never calls
 * back. A running one that is cancelled keeps its thread slot until the fake returns:
 * nothing waiting starts before. */
START_TEST(test_resolve_queue_cancel) {
        ResolveQuery *q[RESOLVE_THREADS_MAX], *w[3];
        Answer x[RESOLVE_THREADS_MAX] = {}, y[ELEMENTSOF(w)] = {};
        char name[32];

        fill_threads(q, x);
        for (unsigned i = 0; i < ELEMENTSOF(w); i++) {
                snprintf(name, sizeof name, "w%u.test", i);
                ck_assert_int_eq(resolve_start(e, name, 22, on_answer, &y[i], &w[i]), 0);
        }
        ck_assert_uint_eq(resolve_queries_waiting(), 3);

        w[1] = resolve_query_cancel(w[1]);
        ck_assert_uint_eq(resolve_queries_waiting(), 2);

        q[0] = resolve_query_cancel(q[0]);
        run_for(50 * USEC_PER_MSEC);
        ck_assert_uint_eq(resolve_threads_running(), RESOLVE_THREADS_MAX);
        ck_assert_uint_eq(resolve_queries_waiting(), 2);
        ck_assert_uint_eq(fake_calls(), RESOLVE_THREADS_MAX);
        for (unsigned i = 0; i < ELEMENTSOF(w); i++)
                ck_assert_uint_eq(y[i].calls, 0);

        /* Whichever lookup comes back, its thread runs w0 and then w2. */
        atomic_store(&fake.block, false);
        fake_release(1);
        run_until(&y[2].done);
        ck_assert_str_eq(names_after(RESOLVE_THREADS_MAX), "w0.test w2.test ");
        ck_assert(y[0].done);
        ck_assert_int_eq(y[0].r, 0);
        answer_done(&y[0]);
        ck_assert_int_eq(y[2].r, 0);
        answer_done(&y[2]);

        fake_release(RESOLVE_THREADS_MAX);
        ck_assert_int_eq(resolve_wait_idle(DEADLINE_USEC), 0);
        for (unsigned i = 1; i < RESOLVE_THREADS_MAX; i++) {
                run_until(&x[i].done);
                ck_assert_uint_eq(x[i].calls, 1);
                answer_done(&x[i]);
        }
        run_for(50 * USEC_PER_MSEC);
        ck_assert_uint_eq(x[0].calls, 0);
        ck_assert_uint_eq(y[1].calls, 0);
        ck_assert_uint_eq(y[0].calls, 1);
        ck_assert_uint_eq(y[2].calls, 1);
        ck_assert_uint_eq(fake_calls(), RESOLVE_THREADS_MAX + 2);
}
END_TEST

/* RESOLVE_QUEUE_MAX lookups wait at most, then -EBUSY; a cancelled one makes room. */
START_TEST(test_resolve_queue_bound) {
        static ResolveQuery *w[RESOLVE_QUEUE_MAX];
        ResolveQuery *q[RESOLVE_THREADS_MAX], *extra = NULL;
        Answer x[RESOLVE_THREADS_MAX] = {}, y = {}, lit = {};

        fill_threads(q, x);
        for (unsigned i = 0; i < RESOLVE_QUEUE_MAX; i++)
                ck_assert_int_eq(resolve_start(e, "waiting.test", 22, on_answer, &y, &w[i]), 0);
        ck_assert_uint_eq(resolve_queries_waiting(), RESOLVE_QUEUE_MAX);
        ck_assert_int_eq(resolve_start(e, "one-more.test", 22, on_answer, &y, &extra), -EBUSY);
        ck_assert_ptr_null(extra);
        ck_assert_int_eq(resolve_start(e, "::1", 22, on_answer, &lit, NULL), 0);
        run_until(&lit.done);
        answer_done(&lit);

        w[7] = resolve_query_cancel(w[7]);
        ck_assert_int_eq(resolve_start(e, "one-more.test", 22, on_answer, &y, &w[7]), 0);
        ck_assert_int_eq(resolve_start(e, "one-more.test", 22, on_answer, &y, &extra), -EBUSY);

        for (unsigned i = 0; i < RESOLVE_QUEUE_MAX; i++)
                w[i] = resolve_query_cancel(w[i]);
        ck_assert_uint_eq(resolve_queries_waiting(), 0);
        ck_assert_uint_eq(resolve_threads_running(), RESOLVE_THREADS_MAX);
        drain_threads(x);
        run_for(50 * USEC_PER_MSEC);
        ck_assert_uint_eq(y.calls, 0);
        ck_assert_uint_eq(fake_calls(), RESOLVE_THREADS_MAX);
}
END_TEST

/* The burst that used to fail: a browser behind `ssh -D` opening 50 connections to as many
 * names at once. Every lookup is answered. */
START_TEST(test_resolve_burst) {
        Answer x[50] = {};
        char name[32];

        fake_install();
        atomic_store(&fake.block, true);
        fake_add(AF_INET, "127.0.0.1", 22);
        for (unsigned i = 0; i < ELEMENTSOF(x); i++) {
                snprintf(name, sizeof name, "host%u.test", i);
                ck_assert_int_eq(resolve_start(e, name, 22, on_answer, &x[i], NULL), 0);
        }
        ck_assert_uint_eq(resolve_threads_running(), RESOLVE_THREADS_MAX);
        ck_assert_uint_eq(resolve_queries_waiting(), ELEMENTSOF(x) - RESOLVE_THREADS_MAX);
        fake_release(ELEMENTSOF(x));
        for (unsigned i = 0; i < ELEMENTSOF(x); i++) {
                run_until(&x[i].done);
                ck_assert_uint_eq(x[i].calls, 1);
                ck_assert_int_eq(x[i].r, 0);
                answer_done(&x[i]);
        }
        ck_assert_int_eq(resolve_wait_idle(DEADLINE_USEC), 0);
        ck_assert_uint_eq(fake_calls(), ELEMENTSOF(x));
}
END_TEST

/* A loop in another thread: its waiting lookup is answered in that thread, by its own
 * loop, in its turn with the main loop's. */
typedef struct OtherLoop {
        atomic_bool queued;
        atomic_bool go_on;
        int start_r;
        Answer answer;
        pthread_t answered_in;
        int run_r;
} OtherLoop;

static void on_other_answer(int r, ResolvedAddresses *a, void *userdata) {
        OtherLoop *o = userdata;

        o->answered_in = pthread_self();
        on_answer(r, a, &o->answer);
}

static void *other_loop_thread(void *p) {
        OtherLoop *o = p;
        sd_event *e2 = NULL;
        uint64_t end = now_usec() + DEADLINE_USEC;

        o->run_r = sd_event_new(&e2);
        if (o->run_r >= 0)
                o->start_r = resolve_start(e2, "other-loop.test", 22, on_other_answer, o, NULL);
        atomic_store(&o->queued, true);
        while (o->run_r >= 0 && o->start_r >= 0 && !o->answer.done && now_usec() < end)
                o->run_r = sd_event_run(e2, 10 * USEC_PER_MSEC);
        sd_event_unref(e2);
        return NULL;
}

START_TEST(test_resolve_queue_other_thread) {
        ResolveQuery *q[RESOLVE_THREADS_MAX];
        Answer x[RESOLVE_THREADS_MAX] = {}, mine = {};
        OtherLoop o = {};
        pthread_t t;
        uint64_t end = now_usec() + DEADLINE_USEC;

        fill_threads(q, x);
        ck_assert_int_eq(pthread_create(&t, NULL, other_loop_thread, &o), 0);
        while (!atomic_load(&o.queued)) {
                ck_assert_uint_lt(now_usec(), end);
                (void) poll(NULL, 0, 1);
        }
        ck_assert_int_eq(o.start_r, 0);
        ck_assert_int_eq(resolve_start(e, "this-loop.test", 22, on_answer, &mine, NULL), 0);
        ck_assert_uint_eq(resolve_queries_waiting(), 2);

        atomic_store(&fake.block, false);
        fake_release(1);
        run_until(&mine.done);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        ck_assert_int_ge(o.run_r, 0);
        ck_assert(o.answer.done);
        ck_assert_int_eq(o.answer.r, 0);
        ck_assert(!pthread_equal(o.answered_in, pthread_self()));
        answer_done(&o.answer);
        ck_assert_int_eq(mine.r, 0);
        answer_done(&mine);
        ck_assert_str_eq(names_after(RESOLVE_THREADS_MAX), "other-loop.test this-loop.test ");
        drain_threads(x);
}
END_TEST

/* ---- Dial ---- */

typedef struct Outcome {
        bool done;
        unsigned calls;
        int r;
        int fd;
        TunnelReason reason;
} Outcome;

static void on_dialled(int r, int fd, TunnelReason reason, void *userdata) {
        Outcome *o = userdata;

        o->calls++;
        o->done = true;
        o->r = r;
        o->fd = fd;
        o->reason = reason;
}

static Outcome dial_with(const DialParams *p) {
        Outcome o = { .fd = -EBADF };
        Dial *d = NULL;

        ck_assert_int_eq(dial_start(e, p, on_dialled, &o, &d), 0);
        ck_assert_ptr_nonnull(d);
        ck_assert(!o.done);
        run_until(&o.done);
        ck_assert_uint_eq(o.calls, 1);
        if (o.r < 0)
                ck_assert_int_eq(o.fd, -EBADF);
        else {
                ck_assert_int_eq(o.r, 0);
                ck_assert_int_eq(o.reason, TUNNEL_REASON_NONE);
                ck_assert_int_ge(o.fd, 0);
                assert_nonblock_cloexec_nodelay(o.fd);
                keep_fd(o.fd);
        }
        return o;
}

static Outcome dial(const char *host, uint16_t port, const char *proxy, uint64_t timeout, uint64_t connect_timeout) {
        DialParams p = {
                .host = host,
                .port = port,
                .proxy = proxy,
                .timeout_usec = timeout,
                .connect_timeout_usec = connect_timeout,
        };

        return dial_with(&p);
}

static void assert_failed(Outcome o, int r, TunnelReason reason) {
        ck_assert_msg(o.r == r && o.reason == reason, "got r=%d (%s) reason %s, want r=%d (%s) reason %s", o.r,
                      strerror(-o.r), tunnel_reason_to_string(o.reason), r, strerror(-r),
                      tunnel_reason_to_string(reason));
}

static uint16_t local_port(int fd) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;

        ck_assert_int_eq(getpeername(fd, (struct sockaddr *) &ss, &len), 0);
        return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *) &ss)->sin_port
                                             : ((struct sockaddr_in6 *) &ss)->sin6_port);
}

static int peer_family(int fd) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;

        ck_assert_int_eq(getpeername(fd, (struct sockaddr *) &ss, &len), 0);
        return ss.ss_family;
}

static const struct {
        int family;
        const char *listen_ip, *host;
} direct_table[] = {
        { AF_INET, "127.0.0.1", "127.0.0.1" },
        { AF_INET6, "::1", "::1" },
        { AF_INET, "127.0.0.1", "localhost" }, /* through a lookup thread */
};

/* A dial for a peer looks its target up as RESOLVE_PEER; through a proxy only the proxy's
 * name is looked up, which is the daemon's own. */
START_TEST(test_dial_peer_target_class) {
        ResolveQuery *q[RESOLVE_THREADS_PEER_MAX];
        Answer x[RESOLVE_THREADS_PEER_MAX] = {};
        DialParams p = { .host = "peer-target.test", .port = 22, .peer_target = true };
        Outcome o = {};
        Dial *d;
        char name[32];

        fake_install();
        atomic_store(&fake.block, true);
        fake_add(AF_INET, "127.0.0.1", 22);
        for (unsigned i = 0; i < RESOLVE_THREADS_PEER_MAX; i++) {
                snprintf(name, sizeof name, "peer%u.test", i);
                ck_assert_int_eq(resolve_start_class(e, name, 22, RESOLVE_PEER, on_answer, &x[i], &q[i]), 0);
        }
        wait_fake_calls(RESOLVE_THREADS_PEER_MAX);

        ck_assert_int_eq(dial_start(e, &p, on_dialled, &o, &d), 0);
        ck_assert_uint_eq(resolve_queries_waiting(), 1);
        d = dial_cancel(d);
        ck_assert_uint_eq(resolve_queries_waiting(), 0);

        p.proxy = "socks5://proxy.test:1080";
        ck_assert_int_eq(dial_start(e, &p, on_dialled, &o, &d), 0);
        ck_assert_uint_eq(resolve_queries_waiting(), 0);
        wait_fake_calls(RESOLVE_THREADS_PEER_MAX + 1);
        ck_assert_str_eq(names_after(RESOLVE_THREADS_PEER_MAX), "proxy.test ");
        d = dial_cancel(d);

        atomic_store(&fake.block, false);
        fake_release(RESOLVE_THREADS_PEER_MAX + 1);
        ck_assert_int_eq(resolve_wait_idle(DEADLINE_USEC), 0);
        for (unsigned i = 0; i < RESOLVE_THREADS_PEER_MAX; i++) {
                run_until(&x[i].done);
                answer_done(&x[i]);
        }
        ck_assert_uint_eq(o.calls, 0);
}
END_TEST

START_TEST(test_dial_direct) {
        static const Step banner[] = { SEND("SSH-2.0-target\r\n"), EXPECT("SSH-2.0-client\r\n"), END };
        uint16_t port = peer_start(direct_table[_i].family, direct_table[_i].listen_ip, banner);
        Outcome o = dial(direct_table[_i].host, port, NULL, 0, 0);

        ck_assert_int_eq(o.r, 0);
        ck_assert_uint_eq(local_port(o.fd), port);
        ck_assert_int_eq(peer_family(o.fd), direct_table[_i].family);
        ck_assert_int_eq(write(o.fd, "SSH-2.0-client\r\n", 16), 16);
        peer_wait();
        assert_reads(o.fd, "SSH-2.0-target\r\n");
        ck_assert_uint_eq(peer.accepted, 1);
}
END_TEST

START_TEST(test_dial_refused) {
        assert_failed(dial("127.0.0.1", refused_port(AF_INET, "127.0.0.1"), NULL, 0, 0), -ECONNREFUSED,
                      TUNNEL_REASON_CONNECT_REFUSED);
        assert_failed(dial("::1", refused_port(AF_INET6, "::1"), NULL, 0, 0), -ECONNREFUSED,
                      TUNNEL_REASON_CONNECT_REFUSED);
}
END_TEST

/* The per-address timeout, and the whole-dial timeout when it is the shorter one. */
START_TEST(test_dial_timeout) {
        uint16_t port = blackhole_port();
        uint64_t t = now_usec();

        assert_failed(dial("127.0.0.1", port, NULL, DEADLINE_USEC, SHORT_USEC), -ETIMEDOUT,
                      TUNNEL_REASON_CONNECT_TIMEOUT);
        ck_assert_uint_ge(now_usec() - t, SHORT_USEC);
        t = now_usec();
        assert_failed(dial("127.0.0.1", port, NULL, SHORT_USEC, DEADLINE_USEC), -ETIMEDOUT,
                      TUNNEL_REASON_CONNECT_TIMEOUT);
        ck_assert_uint_ge(now_usec() - t, SHORT_USEC);
        ck_assert_uint_lt(now_usec() - t, DEADLINE_USEC / 2);
}
END_TEST

START_TEST(test_dial_resolve_failed) {
        assert_failed(dial("nonexistent.invalid", 22, NULL, 0, 0), -ENXIO, TUNNEL_REASON_RESOLVE_FAILED);

        /* the whole-dial timeout while the lookup still runs */
        fake_install();
        atomic_store(&fake.block, true);
        assert_failed(dial("slow.test", 22, NULL, SHORT_USEC, 0), -ETIMEDOUT, TUNNEL_REASON_RESOLVE_FAILED);
}
END_TEST

/* With every lookup thread busy and the wait queue full, the dial still reports from the
 * loop, as resolve-failed. */
START_TEST(test_dial_resolver_busy) {
        static ResolveQuery *w[RESOLVE_QUEUE_MAX];
        ResolveQuery *q[RESOLVE_THREADS_MAX];
        Answer x[RESOLVE_THREADS_MAX] = {}, y = {};

        fill_threads(q, x);
        for (unsigned i = 0; i < RESOLVE_QUEUE_MAX; i++)
                ck_assert_int_eq(resolve_start(e, "waiting.test", 22, on_answer, &y, &w[i]), 0);
        assert_failed(dial("name.test", 22, NULL, 0, 0), -EBUSY, TUNNEL_REASON_RESOLVE_FAILED);
        for (unsigned i = 0; i < RESOLVE_QUEUE_MAX; i++)
                w[i] = resolve_query_cancel(w[i]);
        for (unsigned i = 0; i < RESOLVE_THREADS_MAX; i++)
                q[i] = resolve_query_cancel(q[i]);
        ck_assert_uint_eq(y.calls, 0);
}
END_TEST

/* A dial whose lookup waits for a thread goes on once one frees up. */
START_TEST(test_dial_queued_connects) {
        ResolveQuery *q[RESOLVE_THREADS_MAX];
        Answer x[RESOLVE_THREADS_MAX] = {};
        DialParams p = { .host = "queued.test", .port = 22 };
        Outcome o = { .fd = -EBADF };
        uint16_t port;

        (void) listener(AF_INET, "127.0.0.1", &port);
        fake_add(AF_INET, "127.0.0.1", port);
        fill_threads(q, x);
        ck_assert_int_eq(dial_start(e, &p, on_dialled, &o, NULL), 0);
        ck_assert_uint_eq(resolve_queries_waiting(), 1);
        run_for(50 * USEC_PER_MSEC);
        ck_assert(!o.done);

        atomic_store(&fake.block, false);
        fake_release(1);
        run_until(&o.done);
        ck_assert_int_eq(o.r, 0);
        keep_fd(o.fd);
        ck_assert_uint_eq(local_port(o.fd), port);
        ck_assert_str_eq(names_after(RESOLVE_THREADS_MAX), "queued.test ");
        drain_threads(x);
}
END_TEST

/* The whole-dial timeout covers the wait for a thread: the dial fails as resolve-failed
 * with -ETIMEDOUT, and its lookup leaves the queue without ever running. */
START_TEST(test_dial_queued_timeout) {
        ResolveQuery *q[RESOLVE_THREADS_MAX];
        Answer x[RESOLVE_THREADS_MAX] = {};
        uint64_t t;

        fill_threads(q, x);
        t = now_usec();
        assert_failed(dial("queued.test", 22, NULL, SHORT_USEC, 0), -ETIMEDOUT, TUNNEL_REASON_RESOLVE_FAILED);
        ck_assert_uint_ge(now_usec() - t, SHORT_USEC);
        ck_assert_uint_eq(resolve_queries_waiting(), 0);
        ck_assert_uint_eq(resolve_threads_running(), RESOLVE_THREADS_MAX);
        drain_threads(x);
        ck_assert_uint_eq(fake_calls(), RESOLVE_THREADS_MAX);
        ck_assert_str_eq(names_after(RESOLVE_THREADS_MAX), "");
}
END_TEST

/* Several addresses: tried in order until one works; the reason comes from all of them. */
START_TEST(test_dial_address_order) {
        uint16_t good;
        uint16_t v6_refused = refused_port(AF_INET6, "::1");
        uint16_t refused = refused_port(AF_INET, "127.0.0.1");
        uint16_t hole = blackhole_port();
        uint64_t t;
        Outcome o;

        /* connections complete into its queue; nobody needs to accept them */
        (void) listener(AF_INET, "127.0.0.1", &good);
        fake_install();

        /* ::1 refuses, 127.0.0.1 works */
        fake_add(AF_INET6, "::1", v6_refused);
        fake_add(AF_INET, "127.0.0.1", good);
        o = dial("dual.test", 22, NULL, 0, 0);
        ck_assert_int_eq(o.r, 0);
        ck_assert_int_eq(peer_family(o.fd), AF_INET);
        ck_assert_uint_eq(local_port(o.fd), good);

        /* the first one times out, the second works */
        fake.n_addrs = 0;
        fake_add(AF_INET, "127.0.0.1", hole);
        fake_add(AF_INET, "127.0.0.1", good);
        t = now_usec();
        o = dial("dual.test", 22, NULL, DEADLINE_USEC, SHORT_USEC);
        ck_assert_int_eq(o.r, 0);
        ck_assert_uint_eq(local_port(o.fd), good);
        ck_assert_uint_ge(now_usec() - t, SHORT_USEC);

        /* refused then timed out, or the other way round: connect-timeout */
        fake.n_addrs = 0;
        fake_add(AF_INET, "127.0.0.1", refused);
        fake_add(AF_INET, "127.0.0.1", hole);
        assert_failed(dial("dual.test", 22, NULL, DEADLINE_USEC, SHORT_USEC), -ETIMEDOUT,
                      TUNNEL_REASON_CONNECT_TIMEOUT);
        fake.n_addrs = 0;
        fake_add(AF_INET, "127.0.0.1", hole);
        fake_add(AF_INET6, "::1", v6_refused);
        assert_failed(dial("dual.test", 22, NULL, DEADLINE_USEC, SHORT_USEC), -ETIMEDOUT,
                      TUNNEL_REASON_CONNECT_TIMEOUT);

        /* all refuse: the last error */
        fake.n_addrs = 0;
        fake_add(AF_INET6, "::1", v6_refused);
        fake_add(AF_INET, "127.0.0.1", refused);
        assert_failed(dial("dual.test", 22, NULL, 0, 0), -ECONNREFUSED, TUNNEL_REASON_CONNECT_REFUSED);
}
END_TEST

/* ---- The per-address filter ---- */

typedef struct Filter {
        bool refuse_v4, refuse_v6;
        unsigned calls;
        int families[RESOLVE_ADDRESSES_MAX];
        uint16_t ports[RESOLVE_ADDRESSES_MAX];    /* as the dial passed it */
        uint16_t sa_ports[RESOLVE_ADDRESSES_MAX]; /* in the address */
} Filter;

static bool filter_by_family(const struct sockaddr *sa, socklen_t len, uint16_t port, void *userdata) {
        Filter *f = userdata;

        ck_assert_uint_lt(f->calls, RESOLVE_ADDRESSES_MAX);
        if (sa->sa_family == AF_INET) {
                ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
                f->sa_ports[f->calls] = ntohs(((const struct sockaddr_in *) sa)->sin_port);
        } else {
                ck_assert_int_eq(sa->sa_family, AF_INET6);
                ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
                f->sa_ports[f->calls] = ntohs(((const struct sockaddr_in6 *) sa)->sin6_port);
        }
        f->families[f->calls] = sa->sa_family;
        f->ports[f->calls] = port;
        f->calls++;
        return sa->sa_family == AF_INET ? !f->refuse_v4 : !f->refuse_v6;
}

static Outcome dial_filtered(const char *host, uint16_t port, const char *proxy, Filter *f) {
        DialParams p = { .host = host, .port = port, .proxy = proxy, .filter = filter_by_family, .filter_userdata = f };

        return dial_with(&p);
}

/* Nothing has connected to this listener. */
static void assert_untouched(int lfd) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };

        ck_assert_int_eq(poll(&p, 1, 0), 0);
}

/* A filter that refuses nothing: asked about the address that is then used, with the port. */
START_TEST(test_dial_filter_none_refused) {
        uint16_t v4, v6;
        Filter f = {};
        Outcome o;

        (void) listener(AF_INET, "127.0.0.1", &v4);
        (void) listener(AF_INET6, "::1", &v6);
        fake_install();
        fake_add(AF_INET6, "::1", v6);
        fake_add(AF_INET, "127.0.0.1", v4);
        o = dial_filtered("dual.test", 2222, NULL, &f);
        ck_assert_int_eq(o.r, 0);
        ck_assert_int_eq(peer_family(o.fd), AF_INET6);
        ck_assert_uint_eq(f.calls, 1);
        ck_assert_int_eq(f.families[0], AF_INET6);
        ck_assert_uint_eq(f.ports[0], 2222);
        ck_assert_uint_eq(f.sa_ports[0], v6);

        /* an IP literal, answered without a lookup thread, is asked about too */
        memset(&f, 0, sizeof f);
        o = dial_filtered("127.0.0.1", v4, NULL, &f);
        ck_assert_int_eq(o.r, 0);
        ck_assert_uint_eq(f.calls, 1);
        ck_assert_uint_eq(f.ports[0], v4);
        ck_assert_uint_eq(f.sa_ports[0], v4);
}
END_TEST

/* Refused addresses are skipped; the others are tried as usual, and decide the outcome. */
START_TEST(test_dial_filter_some_refused) {
        uint16_t v4, refused = refused_port(AF_INET, "127.0.0.1");
        uint16_t v6;
        int lfd6 = listener(AF_INET6, "::1", &v6);
        Filter f = { .refuse_v6 = true };
        Outcome o;

        (void) listener(AF_INET, "127.0.0.1", &v4);
        fake_install();
        fake_add(AF_INET6, "::1", v6);
        fake_add(AF_INET, "127.0.0.1", v4);
        o = dial_filtered("dual.test", 22, NULL, &f);
        ck_assert_int_eq(o.r, 0);
        ck_assert_int_eq(peer_family(o.fd), AF_INET);
        ck_assert_uint_eq(local_port(o.fd), v4);
        ck_assert_uint_eq(f.calls, 2);
        ck_assert_int_eq(f.families[0], AF_INET6);
        ck_assert_int_eq(f.families[1], AF_INET);
        assert_untouched(lfd6);

        /* what was tried failed: its error, not a refusal by the filter */
        memset(&f, 0, sizeof f);
        f.refuse_v6 = true;
        fake.n_addrs = 0;
        fake_add(AF_INET, "127.0.0.1", refused);
        fake_add(AF_INET6, "::1", v6);
        assert_failed(dial_filtered("dual.test", 22, NULL, &f), -ECONNREFUSED, TUNNEL_REASON_CONNECT_REFUSED);
        ck_assert_uint_eq(f.calls, 2);
        assert_untouched(lfd6);
}
END_TEST

/* Every address refused: -EACCES, and nothing was connected to. */
START_TEST(test_dial_filter_all_refused) {
        uint16_t v4, v6;
        int lfd4 = listener(AF_INET, "127.0.0.1", &v4);
        int lfd6 = listener(AF_INET6, "::1", &v6);
        Filter f = { .refuse_v4 = true, .refuse_v6 = true };
        unsigned fds;

        fake_install();
        fake_add(AF_INET6, "::1", v6);
        fake_add(AF_INET, "127.0.0.1", v4);
        fake_add(AF_INET, "127.0.0.1", v4);
        assert_failed(dial_filtered("dual.test", 22, NULL, &f), -EACCES, TUNNEL_REASON_CONNECT_REFUSED);
        ck_assert_uint_eq(f.calls, 3);
        assert_untouched(lfd4);
        assert_untouched(lfd6);
        fds = count_fds(); /* the loop has its timerfd now */

        memset(&f, 0, sizeof f);
        f.refuse_v4 = true;
        assert_failed(dial_filtered("127.0.0.1", v4, NULL, &f), -EACCES, TUNNEL_REASON_CONNECT_REFUSED);
        ck_assert_uint_eq(f.calls, 1);
        memset(&f, 0, sizeof f);
        f.refuse_v6 = true;
        assert_failed(dial_filtered("::1", v6, NULL, &f), -EACCES, TUNNEL_REASON_CONNECT_REFUSED);
        ck_assert_uint_eq(f.calls, 1);
        assert_untouched(lfd4);
        assert_untouched(lfd6);
        ck_assert_uint_eq(count_fds(), fds);
}
END_TEST

/* Cancelled in each phase: no callback, no fd left open, nothing leaked. */
START_TEST(test_dial_cancel) {
        static const Step silent[] = { EXPECT("\x05\x01\x00"), END };
        DialParams p = { .host = "slow.test", .port = 22 };
        sd_event_source *timer = NULL;
        char proxy[64];
        Outcome o = {};
        unsigned fds;
        Dial *d;

        fake_install();
        atomic_store(&fake.block, true);
        /* The loop opens its timerfd for CLOCK_MONOTONIC at the first timer and keeps it. */
        ck_assert_int_ge(sd_event_add_time_relative(e, &timer, CLOCK_MONOTONIC, USEC_PER_SEC, 1, NULL, NULL), 0);
        timer = sd_event_source_unref(timer);
        fds = count_fds();
        ck_assert_int_eq(dial_start(e, &p, on_dialled, &o, &d), 0);
        run_for(20 * USEC_PER_MSEC);
        d = dial_cancel(d);
        ck_assert_ptr_null(d);
        fake_release(1);
        ck_assert_int_eq(resolve_wait_idle(DEADLINE_USEC), 0);
        ck_assert_uint_eq(count_fds(), fds);

        p.host = "127.0.0.1";
        p.port = blackhole_port();
        fds = count_fds();
        ck_assert_int_eq(dial_start(e, &p, on_dialled, &o, &d), 0);
        run_for(50 * USEC_PER_MSEC);
        ck_assert_uint_eq(count_fds(), fds + 1); /* the socket in connect() */
        d = dial_cancel(d);
        ck_assert_uint_eq(count_fds(), fds);

        snprintf(proxy, sizeof proxy, "socks5://127.0.0.1:%u", peer_start(AF_INET, "127.0.0.1", silent));
        p.host = "target.test";
        p.proxy = proxy;
        fds = count_fds();
        ck_assert_int_eq(dial_start(e, &p, on_dialled, &o, &d), 0);
        peer_wait();
        d = dial_cancel(d);
        run_for(50 * USEC_PER_MSEC);
        ck_assert_uint_eq(o.calls, 0);
        ck_assert_uint_eq(count_fds(), fds + 1); /* the peer's end of the proxy connection */
        ck_assert_ptr_null(dial_cancel(NULL));
}
END_TEST

static const struct {
        const char *host;
        uint16_t port;
        const char *proxy;
} bad_params[] = {
        { "", 22, NULL },
        { NULL, 22, NULL },
        { "host", 0, NULL },
        { "host", 22, "ftp://proxy:21" },
        { "host", 22, "socks5://proxy" },
        { "host", 22, "socks5://proxy:" },
        { "host", 22, "socks5://proxy:0" },
        { "host", 22, "socks5://proxy:65536" },
        { "host", 22, "socks5://proxy:22x" },
        { "host", 22, "socks5://proxy:-1" },
        { "host", 22, "socks5://:1080" },
        { "host", 22, "socks5://::1:1080" },
        { "host", 22, "socks5://[::1]1080" },
        { "host", 22, "socks5://[::1" },
        { "host", 22, "http://[]:8080" },
        { "host", 22, "SOCKS5://proxy:1080" },
        { "bad host", 22, "http://proxy:8080" },     /* nothing smuggled into the request */
        { "host\r\nX: y", 22, "http://proxy:8080" },
        { "user@host", 22, "http://proxy:8080" },
};

START_TEST(test_dial_bad_params) {
        DialParams p = { .host = bad_params[_i].host, .port = bad_params[_i].port, .proxy = bad_params[_i].proxy };
        Dial *d = (Dial *) 0x1;

        ck_assert_int_eq(dial_start(e, &p, on_dialled, NULL, &d), -EINVAL);
        ck_assert_ptr_eq(d, (Dial *) 0x1);
}
END_TEST

START_TEST(test_dial_bad_params_long) {
        char name[300];
        DialParams p = { .host = name, .port = 22 };
        Outcome o = {};
        Dial *d = NULL;

        memset(name, 'a', sizeof name - 1);
        name[sizeof name - 1] = 0;
        ck_assert_int_eq(dial_start(e, &p, on_dialled, NULL, &d), -EINVAL);
        p.proxy = "socks5://127.0.0.1:1080";
        ck_assert_int_eq(dial_start(e, &p, on_dialled, NULL, &d), -EINVAL);
        p.proxy = "http://127.0.0.1:8080";
        ck_assert_int_eq(dial_start(e, &p, on_dialled, NULL, &d), -EINVAL);
        ck_assert_int_eq(dial_start(e, NULL, on_dialled, NULL, &d), -EINVAL);
        ck_assert_int_eq(dial_start(e, &(DialParams) { .host = "h", .port = 1 }, NULL, NULL, &d), -EINVAL);
        ck_assert_ptr_null(d);

        /* 255 bytes is the most SOCKS5 carries: accepted */
        name[255] = 0;
        p.proxy = "socks5://127.0.0.1:1080";
        ck_assert_int_eq(dial_start(e, &p, on_dialled, &o, &d), 0);
        d = dial_cancel(d);
}
END_TEST

static const struct {
        const char *url;
        DialProxyType type;
        const char *host;
        uint16_t port;
} proxy_urls[] = {
        { "socks5://127.0.0.1:1080", DIAL_PROXY_SOCKS5, "127.0.0.1", 1080 },
        { "socks5://proxy.example:9050", DIAL_PROXY_SOCKS5, "proxy.example", 9050 },
        { "socks5://[::1]:1", DIAL_PROXY_SOCKS5, "::1", 1 },
        { "http://[fe80::1]:65535", DIAL_PROXY_HTTP, "fe80::1", 65535 },
        { "http://proxy:3128", DIAL_PROXY_HTTP, "proxy", 3128 },
};

START_TEST(test_dial_proxy_parse) {
        _cleanup_(freep) char *host = NULL;
        DialProxyType type;
        uint16_t port;

        ck_assert_int_eq(dial_proxy_parse(proxy_urls[_i].url, &type, &host, &port), 0);
        ck_assert_int_eq(type, proxy_urls[_i].type);
        ck_assert_str_eq(host, proxy_urls[_i].host);
        ck_assert_uint_eq(port, proxy_urls[_i].port);
}
END_TEST

/* ---- Scripted proxies: exact bytes both ways ---- */

#define SOCKS5_GREETING "\x05\x01\x00"
#define SOCKS5_NO_AUTH "\x05\x00"
/* CONNECT target.test:22 (0x0016), as a domain */
#define SOCKS5_CONNECT_TARGET "\x05\x01\x00\x03\x0btarget.test\x00\x16"
#define SOCKS5_OK_V4 "\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"
#define SOCKS5_OK_V6 \
        "\x05\x00\x00\x04" "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" "\x04\x38"
/* CONNECT [::1]:22, as an address */
#define SOCKS5_CONNECT_V6_LOOPBACK \
        "\x05\x01\x00\x04" "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" "\x00\x16"
#define HTTP_CONNECT_TARGET "CONNECT target.test:22 HTTP/1.1\r\nHost: target.test:22\r\n\r\n"
#define BANNER "SSH-2.0-OpenSSH_9.2p1\r\n"

_Static_assert(sizeof(SOCKS5_CONNECT_TARGET) - 1 == 4 + 1 + 11 + 2, "SOCKS5 CONNECT request size");
_Static_assert(sizeof(SOCKS5_OK_V4) - 1 == 4 + 4 + 2, "SOCKS5 IPv4 reply size");
_Static_assert(sizeof(SOCKS5_OK_V6) - 1 == 4 + 16 + 2, "SOCKS5 IPv6 reply size");
_Static_assert(sizeof(SOCKS5_CONNECT_V6_LOOPBACK) - 1 == 4 + 16 + 2, "SOCKS5 IPv6 request size");

typedef struct ProxyCase {
        const char *scheme;
        Step steps[6];
        int r;        /* 0: success, then the banner must be what is left to read */
        bool banner;
} ProxyCase;

static const ProxyCase proxy_cases[] = {
        /* SOCKS5: the reply and the first bytes of the target in one segment */
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH), EXPECT(SOCKS5_CONNECT_TARGET),
                      SEND(SOCKS5_OK_V4 BANNER), END }, 0, true },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH), EXPECT(SOCKS5_CONNECT_TARGET),
                      SEND(SOCKS5_OK_V6), END }, 0, false },
        /* every message arriving one byte at a time */
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND_SLOWLY(SOCKS5_NO_AUTH), EXPECT(SOCKS5_CONNECT_TARGET),
                      SEND_SLOWLY("\x05\x00\x00\x03\x04name\x12\x34" BANNER), END }, 0, true },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND("\x05\xff"), END }, -EACCES, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND("\x05\x02"), END }, -EACCES, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND("\x04\x00"), END }, -EBADMSG, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), CLOSE, END }, -ECONNRESET, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND("\x05"), CLOSE, END }, -ECONNRESET, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH), EXPECT(SOCKS5_CONNECT_TARGET),
                      SEND("\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00"), END }, -ECONNREFUSED, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH), EXPECT(SOCKS5_CONNECT_TARGET),
                      SEND("\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00"), END }, -ECONNABORTED, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH), EXPECT(SOCKS5_CONNECT_TARGET),
                      SEND("\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00"), END }, -EACCES, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH), EXPECT(SOCKS5_CONNECT_TARGET),
                      SEND("\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00"), END }, -ENETUNREACH, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH), EXPECT(SOCKS5_CONNECT_TARGET),
                      SEND("\x05\x04\x00\x01\x00\x00\x00\x00\x00\x00"), END }, -EHOSTUNREACH, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH), EXPECT(SOCKS5_CONNECT_TARGET),
                      SEND("\x05\x06\x00\x01\x00\x00\x00\x00\x00\x00"), END }, -ETIMEDOUT, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH), EXPECT(SOCKS5_CONNECT_TARGET),
                      SEND("\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00"), END }, -EAFNOSUPPORT, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH), EXPECT(SOCKS5_CONNECT_TARGET),
                      SEND("\x05\x00\x00\x07"), END }, -EBADMSG, false },
        { "socks5", { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH), EXPECT(SOCKS5_CONNECT_TARGET),
                      SEND("\x05\x00\x00\x01\x00"), CLOSE, END }, -ECONNRESET, false },
        /* no answer at all: the whole-dial timeout */
        { "socks5", { EXPECT(SOCKS5_GREETING), END }, -ETIMEDOUT, false },

        /* HTTP CONNECT */
        { "http", { EXPECT(HTTP_CONNECT_TARGET), SEND("HTTP/1.1 200 Connection established\r\n\r\n" BANNER), END },
          0, true },
        { "http", { EXPECT(HTTP_CONNECT_TARGET),
                    SEND("HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n"), END },
          0, false },
        { "http", { EXPECT(HTTP_CONNECT_TARGET),
                    SEND_SLOWLY("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\nX: y\n\n" BANNER), END }, 0, true },
        { "http", { EXPECT(HTTP_CONNECT_TARGET), SEND("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"), END },
          -EACCES, false },
        { "http", { EXPECT(HTTP_CONNECT_TARGET), SEND("HTTP/1.1 403 Forbidden\r\n\r\n"), END }, -EACCES, false },
        { "http", { EXPECT(HTTP_CONNECT_TARGET), SEND("HTTP/1.0 500 Unable to connect\r\n\r\n"), END },
          -ECONNREFUSED, false },
        { "http", { EXPECT(HTTP_CONNECT_TARGET), SEND("HTTP/1.1 504 Gateway Timeout\r\n\r\n"), END },
          -ETIMEDOUT, false },
        { "http", { EXPECT(HTTP_CONNECT_TARGET), SEND("HTTP/1.1 301 Moved\r\n\r\n"), END }, -EPROTO, false },
        /* not a proxy at all: an SSH server answers */
        { "http", { EXPECT(HTTP_CONNECT_TARGET), SEND(BANNER), END }, -EBADMSG, false },
        { "http", { EXPECT(HTTP_CONNECT_TARGET), SEND("HTTP/1.1 200 OK\r\n"), CLOSE, END }, -ECONNRESET, false },
        { "http", { EXPECT(HTTP_CONNECT_TARGET), END }, -ETIMEDOUT, false },
};

START_TEST(test_dial_scripted_proxy) {
        const ProxyCase *c = &proxy_cases[_i];
        char proxy[64];
        Outcome o;

        snprintf(proxy, sizeof proxy, "%s://127.0.0.1:%u", c->scheme, peer_start(AF_INET, "127.0.0.1", c->steps));
        o = dial("target.test", 22, proxy, c->r == -ETIMEDOUT ? SHORT_USEC : DEADLINE_USEC, 0);
        if (c->r < 0)
                assert_failed(o, c->r, TUNNEL_REASON_PROXY_FAILED);
        else {
                ck_assert_int_eq(o.r, 0);
                peer_wait();
                /* exactly the proxy's reply was consumed */
                if (c->banner)
                        assert_reads(o.fd, BANNER);
                else
                        assert_reads(o.fd, "");
        }
        ck_assert_uint_eq(peer.accepted, 1);
        ck_assert_uint_eq(fake_calls(), 0);
}
END_TEST

/* The proxy's own name is looked up; the target's is never. IPv6 literal targets are sent
 * as addresses (SOCKS5 ATYP 4, bracketed in HTTP). */
START_TEST(test_dial_proxy_by_name) {
        static const Step socks[] = { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH),
                                      EXPECT(SOCKS5_CONNECT_V6_LOOPBACK),
                                      SEND(SOCKS5_OK_V4), END };
        static const Step http[] = { EXPECT("CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n\r\n"),
                                     SEND("HTTP/1.1 200 OK\r\n\r\n"), END };
        char proxy[64];
        uint16_t port;

        fake_install();
        port = peer_start(AF_INET, "127.0.0.1", socks);
        fake_add(AF_INET, "127.0.0.1", port);
        snprintf(proxy, sizeof proxy, "socks5://proxy.test:%u", port);
        ck_assert_int_eq(dial("::1", 22, proxy, 0, 0).r, 0);
        ck_assert_str_eq(fake.names, "proxy.test ");

        peer_stop();
        memset(&peer, 0, sizeof peer);
        peer.cfd = -EBADF;
        port = peer_start(AF_INET, "127.0.0.1", http);
        fake.n_addrs = 0;
        fake_add(AF_INET, "127.0.0.1", port);
        snprintf(proxy, sizeof proxy, "http://proxy.test:%u", port);
        ck_assert_int_eq(dial("::1", 22, proxy, 0, 0).r, 0);
        ck_assert_str_eq(fake.names, "proxy.test proxy.test ");
}
END_TEST

/* With a proxy the target is not resolved here, and the proxy's own address is not the
 * filter's business: it is never asked. */
START_TEST(test_dial_filter_not_with_proxy) {
        static const Step socks[] = { EXPECT(SOCKS5_GREETING), SEND(SOCKS5_NO_AUTH),
                                      EXPECT(SOCKS5_CONNECT_V6_LOOPBACK), SEND(SOCKS5_OK_V4), END };
        Filter f = { .refuse_v4 = true, .refuse_v6 = true };
        char proxy[64];

        snprintf(proxy, sizeof proxy, "socks5://127.0.0.1:%u", peer_start(AF_INET, "127.0.0.1", socks));
        ck_assert_int_eq(dial_filtered("::1", 22, proxy, &f).r, 0);
        ck_assert_uint_eq(f.calls, 0);
}
END_TEST

/* Every failure on the way to the proxy is proxy-failed, with the errno that says why. */
START_TEST(test_dial_proxy_unreachable) {
        char proxy[64];

        snprintf(proxy, sizeof proxy, "socks5://127.0.0.1:%u", refused_port(AF_INET, "127.0.0.1"));
        assert_failed(dial("target.test", 22, proxy, 0, 0), -ECONNREFUSED, TUNNEL_REASON_PROXY_FAILED);
        snprintf(proxy, sizeof proxy, "http://[::1]:%u", refused_port(AF_INET6, "::1"));
        assert_failed(dial("target.test", 22, proxy, 0, 0), -ECONNREFUSED, TUNNEL_REASON_PROXY_FAILED);
        snprintf(proxy, sizeof proxy, "http://127.0.0.1:%u", blackhole_port());
        assert_failed(dial("target.test", 22, proxy, 0, SHORT_USEC), -ETIMEDOUT, TUNNEL_REASON_PROXY_FAILED);
        assert_failed(dial("target.test", 22, "socks5://nonexistent.invalid:1080", 0, 0), -ENXIO,
                      TUNNEL_REASON_PROXY_FAILED);
}
END_TEST

/* ---- Real proxies from Debian ---- */

/* The target: sends a banner as soon as it accepts, as an SSH server does. */
static const Step target_banner[] = { SEND(BANNER), END };

static uint16_t start_microsocks(bool with_auth) {
        char port_text[8];
        uint16_t port = free_port();
        pid_t pid;

        snprintf(port_text, sizeof port_text, "%u", port);
        if (with_auth)
                pid = spawn((const char *const[]) { "microsocks", "-i", "127.0.0.1", "-p", port_text, "-u", "user", "-P",
                                              "secret", NULL });
        else
                pid = spawn((const char *const[]) { "microsocks", "-i", "127.0.0.1", "-p", port_text, NULL });
        wait_listening(pid, port);
        return port;
}

START_TEST(test_dial_microsocks) {
        uint16_t target = peer_start(AF_INET, "127.0.0.1", target_banner);
        uint16_t proxy_port = start_microsocks(false);
        char proxy[64];
        Outcome o;

        /* Our resolver fails every name: the dial can only work if "localhost" goes to the
         * proxy as a name and the proxy resolves it. */
        fake_install();
        fake.eai = EAI_NONAME;
        snprintf(proxy, sizeof proxy, "socks5://127.0.0.1:%u", proxy_port);
        o = dial("localhost", target, proxy, 0, 0);
        ck_assert_int_eq(o.r, 0);
        ck_assert_uint_eq(fake_calls(), 0);
        peer_wait();
        assert_reads(o.fd, BANNER);
        ck_assert_uint_eq(peer.accepted, 1);

        /* the proxy cannot connect to the target */
        assert_failed(dial("localhost", refused_port(AF_INET, "127.0.0.1"), proxy, 0, 0), -ECONNREFUSED,
                      TUNNEL_REASON_PROXY_FAILED);
        /* nor resolve it */
        assert_failed(dial("nonexistent.invalid", 22, proxy, 0, 0), -ECONNABORTED, TUNNEL_REASON_PROXY_FAILED);
        ck_assert_uint_eq(fake_calls(), 0);
}
END_TEST

START_TEST(test_dial_microsocks_auth_required) {
        char proxy[64];

        snprintf(proxy, sizeof proxy, "socks5://127.0.0.1:%u", start_microsocks(true));
        assert_failed(dial("localhost", 22, proxy, 0, 0), -EACCES, TUNNEL_REASON_PROXY_FAILED);
}
END_TEST

static uint16_t start_tinyproxy(const char *extra, char log_path[static 128]) {
        char conf_path[128], port_text[8];
        uint16_t port = free_port();
        FILE *f;
        pid_t pid;

        if (!tmp_dir[0]) {
                strcpy(tmp_dir, "/tmp/test-dial-XXXXXX");
                ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
        }
        snprintf(conf_path, 128, "%s/tinyproxy-%u.conf", tmp_dir, port);
        snprintf(log_path, 128, "%s/tinyproxy-%u.log", tmp_dir, port);
        snprintf(port_text, sizeof port_text, "%u", port);
        f = fopen(conf_path, "we");
        ck_assert_ptr_nonnull(f);
        fprintf(f,
                "Port %u\nListen 127.0.0.1\nTimeout 30\nMaxClients 8\nAllow 127.0.0.1\n"
                "LogFile \"%s\"\nLogLevel Connect\n%s",
                port, log_path, extra);
        ck_assert_int_eq(fclose(f), 0);
        pid = spawn((const char *const[]) { "tinyproxy", "-d", "-c", conf_path, NULL });
        wait_listening(pid, port);
        return port;
}

START_TEST(test_dial_tinyproxy) {
        uint16_t target = peer_start(AF_INET, "127.0.0.1", target_banner);
        char proxy[64], log_path[128], needle[64];
        uint64_t end;
        Outcome o;

        snprintf(proxy, sizeof proxy, "http://127.0.0.1:%u", start_tinyproxy("", log_path));
        fake_install();
        fake.eai = EAI_NONAME;
        o = dial("localhost", target, proxy, 0, 0);
        ck_assert_int_eq(o.r, 0);
        ck_assert_uint_eq(fake_calls(), 0);
        peer_wait();
        assert_reads(o.fd, BANNER);
        /* tinyproxy says which name it was asked for */
        snprintf(needle, sizeof needle, "CONNECT localhost:%u HTTP/1.1", target);
        end = now_usec() + DEADLINE_USEC;
        while (!file_contains(log_path, needle) || !file_contains(log_path, "connection to host \"localhost\"")) {
                ck_assert_msg(now_usec() < end, "tinyproxy never logged the request");
                (void) poll(NULL, 0, 20);
        }

        /* cannot connect to the target: 500 */
        assert_failed(dial("localhost", refused_port(AF_INET, "127.0.0.1"), proxy, 0, 0), -ECONNREFUSED,
                      TUNNEL_REASON_PROXY_FAILED);
}
END_TEST

START_TEST(test_dial_tinyproxy_forbidden) {
        char proxy[64], log_path[128];

        /* only CONNECT to port 443 allowed: 403 */
        snprintf(proxy, sizeof proxy, "http://127.0.0.1:%u", start_tinyproxy("ConnectPort 443\n", log_path));
        assert_failed(dial("localhost", 22, proxy, 0, 0), -EACCES, TUNNEL_REASON_PROXY_FAILED);
}
END_TEST

static Suite *dial_suite(void) {
        Suite *s = suite_create("dial");
        TCase *tc;

        tc = tcase_create("resolve");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_loop_test(tc, test_resolve_literal, 0, ELEMENTSOF(literals));
        tcase_add_test(tc, test_resolve_localhost);
        tcase_add_test(tc, test_resolve_nonexistent);
        tcase_add_test(tc, test_resolve_bad_arguments);
        tcase_add_loop_test(tc, test_resolve_errors, 0, ELEMENTSOF(eai_table));
        tcase_add_test(tc, test_resolve_no_usable_address);
        tcase_add_test(tc, test_resolve_address_cap);
        tcase_add_test(tc, test_resolve_cancel_while_running);
        tcase_add_test(tc, test_resolve_cancel_after_answer);
        tcase_add_test(tc, test_resolve_queue_fifo);
        tcase_add_test(tc, test_resolve_peer_class);
        tcase_add_test(tc, test_dial_peer_target_class);
        tcase_add_test(tc, test_resolve_queue_cancel);
        tcase_add_test(tc, test_resolve_queue_bound);
        tcase_add_test(tc, test_resolve_burst);
        tcase_add_test(tc, test_resolve_queue_other_thread);
        suite_add_tcase(s, tc);

        tc = tcase_create("dial");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_loop_test(tc, test_dial_direct, 0, ELEMENTSOF(direct_table));
        tcase_add_test(tc, test_dial_refused);
        tcase_add_test(tc, test_dial_timeout);
        tcase_add_test(tc, test_dial_resolve_failed);
        tcase_add_test(tc, test_dial_resolver_busy);
        tcase_add_test(tc, test_dial_queued_connects);
        tcase_add_test(tc, test_dial_queued_timeout);
        tcase_add_test(tc, test_dial_address_order);
        tcase_add_test(tc, test_dial_filter_none_refused);
        tcase_add_test(tc, test_dial_filter_some_refused);
        tcase_add_test(tc, test_dial_filter_all_refused);
        tcase_add_test(tc, test_dial_filter_not_with_proxy);
        tcase_add_test(tc, test_dial_cancel);
        tcase_add_loop_test(tc, test_dial_bad_params, 0, ELEMENTSOF(bad_params));
        tcase_add_test(tc, test_dial_bad_params_long);
        tcase_add_loop_test(tc, test_dial_proxy_parse, 0, ELEMENTSOF(proxy_urls));
        tcase_add_loop_test(tc, test_dial_scripted_proxy, 0, ELEMENTSOF(proxy_cases));
        tcase_add_test(tc, test_dial_proxy_by_name);
        tcase_add_test(tc, test_dial_proxy_unreachable);
        suite_add_tcase(s, tc);

        tc = tcase_create("real-proxies");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_dial_microsocks);
        tcase_add_test(tc, test_dial_microsocks_auth_required);
        tcase_add_test(tc, test_dial_tinyproxy);
        tcase_add_test(tc, test_dial_tinyproxy_forbidden);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(dial_suite());
        int failed;

        /* A proxy or peer closing early must fail a write, not kill the test. */
        signal(SIGPIPE, SIG_IGN);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
