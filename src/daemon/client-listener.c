/* A client profile's local listeners: binds SOCKS Listen= and Local= addresses, accepts in
 * batches, hands SOCKS clients to a SocksServer and Local= clients straight to the
 * opener, and keeps the connections that wait in between. Destinations are never logged. */
#include <arpa/inet.h>
#include <assert.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "accept-pause.h"
#include "client-listener.h"
#include "log.h"
#include "socks-server.h"

typedef enum ListenerKind {
        LISTENER_SOCKS,
        LISTENER_LOCAL,
} ListenerKind;

typedef union SockaddrUnion {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage storage;
} SockaddrUnion;

typedef struct Listener {
        ClientListeners *owner;
        ListenerKind kind;
        int fd;
        sd_event_source *io;
        AcceptPause pause;
        char *address; /* bound address as text */

        /* Local= only: where its connections go. */
        char *target_host;
        uint16_t target_port;

        /* A unix socket file we created, identified so that we never unlink a file
         * someone else put there after us. */
        char *socket_path;
        dev_t socket_dev;
        ino_t socket_ino;
} Listener;

typedef struct SocksNode {
        ClientListeners *owner;
        struct SocksNode *prev, *next;
        SocksServer *server;
} SocksNode;

/* A Local= connection waiting for its channel. */
typedef struct PendingOpen {
        ClientListeners *owner;
        struct PendingOpen *prev, *next;
        int fd;
        sd_event_source *io;
        void *handle;
        unsigned in_open; /* > 0 while opener.open() is on the stack */
        bool finished;
} PendingOpen;

struct ClientListeners {
        sd_event *event;
        ChannelOpener opener;
        ClientListenersLimits limits;

        char *username;
        char *password; /* wiped on free */

        Listener *listeners;
        size_t n_listeners;
        char **socks_addresses;
        size_t n_socks_addresses;
        char **local_addresses;
        size_t n_local_addresses;

        SocksNode *socks;
        unsigned n_handshakes;
        PendingOpen *pending;
        unsigned n_pending;
};

static void socks_node_free(SocksNode *n) {
        ClientListeners *l = n->owner;

        if (n->prev)
                n->prev->next = n->next;
        else
                l->socks = n->next;
        if (n->next)
                n->next->prev = n->prev;
        l->n_handshakes--;
        socks_server_free(n->server);
        free(n);
}

static void socks_done(SocksServer *s, void *userdata) {
        socks_node_free(userdata);
}

static void pending_free(PendingOpen *p) {
        ClientListeners *l = p->owner;

        if (p->prev)
                p->prev->next = p->next;
        else
                l->pending = p->next;
        if (p->next)
                p->next->prev = p->prev;
        l->n_pending--;

        if (p->handle)
                l->opener.cancel(l->opener.ctx, p->handle);
        sd_event_source_disable_unref(p->io);
        safe_close(p->fd);
        free(p);
}

static void pending_opened(int r, int ssh_reason, void *userdata) {
        PendingOpen *p = userdata;

        p->handle = NULL;
        if (r < 0)
                /* Nothing to tell a plain stream client: it sees the close. */
                log_debug_errno(r, "Local forward: channel open failed (SSH reason %d): %m", ssh_reason);
        else {
                /* Off our epoll before the opener adds the fd to its own. */
                p->io = sd_event_source_disable_unref(p->io);
                p->fd = -EBADF;
        }
        p->finished = true;
        if (p->in_open == 0)
                pending_free(p);
}

static int pending_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        PendingOpen *p = userdata;

        /* Only hangup and error reach us (we ask for no events). An error (a reset) means
         * the client is gone: give up the open. A plain hangup may still leave data the
         * client wants delivered (a unix client that wrote and closed), so the open goes on
         * and we stop listening for what would otherwise be reported for ever. */
        if (revents & EPOLLERR) {
                pending_free(p);
                return 0;
        }
        (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
        return 0;
}

