/* Unit tests for authorized_keys parsing (src/shared/authorized-keys.c) and the key blob
 * parser beneath it: every option, quoting, key types and base64, refused options with
 * their exact line, from= / permitopen / permitlisten matching, patterns, CIDRs, limits. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authorized-keys.h"
#include "macro.h"

/* Synthetic public keys: the parser checks structure, never the math, so made-up key
 * bytes of the right shape are real enough (and no key material is committed). */
typedef struct Buf {
        uint8_t data[4096];
        size_t n;
} Buf;

static void put_u32(Buf *b, uint32_t v) {
        ck_assert_uint_le(b->n + 4, sizeof b->data);
        b->data[b->n++] = (uint8_t) (v >> 24);
        b->data[b->n++] = (uint8_t) (v >> 16);
        b->data[b->n++] = (uint8_t) (v >> 8);
        b->data[b->n++] = (uint8_t) v;
}

static void put_bytes(Buf *b, const void *p, size_t n) {
        ck_assert_uint_le(b->n + n, sizeof b->data);
        memcpy(b->data + b->n, p, n);
        b->n += n;
}

static void put_string(Buf *b, const void *p, size_t n) {
        put_u32(b, (uint32_t) n);
        put_bytes(b, p, n);
}

static void put_cstring(Buf *b, const char *s) {
        put_string(b, s, strlen(s));
}

static void key_blob(SshKeyType type, uint8_t seed, Buf *b) {
        uint8_t bytes[1 + 2 * 66 + 1];

        memset(b, 0, sizeof *b);
        memset(bytes, seed, sizeof bytes);
        put_cstring(b, ssh_key_type_to_string(type));
        switch (type) {
        case SSH_KEY_ED25519:
                put_string(b, bytes, 32);
                break;
        case SSH_KEY_ECDSA_P256:
        case SSH_KEY_ECDSA_P384:
        case SSH_KEY_ECDSA_P521: {
                size_t n = type == SSH_KEY_ECDSA_P256 ? 65 : type == SSH_KEY_ECDSA_P384 ? 97 : 133;

                put_cstring(b, type == SSH_KEY_ECDSA_P256 ? "nistp256" : type == SSH_KEY_ECDSA_P384 ? "nistp384" : "nistp521");
                bytes[0] = 0x04;
                put_string(b, bytes, n);
                break;
        }
        case SSH_KEY_RSA: {
                uint8_t e[3] = { 0x01, 0x00, 0x01 }, n[257];

                memset(n, seed | 0x01, sizeof n);
                n[0] = 0x00; /* the mpint's sign byte: the modulus is 2048 bits with the top bit set */
                n[1] = 0xc1;
                put_string(b, e, sizeof e);
                put_string(b, n, sizeof n);
                break;
        }
        default:
                abort();
        }
}

static void *mfree(void *p) {
        free(p);
        return NULL;
}

static char *b64(const uint8_t *data, size_t n) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *out = malloc((n + 2) / 3 * 4 + 1);
        size_t o = 0;

        ck_assert_ptr_nonnull(out);
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) data[i] << 16 | (i + 1 < n ? data[i + 1] << 8 : 0) | (i + 2 < n ? data[i + 2] : 0);

                out[o++] = alphabet[v >> 18 & 63];
                out[o++] = alphabet[v >> 12 & 63];
                out[o++] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
                out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
        }
        out[o] = 0;
        return out;
}

/* "ssh-ed25519 AAAA..." for a synthetic key. */
static char *key_text(SshKeyType type, uint8_t seed) {
        _cleanup_(freep) char *data = NULL;
        char *s;
        Buf b;

        key_blob(type, seed, &b);
        data = b64(b.data, b.n);
        ck_assert_int_ge(asprintf(&s, "%s %s", ssh_key_type_to_string(type), data), 0);
        return s;
}

static AuthorizedKeys *parse_text(const char *text, AuthorizedKeysFlags flags) {
        AuthorizedKeys *k = NULL;
        size_t n = strlen(text);
        char *copy = malloc(n ? n : 1); /* exactly sized: ASan sees any read past the end */

        ck_assert_ptr_nonnull(copy);
        memcpy(copy, text, n);
        ck_assert_int_eq(authorized_keys_parse(copy, n, flags, &k), 0);
        free(copy);
        ck_assert_ptr_nonnull(k);
        return k;
}

/* One line: OPTIONS ssh-ed25519 KEY comment */
static AuthorizedKeys *parse_options_line(const char *options) {
        _cleanup_(freep) char *key = key_text(SSH_KEY_ED25519, 7), *line = NULL;

        ck_assert_int_ge(asprintf(&line, "%s%s%s user@host\n", options, *options ? " " : "", key), 0);
        return parse_text(line, 0);
}

static void assert_one_error(const AuthorizedKeys *k, unsigned line, int error, const char *message_part) {
        ck_assert_uint_eq(k->n_entries, 0);
        ck_assert_uint_eq(k->n_errors, 1);
        ck_assert_uint_eq(k->errors[0].line, line);
        ck_assert_int_eq(k->errors[0].error, error);
        ck_assert_msg(strstr(k->errors[0].message, message_part), "message \"%s\" lacks \"%s\"",
                      k->errors[0].message, message_part);
}

START_TEST(test_key_types) {
        for (SshKeyType t = 0; t < _SSH_KEY_TYPE_MAX; t++) {
                _cleanup_(authorized_keys_freep) AuthorizedKeys *k = NULL;
                _cleanup_(freep) char *key = key_text(t, 3), *text = NULL;
                SshPublicKey parsed;
                Buf b;

                key_blob(t, 3, &b);
                ck_assert_int_ge(asprintf(&text, "%s comment with  spaces \n", key), 0);
                k = parse_text(text, 0);
                ck_assert_uint_eq(k->n_entries, 1);
                ck_assert_uint_eq(k->n_errors, 0);
                ck_assert_int_eq(k->entries[0].type, t);
                ck_assert_uint_eq(k->entries[0].line, 1);
                ck_assert_uint_eq(k->entries[0].blob_size, b.n);
                ck_assert_mem_eq(k->entries[0].blob, b.data, b.n);
                ck_assert_str_eq(k->entries[0].comment, "comment with  spaces");
                ck_assert(k->entries[0].options.forward.allowed);
                ck_assert(!k->entries[0].options.restricted);
                ck_assert(!k->entries[0].options.cert_authority);
                ck_assert_ptr_null(k->entries[0].options.from);

                ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &parsed), 0);
                ck_assert_int_eq(parsed.type, t);
                /* Every proper prefix and one trailing byte too many are malformed. */
                for (size_t n = 0; n < b.n; n++)
                        ck_assert_int_eq(ssh_key_blob_parse(b.data, n, &parsed), -EBADMSG);
                b.data[b.n++] = 0;
                ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &parsed), -EBADMSG);
        }
}
END_TEST

