/* Unit tests for the SOCKS5 codec (src/shared/socks5.c): every message kind at every
 * truncation point, every address type, malformed input with the byte that shows it,
 * exact reply bytes, RFC 1929 credentials and the client side. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "macro.h"
#include "socks5.h"

typedef enum Kind {
        KIND_GREETING,
        KIND_USERPASS,
        KIND_REQUEST,
        KIND_METHOD_SELECTION,
        KIND_CONNECT_REPLY,
        _KIND_MAX,
} Kind;

typedef union Out {
        Socks5Greeting greeting;
        Socks5UserPass userpass;
        Socks5Request request;
        uint8_t code;
} Out;

/* Parses from an exactly sized heap copy, so that ASan sees any read past the end, and
 * checks that the output is untouched unless a whole element was parsed. */
static int parse_kind(Kind kind, const void *bytes, size_t n, Out *out) {
        uint8_t *copy = malloc(n ? n : 1);
        Out before;
        int r;

        ck_assert_ptr_nonnull(copy);
        memcpy(copy, bytes, n);
        memset(out, 0xa5, sizeof *out);
        before = *out;

        switch (kind) {
        case KIND_GREETING:
                r = socks5_parse_greeting(copy, n, &out->greeting);
                break;
        case KIND_USERPASS:
                r = socks5_parse_userpass(copy, n, &out->userpass);
                break;
        case KIND_REQUEST:
                r = socks5_parse_request(copy, n, &out->request);
                break;
        case KIND_METHOD_SELECTION:
                r = socks5_parse_method_selection(copy, n, &out->code);
                break;
        case KIND_CONNECT_REPLY:
                r = socks5_parse_connect_reply(copy, n, &out->code);
                break;
        default:
                abort();
        }
        free(copy);

        if (r <= 0)
                ck_assert_mem_eq(out, &before, sizeof *out);
        return r;
}

/* Every proper prefix needs more; the whole message, alone or followed by the next
 * message's bytes, takes exactly its length. */
static void check_complete(Kind kind, const void *bytes, size_t len) {
        uint8_t with_tail[SOCKS5_MESSAGE_MAX + 8];
        Out out;

        ck_assert_uint_le(len, SOCKS5_MESSAGE_MAX);
        for (size_t n = 0; n < len; n++)
                ck_assert_msg(parse_kind(kind, bytes, n, &out) == 0, "kind %d, prefix %zu of %zu", kind, n, len);
        ck_assert_int_eq(parse_kind(kind, bytes, len, &out), (int) len);

        memcpy(with_tail, bytes, len);
        memset(with_tail + len, 0xff, 8); /* bad as the start of anything */
        with_tail[len] = 0x00;
        for (size_t extra = 1; extra <= 8; extra++)
                ck_assert_int_eq(parse_kind(kind, with_tail, len + extra, &out), (int) len);
}

#define M(s) s, sizeof(s) - 1

static const struct {
        Kind kind;
        const char *bytes;
        size_t len;
} complete[] = {
        { KIND_GREETING, M("\x05\x01\x00") },
        { KIND_GREETING, M("\x05\x01\x02") },
        { KIND_GREETING, M("\x05\x02\x00\x02") },
        { KIND_GREETING, M("\x05\x03\x00\x01\x02") },
        { KIND_USERPASS, M("\x01\x04user\x04pass") },
        { KIND_USERPASS, M("\x01\x01u\x01p") },
        { KIND_USERPASS, M("\x01\x03" "a\0b" "\x02" "\0\0") },
        { KIND_REQUEST, M("\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50") },
        { KIND_REQUEST, M("\x05\x01\x00\x04\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x01\xbb") },
        { KIND_REQUEST, M("\x05\x01\x00\x03\x0b" "example.com" "\x00\x16") },
        { KIND_REQUEST, M("\x05\x01\x00\x03\x01" "a" "\xff\xff") },
        { KIND_REQUEST, M("\x05\x02\x00\x01\x0a\x00\x00\x01\x00\x00") },
        { KIND_REQUEST, M("\x05\x03\x00\x03\x01" "x" "\x00\x35") },
        { KIND_METHOD_SELECTION, M("\x05\x00") },
        { KIND_METHOD_SELECTION, M("\x05\xff") },
        { KIND_CONNECT_REPLY, M("\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00") },
        { KIND_CONNECT_REPLY, M("\x05\x05\x00\x01\xc0\x00\x02\x01\x04\x38") },
        { KIND_CONNECT_REPLY, M("\x05\x00\x00\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x1f\x90") },
        { KIND_CONNECT_REPLY, M("\x05\x00\x00\x03\x05" "proxy" "\x00\x50") },
        { KIND_CONNECT_REPLY, M("\x05\x00\x00\x03\x00\x00\x50") }, /* empty BND.ADDR is skipped */
        { KIND_CONNECT_REPLY, M("\x05\x01\x00\x03\x03" "a\0b" "\x00\x00") },
};

START_TEST(test_complete) {
        check_complete(complete[_i].kind, complete[_i].bytes, complete[_i].len);
}
END_TEST