static void local_accepted(Listener *li, int fd, const char *orig_host, uint16_t orig_port) {
        ClientListeners *l = li->owner;
        ChannelOpenRequest req = {
                .host = li->target_host,
                .port = li->target_port,
                .fd = fd,
                .orig_host = orig_host,
                .orig_port = orig_port,
        };
        PendingOpen *p;
        void *handle = NULL;
        int r;

        p = calloc(1, sizeof *p);
        if (!p) {
                safe_close(fd);
                return;
        }
        p->owner = l;
        p->fd = fd;
        p->next = l->pending;
        if (p->next)
                p->next->prev = p;
        l->pending = p;
        l->n_pending++;

        r = sd_event_add_io(l->event, &p->io, fd, 0, pending_io, p);
        if (r < 0) {
                log_debug_errno(r, "Local forward: cannot watch connection: %m");
                pending_free(p);
                return;
        }
        (void) sd_event_source_set_description(p->io, "local-forward-pending");

        p->in_open++;
        r = l->opener.open(l->opener.ctx, &req, pending_opened, p, &handle);
        p->in_open--;

        if (p->finished)
                pending_free(p); /* the callback ran inside open() */
        else if (r < 0) {
                log_debug_errno(r, "Local forward: cannot start channel open: %m");
                pending_free(p);
        } else
                p->handle = handle;
}

static void socks_accepted(Listener *li, int fd, const char *orig_host, uint16_t orig_port) {
        ClientListeners *l = li->owner;
        SocksServerConfig config = {
                .username = l->username,
                .password = l->password,
                .orig_host = orig_host,
                .orig_port = orig_port,
                .handshake_timeout_usec = l->limits.handshake_timeout_usec,
        };
        SocksNode *n;
        int r;

        n = calloc(1, sizeof *n);
        if (!n) {
                safe_close(fd);
                return;
        }
        r = socks_server_new(l->event, fd, &config, &l->opener, socks_done, n, &n->server);
        if (r < 0) {
                log_debug_errno(r, "SOCKS connection: cannot set up: %m");
                free(n);
                return;
        }
        n->owner = l;
        n->next = l->socks;
        if (n->next)
                n->next->prev = n;
        l->socks = n;
        l->n_handshakes++;
}

static int listener_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Listener *li = userdata;
        ClientListeners *l = li->owner;

        for (unsigned i = 0; i < CLIENT_LISTENERS_ACCEPT_BATCH; i++) {
                SockaddrUnion sa = {};
                socklen_t salen = sizeof sa;
                char host[INET6_ADDRSTRLEN];
                uint16_t port;
                int cfd;

                cfd = accept4(fd, &sa.sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        bool next;

                        (void) accept_pause_handle(&li->pause, li->io, errno, li->address, &next);
                        if (next)
                                continue; /* that client is gone already */
                        return 0;
                }

                if (li->kind == LISTENER_SOCKS ? l->n_handshakes >= l->limits.max_handshakes
                                               : l->n_pending >= l->limits.max_pending_opens) {
                        safe_close(cfd);
                        continue;
                }

                if (sa.sa.sa_family == AF_INET || sa.sa.sa_family == AF_INET6) {
                        const void *addr = sa.sa.sa_family == AF_INET ? (const void *) &sa.in.sin_addr
                                                                      : (const void *) &sa.in6.sin6_addr;
                        if (!inet_ntop(sa.sa.sa_family, addr, host, sizeof host)) {
                                safe_close(cfd);
                                continue;
                        }
                        port = ntohs(sa.sa.sa_family == AF_INET ? sa.in.sin_port : sa.in6.sin6_port);
                        (void) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &(int) { 1 }, sizeof(int));
                } else {
                        strcpy(host, CLIENT_LISTENERS_UNIX_ORIG_HOST);
                        port = CLIENT_LISTENERS_UNIX_ORIG_PORT;
                }

                if (li->kind == LISTENER_SOCKS)
                        socks_accepted(li, cfd, host, port);
                else
                        local_accepted(li, cfd, host, port);
        }
        return 0;
}

