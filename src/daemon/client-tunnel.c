/* Client tunnels. One state machine per profile:
 *
 *   down → connecting (dial, SSH handshake, host key) → authenticating → up
 *   any failure → backoff (1, 2, 4, 8, 16, 30 s… with jitter) → connecting …
 *   a failure retrying cannot fix → failed (until the profile changes or `up` again)
 *
 * Listeners stay bound from `up` to `down`, so applications see a wait or a SOCKS error
 * during an outage, never "connection refused". All libssh work happens in the pump
 * handler (see ssh-pump.c), never blocking. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <libssh/callbacks.h>
#include <libssh/server.h>

#include "client-listener.h"
#include "client-tunnel.h"
#include "dial.h"
#include "fingerprint.h"
#include "log.h"
#include "relay.h"
#include "ssh-pump.h"
#include "tls.h"

/* SSH channel-open failure reasons (RFC 4254 5.1). */
#define SSH_OPEN_CONNECT_FAILED_REASON 2

typedef enum GlobalRequest {
        GLOBAL_IDLE,
        GLOBAL_FORWARD,
        GLOBAL_KEEPALIVE,
} GlobalRequest;

typedef struct ChannelOpen ChannelOpen;
typedef struct RemoteConn RemoteConn;

struct ChannelOpen {
        ClientTunnel *tunnel;
        ChannelOpen *prev, *next;
        char *host;
        uint16_t port;
        char *orig_host;
        uint16_t orig_port;
        int fd;
        void *initial;
        size_t n_initial;
        ssh_channel channel; /* NULL until the tunnel is up and the open was sent */
        sd_event_source *deadline;
        ChannelOpenedCallback cb;
        void *userdata;
};

/* An incoming forwarded-tcpip channel being connected to its local target. */
struct RemoteConn {
        ClientTunnel *tunnel;
        RemoteConn *prev, *next;
        ssh_channel channel;
        Dial *dial;
};

struct ClientTunnel {
        sd_event *event;
        Profile *profile;
        char *state_dir;
        ClientTunnelHooks hooks;
        void *userdata;

        TunnelState state;
        TunnelReason reason;
        char message[256];
        char presented[FINGERPRINT_SIZE];
        uint64_t since_realtime;
        uint64_t up_since_monotonic;
        uint64_t next_attempt_realtime;
        unsigned attempts;
        unsigned reconnects;
        bool was_up;
        bool stopping;
        uint64_t rtt_usec;
        bool rtt_valid;

        ClientListeners *listeners;
        ChannelOpener opener;

        Dial *dial;
        TlsBridge *tls; /* Transport=tls: SSH runs over the bridge's socketpair */
        ssh_session session;
        int ssh_fd;         /* given with SSH_OPTIONS_FD: libssh never closes it */
        ino_t ssh_fd_inode; /* to close it only if it is still that socket */
        ssh_key identity;
        SshPump *pump;
        struct ssh_counter_struct raw_counter;  /* packets, payload bytes */
        struct ssh_counter_struct sock_counter; /* bytes read from the socket */
        uint64_t last_in_packets;
        sd_event_source *timer;     /* backoff wait, or the attempt's deadline */
        sd_event_source *keepalive; /* while up */

        GlobalRequest global;
        size_t next_forward;
        uint64_t keepalive_sent;
        uint64_t last_rx; /* CLOCK_MONOTONIC of the last packet seen from the server */

        ChannelOpen *opens;
        size_t n_opens;
        RemoteConn *remotes;
        RelaySet *relays; /* outlives sessions: its totals are the profile's */
};

const char *client_tunnel_name(const ClientTunnel *t) {
        return t->profile->name;
}

TunnelState client_tunnel_state(const ClientTunnel *t) {
        return t->state;
}

const char *client_tunnel_presented_host_key(const ClientTunnel *t) {
        return t->presented[0] ? t->presented : NULL;
}

size_t client_tunnel_n_channels(const ClientTunnel *t) {
        return relay_set_size(t->relays);
}

static void start_attempt(ClientTunnel *t);
static void fail_attempt(ClientTunnel *t, TunnelReason reason, const char *message);
static int pump_handler(SshPump *p, void *userdata);

static void set_state(ClientTunnel *t, TunnelState state, TunnelReason reason, const char *message) {
        bool changed = t->state != state || t->reason != reason;

        t->state = state;
        t->reason = reason;
        (void) snprintf(t->message, sizeof t->message, "%s", strempty(message));
        if (!changed)
                return;
        t->since_realtime = clock_now_usec(CLOCK_REALTIME);

        if (reason != TUNNEL_REASON_NONE)
                log_profile(state == TUNNEL_FAILED ? LOG_ERR : LOG_WARNING, t->profile->name,
                            ALKNET_MESSAGE_TUNNEL_STATE, "Tunnel %s: %s (%s)%s%s", t->profile->name,
                            tunnel_state_to_string(state), tunnel_reason_to_string(reason),
                            isempty(message) ? "" : ": ", strempty(message));
        else
                log_profile(state == TUNNEL_UP ? LOG_NOTICE : LOG_INFO, t->profile->name,
                            ALKNET_MESSAGE_TUNNEL_STATE, "Tunnel %s: %s", t->profile->name,
                            tunnel_state_to_string(state));

        if (t->hooks.state_changed)
                t->hooks.state_changed(t, t->userdata);
}

/* ---- streams waiting for a channel ---- */

static void channel_open_free(ChannelOpen *o, bool close_fd) {
        ClientTunnel *t = o->tunnel;

        LIST_REMOVE(t->opens, o);
        t->n_opens--;
        sd_event_source_disable_unref(o->deadline);
        if (o->channel)
                ssh_channel_free(o->channel);
        if (close_fd)
                safe_close(o->fd);
        free(o->host);
        free(o->orig_host);
        free(o->initial);
        free(o);
}

