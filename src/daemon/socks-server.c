/* One SOCKS5 server connection: greeting, optional RFC 1929 authentication, CONNECT
 * request, channel open through the ChannelOpener, reply. The wire format is socks5.h's;
 * this file only moves bytes and keeps the state. Nothing here logs a destination. */
#include <arpa/inet.h>
#include <assert.h>
#include <sys/socket.h>

#include "log.h"
#include "socks-server.h"
#include "socks5.h"

typedef enum SocksState {
        SOCKS_STATE_GREETING,
        SOCKS_STATE_AUTH,
        SOCKS_STATE_REQUEST,
        SOCKS_STATE_OPENING, /* request complete; the opener has it */
        SOCKS_STATE_LINGER,  /* error reply sent; dropping input until the client closes */
        SOCKS_STATE_DONE,
} SocksState;

struct SocksServer {
        sd_event *event;
        int fd;
        sd_event_source *io;
        sd_event_source *timer;

        const ChannelOpener *opener;
        void *open_handle;
        unsigned in_open; /* > 0 while opener->open() is on the stack */

        SocksServerDoneCallback done;
        void *userdata;

        const char *username; /* borrowed; NULL: no authentication */
        const char *password;
        char orig_host[INET6_ADDRSTRLEN];
        uint16_t orig_port;

        SocksState state;
        bool finished; /* done is due as soon as no callback of ours is on the stack */

        /* Input not yet consumed. One message of any kind fits; whatever follows the
         * request in here is the start of the stream and goes to the opener as initial. */
        uint8_t in[SOCKS5_MESSAGE_MAX];
        size_t n_in;
        Socks5Request request;
};

static void release_sources(SocksServer *s) {
        s->io = sd_event_source_disable_unref(s->io);
        s->timer = sd_event_source_disable_unref(s->timer);
}

/* Ends the connection (closing the socket unless it was handed on); done follows when
 * the top-level callback unwinds. */
static void server_finish(SocksServer *s) {
        release_sources(s);
        s->fd = safe_close(s->fd);
        s->state = SOCKS_STATE_DONE;
        s->finished = true;
}

/* The tail of every entry point: hands the server back to its owner, who may free it. */
static void server_maybe_done(SocksServer *s) {
        if (s->finished && s->in_open == 0) {
                s->finished = false;
                s->done(s, s->userdata);
        }
}

static void consume(SocksServer *s, size_t n) {
        assert(n <= s->n_in);
        memmove(s->in, s->in + n, s->n_in - n);
        s->n_in -= n;
        /* The bytes may have been a password. */
        explicit_bzero(s->in + s->n_in, n);
}

/* Every message we send is a few bytes on a socket we have written at most a few dozen
 * bytes to, so it fits the send buffer whole; anything short of that is a dead peer. */
static int send_all(SocksServer *s, const uint8_t *buf, size_t n) {
        ssize_t k;

        do
                k = send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        if ((size_t) k != n)
                return -EAGAIN;
        return 0;
}

