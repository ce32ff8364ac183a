/* Unit tests for the INI keyfile parser (src/shared/ini.c): accepted syntax, every kind of
 * malformed line with its line number, callback errors and every truncation point. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ini.h"
#include "macro.h"

/* Collects "section|key|value|line;" for each assignment. */
typedef struct Collect {
        char buf[16384];
        unsigned calls;
        unsigned abort_at; /* return abort_error on this call (1-based); 0: never */
        int abort_error;
} Collect;

static int collect_cb(const char *section, const char *key, const char *value, unsigned line, void *userdata) {
        Collect *c = userdata;
        size_t n = strlen(c->buf);

        c->calls++;
        if (c->abort_at && c->calls == c->abort_at)
                return c->abort_error;
        snprintf(c->buf + n, sizeof c->buf - n, "%s|%s|%s|%u;", section, key, value, line);
        return 0;
}

/* Parses from an exactly sized heap copy, so that ASan sees any read past the end. */
static int parse_copy(const char *text, size_t size, Collect *c, unsigned *line, const char **reason) {
        char *copy = malloc(size ? size : 1);
        int r;

        ck_assert_ptr_nonnull(copy);
        memcpy(copy, text, size);
        r = ini_parse(copy, size, collect_cb, c, line, reason);
        free(copy);
        return r;
}

static const struct {
        const char *text;
        const char *expect;
} good[] = {
        { "", "" },
        { "\n\n   \n\t\n", "" },
        { "[A]\nk=v\n", "A|k|v|2;" },
        { "[A]\nk=v", "A|k|v|2;" },                                     /* no trailing newline */
        { "# c\n; c\n[A]\n  # indented\n\t; tab\nk=v\n", "A|k|v|6;" },
        { "  [A]  \n  k  =  v  \n", "A|k|v|2;" },
        { "[A]\n\tk\t=\tv w\t\n", "A|k|v w|2;" },
        { "[A]\r\nk=v\r\n\r\nx=y\r\n", "A|k|v|2;A|x|y|4;" },                /* CRLF */
        { "[A]\r\nk=v", "A|k|v|2;" },
        { "[A]\nk=\n", "A|k||2;" },                                         /* empty value */
        { "[A]\nk=   \n", "A|k||2;" },
        { "[A]\nk=a=b\n", "A|k|a=b|2;" },
        { "[A]\nk=a#b ;c\n", "A|k|a#b ;c|2;" },                             /* '#' inside a value is data */
        { "[A]\nk=;x\n", "A|k|;x|2;" },
        { "[A]\nk=v\\\nx=y\n", "A|k|v\\|2;A|x|y|3;" },                     /* no line continuation */
        { "[A]\nk=1\nk=2\n[B]\nk=3\n[A]\nk=4\n", "A|k|1|2;A|k|2|3;B|k|3|5;A|k|4|7;" },
        { "[a.b-c_D9]\nA.b-c_9=x\n", "a.b-c_D9|A.b-c_9|x|2;" },
        { "[A]\nk=a\rb\n", "A|k|a\rb|2;" },
        { "\xef\xbb\xbf[A]\nk=v\n", "A|k|v|2;" },                         /* UTF-8 BOM */
        { "[A]\nk=\xc3\xa9\n", "A|k|\xc3\xa9|2;" },
        { "[A]\n[B]\nk=v\n", "B|k|v|3;" },
};

START_TEST(test_good) {
        Collect c = {};
        unsigned line = 4242;
        const char *reason = "untouched";
        int r;

        r = parse_copy(good[_i].text, strlen(good[_i].text), &c, &line, &reason);
        ck_assert_int_eq(r, 0);
        ck_assert_str_eq(c.buf, good[_i].expect);
        /* Out parameters are written only on failure. */
        ck_assert_uint_eq(line, 4242);
        ck_assert_str_eq(reason, "untouched");
}
END_TEST

