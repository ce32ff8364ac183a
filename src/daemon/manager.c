/* The daemon's top level: loading, reloading, signals, systemd notification. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"
#include "manager.h"
#include "tls.h"

static void control_limits_from_config(const DaemonConfig *c, ControlLimits *ret) {
        *ret = (ControlLimits) {
                .max_connections = c->max_connections,
                .max_message_size = c->max_message_size,
                .max_depth = CONTROL_MAX_DEPTH_DEFAULT,
                .max_output = CONTROL_MAX_OUTPUT_DEFAULT,
        };
}

bool manager_peer_is_admin(const ControlPeer *peer, void *userdata) {
        Manager *m = userdata;

        if (peer->uid == 0 || peer->uid == getuid())
                return true;
        if (!m->config.admin_gid_set)
                return false;
        if (peer->gid == m->config.admin_gid)
                return true;
        for (size_t i = 0; i < peer->n_groups; i++)
                if (peer->groups[i] == m->config.admin_gid)
                        return true;
        return false;
}

static int load_all(Manager *m, LoadProblems *problems) {
        DaemonConfig config;
        int r;

        daemon_config_init(&config);
        r = daemon_config_load(&config, m->config_dir, problems);
        if (r < 0) {
                daemon_config_done(&config);
                return log_error_errno(r, "Failed to load %s/alknetd.conf: %m", m->config_dir);
        }
        daemon_config_done(&m->config);
        m->config = config;
        if (m->control) {
                ControlLimits limits;
                control_limits_from_config(&m->config, &limits);
                control_server_set_limits(m->control, &limits);
        }

        if (m->server) {
                r = server_reload(m->server, &m->config.server);
                if (r < 0)
                        log_error_errno(r, "Failed to reload the server role, keeping its previous settings: %m");
        }
        r = profile_store_load(m->store, problems);
        if (r < 0)
                return log_error_errno(r, "Failed to load profiles: %m");
        return manager_sync_tunnels(m);
}

int manager_reload(Manager *m, LoadProblems *problems) {
        int r;

        (void) sd_notify(false, "RELOADING=1\nSTATUS=Reloading configuration");
        log_info("Reloading configuration");
        tls_forget_system_store(); /* ca-certificates may have changed */
        r = load_all(m, problems);
        if (r >= 0)
                log_info("Reloaded: %zu profiles", m->store->n_profiles);
        (void) sd_notify(false, "READY=1");
        manager_update_status(m);
        return r;
}

void manager_update_status(Manager *m) {
        size_t up = 0, wanted = 0;

        for (size_t i = 0; i < m->n_tunnels; i++) {
                TunnelState st;

                if (!m->tunnels[i])
                        continue; /* being moved by manager_sync_tunnels() */
                st = client_tunnel_state(m->tunnels[i]);
                if (st != TUNNEL_DOWN)
                        wanted++;
                if (st == TUNNEL_UP)
                        up++;
        }
        (void) sd_notifyf(false, "STATUS=%zu/%zu tunnels up, %zu profiles", up, wanted, m->store->n_profiles);
}

ClientTunnel *manager_get_tunnel(Manager *m, const char *name) {
        for (size_t i = 0; i < m->n_tunnels; i++)
                if (m->tunnels[i] && streq(client_tunnel_name(m->tunnels[i]), name))
                        return m->tunnels[i];
        return NULL;
}

static void waiter_free(Manager *m, Waiter *w) {
        if (w->prev)
                w->prev->next = w->next;
        else
                m->waiters = w->next;
        if (w->next)
                w->next->prev = w->prev;
        free(w->name);
        free(w);
}

static void waiter_connection_closed(ControlConnection *c, void *userdata) {
        Manager *m = userdata;

        for (Waiter *w = m->waiters, *next; w; w = next) {
                next = w->next;
                if (w->connection == c)
                        waiter_free(m, w);
        }
}

