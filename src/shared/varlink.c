/* Varlink wire codec: frames a byte stream into NUL-terminated JSON messages, validates
 * calls and replies, builds and serializes messages. Pure code on json-c, no I/O. */
#include <assert.h>
#include <limits.h>
#include <stdint.h>

#include "varlink.h"

static void *mfree(void *p) {
        free(p);
        return NULL;
}

void varlink_framer_init(VarlinkFramer *f, size_t max_size, int max_depth) {
        assert(f);
        assert(max_size > 0);
        assert(max_depth > 0 && max_depth < INT_MAX);

        *f = (VarlinkFramer) {
                .max_size = max_size,
                .max_depth = max_depth,
        };
}

void varlink_framer_done(VarlinkFramer *f) {
        if (!f)
                return;
        f->buf = mfree(f->buf);
        f->size = f->allocated = f->start = f->scanned = f->tail = 0;
}

/* Drops the bytes already returned. Only done when they are at least as many as the live
 * ones, so each live byte is moved at most as often as an equal number of bytes was
 * consumed: amortized O(1) per byte. */
static void framer_compact(VarlinkFramer *f, bool force) {
        size_t live = f->size - f->start;

        if (f->start == 0)
                return;
        if (!force && f->start < live)
                return;

        memmove(f->buf, f->buf + f->start, live);
        f->tail -= f->start;
        f->size = live;
        f->start = 0;
}

int varlink_framer_feed(VarlinkFramer *f, const void *data, size_t n) {
        const char *p = data, *end = p + n, *nul;
        size_t pending, tail_in_data = 0;

        assert(f);
        assert(data || n == 0);

        if (n == 0)
                return 0;

        /* Check every message that ends in this chunk, and the unterminated rest, against the
         * cap before buffering anything, so an oversized message never gets stored. A
         * pending message of max_size bytes without its NUL can no longer fit. */
        pending = f->size - f->tail;
        for (const char *q = p; q < end; q = nul + 1) {
                nul = memchr(q, 0, end - q);
                if (!nul) {
                        pending += end - q;
                        break;
                }
                if (pending + (size_t) (nul - q) + 1 > f->max_size)
                        return -EMSGSIZE;
                pending = 0;
                tail_in_data = nul + 1 - p;
        }
        if (pending >= f->max_size)
                return -EMSGSIZE;

        if (f->start == f->size) {
                /* Everything was consumed: start over at the front for free. */
                f->start = f->size = f->tail = 0;
                f->scanned = 0;
        }

        if (f->allocated - f->size < n) {
                size_t need, a;

                framer_compact(f, false);
                if (f->allocated - f->size < n) {
                        /* Growing anyway: drop the consumed bytes too, so they are not copied. */
                        framer_compact(f, true);
                        if (n > SIZE_MAX / 2 - f->size)
                                return -ENOMEM;
                        need = f->size + n;
                        a = MAX(MAX(f->allocated * 2, need), (size_t) 256);
                        char *b = realloc(f->buf, a);
                        if (!b)
                                return -ENOMEM;
                        f->buf = b;
                        f->allocated = a;
                }
        }

        memcpy(f->buf + f->size, p, n);
        if (tail_in_data > 0)
                f->tail = f->size + tail_in_data;
        f->size += n;
        return 0;
}

static bool utf8_continuation(unsigned char c) {
        return (c & 0xc0) == 0x80;
}

/* Length of the valid UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF) at s[0..n), or 0. */
static size_t utf8_sequence_length(const unsigned char *s, size_t n) {
        unsigned char c = s[0];
        unsigned char lo = 0x80, hi = 0xbf;
        size_t len;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                if (c == 0xe0)
                        lo = 0xa0;
                else if (c == 0xed)
                        hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                if (c == 0xf0)
                        lo = 0x90;
                else if (c == 0xf4)
                        hi = 0x8f;
        } else
                return 0;

        if (n < len)
                return 0;
        if (s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (!utf8_continuation(s[i]))
                        return 0;
        return len;
}

/* Counts the nesting of objects and arrays (a lone scalar being depth 0).
 * json-c's strict mode still takes some non-JSON (single-quoted strings, NaN, Infinity,
 * "1.") and raw control characters in strings, and its UTF-8 check lets surrogates
 * through. This pass over text that json-c already accepted refuses those, and the escape
 * \u0000, which would silently cut strings short for every C consumer. */