/* The largest message of each kind, built here: 255 methods, 255-byte credentials and
 * a 255-byte domain in a request and in a reply. */
static size_t build_largest(Kind kind, uint8_t *buf) {
        size_t n = 0;

        switch (kind) {
        case KIND_GREETING:
                buf[n++] = 5;
                buf[n++] = 255;
                for (unsigned i = 0; i < 255; i++)
                        buf[n++] = (uint8_t) i;
                ck_assert_uint_eq(n, SOCKS5_GREETING_MAX);
                break;
        case KIND_USERPASS:
                buf[n++] = 1;
                buf[n++] = 255;
                memset(buf + n, 'u', 255);
                n += 255;
                buf[n++] = 255;
                memset(buf + n, 'p', 255);
                n += 255;
                ck_assert_uint_eq(n, SOCKS5_USERPASS_MAX);
                break;
        case KIND_REQUEST:
        case KIND_CONNECT_REPLY:
                buf[n++] = 5;
                buf[n++] = kind == KIND_REQUEST ? SOCKS5_CMD_CONNECT : SOCKS5_REPLY_SUCCEEDED;
                buf[n++] = 0;
                buf[n++] = SOCKS5_ATYP_DOMAIN;
                buf[n++] = 255;
                memset(buf + n, 'd', 255);
                n += 255;
                buf[n++] = 0x12;
                buf[n++] = 0x34;
                ck_assert_uint_eq(n, kind == KIND_REQUEST ? SOCKS5_REQUEST_MAX : SOCKS5_REPLY_MAX);
                break;
        case KIND_METHOD_SELECTION:
                buf[n++] = 5;
                buf[n++] = 0;
                ck_assert_uint_eq(n, SOCKS5_METHOD_SELECTION_SIZE);
                break;
        default:
                abort();
        }
        return n;
}

START_TEST(test_largest) {
        uint8_t buf[SOCKS5_MESSAGE_MAX];
        size_t n = build_largest((Kind) _i, buf);
        Out out;

        check_complete((Kind) _i, buf, n);
        ck_assert_int_eq(parse_kind((Kind) _i, buf, n, &out), (int) n);
        switch ((Kind) _i) {
        case KIND_GREETING:
                ck_assert_uint_eq(out.greeting.n_methods, 255);
                ck_assert_uint_eq(out.greeting.methods[0], 0);
                ck_assert_uint_eq(out.greeting.methods[254], 254);
                break;
        case KIND_USERPASS:
                ck_assert_uint_eq(out.userpass.username_len, 255);
                ck_assert_uint_eq(out.userpass.password_len, 255);
                ck_assert_uint_eq(strlen(out.userpass.username), 255);
                ck_assert_uint_eq(strlen(out.userpass.password), 255);
                ck_assert_int_eq(out.userpass.password[254], 'p');
                break;
        case KIND_REQUEST:
                ck_assert_uint_eq(out.request.atyp, SOCKS5_ATYP_DOMAIN);
                ck_assert_uint_eq(strlen(out.request.address), 255);
                ck_assert_int_eq(out.request.address[254], 'd');
                ck_assert_uint_eq(out.request.port, 0x1234);
                break;
        case KIND_CONNECT_REPLY:
        case KIND_METHOD_SELECTION:
                ck_assert_uint_eq(out.code, 0);
                break;
        default:
                abort();
        }
}
END_TEST

/* Malformed messages: every prefix shorter than `at` needs more, from `at` bytes on
 * (the byte that shows the fault is there) the error, up to the whole input. */
