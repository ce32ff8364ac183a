/* Component tests: the real Manager and control server in a real sd-event loop, driven
 * over socketpairs and a listening socket, covering every io.alknet.Manager method, the
 * standard errors, access control by peer credentials, reload, pipelining and bad input. */
#include <check.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "manager.h"

extern const char varlink_idl_io_alknet_manager[];

#define DEADLINE_USEC (10 * USEC_PER_SEC)

static char root[64], etc_dir[96], state_dir[96], sock_path[128];
static Manager *m;

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static void write_text(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        ck_assert_int_eq(fclose(f), 0);
}

static void write_in(const char *dir, const char *name, const char *text) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        write_text(path, text);
}

static void start_manager(void) {
        ck_assert_int_eq(manager_new(etc_dir, state_dir, &m), 0);
}

static void setup(void) {
        char path[256];

        strcpy(root, "/tmp/test-control-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(root));
        ck_assert_int_eq(chmod(root, 0755), 0);
        snprintf(etc_dir, sizeof etc_dir, "%s/etc", root);
        snprintf(state_dir, sizeof state_dir, "%s/state", root);
        snprintf(sock_path, sizeof sock_path, "%s/control", root);
        ck_assert_int_eq(mkdir(etc_dir, 0755), 0);
        ck_assert_int_eq(mkdir(state_dir, 0755), 0);
        snprintf(path, sizeof path, "%s/profiles.d", etc_dir);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        m = NULL;
}

static void teardown(void) {
        char cmd[128];

        m = manager_free(m);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        ck_assert_int_eq(system(cmd), 0);
}

/* A client on a socketpair; our process's credentials are the peer's (root or us: admin). */
static int client_new(void) {
        int fds[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        ck_assert_int_eq(control_server_add_connection(m->control, fds[0], NULL), 0);
        return fds[1];
}

static void send_raw(int fd, const char *data, size_t size) {
        while (size > 0) {
                ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
                if (n < 0 && errno == EAGAIN) {
                        (void) sd_event_run(m->event, 1000);
                        continue;
                }
                ck_assert_int_gt(n, 0);
                data += n;
                size -= (size_t) n;
        }
}

static void send_msg(int fd, const char *json) {
        send_raw(fd, json, strlen(json) + 1);
}

/* Per-client receive buffers (fd-indexed), so pipelined replies are kept apart. */
static char rbuf[1024][8192];
static size_t rlen[1024];

/* Runs the loop until one whole reply arrived on fd; NULL if the daemon closed it. */
static struct json_object *recv_msg(int fd) {
        uint64_t deadline = now_usec() + DEADLINE_USEC;

        ck_assert_int_lt(fd, 1024);
        for (;;) {
                char *nul = memchr(rbuf[fd], '\0', rlen[fd]);
                if (nul) {
                        struct json_object *o = json_tokener_parse(rbuf[fd]);
                        size_t used = (size_t) (nul - rbuf[fd]) + 1;
                        ck_assert_ptr_nonnull(o);
                        memmove(rbuf[fd], rbuf[fd] + used, rlen[fd] - used);
                        rlen[fd] -= used;
                        return o;
                }
                ssize_t n = recv(fd, rbuf[fd] + rlen[fd], sizeof rbuf[fd] - rlen[fd], MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno == ECONNRESET))
                        return NULL;
                if (n > 0) {
                        rlen[fd] += (size_t) n;
                        continue;
                }
                ck_assert_int_eq(errno, EAGAIN);
                ck_assert_msg(now_usec() < deadline, "no reply before the deadline");
                (void) sd_event_run(m->event, 10 * 1000);
        }
}

static void client_close(int fd) {
        rlen[fd] = 0;
        close(fd);
}

static struct json_object *call(int fd, const char *method, const char *params) {
        char msg[8192];
        struct json_object *r;

        snprintf(msg, sizeof msg, "{\"method\":\"%s\",\"parameters\":%s}", method, params ?: "{}");
        send_msg(fd, msg);
        r = recv_msg(fd);
        ck_assert_msg(r != NULL, "connection closed instead of a reply to %s", method);
        return r;
}

static const char *error_of(struct json_object *reply) {
        struct json_object *e;
        return json_object_object_get_ex(reply, "error", &e) ? json_object_get_string(e) : NULL;
}

static struct json_object *params_of(struct json_object *reply) {
        struct json_object *p = NULL;
        ck_assert(json_object_object_get_ex(reply, "parameters", &p));
        return p;
}

static const char *str_at(struct json_object *o, const char *path) {
        /* "a.b": nested object keys */
        char key[64];
        const char *dot;

        while ((dot = strchr(path, '.'))) {
                snprintf(key, sizeof key, "%.*s", (int) (dot - path), path);
                ck_assert_msg(json_object_object_get_ex(o, key, &o), "missing %s", key);
                path = dot + 1;
        }
        ck_assert_msg(json_object_object_get_ex(o, path, &o), "missing %s", path);
        return json_object_get_string(o);
}

#define assert_error(reply, name) ck_assert_str_eq(strempty(error_of(reply)), name)
#define assert_ok(reply) ck_assert_msg(error_of(reply) == NULL, "unexpected error %s", error_of(reply))

START_TEST(test_service_interface) {
        struct json_object *r, *a;
        int fd;

        start_manager();
        fd = client_new();

        r = call(fd, "org.varlink.service.GetInfo", NULL);
        assert_ok(r);
        ck_assert_str_eq(str_at(params_of(r), "product"), "alknetd");
        ck_assert(json_object_object_get_ex(params_of(r), "interfaces", &a));
        ck_assert_uint_eq(json_object_array_length(a), 2);
        ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(a, 0)), "org.varlink.service");
        ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(a, 1)), "io.alknet.Manager");
        json_object_put(r);

        r = call(fd, "org.varlink.service.GetInterfaceDescription", "{\"interface\":\"io.alknet.Manager\"}");
        assert_ok(r);
        ck_assert_str_eq(str_at(params_of(r), "description"), varlink_idl_io_alknet_manager);
        json_object_put(r);

        r = call(fd, "org.varlink.service.GetInterfaceDescription", "{\"interface\":\"org.varlink.service\"}");
        ck_assert_ptr_nonnull(strstr(str_at(params_of(r), "description"), "interface org.varlink.service\n"));
        json_object_put(r);

        r = call(fd, "org.varlink.service.GetInterfaceDescription", "{\"interface\":\"com.example.Nope\"}");
        assert_error(r, "org.varlink.service.InterfaceNotFound");
        ck_assert_str_eq(str_at(params_of(r), "interface"), "com.example.Nope");
        json_object_put(r);

        r = call(fd, "org.varlink.service.GetInterfaceDescription", NULL);
        assert_error(r, "org.varlink.service.InvalidParameter");
        ck_assert_str_eq(str_at(params_of(r), "parameter"), "interface");
        json_object_put(r);

        r = call(fd, "org.varlink.service.Nope", NULL);
        assert_error(r, "org.varlink.service.MethodNotFound");
        json_object_put(r);

        r = call(fd, "io.alknet.Manager.Nope", NULL);
        assert_error(r, "org.varlink.service.MethodNotFound");
        ck_assert_str_eq(str_at(params_of(r), "method"), "io.alknet.Manager.Nope");
        json_object_put(r);

        r = call(fd, "com.example.Other.Method", NULL);
        assert_error(r, "org.varlink.service.InterfaceNotFound");
        ck_assert_str_eq(str_at(params_of(r), "interface"), "com.example.Other");
        json_object_put(r);
        client_close(fd);
}
END_TEST

