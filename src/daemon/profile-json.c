/* Turns a Profile into the Varlink Profile type of io.alknet.Manager. */
#include <stdio.h>

#include "ini.h"
#include "profile-json.h"

DEFINE_VOID_CLEANUP_FUNC(struct json_object, json_object_put);

static int add(struct json_object *o, const char *key, struct json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_string(struct json_object *o, const char *key, const char *s) {
        return add(o, key, json_object_new_string(s));
}

/* Optional strings are left out when unset, as Varlink expects for "?string". */
static int add_optional(struct json_object *o, const char *key, const char *s) {
        return s ? add_string(o, key, s) : 0;
}

static int append(struct json_object *a, struct json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_array_add(a, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int append_owned(struct json_object *a, char *s) {
        int r;

        if (!s)
                return -ENOMEM;
        r = append(a, json_object_new_string(s));
        free(s);
        return r;
}

static int settings_cb(const char *section, const char *key, const char *value, unsigned line, void *userdata) {
        struct json_object *a = userdata, *o;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        if (add_string(o, "key", key) < 0 || add_string(o, "value", value) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        return append(a, o);
}

int profile_to_json(const Profile *p, struct json_object **ret) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        struct json_object *a;
        _cleanup_(freep) char *server = NULL, *text = NULL;
        Address sa = { .host = p->server_host, .port = p->server_port };
        int r;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;

        r = address_format(&sa, &server);
        if (r < 0)
                return r;

        if ((r = add_string(o, "name", p->name)) < 0 ||
            (r = add_string(o, "source", p->read_only ? "/etc" : "managed")) < 0 ||
            (r = add_string(o, "file", strempty(p->source))) < 0 ||
            (r = add(o, "readOnly", json_object_new_boolean(p->read_only))) < 0 ||
            (r = add_string(o, "server", server)) < 0 ||
            (r = add_string(o, "user", p->user ?: PROFILE_USER_DEFAULT)) < 0 ||
            (r = add_optional(o, "identity", p->identity)) < 0)
                return r;

        a = json_object_new_array();
        if ((r = add(o, "hostKeys", a)) < 0)
                return r;
        for (char **k = p->host_keys; k && *k; k++)
                if ((r = append(a, json_object_new_string(*k))) < 0)
                        return r;

        if ((r = add_string(o, "hostKeyPolicy", host_key_policy_to_string(p->host_key_policy))) < 0 ||
            (r = add_string(o, "transport", transport_to_string(p->transport))) < 0 ||
            (r = add_optional(o, "tlsServerName", p->tls_server_name)) < 0 ||
            (r = add(o, "tlsVerify", json_object_new_boolean(p->tls_verify))) < 0 ||
            (r = add_optional(o, "tlsCA", p->tls_ca)) < 0 ||
            (r = add_optional(o, "tlsPin", p->tls_pin)) < 0 ||
            (r = add_optional(o, "proxy", p->proxy)) < 0 ||
            (r = add(o, "autoStart", json_object_new_boolean(p->auto_start))) < 0 ||
            (r = add(o, "keepaliveIntervalUSec", json_object_new_int64((int64_t) p->keepalive_interval_usec))) < 0 ||
            (r = add(o, "keepaliveCountMax", json_object_new_int64(p->keepalive_count_max))) < 0)
                return r;

        a = json_object_new_array();
        if ((r = add(o, "socksListen", a)) < 0)
                return r;
        if (!p->socks_listen_set) {
                char *def;
                if (asprintf(&def, "127.0.0.1:%u", PROFILE_SOCKS_PORT_DEFAULT) < 0)
                        return -ENOMEM;
                if ((r = append_owned(a, def)) < 0)
                        return r;
        }
        for (size_t i = 0; i < p->n_socks_listen; i++) {
                char *s = NULL;
                if ((r = address_format(&p->socks_listen[i], &s)) < 0 || (r = append_owned(a, s)) < 0)
                        return r;
        }
        if ((r = add_optional(o, "socksUsername", p->socks_username)) < 0 ||
            (r = add_optional(o, "socksPasswordFile", p->socks_password_file)) < 0)
                return r;

        a = json_object_new_array();
        if ((r = add(o, "local", a)) < 0)
                return r;
        for (size_t i = 0; i < p->n_local; i++) {
                char *s = NULL;
                if ((r = forward_format(&p->local[i], &s)) < 0 || (r = append_owned(a, s)) < 0)
                        return r;
        }
        a = json_object_new_array();
        if ((r = add(o, "remote", a)) < 0)
                return r;
        for (size_t i = 0; i < p->n_remote; i++) {
                char *s = NULL;
                if ((r = forward_format(&p->remote[i], &s)) < 0 || (r = append_owned(a, s)) < 0)
                        return r;
        }

        /* The non-default settings in file order: exactly what the stored file says. */
        a = json_object_new_array();
        if ((r = add(o, "settings", a)) < 0)
                return r;
        r = profile_format(p, &text);
        if (r < 0)
                return r;
        r = ini_parse(text, strlen(text), settings_cb, a, NULL, NULL);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}