static const struct {
        Kind kind;
        const char *bytes;
        size_t len;
        size_t at;
        int error;
} malformed[] = {
        { KIND_GREETING, M("\x04\x01\x00"), 1, -EBADMSG },                    /* SOCKS4 */
        { KIND_GREETING, M("\x00\x01\x00"), 1, -EBADMSG },
        { KIND_GREETING, M("\x06\x01\x00"), 1, -EBADMSG },
        { KIND_GREETING, M("\x05\x00\x00\x00"), 2, -EBADMSG },                /* NMETHODS 0 */
        { KIND_GREETING, M("GET / HTTP/1.1\r\n"), 1, -EBADMSG },
        { KIND_USERPASS, M("\x05\x04user\x04pass"), 1, -EBADMSG },
        { KIND_USERPASS, M("\x00\x04user\x04pass"), 1, -EBADMSG },
        { KIND_USERPASS, M("\x01\x00\x04pass"), 2, -EBADMSG },                /* ULEN 0 */
        { KIND_USERPASS, M("\x01\x04user\x00"), 7, -EBADMSG },                /* PLEN 0 */
        { KIND_USERPASS, M("\x01\x04user\x00pass"), 7, -EBADMSG },
        { KIND_REQUEST, M("\x04\x01\x00\x01\x7f\x00\x00\x01\x00\x50"), 1, -EBADMSG },
        { KIND_REQUEST, M("\x01\x01\x00\x01\x7f\x00\x00\x01\x00\x50"), 1, -EBADMSG },
        { KIND_REQUEST, M("\x05\x01\x01\x01\x7f\x00\x00\x01\x00\x50"), 3, -EBADMSG }, /* RSV */
        { KIND_REQUEST, M("\x05\x01\x80\x01\x7f\x00\x00\x01\x00\x50"), 3, -EBADMSG },
        { KIND_REQUEST, M("\x05\x01\x00\x03\x00\x00\x50"), 5, -EBADMSG },     /* empty domain */
        { KIND_REQUEST, M("\x05\x01\x00\x03\x03" "a\0b" "\x00\x50"), 7, -EBADMSG }, /* NUL */
        { KIND_REQUEST, M("\x05\x01\x00\x03\x03" "\0ab" "\x00\x50"), 6, -EBADMSG },
        { KIND_REQUEST, M("\x05\x01\x00\x03\x03" "ab\0" "\x00\x50"), 8, -EBADMSG },
        { KIND_REQUEST, M("\x05\x01\x00\x00\x7f\x00\x00\x01\x00\x50"), 4, -EAFNOSUPPORT },
        { KIND_REQUEST, M("\x05\x01\x00\x02\x7f\x00\x00\x01\x00\x50"), 4, -EAFNOSUPPORT },
        { KIND_REQUEST, M("\x05\x01\x00\x05\x7f\x00\x00\x01\x00\x50"), 4, -EAFNOSUPPORT },
        { KIND_REQUEST, M("\x05\x01\x00\xff\x7f\x00\x00\x01\x00\x50"), 4, -EAFNOSUPPORT },
        { KIND_REQUEST, M("\x05\x02\x00\x06"), 4, -EAFNOSUPPORT },            /* with BIND */
        { KIND_REQUEST, M("\x04\x01\x00\xff"), 1, -EBADMSG },                 /* VER first */
        { KIND_REQUEST, M("\x05\x01\x01\xff"), 3, -EBADMSG },                 /* RSV before ATYP */
        { KIND_METHOD_SELECTION, M("\x04\x00"), 1, -EBADMSG },
        { KIND_METHOD_SELECTION, M("HTTP/1.1 400"), 1, -EBADMSG },
        { KIND_CONNECT_REPLY, M("\x04\x5a\x00\x00\x00\x00\x00\x00"), 1, -EBADMSG }, /* SOCKS4 reply */
        { KIND_CONNECT_REPLY, M("\x05\x00\x01\x01\x00\x00\x00\x00\x00\x00"), 3, -EBADMSG },
        { KIND_CONNECT_REPLY, M("\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00"), 4, -EBADMSG },
        { KIND_CONNECT_REPLY, M("\x05\x00\x00\x02\x00\x00\x00\x00\x00\x00"), 4, -EBADMSG },
        { KIND_CONNECT_REPLY, M("\x05\x00\x00\x05\x00\x00\x00\x00\x00\x00"), 4, -EBADMSG },
        { KIND_CONNECT_REPLY, M("\x05\x00\x00\xff\x00\x00\x00\x00\x00\x00"), 4, -EBADMSG },
};

START_TEST(test_malformed) {
        Out out;

        for (size_t n = 0; n <= malformed[_i].len; n++)
                ck_assert_msg(parse_kind(malformed[_i].kind, malformed[_i].bytes, n, &out) ==
                                      (n < malformed[_i].at ? 0 : malformed[_i].error),
                              "case %d, %zu bytes", _i, n);
}
END_TEST

START_TEST(test_greeting_values) {
        Out out;

        ck_assert_int_eq(parse_kind(KIND_GREETING, M("\x05\x03\x02\x00\x80"), &out), 5);
        ck_assert_uint_eq(out.greeting.n_methods, 3);
        ck_assert_mem_eq(out.greeting.methods, "\x02\x00\x80", 3);
}
END_TEST

static const struct {
        const char *methods;
        size_t n;
        bool require_userpass;
        uint8_t expect;
} selections[] = {
        { M("\x00"), false, SOCKS5_METHOD_NO_AUTH },
        { M("\x00"), true, SOCKS5_METHOD_NO_ACCEPTABLE },
        { M("\x02"), false, SOCKS5_METHOD_NO_ACCEPTABLE },
        { M("\x02"), true, SOCKS5_METHOD_USERPASS },
        { M("\x00\x02"), false, SOCKS5_METHOD_NO_AUTH },
        { M("\x00\x02"), true, SOCKS5_METHOD_USERPASS },
        { M("\x02\x00"), false, SOCKS5_METHOD_NO_AUTH },
        { M("\x02\x00"), true, SOCKS5_METHOD_USERPASS },
        { M("\x01"), false, SOCKS5_METHOD_NO_ACCEPTABLE },
        { M("\x01"), true, SOCKS5_METHOD_NO_ACCEPTABLE },
        { M("\x01\x03\x80\xfe\xff"), false, SOCKS5_METHOD_NO_ACCEPTABLE },
        { M("\x01\x03\x80\xfe\xff"), true, SOCKS5_METHOD_NO_ACCEPTABLE },
        { M("\x01\x01\x01\x00"), false, SOCKS5_METHOD_NO_AUTH },
        { M("\xff\x02"), true, SOCKS5_METHOD_USERPASS },
};

