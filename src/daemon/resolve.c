/* Name resolution off the event loop: getaddrinfo() in detached worker threads, at most
 * RESOLVE_THREADS_MAX at once; lookups beyond that wait in one process-wide FIFO, and a
 * worker that finishes takes the next one itself. Answers reach each sd_event through one
 * eventfd per loop; IP literals are answered from a defer source. */
#include <arpa/inet.h>
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <time.h>

#include "resolve.h"

typedef enum QueryState {
        QUERY_IDLE,    /* on no list and no thread has it: a literal, or one being set up */
        QUERY_WAITING, /* in the wait queue */
        QUERY_RUNNING, /* a worker thread is looking it up */
        QUERY_DONE,    /* answered, on its loop's done list */
} QueryState;

/* What one sd_event hears from the worker threads. efd is a semaphore: one count per
 * answer, and one answer taken per dispatch, like one io source per query would. It lives
 * while the loop has lookups that may still call back (n_queries); only the loop's own
 * thread creates, counts and frees it, a worker only appends to done and signals efd, both
 * under the lock, and only for a query that is not cancelled. */
typedef struct ResolveLoop ResolveLoop;
struct ResolveLoop {
        sd_event *event; /* kept alive by source */
        sd_event_source *source;
        int efd;
        unsigned n_queries;                  /* waiting, running (not cancelled), done */
        ResolveQuery *done_head, *done_tail; /* under lock */
        ResolveLoop *prev, *next;            /* in loops, under lock */
};

/* A literal only uses result, defer, cb and userdata. For a lookup, state, cancelled and the
 * list links are under the lock. host to freeai are set before the lookup starts and only
 * read afterwards. The worker writes error and result before it moves the query to
 * QUERY_DONE; the loop reads them after it took the query off the done list, so the lock
 * orders both. A cancelled running query belongs to its thread, which frees it when
 * getaddrinfo() returns and never touches the loop for it. */
struct ResolveQuery {
        QueryState state;
        ResolveClass class;
        bool cancelled;
        ResolveQuery *prev, *next; /* in the wait queue, or in loop->done */
        ResolveLoop *loop;         /* NULL for a literal */

        char *host;
        char service[sizeof("65535")];
        ResolveGetaddrinfoFunc gai;
        ResolveFreeaddrinfoFunc freeai;

        int error;
        ResolvedAddresses *result;

        sd_event_source *defer; /* a literal's */
        ResolveCallback cb;
        void *userdata;
};

/* Process-wide: the caps must hold across all loops and queries. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t threads_idle = PTHREAD_COND_INITIALIZER;
static unsigned n_threads, n_peer_threads;
/* One FIFO per class. Not waiting while a thread slot its class may use is free: a lookup
 * only waits when they are taken, and a finishing worker hands its slot on (the daemon's
 * own lookups first) before it gives one back. (A slot that a failed pthread_create()
 * gives back may leave one waiting for a moment: see resolve_start_lookup().) */
static struct {
        ResolveQuery *head, *tail;
        unsigned n;
} waiting[_RESOLVE_CLASS_MAX];
static unsigned n_waiting; /* both classes */
static ResolveLoop *loops;

/* Test backend; only read by resolve_start(), which copies it into the query. */
static ResolveGetaddrinfoFunc backend_gai;
static ResolveFreeaddrinfoFunc backend_freeai;

static void fifo_append(ResolveQuery **head, ResolveQuery **tail, ResolveQuery *q) {
        q->next = NULL;
        q->prev = *tail;
        if (*tail)
                (*tail)->next = q;
        else
                *head = q;
        *tail = q;
}

static void fifo_remove(ResolveQuery **head, ResolveQuery **tail, ResolveQuery *q) {
        if (q->prev)
                q->prev->next = q->next;
        else
                *head = q->next;
        if (q->next)
                q->next->prev = q->prev;
        else
                *tail = q->prev;
        q->prev = q->next = NULL;
}

static ResolveQuery *fifo_pop(ResolveQuery **head, ResolveQuery **tail) {
        ResolveQuery *q = *head;

        if (q)
                fifo_remove(head, tail, q);
        return q;
}

ResolvedAddresses *resolved_addresses_free(ResolvedAddresses *a) {
        free(a);
        return NULL;
}

static ResolvedAddresses *resolved_addresses_new(size_t n) {
        return calloc(1, sizeof(ResolvedAddresses) + n * sizeof(ResolvedAddress));
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

static void query_lookup(ResolveQuery *q) {
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_protocol = IPPROTO_TCP,
                .ai_flags = AI_NUMERICSERV,
        };
        struct addrinfo *ai = NULL;
        int r;

        errno = 0;
        r = q->gai(q->host, q->service, &hints, &ai);
        if (r != 0)
                q->error = eai_to_errno(r, errno);
        else {
                q->error = addresses_from_addrinfo(ai, &q->result);
                q->freeai(ai);
        }
}

