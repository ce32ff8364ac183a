/* alknetctl: the command line client of alknetd. Each verb is one io.alknet.Manager call
 * over the Varlink control socket, printed as a table or "Key: value" lines, or --json. */
#include <assert.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "profile.h"
#include "table.h"
#include "varlink.h"
#include "varlink-client.h"

/* Documented in alknetctl(1); scripts rely on them. */
enum {
        EXIT_OK = 0,
        EXIT_DAEMON_ERROR = 1, /* alknetd answered with an error, or a local failure */
        EXIT_USAGE = 2,
        EXIT_UNREACHABLE = 3, /* alknetd could not be reached or gave no valid answer */
        EXIT_NOT_UP = 1, /* up/restart: the first attempt did not bring the tunnel up */
};

#define MANAGER "io.alknet.Manager."
#define ERROR_PREFIX "io.alknet.Manager."

static const char *arg_socket = ALKNET_CONTROL_SOCKET;
static bool arg_json = false;
static uint64_t arg_timeout_usec = VARLINK_CLIENT_TIMEOUT_DEFAULT_USEC;
static bool arg_timeout_set = false;
static bool arg_no_wait = false;
/* The fingerprint given to trust, for the FingerprintMismatch message. */
static const char *arg_fingerprint = NULL;
/* Settings from the flags of add/set, in command line order; sent before Key=Value ones. */
static struct json_object *arg_settings = NULL;
static const char *arg_first_setting_flag = NULL;

typedef struct Verb {
        const char *name;
        const char *args; /* for usage lines */
        unsigned min_args, max_args; /* not counting the verb itself */
        int (*run)(int argc, char *argv[]);
        bool changes_state; /* needs root or the admin group */
        bool takes_settings; /* accepts the setting flags (--server ...) */
        bool takes_no_wait; /* accepts --no-wait */
        const char *help;
} Verb;

/* --flag → profile key, for add and set. */
typedef struct SettingFlag {
        const char *flag;
        const char *key;
        const char *metavar; /* for --help */
} SettingFlag;

static const SettingFlag setting_flags[] = {
        { "server",              "Server",            "HOST[:PORT]"       },
        { "user",                "User",              "NAME"              },
        { "identity",            "Identity",          "PATH"              },
        { "host-key",            "HostKey",           "SHA256:..."        },
        { "host-key-policy",     "HostKeyPolicy",     "strict|accept-new" },
        { "transport",           "Transport",         "tcp|tls"           },
        { "tls-server-name",     "TLSServerName",     "NAME"              },
        { "tls-verify",          "TLSVerify",         "yes|no"            },
        { "tls-ca",              "TLSCA",             "PATH"              },
        { "tls-pin",             "TLSPin",            "sha256//..."       },
        { "proxy",               "Proxy",             "URL"               },
        { "autostart",           "AutoStart",         "yes|no"            },
        { "keepalive-interval",  "KeepaliveInterval", "TIME"              },
        { "keepalive-count-max", "KeepaliveCountMax", "N"                 },
        { "socks",               "Listen",            "ADDRESS|none"      },
        { "socks-username",      "Username",          "NAME"              },
        { "socks-password-file", "PasswordFile",      "PATH"              },
        { "local",               "Local",             "LISTEN:HOST:PORT"  },
        { "remote",              "Remote",            "LISTEN:HOST:PORT"  },
};

/* ---- output helpers ---- */

static void log_error(const char *fmt, ...) _printf_(1, 2);
static void log_error(const char *fmt, ...) {
        va_list ap;

        fputs("alknetctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static int log_oom(void) {
        log_error("out of memory");
        return EXIT_DAEMON_ERROR;
}

/* Values are data: control characters never reach the terminal as such. */
static void put_value(const char *s) {
        if (isempty(s)) {
                fputc('-', stdout);
                return;
        }
        for (; *s; s++)
                fputc((unsigned char) *s < 0x20 || *s == 0x7F ? '?' : *s, stdout);
}

static void show_line(const char *key, const char *value) {
        printf("%s: ", key);
        put_value(value);
        fputc('\n', stdout);
}

static int print_json(struct json_object *o) {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s)
                return log_oom();
        puts(s);
        return EXIT_OK;
}

/* Tolerant accessors: a field a newer or older daemon does not send shows as "-". */
static const char *json_get_str(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static int json_get_bool(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
                return -1;
        return json_object_get_boolean(v);
}

static bool json_get_int(struct json_object *o, const char *key, int64_t *ret) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        *ret = json_object_get_int64(v);
        return true;
}

static struct json_object *json_get_array(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
                return NULL;
        return v;
}

static const char *yes_no_na(int b) {
        return b < 0 ? NULL : b ? "yes" : "no";
}

/* "15s", "1min 30s", "250ms": the largest units first, zero parts left out. */
static void format_timespan(uint64_t usec, char *buf, size_t size) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                { "d",   24 * 3600 * USEC_PER_SEC },
                { "h",   3600 * USEC_PER_SEC      },
                { "min", 60 * USEC_PER_SEC        },
                { "s",   USEC_PER_SEC             },
                { "ms",  USEC_PER_MSEC            },
                { "us",  1                        },
        };
        size_t l = 0;

        assert(size > 0);

        if (usec == 0) {
                snprintf(buf, size, "0");
                return;
        }

        buf[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(units) && usec > 0; i++) {
                uint64_t n = usec / units[i].usec;
                if (n == 0)
                        continue;
                usec %= units[i].usec;
                int k = snprintf(buf + l, size - l, "%s%" PRIu64 "%s", l > 0 ? " " : "", n, units[i].suffix);
                if (k < 0 || (size_t) k >= size - l)
                        return;
                l += (size_t) k;
        }
}

/* ---- talking to alknetd ---- */

static int error_connect(int r) {
        const char *hint;

        switch (r) {
        case -ENOENT:
        case -ECONNREFUSED:
                hint = " (is alknetd.socket enabled?)";
                break;
        case -EACCES:
        case -EPERM:
                hint = " (run as root or as a member of the alknet group)";
                break;
        case -ENAMETOOLONG:
                log_error("cannot reach alknetd at %s: socket path too long", arg_socket);
                return EXIT_UNREACHABLE;
        default:
                hint = "";
        }

        log_error("cannot reach alknetd at %s: %s%s", arg_socket, strerror(-r), hint);
        return EXIT_UNREACHABLE;
}

static int error_transport(int r) {
        switch (r) {
        case -ETIMEDOUT:
                log_error("alknetd at %s did not answer in time (see --timeout)", arg_socket);
                break;
        case -ECONNRESET:
                log_error("alknetd at %s closed the connection", arg_socket);
                break;
        case -EBADMSG:
        case -EPROTO:
        case -EMSGSIZE:
                log_error("invalid reply from alknetd at %s: %s", arg_socket, strerror(-r));
                break;
        case -ENOMEM:
                return log_oom();
        default:
                log_error("communication with alknetd at %s failed: %s", arg_socket, strerror(-r));
        }
        return EXIT_UNREACHABLE;
}

