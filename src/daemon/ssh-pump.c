/* The libssh pump. libssh 0.10 reads nothing unless called, spins if asked to wait for
 * SSH_WRITE_PENDING, and loses latency to delayed ACKs; this file holds those lessons
 * (see platform-notes.md) in one place. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <libssh/callbacks.h>

#include "log.h"
#include "ssh-pump.h"

struct SshPump {
        sd_event *event;
        ssh_session session;
        int fd; /* borrowed: libssh owns the socket once SSH_OPTIONS_FD is set */
        sd_event_source *io;
        sd_event_source *defer;
        SshPumpHandler handler;
        void *userdata;
        const struct ssh_counter_struct *counter;
        bool congested;
        bool dead;
};

static void update_events(SshPump *p) {
        if (p->dead)
                return;
        (void) sd_event_source_set_io_events(p->io, EPOLLIN | (p->congested ? EPOLLOUT : 0));
}

int ssh_pump_flush(SshPump *p) {
        int rc;

        if (p->dead)
                return -EPIPE;
        /* Timeout 0: write what the socket takes now, never wait. */
        rc = ssh_blocking_flush(p->session, 0);
        if (rc == SSH_ERROR) {
                p->dead = true;
                return -EPIPE;
        }
        /* Writers held back while congested: give them a pass now that there is room (no
         * event of theirs may come, their sockets wait for them). */
        if (p->congested && rc != SSH_AGAIN)
                ssh_pump_schedule(p);
        p->congested = rc == SSH_AGAIN;
        update_events(p);
        return p->congested ? 0 : 1;
}

void ssh_pump_kick(SshPump *p) {
        (void) ssh_pump_flush(p);
        /* Also after a failed flush: the handler is where a dead session is noticed. */
        (void) sd_event_source_set_enabled(p->defer, SD_EVENT_ONESHOT);
}

bool ssh_pump_congested(const SshPump *p) {
        return p->congested;
}

void ssh_pump_set_counter(SshPump *p, const struct ssh_counter_struct *counter) {
        p->counter = counter;
}

static int run_handler(SshPump *p) {
        uint64_t in_before;
        int one = 1, r;

        /* Delayed ACKs cost ~40 ms per request/response turn against OpenSSH; QUICKACK is
         * not sticky, so it is set again before every pass. */
        (void) setsockopt(p->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);

        r = p->handler(p, p->userdata);
        if (r < 0)
                return r; /* the owner may have freed us */
        in_before = p->counter ? p->counter->in_packets : 0;
        (void) ssh_pump_flush(p);
        if (p->counter && p->counter->in_packets != in_before)
                ssh_pump_schedule(p);
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        SshPump *p = userdata;

        /* The socket has room: flush first, so that the handler's writers see it. */
        if (revents & EPOLLOUT)
                (void) ssh_pump_flush(p);
        return run_handler(p), 0;
}

static int on_defer(sd_event_source *s, void *userdata) {
        SshPump *p = userdata;

        (void) sd_event_source_set_enabled(p->defer, SD_EVENT_OFF);
        return run_handler(p), 0;
}

void ssh_pump_schedule(SshPump *p) {
        if (!p->dead)
                (void) sd_event_source_set_enabled(p->defer, SD_EVENT_ONESHOT);
}

int ssh_pump_new(sd_event *e, ssh_session session, int fd, SshPumpHandler handler, void *userdata, SshPump **ret) {
        _cleanup_(ssh_pump_freep) SshPump *p = NULL;
        int r;

        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->event = sd_event_ref(e);
        p->session = session;
        p->fd = fd;
        p->handler = handler;
        p->userdata = userdata;

        r = sd_event_add_io(e, &p->io, fd, EPOLLIN, on_io, p);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(p->io, "ssh-pump");
        r = sd_event_add_defer(e, &p->defer, on_defer, p);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(p->defer, SD_EVENT_OFF);

        *ret = TAKE_PTR(p);
        return 0;
}

SshPump *ssh_pump_free(SshPump *p) {
        if (!p)
                return NULL;
        sd_event_source_disable_unref(p->io);
        sd_event_source_disable_unref(p->defer);
        sd_event_unref(p->event);
        free(p);
        return NULL;
}
