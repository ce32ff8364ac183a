/* The io.alknet.Manager methods: profiles in and out of the store, reload. */
#include <stdio.h>

#include "log.h"
#include "manager.h"
#include "profile-json.h"
#include "varlink.h"

#define MANAGER_INTERFACE "io.alknet.Manager"
#define ERROR_NO_SUCH_PROFILE MANAGER_INTERFACE ".NoSuchProfile"
#define ERROR_PROFILE_EXISTS MANAGER_INTERFACE ".ProfileExists"
#define ERROR_READ_ONLY_PROFILE MANAGER_INTERFACE ".ReadOnlyProfile"
#define ERROR_INVALID_PROFILE MANAGER_INTERFACE ".InvalidProfile"
#define ERROR_PERMISSION_DENIED MANAGER_INTERFACE ".PermissionDenied"
#define ERROR_STORAGE_FAILED MANAGER_INTERFACE ".StorageFailed"
#define ERROR_NO_HOST_KEY_TO_TRUST MANAGER_INTERFACE ".NoHostKeyToTrust"
#define ERROR_FINGERPRINT_MISMATCH MANAGER_INTERFACE ".FingerprintMismatch"

/* More settings than keys times list entries can never be valid; refuse them early. */
#define SETTINGS_MAX 1024u

extern const char varlink_idl_io_alknet_manager[];

DEFINE_VOID_CLEANUP_FUNC(struct json_object, json_object_put);

/* Builds an object from key/value pairs; values are owned. NULL on OOM. */
static struct json_object *object_new(const char *k1, struct json_object *v1, const char *k2, struct json_object *v2) {
        struct json_object *o = json_object_new_object();

        if (!o || (k1 && !v1) || (k2 && !v2)) {
                json_object_put(o);
                json_object_put(v1);
                json_object_put(v2);
                return NULL;
        }
        if (k1)
                json_object_object_add(o, k1, v1);
        if (k2)
                json_object_object_add(o, k2, v2);
        return o;
}

static int reply_error_name(ControlConnection *c, const char *error, const char *name) {
        return control_reply_error(c, error, object_new("name", json_object_new_string(name), NULL, NULL));
}

static int reply_invalid_profile(ControlConnection *c, const ProfileError *err) {
        return control_reply_error(c, ERROR_INVALID_PROFILE,
                                   object_new("field", json_object_new_string(err->field),
                                              "reason", json_object_new_string(err->reason)));
}

static int reply_storage_failed(ControlConnection *c, int error) {
        char reason[256];

        (void) snprintf(reason, sizeof reason, "%s", strerror(abs(error)));
        return control_reply_error(c, ERROR_STORAGE_FAILED,
                                   object_new("reason", json_object_new_string(reason), NULL, NULL));
}

/* Parameters must be exactly the ones the method declares. */
static int check_parameters(ControlConnection *c, struct json_object *parameters, const char *const *allowed) {
        json_object_object_foreach(parameters, key, value) {
                bool ok = false;
                (void) value;
                for (const char *const *a = allowed; *a; a++)
                        if (streq(*a, key))
                                ok = true;
                if (!ok) {
                        (void) control_reply_invalid_parameter(c, key);
                        return -EINVAL;
                }
        }
        return 0;
}

static int get_name(ControlConnection *c, struct json_object *parameters, const char **ret) {
        struct json_object *v;

        if (!json_object_object_get_ex(parameters, "name", &v) || !json_object_is_type(v, json_type_string)) {
                (void) control_reply_invalid_parameter(c, "name");
                return -EINVAL;
        }
        *ret = json_object_get_string(v);
        return 0;
}

/* The settings array as (key, value) pairs, borrowed from the message. */
typedef struct Setting {
        const char *key;
        const char *value;
} Setting;

static int get_settings(ControlConnection *c, struct json_object *parameters, Setting **ret, size_t *ret_n) {
        struct json_object *a, *k, *v;
        _cleanup_(freep) Setting *l = NULL;
        size_t n;

        if (!json_object_object_get_ex(parameters, "settings", &a)) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > SETTINGS_MAX)
                goto invalid;
        n = json_object_array_length(a);
        l = calloc(MAX(n, (size_t) 1), sizeof *l);
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct json_object *o = json_object_array_get_idx(a, i);

                if (!json_object_is_type(o, json_type_object) || json_object_object_length(o) != 2 ||
                    !json_object_object_get_ex(o, "key", &k) || !json_object_is_type(k, json_type_string) ||
                    !json_object_object_get_ex(o, "value", &v) || !json_object_is_type(v, json_type_string))
                        goto invalid;
                l[i] = (Setting) { json_object_get_string(k), json_object_get_string(v) };
        }
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;

