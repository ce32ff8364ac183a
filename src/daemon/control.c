/* Varlink server for the control socket. Every connection is non-blocking and handled in
 * the one event loop; one call is in flight per connection (pipelined calls wait in the
 * framer), output is bounded, and malformed input closes only that connection. */
#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "accept-pause.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "varlink.h"

#define VARLINK_SERVICE_INTERFACE "org.varlink.service"
#define CONTROL_READ_CHUNK (16u * 1024u)
#define CONTROL_ACCEPT_BATCH 64u

static const char varlink_service_description[] =
        "# The Varlink Service Interface is provided by every varlink service. It\n"
        "# describes the service and the interfaces it implements.\n"
        "interface org.varlink.service\n"
        "\n"
        "# Get a list of all the interfaces a service provides and information\n"
        "# about the implementation.\n"
        "method GetInfo() -> (\n"
        "  vendor: string,\n"
        "  product: string,\n"
        "  version: string,\n"
        "  url: string,\n"
        "  interfaces: []string\n"
        ")\n"
        "\n"
        "# Get the description of an interface that is implemented by this service.\n"
        "method GetInterfaceDescription(interface: string) -> (description: string)\n"
        "\n"
        "# The requested interface was not found.\n"
        "error InterfaceNotFound (interface: string)\n"
        "\n"
        "# The requested method was not found\n"
        "error MethodNotFound (method: string)\n"
        "\n"
        "# The interface defines the requested method, but the service does not\n"
        "# implement it.\n"
        "error MethodNotImplemented (method: string)\n"
        "\n"
        "# One of the passed parameters is invalid.\n"
        "error InvalidParameter (parameter: string)\n"
        "\n"
        "# Client is denied access\n"
        "error PermissionDenied ()\n"
        "\n"
        "# Method is expected to be called with 'more' set to true, but wasn't\n"
        "error ExpectedMore ()\n";

typedef struct RegisteredInterface {
        const ControlInterface *iface;
        void *userdata;
} RegisteredInterface;

struct ControlConnection {
        ControlServer *server;
        ControlConnection *prev, *next;
        int fd;
        sd_event_source *io;
        ControlPeer peer;
        VarlinkFramer framer;

        char *out;
        size_t out_start, out_end, out_allocated;

        ControlCloseCallback close_cb;
        void *close_userdata;

        uint64_t last_active; /* CLOCK_MONOTONIC µs of the last call, for eviction */
        unsigned busy;        /* > 0 while one of our callbacks runs on this connection */
        bool in_flight;       /* a call awaits its final reply */
        bool call_oneway;
        bool call_more;
        bool read_eof;
        bool dead;
};

struct ControlServer {
        sd_event *event;
        ControlLimits limits;
        int listen_fd;
        sd_event_source *listen_io;
        AcceptPause listen_pause;
        char *bound_path;

        ControlConnection *connections; /* most recently accepted first */
        size_t n_connections;

        ControlAuthorizer authorizer;
        void *authorizer_userdata;
        RegisteredInterface *interfaces;
        size_t n_interfaces;
};

DEFINE_VOID_CLEANUP_FUNC(struct json_object, json_object_put);

static void connection_free(ControlConnection *c) {
        ControlServer *s;

        if (!c)
                return;
        if (c->close_cb) {
                ControlCloseCallback cb = TAKE_PTR(c->close_cb);
                cb(c, c->close_userdata);
        }
        s = c->server;
        if (c->prev)
                c->prev->next = c->next;
        else if (s->connections == c)
                s->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_connections--;

        sd_event_source_disable_unref(c->io);
        safe_close(c->fd);
        varlink_framer_done(&c->framer);
        free(c->peer.groups);
        free(c->out);
        free(c);
}

/* Ends a connection: at once when no callback of ours is on the stack for it, else as
 * soon as that callback unwinds. */
static void connection_kill(ControlConnection *c) {
        c->dead = true;
        (void) sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
        if (c->busy == 0)
                connection_free(c);
}

static size_t out_pending(const ControlConnection *c) {
        return c->out_end - c->out_start;
}

