/* alknetd: command line, logging setup, the control socket from systemd or by hand. */
#include <getopt.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"
#include "manager.h"

static void help(void) {
        printf("Usage: alknetd [OPTIONS]\n\n"
               "Keeps SSH tunnels up; controlled with alknetctl.\n\n"
               "  -h --help             Show this help\n"
               "     --version          Show the version\n"
               "     --control PATH     Bind the control socket at PATH (default: socket activation)\n"
               "     --config-dir DIR   Configuration directory (default: $CONFIGURATION_DIRECTORY or %s)\n"
               "     --state-dir DIR    State directory (default: $STATE_DIRECTORY or %s)\n"
               "     --log-level LEVEL  debug, info, notice, warning, err (default: info)\n"
               "\nSee alknetd(8).\n",
               ALKNET_CONFIG_DIR, ALKNET_STATE_DIR);
}

/* systemd passes one path per directory directive; with several, the first is ours. */
static const char *env_dir(const char *name, const char *fallback, char *buf, size_t size) {
        const char *e = getenv(name);
        size_t n;

        if (isempty(e))
                return fallback;
        n = strcspn(e, ":");
        if (n >= size)
                return fallback;
        memcpy(buf, e, n);
        buf[n] = '\0';
        return buf;
}

/* Sockets from systemd: "control" (or the only, unnamed one) is the control socket;
 * "server" ones are listeners of the server role. Others are closed, so that nobody waits
 * on a socket that will never be served. */
static int activation_fds(int *ret_control, int **ret_server, size_t *ret_n_server) {
        char **names = NULL;
        int *server = NULL;
        size_t n_server = 0;
        int n, control = -ENOENT;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return n;
        server = calloc(MAX(n, 1), sizeof *server);
        if (!server) {
                for (int i = 0; i < n; i++)
                        free(names[i]);
                free(names);
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;

                if (control < 0 && (streq(names[i], "control") || (n == 1 && streq(names[i], "unknown"))))
                        control = fd;
                else if (streq(names[i], "server"))
                        server[n_server++] = fd;
                else
                        (void) close(fd);
                free(names[i]);
        }
        free(names);
        *ret_control = control;
        *ret_server = server;
        *ret_n_server = n_server;
        return 0;
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_CONTROL, ARG_CONFIG_DIR, ARG_STATE_DIR, ARG_LOG_LEVEL };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "control", required_argument, NULL, ARG_CONTROL },
                { "config-dir", required_argument, NULL, ARG_CONFIG_DIR },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                {},
        };
        char config_buf[4096], state_buf[4096];
        const char *control = NULL, *config_dir, *state_dir;
        _cleanup_(manager_freep) Manager *m = NULL;
        int c, r;

        log_setup();
        config_dir = env_dir("CONFIGURATION_DIRECTORY", ALKNET_CONFIG_DIR, config_buf, sizeof config_buf);
        state_dir = env_dir("STATE_DIRECTORY", ALKNET_STATE_DIR, state_buf, sizeof state_buf);

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("alknetd %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_CONTROL:
                        control = optarg;
                        break;
                case ARG_CONFIG_DIR:
                        config_dir = optarg;
                        break;
                case ARG_STATE_DIR:
                        state_dir = optarg;
                        break;
                case ARG_LOG_LEVEL:
                        r = log_level_from_string(optarg);
                        if (r < 0) {
                                log_error("Unknown log level: %s", optarg);
                                return 2;
                        }
                        log_set_max_level(r);
                        break;
                default:
                        return 2;
                }
        if (optind < argc) {
                log_error("Unexpected argument: %s", argv[optind]);
                return 2;
        }

        r = manager_new(config_dir, state_dir, &m);
        if (r < 0) {
                log_error_errno(r, "Failed to start: %m");
                return 1;
        }

        {
                _cleanup_(freep) int *server_fds = NULL;
                size_t n_server = 0;
                int control_fd = -ENOENT;

                r = activation_fds(&control_fd, &server_fds, &n_server);
                if (r < 0) {
                        log_error_errno(r, "Failed to take sockets from systemd: %m");
                        return 1;
                }
                if (control) {
                        safe_close(control_fd);
                        r = manager_listen_path(m, control);
                } else if (control_fd < 0) {
                        log_error("No control socket: start alknetd through alknetd.socket, or pass --control PATH.");
                        return 1;
                } else
                        r = manager_listen_fd(m, control_fd);
                if (r < 0) {
                        log_error_errno(r, "Failed to set up the control socket %s: %m", strna(control));
                        return 1;
                }
                /* The server role failing (a port in use, an unreadable key) leaves the
                 * client role running; the error is in the journal and in ServerStatus. */
                (void) manager_start_server(m, server_fds, n_server);
        }

        r = manager_run(m);
        return r < 0 ? 1 : 0;
}
