/* Unit tests for the stealth probe (src/shared/stealth.c): the class at every prefix length
 * of SSH and non-SSH openings, and the decoy response byte for byte for fixed times. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "stealth.h"

/* Classifies an exactly sized heap copy, so that ASan sees any read past n. */
static StealthClass classify_copy(const void *bytes, size_t n) {
        uint8_t *copy = malloc(n ? n : 1);
        StealthClass c;

        ck_assert_ptr_nonnull(copy);
        memcpy(copy, bytes, n);
        c = stealth_classify(copy, n);
        free(copy);
        return c;
}

static const struct {
        const char *bytes;
        size_t len;   /* 0: strlen(bytes) */
        size_t decided; /* prefix length from which the class is final; shorter: NEED_MORE */
        StealthClass final;
} openings[] = {
        { "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", 0, 8, STEALTH_SSH },
        { "SSH-2.0-x\r\n", 0, 8, STEALTH_SSH },
        { "SSH-2.0-", 0, 8, STEALTH_SSH },
        { "SSH-2.0-\0\0\0", 11, 8, STEALTH_SSH },        /* only the prefix is looked at */
        { "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, 1, STEALTH_OTHER },
        { "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, 1, STEALTH_OTHER },
        { "\x16\x03\x01\x02\x00", 0, 1, STEALTH_OTHER }, /* TLS inside TLS */
        { "\0SSH-2.0-", 9, 1, STEALTH_OTHER },
        { "ssh-2.0-x\r\n", 0, 1, STEALTH_OTHER },
        { "S", 0, 2, STEALTH_NEED_MORE },                /* never decided */
        { "SSX", 0, 3, STEALTH_OTHER },
        { "SSH-1.99-OpenSSH_3.9\r\n", 0, 5, STEALTH_OTHER },
        { "SSH-1.5-x\r\n", 0, 5, STEALTH_OTHER },
        { "SSH-2.1-x\r\n", 0, 7, STEALTH_OTHER },
        { "SSH-2.0 x\r\n", 0, 8, STEALTH_OTHER },
        { "SSH-2.0\r\n", 0, 8, STEALTH_OTHER },
        { "SSH-2.0-", 7, 8, STEALTH_NEED_MORE },
        { "SSH-\xff", 5, 5, STEALTH_OTHER },
};

START_TEST(test_every_prefix) {
        size_t len = openings[_i].len ?: strlen(openings[_i].bytes);

        for (size_t n = 0; n <= len; n++) {
                StealthClass want = n < openings[_i].decided ? STEALTH_NEED_MORE : openings[_i].final;

                ck_assert_msg(classify_copy(openings[_i].bytes, n) == want, "opening %d, %zu bytes: got %s, want %s",
                              _i, n, stealth_class_to_string(classify_copy(openings[_i].bytes, n)),
                              stealth_class_to_string(want));
        }
}
END_TEST

START_TEST(test_empty) {
        ck_assert_int_eq(stealth_classify(NULL, 0), STEALTH_NEED_MORE);
}
END_TEST

/* Any single wrong byte at any position of the prefix decides OTHER right there. */
START_TEST(test_each_position_each_byte) {
        static const char prefix[] = STEALTH_SSH_PREFIX;

        for (size_t pos = 0; pos < STEALTH_PROBE_MAX; pos++)
                for (unsigned v = 0; v < 256; v++) {
                        uint8_t buf[STEALTH_PROBE_MAX];

                        memcpy(buf, prefix, sizeof buf);
                        buf[pos] = (uint8_t) v;
                        for (size_t n = 0; n <= sizeof buf; n++) {
                                StealthClass want;

                                if (n <= pos)
                                        want = STEALTH_NEED_MORE;
                                else if (v != (uint8_t) prefix[pos])
                                        want = STEALTH_OTHER;
                                else
                                        want = n == sizeof buf ? STEALTH_SSH : STEALTH_NEED_MORE;
                                ck_assert_int_eq(classify_copy(buf, n), want);
                        }
                }
}
END_TEST

START_TEST(test_class_strings) {
        ck_assert_str_eq(stealth_class_to_string(STEALTH_NEED_MORE), "need-more");
        ck_assert_str_eq(stealth_class_to_string(STEALTH_SSH), "ssh");
        ck_assert_str_eq(stealth_class_to_string(STEALTH_OTHER), "other");
        ck_assert_ptr_null(stealth_class_to_string(_STEALTH_CLASS_MAX));
        ck_assert_ptr_null(stealth_class_to_string(_STEALTH_CLASS_INVALID));
        ck_assert_int_eq(strlen(STEALTH_SSH_PREFIX), STEALTH_PROBE_MAX);
}
END_TEST

#define BODY                                              \
        "<html>\r\n"                                      \
        "<head><title>404 Not Found</title></head>\r\n"   \
        "<body>\r\n"                                      \
        "<center><h1>404 Not Found</h1></center>\r\n"     \
        "<hr><center>nginx</center>\r\n"                  \
        "</body>\r\n"                                     \
        "</html>\r\n"

#define HEAD(date)                                        \
        "HTTP/1.1 404 Not Found\r\n"                      \
        "Server: nginx\r\n"                               \
        "Date: " date "\r\n"                              \
        "Content-Type: text/html\r\n"                     \
        "Content-Length: 146\r\n"                         \
        "Connection: close\r\n"                           \
        "\r\n"

static const struct {
        time_t now;
        const char *want;
} decoys[] = {
        /* The first is the exact response captured from nginx 1.22.1 at that second. */
        { 1795650848, HEAD("Wed, 25 Nov 2026 23:54:08 GMT") BODY },
        { 0, HEAD("Thu, 01 Jan 1970 00:00:00 GMT") BODY },
        { 951825600, HEAD("Tue, 29 Feb 2000 12:00:00 GMT") BODY },
        { 1700000000, HEAD("Tue, 14 Nov 2023 22:13:20 GMT") BODY },
        { 253402300799, HEAD("Fri, 31 Dec 9999 23:59:59 GMT") BODY },
};

START_TEST(test_decoy_bytes) {
        char out[STEALTH_DECOY_SIZE];
        size_t len = strlen(decoys[_i].want);

        ck_assert_int_eq(sizeof BODY - 1, 146);
        memset(out, 'x', sizeof out);
        ck_assert_int_eq(stealth_decoy_response(out, sizeof out, decoys[_i].now), (int) len);
        ck_assert_mem_eq(out, decoys[_i].want, len + 1);
        ck_assert_uint_le(len + 1, STEALTH_DECOY_SIZE);

        /* Every smaller buffer is refused; exactly big enough is fine. */
        for (size_t size = 0; size <= len; size++)
                ck_assert_int_eq(stealth_decoy_response(out, size, decoys[_i].now), -ENOBUFS);
        ck_assert_int_eq(stealth_decoy_response(out, len + 1, decoys[_i].now), (int) len);
        ck_assert_mem_eq(out, decoys[_i].want, len + 1);
}
END_TEST

START_TEST(test_decoy_out_of_range) {
        char out[STEALTH_DECOY_SIZE];

        ck_assert_int_eq(stealth_decoy_response(out, sizeof out, 253402300800), -EINVAL); /* year 10000 */
        ck_assert_int_eq(stealth_decoy_response(out, sizeof out, (time_t) -62167219201), -EINVAL); /* year -1 */
}
END_TEST

static Suite *stealth_suite(void) {
        Suite *s = suite_create("stealth");
        TCase *tc;

        tc = tcase_create("classify");
        tcase_add_loop_test(tc, test_every_prefix, 0, ELEMENTSOF(openings));
        tcase_add_test(tc, test_empty);
        tcase_add_test(tc, test_each_position_each_byte);
        tcase_add_test(tc, test_class_strings);
        suite_add_tcase(s, tc);

        tc = tcase_create("decoy");
        tcase_add_loop_test(tc, test_decoy_bytes, 0, ELEMENTSOF(decoys));
        tcase_add_test(tc, test_decoy_out_of_range);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        SRunner *sr = srunner_create(stealth_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