static void connection_update_events(ControlConnection *c) {
        uint32_t events = 0;

        if (c->dead)
                return;
        if (!c->read_eof && !c->in_flight && out_pending(c) < c->server->limits.max_output)
                events |= EPOLLIN;
        if (out_pending(c) > 0)
                events |= EPOLLOUT;
        (void) sd_event_source_set_io_events(c->io, events);
}

/* Writes what the peer will take now; the rest waits for EPOLLOUT. */
static int connection_flush(ControlConnection *c) {
        while (out_pending(c) > 0) {
                ssize_t n = send(c->fd, c->out + c->out_start, out_pending(c), MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                c->out_start += (size_t) n;
        }
        if (c->out_start == c->out_end)
                c->out_start = c->out_end = 0;
        return 0;
}

static int connection_enqueue(ControlConnection *c, struct json_object *msg) {
        _cleanup_(freep) char *wire = NULL;
        size_t size;
        int r;

        r = varlink_serialize(msg, &wire, &size);
        if (r < 0)
                return r;

        if (c->out_start > 0 && c->out_allocated - c->out_end < size) {
                memmove(c->out, c->out + c->out_start, out_pending(c));
                c->out_end -= c->out_start;
                c->out_start = 0;
        }
        if (c->out_allocated - c->out_end < size) {
                size_t want = MAX(c->out_end + size, c->out_allocated * 2);
                char *p = realloc(c->out, want);
                if (!p)
                        return -ENOMEM;
                c->out = p;
                c->out_allocated = want;
        }
        memcpy(c->out + c->out_end, wire, size);
        c->out_end += size;
        return connection_flush(c);
}

static int connection_send(ControlConnection *c, struct json_object *msg, bool final) {
        int r = 0;

        assert(c->in_flight);
        if (!c->call_oneway && !c->dead)
                r = connection_enqueue(c, msg);
        json_object_put(msg);
        if (final)
                c->in_flight = false;
        if (r < 0) {
                log_debug_errno(r, "Control connection: cannot send reply: %m");
                connection_kill(c);
                return r;
        }
        connection_update_events(c);
        return 0;
}

int control_reply(ControlConnection *c, struct json_object *parameters) {
        struct json_object *m = varlink_reply_new(parameters, false);
        if (!m)
                return -ENOMEM;
        return connection_send(c, m, true);
}

int control_reply_more(ControlConnection *c, struct json_object *parameters) {
        struct json_object *m;

        if (!c->call_more)
                return control_reply(c, parameters);
        m = varlink_reply_new(parameters, true);
        if (!m)
                return -ENOMEM;
        return connection_send(c, m, false);
}

int control_reply_error(ControlConnection *c, const char *error, struct json_object *parameters) {
        struct json_object *m = varlink_error_new(error, parameters);
        if (!m)
                return -ENOMEM;
        return connection_send(c, m, true);
}

static int reply_error_string(ControlConnection *c, const char *error, const char *key, const char *value) {
        struct json_object *p = json_object_new_object();

        if (!p)
                return -ENOMEM;
        if (key && json_object_object_add(p, key, json_object_new_string(value)) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return control_reply_error(c, error, p);
}

int control_reply_invalid_parameter(ControlConnection *c, const char *name) {
        return reply_error_string(c, VARLINK_ERROR_INVALID_PARAMETER, "parameter", name);
}

const ControlPeer *control_connection_peer(const ControlConnection *c) {
        return &c->peer;
}

void control_connection_set_close_callback(ControlConnection *c, ControlCloseCallback cb, void *userdata) {
        c->close_cb = cb;
        c->close_userdata = userdata;
}

bool control_connection_more(const ControlConnection *c) {
        return c->call_more;
}

static const RegisteredInterface *find_interface(const ControlServer *s, const char *name, size_t len) {
        for (size_t i = 0; i < s->n_interfaces; i++)
                if (strlen(s->interfaces[i].iface->name) == len &&
                    strncmp(s->interfaces[i].iface->name, name, len) == 0)
                        return &s->interfaces[i];
        return NULL;
}

static int service_get_info(ControlConnection *c) {
        ControlServer *s = c->server;
        struct json_object *p, *ifaces;

        p = json_object_new_object();
        ifaces = json_object_new_array();
        if (!p || !ifaces) {
                json_object_put(p);
                json_object_put(ifaces);
                return -ENOMEM;
        }
        json_object_object_add(p, "vendor", json_object_new_string("alknet"));
        json_object_object_add(p, "product", json_object_new_string("alknetd"));
        json_object_object_add(p, "version", json_object_new_string(PACKAGE_VERSION));
        json_object_object_add(p, "url", json_object_new_string("man:alknetd(8)"));
        json_object_array_add(ifaces, json_object_new_string(VARLINK_SERVICE_INTERFACE));
        for (size_t i = 0; i < s->n_interfaces; i++)
                json_object_array_add(ifaces, json_object_new_string(s->interfaces[i].iface->name));
        json_object_object_add(p, "interfaces", ifaces);
        return control_reply(c, p);
}

static int service_get_interface_description(ControlConnection *c, struct json_object *parameters) {
        struct json_object *v, *p;
        const RegisteredInterface *ri;
        const char *name, *description;

        if (!json_object_object_get_ex(parameters, "interface", &v) || !json_object_is_type(v, json_type_string))
                return control_reply_invalid_parameter(c, "interface");
        name = json_object_get_string(v);

        if (streq(name, VARLINK_SERVICE_INTERFACE))
                description = varlink_service_description;
        else if ((ri = find_interface(c->server, name, strlen(name))))
                description = ri->iface->description;
        else
                return reply_error_string(c, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", name);

        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        json_object_object_add(p, "description", json_object_new_string(description));
        return control_reply(c, p);
}

static int dispatch(ControlConnection *c, struct json_object *msg) {
        ControlServer *s = c->server;
        const RegisteredInterface *ri;
        const ControlMethod *method = NULL;
        const char *dot, *member;
        VarlinkCall call;
        int r;

        r = varlink_call_parse(msg, &call);
        if (r < 0)
                return r; /* not a call at all: a protocol error, the connection ends */

        c->in_flight = true;
        c->call_oneway = call.oneway;
        c->call_more = call.more && !call.oneway;
        (void) sd_event_now(s->event, CLOCK_MONOTONIC, &c->last_active);

        dot = strrchr(call.method, '.');
        member = dot + 1;

        if ((size_t) (dot - call.method) == strlen(VARLINK_SERVICE_INTERFACE) &&
            strncmp(call.method, VARLINK_SERVICE_INTERFACE, (size_t) (dot - call.method)) == 0) {
                if (streq(member, "GetInfo"))
                        return service_get_info(c);
                if (streq(member, "GetInterfaceDescription"))
                        return service_get_interface_description(c, call.parameters);
                return reply_error_string(c, VARLINK_ERROR_METHOD_NOT_FOUND, "method", call.method);
        }

        ri = find_interface(s, call.method, (size_t) (dot - call.method));
        if (!ri) {
                _cleanup_(freep) char *iface = strndup(call.method, (size_t) (dot - call.method));
                if (!iface)
                        return -ENOMEM;
                return reply_error_string(c, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", iface);
        }
        for (size_t i = 0; i < ri->iface->n_methods; i++)
                if (streq(ri->iface->methods[i].name, member)) {
                        method = &ri->iface->methods[i];
                        break;
                }
        if (!method)
                return reply_error_string(c, VARLINK_ERROR_METHOD_NOT_FOUND, "method", call.method);

        if (method->privileged && !(s->authorizer && s->authorizer(&c->peer, s->authorizer_userdata))) {
                log_info("Refused %s to uid %u (pid %d): not an admin.", call.method, (unsigned) c->peer.uid,
                         (int) c->peer.pid);
                return reply_error_string(c, ri->iface->permission_denied_error, "method", call.method);
        }

        r = method->handler(c, call.parameters, ri->userdata);
        if (r < 0 && c->in_flight && !c->dead) {
                if (r == -EINVAL || r == -EBADMSG)
                        return control_reply_invalid_parameter(c, "");
                return log_error_errno(r, "Failed to handle %s: %m", call.method);
        }
        return 0;
}

/* Runs the calls that are buffered, one at a time, while output has room. */
static void connection_process(ControlConnection *c) {
        while (!c->dead && !c->in_flight && out_pending(c) < c->server->limits.max_output) {
                _cleanup_(json_object_putp) struct json_object *msg = NULL;
                int r;

                r = varlink_framer_next(&c->framer, &msg);
                if (r == 0)
                        break;
                if (r < 0) {
                        log_debug_errno(r, "Control connection from uid %u sent a bad message, closing: %m",
                                        (unsigned) c->peer.uid);
                        connection_kill(c);
                        return;
                }
                r = dispatch(c, msg);
                if (r < 0 && !c->dead) {
                        connection_kill(c);
                        return;
                }
        }
        if (c->dead)
                return;

        if (c->read_eof && !c->in_flight && out_pending(c) == 0) {
                /* The peer finished sending and has every answer: done. A partial message
                 * left behind is a missing NUL and changes nothing here. */
                connection_kill(c);
                return;
        }
        connection_update_events(c);
}

static int connection_read(ControlConnection *c) {
        char buf[CONTROL_READ_CHUNK];
        ssize_t n;
        int r;

        n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                return -errno;
        }
        if (n == 0) {
                c->read_eof = true;
                return 0;
        }
        r = varlink_framer_feed(&c->framer, buf, (size_t) n);
        if (r < 0)
                return log_debug_errno(r, "Control connection from uid %u: message over the limit, closing: %m",
                                       (unsigned) c->peer.uid);
        return 0;
}

static int connection_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        ControlConnection *c = userdata;
        int r = 0;

        c->busy++;
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                if (!c->read_eof && !c->in_flight)
                        r = connection_read(c);
        if (r >= 0 && (revents & EPOLLOUT))
                r = connection_flush(c);
        if (r >= 0 && (revents & (EPOLLHUP | EPOLLERR)) && (c->in_flight || c->read_eof))
                /* Gone for good; nobody can read our answer. */
                r = -ECONNRESET;
        if (r < 0)
                c->dead = true;
        else
                connection_process(c);
        c->busy--;

        if (c->dead)
                connection_kill(c);
        return 0;
}

static int read_peer(int fd, ControlPeer *ret) {
        struct ucred cred;
        socklen_t len = sizeof cred;
        _cleanup_(freep) gid_t *groups = NULL;
        socklen_t glen;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;

        glen = 64 * sizeof(gid_t);
        for (;;) {
                gid_t *g = realloc(groups, glen);
                if (!g)
                        return -ENOMEM;
                groups = g;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) >= 0)
                        break;
                if (errno != ERANGE || glen > NGROUPS_MAX * sizeof(gid_t))
                        return -errno;
        }

        *ret = (ControlPeer) {
                .pid = cred.pid,
                .uid = cred.uid,
                .gid = cred.gid,
                .groups = TAKE_PTR(groups),
                .n_groups = glen / sizeof(gid_t),
        };
        return 0;
}