int manager_add_waiter(Manager *m, ControlConnection *c, const char *name) {
        Waiter *w;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        if (name) {
                w->name = strdup(name);
                if (!w->name) {
                        free(w);
                        return -ENOMEM;
                }
        }
        w->connection = c;
        w->next = m->waiters;
        if (w->next)
                w->next->prev = w;
        m->waiters = w;
        control_connection_set_close_callback(c, waiter_connection_closed, m);
        return 0;
}

static bool state_is_outcome(TunnelState s) {
        return s == TUNNEL_UP || s == TUNNEL_BACKOFF || s == TUNNEL_FAILED || s == TUNNEL_DOWN;
}

static void on_tunnel_state(ClientTunnel *t, void *userdata) {
        Manager *m = userdata;
        const char *name = client_tunnel_name(t);
        TunnelState st = client_tunnel_state(t);

        for (Waiter *w = m->waiters, *next; w; w = next) {
                struct json_object *status, *p;
                ControlConnection *c = w->connection;
                bool final;

                next = w->next;
                if (w->name && (!streq(w->name, name) || !state_is_outcome(st)))
                        continue;
                if (client_tunnel_status_json(t, &status) < 0)
                        continue;
                p = json_object_new_object();
                if (!p) {
                        json_object_put(status);
                        continue;
                }
                json_object_object_add(p, "status", status);
                final = w->name != NULL;
                if (final) {
                        /* Up got its answer: this waiter is done. */
                        control_connection_set_close_callback(c, NULL, NULL);
                        waiter_free(m, w);
                        (void) control_reply(c, p);
                } else
                        (void) control_reply_more(c, p); /* on failure the close callback removed w */
        }
        manager_update_status(m);
}

static int on_pin_host_key(ClientTunnel *t, const char *fingerprint, void *userdata) {
        Manager *m = userdata;
        int r;

        r = manager_pin_host_key(m, client_tunnel_name(t), fingerprint);
        if (r < 0)
                return r;
        /* The tunnel checks keys against its own copy of the profile: without the pin there,
         * the next reconnect would accept (and pin) whatever other key it is shown. */
        return client_tunnel_set_profile(t, profile_store_get(m->store, client_tunnel_name(t)), NULL);
}

int manager_sync_tunnels(Manager *m) {
        static const ClientTunnelHooks hooks = {
                .state_changed = on_tunnel_state,
                .pin_host_key = on_pin_host_key,
        };
        ClientTunnel **l;
        size_t n = 0;
        int r = 0;

        l = calloc(MAX(m->store->n_profiles, (size_t) 1), sizeof *l);
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < m->store->n_profiles; i++) {
                const Profile *p = m->store->profiles[i];
                ClientTunnel *t = NULL;

                for (size_t j = 0; j < m->n_tunnels; j++)
                        if (m->tunnels[j] && streq(client_tunnel_name(m->tunnels[j]), p->name)) {
                                t = TAKE_PTR(m->tunnels[j]);
                                break;
                        }
                if (t) {
                        _cleanup_(freep) char *error = NULL;
                        int k = client_tunnel_set_profile(t, p, &error);
                        if (k < 0)
                                log_profile(LOG_ERR, p->name, NULL, "Tunnel %s: cannot apply the changed profile: %s: %s",
                                            p->name, strna(error), strerror(-k));
                } else {
                        int k = client_tunnel_new(m->event, p, m->state_dir, &hooks, m, &t);
                        if (k < 0) {
                                r = k;
                                continue;
                        }
                }
                l[n++] = t;
        }
        /* Tunnels whose profile is gone. */
        for (size_t j = 0; j < m->n_tunnels; j++)
                if (m->tunnels[j]) {
                        client_tunnel_down(m->tunnels[j]);
                        client_tunnel_free(m->tunnels[j]);
                }
        free(m->tunnels);
        m->tunnels = l;
        m->n_tunnels = n;
        manager_update_status(m);
        return r;
}

void manager_autostart(Manager *m) {
        for (size_t i = 0; i < m->n_tunnels; i++) {
                const Profile *p = profile_store_get(m->store, client_tunnel_name(m->tunnels[i]));
                _cleanup_(freep) char *error = NULL;
                int r;

                if (!p || !p->auto_start)
                        continue;
                r = client_tunnel_up(m->tunnels[i], &error);
                if (r < 0)
                        log_profile(LOG_ERR, p->name, NULL, "Tunnel %s: cannot listen on %s: %s", p->name, strna(error),
                                    strerror(-r));
        }
}

