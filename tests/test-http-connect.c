/* Unit tests for the HTTP CONNECT codec (src/shared/http-connect.c): exact request bytes,
 * refused hosts, and the response parser at every truncation point, malformed and oversize. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http-connect.h"
#include "macro.h"

#define M(s) s, sizeof(s) - 1

/* Parses from an exactly sized heap copy, so that ASan sees any read past the end; the
 * status is left alone unless a whole header was parsed. */
static int parse_copy(const char *text, size_t n, int *status) {
        char *copy = malloc(n ? n : 1);
        int r, before = *status;

        ck_assert_ptr_nonnull(copy);
        memcpy(copy, text, n);
        r = http_connect_parse_response(copy, n, status);
        free(copy);
        if (r <= 0)
                ck_assert_int_eq(*status, before);
        return r;
}

static const struct {
        const char *host;
        unsigned port;
        const char *expect;
} requests[] = {
        { "proxy.example", 22, "CONNECT proxy.example:22 HTTP/1.1\r\nHost: proxy.example:22\r\n\r\n" },
        { "vps.example.com", 443, "CONNECT vps.example.com:443 HTTP/1.1\r\nHost: vps.example.com:443\r\n\r\n" },
        { "192.0.2.1", 22, "CONNECT 192.0.2.1:22 HTTP/1.1\r\nHost: 192.0.2.1:22\r\n\r\n" },
        { "2001:db8::1", 22, "CONNECT [2001:db8::1]:22 HTTP/1.1\r\nHost: [2001:db8::1]:22\r\n\r\n" },
        { "::1", 65535, "CONNECT [::1]:65535 HTTP/1.1\r\nHost: [::1]:65535\r\n\r\n" },
        { "::ffff:1.2.3.4", 80, "CONNECT [::ffff:1.2.3.4]:80 HTTP/1.1\r\nHost: [::ffff:1.2.3.4]:80\r\n\r\n" },
        { "a", 0, "CONNECT a:0 HTTP/1.1\r\nHost: a:0\r\n\r\n" },
        { "A-b_c~d.E", 1, "CONNECT A-b_c~d.E:1 HTTP/1.1\r\nHost: A-b_c~d.E:1\r\n\r\n" },
        { "x!$&'()*+,;=", 2, "CONNECT x!$&'()*+,;=:2 HTTP/1.1\r\nHost: x!$&'()*+,;=:2\r\n\r\n" },
        { "1.2.3", 3, "CONNECT 1.2.3:3 HTTP/1.1\r\nHost: 1.2.3:3\r\n\r\n" },
        { "xn--mnchen-3ya.example", 22, "CONNECT xn--mnchen-3ya.example:22 HTTP/1.1\r\nHost: xn--mnchen-3ya.example:22\r\n\r\n" },
};

START_TEST(test_build_request) {
        char out[HTTP_CONNECT_REQUEST_MAX + 1];
        size_t len = strlen(requests[_i].expect);

        memset(out, 'Z', sizeof out);
        ck_assert_int_eq(http_connect_build_request(requests[_i].host, (uint16_t) requests[_i].port, out, sizeof out), (int) len);
        ck_assert_str_eq(out, requests[_i].expect);

        /* Room for the NUL is needed too. */
        ck_assert_int_eq(http_connect_build_request(requests[_i].host, (uint16_t) requests[_i].port, out, len + 1), (int) len);
        ck_assert_str_eq(out, requests[_i].expect);
        ck_assert_int_eq(http_connect_build_request(requests[_i].host, (uint16_t) requests[_i].port, out, len), -ENOBUFS);
        ck_assert_int_eq(http_connect_build_request(requests[_i].host, (uint16_t) requests[_i].port, NULL, 0), -ENOBUFS);
}
END_TEST

