/* The server role. Each accepted connection becomes a ServerSession: an optional TLS
 * layer, then libssh's key exchange, public-key authentication and the forwarding
 * requests, all non-blocking and driven by the SshPump. Messages are taken from libssh
 * with ssh_message_get() (no server or message callbacks are set), so that a
 * direct-tcpip channel is confirmed only once the outgoing connection stands. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include <libssh/libssh.h>
#include <libssh/server.h>

#include "accept-pause.h"
#include "authorized-keys.h"
#include "dial.h"
#include "fingerprint.h"
#include "log.h"
#include "relay.h"
#include "ssh-auth.h"
#include "stealth.h"
#include "tls.h"
#include "server.h"
#include "ssh-pump.h"

#define SERVER_BANNER "Server"
#define SERVER_ACCEPT_BATCH 64u
#define SERVER_BACKLOG 1024
#define SERVER_HOST_KEY_NAME "ssh_host_ed25519_key"
#define SERVER_RESERVED_PREFIX "alknet-"
/* A StealthFallback= splice with no byte either way this long is closed (nginx's own
 * keepalive_timeout): it holds a session slot. */
#define SERVER_STEALTH_FALLBACK_IDLE_USEC (75 * USEC_PER_SEC)

typedef struct ServerSession ServerSession;
typedef struct ServerListener ServerListener;
typedef struct DirectOpen DirectOpen;
typedef struct ReverseOpen ReverseOpen;
typedef struct RemoteListener RemoteListener;

struct ServerListener {
        Server *server;
        ServerListener *next;
        int fd;
        ServerTransport transport;
        sd_event_source *io;
        AcceptPause pause;
};

/* A direct-tcpip request waiting for its outgoing connection. */
struct DirectOpen {
        ServerSession *session;
        DirectOpen *prev, *next;
        ssh_message msg;
        Dial *dial;
};

/* A forwarded-tcpip channel being opened towards the client for an accepted connection. */
struct ReverseOpen {
        ServerSession *session;
        ReverseOpen *prev, *next;
        ssh_channel channel;
        int fd;
};

/* A tcpip-forward listener. It belongs to a session, and may be taken over by a new
 * session of the same key while the old one has not noticed that its client is gone. */
struct RemoteListener {
        Server *server;
        RemoteListener *prev, *next;
        ServerSession *owner;
        char *requested_host; /* as the client asked, sent back in forwarded-tcpip */
        uint16_t port;        /* bound port */
        char *bind_host;
        char owner_key[FINGERPRINT_SIZE];
        char owner_user[64];
        int fd;
        sd_event_source *io;
        AcceptPause pause;
};

typedef enum SessionPhase {
        PHASE_TLS, /* TLS handshake and, with Stealth=yes, the look at the first bytes */
        PHASE_KEX,
        PHASE_AUTH,
        PHASE_OPEN,
} SessionPhase;

struct ServerSession {
        Server *server;
        ServerSession *prev, *next;
        char remote_addr[INET6_ADDRSTRLEN];
        struct sockaddr_storage peer;
        ServerTransport transport;
        uint64_t opened_at;
        SessionPhase phase;
        ssh_session session;
        int fd; /* given to libssh */
        TlsBridge *tls;
        Dial *fallback;
        SshPump *pump;
        sd_event_source *grace;
        unsigned auth_failures;
        char user[64];
        char key_fingerprint[FINGERPRINT_SIZE];
        ForwardPermissions grant;
        DirectOpen *directs;
        ReverseOpen *reverses;
        size_t n_pending;
        RelaySet *relays;
        struct ssh_counter_struct raw_counter;  /* packets, payload bytes */
        struct ssh_counter_struct sock_counter; /* bytes read from the socket */
        bool closing;
};

struct Server {
        sd_event *event;
        ServerConfig config;
        char *state_dir;
        ssh_bind bind;
        ssh_key host_key;
        SSL_CTX *tls_ctx; /* rebuilt on reload, so renewed certificates apply */
        AuthorizedKeys *authorized;  /* AuthorizedKeys= */
        AuthorizedKeys *trusted_cas; /* TrustedUserCAKeys= */
        ServerListener *listeners;
        ServerSession *sessions;
        size_t n_sessions;
        RemoteListener *remotes;
        bool accepting;

        uint64_t sessions_total;
        uint64_t auth_accepted, auth_rejected;
        uint64_t refused_limit;
        uint64_t channels_total;
};

static const char *transport_name(ServerTransport t) {
        return t == SERVER_TRANSPORT_TLS ? "tls" : "tcp";
}

/* ---- remote forward listeners ---- */

static void remote_listener_free(RemoteListener *l) {
        LIST_REMOVE(l->server->remotes, l);
        accept_pause_done(&l->pause);
        sd_event_source_disable_unref(l->io);
        safe_close(l->fd);
        free(l->requested_host);
        free(l->bind_host);
        free(l);
}

static void reverse_open_free(ReverseOpen *o, bool close_fd) {
        ServerSession *ss = o->session;

        LIST_REMOVE(ss->reverses, o);
        ss->n_pending--;
        if (o->channel)
                ssh_channel_free(o->channel);
        if (close_fd)
                safe_close(o->fd);
        free(o);
}

static void reverse_open_step(ReverseOpen *o) {
        ServerSession *ss = o->session;
        int rc, r;

        rc = ssh_channel_open_reverse_forward(o->channel, "", 0, "", 0); /* continues a pending open */
        if (rc == SSH_AGAIN)
                return;
        if (rc != SSH_OK) {
                reverse_open_free(o, true);
                return;
        }
        r = relay_set_start(ss->relays, ss->pump, o->channel, o->fd, NULL, 0);
        if (r < 0) {
                reverse_open_free(o, true);
                return;
        }
        o->channel = NULL;
        ss->server->channels_total++;
        reverse_open_free(o, false);
}