START_TEST(test_select_method) {
        uint8_t msg[2 + 255];
        Out out;

        msg[0] = 5;
        msg[1] = (uint8_t) selections[_i].n;
        memcpy(msg + 2, selections[_i].methods, selections[_i].n);
        ck_assert_int_eq(parse_kind(KIND_GREETING, msg, 2 + selections[_i].n, &out), (int) (2 + selections[_i].n));
        ck_assert_uint_eq(socks5_select_method(&out.greeting, selections[_i].require_userpass), selections[_i].expect);
}
END_TEST

START_TEST(test_method_selection_bytes) {
        uint8_t out[SOCKS5_METHOD_SELECTION_SIZE];

        ck_assert_int_eq(socks5_build_method_selection(SOCKS5_METHOD_NO_AUTH, out), 2);
        ck_assert_mem_eq(out, "\x05\x00", 2);
        ck_assert_int_eq(socks5_build_method_selection(SOCKS5_METHOD_USERPASS, out), 2);
        ck_assert_mem_eq(out, "\x05\x02", 2);
        ck_assert_int_eq(socks5_build_method_selection(SOCKS5_METHOD_NO_ACCEPTABLE, out), 2);
        ck_assert_mem_eq(out, "\x05\xff", 2);
}
END_TEST

START_TEST(test_userpass_values) {
        static const char zeros[256] = {};
        Out out;

        ck_assert_int_eq(parse_kind(KIND_USERPASS, M("\x01\x04user\x06secret"), &out), 13);
        ck_assert_str_eq(out.userpass.username, "user");
        ck_assert_str_eq(out.userpass.password, "secret");
        ck_assert_uint_eq(out.userpass.username_len, 4);
        ck_assert_uint_eq(out.userpass.password_len, 6);
        /* Zero padding to the end of each field. */
        ck_assert_mem_eq(out.userpass.username + 4, zeros, 252);
        ck_assert_mem_eq(out.userpass.password + 6, zeros, 250);

        ck_assert(socks5_userpass_matches(&out.userpass, "user", "secret"));

        socks5_userpass_erase(&out.userpass);
        ck_assert_mem_eq(out.userpass.username, zeros, 256);
        ck_assert_mem_eq(out.userpass.password, zeros, 256);
        ck_assert_uint_eq(out.userpass.username_len, 0);
        ck_assert_uint_eq(out.userpass.password_len, 0);
        socks5_userpass_erase(NULL);
}
END_TEST

static char long_user[257], long_pass[257];

static const struct {
        const char *sent_user, *sent_pass; /* NULL: the 255-byte strings */
        const char *user, *pass;
        bool expect;
} matches[] = {
        { "user", "secret", "user", "secret", true },
        { "user", "secret", "User", "secret", false },
        { "user", "secret", "user", "Secret", false },
        { "user", "secret", "usex", "secret", false },
        { "user", "secret", "use", "secret", false },
        { "user", "secret", "users", "secret", false },
        { "user", "secret", "user", "secre", false },
        { "user", "secret", "user", "secrets", false },
        { "user", "secret", "", "", false },
        { "user", "secret", "secret", "user", false },
        { "user", "secret", "us\xe5r", "secret", false },     /* differs in bit 7 only */
        { "user", "secret", "user", "s\xe5" "cret", false },
        { "us\xe5r", "s\xe5" "cret", "us\xe5r", "s\xe5" "cret", true },
        { "u", "p", "u", "p", true },
        { NULL, NULL, NULL, NULL, true },
        { NULL, NULL, NULL, "p", false },
        { NULL, NULL, "u", NULL, false },
};

START_TEST(test_userpass_matches) {
        const char *su = matches[_i].sent_user, *sp = matches[_i].sent_pass;
        uint8_t msg[SOCKS5_USERPASS_MAX];
        size_t n = 0;
        Out out;

        memset(long_user, 'u', 255);
        memset(long_pass, 'p', 255);
        su = su ?: long_user;
        sp = sp ?: long_pass;

        msg[n++] = 1;
        msg[n++] = (uint8_t) strlen(su);
        memcpy(msg + n, su, strlen(su));
        n += strlen(su);
        msg[n++] = (uint8_t) strlen(sp);
        memcpy(msg + n, sp, strlen(sp));
        n += strlen(sp);

        ck_assert_int_eq(parse_kind(KIND_USERPASS, msg, n, &out), (int) n);
        ck_assert_int_eq(socks5_userpass_matches(&out.userpass, matches[_i].user ?: long_user,
                                                 matches[_i].pass ?: long_pass),
                         matches[_i].expect);
}
END_TEST