int control_server_add_connection(ControlServer *s, int fd, ControlConnection **ret) {
        ControlConnection *c;
        int r;

        c = calloc(1, sizeof *c);
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->server = s;
        c->fd = fd;
        varlink_framer_init(&c->framer, s->limits.max_message_size, s->limits.max_depth);
        (void) sd_event_now(s->event, CLOCK_MONOTONIC, &c->last_active);

        c->next = s->connections;
        if (c->next)
                c->next->prev = c;
        s->connections = c;
        s->n_connections++;

        r = read_peer(fd, &c->peer);
        if (r >= 0)
                r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN, connection_io, c);
        if (r < 0) {
                connection_free(c);
                return r;
        }
        (void) sd_event_source_set_description(c->io, "control-connection");
        if (ret)
                *ret = c;
        return 0;
}

/* At the connection limit the peer that has been quiet longest makes room; a peer waiting
 * for an answer is never dropped. With none to drop, the newcomer is. */
static bool make_room(ControlServer *s) {
        ControlConnection *victim = NULL;

        for (ControlConnection *c = s->connections; c; c = c->next)
                if (!c->in_flight && c->busy == 0 && (!victim || c->last_active <= victim->last_active))
                        victim = c;
        if (!victim)
                return false;
        log_debug("Control connections at the limit (%u): closing an idle one from uid %u.",
                  s->limits.max_connections, (unsigned) victim->peer.uid);
        connection_kill(victim);
        return true;
}