int manager_pin_host_key(Manager *m, const char *name, const char *fingerprint) {
        _cleanup_(profile_freep) Profile *p = NULL;
        ProfileError err = {};
        Profile *old;
        int r;

        old = profile_store_get(m->store, name);
        if (!old)
                return -ENOENT;
        if (old->read_only)
                return -EROFS;
        r = profile_dup(old, &p);
        if (r < 0)
                return r;
        r = profile_set(p, "HostKey", fingerprint, &err);
        if (r < 0)
                return r;
        r = profile_store_replace(m->store, p, &err);
        if (r < 0)
                return r;
        TAKE_PTR(p);
        log_notice("Profile %s: pinned host key %s", name, fingerprint);
        return 0;
}

static uint16_t socket_port(int fd) {
        struct sockaddr_storage sa = {};
        socklen_t len = sizeof sa;

        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return 0;
        if (sa.ss_family == AF_INET)
                return ntohs(((struct sockaddr_in *) &sa)->sin_port);
        if (sa.ss_family == AF_INET6)
                return ntohs(((struct sockaddr_in6 *) &sa)->sin6_port);
        return 0;
}

int manager_start_server(Manager *m, const int *fds, size_t n_fds) {
        _cleanup_(server_freep) Server *s = NULL;
        ServerConfig *c = &m->config.server;
        int r;

        if (!c->seen && n_fds == 0)
                return 0;
        r = server_new(m->event, c, m->state_dir, &s);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < n_fds; i++) {
                ServerTransport t = SERVER_TRANSPORT_TCP;
                uint16_t port = socket_port(fds[i]);
                bool listed = false;

                for (size_t j = 0; j < c->n_listen; j++)
                        if (c->listen[j].port == port) {
                                t = c->listen[j].transport;
                                listed = true;
                        }
                /* Port 443 served as plain SSH is almost always a forgotten Listen=tls: line,
                 * and it is exactly what a censor's probe would see. */
                if (!listed && port == 443)
                        log_warning("Handed-over listener on port 443 has no [Server] Listen=tls: entry, "
                                    "so it serves plain SSH, not TLS");
                else if (!listed)
                        log_notice("Handed-over listener on port %u has no [Server] Listen= entry; it serves plain SSH",
                                   port);
                r = server_add_listen_fd(s, fds[i], t);
                if (r < 0)
                        goto fail;
        }
        r = server_start(s, n_fds > 0);
        if (r < 0)
                goto fail;
        m->server = TAKE_PTR(s);
        log_info("Server role running");
        return 0;

fail:
        free(m->server_error);
        m->server_error = strdup(strerror(-r));
        return log_error_errno(r, "The server role could not start: %m");
}

static void on_network_change(Netwatch *w, unsigned changes, void *userdata) {
        Manager *m = userdata;

        for (size_t i = 0; i < m->n_tunnels; i++)
                client_tunnel_network_changed(m->tunnels[i]);
}

static size_t channels_open(Manager *m) {
        size_t n = m->server ? server_n_channels(m->server) : 0;
        for (size_t i = 0; i < m->n_tunnels; i++)
                n += client_tunnel_n_channels(m->tunnels[i]);
        return n;
}

/* Shutdown: listeners are closed at once, open streams get up to TUNNEL_DRAIN_USEC to
 * finish, then the sessions are disconnected as the manager is freed. */