/* Frees what the query holds; it must be on no list, and no thread may have it. */
static void query_destroy(ResolveQuery *q) {
        if (!q)
                return;
        sd_event_source_disable_unref(q->defer);
        resolved_addresses_free(q->result);
        free(q->host);
        free(q);
}

/* Whether a lookup of this class may have a thread now. Under the lock. */
static bool slot_free(ResolveClass class) {
        return n_threads < RESOLVE_THREADS_MAX && (class == RESOLVE_OWN || n_peer_threads < RESOLVE_THREADS_PEER_MAX);
}

static void slot_take(ResolveClass class) {
        n_threads++;
        if (class == RESOLVE_PEER)
                n_peer_threads++;
}

static void slot_give_back(ResolveClass class) {
        n_threads--;
        if (class == RESOLVE_PEER)
                n_peer_threads--;
}

/* The next query to run on a free slot: the daemon's own lookups first. Under the lock. */
static ResolveQuery *waiting_next(void) {
        for (ResolveClass c = 0; c < _RESOLVE_CLASS_MAX; c++) {
                ResolveQuery *q;

                if (!waiting[c].head || !slot_free(c))
                        continue;
                q = fifo_pop(&waiting[c].head, &waiting[c].tail);
                waiting[c].n--;
                n_waiting--;
                slot_take(c);
                q->state = QUERY_RUNNING;
                return q;
        }
        return NULL;
}

/* The slot of a thread whose lookup returned goes straight to the query that waited
 * longest (of the daemon's own, then of peers'), and the thread runs that one too: no loop has to be woken to start it, also
 * when the lookup that returned was cancelled, and no thread is created for it. A
 * cancelled query keeps its slot until getaddrinfo() returns, so a resolver that hangs
 * cannot make us pile up threads: lookups wait instead. */
static void *resolve_thread(void *p) {
        ResolveQuery *q = p;

        while (q) {
                ResolveQuery *cancelled = NULL;

                query_lookup(q);

                pthread_mutex_lock(&lock);
                if (q->cancelled)
                        cancelled = q;
                else {
                        q->state = QUERY_DONE;
                        fifo_append(&q->loop->done_head, &q->loop->done_tail, q);
                        /* Cannot fail short of a bug: the counter is far from overflowing. */
                        (void) eventfd_write(q->loop->efd, 1);
                }
                slot_give_back(q->class);
                q = waiting_next();
                if (!q)
                        pthread_cond_broadcast(&threads_idle);
                pthread_mutex_unlock(&lock);

                query_destroy(cancelled);
        }
        return NULL;
}

static ResolveLoop *resolve_loop_unref(ResolveLoop *l) {
        if (!l || --l->n_queries > 0)
                return NULL;

        /* No query of this loop is left that a worker could answer: nothing writes efd. */
        assert(!l->done_head);
        pthread_mutex_lock(&lock);
        LIST_REMOVE(loops, l);
        pthread_mutex_unlock(&lock);
        sd_event_source_disable_unref(l->source);
        safe_close(l->efd);
        free(l);
        return NULL;
}

/* Takes the query off the list it is on. Returns true when a worker thread still has it
 * and so frees it. */
static bool query_detach(ResolveQuery *q) {
        bool thread_has_it = false;

        if (!q->loop)
                return false;
        pthread_mutex_lock(&lock);
        switch (q->state) {
        case QUERY_IDLE:
                break;
        case QUERY_WAITING:
                fifo_remove(&waiting[q->class].head, &waiting[q->class].tail, q);
                waiting[q->class].n--;
                n_waiting--;
                break;
        case QUERY_RUNNING:
                q->cancelled = true;
                thread_has_it = true;
                break;
        case QUERY_DONE:
                fifo_remove(&q->loop->done_head, &q->loop->done_tail, q);
                break;
        }
        q->state = QUERY_IDLE;
        pthread_mutex_unlock(&lock);
        return thread_has_it;
}