START_TEST(test_key_blob_values) {
        SshPublicKey k;
        Buf b;

        key_blob(SSH_KEY_RSA, 0x55, &b);
        ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &k), 0);
        ck_assert_uint_eq(k.rsa_e.size, 3);
        ck_assert_uint_eq(k.rsa_n.size, 256); /* the sign byte is dropped */
        ck_assert_uint_eq(k.rsa_n.data[0], 0xc1);

        key_blob(SSH_KEY_ECDSA_P384, 0x11, &b);
        ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &k), 0);
        ck_assert_uint_eq(k.pk.size, 97);
        ck_assert_uint_eq(k.pk.data[0], 0x04);

        /* Wrong curve name for the type. */
        memset(&b, 0, sizeof b);
        put_cstring(&b, "ecdsa-sha2-nistp256");
        put_cstring(&b, "nistp384");
        {
                uint8_t q[65] = { 0x04 };
                put_string(&b, q, sizeof q);
        }
        ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &k), -EBADMSG);

        /* A compressed point is refused. */
        memset(&b, 0, sizeof b);
        put_cstring(&b, "ecdsa-sha2-nistp256");
        put_cstring(&b, "nistp256");
        {
                uint8_t q[65] = { 0x02 };
                put_string(&b, q, sizeof q);
        }
        ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &k), -EBADMSG);

        /* Ed25519 keys are exactly 32 bytes. */
        memset(&b, 0, sizeof b);
        put_cstring(&b, "ssh-ed25519");
        {
                uint8_t pk[33] = {};
                put_string(&b, pk, 31);
                ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &k), -EBADMSG);
        }

        /* RSA: a modulus under 1024 bits, a negative modulus, an even exponent. */
        {
                uint8_t e[1] = { 3 }, e_even[1] = { 4 }, small[128], neg[256];

                memset(small, 0x7f, sizeof small); /* 1023 bits */
                memset(neg, 0xff, sizeof neg);
                memset(&b, 0, sizeof b);
                put_cstring(&b, "ssh-rsa");
                put_string(&b, e, 1);
                put_string(&b, small, sizeof small);
                ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &k), -EBADMSG);
                small[0] = 0x00;
                memset(&b, 0, sizeof b);
                put_cstring(&b, "ssh-rsa");
                put_string(&b, e, 1);
                put_string(&b, neg, sizeof neg);
                ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &k), -EBADMSG);
                neg[0] = 0x00;
                neg[1] = 0x80;
                memset(&b, 0, sizeof b);
                put_cstring(&b, "ssh-rsa");
                put_string(&b, e_even, 1);
                put_string(&b, neg, sizeof neg);
                ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &k), -EBADMSG);
                memset(&b, 0, sizeof b);
                put_cstring(&b, "ssh-rsa");
                put_string(&b, e, 1);
                put_string(&b, neg, sizeof neg); /* 00 80 ff ...: 2040 bits, positive */
                ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &k), 0);
                ck_assert_uint_eq(k.rsa_n.size, 255);
        }

        /* Names we know but refuse, and names we do not know at all. */
        memset(&b, 0, sizeof b);
        put_cstring(&b, "ssh-dss");
        put_cstring(&b, "whatever");
        ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &k), -EOPNOTSUPP);
        memset(&b, 0, sizeof b);
        put_cstring(&b, "ssh-ed25519-cert-v01@openssh.com");
        ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &k), -EOPNOTSUPP);
        ck_assert(ssh_key_blob_is_cert(b.data, b.n));
        ck_assert(!ssh_key_blob_is_cert(b.data, b.n - 1));
        memset(&b, 0, sizeof b);
        put_cstring(&b, "ssh-foo");
        ck_assert_int_eq(ssh_key_blob_parse(b.data, b.n, &k), -EBADMSG);
        ck_assert(!ssh_key_blob_is_cert(b.data, b.n));
}
END_TEST

static const struct {
        const char *options;
        bool restricted, allowed, cert_authority;
        const char *from;
        size_t n_open, n_listen, n_principals;
        uint64_t expiry;
} good_options[] = {
        { "", false, true, false, NULL, 0, 0, 0, 0 },
        { "restrict", true, false, false, NULL, 0, 0, 0, 0 },
        { "RESTRICT", true, false, false, NULL, 0, 0, 0, 0 },
        { "restrict,port-forwarding", true, true, false, NULL, 0, 0, 0, 0 },
        { "port-forwarding,restrict", true, false, false, NULL, 0, 0, 0, 0 },
        { "no-port-forwarding", false, false, false, NULL, 0, 0, 0, 0 },
        { "no-port-forwarding,port-forwarding", false, true, false, NULL, 0, 0, 0, 0 },
        { "No-Port-Forwarding", false, false, false, NULL, 0, 0, 0, 0 },
        { "no-pty,pty,no-agent-forwarding,agent-forwarding,no-X11-forwarding,X11-forwarding,no-user-rc,user-rc,no-touch-required",
          false, true, false, NULL, 0, 0, 0, 0 },
        { "restrict,no-pty", true, false, false, NULL, 0, 0, 0, 0 },
        { "from=\"10.0.0.0/8,!10.1.0.0/16,*.example.com\"", false, true, false, "10.0.0.0/8,!10.1.0.0/16,*.example.com", 0, 0, 0, 0 },
        { "FROM=\"192.168.1.*\"", false, true, false, "192.168.1.*", 0, 0, 0, 0 },
        { "permitopen=\"host:22\",permitopen=\"*:443\",permitopen=\"[::1]:*\"", false, true, false, NULL, 3, 0, 0, 0 },
        { "permitlisten=\"8080\",permitlisten=\"localhost:*\"", false, true, false, NULL, 0, 2, 0, 0 },
        { "restrict,port-forwarding,permitopen=\"a:1\",permitlisten=\"2\"", true, true, false, NULL, 1, 1, 0, 0 },
        { "cert-authority", false, true, true, NULL, 0, 0, 0, 0 },
        { "cert-authority,principals=\"ops,alknet\"", false, true, true, NULL, 0, 0, 2, 0 },
        { "principals=\"x\"", false, true, false, NULL, 0, 0, 1, 0 }, /* ignored without cert-authority */
        { "expiry-time=\"20300101Z\"", false, true, false, NULL, 0, 0, 0, 1893456000 },
        { "expiry-time=\"203001020304Z\"", false, true, false, NULL, 0, 0, 0, 1893553440 },
        { "expiry-time=\"20300102030405Z\"", false, true, false, NULL, 0, 0, 0, 1893553445 },
        { "expiry-time=\"20300101Z\",expiry-time=\"20290101Z\"", false, true, false, NULL, 0, 0, 0, 1861920000 },
        { "expiry-time=\"20240229z\"", false, true, false, NULL, 0, 0, 0, 1709164800 },
        { "from=\"a\\\"b\"", false, true, false, NULL, 0, 0, 0, 0 }, /* checked separately */
};