static int on_remote_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        RemoteListener *l = userdata;
        ServerSession *ss = l->owner;

        for (unsigned i = 0; i < SERVER_ACCEPT_BATCH; i++) {
                struct sockaddr_storage sa;
                socklen_t salen = sizeof sa;
                char peer[INET6_ADDRSTRLEN] = "127.0.0.1";
                uint16_t peer_port = 0;
                ReverseOpen *o;
                int cfd, one = 1, rc;

                cfd = accept4(fd, (struct sockaddr *) &sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        bool next;

                        (void) accept_pause_handle(&l->pause, l->io, errno, "a remote forward's port", &next);
                        if (next)
                                continue;
                        return 0;
                }
                if (!ss || ss->closing || ss->phase != PHASE_OPEN ||
                    relay_set_size(ss->relays) + ss->n_pending >= ss->server->config.max_channels) {
                        safe_close(cfd);
                        continue;
                }
                (void) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                if (sa.ss_family == AF_INET) {
                        inet_ntop(AF_INET, &((struct sockaddr_in *) &sa)->sin_addr, peer, sizeof peer);
                        peer_port = ntohs(((struct sockaddr_in *) &sa)->sin_port);
                } else if (sa.ss_family == AF_INET6) {
                        inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &sa)->sin6_addr, peer, sizeof peer);
                        peer_port = ntohs(((struct sockaddr_in6 *) &sa)->sin6_port);
                }

                o = calloc(1, sizeof *o);
                if (!o) {
                        safe_close(cfd);
                        continue;
                }
                o->session = ss;
                o->fd = cfd;
                o->channel = ssh_channel_new(ss->session);
                LIST_PREPEND(ss->reverses, o);
                ss->n_pending++;
                if (!o->channel) {
                        reverse_open_free(o, true);
                        continue;
                }
                rc = ssh_channel_open_reverse_forward(o->channel, l->requested_host, l->port, peer, peer_port);
                if (rc == SSH_AGAIN)
                        continue;
                if (rc != SSH_OK) {
                        reverse_open_free(o, true);
                        continue;
                }
                reverse_open_step(o);
        }
        if (ss)
                ssh_pump_kick(ss->pump);
        return 0;
}

static int bind_tcp(const char *host, uint16_t port, int backlog, uint16_t *ret_port) {
        struct sockaddr_storage sa = {};
        socklen_t len;
        _cleanup_(closep) int fd = -EBADF;
        int one = 1;

        if (inet_pton(AF_INET, host, &((struct sockaddr_in *) &sa)->sin_addr) == 1) {
                struct sockaddr_in *in = (struct sockaddr_in *) &sa;
                in->sin_family = AF_INET;
                in->sin_port = htons(port);
                len = sizeof *in;
        } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *) &sa)->sin6_addr) == 1) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &sa;
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                len = sizeof *in6;
        } else
                return -EINVAL;

        fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (sa.ss_family == AF_INET6)
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, (struct sockaddr *) &sa, len) < 0 || listen(fd, backlog) < 0)
                return -errno;
        if (ret_port) {
                len = sizeof sa;
                if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                        return -errno;
                *ret_port = ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *) &sa)->sin_port
                                                          : ((struct sockaddr_in6 *) &sa)->sin6_port);
        }
        return TAKE_FD(fd);
}

/* Where a tcpip-forward binds: loopback unless GatewayPorts=yes, as sshd does. */
static const char *remote_bind_host(const Server *s, const char *requested) {
        bool v6 = requested && strchr(requested, ':');

        if (!s->config.gateway_ports)
                return v6 ? "::1" : "127.0.0.1";
        if (isempty(requested) || streq(requested, "*") || streq(requested, "0.0.0.0"))
                return "0.0.0.0";
        if (streq(requested, "localhost"))
                return "127.0.0.1";
        return requested; /* an IP literal; a name fails in bind_tcp() */
}

static RemoteListener *find_remote(Server *s, const char *bind_host, uint16_t port) {
        for (RemoteListener *l = s->remotes; l; l = l->next)
                if (l->port == port && streq(l->bind_host, bind_host))
                        return l;
        return NULL;
}

/* ---- sessions ---- */

static void session_free(ServerSession *ss) {
        Server *s = ss->server;
        uint64_t duration = (clock_now_usec(CLOCK_MONOTONIC) - ss->opened_at) / USEC_PER_SEC;

        log_info("connection closed remote_addr=%s duration=%" PRIu64, ss->remote_addr, duration);

        LIST_REMOVE(s->sessions, ss);
        s->n_sessions--;
        for (RemoteListener *l = s->remotes, *next; l; l = next) {
                next = l->next;
                if (l->owner == ss)
                        remote_listener_free(l);
        }
        while (ss->directs) {
                DirectOpen *o = ss->directs;
                LIST_REMOVE(ss->directs, o);
                dial_cancel(o->dial);
                ssh_message_free(o->msg);
                free(o);
        }
        while (ss->reverses)
                reverse_open_free(ss->reverses, true);
        relay_set_free(ss->relays);
        sd_event_source_disable_unref(ss->grace);
        ssh_pump_free(ss->pump);
        if (ss->session) {
                if (ssh_is_connected(ss->session))
                        ssh_disconnect(ss->session);
                ssh_free(ss->session); /* closes fd */
        } else
                safe_close(ss->fd);
        dial_cancel(ss->fallback);
        tls_bridge_free(ss->tls);
        forward_permissions_done(&ss->grant);
        free(ss);
}

static void direct_open_free(DirectOpen *o) {
        ServerSession *ss = o->session;

        LIST_REMOVE(ss->directs, o);
        ss->n_pending--;
        dial_cancel(o->dial);
        if (o->msg)
                ssh_message_free(o->msg);
        free(o);
}

