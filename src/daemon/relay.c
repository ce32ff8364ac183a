/* Relay between a socket and an SSH channel. libssh 0.10 facts this depends on: channel
 * data is learned through a data callback, which hands us libssh's whole buffer of unread
 * bytes; what the callback consumes leaves that buffer, the rest stays (and counts against
 * the window) until we read it with ssh_channel_read_nonblocking(). The callback sends
 * straight to the socket when nothing of ours is queued before those bytes (one copy less
 * than reading them out first) and consumes what the socket took. ssh_channel_write() may
 * take fewer bytes than asked (0 while re-keying) and there is no "window grew" callback,
 * so the unwritten rest waits here and is retried after every pump pass. */
#include <sys/socket.h>

#include <libssh/callbacks.h>

#include "log.h"
#include "relay.h"

struct Relay {
        sd_event *event;
        SshPump *pump;
        ssh_channel channel;
        struct ssh_channel_callbacks_struct callbacks;
        int fd;
        sd_event_source *io;

        char *up; /* socket → channel */
        size_t up_start, up_end;
        char *down; /* channel → socket */
        size_t down_start, down_end;

        bool sock_eof;      /* the socket said EOF */
        bool chan_eof_sent; /* ... and we passed it on */
        bool chan_pending;  /* libssh holds channel data (or EOF/close) for us */
        bool chan_eof;      /* the channel said EOF and we have read everything */
        bool sock_shut;     /* ... and we passed it on with shutdown(SHUT_WR) */
        bool chan_closed;
        bool done;
        int sock_errno; /* send() failed inside the data callback; reported by relay_process() */

        uint64_t *bytes_in, *bytes_out;
        RelayDoneCallback done_cb;
        void *userdata;
};

static int on_channel_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr, void *userdata) {
        Relay *r = userdata;
        ssize_t n;

        /* Bytes of ours still queued go first, and stderr is never relayed: then consume
         * nothing, the bytes are read with ssh_channel_read_nonblocking() when there is
         * room. Either way the window only counts what has left libssh for the socket. */
        if (is_stderr || r->done || r->sock_errno || r->down_end > r->down_start) {
                r->chan_pending = true;
                return 0;
        }
        n = send(r->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        r->sock_errno = errno;
                n = 0;
        }
        *r->bytes_in += (uint64_t) n;
        if ((size_t) n < len)
                r->chan_pending = true; /* the socket is full: the rest is read later */
        return (int) n;
}

static void on_channel_eof(ssh_session s, ssh_channel ch, void *userdata) {
        ((Relay *) userdata)->chan_pending = true;
}

static void on_channel_close(ssh_session s, ssh_channel ch, void *userdata) {
        Relay *r = userdata;

        r->chan_pending = true;
        r->chan_closed = true;
}

static void finish(Relay *r, int error) {
        if (r->done)
                return;
        r->done = true;
        (void) sd_event_source_set_enabled(r->io, SD_EVENT_OFF);
        r->done_cb(r, error, r->userdata);
}

static void update_events(Relay *r) {
        uint32_t events = 0;

        if (r->done)
                return;
        if (!r->sock_eof && r->up_end < RELAY_BUFFER_SIZE)
                events |= EPOLLIN;
        if (r->down_end > r->down_start)
                events |= EPOLLOUT;
        (void) sd_event_source_set_io_events(r->io, events);
}

/* channel → down buffer */
static int pull_channel(Relay *r) {
        while (r->chan_pending && !r->chan_eof) {
                int n;

                if (r->down_start == r->down_end)
                        r->down_start = r->down_end = 0;
                if (r->down_end == RELAY_BUFFER_SIZE)
                        break; /* full: the rest waits in libssh, the window stops the peer */
                n = ssh_channel_read_nonblocking(r->channel, r->down + r->down_end,
                                                 (uint32_t) (RELAY_BUFFER_SIZE - r->down_end), 0);
                if (n > 0) {
                        r->down_end += (size_t) n;
                        *r->bytes_in += (uint64_t) n;
                } else if (n == 0) {
                        r->chan_pending = false;
                        break;
                } else if (n == SSH_EOF || r->chan_closed) {
                        /* A peer may close without EOF; once its data is read, that is the end. */
                        r->chan_eof = true;
                        r->chan_pending = false;
                } else
                        return -EIO;
        }
        return 0;
}

