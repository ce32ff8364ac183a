/* libFuzzer target for authorized_keys files and the matching helpers
 * (src/shared/authorized-keys.c): every kept key is a valid blob of its line's type, every
 * refused line is reported once with a printable reason, permissions admit their own
 * entries, a pattern matches its own text; abort() otherwise.
 * Input: the file text. Byte 0 bit 0 picks the TrustedUserCAKeys flavour (no options). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authorized-keys.h"
#include "fuzz-check.h"
#include "macro.h"

static void make_peer(const char *text, struct sockaddr_storage *ss) {
        memset(ss, 0, sizeof *ss);
        if (strchr(text, ':')) {
                ((struct sockaddr_in6 *) ss)->sin6_family = AF_INET6;
                check(inet_pton(AF_INET6, text, &((struct sockaddr_in6 *) ss)->sin6_addr) == 1);
        } else {
                ((struct sockaddr_in *) ss)->sin_family = AF_INET;
                check(inet_pton(AF_INET, text, &((struct sockaddr_in *) ss)->sin_addr) == 1);
        }
}

static void check_permissions(const ForwardPermissions *f) {
        ForwardPermissions copy;

        /* Each entry admits its own host and port (a pattern matches its own text). */
        for (size_t i = 0; i < f->n_open; i++) {
                const AuthorizedPermit *p = &f->open[i];
                uint16_t port = p->port == AUTHORIZED_PERMIT_PORT_ANY ? 1 : (uint16_t) p->port;

                check(p->host && *p->host && (p->port == AUTHORIZED_PERMIT_PORT_ANY || (p->port >= 1 && p->port <= 65535)));
                check(permitopen_allows(f, p->host, port) == f->allowed);
        }
        for (size_t i = 0; i < f->n_listen; i++) {
                const AuthorizedPermit *p = &f->listen[i];
                uint16_t port = p->port == AUTHORIZED_PERMIT_PORT_ANY ? 0 : (uint16_t) p->port;

                check(p->host && *p->host && (p->port == AUTHORIZED_PERMIT_PORT_ANY || (p->port >= 1 && p->port <= 65535)));
                check(permitlisten_allows(f, p->host, port) == f->allowed);
        }
        if (!f->allowed) {
                check(!permitopen_allows(f, "x", 1));
                check(!permitlisten_allows(f, "x", 1));
        }

        check(forward_permissions_copy(f, &copy) == 0);
        check(copy.allowed == f->allowed && copy.n_open == f->n_open && copy.n_listen == f->n_listen);
        for (size_t i = 0; i < f->n_open; i++)
                check(streq(copy.open[i].host, f->open[i].host) && copy.open[i].port == f->open[i].port);
        forward_permissions_done(&copy);
}