static int format_sockaddr(const SockaddrUnion *sa, char **ret) {
        char host[INET6_ADDRSTRLEN];
        char *s;
        int r;

        if (sa->sa.sa_family == AF_INET) {
                if (!inet_ntop(AF_INET, &sa->in.sin_addr, host, sizeof host))
                        return -errno;
                r = asprintf(&s, "%s:%u", host, (unsigned) ntohs(sa->in.sin_port));
        } else if (sa->sa.sa_family == AF_INET6) {
                if (!inet_ntop(AF_INET6, &sa->in6.sin6_addr, host, sizeof host))
                        return -errno;
                r = asprintf(&s, "[%s]:%u", host, (unsigned) ntohs(sa->in6.sin6_port));
        } else
                return -EAFNOSUPPORT;
        if (r < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int bind_inet(Listener *li, const Address *a) {
        _cleanup_(closep) int fd = -EBADF;
        SockaddrUnion sa = {};
        socklen_t salen;

        if (inet_pton(AF_INET, a->host, &sa.in.sin_addr) == 1) {
                sa.in.sin_family = AF_INET;
                sa.in.sin_port = htons(a->port);
                salen = sizeof sa.in;
        } else if (inet_pton(AF_INET6, a->host, &sa.in6.sin6_addr) == 1) {
                sa.in6.sin6_family = AF_INET6;
                sa.in6.sin6_port = htons(a->port);
                salen = sizeof sa.in6;
        } else
                return -EINVAL; /* listen addresses are IP literals; we never resolve them */

        fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* A restart must not wait for the TIME_WAIT connections of the previous run. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int) { 1 }, sizeof(int)) < 0)
                return -errno;
        /* [::] means IPv6 only: 0.0.0.0 is a listener of its own, and a profile that
         * listens on both must be able to bind both. */
        if (sa.sa.sa_family == AF_INET6 &&
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int) { 1 }, sizeof(int)) < 0)
                return -errno;
        if (bind(fd, &sa.sa, salen) < 0)
                return -errno;
        if (listen(fd, CLIENT_LISTENERS_BACKLOG) < 0)
                return -errno;

        salen = sizeof sa;
        if (getsockname(fd, &sa.sa, &salen) < 0)
                return -errno;
        free(li->address);
        li->address = NULL;
        if (format_sockaddr(&sa, &li->address) < 0)
                return -ENOMEM;

        li->fd = TAKE_FD(fd);
        return 0;
}

/* A socket file with nobody listening is left over from an earlier run: replace it. One
 * with a listener belongs to someone else (-EADDRINUSE); any other kind of file is not
 * ours to remove (-EEXIST). */
