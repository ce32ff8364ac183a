/* Daemon logging: stderr with "<N>" priority prefixes when it is connected to journald,
 * plain stderr otherwise. */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "macro.h"

void log_setup(void);
void log_set_max_level(int level);
int log_get_max_level(void);
int log_level_from_string(const char *s);

/* Logs at level; with error != 0, %m expands to strerror(error). Returns -abs(error). */
int log_internal(int level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_full_errno(level, error, ...)                                        \
        ({                                                                       \
                int _l_ = (level), _e_ = (error);                                \
                (_l_ <= log_get_max_level()) ? log_internal(_l_, _e_, __VA_ARGS__) \
                                             : -abs(_e_);                        \
        })
#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_notice_errno(e, ...) log_full_errno(LOG_NOTICE, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")

/* MESSAGE_ID= of events an admin filters on (journalctl MESSAGE_ID=...). */
#define ALKNET_MESSAGE_TUNNEL_STATE "c8274bf101d845f1974ee46452c9e95d"
#define ALKNET_MESSAGE_HOSTKEY "59c63aa34ad14b838eb9d90eadca074e"

/* Logs a line about one profile. Under journald it is sent with the structured fields
 * ALKNET_PROFILE= and MESSAGE_ID= (when message_id is set); elsewhere it is a plain line.
 * Never pass destinations, names looked up for them, or per-connection byte counts. */
void log_profile(int level, const char *profile, const char *message_id, const char *fmt, ...) _printf_(4, 5);