invalid:
        (void) control_reply_invalid_parameter(c, "settings");
        return -EINVAL;
}

static int reply_profile(ControlConnection *c, const Profile *p) {
        struct json_object *o;
        int r;

        r = profile_to_json(p, &o);
        if (r < 0)
                return r;
        return control_reply(c, object_new("profile", o, NULL, NULL));
}

static int method_list_profiles(ControlConnection *c, struct json_object *parameters, void *userdata) {
        static const char *const allowed[] = { NULL };
        Manager *m = userdata;
        _cleanup_(json_object_putp) struct json_object *a = NULL;
        int r;

        if (check_parameters(c, parameters, allowed) < 0)
                return 0;
        a = json_object_new_array();
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < m->store->n_profiles; i++) {
                struct json_object *o;
                r = profile_to_json(m->store->profiles[i], &o);
                if (r < 0)
                        return r;
                json_object_array_add(a, o);
        }
        return control_reply(c, object_new("profiles", TAKE_PTR(a), NULL, NULL));
}

static int method_get_profile(ControlConnection *c, struct json_object *parameters, void *userdata) {
        static const char *const allowed[] = { "name", NULL };
        Manager *m = userdata;
        const char *name;
        Profile *p;

        if (check_parameters(c, parameters, allowed) < 0 || get_name(c, parameters, &name) < 0)
                return 0;
        p = profile_store_get(m->store, name);
        if (!p)
                return reply_error_name(c, ERROR_NO_SUCH_PROFILE, name);
        return reply_profile(c, p);
}

/* Answers a failed store operation; err holds a reason when validation failed. */
static int reply_store_error(ControlConnection *c, int r, const char *name, const ProfileError *err) {
        if (r == -EEXIST)
                return reply_error_name(c, ERROR_PROFILE_EXISTS, name);
        if (r == -E2BIG && isempty(err->reason)) {
                ProfileError e = { .field = "Name" };
                (void) snprintf(e.reason, sizeof e.reason, "the limit of %u profiles is reached", PROFILES_MAX);
                return reply_invalid_profile(c, &e);
        }
        if (!isempty(err->reason))
                return reply_invalid_profile(c, err);
        log_error_errno(r, "Failed to store profile %s: %m", name);
        return reply_storage_failed(c, r);
}

static int method_add_profile(ControlConnection *c, struct json_object *parameters, void *userdata) {
        static const char *const allowed[] = { "name", "settings", NULL };
        Manager *m = userdata;
        _cleanup_(profile_freep) Profile *p = NULL;
        _cleanup_(freep) Setting *settings = NULL;
        ProfileError err = {};
        const char *name;
        size_t n;
        int r;

        if (check_parameters(c, parameters, allowed) < 0 || get_name(c, parameters, &name) < 0)
                return 0;
        r = get_settings(c, parameters, &settings, &n);
        if (r < 0)
                return r == -EINVAL ? 0 : r;

        r = profile_new(name, &p, &err);
        if (r < 0)
                return r == -ENOMEM ? r : reply_invalid_profile(c, &err);
        if (profile_store_get(m->store, name))
                return reply_error_name(c, ERROR_PROFILE_EXISTS, name);
        for (size_t i = 0; i < n; i++) {
                r = profile_set(p, settings[i].key, settings[i].value, &err);
                if (r < 0)
                        return r == -ENOMEM ? r : reply_invalid_profile(c, &err);
        }

        r = profile_store_add(m->store, p, &err);
        if (r < 0)
                return r == -ENOMEM ? r : reply_store_error(c, r, name, &err);
        p = NULL; /* the store owns it now */

        log_notice("Profile %s added", name);
        (void) manager_sync_tunnels(m);
        return reply_profile(c, profile_store_get(m->store, name));
}