static int listen_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        ControlServer *s = userdata;

        for (unsigned i = 0; i < CONTROL_ACCEPT_BATCH; i++) {
                int cfd, r;

                cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        bool next;

                        /* Out of fds or memory: the connections already open are still served. */
                        (void) accept_pause_handle(&s->listen_pause, s->listen_io, errno, "the control socket", &next);
                        if (next)
                                continue;
                        return 0;
                }
                if (s->n_connections >= s->limits.max_connections && !make_room(s)) {
                        safe_close(cfd);
                        continue;
                }
                r = control_server_add_connection(s, cfd, NULL);
                if (r < 0)
                        log_warning_errno(r, "Failed to set up control connection: %m");
        }
        return 0;
}

static void limits_normalize(ControlLimits *l) {
        if (l->max_connections == 0)
                l->max_connections = 64;
        if (l->max_message_size == 0)
                l->max_message_size = VARLINK_MESSAGE_SIZE_MAX_DEFAULT;
        if (l->max_depth <= 0)
                l->max_depth = CONTROL_MAX_DEPTH_DEFAULT;
        if (l->max_output == 0)
                l->max_output = CONTROL_MAX_OUTPUT_DEFAULT;
}

int control_server_new(sd_event *event, const ControlLimits *limits, ControlServer **ret) {
        ControlServer *s;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->listen_fd = -EBADF;
        if (limits)
                s->limits = *limits;
        limits_normalize(&s->limits);
        *ret = s;
        return 0;
}