START_TEST(test_parameter_errors) {
        struct json_object *r;
        int fd;

        start_manager();
        fd = client_new();

        r = call(fd, "io.alknet.Manager.GetProfile", NULL);
        assert_error(r, "org.varlink.service.InvalidParameter");
        ck_assert_str_eq(str_at(params_of(r), "parameter"), "name");
        json_object_put(r);

        r = call(fd, "io.alknet.Manager.GetProfile", "{\"name\":5}");
        assert_error(r, "org.varlink.service.InvalidParameter");
        json_object_put(r);

        r = call(fd, "io.alknet.Manager.GetProfile", "{\"name\":\"x\",\"bogus\":1}");
        assert_error(r, "org.varlink.service.InvalidParameter");
        ck_assert_str_eq(str_at(params_of(r), "parameter"), "bogus");
        json_object_put(r);

        r = call(fd, "io.alknet.Manager.AddProfile", "{\"name\":\"x\",\"settings\":[{\"key\":\"Server\"}]}");
        assert_error(r, "org.varlink.service.InvalidParameter");
        ck_assert_str_eq(str_at(params_of(r), "parameter"), "settings");
        json_object_put(r);

        r = call(fd, "io.alknet.Manager.AddProfile", "{\"name\":\"x\",\"settings\":{}}");
        assert_error(r, "org.varlink.service.InvalidParameter");
        json_object_put(r);

        r = call(fd, "io.alknet.Manager.GetProfile", "{\"name\":\"missing\"}");
        assert_error(r, "io.alknet.Manager.NoSuchProfile");
        ck_assert_str_eq(str_at(params_of(r), "name"), "missing");
        json_object_put(r);
        client_close(fd);
}
END_TEST