static int method_update_profile(ControlConnection *c, struct json_object *parameters, void *userdata) {
        static const char *const allowed[] = { "name", "settings", NULL };
        Manager *m = userdata;
        _cleanup_(profile_freep) Profile *p = NULL;
        _cleanup_(freep) Setting *settings = NULL;
        ProfileError err = {};
        const char *name;
        Profile *old;
        size_t n;
        int r;

        if (check_parameters(c, parameters, allowed) < 0 || get_name(c, parameters, &name) < 0)
                return 0;
        r = get_settings(c, parameters, &settings, &n);
        if (r < 0)
                return r == -EINVAL ? 0 : r;

        old = profile_store_get(m->store, name);
        if (!old)
                return reply_error_name(c, ERROR_NO_SUCH_PROFILE, name);
        if (old->read_only)
                return control_reply_error(c, ERROR_READ_ONLY_PROFILE,
                                           object_new("name", json_object_new_string(name),
                                                      "file", json_object_new_string(strempty(old->source))));

        r = profile_dup(old, &p);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                bool seen = false;

                /* The first mention of a key replaces its old value(s); later ones append. */
                for (size_t j = 0; j < i; j++)
                        if (streq(settings[j].key, settings[i].key))
                                seen = true;
                r = seen ? 0 : profile_reset(p, settings[i].key, &err);
                if (r >= 0)
                        r = profile_set(p, settings[i].key, settings[i].value, &err);
                if (r < 0)
                        return r == -ENOMEM ? r : reply_invalid_profile(c, &err);
        }

        r = profile_store_replace(m->store, p, &err);
        if (r < 0)
                return r == -ENOMEM ? r : reply_store_error(c, r, name, &err);
        p = NULL;

        log_notice("Profile %s updated", name);
        (void) manager_sync_tunnels(m);
        return reply_profile(c, profile_store_get(m->store, name));
}

static int method_remove_profile(ControlConnection *c, struct json_object *parameters, void *userdata) {
        static const char *const allowed[] = { "name", NULL };
        Manager *m = userdata;
        const char *name;
        Profile *p;
        int r;

        if (check_parameters(c, parameters, allowed) < 0 || get_name(c, parameters, &name) < 0)
                return 0;
        p = profile_store_get(m->store, name);
        if (!p)
                return reply_error_name(c, ERROR_NO_SUCH_PROFILE, name);
        if (p->read_only)
                return control_reply_error(c, ERROR_READ_ONLY_PROFILE,
                                           object_new("name", json_object_new_string(name),
                                                      "file", json_object_new_string(strempty(p->source))));
        r = profile_store_remove(m->store, name);
        if (r < 0) {
                log_error_errno(r, "Failed to remove profile %s: %m", name);
                return reply_storage_failed(c, r);
        }
        log_notice("Profile %s removed", name);
        (void) manager_sync_tunnels(m);
        return control_reply(c, NULL);
}

static int method_reload(ControlConnection *c, struct json_object *parameters, void *userdata) {
        static const char *const allowed[] = { NULL };
        Manager *m = userdata;
        _cleanup_(json_object_putp) struct json_object *a = NULL;
        LoadProblems problems = {};
        int r;

        if (check_parameters(c, parameters, allowed) < 0)
                return 0;
        r = manager_reload(m, &problems);
        if (r < 0) {
                load_problems_done(&problems);
                return reply_storage_failed(c, r);
        }

        a = json_object_new_array();
        for (size_t i = 0; a && i < problems.n; i++) {
                struct json_object *o = json_object_new_object();
                if (!o)
                        break;
                json_object_object_add(o, "file", json_object_new_string(problems.items[i].file));
                json_object_object_add(o, "line", json_object_new_int64(problems.items[i].line));
                json_object_object_add(o, "field", json_object_new_string(problems.items[i].field));
                json_object_object_add(o, "reason", json_object_new_string(problems.items[i].reason));
                json_object_array_add(a, o);
        }
        load_problems_done(&problems);
        if (!a)
                return -ENOMEM;
        return control_reply(c, object_new("profiles", json_object_new_int64((int64_t) m->store->n_profiles),
                                           "problems", TAKE_PTR(a)));
}

static int get_optional_bool(ControlConnection *c, struct json_object *parameters, const char *key, bool def, bool *ret) {
        struct json_object *v;

        if (!json_object_object_get_ex(parameters, key, &v) || json_object_is_type(v, json_type_null)) {
                *ret = def;
                return 0;
        }
        if (!json_object_is_type(v, json_type_boolean)) {
                (void) control_reply_invalid_parameter(c, key);
                return -EINVAL;
        }
        *ret = json_object_get_boolean(v);
        return 0;
}

static int reply_status(ControlConnection *c, ClientTunnel *t, const char *extra_key, const char *extra_value) {
        struct json_object *status, *p;
        int r;

        r = client_tunnel_status_json(t, &status);
        if (r < 0)
                return r;
        p = object_new("status", status, extra_key, extra_key ? json_object_new_string(extra_value) : NULL);
        if (!p)
                return -ENOMEM;
        return control_reply(c, p);
}