START_TEST(test_good_options) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = parse_options_line(good_options[_i].options);
        const AuthorizedKeyOptions *o;

        ck_assert_msg(k->n_errors == 0, "%s: %s", good_options[_i].options, k->n_errors ? k->errors[0].message : "");
        ck_assert_uint_eq(k->n_entries, 1);
        o = &k->entries[0].options;
        ck_assert_int_eq(o->restricted, good_options[_i].restricted);
        ck_assert_int_eq(o->forward.allowed, good_options[_i].allowed);
        ck_assert_int_eq(o->cert_authority, good_options[_i].cert_authority);
        if (good_options[_i].from)
                ck_assert_str_eq(o->from, good_options[_i].from);
        ck_assert_uint_eq(o->forward.n_open, good_options[_i].n_open);
        ck_assert_uint_eq(o->forward.n_listen, good_options[_i].n_listen);
        ck_assert_uint_eq(o->n_principals, good_options[_i].n_principals);
        ck_assert_uint_eq(o->expiry_time, good_options[_i].expiry);
        ck_assert_str_eq(k->entries[0].comment, "user@host");
}
END_TEST

START_TEST(test_option_values) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = NULL;
        const AuthorizedKeyOptions *o;
        struct tm tm = { .tm_year = 130, .tm_mon = 0, .tm_mday = 1, .tm_isdst = -1 };

        /* Quoted values keep spaces and commas; \" is the only escape. */
        k = parse_options_line("from=\"a\\\"b,c\\x\",permitopen=\"[2001:db8::1]:443\",permitopen=\"Example.COM:*\","
                               "permitlisten=\"8080\",permitlisten=\"[::1]:9000\",permitlisten=\"127.0.0.*:*\","
                               "cert-authority,principals=\"alice,bob smith\"");
        ck_assert_uint_eq(k->n_errors, 0);
        ck_assert_uint_eq(k->n_entries, 1);
        o = &k->entries[0].options;
        ck_assert_str_eq(o->from, "a\"b,c\\x");
        ck_assert_uint_eq(o->forward.n_open, 2);
        ck_assert_str_eq(o->forward.open[0].host, "2001:db8::1");
        ck_assert_int_eq(o->forward.open[0].port, 443);
        ck_assert_str_eq(o->forward.open[1].host, "Example.COM");
        ck_assert_int_eq(o->forward.open[1].port, AUTHORIZED_PERMIT_PORT_ANY);
        ck_assert_uint_eq(o->forward.n_listen, 3);
        ck_assert_str_eq(o->forward.listen[0].host, "*");
        ck_assert_int_eq(o->forward.listen[0].port, 8080);
        ck_assert_str_eq(o->forward.listen[1].host, "::1");
        ck_assert_int_eq(o->forward.listen[1].port, 9000);
        ck_assert_str_eq(o->forward.listen[2].host, "127.0.0.*");
        ck_assert_int_eq(o->forward.listen[2].port, AUTHORIZED_PERMIT_PORT_ANY);
        ck_assert_uint_eq(o->n_principals, 2);
        ck_assert_str_eq(o->principals[0], "alice");
        ck_assert_str_eq(o->principals[1], "bob smith");
        ck_assert_ptr_null(o->principals[2]);
        k = authorized_keys_free(k);

        /* Without Z, expiry-time is local time (as in OpenSSH). */
        k = parse_options_line("expiry-time=\"20300101\"");
        ck_assert_uint_eq(k->n_entries, 1);
        ck_assert_uint_eq(k->entries[0].options.expiry_time, (uint64_t) mktime(&tm));
}
END_TEST

