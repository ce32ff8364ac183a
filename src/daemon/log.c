/* Daemon logging to stderr. Under systemd, stderr is a journald stream and a "<N>" prefix
 * sets each line's priority; by hand, lines are printed plain. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool use_prefix = false;

/* JOURNAL_STREAM holds "dev:ino" of the stream journald gave us; only when stderr is still
 * that stream do the prefixes reach journald rather than a terminal or a file. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(void) {
        use_prefix = stderr_is_journal();
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_level_from_string(const char *s) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
                [LOG_ERR] = "err",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
                [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
        };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

int log_internal(int level, int error, const char *fmt, ...) {
        char line[2048];
        size_t n = 0;
        va_list ap;
        int saved = errno, k;

        error = abs(error);
        if (use_prefix)
                n = (size_t) snprintf(line, sizeof line, "<%d>", level);
        errno = error; /* for %m */
        va_start(ap, fmt);
        k = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
        va_end(ap);
        if (k > 0)
                n = MIN(n + (size_t) k, sizeof line - 2);
        line[n++] = '\n';

        /* One write per line, so a line is never split between writers. */
        (void) !write(STDERR_FILENO, line, n);

        errno = saved;
        return -error;
}

void log_profile(int level, const char *profile, const char *message_id, const char *fmt, ...) {
        char message[1024];
        va_list ap;

        if (level > max_level)
                return;
        va_start(ap, fmt);
        (void) vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);

        if (use_prefix) {
                int r;

                if (message_id)
                        r = sd_journal_send("MESSAGE=%s", message, "PRIORITY=%i", level, "ALKNET_PROFILE=%s", profile,
                                            "MESSAGE_ID=%s", message_id, "SYSLOG_IDENTIFIER=alknetd", NULL);
                else
                        r = sd_journal_send("MESSAGE=%s", message, "PRIORITY=%i", level, "ALKNET_PROFILE=%s", profile,
                                            "SYSLOG_IDENTIFIER=alknetd", NULL);
                if (r >= 0)
                        return;
        }
        (void) log_internal(level, 0, "%s", message);
}