/* Reports the outcome to the listener; the ChannelOpen is gone afterwards. */
static void channel_open_fail(ChannelOpen *o, int r, int ssh_reason) {
        ChannelOpenedCallback cb = o->cb;
        void *userdata = o->userdata;

        channel_open_free(o, false); /* the fd is still the listener's */
        cb(r, ssh_reason, userdata);
}

static int on_open_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        channel_open_fail(userdata, -ETIMEDOUT, 0);
        return 0;
}

static int start_relay(ClientTunnel *t, ssh_channel channel, int fd, const void *initial, size_t n_initial) {
        return relay_set_start(t->relays, t->pump, channel, fd, initial, n_initial);
}

/* Failure reason of a refused channel open: libssh keeps it only in its error text. */
static int open_failure_reason(ssh_session s) {
        const char *e = ssh_get_error(s), *p;
        unsigned reason;

        p = e ? strstr(e, "error (") : NULL;
        if (p && sscanf(p, "error (%u)", &reason) == 1)
                return (int) reason;
        return SSH_OPEN_CONNECT_FAILED_REASON;
}

static void channel_open_step(ChannelOpen *o) {
        ClientTunnel *t = o->tunnel;
        int rc, r;

        if (!o->channel) {
                o->channel = ssh_channel_new(t->session);
                if (!o->channel) {
                        channel_open_fail(o, -ENOMEM, 0);
                        return;
                }
        }
        rc = ssh_channel_open_forward(o->channel, o->host, o->port, o->orig_host, o->orig_port);
        if (rc == SSH_AGAIN)
                return;
        if (rc != SSH_OK) {
                channel_open_fail(o, -ECONNREFUSED, open_failure_reason(t->session));
                return;
        }

        /* Open: the listener answers its client (SOCKS reply) first, then bytes flow. */
        {
                ssh_channel channel = TAKE_PTR(o->channel);
                ChannelOpenedCallback cb = o->cb;
                void *userdata = o->userdata, *initial = TAKE_PTR(o->initial);
                size_t n_initial = o->n_initial;
                int fd = o->fd;

                channel_open_free(o, false);
                cb(0, 0, userdata);
                r = start_relay(t, channel, fd, initial, n_initial);
                free(initial);
                if (r < 0) {
                        ssh_channel_free(channel);
                        safe_close(fd);
                }
        }
}

static void process_opens(ClientTunnel *t) {
        ChannelOpen *o, *next;

        for (o = t->opens; o; o = next) {
                next = o->next;
                channel_open_step(o);
        }
}

static int opener_open(void *ctx, const ChannelOpenRequest *req, ChannelOpenedCallback cb, void *userdata,
                       void **ret_handle) {
        ClientTunnel *t = ctx;
        ChannelOpen *o;
        int r;

        if (t->stopping || t->state == TUNNEL_DOWN)
                return -ENOTCONN;
        if (t->state == TUNNEL_FAILED)
                return -EHOSTUNREACH;
        if (t->n_opens >= TUNNEL_PENDING_OPENS_MAX || relay_set_size(t->relays) >= TUNNEL_CHANNELS_MAX)
                return -EBUSY;
        if (req->n_initial > RELAY_BUFFER_SIZE)
                return -E2BIG;

        o = calloc(1, sizeof *o);
        if (!o)
                return -ENOMEM;
        o->tunnel = t;
        o->fd = req->fd;
        o->port = req->port;
        o->orig_port = req->orig_port;
        o->cb = cb;
        o->userdata = userdata;
        o->host = strdup(req->host);
        o->orig_host = strdup(req->orig_host ?: "127.0.0.1");
        if (req->n_initial > 0) {
                o->initial = malloc(req->n_initial);
                if (o->initial)
                        memcpy(o->initial, req->initial, req->n_initial);
                o->n_initial = req->n_initial;
        }
        if (!o->host || !o->orig_host || (req->n_initial > 0 && !o->initial)) {
                free(o->host);
                free(o->orig_host);
                free(o->initial);
                free(o);
                return -ENOMEM;
        }
        LIST_PREPEND(t->opens, o);
        t->n_opens++;

        /* Waiting covers both a tunnel that is not up yet and a slow server answer. */
        r = sd_event_add_time_relative(t->event, &o->deadline, CLOCK_MONOTONIC, TUNNEL_OPEN_WAIT_USEC, USEC_PER_SEC / 10,
                                       on_open_deadline, o);
        if (r < 0) {
                channel_open_free(o, false);
                return r;
        }
        *ret_handle = o;

        if (t->state == TUNNEL_UP) {
                channel_open_step(o); /* may already complete (or fail) */
                ssh_pump_kick(t->pump);
        }
        return 0;
}

static void opener_cancel(void *ctx, void *handle) {
        channel_open_free(handle, false);
}

/* ---- remote forwards ---- */

static void remote_conn_free(RemoteConn *c) {
        LIST_REMOVE(c->tunnel->remotes, c);
        dial_cancel(c->dial);
        if (c->channel)
                ssh_channel_free(c->channel);
        free(c);
}

static void remote_dialed(int r, int fd, TunnelReason reason, void *userdata) {
        RemoteConn *c = userdata;
        ClientTunnel *t = c->tunnel;
        ssh_channel channel = TAKE_PTR(c->channel);

        c->dial = NULL;
        remote_conn_free(c);
        if (r < 0) {
                log_debug_errno(r, "Tunnel %s: a Remote= target could not be reached: %m", t->profile->name);
                (void) ssh_channel_close(channel);
                ssh_channel_free(channel);
                ssh_pump_kick(t->pump);
                return;
        }
        r = start_relay(t, channel, fd, NULL, 0);
        if (r < 0) {
                ssh_channel_free(channel);
                safe_close(fd);
        }
        ssh_pump_kick(t->pump);
}