static int arm_timer(SocksServer *s, uint64_t usec) {
        int r;

        r = sd_event_source_set_time_relative(s->timer, usec);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

/* Sends a final error message and lingers, so the reply is read before the close. */
static void server_fail(SocksServer *s, const uint8_t *msg, size_t n) {
        int r;

        r = send_all(s, msg, n);
        if (r >= 0 && shutdown(s->fd, SHUT_WR) < 0)
                r = -errno;
        if (r >= 0)
                r = sd_event_source_set_io_events(s->io, EPOLLIN);
        if (r >= 0)
                r = arm_timer(s, SOCKS_SERVER_LINGER_USEC);
        if (r < 0) {
                log_debug_errno(r, "SOCKS connection: cannot send the final reply: %m");
                server_finish(s);
                return;
        }
        s->state = SOCKS_STATE_LINGER;
}

static void server_fail_reply(SocksServer *s, uint8_t code) {
        uint8_t buf[SOCKS5_SERVER_REPLY_MAX];
        int n;

        n = socks5_build_reply(code, NULL, buf, sizeof buf);
        assert(n > 0);
        server_fail(s, buf, (size_t) n);
}

static uint8_t reply_for_open_failure(int r, int ssh_reason) {
        /* The SSH server's answer maps per RFC 4254 reason. Anything else (tunnel down past
         * the connect deadline, -ETIMEDOUT/-ENOTCONN, or a local error) is a failure of
         * this proxy, not a statement about the destination, so it is "general failure"
         * rather than "host unreachable". */
        if (ssh_reason > 0)
                return socks5_reply_for_ssh_open_failure(ssh_reason);
        return SOCKS5_REPLY_GENERAL_FAILURE;
}

static void socks_opened(int r, int ssh_reason, void *userdata) {
        SocksServer *s = userdata;

        assert(s->state == SOCKS_STATE_OPENING);
        s->open_handle = NULL;

        if (r < 0) {
                log_debug_errno(r, "SOCKS connection: channel open failed (SSH reason %d): %m", ssh_reason);
                server_fail_reply(s, reply_for_open_failure(r, ssh_reason));
        } else {
                uint8_t buf[SOCKS5_SERVER_REPLY_MAX];
                int n;

                n = socks5_build_reply(SOCKS5_REPLY_SUCCEEDED, NULL, buf, sizeof buf);
                assert(n > 0);
                r = send_all(s, buf, (size_t) n);
                if (r < 0) {
                        /* The opener owns fd from here on whatever happens; make sure it
                         * sees the end at once instead of relaying a stream without its
                         * reply. */
                        log_debug_errno(r, "SOCKS connection: cannot send the success reply: %m");
                        (void) shutdown(s->fd, SHUT_RDWR);
                }
                /* Off our epoll before the opener adds the fd to its own. */
                release_sources(s);
                s->fd = -EBADF;
                s->state = SOCKS_STATE_DONE;
                s->finished = true;
        }
        server_maybe_done(s);
}

static void start_open(SocksServer *s) {
        ChannelOpenRequest req = {
                .host = s->request.address,
                .port = s->request.port,
                .fd = s->fd,
                .initial = s->n_in > 0 ? s->in : NULL,
                .n_initial = s->n_in,
                .orig_host = s->orig_host,
                .orig_port = s->orig_port,
        };
        void *handle = NULL;
        int r;

        /* The deadline was for the client's part. While the channel opens we read
         * nothing (later bytes stay in the socket for the relay) and only hear of a
         * client that gives up (hangup or error; epoll reports those without asking). */
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
        r = sd_event_source_set_io_events(s->io, 0);
        if (r < 0) {
                server_fail_reply(s, SOCKS5_REPLY_GENERAL_FAILURE);
                return;
        }
        s->state = SOCKS_STATE_OPENING;

        s->in_open++;
        r = s->opener->open(s->opener->ctx, &req, socks_opened, s, &handle);
        s->in_open--;

        if (s->state != SOCKS_STATE_OPENING)
                return; /* the callback already ran */
        if (r < 0) {
                log_debug_errno(r, "SOCKS connection: cannot start channel open: %m");
                server_fail_reply(s, SOCKS5_REPLY_GENERAL_FAILURE);
                return;
        }
        s->open_handle = handle;
}

/* Runs the handshake over the buffered input as far as it goes. */
static void server_process(SocksServer *s) {
        for (;;) {
                uint8_t out[SOCKS5_MESSAGE_MAX];
                int r;

                switch (s->state) {

                case SOCKS_STATE_GREETING: {
                        Socks5Greeting g;
                        uint8_t method;

                        r = socks5_parse_greeting(s->in, s->n_in, &g);
                        if (r == 0)
                                goto need_more;
                        if (r < 0) {
                                log_debug_errno(r, "SOCKS connection: bad greeting, closing: %m");
                                server_finish(s);
                                return;
                        }
                        consume(s, (size_t) r);
                        method = socks5_select_method(&g, s->username != NULL);
                        r = socks5_build_method_selection(method, out);
                        if (method == SOCKS5_METHOD_NO_ACCEPTABLE) {
                                log_debug("SOCKS connection: no acceptable authentication method offered.");
                                server_fail(s, out, (size_t) r);
                                return;
                        }
                        r = send_all(s, out, (size_t) r);
                        if (r < 0) {
                                server_finish(s);
                                return;
                        }
                        s->state = method == SOCKS5_METHOD_USERPASS ? SOCKS_STATE_AUTH : SOCKS_STATE_REQUEST;
                        break;
                }

                case SOCKS_STATE_AUTH: {
                        Socks5UserPass up;
                        bool ok;

                        r = socks5_parse_userpass(s->in, s->n_in, &up);
                        if (r == 0)
                                goto need_more;
                        if (r < 0) {
                                log_debug_errno(r, "SOCKS connection: bad authentication message, closing: %m");
                                server_finish(s);
                                return;
                        }
                        consume(s, (size_t) r);
                        ok = socks5_userpass_matches(&up, s->username, s->password);
                        socks5_userpass_erase(&up);
                        r = socks5_build_userpass_reply(ok, out);
                        if (!ok) {
                                log_debug("SOCKS connection: authentication failed.");
                                server_fail(s, out, (size_t) r);
                                return;
                        }
                        r = send_all(s, out, (size_t) r);
                        if (r < 0) {
                                server_finish(s);
                                return;
                        }
                        s->state = SOCKS_STATE_REQUEST;
                        break;
                }

                case SOCKS_STATE_REQUEST:
                        r = socks5_parse_request(s->in, s->n_in, &s->request);
                        if (r == 0)
                                goto need_more;
                        if (r == -EAFNOSUPPORT) {
                                server_fail_reply(s, SOCKS5_REPLY_ADDRESS_TYPE_NOT_SUPPORTED);
                                return;
                        }
                        if (r < 0) {
                                log_debug_errno(r, "SOCKS connection: bad request, closing: %m");
                                server_finish(s);
                                return;
                        }
                        consume(s, (size_t) r);
                        if (!socks5_request_supported(&s->request)) {
                                log_debug("SOCKS connection: command %u not supported.", (unsigned) s->request.cmd);
                                server_fail_reply(s, SOCKS5_REPLY_COMMAND_NOT_SUPPORTED);
                                return;
                        }
                        start_open(s);
                        return;

                default:
                        return;
                }
        }

need_more:
        /* A partial message always fits: the buffer holds the largest one whole. */
        assert(s->n_in < sizeof s->in);
}

/* Reads what is there: into the buffer during the handshake, into the void when lingering.
 * Returns 0 when the client closed or failed. */
static int server_read(SocksServer *s) {
        uint8_t drop[4096];
        uint8_t *p;
        size_t room;
        ssize_t n;

        if (s->state == SOCKS_STATE_LINGER)
                p = drop, room = sizeof drop;
        else
                p = s->in + s->n_in, room = sizeof s->in - s->n_in;

        n = recv(s->fd, p, room, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 1;
                return 0;
        }
        if (n == 0)
                return 0;
        if (s->state == SOCKS_STATE_LINGER)
                explicit_bzero(drop, (size_t) n);
        else
                s->n_in += (size_t) n;
        return 1;
}

static int server_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        SocksServer *s = userdata;

        if (s->state == SOCKS_STATE_OPENING) {
                /* Only hangup and error are reported now: the client gave up waiting. */
                if (s->open_handle)
                        s->opener->cancel(s->opener->ctx, s->open_handle);
                s->open_handle = NULL;
                server_finish(s);
        } else if (server_read(s) == 0)
                server_finish(s);
        else if (s->state != SOCKS_STATE_LINGER)
                server_process(s);

        server_maybe_done(s);
        return 0;
}

