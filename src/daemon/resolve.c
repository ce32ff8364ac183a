/* Name resolution off the event loop: a detached thread per lookup runs getaddrinfo() and
 * signals an eventfd that the loop watches; IP literals are answered from a defer source. */
#include <arpa/inet.h>
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <time.h>

#include "resolve.h"

/* What the worker thread and the loop share. Two references at the start, one each; the
 * last one to let go frees it, so cancelling never waits for the thread. The thread writes
 * error/result, then sets done (release), then signals efd; the loop reads them only after
 * it saw done (acquire). The thread never touches the loop or the ResolveQuery. */
typedef struct ResolveJob {
        atomic_uint n_ref;
        atomic_bool done;
        int efd;
        char *host;
        char service[sizeof("65535")];
        ResolveGetaddrinfoFunc gai;
        ResolveFreeaddrinfoFunc freeai;
        int error;
        ResolvedAddresses *result;
} ResolveJob;

struct ResolveQuery {
        ResolveJob *job;          /* NULL when answered without a thread */
        sd_event_source *source;  /* io on job->efd, or the defer source of a literal */
        ResolvedAddresses *result; /* the literal's answer */
        ResolveCallback cb;
        void *userdata;
};

/* Running lookup threads, process-wide (the cap must hold across all loops and queries). */
static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t threads_idle = PTHREAD_COND_INITIALIZER;
static unsigned n_threads;

/* Test backend; only read by resolve_start(), which copies it into the job. */
static ResolveGetaddrinfoFunc backend_gai;
static ResolveFreeaddrinfoFunc backend_freeai;

ResolvedAddresses *resolved_addresses_free(ResolvedAddresses *a) {
        free(a);
        return NULL;
}

static ResolvedAddresses *resolved_addresses_new(size_t n) {
        return calloc(1, sizeof(ResolvedAddresses) + n * sizeof(ResolvedAddress));
}

static ResolveJob *resolve_job_unref(ResolveJob *j) {
        if (!j)
                return NULL;
        if (atomic_fetch_sub_explicit(&j->n_ref, 1, memory_order_acq_rel) != 1)
                return NULL;
        safe_close(j->efd);
        free(j->host);
        resolved_addresses_free(j->result);
        free(j);
        return NULL;
}

static int eai_to_errno(int eai, int saved_errno) {
        switch (eai) {
        case EAI_NONAME:
#ifdef EAI_NODATA
        case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
        case EAI_ADDRFAMILY:
#endif
                return -ENXIO;
        case EAI_AGAIN:
                return -EAGAIN;
        case EAI_MEMORY:
                return -ENOMEM;
        case EAI_SYSTEM:
                return saved_errno > 0 ? -saved_errno : -EIO;
        case EAI_FAIL:
        default:
                return -EIO;
        }
}

/* Copies the usable entries of an addrinfo list; -ENXIO when none is. */
static int addresses_from_addrinfo(const struct addrinfo *ai, ResolvedAddresses **ret) {
        ResolvedAddresses *a;

        a = resolved_addresses_new(RESOLVE_ADDRESSES_MAX);
        if (!a)
                return -ENOMEM;
        for (; ai && a->n < RESOLVE_ADDRESSES_MAX; ai = ai->ai_next) {
                ResolvedAddress *d = &a->addresses[a->n];

                if (ai->ai_family == AF_INET && ai->ai_addrlen == sizeof(struct sockaddr_in))
                        memcpy(&d->in, ai->ai_addr, sizeof(struct sockaddr_in));
                else if (ai->ai_family == AF_INET6 && ai->ai_addrlen == sizeof(struct sockaddr_in6))
                        memcpy(&d->in6, ai->ai_addr, sizeof(struct sockaddr_in6));
                else
                        continue;
                d->len = ai->ai_addrlen;
                a->n++;
        }
        if (a->n == 0) {
                free(a);
                return -ENXIO;
        }
        *ret = a;
        return 0;
}

static int thread_slot_acquire(void) {
        int r = 0;

        pthread_mutex_lock(&threads_lock);
        if (n_threads >= RESOLVE_THREADS_MAX)
                r = -EBUSY;
        else
                n_threads++;
        pthread_mutex_unlock(&threads_lock);
        return r;
}

static void thread_slot_release(void) {
        pthread_mutex_lock(&threads_lock);
        n_threads--;
        pthread_cond_broadcast(&threads_idle);
        pthread_mutex_unlock(&threads_lock);
}

static void *resolve_thread(void *p) {
        ResolveJob *j = p;
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_protocol = IPPROTO_TCP,
                .ai_flags = AI_NUMERICSERV,
        };
        struct addrinfo *ai = NULL;
        int r;

        errno = 0;
        r = j->gai(j->host, j->service, &hints, &ai);
        if (r != 0)
                j->error = eai_to_errno(r, errno);
        else {
                j->error = addresses_from_addrinfo(ai, &j->result);
                j->freeai(ai);
        }

        atomic_store_explicit(&j->done, true, memory_order_release);
        /* Cannot fail short of a bug: the counter is far from overflowing. */
        (void) eventfd_write(j->efd, 1);
        resolve_job_unref(j);
        thread_slot_release();
        return NULL;
}

static void resolve_query_free(ResolveQuery *q) {
        sd_event_source_disable_unref(q->source);
        resolve_job_unref(q->job);
        resolved_addresses_free(q->result);
        free(q);
}

ResolveQuery *resolve_query_cancel(ResolveQuery *q) {
        if (q)
                resolve_query_free(q);
        return NULL;
}

/* Frees the query before calling back, so the callback may do anything, even start or
 * cancel other queries. */