static void direct_dialed(int r, int fd, TunnelReason reason, void *userdata) {
        DirectOpen *o = userdata;
        ServerSession *ss = o->session;
        ssh_channel channel;

        o->dial = NULL;
        if (r < 0) {
                /* OutboundProxy= is the server's own setting: its failures (down, or
                 * refusing) are the admin's to see. Without the destination. */
                if (reason == TUNNEL_REASON_PROXY_FAILED)
                        log_warning_errno(r, "channel open failed remote_addr=%s reason=proxy-failed: %m",
                                          ss->remote_addr);
                else if (r == -EACCES)
                        log_info("channel open refused remote_addr=%s reason=denied-address", ss->remote_addr);
                /* libssh 0.10 can only answer "administratively prohibited" here. */
                (void) ssh_message_reply_default(o->msg);
                direct_open_free(o);
                ssh_pump_kick(ss->pump);
                return;
        }
        channel = ssh_message_channel_request_open_reply_accept(o->msg);
        if (!channel || relay_set_start(ss->relays, ss->pump, channel, fd, NULL, 0) < 0) {
                if (channel)
                        ssh_channel_free(channel);
                safe_close(fd);
        } else
                ss->server->channels_total++;
        direct_open_free(o);
        ssh_pump_kick(ss->pump);
}

/* The destination check: reserved names, the key's permitopen=, the server's policy. */
static bool direct_allowed(ServerSession *ss, const char *host, uint16_t port) {
        if (startswith(host, SERVER_RESERVED_PREFIX))
                return false;
        if (!permitopen_allows(&ss->grant, host, port))
                return false;
        return server_policy_allows(ss->server->config.permit_open, ss->server->config.deny_open, host, port);
}

/* Deny wins over what a name resolves to, too (a name for 127.0.0.1, DNS rebinding). */
static bool direct_address_allowed(const struct sockaddr *sa, socklen_t len, uint16_t port, void *userdata) {
        Server *s = userdata;

        return !server_policy_denies_address(s->config.deny_open, sa, port);
}

/* Returns true when it kept msg. */
static bool handle_direct(ServerSession *ss, ssh_message msg) {
        const char *host = ssh_message_channel_request_open_destination(msg);
        int port = ssh_message_channel_request_open_destination_port(msg);
        DialParams params = {};
        DirectOpen *o;
        int r;

        if (!host || port <= 0 || port > 65535 || !direct_allowed(ss, host, (uint16_t) port) ||
            relay_set_size(ss->relays) + ss->n_pending >= ss->server->config.max_channels)
                return false;
        if (ss->server->config.outbound_proxy_invalid || ss->server->config.policy_invalid) {
                log_warning("channel open failed remote_addr=%s reason=%s", ss->remote_addr,
                            ss->server->config.policy_invalid ? "policy-invalid" : "proxy-invalid");
                return false;
        }

        o = calloc(1, sizeof *o);
        if (!o)
                return false;
        o->session = ss;
        o->msg = msg;
        params.host = host;
        params.port = (uint16_t) port;
        params.proxy = ss->server->config.outbound_proxy;
        params.peer_target = true;
        params.filter = direct_address_allowed;
        params.filter_userdata = ss->server;
        r = dial_start(ss->server->event, &params, direct_dialed, o, &o->dial);
        if (r < 0) {
                free(o);
                return false;
        }
        LIST_PREPEND(ss->directs, o);
        ss->n_pending++;
        return true;
}

static unsigned remotes_of(const ServerSession *ss) {
        unsigned n = 0;

        for (const RemoteListener *l = ss->server->remotes; l; l = l->next)
                n += l->owner == ss;
        return n;
}

static void handle_forward(ServerSession *ss, ssh_message msg) {
        Server *s = ss->server;
        const char *requested = ssh_message_global_request_address(msg);
        int port = ssh_message_global_request_port(msg);
        const char *bind_host;
        RemoteListener *l;
        uint16_t bound = 0;
        int fd, r;

        if (port < 0 || port > 65535 || !permitlisten_allows(&ss->grant, strempty(requested), (uint16_t) port))
                goto refuse;
        bind_host = remote_bind_host(s, requested);

        l = port > 0 ? find_remote(s, bind_host, (uint16_t) port) : NULL;
        if (l) {
                /* The same key asking again for a port its own earlier session holds: that
                 * session's client is gone without a clean close. The new one takes over. */
                if (!streq(l->owner_key, ss->key_fingerprint) || !streq(l->owner_user, ss->user))
                        goto refuse;
                l->owner = ss;
                free(l->requested_host);
                l->requested_host = strdup(strempty(requested));
                log_info("remote forward taken over remote_addr=%s port=%u", ss->remote_addr, l->port);
                (void) ssh_message_global_request_reply_success(msg, l->port);
                return;
        }

        /* Each port is a descriptor and a port of the host's: one session gets a few. */
        if (remotes_of(ss) >= s->config.max_remote_forwards) {
                s->refused_limit++;
                log_info("remote forward refused remote_addr=%s reason=max-remote-forwards", ss->remote_addr);
                goto refuse;
        }
        fd = bind_tcp(bind_host, (uint16_t) port, SERVER_BACKLOG, &bound);
        if (fd < 0)
                goto refuse;
        l = calloc(1, sizeof *l);
        if (!l) {
                safe_close(fd);
                goto refuse;
        }
        l->server = s;
        l->owner = ss;
        l->fd = fd;
        l->port = bound;
        l->requested_host = strdup(strempty(requested));
        l->bind_host = strdup(bind_host);
        memcpy(l->owner_key, ss->key_fingerprint, sizeof l->owner_key);
        snprintf(l->owner_user, sizeof l->owner_user, "%s", ss->user);
        LIST_PREPEND(s->remotes, l);
        r = sd_event_add_io(s->event, &l->io, fd, EPOLLIN, on_remote_accept, l);
        if (r < 0 || !l->requested_host || !l->bind_host) {
                remote_listener_free(l);
                goto refuse;
        }
        (void) ssh_message_global_request_reply_success(msg, bound);
        return;

refuse:
        (void) ssh_message_reply_default(msg);
}

static void handle_cancel(ServerSession *ss, ssh_message msg) {
        int port = ssh_message_global_request_port(msg);
        const char *bind_host = remote_bind_host(ss->server, ssh_message_global_request_address(msg));
        RemoteListener *l = port > 0 && port <= 65535 ? find_remote(ss->server, bind_host, (uint16_t) port) : NULL;

        if (!l || l->owner != ss) {
                (void) ssh_message_reply_default(msg);
                return;
        }
        remote_listener_free(l);
        (void) ssh_message_global_request_reply_success(msg, 0);
}