static int remove_stale_socket(const char *path, const struct sockaddr_un *sa) {
        _cleanup_(closep) int probe = -EBADF;
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;

        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (probe < 0)
                return -errno;
        if (connect(probe, (const struct sockaddr *) sa, sizeof *sa) >= 0 || errno == EAGAIN)
                return -EADDRINUSE;
        if (errno != ECONNREFUSED)
                return -errno;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static int bind_unix(Listener *li, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_(closep) int fd = -EBADF;
        struct stat st;
        mode_t old_umask;
        int r;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        r = remove_stale_socket(path, &sa);
        if (r < 0)
                return r;

        /* The file is born with the final mode: no moment in which others may connect. */
        old_umask = umask(0777 & ~CLIENT_LISTENERS_SOCKET_MODE);
        r = bind(fd, (const struct sockaddr *) &sa, sizeof sa);
        if (r < 0)
                r = -errno;
        (void) umask(old_umask);
        if (r < 0)
                return r;

        if (lstat(path, &st) < 0 || listen(fd, CLIENT_LISTENERS_BACKLOG) < 0) {
                r = -errno;
                (void) unlink(path);
                return r;
        }
        li->socket_path = strdup(path);
        if (!li->socket_path) {
                (void) unlink(path);
                return -ENOMEM;
        }
        li->socket_dev = st.st_dev;
        li->socket_ino = st.st_ino;
        li->fd = TAKE_FD(fd);
        return 0;
}

static void listener_done(Listener *li) {
        struct stat st;

        accept_pause_done(&li->pause);
        li->io = sd_event_source_disable_unref(li->io);
        li->fd = safe_close(li->fd);
        if (li->socket_path && lstat(li->socket_path, &st) >= 0 && st.st_dev == li->socket_dev &&
            st.st_ino == li->socket_ino)
                (void) unlink(li->socket_path);
        free(li->socket_path);
        free(li->address);
        free(li->target_host);
}

_printf_(2, 3) static void set_error_what(char **error_what, const char *fmt, ...) {
        va_list ap;

        if (!error_what)
                return;
        va_start(ap, fmt);
        if (vasprintf(error_what, fmt, ap) < 0)
                *error_what = NULL;
        va_end(ap);
}

static int listener_add(ClientListeners *l, ListenerKind kind, const Address *listen, const Address *target,
                        char **error_what) {
        Listener *li = &l->listeners[l->n_listeners];
        char **list = kind == LISTENER_SOCKS ? l->socks_addresses : l->local_addresses;
        size_t *n_list = kind == LISTENER_SOCKS ? &l->n_socks_addresses : &l->n_local_addresses;
        int r;

        *li = (Listener) { .owner = l, .kind = kind, .fd = -EBADF };
        l->n_listeners++; /* from here on listener_done() cleans up whatever is set */

        /* The configured form names the listener in errors; it becomes the bound form
         * once bound (the port may have been 0). */
        r = address_format(listen, &li->address);
        if (r < 0)
                return r;

        if (kind == LISTENER_LOCAL) {
                if (!target->host)
                        r = -EINVAL; /* Local= targets are host:port; the parser ensures it */
                else if (!(li->target_host = strdup(target->host)))
                        r = -ENOMEM;
                li->target_port = target->port;
        }
        if (r >= 0)
                r = listen->path ? bind_unix(li, listen->path) : listen->host ? bind_inet(li, listen) : -EINVAL;
        if (r >= 0)
                r = sd_event_add_io(l->event, &li->io, li->fd, EPOLLIN, listener_io, li);
        if (r >= 0)
                (void) sd_event_source_set_description(li->io, kind == LISTENER_SOCKS ? "socks-listener"
                                                                                     : "local-listener");
        if (r >= 0 && !(list[(*n_list)++] = strdup(li->address)))
                r = -ENOMEM;
        if (r < 0)
                set_error_what(error_what, "%s listener %s", kind == LISTENER_SOCKS ? "SOCKS" : "Local=",
                               strna(li->address));
        return r;
}

static int read_password_file(const char *path, char **ret) {
        _cleanup_(closep) int fd = -EBADF;
        char buf[CLIENT_LISTENERS_CREDENTIAL_MAX + 3]; /* + "\r\n" + one byte too many */
        size_t n = 0;
        struct stat st;
        int r = 0;

        /* O_NONBLOCK: a FIFO must not hang the loop in open(); it is refused below. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;

        while (n < sizeof buf) {
                ssize_t k = read(fd, buf + n, sizeof buf - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        if (r >= 0 && n == sizeof buf)
                r = -E2BIG;
        if (r >= 0) {
                if (n > 0 && buf[n - 1] == '\n')
                        n--;
                if (n > 0 && buf[n - 1] == '\r')
                        n--;
                if (n > CLIENT_LISTENERS_CREDENTIAL_MAX)
                        r = -E2BIG;
                else if (n == 0 || memchr(buf, '\0', n))
                        r = -EINVAL; /* empty, or not representable as the C string we compare */
        }
        if (r >= 0) {
                *ret = strndup(buf, n);
                if (!*ret)
                        r = -ENOMEM;
        }
        explicit_bzero(buf, sizeof buf);
        return r;
}