/* One human line for every error of the interface; an unknown name is printed as is. */
static int error_reply(const char *error, struct json_object *p) {
        const char *name = json_get_str(p, "name");
        const char *e = startswith(error, ERROR_PREFIX);

        if (e && streq(e, "NoSuchProfile"))
                log_error("no such profile: %s", strempty(name));
        else if (e && streq(e, "ProfileExists"))
                log_error("profile already exists: %s", strempty(name));
        else if (e && streq(e, "ReadOnlyProfile"))
                log_error("profile %s is read-only: it is defined in %s (edit that file, then run 'alknetctl reload')",
                          strempty(name), strna(json_get_str(p, "file")));
        else if (e && streq(e, "InvalidProfile")) {
                const char *field = json_get_str(p, "field"), *reason = json_get_str(p, "reason");
                if (isempty(field))
                        log_error("invalid profile: %s", strna(reason));
                else
                        log_error("invalid profile: %s: %s", field, strna(reason));
        } else if ((e && streq(e, "PermissionDenied")) || streq(error, VARLINK_ERROR_PERMISSION_DENIED))
                log_error("permission denied (run as root or as a member of the admin group)");
        else if (e && streq(e, "StorageFailed"))
                log_error("alknetd could not store the profile: %s", strna(json_get_str(p, "reason")));
        else if (e && streq(e, "NoHostKeyToTrust"))
                log_error("no host key to trust: %s has not been presented one (run alknetctl up %s first)",
                          strempty(name), strempty(name));
        else if (e && streq(e, "FingerprintMismatch")) {
                if (arg_fingerprint)
                        log_error("the server presented %s, not %s; nothing pinned",
                                  strna(json_get_str(p, "presented")), arg_fingerprint);
                else
                        log_error("the server presented %s, not the fingerprint given; nothing pinned",
                                  strna(json_get_str(p, "presented")));
        } else if (streq(error, VARLINK_ERROR_METHOD_NOT_FOUND) || streq(error, VARLINK_ERROR_METHOD_NOT_IMPLEMENTED) ||
                 streq(error, VARLINK_ERROR_INTERFACE_NOT_FOUND))
                log_error("alknetd does not support '%s' (is it older than alknetctl?)",
                          strna(json_get_str(p, "method") ?: json_get_str(p, "interface")));
        else if (streq(error, VARLINK_ERROR_INVALID_PARAMETER))
                log_error("alknetd rejected the parameter '%s' (is it older than alknetctl?)",
                          strna(json_get_str(p, "parameter")));
        else if (json_object_object_length(p) > 0)
                log_error("%s %s", error, json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        else
                log_error("%s", error);

        return EXIT_DAEMON_ERROR;
}

/* Calls method (taking parameters) and hands back the reply's parameters, or prints the
 * error and returns the exit status for it. */
static int call_timeout(const char *method, struct json_object *parameters, uint64_t timeout_usec, struct json_object **ret) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_(freep) char *error = NULL;
        struct json_object *reply = NULL;
        int r;

        r = varlink_client_connect(arg_socket, timeout_usec, &c);
        if (r < 0) {
                json_object_put(parameters);
                return error_connect(r);
        }

        r = varlink_client_call(c, method, parameters, &reply, &error);
        if (r < 0)
                return error_transport(r);
        if (error) {
                r = error_reply(error, reply);
                json_object_put(reply);
                return r;
        }

        *ret = reply;
        return EXIT_OK;
}

static int call(const char *method, struct json_object *parameters, struct json_object **ret) {
        return call_timeout(method, parameters, arg_timeout_usec, ret);
}

static struct json_object *name_parameters(const char *name) {
        struct json_object *p = json_object_new_object();

        if (!p)
                return NULL;
        if (json_object_object_add(p, "name", json_object_new_string(name)) < 0) {
                json_object_put(p);
                return NULL;
        }
        return p;
}

/* A call whose only parameter is a profile name. */
static int call_named(const char *method, const char *name, struct json_object **ret) {
        struct json_object *p = name_parameters(name);

        if (!p)
                return log_oom();
        return call(method, p, ret);
}

/* ---- verbs ---- */


/* Prints a finished table; a write error (a closed pipe, a full disk) is the exit status. */
static int print_table(Table *t) {
        int r = table_print(t, stdout);

        if (r < 0) {
                log_error("failed to write output: %s", strerror(-r));
                return EXIT_DAEMON_ERROR;
        }
        return EXIT_OK;
}
static int verb_list(int argc, char *argv[]) {
        static const char *const headers[] = { "NAME", "SOURCE", "SERVER", "SOCKS", "AUTOSTART" };
        _cleanup_(table_freep) Table *t = NULL;
        struct json_object *reply = NULL, *profiles;
        int r;

        r = call(MANAGER "ListProfiles", NULL, &reply);
        if (r != EXIT_OK)
                return r;

        if (arg_json) {
                r = print_json(reply);
                json_object_put(reply);
                return r;
        }

        profiles = json_get_array(reply, "profiles");
        if (!profiles || json_object_array_length(profiles) == 0) {
                json_object_put(reply);
                puts("No profiles.");
                return EXIT_OK;
        }

        if (table_new(headers, ELEMENTSOF(headers), &t) < 0)
                goto oom;

        for (size_t i = 0; i < json_object_array_length(profiles); i++) {
                struct json_object *p = json_object_array_get_idx(profiles, i), *listen = json_get_array(p, "socksListen");
                _cleanup_(freep) char *socks = NULL;
                size_t l = 0;

                /* "a,b,c" from the listen addresses */
                for (size_t j = 0; listen && j < json_object_array_length(listen); j++) {
                        const char *a = json_object_get_string(json_object_array_get_idx(listen, j));
                        char *n = realloc(socks, l + strlen(strempty(a)) + 2);
                        if (!n)
                                goto oom;
                        socks = n;
                        l += (size_t) sprintf(socks + l, "%s%s", j > 0 ? "," : "", strempty(a));
                }

                const char *cells[] = {
                        json_get_str(p, "name"),
                        json_get_str(p, "source"),
                        json_get_str(p, "server"),
                        socks,
                        yes_no_na(json_get_bool(p, "autoStart")),
                };
                if (table_add_row(t, cells) < 0)
                        goto oom;
        }

        json_object_put(reply);
        return print_table(t);

oom:
        json_object_put(reply);
        return log_oom();
}

static void show_list(const char *key, struct json_object *a) {
        size_t n = a ? json_object_array_length(a) : 0;

        if (n == 0)
                show_line(key, NULL);
        for (size_t i = 0; i < n; i++)
                show_line(key, json_object_get_string(json_object_array_get_idx(a, i)));
}