static int json_text_check(const char *text, size_t n, int max_depth) {
        const unsigned char *s = (const unsigned char *) text;
        bool in_string = false;
        int depth = 0;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = s[i];

                if (!in_string) {
                        if (c == '"')
                                in_string = true;
                        else if (c == '{' || c == '[') {
                                if (++depth > max_depth)
                                        return -ELOOP;
                        } else if (c == '}' || c == ']')
                                depth--;
                        else if (c == '\'' || c == 'N' || c == 'I')
                                return -EBADMSG;
                        else if (c == '.' && (i + 1 >= n || s[i + 1] < '0' || s[i + 1] > '9'))
                                return -EBADMSG;
                        continue;
                }

                if (c == '"')
                        in_string = false;
                else if (c < 0x20)
                        return -EBADMSG;
                else if (c == '\\') {
                        if (i + 1 >= n)
                                return -EBADMSG;
                        i++;
                        if (s[i] == 'u' && n - i > 4 && memcmp(s + i + 1, "0000", 4) == 0)
                                return -EBADMSG;
                } else if (c >= 0x80) {
                        size_t l = utf8_sequence_length(s + i, n - i);
                        if (l == 0)
                                return -EBADMSG;
                        i += l - 1;
                }
        }

        return in_string ? -EBADMSG : 0;
}

/* Parses text[0..len), where text[len] is the message's NUL. */
static int message_parse(const char *text, size_t len, int max_depth, struct json_object **ret) {
        struct json_tokener *tok;
        struct json_object *o;
        enum json_tokener_error e;
        size_t end;
        int r;

        assert(text[len] == 0);

        if (len == 0)
                return -EBADMSG;
        if (len >= INT_MAX)
                return -EMSGSIZE;

        /* json-c counts a scalar as a level of its own, we count containers only: one more
         * level bounds the parse, the text check below applies the exact limit. */
        tok = json_tokener_new_ex(max_depth + 1);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);

        /* Including the NUL tells json-c the text ends there: a bare number is complete, and
         * strict mode refuses anything but whitespace after the value. */
        o = json_tokener_parse_ex(tok, text, (int) len + 1);
        e = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);

        if (!o)
                return e == json_tokener_error_depth ? -ELOOP : -EBADMSG;

        if (e != json_tokener_success || end != len || !json_object_is_type(o, json_type_object))
                r = -EBADMSG;
        else
                r = json_text_check(text, len, max_depth);
        if (r < 0) {
                json_object_put(o);
                return r;
        }

        *ret = o;
        return 0;
}

int varlink_framer_next(VarlinkFramer *f, struct json_object **ret) {
        const char *m, *nul;
        size_t avail, len;
        int r;

        assert(f);
        assert(ret);

        avail = f->size - f->start;
        if (f->scanned >= avail)
                return 0;

        m = f->buf + f->start;
        nul = memchr(m + f->scanned, 0, avail - f->scanned);
        if (!nul) {
                f->scanned = avail;
                return 0;
        }

        len = nul - m;
        f->start += len + 1;
        f->scanned = 0;

        if (len + 1 > f->max_size)
                return -EMSGSIZE;

        r = message_parse(m, len, f->max_depth, ret);
        return r < 0 ? r : 1;
}

int varlink_framer_finish(const VarlinkFramer *f) {
        assert(f);
        return f->tail < f->size ? -EBADMSG : 0;
}

bool varlink_framer_has_pending(const VarlinkFramer *f) {
        assert(f);
        return f->start < f->size;
}

static bool char_is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* One label of an interface name, s[0..n): [A-Za-z0-9] ( [-]* [A-Za-z0-9] )*. */
static bool interface_label_is_valid(const char *s, size_t n) {
        if (n == 0 || !char_is_alnum(s[0]) || !char_is_alnum(s[n - 1]))
                return false;
        for (size_t i = 1; i < n - 1; i++)
                if (!char_is_alnum(s[i]) && s[i] != '-')
                        return false;
        return true;
}

static bool interface_name_is_valid_n(const char *s, size_t n) {
        size_t labels = 0;

        /* varlink.org grammar: [A-Za-z] ( [-]* [A-Za-z0-9] )* ( '.' [A-Za-z0-9] ( [-]* [A-Za-z0-9] )* )+ */
        if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
                return false;

        for (size_t i = 0; i <= n; labels++) {
                const char *dot = memchr(s + i, '.', n - i);
                size_t l = dot ? (size_t) (dot - (s + i)) : n - i;

                if (!interface_label_is_valid(s + i, l))
                        return false;
                i += l + 1;
        }

        return labels >= 2;
}

bool varlink_interface_name_is_valid(const char *s) {
        return s && interface_name_is_valid_n(s, strlen(s));
}

bool varlink_method_name_is_valid(const char *s) {
        const char *dot;

        if (!s)
                return false;

        dot = strrchr(s, '.');
        if (!dot || !interface_name_is_valid_n(s, dot - s))
                return false;

        /* The member: [A-Z][A-Za-z0-9]* */
        if (!(dot[1] >= 'A' && dot[1] <= 'Z'))
                return false;
        for (const char *p = dot + 2; *p; p++)
                if (!char_is_alnum(*p))
                        return false;
        return true;
}