/* Cancels, or frees an answered query. */
static void resolve_query_free(ResolveQuery *q) {
        ResolveLoop *l = q->loop; /* read first: once detached, a thread may free q */

        if (!query_detach(q))
                query_destroy(q);
        resolve_loop_unref(l);
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

static int on_loop_answer(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ResolveLoop *l = userdata;
        ResolveQuery *q;
        eventfd_t v;

        (void) eventfd_read(fd, &v);
        pthread_mutex_lock(&lock);
        q = fifo_pop(&l->done_head, &l->done_tail);
        if (q)
                q->state = QUERY_IDLE;
        pthread_mutex_unlock(&lock);
        /* A count without an answer was for one cancelled after it came in. */
        if (q)
                resolve_query_complete(q, q->error, TAKE_PTR(q->result));
        return 0;
}

/* The loop's ResolveLoop, created on its first lookup, with one more query counted. Only
 * e's thread creates or frees the one for e, so it cannot go away between the search and
 * the count. */
static int resolve_loop_ref(sd_event *e, ResolveLoop **ret) {
        ResolveLoop *l;
        int r;

        pthread_mutex_lock(&lock);
        for (l = loops; l && l->event != e; l = l->next)
                ;
        pthread_mutex_unlock(&lock);
        if (l) {
                l->n_queries++;
                *ret = l;
                return 0;
        }

        l = calloc(1, sizeof(ResolveLoop));
        if (!l)
                return -ENOMEM;
        l->event = e;
        l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
        if (l->efd < 0) {
                r = -errno;
                free(l);
                return r;
        }
        r = sd_event_add_io(e, &l->source, l->efd, EPOLLIN, on_loop_answer, l);
        if (r < 0) {
                safe_close(l->efd);
                free(l);
                return r;
        }
        (void) sd_event_source_set_description(l->source, "resolve");
        l->n_queries = 1;
        pthread_mutex_lock(&lock);
        LIST_PREPEND(loops, l);
        pthread_mutex_unlock(&lock);
        *ret = l;
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
static int thread_start(ResolveQuery *q) {
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
                r = pthread_create(&t, &attr, resolve_thread, q);
                pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        pthread_attr_destroy(&attr);
        return -r;
}

static int resolve_start_lookup(ResolveQuery *q, sd_event *e, const char *host, uint16_t port) {
        bool start = false;
        int r = 0;

        q->host = strdup(host);
        if (!q->host)
                return -ENOMEM;
        snprintf(q->service, sizeof q->service, "%u", (unsigned) port);
        q->gai = backend_gai ?: getaddrinfo;
        q->freeai = backend_freeai ?: freeaddrinfo;

        r = resolve_loop_ref(e, &q->loop);
        if (r < 0)
                return r;

        pthread_mutex_lock(&lock);
        if (slot_free(q->class)) {
                slot_take(q->class);
                q->state = QUERY_RUNNING;
                start = true;
        } else if (waiting[q->class].n < RESOLVE_QUEUE_MAX) {
                fifo_append(&waiting[q->class].head, &waiting[q->class].tail, q);
                waiting[q->class].n++;
                n_waiting++;
                q->state = QUERY_WAITING;
        } else
                r = -EBUSY;
        pthread_mutex_unlock(&lock);
        if (!start)
                return r;

        r = thread_start(q);
        if (r < 0) {
                /* Should a lookup of another loop have queued meanwhile, the threads that
                 * were running then take it. */
                pthread_mutex_lock(&lock);
                q->state = QUERY_IDLE;
                slot_give_back(q->class);
                pthread_cond_broadcast(&threads_idle);
                pthread_mutex_unlock(&lock);
                return r;
        }
        return 0;
}

int resolve_start(sd_event *e, const char *host, uint16_t port, ResolveCallback cb, void *userdata,
                  ResolveQuery **ret) {
        return resolve_start_class(e, host, port, RESOLVE_OWN, cb, userdata, ret);
}

int resolve_start_class(sd_event *e, const char *host, uint16_t port, ResolveClass class, ResolveCallback cb,
                        void *userdata, ResolveQuery **ret) {
        ResolveQuery *q;
        int r;

        if (!e || !cb || isempty(host) || strlen(host) > RESOLVE_HOST_MAX || class < 0 ||
            class >= _RESOLVE_CLASS_MAX)
                return -EINVAL;

        q = calloc(1, sizeof(ResolveQuery));
        if (!q)
                return -ENOMEM;
        q->class = class;
        q->cb = cb;
        q->userdata = userdata;

        r = literal_address(host, port, &q->result);
        if (r > 0)
                r = sd_event_add_defer(e, &q->defer, on_literal, q);
        else if (r == 0)
                r = resolve_start_lookup(q, e, host, port);
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

        pthread_mutex_lock(&lock);
        n = n_threads;
        pthread_mutex_unlock(&lock);
        return n;
}

unsigned resolve_queries_waiting(void) {
        unsigned n;

        pthread_mutex_lock(&lock);
        n = n_waiting;
        pthread_mutex_unlock(&lock);
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

        pthread_mutex_lock(&lock);
        while (n_threads > 0 && r == 0)
                r = pthread_cond_clockwait(&threads_idle, &lock, CLOCK_MONOTONIC, &deadline);
        if (n_threads == 0)
                r = 0;
        pthread_mutex_unlock(&lock);
        return r == ETIMEDOUT ? -ETIMEDOUT : -r;
}

void resolve_set_backend(ResolveGetaddrinfoFunc gai, ResolveFreeaddrinfoFunc freeai) {
        assert(!gai == !freeai);
        backend_gai = gai;
        backend_freeai = freeai;
}