static const struct {
        const char *text;
        unsigned line;
        const char *reason;
        const char *calls_before; /* assignments seen before the error */
} bad[] = {
        { "k=v\n", 1, "assignment outside of a section", "" },
        { "\n# c\n\nk=v\n[A]\n", 4, "assignment outside of a section", "" },
        { "foo\n", 1, "missing '='", "" },
        { "[A\nk=v\n", 1, "section header not closed", "" },
        { "[A]\nk=v\n[B\n", 3, "section header not closed", "A|k|v|2;" },
        { "[A]x\n", 1, "trailing text after ']'", "" },
        { "[A] # comment\n", 1, "trailing text after ']'", "" },
        { "[A]]\n", 1, "trailing text after ']'", "" },
        { "[]\n", 1, "empty section name", "" },
        { "[A]\n[]\n", 2, "empty section name", "" },
        { "[A B]\n", 1, "invalid character in section name", "" },
        { "[ A ]\n", 1, "invalid character in section name", "" },
        { "[A/B]\n", 1, "invalid character in section name", "" },
        { "[A]\nfoo\n", 2, "missing '='", "" },
        { "[A]\nk=v\n\nfoo bar\n", 4, "missing '='", "A|k|v|2;" },
        { "[A]\n=v\n", 2, "empty key", "" },
        { "[A]\n   =  v\n", 2, "empty key", "" },
        { "[A]\nk k=v\n", 2, "invalid character in key", "" },
        { "[A]\nk/x=v\n", 2, "invalid character in key", "" },
        { "[A]\nk\xc3\xa9=v\n", 2, "invalid character in key", "" },
        { "[A]\n[k]=v\n", 2, "trailing text after ']'", "" },
};

START_TEST(test_bad) {
        Collect c = {};
        unsigned line = 0;
        const char *reason = NULL;
        int r;

        r = parse_copy(bad[_i].text, strlen(bad[_i].text), &c, &line, &reason);
        ck_assert_int_eq(r, -EBADMSG);
        ck_assert_uint_eq(line, bad[_i].line);
        ck_assert_str_eq(reason, bad[_i].reason);
        ck_assert_str_eq(c.buf, bad[_i].calls_before);

        /* The out parameters are optional. */
        memset(&c, 0, sizeof c);
        ck_assert_int_eq(parse_copy(bad[_i].text, strlen(bad[_i].text), &c, NULL, NULL), -EBADMSG);
}
END_TEST

START_TEST(test_nul_byte) {
        static const char text[] = "[A]\nk=v\nx=a\0b\ny=z\n";
        Collect c = {};
        unsigned line = 0;
        const char *reason = NULL;

        ck_assert_int_eq(parse_copy(text, sizeof text - 1, &c, &line, &reason), -EBADMSG);
        ck_assert_uint_eq(line, 3);
        ck_assert_str_eq(reason, "NUL byte in text");
        ck_assert_str_eq(c.buf, "A|k|v|2;");

        /* In a comment too: the text is not a text file. */
        memset(&c, 0, sizeof c);
        ck_assert_int_eq(parse_copy("# a\0\n", 5, &c, &line, &reason), -EBADMSG);
        ck_assert_uint_eq(line, 1);
        ck_assert_str_eq(reason, "NUL byte in text");

        /* A NUL as the very last byte, without newline. */
        memset(&c, 0, sizeof c);
        ck_assert_int_eq(parse_copy("[A]\nk=v\0", 8, &c, &line, &reason), -EBADMSG);
        ck_assert_uint_eq(line, 2);
}
END_TEST

/* Lines of exactly INI_LINE_MAX bytes are fine, one more is not; CR of CRLF does not count. */
static const struct {
        size_t len;
        const char *eol;
        int r;
} lengths[] = {
        { INI_LINE_MAX, "\n", 0 },
        { INI_LINE_MAX, "\r\n", 0 },
        { INI_LINE_MAX, "", 0 },
        { INI_LINE_MAX + 1, "\n", -EBADMSG },
        { INI_LINE_MAX + 1, "\r\n", -EBADMSG },
        { INI_LINE_MAX + 1, "", -EBADMSG },
        { 1024 * 1024, "\n", -EBADMSG },
};

START_TEST(test_line_length) {
        size_t len = lengths[_i].len, n;
        char *text;
        Collect c = {};
        unsigned line = 0;
        const char *reason = NULL;
        int r;

        text = malloc(len + 64);
        ck_assert_ptr_nonnull(text);
        n = (size_t) sprintf(text, "[A]\n");
        memcpy(text + n, "k=", 2);
        memset(text + n + 2, 'v', len - 2);
        n += len;
        n += (size_t) sprintf(text + n, "%s", lengths[_i].eol);

        r = parse_copy(text, n, &c, &line, &reason);
        ck_assert_int_eq(r, lengths[_i].r);
        if (r == 0) {
                ck_assert_uint_eq(c.calls, 1);
                ck_assert_uint_eq(strlen(c.buf), strlen("A|k||2;") + len - 2);
        } else {
                ck_assert_uint_eq(line, 2);
                ck_assert_str_eq(reason, "line too long");
                ck_assert_uint_eq(c.calls, 0);
        }
        free(text);

        /* Also for a comment line: the limit is on lines, not on assignments. */
        text = malloc(len + 2);
        ck_assert_ptr_nonnull(text);
        text[0] = '#';
        memset(text + 1, 'c', len - 1);
        text[len] = '\n';
        memset(&c, 0, sizeof c);
        ck_assert_int_eq(parse_copy(text, len + 1, &c, &line, &reason), len > INI_LINE_MAX ? -EBADMSG : 0);
        free(text);
}
END_TEST