/* Finds the tunnel of the call's "name", answering NoSuchProfile itself. */
static int get_tunnel(ControlConnection *c, Manager *m, struct json_object *parameters, const char *const *allowed,
                      ClientTunnel **ret) {
        const char *name;

        if (check_parameters(c, parameters, allowed) < 0 || get_name(c, parameters, &name) < 0)
                return -EINVAL;
        *ret = manager_get_tunnel(m, name);
        if (!*ret) {
                (void) reply_error_name(c, ERROR_NO_SUCH_PROFILE, name);
                return -ENOENT;
        }
        return 0;
}

static int bring_up(ControlConnection *c, Manager *m, ClientTunnel *t, bool wait) {
        _cleanup_(freep) char *error = NULL;
        int r;

        r = client_tunnel_up(t, &error);
        if (r < 0) {
                ProfileError e = { .field = "Listen" };

                (void) snprintf(e.reason, sizeof e.reason, "cannot listen on %.160s: %s", strna(error), strerror(-r));
                return reply_invalid_profile(c, &e);
        }
        manager_update_status(m);
        switch (client_tunnel_state(t)) {
        case TUNNEL_CONNECTING:
        case TUNNEL_AUTHENTICATING:
                if (wait) {
                        r = manager_add_waiter(m, c, client_tunnel_name(t));
                        if (r < 0)
                                return r;
                        return 0; /* answered by the state hook */
                }
                _fallthrough_;
        default:
                return reply_status(c, t, NULL, NULL);
        }
}

/* Up and Restart: the same parameters and answer; Restart takes the tunnel down first. */
static int up_or_restart(ControlConnection *c, struct json_object *parameters, Manager *m, bool restart) {
        static const char *const allowed[] = { "name", "wait", NULL };
        ClientTunnel *t;
        bool wait;

        if (get_tunnel(c, m, parameters, allowed, &t) < 0 || get_optional_bool(c, parameters, "wait", true, &wait) < 0)
                return 0;
        if (restart)
                client_tunnel_down(t);
        if (m->stopping)
                return reply_status(c, t, NULL, NULL);
        return bring_up(c, m, t, wait);
}

static int method_up(ControlConnection *c, struct json_object *parameters, void *userdata) {
        return up_or_restart(c, parameters, userdata, false);
}

static int method_down(ControlConnection *c, struct json_object *parameters, void *userdata) {
        static const char *const allowed[] = { "name", NULL };
        Manager *m = userdata;
        ClientTunnel *t;

        if (get_tunnel(c, m, parameters, allowed, &t) < 0)
                return 0;
        client_tunnel_down(t);
        manager_update_status(m);
        return reply_status(c, t, NULL, NULL);
}

static int method_restart(ControlConnection *c, struct json_object *parameters, void *userdata) {
        return up_or_restart(c, parameters, userdata, true);
}

static int method_status(ControlConnection *c, struct json_object *parameters, void *userdata) {
        static const char *const allowed[] = { "name", NULL };
        Manager *m = userdata;
        _cleanup_(json_object_putp) struct json_object *a = NULL;
        struct json_object *v;
        const char *name = NULL;
        int r;

        if (check_parameters(c, parameters, allowed) < 0)
                return 0;
        if (json_object_object_get_ex(parameters, "name", &v) && !json_object_is_type(v, json_type_null)) {
                if (!json_object_is_type(v, json_type_string))
                        return control_reply_invalid_parameter(c, "name");
                name = json_object_get_string(v);
                if (!manager_get_tunnel(m, name))
                        return reply_error_name(c, ERROR_NO_SUCH_PROFILE, name);
        }
        a = json_object_new_array();
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_tunnels; i++) {
                struct json_object *o;

                if (name && !streq(name, client_tunnel_name(m->tunnels[i])))
                        continue;
                r = client_tunnel_status_json(m->tunnels[i], &o);
                if (r < 0)
                        return r;
                json_object_array_add(a, o);
        }
        return control_reply(c, object_new("tunnels", TAKE_PTR(a), NULL, NULL));
}