START_TEST(test_userpass_overlong_and_nul) {
        char user256[257];
        Out out;

        /* A configured string longer than any field never matches, even when its first
         * 255 bytes do. */
        memset(long_user, 'u', 255);
        memset(user256, 'u', 256);
        user256[256] = 0;
        ck_assert_int_eq(parse_kind(KIND_USERPASS, M("\x01\x01u\x01p"), &out), 5);
        memset(&out.userpass, 0, sizeof out.userpass);
        memset(out.userpass.username, 'u', 255);
        out.userpass.username_len = 255;
        out.userpass.password[0] = 'p';
        out.userpass.password_len = 1;
        ck_assert(socks5_userpass_matches(&out.userpass, long_user, "p"));
        ck_assert(!socks5_userpass_matches(&out.userpass, user256, "p"));

        /* A NUL inside what was sent is part of the name, not its end. */
        ck_assert_int_eq(parse_kind(KIND_USERPASS, M("\x01\x03" "a\0b" "\x02" "p\0"), &out), 8);
        ck_assert_uint_eq(out.userpass.username_len, 3);
        ck_assert_uint_eq(out.userpass.password_len, 2);
        ck_assert_str_eq(out.userpass.username, "a");
        ck_assert(!socks5_userpass_matches(&out.userpass, "a", "p"));
        ck_assert(!socks5_userpass_matches(&out.userpass, "ab", "p"));
}
END_TEST

START_TEST(test_userpass_reply) {
        uint8_t out[SOCKS5_USERPASS_REPLY_SIZE];

        ck_assert_int_eq(socks5_build_userpass_reply(true, out), 2);
        ck_assert_mem_eq(out, "\x01\x00", 2);
        ck_assert_int_eq(socks5_build_userpass_reply(false, out), 2);
        ck_assert_mem_eq(out, "\x01\x01", 2);
}
END_TEST

static const struct {
        const char *bytes;
        size_t len;
        uint8_t cmd, atyp;
        const char *address;
        uint16_t port;
        bool supported;
} requests[] = {
        { M("\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50"), 1, 1, "127.0.0.1", 80, true },
        { M("\x05\x01\x00\x01\xff\xff\xff\xff\xff\xff"), 1, 1, "255.255.255.255", 65535, true },
        { M("\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00"), 1, 1, "0.0.0.0", 0, true },
        { M("\x05\x01\x00\x04\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x01\xbb"), 1, 4, "2001:db8::1", 443, true },
        { M("\x05\x01\x00\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x00\x16"), 1, 4, "::1", 22, true },
        { M("\x05\x01\x00\x04\0\0\0\0\0\0\0\0\0\0\xff\xff\x01\x02\x03\x04\x00\x16"), 1, 4, "::ffff:1.2.3.4", 22, true },
        { M("\x05\x01\x00\x03\x0b" "example.com" "\x00\x16"), 1, 3, "example.com", 22, true },
        { M("\x05\x01\x00\x03\x01" "a" "\x12\x34"), 1, 3, "a", 0x1234, true },
        /* Names go on as sent: no case folding, no check that they look like names. */
        { M("\x05\x01\x00\x03\x09" "1.2.3.4:5" "\x00\x01"), 1, 3, "1.2.3.4:5", 1, true },
        { M("\x05\x01\x00\x03\x06" "Db.I\xc3\xa9" "\x00\x01"), 1, 3, "Db.I\xc3\xa9", 1, true },
        { M("\x05\x02\x00\x01\x0a\x00\x00\x01\x00\x15"), 2, 1, "10.0.0.1", 21, false },   /* BIND */
        { M("\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00"), 3, 1, "0.0.0.0", 0, false },     /* UDP ASSOCIATE */
        { M("\x05\x03\x00\x03\x01" "x" "\x00\x35"), 3, 3, "x", 53, false },
        { M("\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50"), 0, 1, "127.0.0.1", 80, false },
        { M("\x05\x04\x00\x01\x7f\x00\x00\x01\x00\x50"), 4, 1, "127.0.0.1", 80, false },
        { M("\x05\xff\x00\x01\x7f\x00\x00\x01\x00\x50"), 0xff, 1, "127.0.0.1", 80, false },
};

START_TEST(test_request_values) {
        Out out;

        check_complete(KIND_REQUEST, requests[_i].bytes, requests[_i].len);
        ck_assert_int_eq(parse_kind(KIND_REQUEST, requests[_i].bytes, requests[_i].len, &out), (int) requests[_i].len);
        ck_assert_uint_eq(out.request.cmd, requests[_i].cmd);
        ck_assert_uint_eq(out.request.atyp, requests[_i].atyp);
        ck_assert_str_eq(out.request.address, requests[_i].address);
        ck_assert_uint_eq(out.request.port, requests[_i].port);
        ck_assert_int_eq(socks5_request_supported(&out.request), requests[_i].supported);
}
END_TEST