static int server_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        SocksServer *s = userdata;

        if (s->state != SOCKS_STATE_LINGER)
                log_debug("SOCKS connection: handshake deadline passed, closing.");
        server_finish(s);
        server_maybe_done(s);
        return 0;
}

int socks_server_new(
                sd_event *event,
                int fd,
                const SocksServerConfig *config,
                const ChannelOpener *opener,
                SocksServerDoneCallback done,
                void *userdata,
                SocksServer **ret) {

        _cleanup_(socks_server_freep) SocksServer *s = NULL;
        uint64_t timeout;
        int r;

        assert(event);
        assert(config);
        assert(opener && opener->open && opener->cancel);
        assert(done);
        assert(ret);
        assert(!config->username == !config->password);

        s = calloc(1, sizeof *s);
        if (!s) {
                safe_close(fd);
                return -ENOMEM;
        }
        s->fd = fd;
        s->event = sd_event_ref(event);
        s->opener = opener;
        s->done = done;
        s->userdata = userdata;
        s->username = config->username;
        s->password = config->password;
        s->orig_port = config->orig_port;
        if (config->orig_host) {
                if (strlen(config->orig_host) >= sizeof s->orig_host)
                        return -EINVAL;
                strcpy(s->orig_host, config->orig_host);
        }
        timeout = config->handshake_timeout_usec ?: SOCKS_SERVER_HANDSHAKE_TIMEOUT_USEC_DEFAULT;

        r = sd_event_add_io(event, &s->io, fd, EPOLLIN, server_io, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(s->io, "socks-connection");
        r = sd_event_add_time_relative(event, &s->timer, CLOCK_MONOTONIC, timeout, 0, server_timer, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(s->timer, "socks-deadline");

        *ret = TAKE_PTR(s);
        return 0;
}

SocksServer *socks_server_free(SocksServer *s) {
        if (!s)
                return NULL;
        if (s->open_handle)
                s->opener->cancel(s->opener->ctx, s->open_handle);
        release_sources(s);
        safe_close(s->fd);
        sd_event_unref(s->event);
        explicit_bzero(s->in, sizeof s->in);
        free(s);
        return NULL;
}

bool socks_server_is_opening(const SocksServer *s) {
        return s->state == SOCKS_STATE_OPENING;
}
