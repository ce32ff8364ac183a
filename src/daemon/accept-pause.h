/* A listening socket stays readable while accept() fails for want of resources (out of
 * fds, of memory): accepting again at once would spin the loop at full speed and flood
 * the log. AcceptPause rests such a listener for a moment instead, and warns about it at
 * most once a minute per AcceptPause. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "macro.h"

#define ACCEPT_PAUSE_USEC (250 * USEC_PER_MSEC)
#define ACCEPT_PAUSE_WARNING_INTERVAL_USEC (60 * USEC_PER_SEC)

typedef struct AcceptPause {
        sd_event_source *timer; /* turns the listener back on */
        sd_event_source *io;    /* the listener being rested */
        uint64_t last_warning;
} AcceptPause;

/* What to do after accept() on io's socket failed with errno value error. Returns true
 * when the listener should simply be read again later (EAGAIN, EINTR), or may go on at once
 * because that one client is gone (ECONNABORTED, EPROTO: *ret_next is set); otherwise
 * rests io for ACCEPT_PAUSE_USEC, logs "Failed to accept on <what>, pausing it: ..." (rate
 * limited) and returns false. The caller stops its accept loop unless *ret_next. */
bool accept_pause_handle(AcceptPause *p, sd_event_source *io, int error, const char *what, bool *ret_next);

/* Frees the timer (before the io source it would turn on goes away). */
void accept_pause_done(AcceptPause *p);
