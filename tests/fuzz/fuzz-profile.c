/* libFuzzer target for profile files: whatever parses must format, parse back to an equal
 * profile and format to the same text; abort() on any broken invariant.
 * Input: a profile file named "fuzz". If it starts with "!\n", the remaining lines are
 * instead Key=Value settings given to profile_set() unstripped, as the control socket does. */
#include <stdint.h>
#include <stdio.h>

#include "fuzz-check.h"
#include "profile.h"

/* Reasons go to logs and JSON: printable ASCII only, NUL-terminated within the buffer. */
static void error_check(const ProfileError *err) {
        check(memchr(err->field, '\0', sizeof err->field));
        check(memchr(err->reason, '\0', sizeof err->reason));
        for (const char *c = err->field; *c; c++)
                check(*c >= 0x20 && *c < 0x7f);
        for (const char *c = err->reason; *c; c++)
                check(*c >= 0x20 && *c < 0x7f);
        check(err->reason[0] != '\0');
}

static void round_trip(const Profile *p) {
        _cleanup_(profile_freep) Profile *p2 = NULL, *d = NULL;
        _cleanup_(freep) char *text = NULL, *text2 = NULL;
        ProfileError err = {};
        int r;

        check(profile_validate(p, NULL) == 0);
        check(profile_format(p, &text) == 0);
        r = profile_parse("fuzz", text, strlen(text), &p2, &err);
        if (r < 0)
                fprintf(stderr, "reparse failed: %d line %u %s: %s\n%s", r, err.line, err.field, err.reason, text);
        check(r == 0);
        check(profile_equal(p, p2));
        check(profile_format(p2, &text2) == 0);
        check(streq(text, text2));

        check(profile_dup(p2, &d) == 0);
        check(profile_equal(p, d));

        /* Conflicts between a profile and its copy: symmetric, and only when it listens. */
        r = profile_conflicts(p, p2, &err);
        check(r == 0 || r == -EADDRINUSE);
        if (r < 0)
                error_check(&err);
        check(profile_conflicts(p2, p, NULL) == r);
        {
                const Address *a;
                bool listens = profile_socks_listen(p, &a) > 0 || p->n_local > 0;
                check(listens == (r == -EADDRINUSE));
        }
        for (size_t i = 0; i < p->n_local; i++) {
                _cleanup_(freep) char *s = NULL;
                check(forward_format(&p->local[i], &s) == 0);
        }
        for (size_t i = 0; i < p->n_remote; i++) {
                _cleanup_(freep) char *s = NULL;
                check(forward_format(&p->remote[i], &s) == 0);
        }
}

static void settings(const char *text) {
        _cleanup_(profile_freep) Profile *p = NULL;
        const char *line = text;

        check(profile_new("fuzz", &p, NULL) == 0);
        check(profile_set(p, "Server", "fuzz.example", NULL) == 0);
        while (*line) {
                const char *nl = strchrnul(line, '\n'), *eq;
                _cleanup_(freep) char *key = NULL;
                ProfileError err = {};
                int r;

                eq = memchr(line, '=', nl - line);
                if (eq) {
                        _cleanup_(freep) char *value = strndup(eq + 1, nl - eq - 1);
                        key = strndup(line, eq - line);
                        check(key && value);
                        r = profile_set(p, key, value, &err);
                        check(r == 0 || r == -EINVAL || r == -ENOENT || r == -E2BIG);
                } else {
                        key = strndup(line, nl - line);
                        check(key);
                        r = profile_reset(p, key, &err);
                        check(r == 0 || r == -ENOENT);
                }
                if (r < 0)
                        error_check(&err);
                line = *nl ? nl + 1 : nl;
        }
        if (profile_validate(p, NULL) == 0)
                round_trip(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(profile_freep) Profile *p = NULL;
        ProfileError err = {};
        int r;

        if (size > 64 * 1024)
                return 0;

        if (size >= 2 && data[0] == '!' && data[1] == '\n') {
                _cleanup_(freep) char *text = strndup((const char *) data + 2, size - 2);
                check(text);
                settings(text);
                return 0;
        }

        r = profile_parse("fuzz", (const char *) data, size, &p, &err);
        if (r < 0) {
                check(r == -EBADMSG || r == -EINVAL || r == -ENOENT || r == -E2BIG);
                check(!p);
                error_check(&err);
                return 0;
        }
        round_trip(p);
        return 0;
}