static const struct {
        const char *options;
        int error;
        const char *message;
} bad_options[] = {
        { "command=\"/bin/true\"", -EOPNOTSUPP, "option \"command\" is not supported" },
        { "environment=\"A=B\"", -EOPNOTSUPP, "option \"environment\" is not supported" },
        { "tunnel=\"1\"", -EOPNOTSUPP, "option \"tunnel\" is not supported" },
        { "verify-required", -EOPNOTSUPP, "option \"verify-required\" is not supported" },
        { "restrict,frobnicate", -EOPNOTSUPP, "option \"frobnicate\" is not supported" },
        { "no-pty,Command=\"x\",restrict", -EOPNOTSUPP, "option \"Command\" is not supported" },
        { "restrict=\"yes\"", -EBADMSG, "option \"restrict\" takes no value" },
        { "no-pty=\"1\"", -EBADMSG, "option \"no-pty\" takes no value" },
        { "from", -EBADMSG, "option \"from\" needs a value" },
        { "from=10.0.0.1", -EBADMSG, "option \"from\": value must be quoted" },
        { "from=\"10.0.0.1\"x", -EBADMSG, "option \"from\": garbage after the value" },
        { "from=\"10.0.0.1\",from=\"10.0.0.2\"", -EBADMSG, "more than one from= option" },
        { "from=\"\"", -EBADMSG, "invalid from= pattern list" },
        { "from=\"10.0.0.1,\"", -EBADMSG, "invalid from= pattern list" },
        { "from=\"!\"", -EBADMSG, "invalid from= pattern list" },
        { "from=\"10.0.0.1/8\"", -EBADMSG, "invalid from= pattern list" },   /* host bits set */
        { "from=\"10.0.0.0/33\"", -EBADMSG, "invalid from= pattern list" },
        { "from=\"example.com/24\"", -EBADMSG, "invalid from= pattern list" },
        { "from=\"a b\"", -EBADMSG, "invalid from= pattern list" },
        { "restrict,,no-pty", -EBADMSG, "empty option" },
        { ",restrict", -EBADMSG, "empty option" },
        { "restrict,", -EBADMSG, "empty option after ','" },
        { "permitopen=\"host\"", -EBADMSG, "invalid permitopen=\"host\"" },
        { "permitopen=\"host:0\"", -EBADMSG, "invalid permitopen=\"host:0\"" },
        { "permitopen=\"host:65536\"", -EBADMSG, "invalid permitopen" },
        { "permitopen=\"host:-1\"", -EBADMSG, "invalid permitopen" },
        { "permitopen=\":22\"", -EBADMSG, "invalid permitopen" },
        { "permitopen=\"::1:22\"", -EBADMSG, "invalid permitopen" },
        { "permitopen=\"[::1]22\"", -EBADMSG, "invalid permitopen" },
        { "permitopen=\"[host]:22\"", -EBADMSG, "invalid permitopen" },
        { "permitopen=\"a b:22\"", -EBADMSG, "invalid permitopen=\"a?b:22\"" },
        { "permitopen=\"host:22x\"", -EBADMSG, "invalid permitopen" },
        { "permitlisten=\"0\"", -EBADMSG, "invalid permitlisten=\"0\"" },
        { "permitlisten=\"x\"", -EBADMSG, "invalid permitlisten" },
        { "permitlisten=\"\"", -EBADMSG, "invalid permitlisten" },
        { "principals=\"\"", -EBADMSG, "invalid principals= list" },
        { "principals=\"a,,b\"", -EBADMSG, "invalid principals= list" },
        { "principals=\"a\",principals=\"b\"", -EBADMSG, "more than one principals= option" },
        { "expiry-time=\"2030\"", -EBADMSG, "invalid expiry-time=\"2030\"" },
        { "expiry-time=\"20301301\"", -EBADMSG, "invalid expiry-time" },
        { "expiry-time=\"20230229\"", -EBADMSG, "invalid expiry-time" },
        { "expiry-time=\"203001012400\"", -EBADMSG, "invalid expiry-time" },
        { "expiry-time=\"2030010100001x\"", -EBADMSG, "invalid expiry-time" },
        { "expiry-time=\"19691231\"", -EBADMSG, "invalid expiry-time" },
        { "from=\"10.0.0.1", -EBADMSG, "missing end quote in options" },
        { "from=\"10.0.0.1\\\"", -EBADMSG, "missing end quote in options" },
};

START_TEST(test_bad_options) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = parse_options_line(bad_options[_i].options);

        assert_one_error(k, 1, bad_options[_i].error, bad_options[_i].message);
        ck_assert(strstr(k->errors[0].message, "key refused"));
}
END_TEST

/* A refused option refuses only its own line, and the report names that line. */
START_TEST(test_refused_line_is_exact) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = NULL;
        _cleanup_(freep) char *a = key_text(SSH_KEY_ED25519, 1), *b = key_text(SSH_KEY_ECDSA_P256, 2),
                              *c = key_text(SSH_KEY_RSA, 3), *text = NULL;

        ck_assert_int_ge(asprintf(&text,
                                  "# admin keys\n"
                                  "\n"
                                  "%s first\n"
                                  "command=\"/bin/sh\" %s second\n"
                                  "   \t\n"
                                  "restrict %s third\n",
                                  a, b, c), 0);
        k = parse_text(text, 0);
        ck_assert_uint_eq(k->n_entries, 2);
        ck_assert_uint_eq(k->entries[0].line, 3);
        ck_assert_str_eq(k->entries[0].comment, "first");
        ck_assert_uint_eq(k->entries[1].line, 6);
        ck_assert_int_eq(k->entries[1].type, SSH_KEY_RSA);
        ck_assert(k->entries[1].options.restricted);
        ck_assert_uint_eq(k->n_errors, 1);
        ck_assert_uint_eq(k->errors[0].line, 4);
        ck_assert_int_eq(k->errors[0].error, -EOPNOTSUPP);
        ck_assert_str_eq(k->errors[0].message, "option \"command\" is not supported; key refused");
}
END_TEST

static const struct {
        const char *line;
        int error;
        const char *message;
} bad_lines[] = {
        { "ssh-ed25519", -EBADMSG, "no key data after \"ssh-ed25519\"" },
        { "ssh-ed25519   ", -EBADMSG, "no key data after" },
        { "ssh-ed25519 AAAA", -EBADMSG, "malformed or unsupported ssh-ed25519 key data" },
        { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5A", -EBADMSG, "invalid base64" },     /* not a multiple of 4 */
        { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA!AAA", -EBADMSG, "invalid base64" },
        { "ssh-ed25519 AAAAC3Nz=C1lZDI1NTE5", -EBADMSG, "invalid base64" },      /* padding inside */
        { "ssh-ed25519 AAB=", -EBADMSG, "invalid base64" },                      /* non-zero slop bits */
        { "ssh-ed25519 AA==AA==", -EBADMSG, "invalid base64" },
        { "ssh-ed25519 ====", -EBADMSG, "invalid base64" },
        { "ssh-dss AAAAB3NzaC1kc3M=", -EOPNOTSUPP, "unsupported key type \"ssh-dss\"" },
        { "ssh-ed25519-cert-v01@openssh.com AAAA", -EOPNOTSUPP, "unsupported key type \"ssh-ed25519-cert-v01@openssh.com\"" },
        { "sk-ssh-ed25519@openssh.com AAAA", -EOPNOTSUPP, "unsupported key type" },
        { "restrict ssh-dss AAAA", -EOPNOTSUPP, "unsupported key type \"ssh-dss\"" },
        { "restrict ssh-foo AAAA", -EBADMSG, "unknown key type \"ssh-foo\"" },
        { "ssh-foo AAAA", -EOPNOTSUPP, "option \"ssh-foo\" is not supported" }, /* as OpenSSH: taken for options */
        { "restrict", -EBADMSG, "no key after the options" },
        { "restrict   ", -EBADMSG, "no key after the options" },
};

START_TEST(test_bad_lines) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = NULL;
        _cleanup_(freep) char *text = NULL;

        ck_assert_int_ge(asprintf(&text, "\n%s\n", bad_lines[_i].line), 0);
        k = parse_text(text, 0);
        assert_one_error(k, 2, bad_lines[_i].error, bad_lines[_i].message);
}
END_TEST

/* The base64 text decodes, but the key inside is of another type than the line says. */
START_TEST(test_type_mismatch) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = NULL;
        _cleanup_(freep) char *key = key_text(SSH_KEY_ED25519, 1), *text = NULL;

        ck_assert_int_ge(asprintf(&text, "ssh-rsa %s\n", strchr(key, ' ') + 1), 0);
        k = parse_text(text, 0);
        assert_one_error(k, 1, -EBADMSG, "key data is not of type ssh-rsa; key refused");
}
END_TEST