/* The decision for one offered key, by ssh-auth.c, with the peer's address. */
static void check_key(ServerSession *ss, const char *user, ssh_key key, SshAuthResult *res) {
        _cleanup_(freep) char *b64 = NULL;
        _cleanup_(freep) uint8_t *blob = NULL;
        size_t size = 0;
        SshAuthRequest req = {
                .user = user,
                .peer = (const struct sockaddr *) &ss->peer,
                .now = (uint64_t) time(NULL),
        };

        /* libssh 0.10 exports no raw blob; its base64 form is the same bytes (for a
         * certificate: the whole certificate). */
        if (!key || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK || !b64 ||
            base64_decode(b64, strlen(b64), &blob, &size) < 0) {
                *res = (SshAuthResult) { .accepted = false, .reason = "bad-key" };
                return;
        }
        req.key_blob = blob;
        req.key_blob_size = size;
        if (ssh_auth_check(&req, ss->server->authorized, ss->server->trusted_cas, res) < 0)
                *res = (SshAuthResult) { .accepted = false, .reason = "bad-key" };
}

static void handle_auth(ServerSession *ss, ssh_message msg) {
        Server *s = ss->server;
        SshAuthResult res = {};
        _cleanup_(freep) char *user_escaped = NULL;
        const char *user;
        int state;

        if (ss->phase != PHASE_AUTH || ssh_message_subtype(msg) != SSH_AUTH_METHOD_PUBLICKEY) {
                /* "none" and anything but public keys: tell the client what works. */
                (void) ssh_message_auth_set_methods(msg, SSH_AUTH_METHOD_PUBLICKEY);
                (void) ssh_message_reply_default(msg);
                return;
        }

        user = strempty(ssh_message_auth_user(msg));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        state = ssh_message_auth_publickey_state(msg);
#pragma GCC diagnostic pop
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        check_key(ss, user, ssh_message_auth_pubkey(msg), &res);
#pragma GCC diagnostic pop
        /* Only a verified signature logs in. (libssh 0.10 drops a message whose signature
         * fails to verify before it reaches us: see BUGS in alknetd.conf(5).) */
        if (res.accepted && state != SSH_PUBLICKEY_STATE_NONE && state != SSH_PUBLICKEY_STATE_VALID)
                ssh_auth_result_reject(&res, "bad-signature");

        if (res.accepted && state == SSH_PUBLICKEY_STATE_NONE) {
                /* A probe: "would this key do?" The real attempt follows with a signature. */
                (void) ssh_message_auth_reply_pk_ok_simple(msg);
                ssh_auth_result_done(&res);
                return;
        }

        user_escaped = ssh_auth_log_escape(user);
        log_info("auth attempt remote_addr=%s user=%s key_fingerprint=%s result=%s%s%s", ss->remote_addr,
                 strna(user_escaped), res.fingerprint[0] ? res.fingerprint : "none",
                 res.accepted ? "accept" : "reject", res.log_fields ? " " : "", strempty(res.log_fields));

        if (!res.accepted) {
                s->auth_rejected++;
                (void) ssh_message_auth_set_methods(msg, SSH_AUTH_METHOD_PUBLICKEY);
                (void) ssh_message_reply_default(msg);
                ssh_auth_result_done(&res);
                if (++ss->auth_failures >= s->config.max_auth_tries) {
                        log_info("connection refused remote_addr=%s reason=max-auth-tries", ss->remote_addr);
                        ss->closing = true;
                }
                return;
        }

        s->auth_accepted++;
        (void) ssh_message_auth_reply_success(msg, 0);
        snprintf(ss->user, sizeof ss->user, "%s", user);
        memcpy(ss->key_fingerprint, res.fingerprint, sizeof ss->key_fingerprint);
        ss->grant = res.forward;
        res.forward = (ForwardPermissions) {};
        ssh_auth_result_done(&res);
        ss->phase = PHASE_OPEN;
        ss->grace = sd_event_source_disable_unref(ss->grace);
}

/* Returns true when it kept msg. */
static bool handle_message(ServerSession *ss, ssh_message msg) {
        int type = ssh_message_type(msg), subtype = ssh_message_subtype(msg);

        switch (type) {
        case SSH_REQUEST_AUTH:
                handle_auth(ss, msg);
                return false;
        case SSH_REQUEST_SERVICE:
                (void) ssh_message_service_reply_success(msg);
                return false;
        case SSH_REQUEST_CHANNEL_OPEN:
                if (ss->phase == PHASE_OPEN && subtype == SSH_CHANNEL_DIRECT_TCPIP && handle_direct(ss, msg))
                        return true;
                break; /* session, x11, agent, forwarded-tcpip from a client: refused */
        case SSH_REQUEST_GLOBAL:
                if (ss->phase == PHASE_OPEN && subtype == SSH_GLOBAL_REQUEST_TCPIP_FORWARD) {
                        handle_forward(ss, msg);
                        return false;
                }
                if (ss->phase == PHASE_OPEN && subtype == SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD) {
                        handle_cancel(ss, msg);
                        return false;
                }
                break;
        default:
                break; /* channel requests (shell, exec, subsystem, pty, env): refused */
        }
        (void) ssh_message_reply_default(msg);
        return false;
}