static const struct {
        uint8_t code;
        int family; /* 0: NULL */
        const char *addr;
        uint16_t port;
        const char *bytes;
        size_t len;
} replies[] = {
        { SOCKS5_REPLY_SUCCEEDED, 0, NULL, 0, M("\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00") },
        { SOCKS5_REPLY_GENERAL_FAILURE, 0, NULL, 0, M("\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00") },
        { SOCKS5_REPLY_COMMAND_NOT_SUPPORTED, 0, NULL, 0, M("\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00") },
        { SOCKS5_REPLY_ADDRESS_TYPE_NOT_SUPPORTED, 0, NULL, 0, M("\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00") },
        { SOCKS5_REPLY_SUCCEEDED, AF_INET, "192.0.2.1", 1080, M("\x05\x00\x00\x01\xc0\x00\x02\x01\x04\x38") },
        { SOCKS5_REPLY_CONNECTION_REFUSED, AF_INET, "127.0.0.1", 65535, M("\x05\x05\x00\x01\x7f\x00\x00\x01\xff\xff") },
        { SOCKS5_REPLY_SUCCEEDED, AF_INET6, "2001:db8::2", 8080,
          M("\x05\x00\x00\x04\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02\x1f\x90") },
        { SOCKS5_REPLY_NOT_ALLOWED, AF_INET6, "::", 0, M("\x05\x02\x00\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x00\x00") },
};

START_TEST(test_build_reply) {
        struct sockaddr_storage ss = {};
        const struct sockaddr *sa = NULL;
        uint8_t out[SOCKS5_SERVER_REPLY_MAX + 4], code = 0xee;
        size_t len = replies[_i].len;

        if (replies[_i].family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *) &ss;

                sin->sin_family = AF_INET;
                sin->sin_port = htons(replies[_i].port);
                ck_assert_int_eq(inet_pton(AF_INET, replies[_i].addr, &sin->sin_addr), 1);
                sa = (const struct sockaddr *) sin;
        } else if (replies[_i].family == AF_INET6) {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;

                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(replies[_i].port);
                ck_assert_int_eq(inet_pton(AF_INET6, replies[_i].addr, &sin6->sin6_addr), 1);
                sa = (const struct sockaddr *) sin6;
        }

        ck_assert_uint_le(len, SOCKS5_SERVER_REPLY_MAX);
        memset(out, 0xee, sizeof out);
        ck_assert_int_eq(socks5_build_reply(replies[_i].code, sa, out, sizeof out), (int) len);
        ck_assert_mem_eq(out, replies[_i].bytes, len);
        ck_assert_uint_eq(out[len], 0xee);

        /* Exactly enough room, and one byte less. */
        ck_assert_int_eq(socks5_build_reply(replies[_i].code, sa, out, len), (int) len);
        ck_assert_int_eq(socks5_build_reply(replies[_i].code, sa, out, len - 1), -ENOBUFS);
        ck_assert_int_eq(socks5_build_reply(replies[_i].code, sa, NULL, 0), -ENOBUFS);

        /* What the server writes, the client side reads back. */
        ck_assert_int_eq(socks5_parse_connect_reply(out, len, &code), (int) len);
        ck_assert_uint_eq(code, replies[_i].code);
        check_complete(KIND_CONNECT_REPLY, out, len);
}
END_TEST

START_TEST(test_build_reply_bad_family) {
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        struct sockaddr sa = { .sa_family = AF_UNSPEC };
        uint8_t out[SOCKS5_SERVER_REPLY_MAX];

        ck_assert_int_eq(socks5_build_reply(0, (const struct sockaddr *) &un, out, sizeof out), -EAFNOSUPPORT);
        ck_assert_int_eq(socks5_build_reply(0, &sa, out, sizeof out), -EAFNOSUPPORT);
}
END_TEST

static const struct {
        int reason;
        uint8_t reply;
} ssh_failures[] = {
        { SSH_OPEN_ADMINISTRATIVELY_PROHIBITED, SOCKS5_REPLY_NOT_ALLOWED },
        { SSH_OPEN_CONNECT_FAILED, SOCKS5_REPLY_CONNECTION_REFUSED },
        { SSH_OPEN_UNKNOWN_CHANNEL_TYPE, SOCKS5_REPLY_GENERAL_FAILURE },
        { SSH_OPEN_RESOURCE_SHORTAGE, SOCKS5_REPLY_GENERAL_FAILURE },
        { 0, SOCKS5_REPLY_GENERAL_FAILURE },
        { 5, SOCKS5_REPLY_GENERAL_FAILURE },
        { -1, SOCKS5_REPLY_GENERAL_FAILURE },
        { 0x7fffffff, SOCKS5_REPLY_GENERAL_FAILURE },
};

START_TEST(test_ssh_failure_mapping) {
        ck_assert_uint_eq(socks5_reply_for_ssh_open_failure(ssh_failures[_i].reason), ssh_failures[_i].reply);
}
END_TEST

START_TEST(test_reply_strings) {
        static const char *const expect[] = {
                "succeeded",
                "general SOCKS server failure",
                "connection not allowed by ruleset",
                "network unreachable",
                "host unreachable",
                "connection refused",
                "TTL expired",
                "command not supported",
                "address type not supported",
        };

        ck_assert_int_eq(ELEMENTSOF(expect), _SOCKS5_REPLY_MAX);
        ck_assert_int_eq(SOCKS5_REPLY_ADDRESS_TYPE_NOT_SUPPORTED, 8);
        for (int i = 0; i < _SOCKS5_REPLY_MAX; i++)
                ck_assert_str_eq(socks5_reply_to_string(i), expect[i]);
        ck_assert_ptr_null(socks5_reply_to_string(9));
        ck_assert_ptr_null(socks5_reply_to_string(0xff));
        ck_assert_ptr_null(socks5_reply_to_string(-1));
        ck_assert_ptr_null(socks5_reply_to_string(_SOCKS5_REPLY_INVALID));
}
END_TEST