/* A boolean flag; JSON null counts as absent, as the spec types the flags ?bool. */
static int flag_parse(struct json_object *v, bool *ret) {
        if (!v) {
                *ret = false;
                return 0;
        }
        if (!json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        *ret = json_object_get_boolean(v);
        return 0;
}

/* A qualified name (method or error) as a string without embedded NULs. */
static int qualified_name_parse(struct json_object *v, const char **ret) {
        const char *s;

        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        s = json_object_get_string(v);
        if ((size_t) json_object_get_string_len(v) != strlen(s) || !varlink_method_name_is_valid(s))
                return -EBADMSG;
        *ret = s;
        return 0;
}

/* Returns the object's "parameters", adding an empty one owned by msg when absent or null. */
static int parameters_get(struct json_object *msg, struct json_object *p, struct json_object **ret) {
        if (p) {
                *ret = p;
                return 0;
        }

        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        if (json_object_object_add(msg, "parameters", p) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

int varlink_call_parse(struct json_object *msg, VarlinkCall *ret) {
        VarlinkCall c = {};
        struct json_object *parameters = NULL;
        int r;

        assert(ret);

        if (!json_object_is_type(msg, json_type_object))
                return -EBADMSG;

        json_object_object_foreach(msg, key, value) {
                if (streq(key, "method"))
                        r = qualified_name_parse(value, &c.method);
                else if (streq(key, "parameters")) {
                        parameters = value;
                        r = !value || json_object_is_type(value, json_type_object) ? 0 : -EBADMSG;
                } else if (streq(key, "oneway"))
                        r = flag_parse(value, &c.oneway);
                else if (streq(key, "more"))
                        r = flag_parse(value, &c.more);
                else if (streq(key, "upgrade"))
                        r = flag_parse(value, &c.upgrade);
                else
                        r = -EBADMSG;
                if (r < 0)
                        return r;
        }

        if (!c.method)
                return -EBADMSG;
        /* A call without a reply cannot ask for several replies or for a confirmed upgrade. */
        if (c.oneway && (c.more || c.upgrade))
                return -EBADMSG;

        r = parameters_get(msg, parameters, &c.parameters);
        if (r < 0)
                return r;

        *ret = c;
        return 0;
}

int varlink_reply_parse(struct json_object *msg, VarlinkReply *ret) {
        VarlinkReply rp = {};
        struct json_object *parameters = NULL;
        int r;

        assert(ret);

        if (!json_object_is_type(msg, json_type_object))
                return -EBADMSG;

        json_object_object_foreach(msg, key, value) {
                if (streq(key, "error"))
                        r = value ? qualified_name_parse(value, &rp.error) : 0;
                else if (streq(key, "parameters")) {
                        parameters = value;
                        r = !value || json_object_is_type(value, json_type_object) ? 0 : -EBADMSG;
                } else if (streq(key, "continues"))
                        r = flag_parse(value, &rp.continues);
                else
                        r = -EBADMSG;
                if (r < 0)
                        return r;
        }

        /* An error ends the call; it cannot promise more replies. */
        if (rp.error && rp.continues)
                return -EBADMSG;

        r = parameters_get(msg, parameters, &rp.parameters);
        if (r < 0)
                return r;

        *ret = rp;
        return 0;
}

/* Adds v under key, taking ownership of v in every case. */
static int object_add(struct json_object *o, const char *key, struct json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static struct json_object *message_new(const char *name_key, const char *name,
                                       struct json_object *parameters, const char *flag1, bool set1,
                                       const char *flag2, bool set2) {
        struct json_object *o = json_object_new_object();

        if (!o) {
                json_object_put(parameters);
                return NULL;
        }

        /* The name first: json-c keeps insertion order, and the wire form reads better. */
        if (name && object_add(o, name_key, json_object_new_string(name)) < 0) {
                json_object_put(parameters);
                json_object_put(o);
                return NULL;
        }
        if (object_add(o, "parameters", parameters ?: json_object_new_object()) < 0) {
                json_object_put(o);
                return NULL;
        }

        if ((set1 && object_add(o, flag1, json_object_new_boolean(true)) < 0) ||
            (set2 && object_add(o, flag2, json_object_new_boolean(true)) < 0)) {
                json_object_put(o);
                return NULL;
        }

        return o;
}

struct json_object *varlink_call_new(const char *method, struct json_object *parameters, bool more, bool oneway) {
        assert(method);
        return message_new("method", method, parameters, "more", more, "oneway", oneway);
}

struct json_object *varlink_reply_new(struct json_object *parameters, bool continues) {
        return message_new(NULL, NULL, parameters, "continues", continues, NULL, false);
}

struct json_object *varlink_error_new(const char *error, struct json_object *parameters) {
        assert(error);
        return message_new("error", error, parameters, NULL, false, NULL, false);
}

int varlink_serialize(struct json_object *msg, char **ret, size_t *ret_size) {
        const char *s;
        size_t len;
        char *b;

        assert(msg);
        assert(ret);
        assert(ret_size);

        s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!s)
                return -ENOMEM;

        /* json-c escapes NUL inside strings, so the copy of its terminator is the only one. */
        b = malloc(len + 1);
        if (!b)
                return -ENOMEM;
        memcpy(b, s, len + 1);

        *ret = b;
        *ret_size = len + 1;
        return 0;
}