static const char *const bad_hosts[] = {
        "",
        " ",
        "a b",
        "a\tb",
        " a",
        "a ",
        "a\r\nX-Injected: 1",
        "a\n",
        "a\r",
        "a\x01",
        "a\x7f",
        "a\x1b[0m",
        "user@host",
        "user:pass@host",
        "@",
        "a/b",
        "/",
        "a:b",
        "host:22",
        "[::1]",
        "[2001:db8::1]",
        "fe80::1%eth0",
        "a%20b",
        "a?b",
        "a#b",
        "a\\b",
        "a\"b",
        "a<b>",
        "a{b}",
        "a|b",
        "a^b",
        "a`b",
        "m\xc3\xbcnchen.example",
        "\xff",
};

START_TEST(test_bad_host) {
        char out[HTTP_CONNECT_REQUEST_MAX];

        memset(out, 'Z', sizeof out);
        ck_assert_int_eq(http_connect_build_request(bad_hosts[_i], 22, out, sizeof out), -EINVAL);
        ck_assert_int_eq(out[0], 'Z');
}
END_TEST

START_TEST(test_host_lengths) {
        char out[HTTP_CONNECT_REQUEST_MAX], host[300];
        int r;

        memset(host, 'h', sizeof host);
        host[255] = 0;
        r = http_connect_build_request(host, 65535, out, sizeof out);
        ck_assert_int_eq(r, 8 + 255 + 6 + 11 + 6 + 255 + 6 + 4);
        ck_assert_int_eq(strlen(out), r);
        ck_assert_int_eq(http_connect_build_request(host, 65535, out, (size_t) r), -ENOBUFS);

        /* The longest IPv6 text still fits the documented bound with its brackets. */
        r = http_connect_build_request("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535, out, sizeof out);
        ck_assert_int_eq(r, 8 + 47 + 6 + 11 + 6 + 47 + 6 + 4);

        host[255] = 'h';
        host[256] = 0;
        ck_assert_int_eq(http_connect_build_request(host, 22, out, sizeof out), -EINVAL);
        host[299] = 0;
        ck_assert_int_eq(http_connect_build_request(host, 22, out, sizeof out), -EINVAL);
}
END_TEST

static const struct {
        const char *text;
        size_t len;
        size_t consumed;
        int status;
} responses[] = {
        { M("HTTP/1.1 200 Connection established\r\n\r\n"), 39, 200 },
        { M("HTTP/1.0 200 OK\r\nProxy-agent: x\r\n\r\n"), 35, 200 },
        { M("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\n"
            "Content-Length: 0\r\n\r\n"), 102, 407 },
        { M("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 13\r\n\r\n<html></html>"), 48, 502 },
        /* The tunnel's first bytes arrive with the header: they are not consumed. */
        { M("HTTP/1.1 200 OK\r\n\r\nSSH-2.0-OpenSSH_9.2\r\n"), 19, 200 },
        { M("HTTP/1.1 200 OK\r\n\r\n\r\n\r\n"), 19, 200 },
        { M("HTTP/1.1 200\r\n\r\n"), 16, 200 },
        { M("HTTP/1.1 200 \r\n\r\n"), 17, 200 },
        { M("HTTP/1.1 200 OK\n\n"), 17, 200 },
        { M("HTTP/1.1 200 OK\nVia: 1.1 p\n\nrest"), 28, 200 },
        { M("HTTP/1.1 200 OK\r\n\n"), 18, 200 },
        { M("HTTP/1.1 200 OK\n\r\n"), 18, 200 },
        { M("HTTP/1.1 200 OK\r\nA: b\nC: d\r\n\r\n"), 30, 200 },
        { M("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"), 25, 100 },
        { M("HTTP/1.9 599 x\r\n\r\n"), 18, 599 },
        { M("HTTP/1.1 101 x\r\n\r\n"), 18, 101 },
        { M("HTTP/1.1 204 \tTab\xe9\xff obs-text\r\n\r\n"), 32, 204 },
        /* Header fields are not interpreted: anything but an empty line goes. */
        { M("HTTP/1.1 200 OK\r\n\x01\x7f\0 junk\r\n\r\n"), 29, 200 },
};

START_TEST(test_response) {
        const char *text = responses[_i].text;
        size_t len = responses[_i].len, consumed = responses[_i].consumed;
        int status = -1;

        ck_assert_uint_le(consumed, len);
        for (size_t n = 0; n < consumed; n++)
                ck_assert_msg(parse_copy(text, n, &status) == 0, "prefix %zu of %zu", n, consumed);
        for (size_t n = consumed; n <= len; n++) {
                status = -1;
                ck_assert_int_eq(parse_copy(text, n, &status), (int) consumed);
                ck_assert_int_eq(status, responses[_i].status);
        }
}
END_TEST

/* Malformed responses: prefixes shorter than `at` need more, from `at` bytes on -EBADMSG. */
static const struct {
        const char *text;
        size_t len;
        size_t at;
} malformed[] = {
        { M("HTTP/2.0 200 OK\r\n\r\n"), 6 },
        { M("HTTP/2 200\r\n\r\n"), 6 },
        { M("HTTP/0.9 200 OK\r\n\r\n"), 6 },
        { M("HTTP/1.x 200 OK\r\n\r\n"), 8 },
        { M("HTTP/11.1 200 OK\r\n\r\n"), 7 },
        { M("http/1.1 200 OK\r\n\r\n"), 1 },
        { M("HTTPS/1.1 200 OK\r\n\r\n"), 5 },
        { M("SSH-2.0-OpenSSH_9.2\r\n"), 1 },
        { M("\x05\x00"), 1 },
        { M("\r\n\r\n"), 1 },
        { M("\n\n"), 1 },
        { M(" HTTP/1.1 200 OK\r\n\r\n"), 1 },
        { M("HTTP/1.1\r\n\r\n"), 9 },
        { M("HTTP/1.1\n\n"), 9 },
        { M("HTTP/1.1\t200 OK\r\n\r\n"), 9 },
        { M("HTTP/1.1  200 OK\r\n\r\n"), 10 },
        { M("HTTP/1.1 abc OK\r\n\r\n"), 10 },
        { M("HTTP/1.1 099 x\r\n\r\n"), 10 },
        { M("HTTP/1.1 600 x\r\n\r\n"), 10 },
        { M("HTTP/1.1 -20 x\r\n\r\n"), 10 },
        { M("HTTP/1.1 2x0 OK\r\n\r\n"), 11 },
        { M("HTTP/1.1 20x OK\r\n\r\n"), 12 },
        { M("HTTP/1.1 20\r\n\r\n"), 12 },
        { M("HTTP/1.1 2000 OK\r\n\r\n"), 13 },
        { M("HTTP/1.1 200OK\r\n\r\n"), 13 },
        { M("HTTP/1.1 200\tOK\r\n\r\n"), 13 },
        { M("HTTP/1.1 200 O\x01K\r\n\r\n"), 15 },
        { M("HTTP/1.1 200 OK\x7f\r\n\r\n"), 16 },
        { M("HTTP/1.1 200 OK\0\r\n\r\n"), 16 },
        { M("HTTP/1.1 200 OK\rX\r\n\r\n"), 17 },
        { M("HTTP/1.1 200 OK\r\r\n\r\n"), 17 },
        { M("HTTP/1.1 200\r200\r\n\r\n"), 14 },
};

START_TEST(test_malformed) {
        int status = -1;

        for (size_t n = 0; n <= malformed[_i].len; n++)
                ck_assert_msg(parse_copy(malformed[_i].text, n, &status) == (n < malformed[_i].at ? 0 : -EBADMSG),
                              "case %d, %zu bytes", _i, n);
}
END_TEST

/* A header of `size` bytes: a status line, filler fields, and the terminator. */
static char *make_header(size_t size, const char *terminator, size_t extra) {
        static const char status_line[] = "HTTP/1.1 200 OK\r\n";
        size_t tl = strlen(terminator), pos;
        char *h = malloc(size + extra);

        ck_assert_ptr_nonnull(h);
        ck_assert_uint_ge(size, sizeof status_line - 1 + 3 + tl);
        memcpy(h, status_line, sizeof status_line - 1);
        pos = sizeof status_line - 1;
        /* One long field line "X: xxx..." up to the terminator. */
        memcpy(h + pos, "X: ", 3);
        memset(h + pos + 3, 'x', size - tl - pos - 3);
        memcpy(h + size - tl, terminator, tl);
        memset(h + size, 'T', extra);
        return h;
}

START_TEST(test_size_limit) {
        static const char *const terminators[] = { "\r\n\r\n", "\n\n", "\r\n\n" };
        const char *t = terminators[_i];
        int status = -1;
        char *h;

        /* Exactly the limit: accepted, with or without tunnel bytes after it. */
        h = make_header(HTTP_CONNECT_RESPONSE_MAX, t, 100);
        ck_assert_int_eq(parse_copy(h, HTTP_CONNECT_RESPONSE_MAX - 1, &status), 0);
        ck_assert_int_eq(parse_copy(h, HTTP_CONNECT_RESPONSE_MAX, &status), (int) HTTP_CONNECT_RESPONSE_MAX);
        ck_assert_int_eq(status, 200);
        ck_assert_int_eq(parse_copy(h, HTTP_CONNECT_RESPONSE_MAX + 100, &status), (int) HTTP_CONNECT_RESPONSE_MAX);
        free(h);

        /* One byte over: refused once the limit is reached, before the end arrives. */
        status = -1;
        h = make_header(HTTP_CONNECT_RESPONSE_MAX + 1, t, 100);
        ck_assert_int_eq(parse_copy(h, HTTP_CONNECT_RESPONSE_MAX - 1, &status), 0);
        ck_assert_int_eq(parse_copy(h, HTTP_CONNECT_RESPONSE_MAX, &status), -EMSGSIZE);
        ck_assert_int_eq(parse_copy(h, HTTP_CONNECT_RESPONSE_MAX + 1, &status), -EMSGSIZE);
        ck_assert_int_eq(parse_copy(h, HTTP_CONNECT_RESPONSE_MAX + 101, &status), -EMSGSIZE);
        ck_assert_int_eq(status, -1);
        free(h);
}
END_TEST

START_TEST(test_long_status_line) {
        size_t n = 3 * HTTP_CONNECT_RESPONSE_MAX;
        char *h = malloc(n);
        int status = -1;

        ck_assert_ptr_nonnull(h);
        memcpy(h, "HTTP/1.1 200 ", 13);
        memset(h + 13, 'r', n - 13);
        ck_assert_int_eq(parse_copy(h, HTTP_CONNECT_RESPONSE_MAX - 1, &status), 0);
        ck_assert_int_eq(parse_copy(h, HTTP_CONNECT_RESPONSE_MAX, &status), -EMSGSIZE);
        ck_assert_int_eq(parse_copy(h, n, &status), -EMSGSIZE);

        /* Bad bytes past the limit are never looked at. */
        h[HTTP_CONNECT_RESPONSE_MAX] = 0x01;
        ck_assert_int_eq(parse_copy(h, n, &status), -EMSGSIZE);
        free(h);
}
END_TEST

START_TEST(test_request_max) {
        ck_assert_uint_eq(HTTP_CONNECT_REQUEST_MAX, 556);
        ck_assert_uint_eq(HTTP_CONNECT_RESPONSE_MAX, 8192);
}
END_TEST

static Suite *http_connect_suite(void) {
        Suite *s = suite_create("http-connect");
        TCase *tc;

        tc = tcase_create("request");
        tcase_add_loop_test(tc, test_build_request, 0, ELEMENTSOF(requests));
        tcase_add_loop_test(tc, test_bad_host, 0, ELEMENTSOF(bad_hosts));
        tcase_add_test(tc, test_host_lengths);
        tcase_add_test(tc, test_request_max);
        suite_add_tcase(s, tc);

        tc = tcase_create("response");
        tcase_add_loop_test(tc, test_response, 0, ELEMENTSOF(responses));
        tcase_add_loop_test(tc, test_malformed, 0, ELEMENTSOF(malformed));
        tcase_add_loop_test(tc, test_size_limit, 0, 3);
        tcase_add_test(tc, test_long_status_line);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        SRunner *sr = srunner_create(http_connect_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