ControlServer *control_server_free(ControlServer *s) {
        if (!s)
                return NULL;
        while (s->connections)
                connection_free(s->connections);
        accept_pause_done(&s->listen_pause);
        sd_event_source_disable_unref(s->listen_io);
        safe_close(s->listen_fd);
        if (s->bound_path) {
                (void) unlink(s->bound_path);
                free(s->bound_path);
        }
        free(s->interfaces);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

void control_server_set_limits(ControlServer *s, const ControlLimits *limits) {
        /* Connections already open keep the message size they started with: shrinking a
         * framer under bytes it already holds would break its accounting. */
        s->limits = *limits;
        limits_normalize(&s->limits);
}

void control_server_set_authorizer(ControlServer *s, ControlAuthorizer a, void *userdata) {
        s->authorizer = a;
        s->authorizer_userdata = userdata;
}

int control_server_add_interface(ControlServer *s, const ControlInterface *iface, void *userdata) {
        RegisteredInterface *a;

        a = realloc(s->interfaces, (s->n_interfaces + 1) * sizeof *a);
        if (!a)
                return -ENOMEM;
        s->interfaces = a;
        a[s->n_interfaces++] = (RegisteredInterface) { .iface = iface, .userdata = userdata };
        return 0;
}

int control_server_listen_fd(ControlServer *s, int fd) {
        int flags, r;

        if (s->listen_io)
                return -EBUSY;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        r = sd_event_add_io(s->event, &s->listen_io, fd, EPOLLIN, listen_io, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(s->listen_io, "control-listen");
        s->listen_fd = fd;
        return 0;
}

int control_server_listen_path(ControlServer *s, const char *path, mode_t mode) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_(closep) int fd = -EBADF;
        struct stat st;
        int r;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* A socket left by an earlier run is replaced; any other file is not ours to remove. */
        if (lstat(path, &st) >= 0) {
                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                (void) unlink(path);
        }
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        if (chmod(path, mode) < 0 || listen(fd, CONTROL_LISTEN_BACKLOG) < 0) {
                r = -errno;
                (void) unlink(path);
                return r;
        }
        s->bound_path = strdup(path);
        if (!s->bound_path) {
                (void) unlink(path);
                return -ENOMEM;
        }
        r = control_server_listen_fd(s, fd);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        return 0;
}

size_t control_server_n_connections(const ControlServer *s) {
        return s->n_connections;
}
