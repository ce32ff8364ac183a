/* Name resolution that does not block the event loop: getaddrinfo() in a few detached worker
 * threads, with a bounded queue for lookups beyond them, the answer delivered in the loop;
 * IP literals are answered without a thread. */
#pragma once

#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* At most this many lookup threads run at once, process-wide. Further lookups wait, in one
 * process-wide FIFO, and start as threads finish: a burst of names (a browser opening 50
 * connections through the server role) is served in turn instead of failing. A cancelled
 * lookup keeps its slot until getaddrinfo() returns, so a resolver that hangs cannot make
 * us pile up threads: lookups wait instead, each until its caller's own deadline. */
#define RESOLVE_THREADS_MAX 16u
/* Of those, at most this many for names that peers ask for (the server role's
 * direct-tcpip): a peer with names whose DNS never answers can hold these, never the ones
 * the daemon's own connections (profiles) need. */
#define RESOLVE_THREADS_PEER_MAX 12u
/* At most this many lookups wait for a thread, process-wide; beyond that resolve_start()
 * fails with -EBUSY. A waiting lookup holds no thread and no fd, only its query (a few
 * hundred bytes with the name). */
#define RESOLVE_QUEUE_MAX 1024u
/* At most this many addresses are kept from one answer (the rest are dropped): a DNS
 * answer is peer-controlled. */
#define RESOLVE_ADDRESSES_MAX 16u
/* Longest host name accepted (a DNS name has at most 253 characters). */
#define RESOLVE_HOST_MAX 253u

typedef struct ResolvedAddress {
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
        };
        socklen_t len; /* sizeof(struct sockaddr_in) or sizeof(struct sockaddr_in6) */
} ResolvedAddress;

/* An answer: 1..RESOLVE_ADDRESSES_MAX AF_INET/AF_INET6 stream addresses with the port set,
 * in getaddrinfo()'s order (RFC 6724 sorting, /etc/gai.conf). One allocation. */
typedef struct ResolvedAddresses {
        size_t n;
        ResolvedAddress addresses[];
} ResolvedAddresses;

ResolvedAddresses *resolved_addresses_free(ResolvedAddresses *a);
DEFINE_POINTER_CLEANUP_FUNC(ResolvedAddresses, resolved_addresses_free);

/* A query is started, cancelled and answered in the thread that runs its sd_event, as
 * sd-event itself wants; loops in different threads may resolve at once, and share the
 * threads and the queue. */
typedef struct ResolveQuery ResolveQuery;

/* Whose name it is: the daemon's own (a profile's server or proxy), or a peer's. Each class
 * has its own FIFO of RESOLVE_QUEUE_MAX; a free thread takes the daemon's own first. */
typedef enum ResolveClass {
        RESOLVE_OWN,
        RESOLVE_PEER,
        _RESOLVE_CLASS_MAX,
} ResolveClass;

/* Called once, from the event loop, never from inside resolve_start(). The query is already
 * freed when this runs: forget the handle first thing. On success r is 0 and addresses is
 * the callee's to free; on failure addresses is NULL and r is
 *   -ENXIO        the name does not exist or has no IPv4/IPv6 address (EAI_NONAME,
 *                 EAI_NODATA, EAI_ADDRFAMILY); chosen over -ENOENT/-EHOSTUNREACH so that it
 *                 cannot be mistaken for a missing file or a routing failure
 *   -EAGAIN       temporary failure, e.g. no DNS server answered (EAI_AGAIN)
 *   -EIO          permanent resolver failure (EAI_FAIL) or an unknown EAI_* code
 *   -ENOMEM       EAI_MEMORY
 *   -errno        EAI_SYSTEM with its errno */
typedef void (*ResolveCallback)(int r, ResolvedAddresses *addresses, void *userdata);

/* Looks up host (a name, or an IPv4/IPv6 literal without brackets) for TCP port, family
 * AF_UNSPEC, without AI_ADDRCONFIG: glibc decides that from non-loopback addresses only, so
 * on a host whose interfaces have IPv4 only it hides ::1 and every IPv6 answer, and it
 * judges by the interfaces of the moment, while a link may still be coming up. An
 * unusable family costs one fast ENETUNREACH at connect time instead.
 * With RESOLVE_THREADS_MAX lookups running the query waits for a thread; the caller's own
 * timeout covers the wait (cancelling takes it out of the queue).
 * -EINVAL: empty host, longer than RESOLVE_HOST_MAX, or e or cb missing. -EBUSY: every
 * thread busy and RESOLVE_QUEUE_MAX lookups already waiting. -EAGAIN/-ENOMEM: no thread
 * could be started. Another -errno (-EMFILE, ...): no eventfd for e's first lookup. */
int resolve_start(sd_event *e, const char *host, uint16_t port, ResolveCallback cb, void *userdata,
                  ResolveQuery **ret);
/* The same for a class; resolve_start() is RESOLVE_OWN. -EINVAL for an unknown class. */
int resolve_start_class(sd_event *e, const char *host, uint16_t port, ResolveClass class, ResolveCallback cb,
                        void *userdata, ResolveQuery **ret);

/* Stops a query that has not called back yet: the callback is never called afterwards and
 * everything is freed: a waiting query leaves the queue at once; one whose worker thread is
 * still inside getaddrinfo() is freed by that thread when it returns (it never touches the
 * loop for it), and keeps its thread slot until then. Accepts NULL; returns NULL. */
ResolveQuery *resolve_query_cancel(ResolveQuery *q);
DEFINE_POINTER_CLEANUP_FUNC(ResolveQuery, resolve_query_cancel);

/* Lookup threads still running, cancelled ones included. */
unsigned resolve_threads_running(void);

/* Lookups waiting for a thread. */
unsigned resolve_queries_waiting(void);

/* Waits (blocking: for tests and for a clean exit under valgrind only) until no lookup
 * thread runs any more, so none waits either; -ETIMEDOUT after timeout_usec. */
int resolve_wait_idle(uint64_t timeout_usec);

/* For tests: the functions the worker threads call instead of getaddrinfo() and
 * freeaddrinfo(); NULL, NULL restores those. Takes effect for queries started afterwards
 * (a waiting query keeps the functions of when resolve_start() was called). */
typedef int (*ResolveGetaddrinfoFunc)(const char *node, const char *service, const struct addrinfo *hints,
                                      struct addrinfo **res);
typedef void (*ResolveFreeaddrinfoFunc)(struct addrinfo *res);
void resolve_set_backend(ResolveGetaddrinfoFunc gai, ResolveFreeaddrinfoFunc freeai);