static int session_pump(SshPump *p, void *userdata) {
        ServerSession *ss = userdata;
        int rc;

        if (ss->phase == PHASE_KEX) {
                rc = ssh_handle_key_exchange(ss->session);
                if (rc == SSH_AGAIN)
                        return 0;
                if (rc != SSH_OK) {
                        log_debug("Key exchange with %s failed: %s", ss->remote_addr, ssh_get_error(ss->session));
                        session_free(ss);
                        return -ECANCELED;
                }
                ss->phase = PHASE_AUTH;
        }

        /* libssh reads at most 4 KiB per call: go on while the socket gives bytes (a 32 KiB
         * packet takes eight reads), and hand the relays what completed. */
        for (unsigned i = 0; !ss->closing; i++) {
                uint64_t before = ss->sock_counter.in_bytes, packets = ss->raw_counter.in_packets;
                ssh_message msg;

                if (i == 64) {
                        /* Still busy: come back after the other sources had a turn. */
                        ssh_pump_schedule(p);
                        break;
                }

                while (!ss->closing && (msg = ssh_message_get(ss->session)))
                        if (!handle_message(ss, msg))
                                ssh_message_free(msg);
                bool more = ss->sock_counter.in_bytes != before;
                if (!more || ss->raw_counter.in_packets != packets)
                        relay_set_process(ss->relays);
                /* A relay's read may itself have read the socket (libssh polls when a
                 * channel's buffer is empty) and fed a relay processed before it: go on
                 * until a round reads nothing at all. */
                if (ss->sock_counter.in_bytes == before)
                        break;
        }
        uint64_t settled = ss->sock_counter.in_bytes;
        for (ReverseOpen *o = ss->reverses, *next; o; o = next) {
                next = o->next;
                reverse_open_step(o);
        }
        /* Polling the opens may have read data for the relays too: one more pass for it. */
        if (ss->sock_counter.in_bytes != settled)
                ssh_pump_schedule(p);
        if (ss->closing || !ssh_is_connected(ss->session) ||
            (ssh_get_status(ss->session) & (SSH_CLOSED | SSH_CLOSED_ERROR))) {
                session_free(ss);
                return -ECANCELED;
        }
        return 0;
}

static int on_grace(sd_event_source *source, uint64_t usec, void *userdata) {
        ServerSession *ss = userdata;

        log_info("connection refused remote_addr=%s reason=login-grace-time", ss->remote_addr);
        session_free(ss);
        return 0;
}

static size_t sessions_from(const Server *s, const struct sockaddr_storage *peer) {
        size_t n = 0;
        for (const ServerSession *ss = s->sessions; ss; ss = ss->next)
                if (server_same_source(&ss->peer, peer))
                        n++;
        return n;
}

/* Runs libssh on fd: the accepted socket, or the local end of the TLS bridge. */
static int session_attach_ssh(ServerSession *ss, int fd) {
        Server *s = ss->server;
        int r;

        ss->fd = fd;
        ss->phase = PHASE_KEX;
        ss->session = ssh_new();
        if (!ss->session)
                return -ENOMEM;
        if (ssh_bind_accept_fd(s->bind, ss->session, fd) != SSH_OK) {
                log_debug("Cannot set up the SSH session: %s", ssh_get_error(s->bind));
                return -EIO;
        }
        ssh_set_counters(ss->session, &ss->sock_counter, &ss->raw_counter);
        ssh_set_blocking(ss->session, 0);
        ssh_set_auth_methods(ss->session, SSH_AUTH_METHOD_PUBLICKEY);

        r = ssh_pump_new(s->event, ss->session, fd, session_pump, ss, &ss->pump);
        if (r < 0)
                return r;
        ssh_pump_set_counter(ss->pump, &ss->raw_counter);
        ssh_pump_kick(ss->pump);
        return 0;
}

static void on_tls_ready(TlsBridge *b, int fd, const TlsInfo *info, void *userdata) {
        ServerSession *ss = userdata;

        if (session_attach_ssh(ss, fd) < 0)
                session_free(ss);
}

static void on_tls_failed(TlsBridge *b, TlsFailure failure, int error, const char *reason, void *userdata) {
        ServerSession *ss = userdata;

        log_debug("TLS handshake with %s failed (%s): %s", ss->remote_addr, tls_failure_to_string(failure),
                  strempty(reason));
        session_free(ss);
}

static void on_tls_closed(TlsBridge *b, int error, void *userdata) {
        ServerSession *ss = userdata;

        /* With libssh running on it, libssh notices the end and the pump frees the session;
         * after a decoy or a splice nobody else will. */
        if (!ss->session)
                session_free(ss);
}

static void fallback_dialed(int r, int fd, TunnelReason reason, void *userdata) {
        ServerSession *ss = userdata;

        ss->fallback = NULL;
        if (r < 0 || tls_bridge_splice(ss->tls, fd, SERVER_STEALTH_FALLBACK_IDLE_USEC) < 0) {
                if (r >= 0)
                        safe_close(fd);
                session_free(ss);
        }
}

/* Not an alknet client: look like the web server that port 443 suggests. */
static void answer_as_web_server(ServerSession *ss) {
        Server *s = ss->server;
        char decoy[STEALTH_DECOY_SIZE];
        int n;

        ss->grace = sd_event_source_disable_unref(ss->grace);
        if (s->config.stealth_fallback) {
                ServerListen l;
                char spec[300];
                DialParams params = {};

                snprintf(spec, sizeof spec, "tcp:%s", s->config.stealth_fallback);
                if (server_listen_parse(spec, &l) >= 0) {
                        params.host = l.host;
                        params.port = l.port;
                        if (tls_bridge_hold(ss->tls) >= 0 &&
                            dial_start(s->event, &params, fallback_dialed, ss, &ss->fallback) >= 0) {
                                free(l.host);
                                return;
                        }
                        free(l.host);
                }
                session_free(ss);
                return;
        }
        n = stealth_decoy_response(decoy, sizeof decoy, time(NULL));
        if (n < 0 || tls_bridge_send_and_close(ss->tls, decoy, (size_t) n) < 0)
                session_free(ss);
}

static void on_tls_peek(TlsBridge *b, const uint8_t *buf, size_t n, TlsPeekEvent event, void *userdata) {
        ServerSession *ss = userdata;
        StealthClass c = stealth_classify(buf, n);

        if (c == STEALTH_SSH) {
                /* No ALPN, but an SSH banner: an alknet or OpenSSH client behind a plain
                 * TLS wrapper (openssl s_client, stunnel). */
                if (tls_bridge_hand_over(b) < 0)
                        session_free(ss);
                return;
        }
        if (c == STEALTH_NEED_MORE && event == TLS_PEEK_DATA)
                return; /* wait for more, within the peek deadline */
        answer_as_web_server(ss);
}