START_TEST(test_line_endings) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = NULL;
        _cleanup_(freep) char *a = key_text(SSH_KEY_ED25519, 1), *text = NULL;

        /* CRLF, leading blanks, a tab before the comment, no final newline. */
        ck_assert_int_ge(asprintf(&text, "%s\r\n  \t%s\tc2\r\n#x\r\n%s", a, a, a), 0);
        k = parse_text(text, 0);
        ck_assert_uint_eq(k->n_errors, 0);
        ck_assert_uint_eq(k->n_entries, 3);
        ck_assert_ptr_null(k->entries[0].comment);
        ck_assert_str_eq(k->entries[1].comment, "c2");
        ck_assert_uint_eq(k->entries[2].line, 4);
        k = authorized_keys_free(k);

        k = parse_text("", 0);
        ck_assert_uint_eq(k->n_entries + k->n_errors, 0);
        k = authorized_keys_free(k);

        /* A NUL inside a line refuses that line only. */
        {
                char buf[512];
                size_t n = (size_t) snprintf(buf, sizeof buf, "%s x\n%s y\n", a, a);

                buf[3] = 0;
                ck_assert_int_eq(authorized_keys_parse(buf, n, 0, &k), 0);
                ck_assert_uint_eq(k->n_entries, 1);
                ck_assert_uint_eq(k->n_errors, 1);
                ck_assert_uint_eq(k->errors[0].line, 1);
                ck_assert_str_eq(k->errors[0].message, "NUL byte in line; skipped");
        }
}
END_TEST

START_TEST(test_no_options_flag) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = NULL;
        _cleanup_(freep) char *a = key_text(SSH_KEY_ED25519, 1), *text = NULL;

        ck_assert_int_ge(asprintf(&text, "%s ca one\ncert-authority %s\n# c\n%s\n", a, a, a), 0);
        k = parse_text(text, AUTHORIZED_KEYS_NO_OPTIONS);
        ck_assert_uint_eq(k->n_entries, 2);
        ck_assert_uint_eq(k->entries[0].line, 1);
        ck_assert_uint_eq(k->entries[1].line, 4);
        ck_assert_uint_eq(k->n_errors, 1);
        ck_assert_uint_eq(k->errors[0].line, 2);
        ck_assert_str_eq(k->errors[0].message,
                         "\"cert-authority\" is not a key type (options are not allowed here); key refused");
}
END_TEST

static const struct {
        const char *from;
        const char *peer;
        bool match;
} from_cases[] = {
        { "10.0.0.0/8", "10.200.3.4", true },
        { "10.0.0.0/8", "11.0.0.1", false },
        { "10.0.0.0/8,!10.1.0.0/16", "10.1.2.3", false },
        { "!10.1.0.0/16,10.0.0.0/8", "10.1.2.3", false },
        { "!10.1.0.0/16,10.0.0.0/8", "10.2.2.3", true },
        { "!10.1.0.0/16", "10.2.2.3", false },                 /* only negative entries never allow */
        { "192.0.2.7", "192.0.2.7", true },
        { "192.0.2.7", "192.0.2.8", false },
        { "192.0.2.*", "192.0.2.200", true },
        { "192.0.2.?", "192.0.2.20", false },
        { "192.0.2.?", "192.0.2.2", true },
        { "*", "203.0.113.9", true },
        { "*,!203.0.113.9", "203.0.113.9", false },
        { "*.example.com", "203.0.113.9", false },             /* a name never matches an address */
        { "!*.example.com,203.0.113.0/24", "203.0.113.9", true },
        { "localhost", "127.0.0.1", false },
        { "0.0.0.0/0", "198.51.100.1", true },
        { "0.0.0.0/0", "2001:db8::1", false },
        { "2001:db8::/32", "2001:db8:1::5", true },
        { "2001:DB8::/32", "2001:db8:1::5", true },
        { "2001:db8::/32", "2001:db9::5", false },
        { "2001:db8::/33", "2001:db8:8000::1", false },
        { "2001:db8::/33", "2001:db8:7fff::1", true },
        { "::1", "::1", true },
        { "2001:db8:*", "2001:db8::1", true },                 /* a pattern on the address text */
        { "::/0", "::1", true },
        { "10.0.0.0/8", "::ffff:10.9.9.9", true },             /* IPv4-mapped peers count as IPv4 */
        { "::ffff:10.9.9.9", "::ffff:10.9.9.9", false },       /* ...and so no longer as IPv6 */
        { "172.16.0.0/12", "172.31.255.255", true },
        { "172.16.0.0/12", "172.32.0.0", false },
        { "1.2.3.4/32,5.6.7.0/25", "5.6.7.127", true },
        { "1.2.3.4/32,5.6.7.0/25", "5.6.7.128", false },
};

static void make_peer(const char *text, struct sockaddr_storage *ss) {
        memset(ss, 0, sizeof *ss);
        if (strchr(text, ':')) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ss;

                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(50000);
                ck_assert_int_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
        } else {
                struct sockaddr_in *in = (struct sockaddr_in *) ss;

                in->sin_family = AF_INET;
                in->sin_port = htons(50000);
                ck_assert_int_eq(inet_pton(AF_INET, text, &in->sin_addr), 1);
        }
}