static const Forward *find_remote(const ClientTunnel *t, const char *addr, int port) {
        for (size_t i = 0; i < t->profile->n_remote; i++) {
                const Forward *f = &t->profile->remote[i];
                if (f->listen.port == port)
                        return f; /* a server may report the bind address in another form */
        }
        return NULL;
}

static int connect_unix(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_(closep) int fd = -EBADF;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno; /* EAGAIN: its backlog is full, which is a refusal too */
        return TAKE_FD(fd);
}

static int on_message(ssh_session s, ssh_message m, void *userdata) {
        ClientTunnel *t = userdata;
        const Forward *f;
        RemoteConn *c;
        DialParams params = {};
        int r;

        if (ssh_message_type(m) != SSH_REQUEST_CHANNEL_OPEN || ssh_message_subtype(m) != SSH_CHANNEL_FORWARDED_TCPIP)
                return 1; /* refused by libssh's default reply */
        if (t->stopping || relay_set_size(t->relays) >= TUNNEL_CHANNELS_MAX)
                return 1;
        f = find_remote(t, ssh_message_channel_request_open_destination(m),
                        ssh_message_channel_request_open_destination_port(m));
        if (!f)
                return 1;

        if (f->target.path) {
                /* A local unix socket answers connect() at once; no dial needed. */
                _cleanup_(closep) int fd = connect_unix(f->target.path);
                ssh_channel channel;

                if (fd < 0) {
                        log_debug_errno(fd, "Tunnel %s: a Remote= socket target could not be reached: %m",
                                        t->profile->name);
                        return 1;
                }
                channel = ssh_message_channel_request_open_reply_accept(m);
                if (!channel)
                        return 0;
                r = start_relay(t, channel, fd, NULL, 0);
                if (r < 0) {
                        ssh_channel_free(channel);
                        return 0;
                }
                TAKE_FD(fd);
                return 0;
        }

        c = calloc(1, sizeof *c);
        if (!c)
                return 1;
        c->tunnel = t;
        LIST_PREPEND(t->remotes, c);

        params.host = f->target.host;
        params.port = f->target.port;
        params.timeout_usec = TUNNEL_DIAL_TIMEOUT_USEC;
        r = dial_start(t->event, &params, remote_dialed, c, &c->dial);
        if (r < 0) {
                remote_conn_free(c);
                return 1;
        }
        /* Accepted now (libssh answers inside this callback); if the local target turns
         * out to be unreachable the channel is closed right after. */
        c->channel = ssh_message_channel_request_open_reply_accept(m);
        if (!c->channel) {
                remote_conn_free(c);
                return 1;
        }
        return 0;
}

/* Global requests share one state inside libssh 0.10: one at a time, and the answer to
 * one must be collected before the next is sent. */
static void process_globals(ClientTunnel *t) {
        int rc;

        for (;;) {
                if (t->global == GLOBAL_FORWARD) {
                        const Forward *f = &t->profile->remote[t->next_forward];

                        rc = ssh_channel_listen_forward(t->session, f->listen.host, f->listen.port, NULL);
                        if (rc == SSH_AGAIN)
                                return;
                        if (rc != SSH_OK)
                                log_profile(LOG_WARNING, t->profile->name, NULL,
                                            "Tunnel %s: the server refused Remote= listener %s:%u", t->profile->name,
                                            strempty(f->listen.host), f->listen.port);
                        t->next_forward++;
                        t->global = GLOBAL_IDLE;
                } else if (t->global == GLOBAL_KEEPALIVE) {
                        /* A poll of the pending keepalive: with a request outstanding this
                         * sends nothing and returns its answer once it is in. */
                        rc = ssh_channel_cancel_forward(t->session, NULL, 0);
                        if (rc == SSH_AGAIN)
                                return;
                        t->rtt_usec = clock_now_usec(CLOCK_MONOTONIC) - t->keepalive_sent;
                        t->rtt_valid = true;
                        t->global = GLOBAL_IDLE;
                }

                if (t->global == GLOBAL_IDLE && t->next_forward < t->profile->n_remote && !t->stopping) {
                        t->global = GLOBAL_FORWARD;
                        continue;
                }
                return;
        }
}

/* Keepalive: a probe every KeepaliveInterval= while the server is quiet, and the session
 * is declared dead once nothing at all has come from the server for
 * KeepaliveInterval= × KeepaliveCountMax=. The timer is aimed at whichever comes first. */