static struct json_object *add_profile(int fd, const char *name, const char *settings) {
        char params[4096];
        snprintf(params, sizeof params, "{\"name\":\"%s\",\"settings\":[%s]}", name, settings);
        return call(fd, "io.alknet.Manager.AddProfile", params);
}

#define S(k, v) "{\"key\":\"" k "\",\"value\":\"" v "\"}"

static bool state_file_exists(const char *name) {
        char path[256];
        snprintf(path, sizeof path, "%s/profiles/%s.conf", state_dir, name);
        return access(path, F_OK) == 0;
}

START_TEST(test_profile_lifecycle) {
        struct json_object *r, *p, *a;
        int fd;

        start_manager();
        fd = client_new();

        r = call(fd, "io.alknet.Manager.ListProfiles", NULL);
        assert_ok(r);
        ck_assert(json_object_object_get_ex(params_of(r), "profiles", &a));
        ck_assert_uint_eq(json_object_array_length(a), 0);
        json_object_put(r);

        r = add_profile(fd, "work",
                        S("Server", "vps.example.com:2222") "," S("Identity", "/etc/alknet/keys/work") ","
                        S("Listen", "127.0.0.1:1081") "," S("Local", "127.0.0.1:5432:db.internal:5432") ","
                        S("Remote", "0.0.0.0:8080:127.0.0.1:80") "," S("AutoStart", "no"));
        assert_ok(r);
        p = json_object_object_get(params_of(r), "profile");
        ck_assert_str_eq(str_at(p, "name"), "work");
        ck_assert_str_eq(str_at(p, "source"), "managed");
        ck_assert_str_eq(str_at(p, "server"), "vps.example.com:2222");
        ck_assert_str_eq(str_at(p, "user"), "alknet");
        ck_assert(!json_object_get_boolean(json_object_object_get(p, "readOnly")));
        ck_assert_uint_eq(json_object_array_length(json_object_object_get(p, "local")), 1);
        ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(json_object_object_get(p, "socksListen"), 0)),
                         "127.0.0.1:1081");
        json_object_put(r);
        ck_assert(state_file_exists("work"));

        r = add_profile(fd, "work", S("Server", "other.example.com"));
        assert_error(r, "io.alknet.Manager.ProfileExists");
        json_object_put(r);

        r = call(fd, "io.alknet.Manager.GetProfile", "{\"name\":\"work\"}");
        assert_ok(r);
        ck_assert_str_eq(str_at(params_of(r), "profile.server"), "vps.example.com:2222");
        json_object_put(r);

        /* The first mention of a list key replaces the list, later ones append. */
        r = call(fd, "io.alknet.Manager.UpdateProfile",
                 "{\"name\":\"work\",\"settings\":[" S("Local", "5433:db1.internal:5432") ","
                 S("Local", "5434:db2.internal:5432") "," S("Listen", "") "]}");
        assert_ok(r);
        p = json_object_object_get(params_of(r), "profile");
        a = json_object_object_get(p, "local");
        ck_assert_uint_eq(json_object_array_length(a), 2);
        ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(a, 0)), "127.0.0.1:5433:db1.internal:5432");
        ck_assert_uint_eq(json_object_array_length(json_object_object_get(p, "socksListen")), 0);
        json_object_put(r);

        /* A failed update changes nothing, in memory or on disk. */
        r = call(fd, "io.alknet.Manager.UpdateProfile", "{\"name\":\"work\",\"settings\":[" S("Server", "bad host!") "]}");
        assert_error(r, "io.alknet.Manager.InvalidProfile");
        ck_assert_str_eq(str_at(params_of(r), "field"), "Server");
        json_object_put(r);
        r = call(fd, "io.alknet.Manager.GetProfile", "{\"name\":\"work\"}");
        ck_assert_str_eq(str_at(params_of(r), "profile.server"), "vps.example.com:2222");
        json_object_put(r);

        /* What is on disk loads back to the same profile after a restart. */
        m = manager_free(m);
        client_close(fd);
        start_manager();
        fd = client_new();
        r = call(fd, "io.alknet.Manager.GetProfile", "{\"name\":\"work\"}");
        assert_ok(r);
        a = json_object_object_get(json_object_object_get(params_of(r), "profile"), "local");
        ck_assert_uint_eq(json_object_array_length(a), 2);
        json_object_put(r);

        r = call(fd, "io.alknet.Manager.RemoveProfile", "{\"name\":\"work\"}");
        assert_ok(r);
        json_object_put(r);
        ck_assert(!state_file_exists("work"));
        r = call(fd, "io.alknet.Manager.RemoveProfile", "{\"name\":\"work\"}");
        assert_error(r, "io.alknet.Manager.NoSuchProfile");
        json_object_put(r);
        r = call(fd, "io.alknet.Manager.UpdateProfile", "{\"name\":\"work\",\"settings\":[]}");
        assert_error(r, "io.alknet.Manager.NoSuchProfile");
        json_object_put(r);
        client_close(fd);
}
END_TEST