static void show_profile(struct json_object *p) {
        const char *transport = json_get_str(p, "transport");
        char buf[64];
        int64_t v;

        show_line("Name", json_get_str(p, "name"));
        show_line("Source", json_get_str(p, "source"));
        show_line("File", json_get_str(p, "file"));
        show_line("Server", json_get_str(p, "server"));
        show_line("User", json_get_str(p, "user"));
        show_line("Identity", json_get_str(p, "identity"));
        show_list("HostKey", json_get_array(p, "hostKeys"));
        show_line("HostKeyPolicy", json_get_str(p, "hostKeyPolicy"));
        show_line("Transport", transport);
        if (streq_ptr(transport, "tls")) {
                show_line("TLSServerName", json_get_str(p, "tlsServerName"));
                show_line("TLSVerify", yes_no_na(json_get_bool(p, "tlsVerify")));
                show_line("TLSCA", json_get_str(p, "tlsCA"));
                show_line("TLSPin", json_get_str(p, "tlsPin"));
        }
        show_line("Proxy", json_get_str(p, "proxy"));
        show_line("AutoStart", yes_no_na(json_get_bool(p, "autoStart")));
        if (json_get_int(p, "keepaliveIntervalUSec", &v) && v >= 0)
                format_timespan((uint64_t) v, buf, sizeof(buf));
        else
                buf[0] = 0;
        show_line("KeepaliveInterval", buf);
        if (json_get_int(p, "keepaliveCountMax", &v))
                snprintf(buf, sizeof(buf), "%" PRIi64, v);
        else
                buf[0] = 0;
        show_line("KeepaliveCountMax", buf);
        show_list("Listen", json_get_array(p, "socksListen"));
        show_line("Username", json_get_str(p, "socksUsername"));
        show_line("PasswordFile", json_get_str(p, "socksPasswordFile"));
        show_list("Local", json_get_array(p, "local"));
        show_list("Remote", json_get_array(p, "remote"));
}

static int verb_show(int argc, char *argv[]) {
        struct json_object *reply = NULL, *profile;
        int r;

        r = call_named(MANAGER "GetProfile", argv[1], &reply);
        if (r != EXIT_OK)
                return r;

        if (arg_json)
                r = print_json(reply);
        else if (json_object_object_get_ex(reply, "profile", &profile) && json_object_is_type(profile, json_type_object))
                show_profile(profile);
        else
                r = error_transport(-EBADMSG);

        json_object_put(reply);
        return r;
}

static int settings_add(struct json_object *settings, const char *key, const char *value) {
        struct json_object *s = json_object_new_object();

        if (!s)
                return -ENOMEM;
        if (json_object_object_add(s, "key", json_object_new_string(key)) < 0 ||
            json_object_object_add(s, "value", json_object_new_string(value)) < 0 ||
            json_object_array_add(settings, s) < 0) {
                json_object_put(s);
                return -ENOMEM;
        }
        return 0;
}

/* The settings of add/set: the flags first, then the Key=Value arguments, in the order
 * given. Keys are checked here so that a typo is a usage error; values are the daemon's
 * to judge. */
static int build_settings(char *args[], int n, struct json_object **ret) {
        struct json_object *settings = arg_settings ? json_object_get(arg_settings) : json_object_new_array();

        if (!settings)
                return log_oom();

        for (int i = 0; i < n; i++) {
                char *eq = strchr(args[i], '=');

                if (!eq || eq == args[i]) {
                        log_error("'%s' is not a Key=Value setting", args[i]);
                        json_object_put(settings);
                        return EXIT_USAGE;
                }

                *eq = 0;
                if (!profile_key_lookup(args[i])) {
                        log_error("unknown setting '%s' (see 'alknetctl help' for the keys)", args[i]);
                        json_object_put(settings);
                        return EXIT_USAGE;
                }
                int r = settings_add(settings, args[i], eq + 1);
                *eq = '=';
                if (r < 0) {
                        json_object_put(settings);
                        return log_oom();
                }
        }

        *ret = settings;
        return EXIT_OK;
}

static int change_profile(const char *method, int argc, char *argv[]) {
        struct json_object *settings = NULL, *p, *reply = NULL;
        int r;

        r = build_settings(argv + 2, argc - 2, &settings);
        if (r != EXIT_OK)
                return r;

        if (streq(argv[0], "set") && json_object_array_length(settings) == 0) {
                json_object_put(settings);
                log_error("set: no settings given (usage: alknetctl set NAME Key=Value...)");
                return EXIT_USAGE;
        }

        p = name_parameters(argv[1]);
        if (!p || json_object_object_add(p, "settings", settings) < 0) {
                json_object_put(settings);
                json_object_put(p);
                return log_oom();
        }

        r = call(method, p, &reply);
        if (r != EXIT_OK)
                return r;

        if (arg_json)
                r = print_json(reply);
        json_object_put(reply);
        return r;
}

static int verb_add(int argc, char *argv[]) {
        return change_profile(MANAGER "AddProfile", argc, argv);
}

static int verb_set(int argc, char *argv[]) {
        return change_profile(MANAGER "UpdateProfile", argc, argv);
}

static int verb_remove(int argc, char *argv[]) {
        struct json_object *reply = NULL;
        int r;

        r = call_named(MANAGER "RemoveProfile", argv[1], &reply);
        if (r != EXIT_OK)
                return r;

        if (arg_json)
                r = print_json(reply);
        json_object_put(reply);
        return r;
}

static int verb_reload(int argc, char *argv[]) {
        struct json_object *reply = NULL, *problems;
        int64_t n = 0;
        int r;

        r = call(MANAGER "Reload", NULL, &reply);
        if (r != EXIT_OK)
                return r;

        if (arg_json) {
                r = print_json(reply);
                json_object_put(reply);
                return r;
        }

        (void) json_get_int(reply, "profiles", &n);
        printf("Reloaded: %" PRIi64 " profile%s.\n", n, n == 1 ? "" : "s");
        fflush(stdout);

        /* Problems do not fail the reload (the other files loaded), but they are errors of
         * the admin's files, so they go where errors go. */
        problems = json_get_array(reply, "problems");
        for (size_t i = 0; problems && i < json_object_array_length(problems); i++) {
                struct json_object *q = json_object_array_get_idx(problems, i);
                const char *field = json_get_str(q, "field");
                int64_t line = 0;

                fputs(strna(json_get_str(q, "file")), stderr);
                if (json_get_int(q, "line", &line) && line > 0)
                        fprintf(stderr, ":%" PRIi64, line);
                fputs(": ", stderr);
                if (!isempty(field))
                        fprintf(stderr, "%s: ", field);
                fprintf(stderr, "%s\n", strna(json_get_str(q, "reason")));
        }

        json_object_put(reply);
        return EXIT_OK;
}