static int on_keepalive(sd_event_source *s, uint64_t usec, void *userdata) {
        ClientTunnel *t = userdata;
        uint64_t interval = t->profile->keepalive_interval_usec;
        uint64_t limit = interval * t->profile->keepalive_count_max;
        uint64_t n = clock_now_usec(CLOCK_MONOTONIC), next;

        if (t->raw_counter.in_packets != t->last_in_packets) {
                t->last_in_packets = t->raw_counter.in_packets;
                t->last_rx = n;
        }
        if (n - t->last_rx >= limit) {
                char msg[96];
                (void) snprintf(msg, sizeof msg, "nothing from the server for %" PRIu64 " ms",
                                (n - t->last_rx) / USEC_PER_MSEC);
                fail_attempt(t, TUNNEL_REASON_KEEPALIVE_TIMEOUT, msg);
                return 0;
        }
        if (t->global == GLOBAL_IDLE && n - t->last_rx >= interval) {
                (void) ssh_send_keepalive(t->session);
                t->keepalive_sent = n;
                t->global = GLOBAL_KEEPALIVE;
                ssh_pump_kick(t->pump);
        }
        next = MIN(MAX(t->last_rx, t->keepalive_sent) + interval, t->last_rx + limit);
        if (next <= n)
                next = n + interval;
        (void) sd_event_source_set_time(s, next);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

/* ---- session life cycle ---- */

static void close_session(ClientTunnel *t) {
        t->dial = dial_cancel(t->dial);
        t->keepalive = sd_event_source_disable_unref(t->keepalive);
        t->timer = sd_event_source_disable_unref(t->timer);

        /* Channels belong to the session: release them before it. */
        while (t->remotes)
                remote_conn_free(t->remotes);
        relay_set_clear(t->relays);
        for (ChannelOpen *o = t->opens; o; o = o->next)
                if (o->channel) {
                        ssh_channel_free(o->channel);
                        o->channel = NULL; /* re-sent on the next session */
                }

        t->pump = ssh_pump_free(t->pump);
        if (t->session) {
                if (ssh_is_connected(t->session))
                        ssh_disconnect(t->session);
                ssh_free(t->session);
                t->session = NULL;
        }
        if (t->ssh_fd >= 0) {
                struct stat st;
                /* libssh does not close an SSH_OPTIONS_FD socket; it may have on an error
                 * path, so only our very socket is closed, never a new fd of that number. */
                if (fstat(t->ssh_fd, &st) >= 0 && st.st_ino == t->ssh_fd_inode)
                        (void) close(t->ssh_fd);
                t->ssh_fd = -EBADF;
        }
        t->tls = tls_bridge_free(t->tls);
        if (t->identity) {
                ssh_key_free(t->identity);
                t->identity = NULL;
        }
        t->global = GLOBAL_IDLE;
        t->next_forward = 0;
}

static int on_backoff_done(sd_event_source *s, uint64_t usec, void *userdata) {
        ClientTunnel *t = userdata;

        t->timer = sd_event_source_disable_unref(t->timer);
        start_attempt(t);
        return 0;
}

static void fail_attempt(ClientTunnel *t, TunnelReason reason, const char *message) {
        uint32_t rnd = 0;
        uint64_t delay;
        int r;

        close_session(t);
        if (tunnel_reason_is_final(reason)) {
                /* Streams waiting for this tunnel will not get it: tell them now. */
                while (t->opens)
                        channel_open_fail(t->opens, -EHOSTUNREACH, 0);
                t->next_attempt_realtime = 0;
                set_state(t, TUNNEL_FAILED, reason, message);
                return;
        }

        t->attempts++;
        (void) getrandom(&rnd, sizeof rnd, GRND_NONBLOCK);
        delay = tunnel_backoff_usec(t->attempts, rnd);
        r = sd_event_add_time_relative(t->event, &t->timer, CLOCK_MONOTONIC, delay, 1, on_backoff_done, t);
        if (r < 0)
                log_error_errno(r, "Tunnel %s: cannot arm the backoff timer: %m", t->profile->name);
        t->next_attempt_realtime = clock_now_usec(CLOCK_REALTIME) + delay;
        set_state(t, TUNNEL_BACKOFF, reason, message);
}

static int on_attempt_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        ClientTunnel *t = userdata;

        fail_attempt(t, TUNNEL_REASON_CONNECT_TIMEOUT,
                     t->state == TUNNEL_AUTHENTICATING ? "no answer to authentication" : "SSH handshake timed out");
        return 0;
}

static bool host_key_pinned(const Profile *p, const char *fp) {
        for (char **k = p->host_keys; k && *k; k++)
                if (streq(*k, fp))
                        return true;
        return false;
}

/* Returns 0 to go on, or a final reason. */
static TunnelReason check_host_key(ClientTunnel *t, char *message, size_t size) {
        ssh_key key = NULL;
        unsigned char *hash = NULL;
        size_t hlen = 0;
        char fp[FINGERPRINT_SIZE];

        if (ssh_get_server_publickey(t->session, &key) != SSH_OK) {
                (void) snprintf(message, size, "the server presented no host key");
                return TUNNEL_REASON_HOSTKEY_UNKNOWN;
        }
        if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != SSH_OK || hlen != 32) {
                ssh_key_free(key);
                ssh_clean_pubkey_hash(&hash);
                (void) snprintf(message, size, "cannot hash the host key");
                return TUNNEL_REASON_HOSTKEY_UNKNOWN;
        }
        fingerprint_format_sha256(hash, fp);
        ssh_clean_pubkey_hash(&hash);
        ssh_key_free(key);

        if (host_key_pinned(t->profile, fp)) {
                t->presented[0] = '\0';
                return TUNNEL_REASON_NONE;
        }
        memcpy(t->presented, fp, sizeof fp);

        if (t->profile->host_keys && t->profile->host_keys[0]) {
                log_profile(LOG_ERR, t->profile->name, ALKNET_MESSAGE_HOSTKEY,
                            "Tunnel %s: HOST KEY MISMATCH: the server presented %s, which is not pinned. "
                            "Not authenticating.", t->profile->name, fp);
                (void) snprintf(message, size, "the server presented %s, which is not pinned", fp);
                return TUNNEL_REASON_HOSTKEY_MISMATCH;
        }
        if (t->profile->host_key_policy == HOST_KEY_POLICY_ACCEPT_NEW && t->hooks.pin_host_key &&
            t->hooks.pin_host_key(t, fp, t->userdata) >= 0) {
                log_profile(LOG_NOTICE, t->profile->name, ALKNET_MESSAGE_HOSTKEY,
                            "Tunnel %s: pinned new host key %s (HostKeyPolicy=accept-new)", t->profile->name, fp);
                t->presented[0] = '\0';
                return TUNNEL_REASON_NONE;
        }
        log_profile(LOG_WARNING, t->profile->name, ALKNET_MESSAGE_HOSTKEY,
                    "Tunnel %s: the server presented host key %s, which is not pinned; "
                    "check it and run: alknetctl trust %s %s", t->profile->name, fp, t->profile->name, fp);
        (void) snprintf(message, size, "the server presented %s, which is not pinned", fp);
        return TUNNEL_REASON_HOSTKEY_UNKNOWN;
}