static const struct {
        const char *name;
        const char *settings;
        const char *field;
} invalid_adds[] = {
        { "bad name!", S("Server", "a.example"), "Name" },
        { "x", S("Server", "a.example:99999"), "Server" },
        { "x", S("Server", "a.example") "," S("Local", "1:2"), "Local" },
        { "x", S("Server", "a.example") "," S("NoSuchKey", "1"), "NoSuchKey" },
        { "x", S("Listen", "127.0.0.1:1090"), "Server" },
        { "x", S("Server", "a.example") "," S("Listen", "127.0.0.1:1080"), "Listen" },
};

START_TEST(test_add_invalid) {
        struct json_object *r;
        int fd;

        start_manager();
        fd = client_new();
        r = add_profile(fd, "first", S("Server", "first.example"));
        assert_ok(r);
        json_object_put(r);

        r = add_profile(fd, invalid_adds[_i].name, invalid_adds[_i].settings);
        assert_error(r, "io.alknet.Manager.InvalidProfile");
        ck_assert_str_eq(str_at(params_of(r), "field"), invalid_adds[_i].field);
        ck_assert_str_ne(str_at(params_of(r), "reason"), "");
        json_object_put(r);
        ck_assert(!state_file_exists("x"));
        client_close(fd);
}
END_TEST