static int method_trust(ControlConnection *c, struct json_object *parameters, void *userdata) {
        static const char *const allowed[] = { "name", "fingerprint", NULL };
        Manager *m = userdata;
        _cleanup_(freep) char *presented = NULL, *name = NULL;
        struct json_object *v;
        const char *want = NULL;
        ClientTunnel *t;
        Profile *p;
        int r;

        if (get_tunnel(c, m, parameters, allowed, &t) < 0)
                return 0;
        /* The tunnel's own copy of the name goes away when the pin changes its profile. */
        name = strdup(client_tunnel_name(t));
        if (!name)
                return -ENOMEM;
        if (json_object_object_get_ex(parameters, "fingerprint", &v) && !json_object_is_type(v, json_type_null)) {
                if (!json_object_is_type(v, json_type_string))
                        return control_reply_invalid_parameter(c, "fingerprint");
                want = json_object_get_string(v);
        }
        if (!client_tunnel_presented_host_key(t))
                return reply_error_name(c, ERROR_NO_HOST_KEY_TO_TRUST, name);
        presented = strdup(client_tunnel_presented_host_key(t));
        if (!presented)
                return -ENOMEM;
        if (want && !streq(want, presented))
                return control_reply_error(c, ERROR_FINGERPRINT_MISMATCH,
                                           object_new("name", json_object_new_string(name),
                                                      "presented", json_object_new_string(presented)));
        p = profile_store_get(m->store, name);
        if (p && p->read_only)
                return control_reply_error(c, ERROR_READ_ONLY_PROFILE,
                                           object_new("name", json_object_new_string(name),
                                                      "file", json_object_new_string(strempty(p->source))));
        r = manager_pin_host_key(m, name, presented);
        if (r < 0) {
                ProfileError err = { .field = "HostKey" };
                if (r == -ENOMEM)
                        return r;
                (void) snprintf(err.reason, sizeof err.reason, "cannot pin: %s", strerror(-r));
                return reply_invalid_profile(c, &err);
        }
        log_profile(LOG_NOTICE, name, ALKNET_MESSAGE_HOSTKEY, "Tunnel %s: host key %s trusted by uid %u", name, presented,
                    (unsigned) control_connection_peer(c)->uid);
        (void) manager_sync_tunnels(m); /* a failed tunnel retries with the new pin */
        t = manager_get_tunnel(m, name);
        if (!t)
                return reply_error_name(c, ERROR_NO_SUCH_PROFILE, name);
        return reply_status(c, t, "fingerprint", presented);
}

static int method_monitor(ControlConnection *c, struct json_object *parameters, void *userdata) {
        static const char *const allowed[] = { NULL };
        Manager *m = userdata;
        int r;

        if (check_parameters(c, parameters, allowed) < 0)
                return 0;
        if (!control_connection_more(c))
                return control_reply_error(c, VARLINK_ERROR_EXPECTED_MORE, NULL);
        for (size_t i = 0; i < m->n_tunnels; i++) {
                struct json_object *o;

                r = client_tunnel_status_json(m->tunnels[i], &o);
                if (r < 0)
                        return r;
                r = control_reply_more(c, object_new("status", o, NULL, NULL));
                if (r < 0)
                        return 0; /* the connection is gone */
        }
        return manager_add_waiter(m, c, NULL);
}

static int method_server_status(ControlConnection *c, struct json_object *parameters, void *userdata) {
        static const char *const allowed[] = { NULL };
        Manager *m = userdata;
        struct json_object *o;
        int r;

        if (check_parameters(c, parameters, allowed) < 0)
                return 0;
        if (m->server) {
                r = server_status_json(m->server, &o);
                if (r < 0)
                        return r;
        } else {
                o = json_object_new_object();
                if (!o)
                        return -ENOMEM;
                json_object_object_add(o, "listeners", json_object_new_array());
                json_object_object_add(o, "sessions", json_object_new_array());
                if (m->server_error)
                        json_object_object_add(o, "error", json_object_new_string(m->server_error));
                for (const char *const *k = (const char *const[]) { "sessionsTotal", "channels", "channelsTotal",
                                                                     "authAccepted", "authRejected",
                                                                     "refusedByLimits", NULL };
                     *k; k++)
                        json_object_object_add(o, *k, json_object_new_int64(0));
        }
        json_object_object_add(o, "running", json_object_new_boolean(m->server != NULL));
        return control_reply(c, object_new("server", o, NULL, NULL));
}

static const ControlMethod manager_methods[] = {
        { "ListProfiles", method_list_profiles, false },
        { "GetProfile", method_get_profile, false },
        { "AddProfile", method_add_profile, true },
        { "UpdateProfile", method_update_profile, true },
        { "RemoveProfile", method_remove_profile, true },
        { "Reload", method_reload, true },
        { "Up", method_up, true },
        { "Down", method_down, true },
        { "Restart", method_restart, true },
        { "Status", method_status, false },
        { "Trust", method_trust, true },
        { "Monitor", method_monitor, false },
        { "ServerStatus", method_server_status, false },
};

static const ControlInterface manager_interface = {
        .name = MANAGER_INTERFACE,
        .description = varlink_idl_io_alknet_manager,
        .permission_denied_error = ERROR_PERMISSION_DENIED,
        .methods = manager_methods,
        .n_methods = ELEMENTSOF(manager_methods),
};

int manager_varlink_register(Manager *m) {
        return control_server_add_interface(m->control, &manager_interface, m);
}
