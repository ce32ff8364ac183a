/* The Manager owns everything the daemon runs: the event loop, configuration, the profile
 * store and the control server. */
#pragma once

#include <systemd/sd-event.h>

#include "client-tunnel.h"
#include "control.h"
#include "daemon-config.h"
#include "load-problem.h"
#include "netwatch.h"
#include "profile-store.h"
#include "server.h"

/* A control connection waiting for tunnel news: an Up that answers once the attempt has
 * an outcome, or a Monitor that streams every change. */
typedef struct Waiter {
        struct Waiter *prev, *next;
        ControlConnection *connection;
        char *name; /* Up: the profile; Monitor: NULL */
} Waiter;

typedef struct Manager {
        sd_event *event;
        char *config_dir;
        char *state_dir;
        DaemonConfig config;
        ProfileStore *store;
        ControlServer *control;
        sd_event_source *sigterm, *sigint, *sighup;

        ClientTunnel **tunnels; /* one per profile, in store order */
        size_t n_tunnels;
        Netwatch *netwatch;
        Server *server; /* the server role, when configured or handed listeners */
        char *server_error;
        Waiter *waiters;
        bool stopping;
        sd_event_source *drain_timer;
        uint64_t drain_deadline;
} Manager;

/* Creates the loop and loads configuration and profiles (problems are logged). */
int manager_new(const char *config_dir, const char *state_dir, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_POINTER_CLEANUP_FUNC(Manager, manager_free);

/* Serve the control interface on a listening socket (socket activation) or a path. */
int manager_listen_fd(Manager *m, int fd);
int manager_listen_path(Manager *m, const char *path);

/* Re-reads alknetd.conf and every profile; problems are logged and, if given, returned. */
int manager_reload(Manager *m, LoadProblems *problems);

/* Runs until SIGTERM/SIGINT; tells systemd READY=1, STATUS=, STOPPING=1. */
int manager_run(Manager *m);

/* STATUS= line for systemd. */
void manager_update_status(Manager *m);

/* The authorizer of changing control calls: uid 0, our own uid, or the admin group. */
bool manager_peer_is_admin(const ControlPeer *peer, void *userdata);

ClientTunnel *manager_get_tunnel(Manager *m, const char *name);

/* Starts the server role when [Server] is configured or systemd passed listeners ("server"
 * fds; Listen=tls:... entries with the same port mark which of them speak TLS). Takes
 * the fds. */
int manager_start_server(Manager *m, const int *fds, size_t n_fds);

/* Creates, updates and removes tunnels so that there is one per profile (after a load or
 * a profile change); a changed profile applies to its running tunnel. */
int manager_sync_tunnels(Manager *m);

/* Brings up the AutoStart=yes profiles. */
void manager_autostart(Manager *m);

/* Pins fingerprint into the named profile's HostKey= and stores it. -EROFS for admin files. */
int manager_pin_host_key(Manager *m, const char *name, const char *fingerprint);

/* Waiters: answered or streamed to from the tunnel state hook. */
int manager_add_waiter(Manager *m, ControlConnection *c, const char *name);

/* Registers io.alknet.Manager on m->control (manager-varlink.c). */
int manager_varlink_register(Manager *m);