START_TEST(test_client_greeting) {
        uint8_t out[4] = { 0xee, 0xee, 0xee, 0xee };

        ck_assert_int_eq(socks5_build_client_greeting(out, sizeof out), 3);
        ck_assert_mem_eq(out, "\x05\x01\x00\xee", 4);
        ck_assert_int_eq(socks5_build_client_greeting(out, 3), 3);
        ck_assert_int_eq(socks5_build_client_greeting(out, 2), -ENOBUFS);
        ck_assert_int_eq(socks5_build_client_greeting(NULL, 0), -ENOBUFS);

        /* And our server side accepts it. */
        {
                Socks5Greeting g;

                ck_assert_int_eq(socks5_parse_greeting(out, 3, &g), 3);
                ck_assert_uint_eq(socks5_select_method(&g, false), SOCKS5_METHOD_NO_AUTH);
        }
}
END_TEST

START_TEST(test_method_selection_values) {
        static const uint8_t methods[] = { 0x00, 0x01, 0x02, 0x80, 0xff };
        uint8_t msg[2] = { 5, methods[_i] };
        Out out;

        ck_assert_int_eq(parse_kind(KIND_METHOD_SELECTION, msg, 2, &out), 2);
        ck_assert_uint_eq(out.code, methods[_i]);
}
END_TEST

static const struct {
        const char *host;
        uint16_t port;
        const char *bytes;
        size_t len;
        const char *parsed; /* address as our server side reads it back */
} connect_requests[] = {
        { "192.0.2.1", 22, M("\x05\x01\x00\x01\xc0\x00\x02\x01\x00\x16"), "192.0.2.1" },
        { "127.0.0.1", 65535, M("\x05\x01\x00\x01\x7f\x00\x00\x01\xff\xff"), "127.0.0.1" },
        { "2001:db8::1", 443, M("\x05\x01\x00\x04\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x01\xbb"), "2001:db8::1" },
        { "2001:DB8:0:0::1", 443, M("\x05\x01\x00\x04\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x01\xbb"), "2001:db8::1" },
        { "::ffff:1.2.3.4", 80, M("\x05\x01\x00\x04\0\0\0\0\0\0\0\0\0\0\xff\xff\x01\x02\x03\x04\x00\x50"), "::ffff:1.2.3.4" },
        { "example.com", 22, M("\x05\x01\x00\x03\x0b" "example.com" "\x00\x16"), "example.com" },
        { "a", 1, M("\x05\x01\x00\x03\x01" "a" "\x00\x01"), "a" },
        /* Not literals for inet_pton(): sent as names, unresolved. */
        { "1.2.3", 80, M("\x05\x01\x00\x03\x05" "1.2.3" "\x00\x50"), "1.2.3" },
        { "01.2.3.4", 80, M("\x05\x01\x00\x03\x08" "01.2.3.4" "\x00\x50"), "01.2.3.4" },
        { "fe80::1%eth0", 80, M("\x05\x01\x00\x03\x0c" "fe80::1%eth0" "\x00\x50"), "fe80::1%eth0" },
        { "[::1]", 80, M("\x05\x01\x00\x03\x05" "[::1]" "\x00\x50"), "[::1]" },
};

START_TEST(test_connect_request) {
        uint8_t out[SOCKS5_REQUEST_MAX + 1];
        size_t len = connect_requests[_i].len;
        Out parsed;

        memset(out, 0xee, sizeof out);
        ck_assert_int_eq(socks5_build_connect_request(connect_requests[_i].host, connect_requests[_i].port, out, sizeof out), (int) len);
        ck_assert_mem_eq(out, connect_requests[_i].bytes, len);
        ck_assert_uint_eq(out[len], 0xee);
        ck_assert_int_eq(socks5_build_connect_request(connect_requests[_i].host, connect_requests[_i].port, out, len), (int) len);
        ck_assert_int_eq(socks5_build_connect_request(connect_requests[_i].host, connect_requests[_i].port, out, len - 1), -ENOBUFS);

        ck_assert_int_eq(parse_kind(KIND_REQUEST, out, len, &parsed), (int) len);
        ck_assert_uint_eq(parsed.request.cmd, SOCKS5_CMD_CONNECT);
        ck_assert_str_eq(parsed.request.address, connect_requests[_i].parsed);
        ck_assert_uint_eq(parsed.request.port, connect_requests[_i].port);
}
END_TEST

