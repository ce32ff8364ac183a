/* Resting a listener whose accept() fails for want of resources. */
#include <errno.h>

#include "accept-pause.h"
#include "log.h"

static int on_resume(sd_event_source *s, uint64_t usec, void *userdata) {
        AcceptPause *p = userdata;

        if (p->io)
                (void) sd_event_source_set_enabled(p->io, SD_EVENT_ON);
        return 0;
}

bool accept_pause_handle(AcceptPause *p, sd_event_source *io, int error, const char *what, bool *ret_next) {
        uint64_t now = 0;
        int r;

        *ret_next = error == ECONNABORTED || error == EPROTO;
        if (*ret_next || error == EAGAIN || error == EINTR)
                return true;

        (void) sd_event_now(sd_event_source_get_event(io), CLOCK_MONOTONIC, &now);
        if (p->last_warning == 0 || now - p->last_warning >= ACCEPT_PAUSE_WARNING_INTERVAL_USEC) {
                p->last_warning = now;
                log_warning_errno(error, "Failed to accept on %s, pausing it: %m", what);
        }

        p->io = io;
        (void) sd_event_source_set_enabled(io, SD_EVENT_OFF);
        if (!p->timer)
                r = sd_event_add_time_relative(sd_event_source_get_event(io), &p->timer, CLOCK_MONOTONIC,
                                               ACCEPT_PAUSE_USEC, 0, on_resume, p);
        else {
                r = sd_event_source_set_time_relative(p->timer, ACCEPT_PAUSE_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
        }
        if (r < 0)
                /* Without a timer there is no resting: keep accepting rather than go deaf. */
                (void) sd_event_source_set_enabled(io, SD_EVENT_ON);
        return false;
}

void accept_pause_done(AcceptPause *p) {
        p->timer = sd_event_source_disable_unref(p->timer);
        p->io = NULL;
}