START_TEST(test_from) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = NULL;
        _cleanup_(freep) char *options = NULL;
        struct sockaddr_storage ss;

        ck_assert_int_ge(asprintf(&options, "from=\"%s\"", from_cases[_i].from), 0);
        k = parse_options_line(options);
        ck_assert_msg(k->n_entries == 1, "%s refused", options);
        make_peer(from_cases[_i].peer, &ss);
        ck_assert_msg(authorized_keys_match_from(&k->entries[0], (struct sockaddr *) &ss) == from_cases[_i].match,
                      "from=\"%s\" peer %s", from_cases[_i].from, from_cases[_i].peer);
}
END_TEST

START_TEST(test_from_edges) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = parse_options_line("");
        struct sockaddr_storage ss;
        struct sockaddr unix_sa = { .sa_family = AF_UNIX };

        make_peer("192.0.2.1", &ss);
        ck_assert(authorized_keys_match_from(&k->entries[0], (struct sockaddr *) &ss)); /* no from= */
        k = authorized_keys_free(k);
        k = parse_options_line("from=\"*\"");
        ck_assert(!authorized_keys_match_from(&k->entries[0], &unix_sa));
        ck_assert(!authorized_keys_match_from(&k->entries[0], NULL));
        ck_assert(!authorized_keys_match_from(NULL, (struct sockaddr *) &ss));
}
END_TEST

static ForwardPermissions permissions_from(const char *options, AuthorizedKeys **keep) {
        *keep = parse_options_line(options);
        ck_assert_msg((*keep)->n_entries == 1, "%s refused: %s", options,
                      (*keep)->n_errors ? (*keep)->errors[0].message : "");
        return (*keep)->entries[0].options.forward;
}

static const struct {
        const char *options;
        const char *host;
        uint16_t port;
        bool open, listen;
} permit_cases[] = {
        { "", "anything", 1, true, true },
        { "", "", 0, true, true },
        { "restrict", "anything", 1, false, false },
        { "no-port-forwarding,permitopen=\"a:1\",permitlisten=\"1\"", "a", 1, false, false },
        { "restrict,port-forwarding", "anything", 1, true, true },
        { "permitopen=\"db.internal:5432\"", "db.internal", 5432, true, true },
        { "permitopen=\"db.internal:5432\"", "DB.Internal", 5432, true, true },
        { "permitopen=\"db.internal:5432\"", "db.internal", 5433, false, true },
        { "permitopen=\"db.internal:5432\"", "db.internal.", 5432, false, true },
        { "permitopen=\"db.*:5432\"", "db.internal", 5432, false, true }, /* no patterns in permitopen */
        { "permitopen=\"*:5432\"", "anything", 5432, true, true },
        { "permitopen=\"*:5432\"", "anything", 80, false, true },
        { "permitopen=\"db:*\"", "db", 1, true, true },
        { "permitopen=\"db:*\"", "db2", 1, false, true },
        { "permitopen=\"*:*\"", "x", 9, true, true },
        { "permitopen=\"[2001:db8::1]:443\"", "2001:db8::1", 443, true, true },
        { "permitopen=\"a:1\",permitopen=\"b:2\"", "b", 2, true, true },
        { "permitopen=\"a:1\",permitopen=\"b:2\"", "a", 2, false, true },
        { "permitlisten=\"8080\"", "localhost", 8080, true, true },
        { "permitlisten=\"8080\"", "", 8080, true, true },
        { "permitlisten=\"8080\"", "0.0.0.0", 8080, true, true },
        { "permitlisten=\"8080\"", "localhost", 8081, true, false },
        { "permitlisten=\"8080\"", "localhost", 0, true, false },   /* server-chosen port needs '*' */
        { "permitlisten=\"localhost:*\"", "localhost", 0, true, true },
        { "permitlisten=\"localhost:8080\"", "LOCALHOST", 8080, true, true },
        { "permitlisten=\"localhost:8080\"", "127.0.0.1", 8080, true, false },
        { "permitlisten=\"localhost:8080\"", "", 8080, true, false },
        { "permitlisten=\"localhost:8080\"", "*", 8080, true, false },
        { "permitlisten=\"127.0.0.*:8080\"", "127.0.0.1", 8080, true, true },
        { "permitlisten=\"127.0.0.*:8080\"", "127.0.1.1", 8080, true, false },
        { "permitlisten=\"[::1]:8080\"", "::1", 8080, true, true },
        { "permitlisten=\"*:8080\"", "*", 8080, true, true },
        { "permitlisten=\"*:*\"", "10.0.0.1", 1, true, true },
};

START_TEST(test_permits) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = NULL;
        ForwardPermissions p = permissions_from(permit_cases[_i].options, &k), copy;

        ck_assert_msg(permitopen_allows(&p, permit_cases[_i].host, permit_cases[_i].port) == permit_cases[_i].open,
                      "permitopen: %s / %s:%u", permit_cases[_i].options, permit_cases[_i].host, permit_cases[_i].port);
        ck_assert_msg(permitlisten_allows(&p, permit_cases[_i].host, permit_cases[_i].port) == permit_cases[_i].listen,
                      "permitlisten: %s / %s:%u", permit_cases[_i].options, permit_cases[_i].host, permit_cases[_i].port);

        /* A deep copy answers the same and outlives the file. */
        ck_assert_int_eq(forward_permissions_copy(&p, &copy), 0);
        k = authorized_keys_free(k);
        ck_assert_int_eq(permitopen_allows(&copy, permit_cases[_i].host, permit_cases[_i].port), permit_cases[_i].open);
        ck_assert_int_eq(permitlisten_allows(&copy, permit_cases[_i].host, permit_cases[_i].port), permit_cases[_i].listen);
        forward_permissions_done(&copy);
        ck_assert_ptr_null(copy.open);
        ck_assert(!copy.allowed);
}
END_TEST

START_TEST(test_permit_null) {
        ForwardPermissions p = { .allowed = true };

        ck_assert(!permitopen_allows(NULL, "a", 1));
        ck_assert(!permitopen_allows(&p, NULL, 1));
        ck_assert(!permitlisten_allows(NULL, "a", 1));
        ck_assert(permitlisten_allows(&p, NULL, 1));
        forward_permissions_done(NULL);
}
END_TEST

