/* The daemon's top level: loading, reloading, signals, systemd notification. */
#include <signal.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"
#include "manager.h"

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
        if (r < 0)
                return log_error_errno(r, "Failed to load %s/alknetd.conf: %m", m->config_dir);
        m->config = config;
        if (m->control) {
                ControlLimits limits;
                control_limits_from_config(&m->config, &limits);
                control_server_set_limits(m->control, &limits);
        }

        r = profile_store_load(m->store, problems);
        if (r < 0)
                return log_error_errno(r, "Failed to load profiles: %m");
        return 0;
}

int manager_reload(Manager *m, LoadProblems *problems) {
        int r;

        (void) sd_notify(false, "RELOADING=1\nSTATUS=Reloading configuration");
        log_info("Reloading configuration");
        r = load_all(m, problems);
        if (r >= 0)
                log_info("Reloaded: %zu profiles", m->store->n_profiles);
        (void) sd_notify(false, "READY=1");
        manager_update_status(m);
        return r;
}

void manager_update_status(Manager *m) {
        (void) sd_notifyf(false, "STATUS=%zu profiles, 0 tunnels up", m->store->n_profiles);
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Stopping");
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
        return sd_event_exit(m->event, 0);
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

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        control_server_free(m->control);
        profile_store_free(m->store);
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
        (void) sd_notify(false, "READY=1");
        manager_update_status(m);

        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return r;
}