START_TEST(test_read_only_and_reload) {
        char profiles_d[128], managed[128];
        struct json_object *r, *a;
        int fd;

        snprintf(profiles_d, sizeof profiles_d, "%s/profiles.d", etc_dir);
        snprintf(managed, sizeof managed, "%s/profiles", state_dir);
        write_in(profiles_d, "admin.conf", "[Tunnel]\nServer=admin.example\n[Socks]\nListen=127.0.0.1:2000\n");
        start_manager();
        fd = client_new();

        r = call(fd, "io.alknet.Manager.GetProfile", "{\"name\":\"admin\"}");
        assert_ok(r);
        ck_assert_str_eq(str_at(params_of(r), "profile.source"), "/etc");
        ck_assert(json_object_get_boolean(json_object_object_get(json_object_object_get(params_of(r), "profile"), "readOnly")));
        json_object_put(r);

        r = call(fd, "io.alknet.Manager.UpdateProfile", "{\"name\":\"admin\",\"settings\":[" S("AutoStart", "no") "]}");
        assert_error(r, "io.alknet.Manager.ReadOnlyProfile");
        ck_assert_ptr_nonnull(strstr(str_at(params_of(r), "file"), "profiles.d/admin.conf"));
        json_object_put(r);
        r = call(fd, "io.alknet.Manager.RemoveProfile", "{\"name\":\"admin\"}");
        assert_error(r, "io.alknet.Manager.ReadOnlyProfile");
        json_object_put(r);

        /* A managed profile may not take the admin profile's port either. */
        r = add_profile(fd, "clash", S("Server", "c.example") "," S("Listen", "127.0.0.1:2000"));
        assert_error(r, "io.alknet.Manager.InvalidProfile");
        ck_assert_str_eq(str_at(params_of(r), "field"), "Listen");
        json_object_put(r);

        /* Reload: a new file appears, a broken one is reported and skipped, a broken edit
         * of a loaded profile keeps the loaded version, a shadowed managed file loses. */
        write_in(profiles_d, "new.conf", "[Tunnel]\nServer=new.example\n[Socks]\nListen=\n");
        write_in(profiles_d, "broken.conf", "[Tunnel]\nServer=ok.example\nPort=22\n");
        write_in(profiles_d, "admin.conf", "[Tunnel]\nServer=admin.example:70000\n");
        write_in(managed, "new.conf", "[Tunnel]\nServer=shadowed.example\n[Socks]\nListen=\n");
        r = call(fd, "io.alknet.Manager.Reload", NULL);
        assert_ok(r);
        ck_assert_int_eq(json_object_get_int(json_object_object_get(params_of(r), "profiles")), 2);
        a = json_object_object_get(params_of(r), "problems");
        ck_assert_uint_eq(json_object_array_length(a), 3);
        /* admin.conf, broken.conf (sorted), then the managed file */
        ck_assert_ptr_nonnull(strstr(str_at(json_object_array_get_idx(a, 0), "file"), "profiles.d/admin.conf"));
        ck_assert_int_eq(json_object_get_int(json_object_object_get(json_object_array_get_idx(a, 0), "line")), 2);
        ck_assert_str_eq(str_at(json_object_array_get_idx(a, 0), "field"), "Server");
        ck_assert_ptr_nonnull(strstr(str_at(json_object_array_get_idx(a, 1), "file"), "profiles.d/broken.conf"));
        ck_assert_int_eq(json_object_get_int(json_object_object_get(json_object_array_get_idx(a, 1), "line")), 3);
        ck_assert_str_eq(str_at(json_object_array_get_idx(a, 1), "field"), "Port");
        ck_assert_ptr_nonnull(strstr(str_at(json_object_array_get_idx(a, 2), "file"), "profiles/new.conf"));
        json_object_put(r);

        r = call(fd, "io.alknet.Manager.GetProfile", "{\"name\":\"admin\"}");
        assert_ok(r);
        ck_assert_str_eq(str_at(params_of(r), "profile.server"), "admin.example:22");
        json_object_put(r);
        r = call(fd, "io.alknet.Manager.GetProfile", "{\"name\":\"new\"}");
        ck_assert_str_eq(str_at(params_of(r), "profile.server"), "new.example:22");
        ck_assert_str_eq(str_at(params_of(r), "profile.source"), "/etc");
        json_object_put(r);
        r = call(fd, "io.alknet.Manager.GetProfile", "{\"name\":\"broken\"}");
        assert_error(r, "io.alknet.Manager.NoSuchProfile");
        json_object_put(r);

        /* A deleted file takes its profile away on reload. */
        write_in(profiles_d, "admin.conf", "");
        {
                char path[256];
                snprintf(path, sizeof path, "%s/admin.conf", profiles_d);
                ck_assert_int_eq(unlink(path), 0);
        }
        ck_assert_int_eq(manager_reload(m, NULL), 0);
        ck_assert_ptr_null(profile_store_get(m->store, "admin"));
        client_close(fd);
}
END_TEST

START_TEST(test_reload_conflict_with_new_admin_profile) {
        char profiles_d[128];
        struct json_object *r, *a;
        int fd;

        snprintf(profiles_d, sizeof profiles_d, "%s/profiles.d", etc_dir);
        start_manager();
        fd = client_new();
        r = add_profile(fd, "demo", S("Server", "127.0.0.1:22"));
        assert_ok(r);
        json_object_put(r);

        /* An admin profile on the same default SOCKS port wins; the managed one, although
         * loaded before, must not be kept beside it. */
        write_in(profiles_d, "admin.conf", "[Tunnel]\nServer=admin.example\n");
        r = call(fd, "io.alknet.Manager.Reload", NULL);
        assert_ok(r);
        ck_assert_int_eq(json_object_get_int(json_object_object_get(params_of(r), "profiles")), 1);
        a = json_object_object_get(params_of(r), "problems");
        ck_assert_uint_eq(json_object_array_length(a), 1);
        ck_assert_str_eq(str_at(json_object_array_get_idx(a, 0), "field"), "Listen");
        json_object_put(r);
        ck_assert_ptr_nonnull(profile_store_get(m->store, "admin"));
        ck_assert_ptr_null(profile_store_get(m->store, "demo"));
        client_close(fd);
}
END_TEST