/* An accepted connection becomes a session; TLS ones start with the handshake. */
static int session_start(Server *s, int fd, const struct sockaddr_storage *peer, const char *remote_addr,
                         ServerTransport transport) {
        static const TlsBridgeCallbacks tls_callbacks = {
                .ready = on_tls_ready,
                .peek = on_tls_peek,
                .failed = on_tls_failed,
                .closed = on_tls_closed,
        };
        ServerSession *ss;
        int r;

        ss = calloc(1, sizeof *ss);
        if (!ss) {
                safe_close(fd);
                return -ENOMEM;
        }
        ss->server = s;
        ss->fd = -EBADF;
        ss->peer = *peer;
        ss->transport = transport;
        ss->opened_at = clock_now_usec(CLOCK_MONOTONIC);
        snprintf(ss->remote_addr, sizeof ss->remote_addr, "%s", remote_addr);
        LIST_PREPEND(s->sessions, ss);
        s->n_sessions++;
        s->sessions_total++;
        log_info("connection opened remote_addr=%s transport=%s", remote_addr, transport_name(transport));

        r = relay_set_new(s->event, &ss->relays);
        if (r < 0)
                goto fail;
        /* One deadline for everything before authentication: TCP/TLS/SSH handshakes and
         * the auth exchange. A slow client holds only its own connection. */
        r = sd_event_add_time_relative(s->event, &ss->grace, CLOCK_MONOTONIC, s->config.login_grace_usec,
                                       USEC_PER_SEC / 10, on_grace, ss);
        if (r < 0)
                goto fail;

        if (transport == SERVER_TRANSPORT_TLS) {
                TlsBridgeParams params = {
                        .side = TLS_SIDE_SERVER,
                        .ctx = s->tls_ctx,
                        .handshake_timeout_usec = s->config.login_grace_usec,
                        .peek = s->config.stealth,
                };

                ss->phase = PHASE_TLS;
                if (!s->tls_ctx) {
                        r = -ENOKEY;
                        safe_close(fd);
                        goto fail;
                }
                r = tls_bridge_new(s->event, fd, &params, &tls_callbacks, ss, &ss->tls);
                if (r < 0) {
                        safe_close(fd); /* still ours when the bridge could not start */
                        goto fail;
                }
                return 0;
        }
        r = session_attach_ssh(ss, fd);
        if (r < 0)
                goto fail;
        return 0;

fail:
        session_free(ss);
        return r;
}

static void peer_address(const struct sockaddr_storage *sa, char *buf, size_t size) {
        if (sa->ss_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, buf, (socklen_t) size);
        else if (sa->ss_family == AF_INET6) {
                const struct in6_addr *a = &((const struct sockaddr_in6 *) sa)->sin6_addr;
                if (IN6_IS_ADDR_V4MAPPED(a))
                        inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t) size);
                else
                        inet_ntop(AF_INET6, a, buf, (socklen_t) size);
        } else
                snprintf(buf, size, "unknown");
}

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        ServerListener *l = userdata;
        Server *s = l->server;

        for (unsigned i = 0; i < SERVER_ACCEPT_BATCH; i++) {
                struct sockaddr_storage sa = {};
                socklen_t len = sizeof sa;
                char addr[INET6_ADDRSTRLEN];
                int cfd, one = 1;

                cfd = accept4(fd, (struct sockaddr *) &sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        bool next;

                        (void) accept_pause_handle(&l->pause, l->io, errno, "the server's listener", &next);
                        if (next)
                                continue;
                        return 0;
                }
                peer_address(&sa, addr, sizeof addr);
                if (!s->accepting) {
                        safe_close(cfd);
                        continue;
                }
                if (s->n_sessions >= s->config.max_sessions) {
                        s->refused_limit++;
                        log_info("connection refused remote_addr=%s reason=max-sessions", addr);
                        safe_close(cfd);
                        continue;
                }
                if (sessions_from(s, &sa) >= s->config.max_per_source) {
                        s->refused_limit++;
                        log_info("connection refused remote_addr=%s reason=max-connections-per-source", addr);
                        safe_close(cfd);
                        continue;
                }
                (void) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                (void) session_start(s, cfd, &sa, addr, l->transport);
        }
        return 0;
}

static int add_listener(Server *s, int fd, ServerTransport transport) {
        ServerListener *l;
        int r;

        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->server = s;
        l->fd = fd;
        l->transport = transport;
        r = sd_event_add_io(s->event, &l->io, fd, EPOLLIN, on_accept, l);
        if (r < 0) {
                free(l);
                return r;
        }
        (void) sd_event_source_set_description(l->io, "server-listen");
        l->next = s->listeners;
        s->listeners = l;
        return 0;
}

int server_add_listen_fd(Server *s, int fd, ServerTransport transport) {
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        return add_listener(s, fd, transport);
}

/* HostKey=, or an Ed25519 key generated once in the state directory. */
static int load_host_key(Server *s) {
        _cleanup_(freep) char *path = NULL;
        ssh_key key = NULL;
        int r;

        if (s->config.host_key)
                path = strdup(s->config.host_key);
        else if (asprintf(&path, "%s/%s", s->state_dir, SERVER_HOST_KEY_NAME) < 0)
                path = NULL;
        if (!path)
                return -ENOMEM;

        r = ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key);
        if (r != SSH_OK) {
                if (s->config.host_key || access(path, F_OK) == 0)
                        return log_error_errno(EIO, "Cannot read the server host key %s.", path);
                if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK)
                        return log_error_errno(EIO, "Cannot generate a server host key.");
                mode_t old = umask(0077);
                r = ssh_pki_export_privkey_file(key, NULL, NULL, NULL, path);
                umask(old);
                if (r != SSH_OK) {
                        ssh_key_free(key);
                        return log_error_errno(EIO, "Cannot write the new server host key to %s.", path);
                }
                log_notice("Generated the server host key %s.", path);
        }
        if (s->host_key)
                ssh_key_free(s->host_key);
        s->host_key = key;
        return 0;
}