/* down buffer → socket */
static int push_socket(Relay *r) {
        while (r->down_end > r->down_start) {
                ssize_t n = send(r->fd, r->down + r->down_start, r->down_end - r->down_start,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                r->down_start += (size_t) n;
        }
        r->down_start = r->down_end = 0;
        if (r->chan_eof && !r->sock_shut) {
                (void) shutdown(r->fd, SHUT_WR);
                r->sock_shut = true;
        }
        return 0;
}

/* up buffer → channel, within the window, while libssh's output is not backed up (the
 * pump's next pass after the socket drained comes back here) */
static int push_channel(Relay *r) {
        while (r->up_end > r->up_start && !r->chan_closed && !ssh_pump_congested(r->pump)) {
                uint32_t window = ssh_channel_window_size(r->channel);
                size_t n = MIN(r->up_end - r->up_start, (size_t) window);
                int w;

                if (n == 0)
                        break; /* retried after the next pump pass brings a window adjust */
                w = ssh_channel_write(r->channel, r->up + r->up_start, (uint32_t) n);
                if (w == SSH_ERROR)
                        return -EIO;
                if (w == 0)
                        break; /* re-keying: keep the bytes, try again later */
                r->up_start += (size_t) w;
                *r->bytes_out += (uint64_t) w;
        }
        if (r->up_start == r->up_end)
                r->up_start = r->up_end = 0;
        if (r->sock_eof && r->up_end == 0 && !r->chan_eof_sent && !r->chan_closed) {
                if (ssh_channel_send_eof(r->channel) == SSH_ERROR)
                        return -EIO;
                r->chan_eof_sent = true;
        }
        return 0;
}

/* socket → up buffer */
static int pull_socket(Relay *r) {
        while (!r->sock_eof && r->up_end < RELAY_BUFFER_SIZE) {
                ssize_t n = recv(r->fd, r->up + r->up_end, RELAY_BUFFER_SIZE - r->up_end, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                if (n == 0) {
                        r->sock_eof = true;
                        break;
                }
                r->up_end += (size_t) n;
        }
        return 0;
}

void relay_process(Relay *r) {
        int k;

        if (r->done)
                return;
        if (r->sock_errno) {
                finish(r, -r->sock_errno);
                return;
        }
        /* Channel to socket until the socket is full or libssh has nothing more. When the
         * socket took the whole buffer while libssh still holds data, go round again: no
         * event would come for it (the peer may have sent its last packet, even EOF). */
        do {
                if ((k = pull_channel(r)) < 0 || (k = push_socket(r)) < 0) {
                        finish(r, k);
                        return;
                }
        } while (r->chan_pending && !r->chan_eof && r->down_end == 0);
        if ((k = push_channel(r)) < 0) {
                finish(r, k);
                return;
        }

        /* Finished when each direction has delivered its end, or the channel is gone and
         * everything it sent has reached the socket. */
        if ((r->chan_eof_sent && r->sock_shut) ||
            (r->chan_closed && r->chan_eof && r->down_end == r->down_start)) {
                finish(r, 0);
                return;
        }
        update_events(r);
}

bool relay_wants_pump(const Relay *r) {
        return !r->done && (r->chan_pending || r->up_end > r->up_start ||
                            (r->sock_eof && !r->chan_eof_sent));
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Relay *r = userdata;
        int k = 0;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                k = pull_socket(r);
        if (k < 0) {
                finish(r, k);
                return 0;
        }
        relay_process(r);
        if (!r->done)
                ssh_pump_kick(r->pump);
        return 0;
}

int relay_new(sd_event *e, SshPump *pump, ssh_channel channel, int fd, const void *initial, size_t n_initial,
              uint64_t *bytes_in, uint64_t *bytes_out, RelayDoneCallback done, void *userdata, Relay **ret) {
        Relay *r;
        int k;

        if (n_initial > RELAY_BUFFER_SIZE)
                return -E2BIG;
        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(e);
        r->pump = pump;
        r->channel = channel;
        r->fd = fd;
        r->bytes_in = bytes_in;
        r->bytes_out = bytes_out;
        r->done_cb = done;
        r->userdata = userdata;
        r->up = malloc(RELAY_BUFFER_SIZE);
        r->down = malloc(RELAY_BUFFER_SIZE);
        if (!r->up || !r->down) {
                k = -ENOMEM;
                goto fail;
        }
        if (n_initial > 0) {
                memcpy(r->up, initial, n_initial);
                r->up_end = n_initial;
        }

        r->callbacks = (struct ssh_channel_callbacks_struct) {
                .userdata = r,
                .channel_data_function = on_channel_data,
                .channel_eof_function = on_channel_eof,
                .channel_close_function = on_channel_close,
        };
        ssh_callbacks_init(&r->callbacks);
        if (ssh_set_channel_callbacks(channel, &r->callbacks) != SSH_OK) {
                k = -ENOMEM;
                goto fail;
        }
        /* Data may have arrived between the open confirmation and now. */
        r->chan_pending = true;

        k = sd_event_add_io(e, &r->io, fd, EPOLLIN, on_io, r);
        if (k < 0)
                goto fail;
        (void) sd_event_source_set_description(r->io, "relay");

        *ret = r;
        return 0;

fail:
        /* On failure the caller keeps fd and channel. */
        if (r->channel)
                (void) ssh_remove_channel_callbacks(channel, &r->callbacks);
        free(r->up);
        free(r->down);
        sd_event_unref(r->event);
        free(r);
        return k;
}

Relay *relay_free(Relay *r) {
        if (!r)
                return NULL;
        sd_event_source_disable_unref(r->io);
        safe_close(r->fd);
        if (r->channel) {
                (void) ssh_remove_channel_callbacks(r->channel, &r->callbacks);
                /* Sends CLOSE if still open; libssh frees it once the peer's CLOSE arrives. */
                (void) ssh_channel_close(r->channel);
                ssh_channel_free(r->channel);
        }
        free(r->up);
        free(r->down);
        sd_event_unref(r->event);
        free(r);
        return NULL;
}

typedef struct RelayEntry {
        struct RelayEntry *prev, *next;
        RelaySet *set;
        Relay *relay;
} RelayEntry;

struct RelaySet {
        RelayEntry *live;
        RelayEntry *dead;
        size_t n_live;
        uint64_t total;
        uint64_t bytes_in, bytes_out;
        sd_event_source *reaper;
};

static void entry_unlink(RelayEntry **head, RelayEntry *e) {
        if (e->prev)
                e->prev->next = e->next;
        else
                *head = e->next;
        if (e->next)
                e->next->prev = e->prev;
        e->prev = e->next = NULL;
}

static void entry_push(RelayEntry **head, RelayEntry *e) {
        e->prev = NULL;
        e->next = *head;
        if (*head)
                (*head)->prev = e;
        *head = e;
}

static int on_reap(sd_event_source *source, void *userdata) {
        RelaySet *s = userdata;

        while (s->dead) {
                RelayEntry *e = s->dead;
                entry_unlink(&s->dead, e);
                relay_free(e->relay);
                free(e);
        }
        return 0;
}

static void entry_done(Relay *r, int error, void *userdata) {
        RelayEntry *e = userdata;
        RelaySet *s = e->set;

        entry_unlink(&s->live, e);
        s->n_live--;
        entry_push(&s->dead, e);
        (void) sd_event_source_set_enabled(s->reaper, SD_EVENT_ONESHOT);
}

int relay_set_new(sd_event *e, RelaySet **ret) {
        RelaySet *s;
        int r;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        r = sd_event_add_defer(e, &s->reaper, on_reap, s);
        if (r < 0) {
                free(s);
                return r;
        }
        (void) sd_event_source_set_enabled(s->reaper, SD_EVENT_OFF);
        (void) sd_event_source_set_description(s->reaper, "relay-reaper");
        *ret = s;
        return 0;
}

void relay_set_clear(RelaySet *s) {
        while (s->live) {
                RelayEntry *e = s->live;
                entry_unlink(&s->live, e);
                s->n_live--;
                relay_free(e->relay);
                free(e);
        }
        (void) on_reap(NULL, s);
}

RelaySet *relay_set_free(RelaySet *s) {
        if (!s)
                return NULL;
        relay_set_clear(s);
        sd_event_source_disable_unref(s->reaper);
        free(s);
        return NULL;
}

int relay_set_start(RelaySet *s, SshPump *pump, ssh_channel channel, int fd, const void *initial, size_t n_initial) {
        RelayEntry *e;
        int r;

        e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->set = s;
        r = relay_new(sd_event_source_get_event(s->reaper), pump, channel, fd, initial, n_initial, &s->bytes_in,
                      &s->bytes_out, entry_done, e, &e->relay);
        if (r < 0) {
                free(e);
                return r;
        }
        entry_push(&s->live, e);
        s->n_live++;
        s->total++;
        relay_process(e->relay);
        return 0;
}

void relay_set_process(RelaySet *s) {
        for (RelayEntry *e = s->live, *next; e; e = next) {
                next = e->next;
                if (relay_wants_pump(e->relay))
                        relay_process(e->relay);
        }
}

size_t relay_set_size(const RelaySet *s) {
        return s->n_live;
}

uint64_t relay_set_total(const RelaySet *s) {
        return s->total;
}

uint64_t relay_set_bytes_in(const RelaySet *s) {
        return s->bytes_in;
}

uint64_t relay_set_bytes_out(const RelaySet *s) {
        return s->bytes_out;
}
