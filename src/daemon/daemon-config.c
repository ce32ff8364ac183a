/* Loading alknetd.conf and its drop-ins. Unknown keys are reported and ignored, so an
 * older daemon still starts with a newer config; bad values keep the default. */
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "daemon-config.h"
#include "fileio.h"
#include "ini.h"
#include "macro.h"

void daemon_config_init(DaemonConfig *c) {
        *c = (DaemonConfig) {
                .max_connections = CONTROL_MAX_CONNECTIONS_DEFAULT,
                .max_message_size = CONTROL_MAX_MESSAGE_SIZE_DEFAULT,
        };
        server_config_init(&c->server);
}

void daemon_config_done(DaemonConfig *c) {
        server_config_done(&c->server);
}

int parse_size(const char *s, size_t *ret) {
        unsigned long long v, mul = 1;
        char *end;

        if (!s || !*s || *s == '-' || *s == '+')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || end == s)
                return -EINVAL;
        if (streq(end, "K"))
                mul = 1024;
        else if (streq(end, "M"))
                mul = 1024 * 1024;
        else if (!streq(end, "") && !streq(end, "B"))
                return -EINVAL;
        if (v > SIZE_MAX / mul)
                return -ERANGE;
        *ret = (size_t) (v * mul);
        return 0;
}

static int parse_unsigned(const char *s, unsigned min, unsigned max, unsigned *ret) {
        unsigned long v;
        char *end;

        if (!s || !*s || *s == '-' || *s == '+')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

static int parse_group(const char *s, gid_t *ret) {
        unsigned v;
        struct group *g;

        if (parse_unsigned(s, 0, INT32_MAX - 1, &v) >= 0) {
                *ret = (gid_t) v;
                return 0;
        }
        /* A name lookup may touch NSS; it only happens at start and on reload. */
        errno = 0;
        g = getgrnam(s);
        if (!g)
                return errno > 0 ? -errno : -ESRCH;
        *ret = g->gr_gid;
        return 0;
}

typedef struct ParseState {
        DaemonConfig *config;
        const char *file;
        LoadProblems *problems;
} ParseState;

static int config_assignment(const char *section, const char *key, const char *value, unsigned line,
                             void *userdata) {
        ParseState *st = userdata;
        DaemonConfig *c = st->config;
        char reason[256];
        int r;

        if (streq(section, "Server")) {
                r = server_config_set(&c->server, key, value, reason, sizeof reason);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return load_problems_add(st->problems, st->file, line, key, reason,
                                                 server_config_fails_closed(&c->server, key) ? "fix it and reload"
                                                                                             : "ignored");
                return 0;
        }
        if (!streq(section, "Control")) {
                /* Sections of roles this daemon does not have are reported, not fatal. */
                (void) snprintf(reason, sizeof reason, "unknown section [%s]", section);
                return load_problems_add(st->problems, st->file, line, key, reason, "ignored");
        }

        if (streq(key, "AdminGroup")) {
                gid_t gid;

                if (isempty(value)) {
                        c->admin_gid_set = false;
                        return 0;
                }
                r = parse_group(value, &gid);
                if (r < 0) {
                        (void) snprintf(reason, sizeof reason, "no such group: %s", value);
                        return load_problems_add(st->problems, st->file, line, key, reason, "ignored");
                }
                c->admin_gid = gid;
                c->admin_gid_set = true;
        } else if (streq(key, "MaxConnections")) {
                unsigned v;

                if (isempty(value)) {
                        c->max_connections = CONTROL_MAX_CONNECTIONS_DEFAULT;
                        return 0;
                }
                r = parse_unsigned(value, 1, CONTROL_MAX_CONNECTIONS_LIMIT, &v);
                if (r < 0) {
                        (void) snprintf(reason, sizeof reason, "not a number in 1-%u: %s",
                                        CONTROL_MAX_CONNECTIONS_LIMIT, value);
                        return load_problems_add(st->problems, st->file, line, key, reason, "ignored");
                }
                c->max_connections = v;
        } else if (streq(key, "MaxMessageSize")) {
                size_t v;

                if (isempty(value)) {
                        c->max_message_size = CONTROL_MAX_MESSAGE_SIZE_DEFAULT;
                        return 0;
                }
                r = parse_size(value, &v);
                if (r < 0 || v < CONTROL_MAX_MESSAGE_SIZE_MIN || v > CONTROL_MAX_MESSAGE_SIZE_LIMIT) {
                        (void) snprintf(reason, sizeof reason, "not a size in 4K-16M: %s", value);
                        return load_problems_add(st->problems, st->file, line, key, reason, "ignored");
                }
                c->max_message_size = v;
        } else
                return load_problems_add(st->problems, st->file, line, key, "unknown key", "ignored");

        return 0;
}

int daemon_config_parse(DaemonConfig *c, const char *file, const char *text, size_t size, LoadProblems *problems) {
        ParseState st = { .config = c, .file = file, .problems = problems };
        const char *reason = NULL;
        unsigned line = 0;
        int r;

        r = ini_parse(text, size, config_assignment, &st, &line, &reason);
        if (r == -EBADMSG)
                /* Lines before the bad one have applied; the rest of the file is skipped. */
                return load_problems_add(problems, file, line, "", reason ?: "syntax error",
                                         "rest of file ignored");
        return r;
}

static int load_one(DaemonConfig *c, int dirfd, const char *name, const char *display, LoadProblems *problems) {
        _cleanup_(freep) char *text = NULL;
        size_t size;
        int r;

        r = read_full_file_at(dirfd, name, CONFIG_FILE_SIZE_MAX, &text, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                char reason[128];
                (void) snprintf(reason, sizeof reason, "cannot read: %s", strerror(-r));
                return load_problems_add(problems, display, 0, "", reason, "file skipped");
        }
        return daemon_config_parse(c, display, text, size, problems);
}

int daemon_config_load(DaemonConfig *c, const char *config_dir, LoadProblems *problems) {
        _cleanup_(strv_freep) char **names = NULL;
        _cleanup_(closep) int dfd = -EBADF;
        char path[PATH_MAX];
        int r;

        dfd = open(config_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return errno == ENOENT ? 0 : -errno;

        (void) snprintf(path, sizeof path, "%s/alknetd.conf", config_dir);
        r = load_one(c, dfd, "alknetd.conf", path, problems);
        if (r < 0)
                return r;

        r = list_conf_files_at(dfd, "alknetd.conf.d", &names);
        if (r == -ENOENT || r == -ENOTDIR)
                return 0;
        if (r < 0)
                return r;
        for (char **name = names; *name; name++) {
                char rel[PATH_MAX];

                (void) snprintf(path, sizeof path, "%s/alknetd.conf.d/%s", config_dir, *name);
                (void) snprintf(rel, sizeof rel, "alknetd.conf.d/%s", *name);
                r = load_one(c, dfd, rel, path, problems);
                if (r < 0)
                        return r;
        }
        return 0;
}