static void became_up(ClientTunnel *t) {
        int r;

        t->timer = sd_event_source_disable_unref(t->timer);
        if (t->was_up)
                t->reconnects++;
        t->was_up = true;
        t->attempts = 0;
        t->up_since_monotonic = clock_now_usec(CLOCK_MONOTONIC);
        t->next_attempt_realtime = 0;
        t->last_in_packets = t->raw_counter.in_packets;
        t->last_rx = clock_now_usec(CLOCK_MONOTONIC);
        t->keepalive_sent = 0;

        ssh_set_message_callback(t->session, on_message, t);
        if (t->profile->keepalive_interval_usec > 0) {
                r = sd_event_add_time_relative(t->event, &t->keepalive, CLOCK_MONOTONIC,
                                               t->profile->keepalive_interval_usec, USEC_PER_MSEC, on_keepalive, t);
                if (r < 0)
                        log_warning_errno(r, "Tunnel %s: no keepalives: %m", t->profile->name);
        }
        set_state(t, TUNNEL_UP, TUNNEL_REASON_NONE, NULL);
        process_globals(t);
        process_opens(t);
}

/* One step of connect / authenticate, or the steady pump when up. Returns -ECANCELED when
 * the session (and so the pump) is gone. */
static int pump_handler(SshPump *p, void *userdata) {
        ClientTunnel *t = userdata;
        char message[256] = "";
        int rc;

        if (t->state == TUNNEL_CONNECTING) {
                TunnelReason reason;

                rc = ssh_connect(t->session);
                if (rc == SSH_AGAIN)
                        return 0;
                if (rc != SSH_OK) {
                        (void) snprintf(message, sizeof message, "SSH handshake failed: %s", ssh_get_error(t->session));
                        fail_attempt(t, TUNNEL_REASON_DISCONNECTED, message);
                        return -ECANCELED;
                }
                /* libssh 0.10 made the socket blocking again; one full socket buffer would
                 * then stall the whole daemon in send(). */
                {
                        int sfd = ssh_get_fd(t->session);
                        (void) fcntl(sfd, F_SETFL, fcntl(sfd, F_GETFL) | O_NONBLOCK);
                }

                reason = check_host_key(t, message, sizeof message);
                if (reason != TUNNEL_REASON_NONE) {
                        /* Final: nothing authenticated, nothing sent, no retry loop. */
                        fail_attempt(t, reason, message);
                        return -ECANCELED;
                }
                set_state(t, TUNNEL_AUTHENTICATING, TUNNEL_REASON_NONE, NULL);
        }

        if (t->state == TUNNEL_AUTHENTICATING) {
                rc = ssh_userauth_publickey(t->session, NULL, t->identity);
                if (rc == SSH_AUTH_AGAIN)
                        return 0;
                if (rc != SSH_AUTH_SUCCESS) {
                        if (rc == SSH_AUTH_ERROR)
                                (void) snprintf(message, sizeof message, "%s", ssh_get_error(t->session));
                        else
                                (void) snprintf(message, sizeof message, "the server did not accept the key for user %s",
                                                t->profile->user ?: PROFILE_USER_DEFAULT);
                        fail_attempt(t, rc == SSH_AUTH_ERROR ? TUNNEL_REASON_DISCONNECTED : TUNNEL_REASON_AUTH_DENIED,
                                     message);
                        return -ECANCELED;
                }
                became_up(t);
                return 0;
        }

        if (t->state != TUNNEL_UP)
                return 0;

        /* Each pass is one poll() and one recv() of at most 4 KiB in libssh, so a 32 KiB
         * packet takes eight: go on while the socket gives bytes (not only while packets
         * complete, which left 7 of 8 reads to an epoll wakeup each), hand the relays what
         * completed, and past the round limit let the loop come back (other sources get a
         * turn). */
        for (unsigned i = 0;; i++) {
                if (i == 64) {
                        ssh_pump_schedule(p);
                        break;
                }
                uint64_t before = t->sock_counter.in_bytes, packets = t->raw_counter.in_packets;

                rc = ssh_execute_message_callbacks(t->session);
                if (rc != SSH_OK || !ssh_is_connected(t->session) ||
                    (ssh_get_status(t->session) & (SSH_CLOSED | SSH_CLOSED_ERROR))) {
                        (void) snprintf(message, sizeof message, "%s",
                                        isempty(ssh_get_error(t->session)) ? "the server closed the connection"
                                                                            : ssh_get_error(t->session));
                        fail_attempt(t, TUNNEL_REASON_DISCONNECTED, message);
                        return -ECANCELED;
                }
                bool more = t->sock_counter.in_bytes != before;
                if (!more || t->raw_counter.in_packets != packets)
                        relay_set_process(t->relays);
                /* A relay's read may itself have read the socket (libssh polls when a
                 * channel's buffer is empty) and fed a relay processed before it: go on
                 * until a round reads nothing at all. */
                if (t->sock_counter.in_bytes == before)
                        break;
        }
        if (t->raw_counter.in_packets != t->last_in_packets) {
                t->last_in_packets = t->raw_counter.in_packets;
                t->last_rx = clock_now_usec(CLOCK_MONOTONIC);
        }
        uint64_t settled = t->sock_counter.in_bytes;
        process_globals(t);
        process_opens(t);
        /* Polling the opens may have read data for the relays too: one more pass for it. */
        if (t->sock_counter.in_bytes != settled)
                ssh_pump_schedule(p);
        return 0;
}