static int on_drain(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t t;

        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &t);
        if (channels_open(m) == 0 || usec >= m->drain_deadline)
                return sd_event_exit(m->event, 0);
        /* A time source is off once it fired: a new time alone would never fire. */
        if (sd_event_source_set_time(s, t + 50 * USEC_PER_MSEC) < 0 ||
            sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) < 0)
                return sd_event_exit(m->event, 0);
        return 0;
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        uint64_t t;
        int r;

        if (m->stopping)
                return 0;
        m->stopping = true;
        log_info("Stopping");
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
        for (size_t i = 0; i < m->n_tunnels; i++)
                client_tunnel_stop_accepting(m->tunnels[i]);
        if (m->server)
                server_stop_accepting(m->server);
        if (channels_open(m) == 0)
                return sd_event_exit(m->event, 0);

        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &t);
        m->drain_deadline = t + TUNNEL_DRAIN_USEC;
        r = sd_event_add_time(m->event, &m->drain_timer, CLOCK_MONOTONIC, t + 50 * USEC_PER_MSEC, 1, on_drain, m);
        if (r < 0)
                return sd_event_exit(m->event, 0);
        return 0;
}

static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) manager_reload(userdata, NULL);
        return 0;
}

static int add_signals(Manager *m) {
        sigset_t mask;
        int r;

        /* libsystemd 252 has no SD_EVENT_SIGNAL_PROCMASK: block them ourselves first. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        (void) signal(SIGPIPE, SIG_IGN);

        r = sd_event_add_signal(m->event, &m->sigterm, SIGTERM, on_terminate, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sigint, SIGINT, on_terminate, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sighup, SIGHUP, on_reload, m);
        return r;
}

int manager_new(const char *config_dir, const char *state_dir, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        ControlLimits limits;
        int r;

        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->config_dir = strdup(config_dir);
        m->state_dir = strdup(state_dir);
        if (!m->config_dir || !m->state_dir)
                return -ENOMEM;
        daemon_config_init(&m->config);

        r = sd_event_new(&m->event);
        if (r < 0)
                return r;
        r = add_signals(m);
        if (r < 0)
                return r;
        /* Pings the service manager's watchdog from the loop, when WatchdogSec= is set. */
        (void) sd_event_set_watchdog(m->event, true);

        r = profile_store_new(config_dir, state_dir, &m->store);
        if (r < 0)
                return r;
        r = load_all(m, NULL);
        if (r < 0)
                return r;

        control_limits_from_config(&m->config, &limits);
        r = control_server_new(m->event, &limits, &m->control);
        if (r < 0)
                return r;
        control_server_set_authorizer(m->control, manager_peer_is_admin, m);
        r = manager_varlink_register(m);
        if (r < 0)
                return r;

        /* Without rtnetlink (odd sandboxes) tunnels still retry on their own schedule. */
        r = netwatch_new(m->event, on_network_change, m, &m->netwatch);
        if (r < 0)
                log_warning_errno(r, "Cannot watch for network changes, retries follow the backoff only: %m");

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        /* Waiting control calls are answered by their connections closing. */
        control_server_free(m->control);
        for (size_t i = 0; i < m->n_tunnels; i++)
                client_tunnel_free(m->tunnels[i]);
        free(m->tunnels);
        while (m->waiters)
                waiter_free(m, m->waiters);
        netwatch_free(m->netwatch);
        server_free(m->server);
        free(m->server_error);
        tls_forget_system_store();
        sd_event_source_disable_unref(m->drain_timer);
        profile_store_free(m->store);
        daemon_config_done(&m->config);
        sd_event_source_disable_unref(m->sigterm);
        sd_event_source_disable_unref(m->sigint);
        sd_event_source_disable_unref(m->sighup);
        sd_event_unref(m->event);
        free(m->config_dir);
        free(m->state_dir);
        free(m);
        return NULL;
}

int manager_listen_fd(Manager *m, int fd) {
        return control_server_listen_fd(m->control, fd);
}

int manager_listen_path(Manager *m, const char *path) {
        /* By hand (tests, debugging) the socket is ours to create; systemd's unit sets 0660. */
        return control_server_listen_path(m->control, path, 0660);
}

int manager_run(Manager *m) {
        int r;

        log_info("alknetd %s running, %zu profiles", PACKAGE_VERSION, m->store->n_profiles);
        manager_autostart(m);
        (void) sd_notify(false, "READY=1");
        manager_update_status(m);

        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return r;
}