START_TEST(test_pipelining_and_oneway) {
        struct json_object *r;
        int fd;

        start_manager();
        fd = client_new();

        /* Three calls in one write: three replies, in order. */
        static const char three[] = "{\"method\":\"io.alknet.Manager.GetProfile\",\"parameters\":{\"name\":\"a\"}}\0"
                                    "{\"method\":\"org.varlink.service.GetInfo\"}\0"
                                    "{\"method\":\"io.alknet.Manager.ListProfiles\",\"parameters\":{}}";
        send_raw(fd, three, sizeof three);
        r = recv_msg(fd);
        assert_error(r, "io.alknet.Manager.NoSuchProfile");
        json_object_put(r);
        r = recv_msg(fd);
        ck_assert_str_eq(str_at(params_of(r), "product"), "alknetd");
        json_object_put(r);
        r = recv_msg(fd);
        ck_assert(json_object_object_get_ex(params_of(r), "profiles", NULL));
        json_object_put(r);

        /* A oneway call gets no reply: the next reply belongs to the next call. */
        send_msg(fd, "{\"method\":\"io.alknet.Manager.AddProfile\",\"oneway\":true,"
                     "\"parameters\":{\"name\":\"ow\",\"settings\":[" S("Server", "ow.example") "]}}");
        r = call(fd, "io.alknet.Manager.GetProfile", "{\"name\":\"ow\"}");
        assert_ok(r);
        json_object_put(r);
        client_close(fd);
}
END_TEST

static bool wait_closed(int fd) {
        uint64_t deadline = now_usec() + DEADLINE_USEC;
        char buf[4096];

        while (now_usec() < deadline) {
                ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EAGAIN))
                        return true;
                (void) sd_event_run(m->event, 10 * 1000);
        }
        return false;
}

static const char *const bad_inputs[] = {
        "not json",
        "[1,2,3]",
        "{\"method\":\"io.alknet.Manager.ListProfiles\"} trailing",
        "{\"parameters\":{}}",
        "{\"method\":5}",
        "{\"method\":\"nodots\"}",
        "{\"method\":\"io.alknet.Manager.ListProfiles\",\"parameters\":[]}",
        "",
};

START_TEST(test_bad_input_closes_only_that_connection) {
        struct json_object *r;
        int bad, good;

        start_manager();
        bad = client_new();
        good = client_new();
        send_msg(bad, bad_inputs[_i]);
        ck_assert(wait_closed(bad));
        client_close(bad);

        r = call(good, "io.alknet.Manager.ListProfiles", NULL);
        assert_ok(r);
        json_object_put(r);
        ck_assert_uint_eq(control_server_n_connections(m->control), 1);
        client_close(good);
}
END_TEST

START_TEST(test_limits) {
        _cleanup_(freep) char *big = NULL;
        struct json_object *r;
        int fd, idle, good;
        size_t n = 70 * 1024;

        start_manager();

        /* Over the 64 KiB cap without a NUL: refused as soon as the cap is passed. */
        fd = client_new();
        big = malloc(n);
        memset(big, ' ', n);
        big[0] = '{';
        send_raw(fd, big, n);
        ck_assert(wait_closed(fd));
        client_close(fd);

        /* A depth bomb well within the size cap. */
        fd = client_new();
        memset(big, '[', 5000);
        big[5000] = '\0';
        send_raw(fd, big, 5001);
        ck_assert(wait_closed(fd));
        client_close(fd);

        /* Half a message and silence does not hold up anyone else. */
        idle = client_new();
        send_raw(idle, "{\"method\":", 10);
        good = client_new();
        r = call(good, "org.varlink.service.GetInfo", NULL);
        assert_ok(r);
        json_object_put(r);
        client_close(good);
        client_close(idle);
}
END_TEST

