/* A small blocking Varlink client for alknetctl: connect, send a call, read its replies with
 * poll() and a deadline. The socket is non-blocking so that no read or write can outlive it. */
#include <assert.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "varlink-client.h"
#include "varlink.h"

struct VarlinkClient {
        int fd;
        VarlinkFramer framer;
        uint64_t timeout_usec;
        /* set after a transport or protocol failure: replies may be half read or out of step */
        bool broken;
};

static uint64_t now_usec(void) {
        struct timespec ts;

        int r = clock_gettime(CLOCK_MONOTONIC, &ts);
        assert(r == 0); /* cannot fail for CLOCK_MONOTONIC */
        (void) r;
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000u;
}

static uint64_t deadline_after(uint64_t timeout_usec) {
        if (timeout_usec == VARLINK_CLIENT_TIMEOUT_INFINITY)
                return VARLINK_CLIENT_TIMEOUT_INFINITY;
        return now_usec() + timeout_usec;
}

/* Waits until fd is ready for events or the deadline passes (-ETIMEDOUT). */
static int wait_fd(int fd, short events, uint64_t deadline) {
        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = events };
                int timeout_ms = -1;

                if (deadline != VARLINK_CLIENT_TIMEOUT_INFINITY) {
                        uint64_t n = now_usec();
                        if (n >= deadline)
                                return -ETIMEDOUT;
                        /* round up, so we never wake just before the deadline and spin */
                        timeout_ms = (int) MIN((deadline - n + USEC_PER_MSEC - 1) / USEC_PER_MSEC, (uint64_t) INT32_MAX);
                }

                int r = poll(&pfd, 1, timeout_ms);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (r > 0)
                        return 0; /* POLLERR/POLLHUP too: the next read or write reports it */
        }
}

int varlink_client_connect(const char *path, uint64_t timeout_usec, VarlinkClient **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_(closep) int fd = -EBADF;
        size_t l;

        assert(path);
        assert(ret);

        l = strlen(path);
        if (l == 0 || l >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, l);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;

        /* connect() blocks only while the daemon's listen backlog is full; SO_SNDTIMEO
         * bounds that wait (Linux then fails with EAGAIN). */
        if (timeout_usec != VARLINK_CLIENT_TIMEOUT_INFINITY) {
                struct timeval tv = {
                        .tv_sec = (time_t) MIN(timeout_usec / USEC_PER_SEC, (uint64_t) INT32_MAX),
                        .tv_usec = (suseconds_t) (timeout_usec % USEC_PER_SEC),
                };
                if (tv.tv_sec == 0 && tv.tv_usec == 0)
                        tv.tv_usec = 1; /* 0 would mean "no timeout" */
                if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                        return -errno;
        }

        if (connect(fd, (const struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + l + 1)) < 0)
                return errno == EAGAIN ? -ETIMEDOUT : -errno;

        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;

        VarlinkClient *c = calloc(1, sizeof(VarlinkClient));
        if (!c)
                return -ENOMEM;

        c->fd = TAKE_FD(fd);
        c->timeout_usec = timeout_usec;
        varlink_framer_init(&c->framer, VARLINK_CLIENT_MESSAGE_SIZE_MAX, VARLINK_DEPTH_MAX_DEFAULT);

        *ret = c;
        return 0;
}

VarlinkClient *varlink_client_free(VarlinkClient *c) {
        if (!c)
                return NULL;

        varlink_framer_done(&c->framer);
        safe_close(c->fd);
        free(c);
        return NULL;
}

void varlink_client_set_timeout(VarlinkClient *c, uint64_t timeout_usec) {
        assert(c);
        c->timeout_usec = timeout_usec;
}

static int client_send(VarlinkClient *c, const char *buf, size_t size) {
        uint64_t deadline = deadline_after(c->timeout_usec);
        size_t done = 0;

        while (done < size) {
                ssize_t n = send(c->fd, buf + done, size - done, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                int r = wait_fd(c->fd, POLLOUT, deadline);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        return errno == EPIPE ? -ECONNRESET : -errno;
                }
                done += (size_t) n;
        }

        return 0;
}

/* Takes the next complete message off the stream, reading as needed. */
static int client_read_message(VarlinkClient *c, struct json_object **ret) {
        uint64_t deadline = deadline_after(c->timeout_usec);

        for (;;) {
                char buf[64 * 1024];
                int r;

                r = varlink_framer_next(&c->framer, ret);
                if (r > 0)
                        return 0;
                if (r == -ELOOP)
                        return -EBADMSG; /* too deep is as malformed as it gets for a reply */
                if (r < 0)
                        return r;

                ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                r = wait_fd(c->fd, POLLIN, deadline);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        return -errno;
                }
                if (n == 0)
                        return -ECONNRESET;

                r = varlink_framer_feed(&c->framer, buf, (size_t) n);
                if (r < 0)
                        return r;
        }
}

static int client_call_more(
                VarlinkClient *c,
                const char *method,
                struct json_object *parameters,
                bool more,
                VarlinkReplyHandler handler,
                void *userdata) {

        _cleanup_(freep) char *wire = NULL;
        size_t size;
        int r;

        struct json_object *msg = varlink_call_new(method, parameters, more, /* oneway= */ false);
        if (!msg)
                return -ENOMEM;
        r = varlink_serialize(msg, &wire, &size);
        json_object_put(msg);
        if (r < 0)
                return r;

        r = client_send(c, wire, size);
        if (r < 0)
                return r;

        for (;;) {
                struct json_object *reply_msg = NULL;
                VarlinkReply reply;

                r = client_read_message(c, &reply_msg);
                if (r < 0)
                        return r;

                r = varlink_reply_parse(reply_msg, &reply);
                if (r < 0) {
                        json_object_put(reply_msg);
                        return -EBADMSG;
                }
                if (reply.continues && !more) {
                        json_object_put(reply_msg);
                        return -EPROTO;
                }

                r = handler(reply.error, reply.parameters, reply.continues, userdata);
                bool last = reply.error || !reply.continues;
                json_object_put(reply_msg);
                if (r < 0)
                        return r;
                if (last)
                        return 0;
        }
}

int varlink_client_call_more(
                VarlinkClient *c,
                const char *method,
                struct json_object *parameters,
                bool more,
                VarlinkReplyHandler handler,
                void *userdata) {

        int r;

        assert(c);
        assert(method);
        assert(handler);

        if (c->broken) {
                json_object_put(parameters);
                return -ENOTCONN;
        }

        r = client_call_more(c, method, parameters, more, handler, userdata);
        if (r < 0)
                c->broken = true;
        return r;
}

typedef struct SingleReply {
        struct json_object *parameters;
        char *error;
} SingleReply;

static int single_reply_handler(const char *error, struct json_object *parameters, bool continues, void *userdata) {
        SingleReply *s = userdata;

        if (error) {
                s->error = strdup(error);
                if (!s->error)
                        return -ENOMEM;
        }
        s->parameters = json_object_get(parameters);
        return 0;
}

int varlink_client_call(
                VarlinkClient *c,
                const char *method,
                struct json_object *parameters,
                struct json_object **ret_parameters,
                char **ret_error) {

        SingleReply s = {};
        int r;

        assert(ret_parameters);
        assert(ret_error);

        r = varlink_client_call_more(c, method, parameters, /* more= */ false, single_reply_handler, &s);
        if (r < 0) {
                json_object_put(s.parameters);
                free(s.error);
                return r;
        }

        *ret_parameters = s.parameters;
        *ret_error = s.error;
        return s.error ? 1 : 0;
}