/* Runs SSH on fd: the TCP connection, or the local end of the TLS bridge. */
static void start_ssh(ClientTunnel *t, int fd) {
        /* libssh's own tracing, for debugging only: it may print names and addresses. */
        long verbosity = getenv("ALKNET_LIBSSH_VERBOSITY") ? atol(getenv("ALKNET_LIBSSH_VERBOSITY")) : SSH_LOG_NOLOG;
        int nodelay = 1, process_config = 0, rc, r;
        _cleanup_(closep) int sock = fd;

        if (verbosity > 0)
                (void) ssh_set_log_level((int) verbosity);
        t->session = ssh_new();
        if (!t->session) {
                fail_attempt(t, TUNNEL_REASON_DISCONNECTED, "out of memory");
                return;
        }
        /* The daemon made the connection; libssh must neither resolve, nor connect, nor
         * read ~/.ssh/config or known_hosts (host keys are pinned in the profile). */
        if (ssh_options_set(t->session, SSH_OPTIONS_FD, &sock) < 0 ||
            ssh_options_set(t->session, SSH_OPTIONS_HOST, t->profile->server_host) < 0 ||
            ssh_options_set(t->session, SSH_OPTIONS_USER, t->profile->user ?: PROFILE_USER_DEFAULT) < 0 ||
            ssh_options_set(t->session, SSH_OPTIONS_PROCESS_CONFIG, &process_config) < 0 ||
            ssh_options_set(t->session, SSH_OPTIONS_NODELAY, &nodelay) < 0 ||
            ssh_options_set(t->session, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) < 0 ||
            ssh_options_set(t->session, SSH_OPTIONS_SSH_DIR, t->state_dir) < 0 ||
            ssh_options_set(t->session, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") < 0 ||
            ssh_options_set(t->session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") < 0) {
                fail_attempt(t, TUNNEL_REASON_CONFIG_INVALID, ssh_get_error(t->session));
                return;
        }
        {
                struct stat st;
                t->ssh_fd = TAKE_FD(sock); /* closed by close_session() after ssh_free() */
                t->ssh_fd_inode = fstat(t->ssh_fd, &st) >= 0 ? st.st_ino : 0;
        }
        t->raw_counter = t->sock_counter = (struct ssh_counter_struct) {};
        ssh_set_counters(t->session, &t->sock_counter, &t->raw_counter);
        ssh_set_blocking(t->session, 0);

        /* ssh_get_fd() knows the socket only once ssh_connect() ran: use ours. */
        r = ssh_pump_new(t->event, t->session, fd, pump_handler, t, &t->pump);
        if (r < 0) {
                fail_attempt(t, TUNNEL_REASON_DISCONNECTED, strerror(-r));
                return;
        }
        ssh_pump_set_counter(t->pump, &t->raw_counter);
        t->timer = sd_event_source_disable_unref(t->timer);
        rc = sd_event_add_time_relative(t->event, &t->timer, CLOCK_MONOTONIC, TUNNEL_HANDSHAKE_TIMEOUT_USEC,
                                        USEC_PER_SEC / 10, on_attempt_deadline, t);
        if (rc < 0) {
                fail_attempt(t, TUNNEL_REASON_DISCONNECTED, strerror(-rc));
                return;
        }
        if (pump_handler(t->pump, t) >= 0)
                ssh_pump_kick(t->pump);
}

static void on_tls_ready(TlsBridge *b, int fd, const TlsInfo *info, void *userdata) {
        start_ssh(userdata, fd);
}

static void on_tls_failed(TlsBridge *b, TlsFailure failure, int error, const char *reason, void *userdata) {
        ClientTunnel *t = userdata;
        char message[256];

        (void) snprintf(message, sizeof message, "%s: %s", tls_failure_to_string(failure), strempty(reason));
        fail_attempt(t, TUNNEL_REASON_TLS_FAILED, message);
}

static void on_tls_closed(TlsBridge *b, int error, void *userdata) {
        /* libssh sees the end of its socketpair; the pump turns it into a state change. */
}

static void start_tls(ClientTunnel *t, int fd) {
        static const TlsBridgeCallbacks callbacks = {
                .ready = on_tls_ready,
                .failed = on_tls_failed,
                .closed = on_tls_closed,
        };
        _cleanup_(tls_ctx_unrefp) SSL_CTX *ctx = NULL;
        _cleanup_(freep) char *error = NULL;
        TlsBridgeParams params = {
                .side = TLS_SIDE_CLIENT,
                .server_name = t->profile->tls_server_name ?: t->profile->server_host,
                .handshake_timeout_usec = TUNNEL_HANDSHAKE_TIMEOUT_USEC,
        };
        int r;

        if (!t->profile->tls_verify)
                log_profile(LOG_WARNING, t->profile->name, NULL,
                            "Tunnel %s: TLSVerify=no: the server's TLS certificate is not checked%s", t->profile->name,
                            t->profile->tls_pin ? " (only its pin)" : "");
        r = tls_client_ctx_new(t->profile->tls_verify, t->profile->tls_ca, t->profile->tls_pin, &ctx, &error);
        if (r < 0) {
                safe_close(fd);
                fail_attempt(t, TUNNEL_REASON_CONFIG_INVALID, error ?: strerror(-r));
                return;
        }
        params.ctx = ctx;
        r = tls_bridge_new(t->event, fd, &params, &callbacks, t, &t->tls);
        if (r < 0) {
                safe_close(fd); /* still ours when the bridge could not start */
                fail_attempt(t, TUNNEL_REASON_TLS_FAILED, strerror(-r));
        }
}

static void dialed(int r, int fd, TunnelReason reason, void *userdata) {
        ClientTunnel *t = userdata;
        char message[256];

        t->dial = NULL;
        if (r < 0) {
                (void) snprintf(message, sizeof message, "%s", strerror(-r));
                fail_attempt(t, reason != TUNNEL_REASON_NONE ? reason : TUNNEL_REASON_CONNECT_REFUSED, message);
                return;
        }
        if (t->profile->transport == TRANSPORT_TLS)
                start_tls(t, fd);
        else
                start_ssh(t, fd);
}

static void start_attempt(ClientTunnel *t) {
        DialParams params = {};
        char message[256];
        int r;

        close_session(t);
        t->presented[0] = '\0';

        if (!t->profile->identity) {
                fail_attempt(t, TUNNEL_REASON_CONFIG_INVALID, "no Identity= is set");
                return;
        }
        /* Read on every attempt, so that fixing the file (or its permissions) is enough. */
        r = ssh_pki_import_privkey_file(t->profile->identity, NULL, NULL, NULL, &t->identity);
        if (r != SSH_OK) {
                (void) snprintf(message, sizeof message, "cannot read %s (missing, unreadable, or protected by a passphrase)",
                                t->profile->identity);
                t->identity = NULL;
                fail_attempt(t, TUNNEL_REASON_IDENTITY_UNREADABLE, message);
                return;
        }

        set_state(t, TUNNEL_CONNECTING, TUNNEL_REASON_NONE, NULL);
        params.host = t->profile->server_host;
        params.port = t->profile->server_port;
        params.proxy = t->profile->proxy;
        params.timeout_usec = TUNNEL_DIAL_TIMEOUT_USEC;
        r = dial_start(t->event, &params, dialed, t, &t->dial);
        if (r < 0)
                fail_attempt(t, TUNNEL_REASON_RESOLVE_FAILED, strerror(-r));
}

/* ---- public ---- */

int client_tunnel_new(sd_event *e, const Profile *p, const char *state_dir, const ClientTunnelHooks *hooks,
                      void *userdata, ClientTunnel **ret) {
        _cleanup_(client_tunnel_freep) ClientTunnel *t = NULL;
        int r;

        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->event = sd_event_ref(e);
        t->hooks = *hooks;
        t->userdata = userdata;
        t->state = TUNNEL_DOWN;
        t->ssh_fd = -EBADF;
        t->since_realtime = clock_now_usec(CLOCK_REALTIME);
        t->opener = (ChannelOpener) { .ctx = t, .open = opener_open, .cancel = opener_cancel };
        t->state_dir = strdup(state_dir);
        if (!t->state_dir)
                return -ENOMEM;
        r = profile_dup(p, &t->profile);
        if (r < 0)
                return r;
        r = relay_set_new(e, &t->relays);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

ClientTunnel *client_tunnel_free(ClientTunnel *t) {
        if (!t)
                return NULL;
        close_session(t);
        while (t->opens)
                channel_open_free(t->opens, true);
        t->listeners = client_listeners_free(t->listeners);
        relay_set_free(t->relays);
        profile_free(t->profile);
        free(t->state_dir);
        sd_event_unref(t->event);
        free(t);
        return NULL;
}

int client_tunnel_up(ClientTunnel *t, char **ret_error) {
        int r;

        t->stopping = false;
        if (!t->listeners) {
                r = client_listeners_new(t->event, t->profile, &t->opener, NULL, &t->listeners, ret_error);
                if (r < 0)
                        return r;
        }
        if (t->state == TUNNEL_UP || t->state == TUNNEL_CONNECTING || t->state == TUNNEL_AUTHENTICATING)
                return 0;
        t->attempts = 0;
        start_attempt(t);
        return 0;
}

void client_tunnel_down(ClientTunnel *t) {
        close_session(t);
        while (t->opens)
                channel_open_fail(t->opens, -ENOTCONN, 0);
        t->listeners = client_listeners_free(t->listeners);
        t->attempts = 0;
        t->was_up = false; /* a later up is a start, not a reconnect */
        t->presented[0] = '\0';
        t->next_attempt_realtime = 0;
        set_state(t, TUNNEL_DOWN, TUNNEL_REASON_NONE, NULL);
}

void client_tunnel_stop_accepting(ClientTunnel *t) {
        t->stopping = true;
        t->listeners = client_listeners_free(t->listeners);
        while (t->opens)
                channel_open_fail(t->opens, -ENOTCONN, 0);
}

void client_tunnel_network_changed(ClientTunnel *t) {
        if (t->state != TUNNEL_BACKOFF)
                return;
        log_profile(LOG_INFO, t->profile->name, NULL, "Tunnel %s: network changed, retrying now", t->profile->name);
        t->attempts = 0;
        start_attempt(t);
}

static bool addresses_equal(const Address *a, size_t n_a, const Address *b, size_t n_b) {
        if (n_a != n_b)
                return false;
        for (size_t i = 0; i < n_a; i++)
                if (!streq_ptr(a[i].host, b[i].host) || a[i].port != b[i].port || !streq_ptr(a[i].path, b[i].path))
                        return false;
        return true;
}

static bool forwards_equal(const Forward *a, size_t n_a, const Forward *b, size_t n_b) {
        if (n_a != n_b)
                return false;
        for (size_t i = 0; i < n_a; i++)
                if (!addresses_equal(&a[i].listen, 1, &b[i].listen, 1) || !addresses_equal(&a[i].target, 1, &b[i].target, 1))
                        return false;
        return true;
}

static bool ssh_side_changed(const Profile *a, const Profile *b) {
        return !streq_ptr(a->server_host, b->server_host) || a->server_port != b->server_port ||
               !streq_ptr(a->user, b->user) || !streq_ptr(a->identity, b->identity) ||
               a->host_key_policy != b->host_key_policy || a->transport != b->transport ||
               !streq_ptr(a->tls_server_name, b->tls_server_name) || a->tls_verify != b->tls_verify ||
               !streq_ptr(a->tls_ca, b->tls_ca) || !streq_ptr(a->tls_pin, b->tls_pin) ||
               !streq_ptr(a->proxy, b->proxy) || a->keepalive_interval_usec != b->keepalive_interval_usec ||
               a->keepalive_count_max != b->keepalive_count_max ||
               !forwards_equal(a->remote, a->n_remote, b->remote, b->n_remote);
}

static bool listeners_changed(const Profile *a, const Profile *b) {
        return a->socks_listen_set != b->socks_listen_set ||
               !addresses_equal(a->socks_listen, a->n_socks_listen, b->socks_listen, b->n_socks_listen) ||
               !streq_ptr(a->socks_username, b->socks_username) ||
               !streq_ptr(a->socks_password_file, b->socks_password_file) ||
               !forwards_equal(a->local, a->n_local, b->local, b->n_local);
}

int client_tunnel_set_profile(ClientTunnel *t, const Profile *p, char **ret_error) {
        _cleanup_(profile_freep) Profile *copy = NULL;
        bool restart, rebind;
        int r;

        if (profile_equal(t->profile, p))
                return 0; /* a reload that did not touch this profile changes nothing here */
        r = profile_dup(p, &copy);
        if (r < 0)
                return r;
        restart = ssh_side_changed(t->profile, copy);
        rebind = listeners_changed(t->profile, copy);
        profile_free(t->profile);
        t->profile = TAKE_PTR(copy);

        if (t->state == TUNNEL_DOWN)
                return 0;
        if (rebind && t->listeners) {
                /* Streams already relayed keep going; only the listening sockets change. */
                t->listeners = client_listeners_free(t->listeners);
                r = client_listeners_new(t->event, t->profile, &t->opener, NULL, &t->listeners, ret_error);
                if (r < 0) {
                        client_tunnel_down(t);
                        return r;
                }
        }
        if (t->state == TUNNEL_FAILED) {
                /* A changed profile is the user's answer to a final failure. */
                t->attempts = 0;
                start_attempt(t);
        } else if (restart) {
                /* Host keys alone do not restart: the running session was checked already. */
                t->attempts = 0;
                start_attempt(t);
        }
        return 0;
}

int client_tunnel_status_json(const ClientTunnel *t, struct json_object **ret) {
        struct json_object *o, *a;
        uint64_t mono = clock_now_usec(CLOCK_MONOTONIC);

        o = json_object_new_object();
        a = json_object_new_array();
        if (!o || !a) {
                json_object_put(o);
                json_object_put(a);
                return -ENOMEM;
        }
        json_object_object_add(o, "name", json_object_new_string(t->profile->name));
        json_object_object_add(o, "state", json_object_new_string(tunnel_state_to_string(t->state)));
        if (t->reason != TUNNEL_REASON_NONE)
                json_object_object_add(o, "reason", json_object_new_string(tunnel_reason_to_string(t->reason)));
        if (t->message[0])
                json_object_object_add(o, "message", json_object_new_string(t->message));
        if (t->presented[0])
                json_object_object_add(o, "presentedHostKey", json_object_new_string(t->presented));
        json_object_object_add(o, "sinceUSec", json_object_new_int64((int64_t) t->since_realtime));
        if (t->state == TUNNEL_UP)
                json_object_object_add(o, "uptimeUSec", json_object_new_int64((int64_t) (mono - t->up_since_monotonic)));
        if (t->state == TUNNEL_BACKOFF && t->next_attempt_realtime)
                json_object_object_add(o, "nextAttemptUSec", json_object_new_int64((int64_t) t->next_attempt_realtime));
        json_object_object_add(o, "attempts", json_object_new_int64(t->attempts));
        json_object_object_add(o, "reconnects", json_object_new_int64(t->reconnects));
        if (t->rtt_valid && t->state == TUNNEL_UP)
                json_object_object_add(o, "rttUSec", json_object_new_int64((int64_t) t->rtt_usec));
        json_object_object_add(o, "channels", json_object_new_int64((int64_t) relay_set_size(t->relays)));
        json_object_object_add(o, "channelsTotal", json_object_new_int64((int64_t) relay_set_total(t->relays)));
        json_object_object_add(o, "bytesIn", json_object_new_int64((int64_t) relay_set_bytes_in(t->relays)));
        json_object_object_add(o, "bytesOut", json_object_new_int64((int64_t) relay_set_bytes_out(t->relays)));
        if (t->listeners) {
                for (char *const *i = client_listeners_socks_addresses(t->listeners); *i; i++)
                        json_object_array_add(a, json_object_new_string(*i));
                for (char *const *i = client_listeners_local_addresses(t->listeners); *i; i++)
                        json_object_array_add(a, json_object_new_string(*i));
        }
        json_object_object_add(o, "listeners", a);
        *ret = o;
        return 0;
}
