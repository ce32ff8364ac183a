/* alknetd.conf: daemon-wide settings: [Control] and the server role's [Server]. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "load-problem.h"
#include "server-config.h"

#define CONTROL_MAX_CONNECTIONS_DEFAULT 64u
#define CONTROL_MAX_CONNECTIONS_LIMIT 4096u
#define CONTROL_MAX_MESSAGE_SIZE_DEFAULT (64u * 1024u)
#define CONTROL_MAX_MESSAGE_SIZE_MIN (4u * 1024u)
#define CONTROL_MAX_MESSAGE_SIZE_LIMIT (16u * 1024u * 1024u)

typedef struct DaemonConfig {
        bool admin_gid_set;
        gid_t admin_gid;
        unsigned max_connections;
        size_t max_message_size;
        ServerConfig server;
} DaemonConfig;

void daemon_config_init(DaemonConfig *c);
void daemon_config_done(DaemonConfig *c);

/* Applies one file's text on top of c. Bad lines are reported to problems (and logged)
 * and skipped; the rest applies. Returns 0, or -ENOMEM. */
int daemon_config_parse(DaemonConfig *c, const char *file, const char *text, size_t size, LoadProblems *problems);

/* Reads DIR/alknetd.conf, then DIR/alknetd.conf.d/ *.conf in name order, over the defaults.
 * A missing file is not an error. */
int daemon_config_load(DaemonConfig *c, const char *config_dir, LoadProblems *problems);

/* "64K", "1M", "4096" → bytes. */
int parse_size(const char *s, size_t *ret);