static int connect_path(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        strcpy(sa.sun_path, sock_path);
        ck_assert_int_eq(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        return fd;
}

START_TEST(test_connection_cap_evicts_idle) {
        int idle[10], fd;
        struct json_object *r;
        char path[256];

        snprintf(path, sizeof path, "%s/alknetd.conf", etc_dir);
        write_text(path, "[Control]\nMaxConnections=4\n");
        start_manager();
        ck_assert_int_eq(manager_listen_path(m, sock_path), 0);

        for (size_t i = 0; i < ELEMENTSOF(idle); i++) {
                idle[i] = connect_path();
                for (int k = 0; k < 5; k++)
                        (void) sd_event_run(m->event, 1000);
        }
        ck_assert_uint_le(control_server_n_connections(m->control), 4);

        fd = connect_path();
        r = call(fd, "io.alknet.Manager.ListProfiles", NULL);
        assert_ok(r);
        json_object_put(r);
        ck_assert_uint_le(control_server_n_connections(m->control), 4);

        /* The oldest idle ones were dropped, the newest survive. */
        ck_assert(wait_closed(idle[0]));
        for (size_t i = 0; i < ELEMENTSOF(idle); i++)
                client_close(idle[i]);
        client_close(fd);
}
END_TEST

/* Out of fds, accept() fails while the socket stays readable: the listener must rest
 * instead of spinning the loop and logging every time, and accept again once fds are
 * back. Client and daemon share this process, so the client's socket takes the last fd. */
START_TEST(test_accept_out_of_fds) {
        int fillers[4096], n_fillers = 0, fd, fd2, log_fd, saved_stderr, dispatched = 0;
        char log_path[256], buf[8192] = "";
        struct json_object *r;
        struct rlimit limit;
        ssize_t len;

        start_manager();
        ck_assert_int_eq(manager_listen_path(m, sock_path), 0);

        snprintf(log_path, sizeof log_path, "%s/stderr.log", root);
        log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(log_fd, 0);
        saved_stderr = dup(STDERR_FILENO);
        ck_assert_int_ge(saved_stderr, 0);
        ck_assert_int_eq(dup2(log_fd, STDERR_FILENO), STDERR_FILENO);
        log_set_max_level(LOG_WARNING);

        /* Check runs each test in its own process: the lower limit ends with it. */
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &limit), 0);
        limit.rlim_cur = MIN(limit.rlim_cur, (rlim_t) 256); /* valgrind refuses a new hard limit */
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &limit), 0);
        while (n_fillers < (int) ELEMENTSOF(fillers)) {
                int f = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (f < 0)
                        break;
                fillers[n_fillers++] = f;
        }
        ck_assert_int_eq(errno, EMFILE);
        close(fillers[--n_fillers]);
        fd = connect_path(); /* takes the freed fd: nothing left for accept() */

        for (uint64_t end = now_usec() + 600 * USEC_PER_MSEC; now_usec() < end;)
                if (sd_event_run(m->event, 50 * 1000) > 0)
                        dispatched++;
        ck_assert_uint_eq(control_server_n_connections(m->control), 0);
        /* A spinning listener dispatches thousands of times in 600 ms; a resting one wakes
         * up once per pause (250 ms) to try again, plus its timer. */
        ck_assert_int_le(dispatched, 12);

        /* With fds back, the listener takes connections again. (A new one: under valgrind,
         * whose fd limit is emulated, the waiting one was accepted and closed.) */
        while (n_fillers > 0)
                close(fillers[--n_fillers]);
        fd2 = connect_path();
        r = call(fd2, "io.alknet.Manager.ListProfiles", NULL);
        assert_ok(r);
        json_object_put(r);
        client_close(fd2);
        client_close(fd);

        ck_assert_int_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
        close(saved_stderr);
        close(log_fd);
        log_fd = open(log_path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(log_fd, 0);
        len = read(log_fd, buf, sizeof buf - 1);
        close(log_fd);
        ck_assert_int_ge(len, 0);
        /* Warned once (rate limited), not once per wakeup. */
        ck_assert_ptr_nonnull(strstr(buf, "Failed to accept on the control socket, pausing it"));
        ck_assert_ptr_null(strstr(strstr(buf, "pausing it") + 1, "pausing it"));
}
END_TEST

/* Runs one call as another user, the way alknetctl under setpriv would: a child process
 * drops to uid/gid 65534 with the given supplementary group and connects to the socket. */
