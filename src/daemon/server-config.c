/* Parsing of [Server] settings. Values are checked here; files they name are read when the
 * server starts (and again on reload). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include "dial.h"
#include "server-config.h"

void server_config_init(ServerConfig *c) {
        *c = (ServerConfig) {
                .login_grace_usec = SERVER_LOGIN_GRACE_DEFAULT_USEC,
                .max_sessions = SERVER_MAX_SESSIONS_DEFAULT,
                .max_per_source = SERVER_MAX_PER_SOURCE_DEFAULT,
                .max_auth_tries = SERVER_MAX_AUTH_TRIES_DEFAULT,
                .max_channels = SERVER_MAX_CHANNELS_DEFAULT,
                .max_remote_forwards = SERVER_MAX_REMOTE_FORWARDS_DEFAULT,
        };
}

void server_config_done(ServerConfig *c) {
        for (size_t i = 0; i < c->n_listen; i++)
                free(c->listen[i].host);
        free(c->listen);
        free(c->host_key);
        free(c->authorized_keys);
        free(c->trusted_user_ca_keys);
        free(c->tls_certificate);
        free(c->tls_key);
        free(c->stealth_fallback);
        free(c->outbound_proxy);
        strv_free(c->permit_open);
        strv_free(c->deny_open);
        server_config_init(c);
}

static int parse_port(const char *s, uint16_t *ret) {
        char *end;
        unsigned long v;

        if (!*s || *s == '-' || *s == '+')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v == 0 || v > 65535)
                return -EINVAL;
        *ret = (uint16_t) v;
        return 0;
}

int server_listen_parse(const char *s, ServerListen *ret) {
        char host[INET6_ADDRSTRLEN + 2];
        const char *rest, *colon;
        unsigned char buf[16];
        ServerTransport t;
        uint16_t port;
        size_t n;

        if ((rest = startswith(s, "tcp:")))
                t = SERVER_TRANSPORT_TCP;
        else if ((rest = startswith(s, "tls:")))
                t = SERVER_TRANSPORT_TLS;
        else
                return -EINVAL;

        if (*rest == '[') {
                const char *close = strchr(rest, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                n = (size_t) (close - rest - 1);
                if (n >= sizeof host)
                        return -EINVAL;
                memcpy(host, rest + 1, n);
                host[n] = '\0';
                if (inet_pton(AF_INET6, host, buf) != 1)
                        return -EINVAL;
                colon = close + 1;
        } else {
                colon = strrchr(rest, ':');
                if (!colon)
                        return -EINVAL;
                n = (size_t) (colon - rest);
                if (n >= sizeof host)
                        return -EINVAL;
                memcpy(host, rest, n);
                host[n] = '\0';
                if (streq(host, "*"))
                        strcpy(host, "0.0.0.0");
                if (inet_pton(AF_INET, host, buf) != 1)
                        return -EINVAL;
        }
        if (parse_port(colon + 1, &port) < 0)
                return -EINVAL;
        *ret = (ServerListen) { .transport = t, .host = strdup(host), .port = port };
        return ret->host ? 0 : -ENOMEM;
}

static int set_string(char **field, const char *value) {
        char *v = NULL;

        if (!isempty(value)) {
                v = strdup(value);
                if (!v)
                        return -ENOMEM;
        }
        free(*field);
        *field = v;
        return 0;
}

static int set_path(char **field, const char *value, char *reason, size_t size) {
        if (!isempty(value) && value[0] != '/') {
                snprintf(reason, size, "not an absolute path: %s", value);
                return -EINVAL;
        }
        return set_string(field, value);
}

static int set_bool(bool *field, const char *value, char *reason, size_t size) {
        if (streq(value, "yes") || streq(value, "true") || streq(value, "1") || streq(value, "on"))
                *field = true;
        else if (streq(value, "no") || streq(value, "false") || streq(value, "0") || streq(value, "off"))
                *field = false;
        else {
                snprintf(reason, size, "not a boolean: %s", value);
                return -EINVAL;
        }
        return 0;
}

static int set_unsigned(unsigned *field, const char *value, unsigned min, unsigned max, char *reason, size_t size) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(value, &end, 10);
        if (!*value || *value == '-' || errno || *end || v < min || v > max) {
                snprintf(reason, size, "not a number in %u-%u: %s", min, max, value);
                return -EINVAL;
        }
        *field = (unsigned) v;
        return 0;
}

static int append(char ***list, const char *value) {
        size_t n = 0;
        char **l;

        while (*list && (*list)[n])
                n++;
        if (n >= SERVER_POLICY_MAX)
                return -E2BIG;
        l = realloc(*list, (n + 2) * sizeof *l);
        if (!l)
                return -ENOMEM;
        l[n] = strdup(value);
        if (!l[n]) {
                *list = l;
                l[n] = NULL;
                return -ENOMEM;
        }
        l[n + 1] = NULL;
        *list = l;
        return 0;
}

int server_config_set(ServerConfig *c, const char *key, const char *value, char *reason, size_t size) {
        c->seen = true;

        if (streq(key, "Listen")) {
                ServerListen l, *a;

                if (isempty(value)) {
                        for (size_t i = 0; i < c->n_listen; i++)
                                free(c->listen[i].host);
                        c->n_listen = 0;
                        return 0;
                }
                if (c->n_listen >= SERVER_LISTEN_MAX) {
                        snprintf(reason, size, "more than %u listeners", SERVER_LISTEN_MAX);
                        return -E2BIG;
                }
                if (server_listen_parse(value, &l) < 0) {
                        snprintf(reason, size, "not tcp:ADDRESS:PORT or tls:ADDRESS:PORT: %s", value);
                        return -EINVAL;
                }
                a = realloc(c->listen, (c->n_listen + 1) * sizeof *a);
                if (!a) {
                        free(l.host);
                        return -ENOMEM;
                }
                c->listen = a;
                a[c->n_listen++] = l;
                return 0;
        }
        if (streq(key, "HostKey"))
                return set_path(&c->host_key, value, reason, size);
        if (streq(key, "AuthorizedKeys"))
                return set_path(&c->authorized_keys, value, reason, size);
        if (streq(key, "TrustedUserCAKeys"))
                return set_path(&c->trusted_user_ca_keys, value, reason, size);
        if (streq(key, "TLSCertificate"))
                return set_path(&c->tls_certificate, value, reason, size);
        if (streq(key, "TLSKey"))
                return set_path(&c->tls_key, value, reason, size);
        if (streq(key, "Stealth"))
                return set_bool(&c->stealth, value, reason, size);
        if (streq(key, "GatewayPorts"))
                return set_bool(&c->gateway_ports, value, reason, size);
        if (streq(key, "StealthFallback")) {
                ServerListen l;
                char spec[300];

                if (isempty(value))
                        return set_string(&c->stealth_fallback, NULL);
                snprintf(spec, sizeof spec, "tcp:%s", value);
                if (server_listen_parse(spec, &l) < 0) {
                        snprintf(reason, size, "not ADDRESS:PORT: %s", value);
                        return -EINVAL;
                }
                free(l.host);
                return set_string(&c->stealth_fallback, value);
        }
        if (streq(key, "OutboundProxy")) {
                /* The dialer's own parser: a URL it refuses would refuse every channel. */
                DialProxyType type;
                _cleanup_(freep) char *host = NULL;
                uint16_t port;

                /* Fails closed: a proxy that was asked for (for privacy, say) but cannot be
                 * used must not turn into direct connections. */
                c->outbound_proxy_invalid = !isempty(value) && dial_proxy_parse(value, &type, &host, &port) < 0;
                if (c->outbound_proxy_invalid) {
                        free(c->outbound_proxy);
                        c->outbound_proxy = NULL;
                        snprintf(reason, size,
                                 "not socks5://HOST:PORT or http://HOST:PORT: %s; every channel is refused, none goes direct",
                                 value);
                        return -EINVAL;
                }
                return set_string(&c->outbound_proxy, value);
        }
        if (streq(key, "LoginGraceTime")) {
                unsigned v;
                int r = set_unsigned(&v, value, 1, 600, reason, size);
                if (r >= 0)
                        c->login_grace_usec = (uint64_t) v * USEC_PER_SEC;
                return r;
        }
        if (streq(key, "MaxSessions"))
                return set_unsigned(&c->max_sessions, value, 1, 65536, reason, size);
        if (streq(key, "MaxConnectionsPerSource"))
                return set_unsigned(&c->max_per_source, value, 1, 65536, reason, size);
        if (streq(key, "MaxAuthTries"))
                return set_unsigned(&c->max_auth_tries, value, 1, 100, reason, size);
        if (streq(key, "MaxChannelsPerSession"))
                return set_unsigned(&c->max_channels, value, 1, 65536, reason, size);
        if (streq(key, "MaxRemoteForwardsPerSession"))
                return set_unsigned(&c->max_remote_forwards, value, 0, 1024, reason, size);
        if (streq(key, "PermitOpen") || streq(key, "DenyOpen")) {
                char ***l = streq(key, "PermitOpen") ? &c->permit_open : &c->deny_open;
                if (isempty(value)) {
                        *l = strv_free(*l);
                        return 0;
                }
                if (!strchr(value, ':')) {
                        snprintf(reason, size, "not HOST-PATTERN:PORTS or CIDR:PORTS: %s", value);
                        return -EINVAL;
                }
                return append(l, value);
        }
        snprintf(reason, size, "unknown key");
        return -ENOENT;
}
