/* Network-change watcher: rtnetlink notifications (new default route, new usable address,
 * link coming up) and resume from suspend, debounced into one callback per burst. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"

typedef struct Netwatch Netwatch;

/* What happened during one burst; the callback receives the OR of these. */
typedef enum NetwatchChange {
        NETWATCH_CHANGE_ROUTE = 1 << 0,   /* a unicast default route appeared in the main table */
        NETWATCH_CHANGE_ADDRESS = 1 << 1, /* an address became usable (see netwatch.c) */
        NETWATCH_CHANGE_LINK = 1 << 2,    /* a non-loopback link gained carrier or went running */
        NETWATCH_CHANGE_OVERRUN = 1 << 3, /* notifications were lost: anything may have changed */
        NETWATCH_CHANGE_RESUME = 1 << 4,  /* the system came back from suspend */
} NetwatchChange;

/* Called from the event loop once a burst of changes has gone quiet. The callback may
 * free the Netwatch. */
typedef void (*NetwatchCallback)(Netwatch *w, unsigned changes, void *userdata);

/* A burst ends after this much quiet... */
#define NETWATCH_QUIET_USEC (500 * USEC_PER_MSEC)
/* ...or this long after its first change, so that a flapping link cannot hold it back. */
#define NETWATCH_MAX_DELAY_USEC (5 * USEC_PER_SEC)
/* How often CLOCK_BOOTTIME is compared with CLOCK_MONOTONIC to notice a suspend, and the
 * smallest gap between them that counts as one. */
#define NETWATCH_RESUME_CHECK_USEC (30 * USEC_PER_SEC)
#define NETWATCH_RESUME_MIN_USEC (1 * USEC_PER_SEC)
/* Interfaces and addresses remembered to tell "new" from "refreshed"; beyond these, an
 * untracked one counts as new every time it is announced (errs towards retrying). */
#define NETWATCH_LINKS_MAX 16384u
#define NETWATCH_ADDRESSES_MAX 65536u

int netwatch_new(sd_event *e, NetwatchCallback cb, void *userdata, Netwatch **ret);
Netwatch *netwatch_free(Netwatch *w);
DEFINE_POINTER_CLEANUP_FUNC(Netwatch, netwatch_free);

/* Defaults are NETWATCH_QUIET_USEC and NETWATCH_MAX_DELAY_USEC; tests shorten them. */
void netwatch_set_debounce(Netwatch *w, uint64_t quiet_usec, uint64_t max_delay_usec);

/* Changes seen but not yet reported (the callback has not run yet). */
unsigned netwatch_pending(const Netwatch *w);

/* Parses one datagram as if the kernel had sent it. Bytes that do not parse are skipped.
 * Exposed for the parser tests; the daemon never calls it. */
void netwatch_process_datagram(Netwatch *w, const void *buf, size_t size);