static void check_keys(const AuthorizedKeys *k, AuthorizedKeysFlags flags, unsigned lines) {
        static const char *const peers[] = { "127.0.0.1", "10.1.2.3", "::1", "2001:db8::7", "::ffff:192.0.2.1" };
        unsigned last = 0;

        check(k->n_entries <= AUTHORIZED_KEYS_ENTRIES_MAX);
        check(k->n_errors <= AUTHORIZED_KEYS_ERRORS_MAX);
        check(k->n_errors_dropped == 0 || k->n_errors == AUTHORIZED_KEYS_ERRORS_MAX);

        for (size_t i = 0; i < k->n_entries; i++) {
                const AuthorizedKey *e = &k->entries[i];
                SshPublicKey key;

                /* One line holds one key: line numbers strictly increase. */
                check(e->line > last && e->line <= lines);
                last = e->line;
                check(ssh_key_blob_parse(e->blob, e->blob_size, &key) == 0 && key.type == e->type);
                check(!e->comment || (*e->comment && e->comment[strlen(e->comment) - 1] != ' '));
                if (flags & AUTHORIZED_KEYS_NO_OPTIONS)
                        check(e->options.forward.allowed && !e->options.restricted && !e->options.cert_authority &&
                              !e->options.from && !e->options.principals && e->options.expiry_time == 0 &&
                              e->options.forward.n_open == 0 && e->options.forward.n_listen == 0);
                check(!e->options.principals || !e->options.principals[e->options.n_principals]);
                check(e->options.n_principals <= AUTHORIZED_KEYS_PRINCIPALS_MAX);
                for (size_t j = 0; j < e->options.n_principals; j++)
                        check(*e->options.principals[j]);
                check_permissions(&e->options.forward);

                for (size_t j = 0; j < ELEMENTSOF(peers); j++) {
                        struct sockaddr_storage ss;

                        make_peer(peers[j], &ss);
                        (void) authorized_keys_match_from(e, (struct sockaddr *) &ss);
                }
                if (!e->options.from)
                        check(authorized_keys_match_from(e, (struct sockaddr *) &(struct sockaddr_in) { .sin_family = AF_INET }));
        }

        last = 0;
        for (size_t i = 0; i < k->n_errors; i++) {
                const AuthorizedKeysError *err = &k->errors[i];

                check(err->line >= last && err->line >= 1 && err->line <= lines);
                last = err->line;
                check(err->error == -EBADMSG || err->error == -EOPNOTSUPP || err->error == -E2BIG ||
                      err->error == -EMSGSIZE);
                check(err->message && *err->message);
                for (const char *c = err->message; *c; c++)
                        check(*c >= 0x20 && *c < 0x7f);
                /* A refused line is never also kept. */
                for (size_t j = 0; j < k->n_entries; j++)
                        check(k->entries[j].line != err->line);
        }
}

/* The helpers on the raw text: a pattern matches itself, an address its own CIDR. */
static void check_helpers(const char *s) {
        SshCidr c;
        int r;

        check(ssh_pattern_match(s, s, false));
        check(ssh_pattern_match(s, "*", false));
        r = ssh_pattern_match_list(s, s, true);
        check(r >= -1 && r <= 1);
        if (!strchr(s, ',') && *s != '!')
                check(r == 1);
        if (ssh_cidr_parse(s, &c) == 0) {
                struct sockaddr_storage ss = {};

                check(c.family == AF_INET || c.family == AF_INET6);
                check(c.prefix <= (c.family == AF_INET ? 32u : 128u));
                if (c.family == AF_INET) {
                        ((struct sockaddr_in *) &ss)->sin_family = AF_INET;
                        memcpy(&((struct sockaddr_in *) &ss)->sin_addr, c.addr, 4);
                } else {
                        ((struct sockaddr_in6 *) &ss)->sin6_family = AF_INET6;
                        memcpy(&((struct sockaddr_in6 *) &ss)->sin6_addr, c.addr, 16);
                }
                /* IPv4-mapped networks are compared as IPv4 on the peer side only. */
                if (c.family == AF_INET || !IN6_IS_ADDR_V4MAPPED((struct in6_addr *) c.addr)) {
                        check(ssh_cidr_match(&c, (struct sockaddr *) &ss));
                        check(ssh_cidr_list_match(s, (struct sockaddr *) &ss) == 1);
                }
        }
        r = ssh_cidr_list_match(s, (struct sockaddr *) &(struct sockaddr_in) { .sin_family = AF_INET });
        check(r == 0 || r == 1 || r == -EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        AuthorizedKeysFlags flags;
        AuthorizedKeys *k = NULL;
        unsigned lines = 1;
        size_t n;
        char *text;

        if (size < 1)
                return 0;
        flags = data[0] & 1 ? AUTHORIZED_KEYS_NO_OPTIONS : 0;
        n = size - 1;
        text = malloc(n ? n : 1); /* exactly sized, so ASan sees overreads */
        check(text);
        memcpy(text, data + 1, n);
        for (size_t i = 0; i < n; i++)
                lines += text[i] == '\n';

        check(authorized_keys_parse(text, n, flags, &k) == 0);
        check_keys(k, flags, lines);
        authorized_keys_free(k);

        /* The text as one C string for the pattern helpers (short inputs only: they are
         * linear, but the invariants call them several times). */
        if (n <= 512 && !memchr(text, 0, n)) {
                char *s = strndup(text, n);

                check(s);
                check_helpers(s);
                free(s);
        }
        free(text);
        return 0;
}