/* ---- tunnels ---- */

/* up and restart wait for the outcome of the first attempt, which the daemon's own connect
 * and handshake deadlines bound; the default --timeout would often cut that short. */
#define UP_TIMEOUT_USEC (120 * USEC_PER_SEC)

static uint64_t now_realtime_usec(void) {
        struct timespec ts;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000u;
}

/* "3s", "2m05s", "1h02m", "3d04h": the two largest units, short enough for a column. */
static void format_duration(uint64_t usec, char *buf, size_t size) {
        uint64_t s = usec / USEC_PER_SEC;

        if (s < 60)
                snprintf(buf, size, "%" PRIu64 "s", s);
        else if (s < 3600)
                snprintf(buf, size, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
        else if (s < 86400)
                snprintf(buf, size, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
        else
                snprintf(buf, size, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
}

/* "0.4ms", "9.9ms", "12ms": a tenth of a millisecond matters only on fast paths. */
static void format_rtt(uint64_t usec, char *buf, size_t size) {
        uint64_t tenths = (usec + 50) / 100;

        if (tenths < 100)
                snprintf(buf, size, "%" PRIu64 ".%" PRIu64 "ms", tenths / 10, tenths % 10);
        else
                snprintf(buf, size, "%" PRIu64 "ms", (usec + USEC_PER_MSEC / 2) / USEC_PER_MSEC);
}

/* "512B", "1.5KiB", "230.2MiB", "4.0GiB". */
static void format_bytes(uint64_t n, char *buf, size_t size) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        double d = (double) n;
        size_t i = 0;

        if (n < 1024) {
                snprintf(buf, size, "%" PRIu64 "B", n);
                return;
        }
        d /= 1024;
        /* 1023.96KiB would print as "1024.0KiB" */
        while (d >= 1023.95 && i + 1 < ELEMENTSOF(units)) {
                d /= 1024;
                i++;
        }
        snprintf(buf, size, "%.1f%s", d, units[i]);
}

static void format_count(uint64_t n, char *buf, size_t size) {
        snprintf(buf, size, "%" PRIu64, n);
}

/* The last RTT is only shown while up: next to "backoff" an old one would mislead. */
static bool is_up(struct json_object *s) {
        return streq_ptr(json_get_str(s, "state"), "up");
}

typedef void (*Formatter)(uint64_t v, char *buf, size_t size);

/* The formatted integer field key of o, or NULL (shown as "-") when it is absent or null. */
static const char *format_field(struct json_object *o, const char *key, Formatter f, char *buf, size_t size) {
        int64_t v;

        if (!json_get_int(o, key, &v) || v < 0)
                return NULL;
        f((uint64_t) v, buf, size);
        return buf;
}

/* "up", "backoff (keepalive-timeout)", "failed (hostkey-unknown)" */
static const char *format_state(struct json_object *s, char *buf, size_t size) {
        const char *state = json_get_str(s, "state"), *reason = json_get_str(s, "reason");

        if (isempty(state))
                return NULL;
        if (isempty(reason))
                snprintf(buf, size, "%s", state);
        else
                snprintf(buf, size, "%s (%s)", state, reason);
        return buf;
}

/* How long the tunnel has been in its state: the daemon's uptime when up (the session's
 * age), else the time since the last change. */
static const char *format_since(struct json_object *s, char *buf, size_t size) {
        int64_t v;

        if (is_up(s) && json_get_int(s, "uptimeUSec", &v) && v >= 0) {
                format_duration((uint64_t) v, buf, size);
                return buf;
        }
        if (json_get_int(s, "sinceUSec", &v) && v > 0) {
                uint64_t n = now_realtime_usec();
                format_duration(n > (uint64_t) v ? n - (uint64_t) v : 0, buf, size);
                return buf;
        }
        return NULL;
}

/* "in 4s" until the next attempt, rounded to the nearest second: the daemon's jitter makes
 * a 4 s step 3.6-4.4 s, which should read as "4s". NULL when there is none scheduled. */
static const char *format_next_attempt(struct json_object *s, char *buf, size_t size) {
        uint64_t n = now_realtime_usec();
        int64_t v;
        char d[32];

        if (!json_get_int(s, "nextAttemptUSec", &v) || v <= 0)
                return NULL;
        if ((uint64_t) v <= n + USEC_PER_SEC / 2) {
                snprintf(buf, size, "now");
                return buf;
        }
        format_duration((uint64_t) v - n + USEC_PER_SEC / 2, d, sizeof(d));
        snprintf(buf, size, "in %s", d);
        return buf;
}

static bool is_hostkey_reason(const char *reason) {
        return streq_ptr(reason, "hostkey-unknown") || streq_ptr(reason, "hostkey-mismatch");
}

/* "work-vps: up", "work-vps: backoff (connect-refused), retrying in 4s",
 * "work-vps: failed (identity-unreadable): MESSAGE" */
static void print_status_line(struct json_object *s, const char *fallback_name) {
        const char *state = json_get_str(s, "state"), *reason = json_get_str(s, "reason");
        const char *message = json_get_str(s, "message");
        char buf[128], next[64];

        put_value(json_get_str(s, "name") ?: fallback_name);
        fputs(": ", stdout);
        put_value(format_state(s, buf, sizeof(buf)));
        if (streq_ptr(state, "backoff")) {
                const char *in = format_next_attempt(s, next, sizeof(next));
                fputs(", retrying", stdout);
                if (in) {
                        fputc(' ', stdout);
                        put_value(in);
                }
        } else if (streq_ptr(state, "failed") && !is_hostkey_reason(reason) && !isempty(message)) {
                /* final: without the detail there is nothing to act on */
                fputs(": ", stdout);
                put_value(message);
        }
        fputc('\n', stdout);
}

/* What to do about a host key the daemon would not accept. */
static void print_hostkey_hint(struct json_object *s, const char *fallback_name) {
        const char *reason = json_get_str(s, "reason"), *key = json_get_str(s, "presentedHostKey");
        const char *name = json_get_str(s, "name") ?: fallback_name;

        if (!streq_ptr(json_get_str(s, "state"), "failed") || !is_hostkey_reason(reason) || isempty(key))
                return;

        if (streq(reason, "hostkey-unknown")) {
                fputs("The server presented host key ", stdout);
                put_value(key);
                fputs(" which is not pinned.\n"
                      "Check it out of band (on the server: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then run:\n"
                      "    alknetctl trust ", stdout);
        } else {
                fputs("WARNING: THE SERVER PRESENTED A HOST KEY THAT IS NOT PINNED FOR ", stdout);
                put_value(name);
                fputs("!\n"
                      "Someone could be intercepting the connection (man-in-the-middle attack), or the\n"
                      "server's host key was replaced. No authentication was attempted, nothing was sent,\n"
                      "and the tunnel will not retry. The server presented:\n"
                      "    ", stdout);
                put_value(key);
                fputs("\n"
                      "Only if the key really changed: check the new one out of band (on the server:\n"
                      "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then replace the pin:\n"
                      "    alknetctl set ", stdout);
                put_value(name);
                fputs(" HostKey=\n"
                      "    alknetctl up ", stdout);
                put_value(name);
                fputs("\n"
                      "    alknetctl trust ", stdout);
        }
        put_value(name);
        fputc(' ', stdout);
        put_value(key);
        fputc('\n', stdout);
}

static struct json_object *reply_status(struct json_object *reply) {
        struct json_object *s;

        if (!json_object_object_get_ex(reply, "status", &s) || !json_object_is_type(s, json_type_object))
                return NULL;
        return s;
}

/* Up and Restart: the status line, and the exit status saying whether the tunnel is up. */
static int tunnel_start(const char *method, const char *name) {
        struct json_object *reply = NULL, *p, *s;
        int r;

        p = name_parameters(name);
        if (!p || json_object_object_add(p, "wait", json_object_new_boolean(!arg_no_wait)) < 0) {
                json_object_put(p);
                return log_oom();
        }

        r = call_timeout(method, p, arg_timeout_set || arg_no_wait ? arg_timeout_usec : UP_TIMEOUT_USEC, &reply);
        if (r != EXIT_OK)
                return r;

        s = reply_status(reply);
        if (!s)
                r = error_transport(-EBADMSG);
        else {
                if (arg_json)
                        r = print_json(reply);
                else {
                        print_status_line(s, name);
                        print_hostkey_hint(s, name);
                }
                if (r == EXIT_OK && !arg_no_wait && !is_up(s))
                        r = EXIT_NOT_UP;
        }

        json_object_put(reply);
        return r;
}

static int verb_up(int argc, char *argv[]) {
        return tunnel_start(MANAGER "Up", argv[1]);
}

static int verb_restart(int argc, char *argv[]) {
        return tunnel_start(MANAGER "Restart", argv[1]);
}

static int verb_down(int argc, char *argv[]) {
        struct json_object *reply = NULL, *s;
        int r;

        r = call_named(MANAGER "Down", argv[1], &reply);
        if (r != EXIT_OK)
                return r;

        s = reply_status(reply);
        if (!s)
                r = error_transport(-EBADMSG);
        else if (arg_json)
                r = print_json(reply);
        else
                print_status_line(s, argv[1]);

        json_object_put(reply);
        return r;
}

static void show_time(const char *key, struct json_object *s, const char *field, bool future) {
        uint64_t n = now_realtime_usec();
        char when[64] = "", rel[64];
        struct tm tm;
        int64_t v;

        if (!json_get_int(s, field, &v) || v <= 0) {
                show_line(key, NULL);
                return;
        }

        time_t t = (time_t) (v / (int64_t) USEC_PER_SEC);
        if (localtime_r(&t, &tm))
                (void) strftime(when, sizeof(when), "%a %Y-%m-%d %H:%M:%S %Z", &tm);

        if (future) {
                if (!format_next_attempt(s, rel, sizeof(rel)))
                        rel[0] = 0;
        } else {
                char d[32];
                format_duration(n > (uint64_t) v ? n - (uint64_t) v : 0, d, sizeof(d));
                snprintf(rel, sizeof(rel), "%s ago", d);
        }

        printf("%s: %s (%s)\n", key, when, rel);
}

static void show_tunnel(struct json_object *s) {
        char buf[128], a[32], b[32];
        int64_t open, total;

        show_line("Name", json_get_str(s, "name"));
        show_line("State", json_get_str(s, "state"));
        show_line("Reason", json_get_str(s, "reason"));
        show_line("Message", json_get_str(s, "message"));
        show_time("Since", s, "sinceUSec", false);
        show_line("Uptime", format_field(s, "uptimeUSec", format_duration, buf, sizeof(buf)));
        show_time("Next attempt", s, "nextAttemptUSec", true);
        show_line("Attempts", format_field(s, "attempts", format_count, buf, sizeof(buf)));
        show_line("Reconnects", format_field(s, "reconnects", format_count, buf, sizeof(buf)));
        show_line("RTT", is_up(s) ? format_field(s, "rttUSec", format_rtt, buf, sizeof(buf)) : NULL);
        if (json_get_int(s, "channels", &open) && json_get_int(s, "channelsTotal", &total)) {
                snprintf(buf, sizeof(buf), "%" PRIi64 " open, %" PRIi64 " total", open, total);
                show_line("Channels", buf);
        } else
                show_line("Channels", NULL);
        show_line("Bytes in", format_field(s, "bytesIn", format_bytes, a, sizeof(a)));
        show_line("Bytes out", format_field(s, "bytesOut", format_bytes, b, sizeof(b)));
        show_list("Listeners", json_get_array(s, "listeners"));

        if (!isempty(json_get_str(s, "presentedHostKey"))) {
                show_line("Presented host key", json_get_str(s, "presentedHostKey"));
                if (streq_ptr(json_get_str(s, "state"), "failed") && is_hostkey_reason(json_get_str(s, "reason"))) {
                        fputc('\n', stdout);
                        print_hostkey_hint(s, NULL);
                }
        }
}

static int print_status_table(struct json_object *tunnels) {
        static const char *const headers[] = { "NAME", "STATE", "SINCE", "RTT", "RECONNECTS", "CHANNELS", "IN", "OUT" };
        _cleanup_(table_freep) Table *t = NULL;

        if (json_object_array_length(tunnels) == 0) {
                puts("No profiles.");
                return EXIT_OK;
        }

        if (table_new(headers, ELEMENTSOF(headers), &t) < 0)
                return log_oom();

        for (size_t i = 0; i < json_object_array_length(tunnels); i++) {
                struct json_object *s = json_object_array_get_idx(tunnels, i);
                char state[128], since[32], rtt[32], reconnects[32], channels[32], in[32], out[32];

                const char *cells[] = {
                        json_get_str(s, "name"),
                        format_state(s, state, sizeof(state)),
                        format_since(s, since, sizeof(since)),
                        is_up(s) ? format_field(s, "rttUSec", format_rtt, rtt, sizeof(rtt)) : NULL,
                        format_field(s, "reconnects", format_count, reconnects, sizeof(reconnects)),
                        format_field(s, "channels", format_count, channels, sizeof(channels)),
                        format_field(s, "bytesIn", format_bytes, in, sizeof(in)),
                        format_field(s, "bytesOut", format_bytes, out, sizeof(out)),
                };
                if (table_add_row(t, cells) < 0)
                        return log_oom();
        }

        return print_table(t);
}

static int verb_status(int argc, char *argv[]) {
        struct json_object *reply = NULL, *p = NULL, *tunnels;
        int r;

        if (argc > 1) {
                p = name_parameters(argv[1]);
                if (!p)
                        return log_oom();
        }

        r = call(MANAGER "Status", p, &reply);
        if (r != EXIT_OK)
                return r;

        tunnels = json_get_array(reply, "tunnels");
        if (!tunnels)
                r = error_transport(-EBADMSG);
        else if (arg_json)
                r = print_json(reply);
        else if (argc <= 1)
                r = print_status_table(tunnels);
        else
                for (size_t i = 0; i < json_object_array_length(tunnels); i++) {
                        if (i > 0)
                                fputc('\n', stdout);
                        show_tunnel(json_object_array_get_idx(tunnels, i));
                }

        json_object_put(reply);
        return r;
}

/* "SHA256:" and 43 base64 characters, as ssh-keygen -l prints them. */
static bool fingerprint_is_valid(const char *s) {
        const char *b = startswith(s, "SHA256:");

        if (!b || strlen(b) != 43)
                return false;
        for (; *b; b++)
                if (!((*b >= 'A' && *b <= 'Z') || (*b >= 'a' && *b <= 'z') || (*b >= '0' && *b <= '9') ||
                      *b == '+' || *b == '/'))
                        return false;
        return true;
}

static int verb_trust(int argc, char *argv[]) {
        struct json_object *reply = NULL, *p, *s;
        int r;

        if (argc > 2) {
                if (!fingerprint_is_valid(argv[2])) {
                        log_error("invalid fingerprint '%s': expected SHA256: and 43 base64 characters, as ssh-keygen -lf prints it",
                                  argv[2]);
                        return EXIT_USAGE;
                }
                arg_fingerprint = argv[2];
        }

        p = name_parameters(argv[1]);
        if (!p || (arg_fingerprint && json_object_object_add(p, "fingerprint", json_object_new_string(arg_fingerprint)) < 0)) {
                json_object_put(p);
                return log_oom();
        }

        r = call(MANAGER "Trust", p, &reply);
        if (r != EXIT_OK)
                return r;

        s = reply_status(reply);
        if (!s)
                r = error_transport(-EBADMSG);
        else if (arg_json)
                r = print_json(reply);
        else {
                fputs("Pinned ", stdout);
                put_value(json_get_str(reply, "fingerprint"));
                fputs(" for ", stdout);
                put_value(argv[1]);
                fputs(".\n", stdout);
                print_status_line(s, argv[1]);
        }

        json_object_put(reply);
        return r;
}

typedef struct Monitor {
        const char *name; /* only this profile's changes, or all */
        int ret;
} Monitor;

/* "12:00:01 work-vps backoff (connect-refused) retry=4s attempts=3": the time is when the
 * reply arrived (the first lines describe states that may be days old, and a time of day
 * without a date would mislead); the extras are those that matter for the state. */
static void print_monitor_line(struct json_object *s) {
        const char *state = json_get_str(s, "state");
        char buf[128], t[16] = "--:--:--";
        time_t tt = time(NULL);
        struct tm tm;

        if (localtime_r(&tt, &tm))
                (void) strftime(t, sizeof(t), "%H:%M:%S", &tm);

        fputs(t, stdout);
        fputc(' ', stdout);
        put_value(json_get_str(s, "name"));
        fputc(' ', stdout);
        put_value(format_state(s, buf, sizeof(buf)));

        if (is_up(s) && format_field(s, "rttUSec", format_rtt, buf, sizeof(buf)))
                printf(" rtt=%s", buf);
        if (streq_ptr(state, "backoff")) {
                if (format_next_attempt(s, buf, sizeof(buf)))
                        printf(" retry=%s", startswith(buf, "in ") ?: buf); /* "4s" or "now" */
                if (format_field(s, "attempts", format_count, buf, sizeof(buf)))
                        printf(" attempts=%s", buf);
        }
        if (!isempty(json_get_str(s, "presentedHostKey"))) {
                fputs(" hostkey=", stdout);
                put_value(json_get_str(s, "presentedHostKey"));
        }
        fputc('\n', stdout);
}

static int monitor_reply(const char *error, struct json_object *parameters, bool continues, void *userdata) {
        Monitor *m = userdata;
        struct json_object *s;

        if (error) {
                m->ret = error_reply(error, parameters);
                return 0;
        }

        s = reply_status(parameters);
        if (!s)
                return -EBADMSG;
        if (m->name && !streq_ptr(json_get_str(s, "name"), m->name))
                return 0;

        if (arg_json) {
                const char *j = json_object_to_json_string_ext(parameters, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
                if (!j)
                        return -ENOMEM;
                puts(j);
        } else
                print_monitor_line(s);

        /* whoever reads a pipe wants each change as it happens */
        if (fflush(stdout) == EOF)
                return -errno;
        return 0;
}

/* Ctrl-C is how a monitor ends: a success, not a failure. Every line is flushed already. */
static void monitor_sigint(int sig) {
        (void) sig;
        _exit(EXIT_OK);
}

static int verb_monitor(int argc, char *argv[]) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        Monitor m = { .name = argc > 1 ? argv[1] : NULL, .ret = EXIT_OK };
        struct sigaction sa = { .sa_handler = monitor_sigint };
        int r;

        /* Monitor streams every profile; ask once for this one so that a typo is an error
         * instead of a silent, endless wait. */
        if (m.name) {
                struct json_object *reply = NULL, *p = name_parameters(m.name);
                if (!p)
                        return log_oom();
                r = call(MANAGER "Status", p, &reply);
                json_object_put(reply);
                if (r != EXIT_OK)
                        return r;
        }

        if (sigaction(SIGINT, &sa, NULL) < 0) {
                log_error("failed to install the SIGINT handler: %m");
                return EXIT_DAEMON_ERROR;
        }

        r = varlink_client_connect(arg_socket, arg_timeout_usec, &c);
        if (r < 0)
                return error_connect(r);
        /* changes come when they come */
        varlink_client_set_timeout(c, VARLINK_CLIENT_TIMEOUT_INFINITY);

        r = varlink_client_call_more(c, MANAGER "Monitor", NULL, /* more= */ true, monitor_reply, &m);
        if (r < 0)
                return error_transport(r);
        return m.ret;
}

/* ---- server role ---- */

static int print_server_sessions(struct json_object *sessions) {
        static const char *const headers[] = { "REMOTE", "TRANSPORT", "USER", "KEY", "CHANNELS", "DURATION" };
        _cleanup_(table_freep) Table *t = NULL;

        if (!sessions || json_object_array_length(sessions) == 0) {
                puts("No sessions.");
                return EXIT_OK;
        }

        if (table_new(headers, ELEMENTSOF(headers), &t) < 0)
                return log_oom();

        for (size_t i = 0; i < json_object_array_length(sessions); i++) {
                struct json_object *s = json_object_array_get_idx(sessions, i);
                bool authenticated = json_get_bool(s, "authenticated") > 0;
                char channels[32], duration[32];

                const char *cells[] = {
                        json_get_str(s, "remoteAddress"),
                        json_get_str(s, "transport"),
                        /* before authentication nobody is known yet: say so instead of "-" */
                        authenticated ? json_get_str(s, "user") : "(authenticating)",
                        authenticated ? json_get_str(s, "keyFingerprint") : NULL,
                        format_field(s, "channels", format_count, channels, sizeof(channels)),
                        format_field(s, "durationUSec", format_duration, duration, sizeof(duration)),
                };
                if (table_add_row(t, cells) < 0)
                        return log_oom();
        }

        return print_table(t);
}

/* "3 accepted, 1 rejected" and the like; "-" when the daemon did not send both. */
static const char *format_pair(struct json_object *o, const char *k1, const char *label1, const char *k2,
                               const char *label2, char *buf, size_t size) {
        int64_t a, b;

        if (!json_get_int(o, k1, &a) || !json_get_int(o, k2, &b))
                return NULL;
        snprintf(buf, size, "%" PRIi64 " %s, %" PRIi64 " %s", a, label1, b, label2);
        return buf;
}

static void show_server(struct json_object *s) {
        const char *error = json_get_str(s, "error");
        int running = json_get_bool(s, "running");

        if (running > 0)
                puts("Server role: running");
        else {
                fputs("Server role: not running", stdout);
                if (!isempty(error)) {
                        fputs(" (", stdout);
                        put_value(error);
                        fputc(')', stdout);
                }
                fputc('\n', stdout);
        }
        show_list("Listeners", json_get_array(s, "listeners"));
        fputc('\n', stdout);
}

static void show_server_counters(struct json_object *s) {
        char buf[128];

        show_line("Sessions total", format_field(s, "sessionsTotal", format_count, buf, sizeof(buf)));
        show_line("Channels", format_pair(s, "channels", "open", "channelsTotal", "total", buf, sizeof(buf)));
        show_line("Auth", format_pair(s, "authAccepted", "accepted", "authRejected", "rejected", buf, sizeof(buf)));
        show_line("Refused by limits", format_field(s, "refusedByLimits", format_count, buf, sizeof(buf)));
}

static int verb_server(int argc, char *argv[]) {
        struct json_object *reply = NULL, *s;
        int r;

        r = call(MANAGER "ServerStatus", NULL, &reply);
        if (r != EXIT_OK)
                return r;

        if (!json_object_object_get_ex(reply, "server", &s) || !json_object_is_type(s, json_type_object))
                r = error_transport(-EBADMSG);
        else if (arg_json)
                r = print_json(reply);
        else {
                show_server(s);
                r = print_server_sessions(json_get_array(s, "sessions"));
                fputc('\n', stdout);
                show_server_counters(s);
        }

        json_object_put(reply);
        return r;
}

static int verb_help(int argc, char *argv[]);

static const Verb verbs[] = {
        { "list",    "",                      0, 0,        verb_list,    false, false, false, "List all profiles" },
        { "show",    "NAME",                  1, 1,        verb_show,    false, false, false, "Show every setting of a profile" },
        { "add",     "NAME [FLAGS] [Key=Value...]", 1, UINT_MAX, verb_add, true, true, false, "Add a managed profile" },
        { "set",     "NAME [FLAGS] [Key=Value...]", 1, UINT_MAX, verb_set, true, true, false, "Change settings of a managed profile" },
        { "remove",  "NAME",                  1, 1,        verb_remove,  true,  false, false, "Remove a managed profile" },
        { "reload",  "",                      0, 0,        verb_reload,  true,  false, false, "Re-read alknetd.conf and all profile files" },
        { "up",      "NAME [--no-wait]",      1, 1,        verb_up,      true,  false, true,  "Bring a tunnel up, wait for the outcome" },
        { "down",    "NAME",                  1, 1,        verb_down,    true,  false, false, "Take a tunnel down" },
        { "restart", "NAME [--no-wait]",      1, 1,        verb_restart, true,  false, true,  "Take a tunnel down and up again" },
        { "status",  "[NAME]",                0, 1,        verb_status,  false, false, false, "Show tunnel states; one in detail" },
        { "trust",   "NAME [FINGERPRINT]",    1, 2,        verb_trust,   true,  false, false, "Pin the host key the server presented" },
        { "monitor", "[NAME]",                0, 1,        verb_monitor, false, false, false, "Print state changes until Ctrl-C" },
        { "server",  "",                      0, 0,        verb_server,  false, false, false, "Show the server role: listeners, sessions, counters" },
        { "help",    "",                      0, 0,        verb_help,    false, false, false, "Show this help" },
};

static void help(FILE *f) {
        size_t n_keys;
        const ProfileKey *keys = profile_keys(&n_keys);
        const char *section = NULL;

        fputs("Usage: alknetctl [OPTIONS] [VERB [ARGS...]]\n"
              "\n"
              "Control alknetd, the SSH tunnel daemon. Without a verb: status.\n"
              "\n"
              "Verbs (* needs root or the admin group):\n", f);
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                char usage[64];
                snprintf(usage, sizeof(usage), "%s %s", verbs[i].name, verbs[i].args);
                fprintf(f, "  %-36s %s%s\n", usage, verbs[i].help, verbs[i].changes_state ? " *" : "");
        }

        fputs("\n"
              "Options:\n"
              "  -h --help              Show this help\n"
              "     --version           Show the version\n"
              "     --socket PATH       Control socket (default: $ALKNET_CONTROL_SOCKET or " ALKNET_CONTROL_SOCKET ")\n"
              "     --json              Print the reply as JSON\n"
              "     --timeout SEC       Wait at most SEC seconds for alknetd (default 30,\n"
              "                         120 for up and restart; 0: forever)\n"
              "     --no-wait           up, restart: return once the attempt has started\n"
              "\n"
              "Flags of add and set (--flag VALUE or --flag=VALUE):\n", f);
        for (size_t i = 0; i < ELEMENTSOF(setting_flags); i++) {
                char flag[64];
                const ProfileKey *k = profile_key_lookup(setting_flags[i].key);
                snprintf(flag, sizeof(flag), "--%s %s", setting_flags[i].flag, setting_flags[i].metavar);
                fprintf(f, "  %-40s %s=%s\n", flag, setting_flags[i].key, k && k->list ? " (repeatable)" : "");
        }
        fputs("  (--socks none disables SOCKS for the profile)\n"
              "\n"
              "Settings (Key=Value, see alknet.profile(5); * repeatable):", f);
        /* the keys by section, wrapped to fit 80 columns */
        size_t column = 0;
        for (size_t i = 0; keys && i < n_keys; i++) {
                bool new_section = !streq_ptr(section, keys[i].section);
                size_t w = 1 + strlen(keys[i].key) + keys[i].list;

                if (new_section || column + w > 78) {
                        char label[32] = "";
                        if (new_section)
                                snprintf(label, sizeof(label), "[%s]", strempty(keys[i].section));
                        fprintf(f, "\n  %-10s", label);
                        column = 12;
                        section = keys[i].section;
                }
                fprintf(f, " %s%s", keys[i].key, keys[i].list ? "*" : "");
                column += w;
        }
        fputs("\n"
              "\n"
              "Exit status: 0 success, 1 alknetd answered with an error (or, for up and\n"
              "restart, the tunnel is not up), 2 usage error, 3 alknetd cannot be reached.\n"
              "See alknetctl(1).\n", f);
}

static int verb_help(int argc, char *argv[]) {
        help(stdout);
        return EXIT_OK;
}

/* ---- command line ---- */

enum {
        ARG_VERSION = 0x100,
        ARG_SOCKET,
        ARG_JSON,
        ARG_TIMEOUT,
        ARG_NO_WAIT,
        ARG_SETTING_FIRST, /* setting_flags[i] is ARG_SETTING_FIRST + i */
};

static int parse_timeout(const char *s, uint64_t *ret) {
        char *end;
        double d;

        errno = 0;
        d = strtod(s, &end);
        if (errno != 0 || end == s || *end != 0 || !isfinite(d) || d < 0 || d > 1e9)
                return -EINVAL;

        *ret = d == 0 ? VARLINK_CLIENT_TIMEOUT_INFINITY : MAX((uint64_t) (d * (double) USEC_PER_SEC), (uint64_t) 1);
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
#define N_FIXED_OPTIONS 6
        static struct option options[N_FIXED_OPTIONS + ELEMENTSOF(setting_flags) + 1] = {
                { "help",    no_argument,       NULL, 'h'         },
                { "version", no_argument,       NULL, ARG_VERSION },
                { "socket",  required_argument, NULL, ARG_SOCKET  },
                { "json",    no_argument,       NULL, ARG_JSON    },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "no-wait", no_argument,       NULL, ARG_NO_WAIT },
        };
        int c;

        for (size_t i = 0; i < ELEMENTSOF(setting_flags); i++)
                options[N_FIXED_OPTIONS + i] = (struct option) { setting_flags[i].flag, required_argument, NULL, ARG_SETTING_FIRST + (int) i };

        opterr = 0; /* our own messages: getopt's would start with the full argv[0] */
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {

                case 'h':
                        help(stdout);
                        return 0;

                case ARG_VERSION:
                        puts("alknetctl " PACKAGE_VERSION);
                        return 0;

                case ARG_SOCKET:
                        if (isempty(optarg)) {
                                log_error("--socket needs a path");
                                return -EINVAL;
                        }
                        arg_socket = optarg;
                        break;

                case ARG_JSON:
                        arg_json = true;
                        break;

                case ARG_TIMEOUT:
                        if (parse_timeout(optarg, &arg_timeout_usec) < 0) {
                                log_error("invalid --timeout '%s': expected seconds (0 waits forever)", optarg);
                                return -EINVAL;
                        }
                        arg_timeout_set = true;
                        break;

                case ARG_NO_WAIT:
                        arg_no_wait = true;
                        break;

                case ':':
                        log_error("option '%s' needs a value (see 'alknetctl --help')", argv[optind - 1]);
                        return -EINVAL;

                case '?':
                        if (optopt > 0 && optopt < 0x100)
                                log_error("unknown option '-%c' (see 'alknetctl --help')", optopt);
                        else /* "--bogus=1": name the option, not its value */
                                log_error("unknown option '%.*s' (see 'alknetctl --help')",
                                          (int) strcspn(argv[optind - 1], "="), argv[optind - 1]);
                        return -EINVAL;

                default: {
                        assert(c >= ARG_SETTING_FIRST && c < ARG_SETTING_FIRST + (int) ELEMENTSOF(setting_flags));
                        const SettingFlag *f = setting_flags + (c - ARG_SETTING_FIRST);
                        /* "--socks none" is how one says "no SOCKS"; the file syntax is Listen= */
                        const char *value = streq(f->key, "Listen") && streq(optarg, "none") ? "" : optarg;

                        if (!arg_settings) {
                                arg_settings = json_object_new_array();
                                if (!arg_settings)
                                        return -ENOMEM;
                        }
                        if (settings_add(arg_settings, f->key, value) < 0)
                                return -ENOMEM;
                        if (!arg_first_setting_flag)
                                arg_first_setting_flag = f->flag;
                }}
        }

        return 1;
}