static char *call_as_nobody(gid_t extra_group, const char *msg) {
        int pipefd[2], status;
        char out[4096] = "";
        size_t len = 0;
        pid_t pid;

        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char buf[4096];
                size_t got = 0;
                int fd;

                close(pipefd[0]);
                if (setgroups(extra_group ? 1 : 0, &extra_group) < 0 || setresgid(65534, 65534, 65534) < 0 ||
                    setresuid(65534, 65534, 65534) < 0)
                        _exit(3);
                alarm(20);
                fd = connect_path();
                if (send(fd, msg, strlen(msg) + 1, MSG_NOSIGNAL) < 0)
                        _exit(4);
                while (got < sizeof buf - 1) {
                        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
                        if (n <= 0)
                                break;
                        got += (size_t) n;
                        if (memchr(buf, '\0', got))
                                break;
                }
                (void) !write(pipefd[1], buf, strnlen(buf, got));
                _exit(0);
        }
        close(pipefd[1]);
        ck_assert_int_eq(fcntl(pipefd[0], F_SETFL, O_NONBLOCK), 0);
        for (uint64_t deadline = now_usec() + DEADLINE_USEC;;) {
                ssize_t n = read(pipefd[0], out + len, sizeof out - 1 - len);
                if (n > 0)
                        len += (size_t) n;
                else if (n == 0)
                        break;
                ck_assert_msg(now_usec() < deadline, "child did not finish");
                (void) sd_event_run(m->event, 10 * 1000);
        }
        close(pipefd[0]);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: %d", status);
        out[len] = '\0';
        return strdup(out);
}

START_TEST(test_access_control) {
        char path[256];
        char *out;

        if (geteuid() != 0) {
                fprintf(stderr, "test_access_control: skipped, needs root to switch uid\n");
                return;
        }
        start_manager();
        ck_assert_int_eq(manager_listen_path(m, sock_path), 0);
        ck_assert_int_eq(chmod(sock_path, 0666), 0);

        /* Read-only calls: anyone who can connect. */
        out = call_as_nobody(0, "{\"method\":\"io.alknet.Manager.ListProfiles\"}");
        ck_assert_ptr_nonnull(strstr(out, "\"profiles\""));
        free(out);

        /* Changing calls: refused with a named error, nothing stored. */
        out = call_as_nobody(0, "{\"method\":\"io.alknet.Manager.AddProfile\",\"parameters\":{\"name\":\"n\","
                                "\"settings\":[" S("Server", "n.example") "]}}");
        ck_assert_ptr_nonnull(strstr(out, "\"io.alknet.Manager.PermissionDenied\""));
        ck_assert_ptr_nonnull(strstr(out, "AddProfile"));
        free(out);
        ck_assert_ptr_null(profile_store_get(m->store, "n"));
        out = call_as_nobody(4242, "{\"method\":\"io.alknet.Manager.Reload\"}");
        ck_assert_ptr_nonnull(strstr(out, "PermissionDenied"));
        free(out);

        /* Members of AdminGroup= may change things. */
        snprintf(path, sizeof path, "%s/alknetd.conf", etc_dir);
        write_text(path, "[Control]\nAdminGroup=4242\n");
        ck_assert_int_eq(manager_reload(m, NULL), 0);
        out = call_as_nobody(4242, "{\"method\":\"io.alknet.Manager.AddProfile\",\"parameters\":{\"name\":\"n\","
                                   "\"settings\":[" S("Server", "n.example") "]}}");
        ck_assert_ptr_nonnull(strstr(out, "\"profile\""));
        free(out);
        ck_assert_ptr_nonnull(profile_store_get(m->store, "n"));
        out = call_as_nobody(0, "{\"method\":\"io.alknet.Manager.RemoveProfile\",\"parameters\":{\"name\":\"n\"}}");
        ck_assert_ptr_nonnull(strstr(out, "PermissionDenied"));
        free(out);
}
END_TEST

int main(void) {
        Suite *s = suite_create("control");
        TCase *tc = tcase_create("control");
        SRunner *sr;
        int failed;

        log_set_max_level(getenv("TEST_DEBUG") ? LOG_DEBUG : LOG_ERR);
        tcase_set_timeout(tc, 60);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_service_interface);
        tcase_add_test(tc, test_parameter_errors);
        tcase_add_test(tc, test_profile_lifecycle);
        tcase_add_loop_test(tc, test_add_invalid, 0, ELEMENTSOF(invalid_adds));
        tcase_add_test(tc, test_read_only_and_reload);
        tcase_add_test(tc, test_reload_conflict_with_new_admin_profile);
        tcase_add_test(tc, test_pipelining_and_oneway);
        tcase_add_loop_test(tc, test_bad_input_closes_only_that_connection, 0, ELEMENTSOF(bad_inputs));
        tcase_add_test(tc, test_limits);
        tcase_add_test(tc, test_connection_cap_evicts_idle);
        tcase_add_test(tc, test_accept_out_of_fds);
        tcase_add_test(tc, test_access_control);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