/* Ciphers= for the sessions accepted from now on (libssh copies them at accept). */
static int apply_ciphers(Server *s) {
        const char *c = s->config.ciphers ?: SERVER_CIPHERS_DEFAULT;

        if (ssh_bind_options_set(s->bind, SSH_BIND_OPTIONS_CIPHERS_C_S, c) < 0 ||
            ssh_bind_options_set(s->bind, SSH_BIND_OPTIONS_CIPHERS_S_C, c) < 0)
                return log_error_errno(EINVAL, "Cannot set the SSH server's ciphers: %s", ssh_get_error(s->bind));
        return 0;
}

int server_start(Server *s, bool listeners_from_systemd) {
        int r;

        r = load_host_key(s);
        if (r < 0)
                return r;
        s->bind = ssh_bind_new();
        if (!s->bind)
                return -ENOMEM;
        /* libssh's own tracing, for debugging only: it may print names and addresses. */
        if (getenv("ALKNET_LIBSSH_VERBOSITY"))
                (void) ssh_set_log_level(atoi(getenv("ALKNET_LIBSSH_VERBOSITY")));
        /* Settings come from alknetd.conf only, never from /etc/ssh/libssh_server_config. */
        bool no = false;
        if (ssh_bind_options_set(s->bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
            ssh_bind_options_set(s->bind, SSH_BIND_OPTIONS_IMPORT_KEY, ssh_key_dup(s->host_key)) < 0 ||
            ssh_bind_options_set(s->bind, SSH_BIND_OPTIONS_BANNER, SERVER_BANNER) < 0)
                return log_error_errno(EINVAL, "Cannot configure the SSH server: %s", ssh_get_error(s->bind));
        r = apply_ciphers(s);
        if (r < 0)
                return r;

        for (size_t i = 0; i < s->config.n_listen; i++)
                if (s->config.listen[i].transport == SERVER_TRANSPORT_TLS && !s->tls_ctx)
                        return log_error_errno(ENOKEY, "Listen=tls:... needs TLSCertificate= and TLSKey=.");

        for (size_t i = 0; !listeners_from_systemd && i < s->config.n_listen; i++) {
                const ServerListen *l = &s->config.listen[i];
                int fd = bind_tcp(l->host, l->port, SERVER_BACKLOG, NULL);

                if (fd < 0)
                        return log_error_errno(fd, "Cannot listen on %s:%s:%u: %m", transport_name(l->transport), l->host,
                                               l->port);
                r = add_listener(s, fd, l->transport);
                if (r < 0) {
                        safe_close(fd);
                        return r;
                }
        }
        s->accepting = true;
        return 0;
}

int server_new(sd_event *e, const ServerConfig *c, const char *state_dir, Server **ret) {
        _cleanup_(server_freep) Server *s = NULL;
        int r;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(e);
        server_config_init(&s->config);
        s->state_dir = strdup(state_dir);
        if (!s->state_dir)
                return -ENOMEM;
        r = server_reload(s, c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

static int copy_config(ServerConfig *dst, const ServerConfig *src) {
        char reason[256];
        int r = 0;

        /* Re-applying the settings through the parser keeps one copy of the rules. */
        server_config_init(dst);
        dst->login_grace_usec = src->login_grace_usec;
        dst->max_sessions = src->max_sessions;
        dst->max_per_source = src->max_per_source;
        dst->max_auth_tries = src->max_auth_tries;
        dst->max_channels = src->max_channels;
        dst->max_remote_forwards = src->max_remote_forwards;
        dst->gateway_ports = src->gateway_ports;
        dst->stealth = src->stealth;
        dst->outbound_proxy_invalid = src->outbound_proxy_invalid;
        dst->policy_invalid = src->policy_invalid;
        dst->seen = src->seen;
        for (size_t i = 0; i < src->n_listen && r >= 0; i++) {
                char spec[128];
                snprintf(spec, sizeof spec, strchr(src->listen[i].host, ':') ? "%s:[%s]:%u" : "%s:%s:%u",
                         transport_name(src->listen[i].transport), src->listen[i].host, src->listen[i].port);
                r = server_config_set(dst, "Listen", spec, reason, sizeof reason);
        }
        /* The strings go through the parser too, as when they were read. */
        static const struct {
                const char *key;
                size_t offset;
        } strings[] = {
                { "HostKey", offsetof(ServerConfig, host_key) },
                { "AuthorizedKeys", offsetof(ServerConfig, authorized_keys) },
                { "TrustedUserCAKeys", offsetof(ServerConfig, trusted_user_ca_keys) },
                { "TLSCertificate", offsetof(ServerConfig, tls_certificate) },
                { "TLSKey", offsetof(ServerConfig, tls_key) },
                { "StealthFallback", offsetof(ServerConfig, stealth_fallback) },
                { "OutboundProxy", offsetof(ServerConfig, outbound_proxy) },
                { "Ciphers", offsetof(ServerConfig, ciphers) },
        };
        for (size_t i = 0; i < ELEMENTSOF(strings) && r >= 0; i++) {
                const char *v = *(char *const *) ((const uint8_t *) src + strings[i].offset);

                if (v)
                        r = server_config_set(dst, strings[i].key, v, reason, sizeof reason);
        }
        for (char **p = src->permit_open; r >= 0 && p && *p; p++)
                r = server_config_set(dst, "PermitOpen", *p, reason, sizeof reason);
        for (char **p = src->deny_open; r >= 0 && p && *p; p++)
                r = server_config_set(dst, "DenyOpen", *p, reason, sizeof reason);
        return r;
}

static void log_key_problems(const char *path, const AuthorizedKeys *k) {
        for (size_t i = 0; k && i < k->n_errors; i++)
                log_warning("%s:%u: %s; key skipped", path, k->errors[i].line, k->errors[i].message);
}

int server_reload(Server *s, const ServerConfig *c) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *authorized = NULL, *cas = NULL;
        ServerConfig copy;
        int r;

        r = copy_config(&copy, c);
        if (r < 0)
                goto fail;
        /* A missing or unreadable file means no keys from it, said loudly, not a dead daemon. */
        if (copy.authorized_keys) {
                r = ssh_auth_load_keys(copy.authorized_keys, 0, &authorized);
                if (r < 0)
                        log_error_errno(r, "Cannot read AuthorizedKeys=%s: %m", copy.authorized_keys);
                log_key_problems(copy.authorized_keys, authorized);
        }
        if (copy.trusted_user_ca_keys) {
                r = ssh_auth_load_keys(copy.trusted_user_ca_keys, AUTHORIZED_KEYS_NO_OPTIONS, &cas);
                if (r < 0)
                        log_error_errno(r, "Cannot read TrustedUserCAKeys=%s: %m", copy.trusted_user_ca_keys);
                log_key_problems(copy.trusted_user_ca_keys, cas);
        }
        if (!authorized && !cas)
                log_warning("The server role has no AuthorizedKeys= or TrustedUserCAKeys=: nobody can log in.");

        /* Read again on every reload, so that a certificate renewed by an ACME client
         * applies to new connections. A broken pair keeps the previous context. */
        if (copy.tls_certificate && copy.tls_key) {
                _cleanup_(freep) char *error = NULL;
                SSL_CTX *ctx = NULL;

                r = tls_server_ctx_new(copy.tls_certificate, copy.tls_key, &ctx, &error);
                if (r < 0)
                        log_error_errno(r, "Cannot load TLSCertificate=%s / TLSKey=%s: %s", copy.tls_certificate,
                                        copy.tls_key, strna(error));
                else {
                        tls_ctx_unref(s->tls_ctx);
                        s->tls_ctx = ctx;
                }
        }

        authorized_keys_free(s->authorized);
        s->authorized = TAKE_PTR(authorized);
        authorized_keys_free(s->trusted_cas);
        s->trusted_cas = TAKE_PTR(cas);
        server_config_done(&s->config);
        s->config = copy;
        if (s->bind)
                (void) apply_ciphers(s); /* checked when parsed: cannot fail for a name */
        return 0;

fail:
        server_config_done(&copy);
        return r;
}

void server_stop_accepting(Server *s) {
        s->accepting = false;
        for (ServerListener *l = s->listeners; l; l = l->next) {
                accept_pause_done(&l->pause); /* its timer would turn the listener back on */
                (void) sd_event_source_set_enabled(l->io, SD_EVENT_OFF);
        }
}

size_t server_n_channels(const Server *s) {
        size_t n = 0;
        for (const ServerSession *ss = s->sessions; ss; ss = ss->next)
                n += relay_set_size(ss->relays);
        return n;
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
        while (s->sessions)
                session_free(s->sessions);
        while (s->remotes)
                remote_listener_free(s->remotes);
        while (s->listeners) {
                ServerListener *l = s->listeners;
                s->listeners = l->next;
                accept_pause_done(&l->pause);
                sd_event_source_disable_unref(l->io);
                safe_close(l->fd);
                free(l);
        }
        if (s->bind)
                ssh_bind_free(s->bind);
        if (s->host_key)
                ssh_key_free(s->host_key);
        authorized_keys_free(s->authorized);
        authorized_keys_free(s->trusted_cas);
        tls_ctx_unref(s->tls_ctx);
        server_config_done(&s->config);
        free(s->state_dir);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

int server_status_json(const Server *s, struct json_object **ret) {
        struct json_object *o, *listeners, *sessions;
        uint64_t mono = clock_now_usec(CLOCK_MONOTONIC);

        o = json_object_new_object();
        listeners = json_object_new_array();
        sessions = json_object_new_array();
        if (!o || !listeners || !sessions) {
                json_object_put(o);
                json_object_put(listeners);
                json_object_put(sessions);
                return -ENOMEM;
        }
        for (const ServerListener *l = s->listeners; l; l = l->next) {
                struct sockaddr_storage sa = {};
                socklen_t len = sizeof sa;
                char addr[INET6_ADDRSTRLEN + 16], host[INET6_ADDRSTRLEN];
                uint16_t port = 0;

                if (getsockname(l->fd, (struct sockaddr *) &sa, &len) < 0)
                        continue;
                peer_address(&sa, host, sizeof host);
                port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &sa)->sin6_port
                                                      : ((struct sockaddr_in *) &sa)->sin_port);
                snprintf(addr, sizeof addr, sa.ss_family == AF_INET6 ? "%s:[%s]:%u" : "%s:%s:%u",
                         transport_name(l->transport), host, port);
                json_object_array_add(listeners, json_object_new_string(addr));
        }
        for (const ServerSession *ss = s->sessions; ss; ss = ss->next) {
                struct json_object *so = json_object_new_object();
                if (!so)
                        continue;
                json_object_object_add(so, "remoteAddress", json_object_new_string(ss->remote_addr));
                json_object_object_add(so, "transport", json_object_new_string(transport_name(ss->transport)));
                json_object_object_add(so, "authenticated", json_object_new_boolean(ss->phase == PHASE_OPEN));
                if (ss->phase == PHASE_OPEN) {
                        json_object_object_add(so, "user", json_object_new_string(ss->user));
                        json_object_object_add(so, "keyFingerprint", json_object_new_string(ss->key_fingerprint));
                }
                json_object_object_add(so, "durationUSec", json_object_new_int64((int64_t) (mono - ss->opened_at)));
                json_object_object_add(so, "channels", json_object_new_int64((int64_t) relay_set_size(ss->relays)));
                json_object_array_add(sessions, so);
        }
        json_object_object_add(o, "listeners", listeners);
        json_object_object_add(o, "sessions", sessions);
        json_object_object_add(o, "sessionsTotal", json_object_new_int64((int64_t) s->sessions_total));
        json_object_object_add(o, "channels", json_object_new_int64((int64_t) server_n_channels(s)));
        json_object_object_add(o, "channelsTotal", json_object_new_int64((int64_t) s->channels_total));
        json_object_object_add(o, "authAccepted", json_object_new_int64((int64_t) s->auth_accepted));
        json_object_object_add(o, "authRejected", json_object_new_int64((int64_t) s->auth_rejected));
        json_object_object_add(o, "refusedByLimits", json_object_new_int64((int64_t) s->refused_limit));
        *ret = o;
        return 0;
}
