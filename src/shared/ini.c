/* systemd-style INI keyfile parser: [Section], Key=Value, '#'/';' comments, one line at a
 * time over a byte buffer that need not be NUL-terminated. */
#include <assert.h>
#include <stdbool.h>
#include <string.h>

#include "ini.h"
#include "macro.h"

/* Stripped around keys, values and whole lines; '\r' so that CRLF files read like LF ones. */
static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r';
}

static bool is_name_char(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
}

static bool is_name(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!is_name_char(s[i]))
                        return false;
        return true;
}

/* Narrows [*s, *s + *n) to exclude blanks at both ends. */
static void strip(const char **s, size_t *n) {
        while (*n > 0 && is_blank(**s)) {
                (*s)++;
                (*n)--;
        }
        while (*n > 0 && is_blank((*s)[*n - 1]))
                (*n)--;
}

static int fail(unsigned line, const char *reason, unsigned *ret_line, const char **ret_reason) {
        if (ret_line)
                *ret_line = line;
        if (ret_reason)
                *ret_reason = reason;
        return -EBADMSG;
}

int ini_parse(const char *text, size_t size, IniAssignmentCallback cb, void *userdata,
              unsigned *ret_line, const char **ret_reason) {
        /* Lines are bounded by INI_LINE_MAX, so copies for the callback fit on the stack. */
        char section[INI_LINE_MAX + 1], key[INI_LINE_MAX + 1], value[INI_LINE_MAX + 1];
        bool have_section = false;
        unsigned line = 0;
        size_t pos = 0;

        assert(text || size == 0);
        assert(cb);

        /* Editors on other systems like to start files with a UTF-8 byte order mark. */
        if (size >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
                pos = 3;

        while (pos < size) {
                const char *l = text + pos, *nl, *eq, *k, *v;
                size_t n, kn, vn;
                int r;

                line++;
                nl = memchr(l, '\n', size - pos);
                n = nl ? (size_t) (nl - l) : size - pos;
                pos += n + (nl ? 1 : 0);

                if (memchr(l, '\0', n))
                        return fail(line, "NUL byte in text", ret_line, ret_reason);
                /* The limit is on the content: a CRLF terminator does not count against it. */
                if (n - (n > 0 && l[n - 1] == '\r') > INI_LINE_MAX)
                        return fail(line, "line too long", ret_line, ret_reason);

                strip(&l, &n);
                if (n == 0 || l[0] == '#' || l[0] == ';')
                        continue;

                if (l[0] == '[') {
                        const char *close = memchr(l, ']', n);
                        size_t sn;

                        if (!close)
                                return fail(line, "section header not closed", ret_line, ret_reason);
                        if (close != l + n - 1)
                                return fail(line, "trailing text after ']'", ret_line, ret_reason);
                        sn = n - 2;
                        if (sn == 0)
                                return fail(line, "empty section name", ret_line, ret_reason);
                        if (!is_name(l + 1, sn))
                                return fail(line, "invalid character in section name", ret_line, ret_reason);
                        memcpy(section, l + 1, sn);
                        section[sn] = '\0';
                        have_section = true;
                        continue;
                }

                eq = memchr(l, '=', n);
                if (!eq)
                        return fail(line, "missing '='", ret_line, ret_reason);
                k = l;
                kn = (size_t) (eq - l);
                v = eq + 1;
                vn = n - kn - 1;
                strip(&k, &kn);
                strip(&v, &vn);
                if (kn == 0)
                        return fail(line, "empty key", ret_line, ret_reason);
                if (!is_name(k, kn))
                        return fail(line, "invalid character in key", ret_line, ret_reason);
                if (!have_section)
                        return fail(line, "assignment outside of a section", ret_line, ret_reason);

                memcpy(key, k, kn);
                key[kn] = '\0';
                memcpy(value, v, vn);
                value[vn] = '\0';

                r = cb(section, key, value, line, userdata);
                if (r < 0)
                        return r;
        }

        return 0;
}