int client_listeners_new(
                sd_event *event,
                const Profile *p,
                const ChannelOpener *opener,
                const ClientListenersLimits *limits,
                ClientListeners **ret,
                char **error_what) {

        _cleanup_(client_listeners_freep) ClientListeners *l = NULL;
        const Address *socks;
        size_t n_socks;
        int r;

        assert(event);
        assert(p);
        assert(opener && opener->open && opener->cancel);
        assert(ret);

        if (error_what)
                *error_what = NULL;

        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->event = sd_event_ref(event);
        l->opener = *opener;
        if (limits)
                l->limits = *limits;
        if (l->limits.max_handshakes == 0)
                l->limits.max_handshakes = CLIENT_LISTENERS_HANDSHAKES_MAX_DEFAULT;
        if (l->limits.max_pending_opens == 0)
                l->limits.max_pending_opens = CLIENT_LISTENERS_PENDING_OPENS_MAX_DEFAULT;

        n_socks = profile_socks_listen(p, &socks);

        if (n_socks > 0 && (p->socks_username || p->socks_password_file)) {
                if (!p->socks_username || !p->socks_password_file) {
                        set_error_what(error_what, "Username= and PasswordFile= (set both or neither)");
                        return -EINVAL;
                }
                if (strlen(p->socks_username) == 0 || strlen(p->socks_username) > CLIENT_LISTENERS_CREDENTIAL_MAX) {
                        set_error_what(error_what, "Username= (1-255 bytes)");
                        return -EINVAL;
                }
                l->username = strdup(p->socks_username);
                if (!l->username)
                        return -ENOMEM;
                r = read_password_file(p->socks_password_file, &l->password);
                if (r < 0) {
                        set_error_what(error_what, "PasswordFile= %s", p->socks_password_file);
                        return r;
                }
        }

        l->listeners = calloc(n_socks + p->n_local, sizeof *l->listeners);
        l->socks_addresses = calloc(n_socks + 1, sizeof(char *));
        l->local_addresses = calloc(p->n_local + 1, sizeof(char *));
        if (!l->listeners || !l->socks_addresses || !l->local_addresses)
                return -ENOMEM;

        for (size_t i = 0; i < n_socks; i++) {
                r = listener_add(l, LISTENER_SOCKS, &socks[i], NULL, error_what);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < p->n_local; i++) {
                r = listener_add(l, LISTENER_LOCAL, &p->local[i].listen, &p->local[i].target, error_what);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(l);
        return 0;
}

ClientListeners *client_listeners_free(ClientListeners *l) {
        if (!l)
                return NULL;

        /* Stop accepting first, so nothing new arrives while the rest is torn down. */
        for (size_t i = 0; i < l->n_listeners; i++) {
                accept_pause_done(&l->listeners[i].pause);
                l->listeners[i].io = sd_event_source_disable_unref(l->listeners[i].io);
        }
        while (l->socks)
                socks_node_free(l->socks);
        while (l->pending)
                pending_free(l->pending);
        for (size_t i = 0; i < l->n_listeners; i++)
                listener_done(&l->listeners[i]);
        free(l->listeners);
        strv_free(l->socks_addresses);
        strv_free(l->local_addresses);
        free(l->username);
        erase_and_free(l->password);
        sd_event_unref(l->event);
        free(l);
        return NULL;
}

char *const *client_listeners_socks_addresses(const ClientListeners *l) {
        return l->socks_addresses;
}

char *const *client_listeners_local_addresses(const ClientListeners *l) {
        return l->local_addresses;
}

unsigned client_listeners_n_handshakes(const ClientListeners *l) {
        return l->n_handshakes;
}

unsigned client_listeners_n_pending_opens(const ClientListeners *l) {
        return l->n_pending;
}