static void resolve_query_complete(ResolveQuery *q, int r, ResolvedAddresses *a) {
        ResolveCallback cb = q->cb;
        void *userdata = q->userdata;

        resolve_query_free(q);
        cb(r, a, userdata);
}

static int on_job_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ResolveQuery *q = userdata;
        ResolvedAddresses *a;
        eventfd_t v;
        int r;

        (void) eventfd_read(fd, &v);
        if (!atomic_load_explicit(&q->job->done, memory_order_acquire))
                return 0;

        r = q->job->error;
        a = TAKE_PTR(q->job->result);
        resolve_query_complete(q, r, a);
        return 0;
}

static int on_literal(sd_event_source *s, void *userdata) {
        ResolveQuery *q = userdata;

        resolve_query_complete(q, 0, TAKE_PTR(q->result));
        return 0;
}

/* IP literals need no resolver: one address, from a defer source so that the callback
 * still never runs inside resolve_start(). 0 when host is not a literal. */
static int literal_address(const char *host, uint16_t port, ResolvedAddresses **ret) {
        struct in_addr in;
        struct in6_addr in6;
        ResolvedAddresses *a;
        ResolvedAddress *d;

        if (inet_pton(AF_INET, host, &in) == 1) {
                a = resolved_addresses_new(1);
                if (!a)
                        return -ENOMEM;
                d = &a->addresses[0];
                d->in = (struct sockaddr_in) { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = in };
                d->len = sizeof(struct sockaddr_in);
        } else if (inet_pton(AF_INET6, host, &in6) == 1) {
                a = resolved_addresses_new(1);
                if (!a)
                        return -ENOMEM;
                d = &a->addresses[0];
                d->in6 = (struct sockaddr_in6) { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6 };
                d->len = sizeof(struct sockaddr_in6);
        } else
                return 0;

        a->n = 1;
        *ret = a;
        return 1;
}

/* Detached, with every signal blocked: the daemon's signals belong to the loop's signalfd
 * sources, and a lookup thread must never run a handler. */
static int thread_start(ResolveJob *j) {
        pthread_attr_t attr;
        sigset_t all, old;
        int r;

        r = pthread_attr_init(&attr);
        if (r != 0)
                return -r;
        r = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (r == 0) {
                pthread_t t;

                sigfillset(&all);
                pthread_sigmask(SIG_SETMASK, &all, &old);
                r = pthread_create(&t, &attr, resolve_thread, j);
                pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        pthread_attr_destroy(&attr);
        return -r;
}

static int resolve_start_thread(ResolveQuery *q, sd_event *e, const char *host, uint16_t port) {
        ResolveJob *j;
        int r;

        j = calloc(1, sizeof(ResolveJob));
        if (!j)
                return -ENOMEM;
        atomic_init(&j->n_ref, 1);
        atomic_init(&j->done, false);
        j->efd = -EBADF;
        q->job = j; /* the loop's reference; freed with the query from here on */

        j->host = strdup(host);
        if (!j->host)
                return -ENOMEM;
        snprintf(j->service, sizeof j->service, "%u", (unsigned) port);
        j->gai = backend_gai ?: getaddrinfo;
        j->freeai = backend_freeai ?: freeaddrinfo;

        j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->efd < 0)
                return -errno;
        r = sd_event_add_io(e, &q->source, j->efd, EPOLLIN, on_job_done, q);
        if (r < 0)
                return r;

        r = thread_slot_acquire();
        if (r < 0)
                return r;
        atomic_store(&j->n_ref, 2); /* the thread's reference, handed over on success */
        r = thread_start(j);
        if (r < 0) {
                atomic_store(&j->n_ref, 1);
                thread_slot_release();
                return r;
        }
        return 0;
}

int resolve_start(sd_event *e, const char *host, uint16_t port, ResolveCallback cb, void *userdata,
                  ResolveQuery **ret) {
        ResolveQuery *q;
        int r;

        if (!e || !cb || isempty(host) || strlen(host) > RESOLVE_HOST_MAX)
                return -EINVAL;

        q = calloc(1, sizeof(ResolveQuery));
        if (!q)
                return -ENOMEM;
        q->cb = cb;
        q->userdata = userdata;

        r = literal_address(host, port, &q->result);
        if (r > 0)
                r = sd_event_add_defer(e, &q->source, on_literal, q);
        else if (r == 0)
                r = resolve_start_thread(q, e, host, port);
        if (r < 0) {
                resolve_query_free(q);
                return r;
        }

        if (ret)
                *ret = q;
        return 0;
}

unsigned resolve_threads_running(void) {
        unsigned n;

        pthread_mutex_lock(&threads_lock);
        n = n_threads;
        pthread_mutex_unlock(&threads_lock);
        return n;
}

int resolve_wait_idle(uint64_t timeout_usec) {
        struct timespec deadline;
        int r = 0;

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t) (timeout_usec / USEC_PER_SEC);
        deadline.tv_nsec += (long) (timeout_usec % USEC_PER_SEC) * 1000;
        if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
        }

        pthread_mutex_lock(&threads_lock);
        while (n_threads > 0 && r == 0)
                r = pthread_cond_clockwait(&threads_idle, &threads_lock, CLOCK_MONOTONIC, &deadline);
        if (n_threads == 0)
                r = 0;
        pthread_mutex_unlock(&threads_lock);
        return r == ETIMEDOUT ? -ETIMEDOUT : -r;
}

void resolve_set_backend(ResolveGetaddrinfoFunc gai, ResolveFreeaddrinfoFunc freeai) {
        assert(!gai == !freeai);
        backend_gai = gai;
        backend_freeai = freeai;
}
