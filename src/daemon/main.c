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

/* The socket named "control" from systemd, or the only one when unnamed. */
static int activation_fd(void) {
        char **names = NULL;
        int n, fd = -ENOENT;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return n;
        for (int i = 0; i < n; i++)
                if (fd < 0 && (streq(names[i], "control") || (n == 1 && streq(names[i], "unknown"))))
                        fd = SD_LISTEN_FDS_START + i;
        for (int i = 0; i < n; i++) {
                /* Sockets we do not serve yet are closed so that nobody waits on them. */
                if (SD_LISTEN_FDS_START + i != fd)
                        (void) close(SD_LISTEN_FDS_START + i);
                free(names[i]);
        }
        free(names);
        return n == 0 ? -ENOENT : fd;
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

        if (control)
                r = manager_listen_path(m, control);
        else {
                int fd = activation_fd();
                if (fd == -ENOENT) {
                        log_error("No control socket: start alknetd through alknetd.socket, or pass --control PATH.");
                        return 1;
                }
                r = fd < 0 ? fd : manager_listen_fd(m, fd);
        }
        if (r < 0) {
                log_error_errno(r, "Failed to set up the control socket %s: %m", strna(control));
                return 1;
        }

        r = manager_run(m);
        return r < 0 ? 1 : 0;
}