static int dispatch(int argc, char *argv[]) {
        char status_verb[] = "status";
        char *status_argv[] = { status_verb, NULL };
        const Verb *v = NULL;
        unsigned n;

        /* like systemctl and git: with no verb, the overview */
        if (argc <= 0) {
                argc = 1;
                argv = status_argv;
        }

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, argv[0])) {
                        v = verbs + i;
                        break;
                }
        if (!v) {
                log_error("unknown verb '%s' (see 'alknetctl --help')", argv[0]);
                return EXIT_USAGE;
        }

        n = (unsigned) argc - 1;
        if (n < v->min_args || n > v->max_args) {
                log_error("%s arguments for '%s' (usage: alknetctl %s%s%s)",
                          n < v->min_args ? "too few" : "too many", v->name, v->name,
                          isempty(v->args) ? "" : " ", v->args);
                return EXIT_USAGE;
        }

        if (arg_first_setting_flag && !v->takes_settings) {
                log_error("option '--%s' is only valid with add and set", arg_first_setting_flag);
                return EXIT_USAGE;
        }

        if (arg_no_wait && !v->takes_no_wait) {
                log_error("option '--no-wait' is only valid with up and restart");
                return EXIT_USAGE;
        }

        return v->run(argc, argv);
}

int main(int argc, char *argv[]) {
        const char *e;
        int r;

        e = getenv("ALKNET_CONTROL_SOCKET");
        if (!isempty(e))
                arg_socket = e;

        r = parse_argv(argc, argv);
        if (r == -ENOMEM)
                r = log_oom();
        else if (r < 0)
                r = EXIT_USAGE;
        else if (r == 0)
                r = EXIT_OK;
        else
                r = dispatch(argc - optind, argv + optind);

        json_object_put(arg_settings);

        if (fflush(stdout) == EOF || ferror(stdout)) {
                log_error("failed to write output: %m");
                if (r == EXIT_OK)
                        r = EXIT_DAEMON_ERROR;
        }
        return r;
}