START_TEST(test_callback_abort) {
        static const char text[] = "[A]\na=1\nb=2\nc=3\n";
        Collect c = { .abort_at = 2, .abort_error = -ECANCELED };
        unsigned line = 4242;
        const char *reason = "untouched";

        ck_assert_int_eq(parse_copy(text, sizeof text - 1, &c, &line, &reason), -ECANCELED);
        ck_assert_uint_eq(c.calls, 2); /* nothing after the failing call */
        ck_assert_str_eq(c.buf, "A|a|1|2;");
        ck_assert_uint_eq(line, 4242);
        ck_assert_str_eq(reason, "untouched");

        /* The callback's -EBADMSG is passed through as is, without a line. */
        memset(&c, 0, sizeof c);
        c.abort_at = 1;
        c.abort_error = -EBADMSG;
        ck_assert_int_eq(parse_copy(text, sizeof text - 1, &c, &line, &reason), -EBADMSG);
        ck_assert_uint_eq(line, 4242);
}
END_TEST

START_TEST(test_empty_input) {
        Collect c = {};

        ck_assert_int_eq(ini_parse(NULL, 0, collect_cb, &c, NULL, NULL), 0);
        ck_assert_int_eq(ini_parse("[A]\nk=v\n", 0, collect_cb, &c, NULL, NULL), 0);
        ck_assert_uint_eq(c.calls, 0);
        /* Size bounds the text, not a NUL. */
        ck_assert_int_eq(ini_parse("[A]\nk=v\nGARBAGE", 8, collect_cb, &c, NULL, NULL), 0);
        ck_assert_str_eq(c.buf, "A|k|v|2;");
}
END_TEST

static const char *const known_reasons[] = {
        "assignment outside of a section", "section header not closed", "trailing text after ']'",
        "empty section name", "invalid character in section name", "missing '='", "empty key",
        "invalid character in key", "line too long", "NUL byte in text",
};

/* Every prefix of a valid file either parses or fails with a known reason and a line
 * inside the prefix; parsing a prefix reads nothing beyond it (ASan, valgrind). */
START_TEST(test_truncation) {
        static const char text[] =
                "\xef\xbb\xbf# Managed by alknetd\r\n"
                "[Tunnel]\r\n"
                "Server = vps.example.com:22\n"
                "  ; comment\n"
                "HostKey=SHA256:abc\n"
                "\n"
                "[Socks]\n"
                "Listen=\n"
                "Listen=127.0.0.1:1080\n"
                "[Forward]\n"
                "Local=5432:db:5432\\\n"
                "Remote=[::1]:80:h:80";
        size_t size = sizeof text - 1;

        for (size_t n = 0; n <= size; n++) {
                Collect c = {};
                unsigned line = 0, lines = 1;
                const char *reason = NULL;
                bool known = false;
                int r;

                for (size_t i = 0; i < n; i++)
                        lines += text[i] == '\n';

                r = parse_copy(text, n, &c, &line, &reason);
                if (r == 0)
                        continue;
                ck_assert_msg(r == -EBADMSG, "prefix %zu: %d", n, r);
                ck_assert_msg(line >= 1 && line <= lines, "prefix %zu: line %u", n, line);
                for (size_t i = 0; i < ELEMENTSOF(known_reasons); i++)
                        known = known || streq(reason, known_reasons[i]);
                ck_assert_msg(known, "prefix %zu: %s", n, reason);
        }

        /* The whole file. */
        Collect c = {};
        ck_assert_int_eq(parse_copy(text, size, &c, NULL, NULL), 0);
        ck_assert_str_eq(c.buf,
                         "Tunnel|Server|vps.example.com:22|3;"
                         "Tunnel|HostKey|SHA256:abc|5;"
                         "Socks|Listen||8;"
                         "Socks|Listen|127.0.0.1:1080|9;"
                         "Forward|Local|5432:db:5432\\|11;"
                         "Forward|Remote|[::1]:80:h:80|12;");
}
END_TEST

static Suite *ini_suite(void) {
        Suite *s = suite_create("ini");
        TCase *tc = tcase_create("parse");

        tcase_add_loop_test(tc, test_good, 0, ELEMENTSOF(good));
        tcase_add_loop_test(tc, test_bad, 0, ELEMENTSOF(bad));
        tcase_add_test(tc, test_nul_byte);
        tcase_add_loop_test(tc, test_line_length, 0, ELEMENTSOF(lengths));
        tcase_add_test(tc, test_callback_abort);
        tcase_add_test(tc, test_empty_input);
        tcase_add_test(tc, test_truncation);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(ini_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