START_TEST(test_connect_request_lengths) {
        uint8_t out[SOCKS5_REQUEST_MAX + 8];
        char host[300];
        Out parsed;

        ck_assert_int_eq(socks5_build_connect_request("", 22, out, sizeof out), -EINVAL);

        memset(host, 'h', sizeof host);
        host[255] = 0;
        ck_assert_int_eq(socks5_build_connect_request(host, 22, out, sizeof out), (int) SOCKS5_REQUEST_MAX);
        ck_assert_uint_eq(out[4], 255);
        ck_assert_int_eq(socks5_build_connect_request(host, 22, out, SOCKS5_REQUEST_MAX - 1), -ENOBUFS);
        ck_assert_int_eq(parse_kind(KIND_REQUEST, out, SOCKS5_REQUEST_MAX, &parsed), (int) SOCKS5_REQUEST_MAX);
        ck_assert_str_eq(parsed.request.address, host);

        host[255] = 'h';
        host[256] = 0;
        ck_assert_int_eq(socks5_build_connect_request(host, 22, out, sizeof out), -EINVAL);
        host[299] = 0;
        ck_assert_int_eq(socks5_build_connect_request(host, 22, out, sizeof out), -EINVAL);
}
END_TEST

static const struct {
        const char *bytes;
        size_t len;
        uint8_t code;
} connect_replies[] = {
        { M("\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"), 0 },
        { M("\x05\x05\x00\x01\x0a\x00\x00\x01\x30\x39"), 5 },
        { M("\x05\x00\x00\x04\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x01\xbb"), 0 },
        { M("\x05\x04\x00\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x00\x00"), 4 },
        { M("\x05\x00\x00\x03\x05" "proxy" "\x00\x50"), 0 },
        { M("\x05\x02\x00\x03\x00\x00\x00"), 2 },
        { M("\x05\x09\x00\x01\x00\x00\x00\x00\x00\x00"), 9 },   /* undefined codes come through */
        { M("\x05\xff\x00\x01\x00\x00\x00\x00\x00\x00"), 0xff },
};

START_TEST(test_connect_reply_values) {
        Out out;

        check_complete(KIND_CONNECT_REPLY, connect_replies[_i].bytes, connect_replies[_i].len);
        ck_assert_int_eq(parse_kind(KIND_CONNECT_REPLY, connect_replies[_i].bytes, connect_replies[_i].len, &out),
                         (int) connect_replies[_i].len);
        ck_assert_uint_eq(out.code, connect_replies[_i].code);
}
END_TEST

START_TEST(test_limits) {
        ck_assert_uint_eq(SOCKS5_GREETING_MAX, 257);
        ck_assert_uint_eq(SOCKS5_USERPASS_MAX, 513);
        ck_assert_uint_eq(SOCKS5_REQUEST_MAX, 262);
        ck_assert_uint_eq(SOCKS5_REPLY_MAX, 262);
        ck_assert_uint_eq(SOCKS5_SERVER_REPLY_MAX, 22);
        ck_assert_uint_ge(SOCKS5_MESSAGE_MAX, SOCKS5_GREETING_MAX);
        ck_assert_uint_ge(SOCKS5_MESSAGE_MAX, SOCKS5_REQUEST_MAX);
        ck_assert_uint_ge(SOCKS5_MESSAGE_MAX, SOCKS5_USERPASS_MAX);
        ck_assert_uint_ge(SOCKS5_ADDRESS_TEXT_MAX, INET6_ADDRSTRLEN);
}
END_TEST

static Suite *socks5_suite(void) {
        Suite *s = suite_create("socks5");
        TCase *tc;

        tc = tcase_create("parsers");
        tcase_add_loop_test(tc, test_complete, 0, ELEMENTSOF(complete));
        tcase_add_loop_test(tc, test_largest, 0, _KIND_MAX);
        tcase_add_loop_test(tc, test_malformed, 0, ELEMENTSOF(malformed));
        tcase_add_test(tc, test_limits);
        suite_add_tcase(s, tc);

        tc = tcase_create("server");
        tcase_add_test(tc, test_greeting_values);
        tcase_add_loop_test(tc, test_select_method, 0, ELEMENTSOF(selections));
        tcase_add_test(tc, test_method_selection_bytes);
        tcase_add_test(tc, test_userpass_values);
        tcase_add_loop_test(tc, test_userpass_matches, 0, ELEMENTSOF(matches));
        tcase_add_test(tc, test_userpass_overlong_and_nul);
        tcase_add_test(tc, test_userpass_reply);
        tcase_add_loop_test(tc, test_request_values, 0, ELEMENTSOF(requests));
        tcase_add_loop_test(tc, test_build_reply, 0, ELEMENTSOF(replies));
        tcase_add_test(tc, test_build_reply_bad_family);
        tcase_add_loop_test(tc, test_ssh_failure_mapping, 0, ELEMENTSOF(ssh_failures));
        tcase_add_test(tc, test_reply_strings);
        suite_add_tcase(s, tc);

        tc = tcase_create("client");
        tcase_add_test(tc, test_client_greeting);
        tcase_add_loop_test(tc, test_method_selection_values, 0, 5);
        tcase_add_loop_test(tc, test_connect_request, 0, ELEMENTSOF(connect_requests));
        tcase_add_test(tc, test_connect_request_lengths);
        tcase_add_loop_test(tc, test_connect_reply_values, 0, ELEMENTSOF(connect_replies));
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        SRunner *sr = srunner_create(socks5_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