static const struct {
        const char *s, *pattern;
        bool fold, match;
} patterns[] = {
        { "", "", false, true },
        { "", "*", false, true },
        { "a", "", false, false },
        { "abc", "abc", false, true },
        { "abc", "ABC", false, false },
        { "abc", "ABC", true, true },
        { "abc", "a?c", false, true },
        { "ac", "a?c", false, false },
        { "abc", "a*", false, true },
        { "abc", "*c", false, true },
        { "abc", "*b*", false, true },
        { "abc", "*d*", false, false },
        { "host.example.com", "*.example.com", false, true },
        { "example.com", "*.example.com", false, false },
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", false, false },
        { "abcabd", "*abd", false, true },
        { "mississippi", "m*iss*ppi", false, true },
        { "mississippi", "m*iss*x", false, false },
        { "a*b", "a\\*b", false, false }, /* no escapes, as in OpenSSH */
        { "??", "??", false, true },
        { "?", "??", false, false },
};

START_TEST(test_patterns) {
        ck_assert_msg(ssh_pattern_match(patterns[_i].s, patterns[_i].pattern, patterns[_i].fold) == patterns[_i].match,
                      "\"%s\" ~ \"%s\"", patterns[_i].s, patterns[_i].pattern);
}
END_TEST

static const struct {
        const char *s, *list;
        int result;
} pattern_lists[] = {
        { "alice", "alice,bob", 1 },
        { "bob", "alice,bob", 1 },
        { "carol", "alice,bob", 0 },
        { "carol", "*,!carol", -1 },
        { "carol", "!carol,*", -1 },
        { "dave", "*,!carol", 1 },
        { "dave", "!carol", 0 },
        { "Dave", "dave", 1 },          /* fold_case in this table */
        { "x", "", 0 },
        { "", "", 1 },                  /* "" matches the empty pattern */
        { "x", ",x", 1 },
};

START_TEST(test_pattern_lists) {
        ck_assert_int_eq(ssh_pattern_match_list(pattern_lists[_i].s, pattern_lists[_i].list, true),
                         pattern_lists[_i].result);
}
END_TEST

static const struct {
        const char *s;
        int r, family;
        unsigned prefix;
} cidrs[] = {
        { "10.0.0.0/8", 0, AF_INET, 8 },
        { "10.0.0.1", 0, AF_INET, 32 },
        { "10.0.0.1/32", 0, AF_INET, 32 },
        { "0.0.0.0/0", 0, AF_INET, 0 },
        { "10.0.0.1/8", -EINVAL, 0, 0 },
        { "10.0.0.0/33", -EINVAL, 0, 0 },
        { "10.0.0.0/", -EINVAL, 0, 0 },
        { "10.0.0.0/+8", -EINVAL, 0, 0 },
        { "10.0.0.0/8x", -EINVAL, 0, 0 },
        { "10.0.0.0/0008", -EINVAL, 0, 0 },
        { "10.0.0/8", -EINVAL, 0, 0 },
        { "/8", -EINVAL, 0, 0 },
        { "", -EINVAL, 0, 0 },
        { "host", -EINVAL, 0, 0 },
        { "2001:db8::/32", 0, AF_INET6, 32 },
        { "::/0", 0, AF_INET6, 0 },
        { "::1", 0, AF_INET6, 128 },
        { "2001:db8::1/64", -EINVAL, 0, 0 },
        { "2001:db8::/129", -EINVAL, 0, 0 },
        { "[::1]", -EINVAL, 0, 0 },
};

START_TEST(test_cidr_parse) {
        SshCidr c = { .family = 99 };

        ck_assert_int_eq(ssh_cidr_parse(cidrs[_i].s, &c), cidrs[_i].r);
        if (cidrs[_i].r == 0) {
                ck_assert_int_eq(c.family, cidrs[_i].family);
                ck_assert_uint_eq(c.prefix, cidrs[_i].prefix);
        } else
                ck_assert_int_eq(c.family, 99);
}
END_TEST

static const struct {
        const char *list, *peer;
        int r;
} cidr_lists[] = {
        { "127.0.0.0/8,::1", "127.0.0.1", 1 },
        { "127.0.0.0/8,::1", "::1", 1 },
        { "127.0.0.0/8,::1", "::ffff:127.0.0.2", 1 },
        { "127.0.0.0/8,::1", "192.0.2.1", 0 },
        { "192.0.2.1", "192.0.2.1", 1 },
        { "192.0.2.1,", "192.0.2.1", -EINVAL },        /* malformed anywhere refuses */
        { "192.0.2.1,junk", "192.0.2.1", -EINVAL },
        { "192.0.2.*", "192.0.2.1", -EINVAL },         /* no patterns in source-address */
        { "!192.0.2.1", "192.0.2.1", -EINVAL },
        { "", "192.0.2.1", -EINVAL },
        { "10.0.0.0/8", "2001:db8::1", 0 },
};

START_TEST(test_cidr_lists) {
        struct sockaddr_storage ss;

        make_peer(cidr_lists[_i].peer, &ss);
        ck_assert_int_eq(ssh_cidr_list_match(cidr_lists[_i].list, (struct sockaddr *) &ss), cidr_lists[_i].r);
}
END_TEST

START_TEST(test_limits) {
        _cleanup_(authorized_keys_freep) AuthorizedKeys *k = NULL;
        _cleanup_(freep) char *key = key_text(SSH_KEY_ED25519, 9), *text = NULL, *options = NULL;
        size_t klen = strlen(key), n = 0, cap;

        /* A line one byte over the limit is skipped; one at the limit is fine. */
        cap = AUTHORIZED_KEYS_LINE_MAX + 64;
        text = malloc(2 * cap);
        ck_assert_ptr_nonnull(text);
        memcpy(text, key, klen);
        text[klen] = ' ';
        memset(text + klen + 1, 'c', AUTHORIZED_KEYS_LINE_MAX - klen - 1);
        n = AUTHORIZED_KEYS_LINE_MAX;
        text[n++] = '\n';
        memcpy(text + n, text, AUTHORIZED_KEYS_LINE_MAX);
        text[n + AUTHORIZED_KEYS_LINE_MAX] = 'c';
        n += AUTHORIZED_KEYS_LINE_MAX + 1;
        text[n++] = '\n';
        ck_assert_int_eq(authorized_keys_parse(text, n, 0, &k), 0);
        ck_assert_uint_eq(k->n_entries, 1);
        ck_assert_uint_eq(k->n_errors, 1);
        ck_assert_uint_eq(k->errors[0].line, 2);
        ck_assert_int_eq(k->errors[0].error, -EMSGSIZE);
        k = authorized_keys_free(k);
        text = mfree(text);

        /* Entries: the one past the limit is reported with its line, the rest ignored. */
        cap = (AUTHORIZED_KEYS_ENTRIES_MAX + 3) * (klen + 1);
        text = malloc(cap);
        ck_assert_ptr_nonnull(text);
        n = 0;
        for (unsigned i = 0; i < AUTHORIZED_KEYS_ENTRIES_MAX + 3; i++) {
                memcpy(text + n, key, klen);
                n += klen;
                text[n++] = '\n';
        }
        ck_assert_int_eq(authorized_keys_parse(text, n, 0, &k), 0);
        ck_assert_uint_eq(k->n_entries, AUTHORIZED_KEYS_ENTRIES_MAX);
        ck_assert_uint_eq(k->n_errors, 1);
        ck_assert_uint_eq(k->errors[0].line, AUTHORIZED_KEYS_ENTRIES_MAX + 1);
        ck_assert_int_eq(k->errors[0].error, -E2BIG);
        k = authorized_keys_free(k);
        text = mfree(text);

        /* Errors: kept up to the limit, then counted. */
        cap = (AUTHORIZED_KEYS_ERRORS_MAX + 5) * 16;
        text = malloc(cap);
        ck_assert_ptr_nonnull(text);
        n = 0;
        for (unsigned i = 0; i < AUTHORIZED_KEYS_ERRORS_MAX + 5; i++)
                n += (size_t) snprintf(text + n, cap - n, "ssh-ed25519 !\n");
        ck_assert_int_eq(authorized_keys_parse(text, n, 0, &k), 0);
        ck_assert_uint_eq(k->n_errors, AUTHORIZED_KEYS_ERRORS_MAX);
        ck_assert_uint_eq(k->n_errors_dropped, 5);
        ck_assert_uint_eq(k->errors[AUTHORIZED_KEYS_ERRORS_MAX - 1].line, AUTHORIZED_KEYS_ERRORS_MAX);
        k = authorized_keys_free(k);
        text = mfree(text);

        /* Options: the limit is fine, one more refuses the key. */
        for (unsigned extra = 0; extra <= 1; extra++) {
                size_t cnt = AUTHORIZED_KEYS_OPTIONS_MAX + extra;

                options = malloc(cnt * 4 + 1);
                ck_assert_ptr_nonnull(options);
                n = 0;
                for (size_t i = 0; i < cnt; i++) {
                        memcpy(options + n, "pty,", 4);
                        n += 4;
                }
                options[n - 1] = 0;
                k = parse_options_line(options);
                if (extra)
                        assert_one_error(k, 1, -E2BIG, "more than 1024 options");
                else
                        ck_assert_uint_eq(k->n_entries, 1);
                k = authorized_keys_free(k);
                options = mfree(options);
        }

        /* Principals. */
        for (unsigned extra = 0; extra <= 1; extra++) {
                size_t cnt = AUTHORIZED_KEYS_PRINCIPALS_MAX + extra;

                options = malloc(cnt * 2 + 32);
                ck_assert_ptr_nonnull(options);
                memcpy(options, "principals=\"", 12);
                n = 12;
                for (size_t i = 0; i < cnt; i++) {
                        memcpy(options + n, "p,", 2);
                        n += 2;
                }
                memcpy(options + n - 1, "\"", 2);
                k = parse_options_line(options);
                if (extra)
                        assert_one_error(k, 1, -E2BIG, "invalid principals= list");
                else
                        ck_assert_uint_eq(k->entries[0].options.n_principals, AUTHORIZED_KEYS_PRINCIPALS_MAX);
                k = authorized_keys_free(k);
                options = mfree(options);
        }
}
END_TEST

START_TEST(test_bad_arguments) {
        AuthorizedKeys *k = (AuthorizedKeys *) 0x1;

        ck_assert_int_eq(authorized_keys_parse(NULL, 1, 0, &k), -EINVAL);
        ck_assert_int_eq(authorized_keys_parse("", 0, 0, NULL), -EINVAL);
        ck_assert_ptr_eq(k, (AuthorizedKeys *) 0x1);
        ck_assert_int_eq(authorized_keys_parse(NULL, 0, 0, &k), 0);
        ck_assert_uint_eq(k->n_entries, 0);
        authorized_keys_free(k);
        ck_assert_ptr_null(authorized_keys_free(NULL));
}
END_TEST

static Suite *authorized_keys_suite(void) {
        Suite *s = suite_create("authorized-keys");
        TCase *tc;

        tc = tcase_create("keys");
        tcase_add_test(tc, test_key_types);
        tcase_add_test(tc, test_key_blob_values);
        tcase_add_loop_test(tc, test_bad_lines, 0, ELEMENTSOF(bad_lines));
        tcase_add_test(tc, test_type_mismatch);
        tcase_add_test(tc, test_line_endings);
        tcase_add_test(tc, test_no_options_flag);
        tcase_add_test(tc, test_bad_arguments);
        suite_add_tcase(s, tc);

        tc = tcase_create("options");
        tcase_add_loop_test(tc, test_good_options, 0, ELEMENTSOF(good_options));
        tcase_add_test(tc, test_option_values);
        tcase_add_loop_test(tc, test_bad_options, 0, ELEMENTSOF(bad_options));
        tcase_add_test(tc, test_refused_line_is_exact);
        suite_add_tcase(s, tc);

        tc = tcase_create("matching");
        tcase_add_loop_test(tc, test_from, 0, ELEMENTSOF(from_cases));
        tcase_add_test(tc, test_from_edges);
        tcase_add_loop_test(tc, test_permits, 0, ELEMENTSOF(permit_cases));
        tcase_add_test(tc, test_permit_null);
        tcase_add_loop_test(tc, test_patterns, 0, ELEMENTSOF(patterns));
        tcase_add_loop_test(tc, test_pattern_lists, 0, ELEMENTSOF(pattern_lists));
        tcase_add_loop_test(tc, test_cidr_parse, 0, ELEMENTSOF(cidrs));
        tcase_add_loop_test(tc, test_cidr_lists, 0, ELEMENTSOF(cidr_lists));
        suite_add_tcase(s, tc);

        tc = tcase_create("limits");
        tcase_add_test(tc, test_limits);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        SRunner *sr = srunner_create(authorized_keys_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
