/* Unit tests of the Varlink wire codec: framing at every split point, size and depth caps,
 * malformed and hostile messages, call/reply validation, builders and serialization. */
#include <check.h>
#include <stdio.h>

#include "varlink.h"

/* json_object_put() returns int; the cleanup helper wants a function returning the pointer. */
static struct json_object *json_object_put_null(struct json_object *o) {
        json_object_put(o);
        return NULL;
}
DEFINE_POINTER_CLEANUP_FUNC(struct json_object, json_object_put_null);
#define _cleanup_json_ _cleanup_(json_object_put_nullp)

/* A string literal with its length, embedded NULs included, the literal's own NUL not. */
#define BYTES(s) (s), (sizeof(s) - 1)

static const char *compact(struct json_object *o) {
        return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Feeds data[0..n) in one piece and takes one message. */
static int take_one(const char *data, size_t n, size_t max_size, int max_depth, struct json_object **ret) {
        VarlinkFramer f;
        int r;

        varlink_framer_init(&f, max_size, max_depth);
        r = varlink_framer_feed(&f, data, n);
        if (r >= 0)
                r = varlink_framer_next(&f, ret);
        varlink_framer_done(&f);
        return r;
}

static int take_one_default(const char *data, size_t n, struct json_object **ret) {
        return take_one(data, n, VARLINK_MESSAGE_SIZE_MAX_DEFAULT, VARLINK_DEPTH_MAX_DEFAULT, ret);
}

/* Drains f, appending each message's compact form and a '\n' to out. */
static void drain(VarlinkFramer *f, char *out, size_t out_size) {
        for (;;) {
                _cleanup_json_ struct json_object *o = NULL;
                int r = varlink_framer_next(f, &o);

                ck_assert_int_ge(r, 0);
                if (r == 0)
                        return;
                ck_assert_int_eq(r, 1);
                ck_assert_uint_lt(strlen(out) + strlen(compact(o)) + 2, out_size);
                strcat(out, compact(o));
                strcat(out, "\n");
        }
}

static const char stream[] =
        "{\"method\":\"io.alknet.Manager.ListProfiles\"}\0"
        " {\"a\" : [1, 2.5, {\"b\":null}], \"c\":\"\xc3\xa9\\n\"}\t\0"
        "{}\0"
        "{\"x\":\"\\u00e9/\\\"\"}\r\n\0";
static const char stream_expected[] =
        "{\"method\":\"io.alknet.Manager.ListProfiles\"}\n"
        "{\"a\":[1,2.5,{\"b\":null}],\"c\":\"\xc3\xa9\\n\"}\n"
        "{}\n"
        "{\"x\":\"\xc3\xa9/\\\"\"}\n";

START_TEST(test_split_two_pieces) {
        /* Every split point into two reads yields the same messages. */
        for (size_t i = 0; i <= sizeof(stream) - 1; i++) {
                VarlinkFramer f;
                char out[1024] = "";

                varlink_framer_init(&f, VARLINK_MESSAGE_SIZE_MAX_DEFAULT, VARLINK_DEPTH_MAX_DEFAULT);
                ck_assert_int_eq(varlink_framer_feed(&f, stream, i), 0);
                drain(&f, out, sizeof(out));
                ck_assert_int_eq(varlink_framer_feed(&f, stream + i, sizeof(stream) - 1 - i), 0);
                drain(&f, out, sizeof(out));
                ck_assert_str_eq(out, stream_expected);
                ck_assert_int_eq(varlink_framer_finish(&f), 0);
                ck_assert(!varlink_framer_has_pending(&f));
                varlink_framer_done(&f);
        }
}
END_TEST

START_TEST(test_split_three_pieces) {
        /* Every pair of split points, draining only at the end, so that several complete
         * messages sit in the buffer ahead of a partial one. */
        size_t n = sizeof(stream) - 1;

        for (size_t i = 0; i <= n; i++)
                for (size_t j = i; j <= n; j++) {
                        VarlinkFramer f;
                        char out[1024] = "";

                        varlink_framer_init(&f, VARLINK_MESSAGE_SIZE_MAX_DEFAULT, VARLINK_DEPTH_MAX_DEFAULT);
                        ck_assert_int_eq(varlink_framer_feed(&f, stream, i), 0);
                        ck_assert_int_eq(varlink_framer_feed(&f, stream + i, j - i), 0);
                        if (j % 2)
                                drain(&f, out, sizeof(out));
                        ck_assert_int_eq(varlink_framer_feed(&f, stream + j, n - j), 0);
                        drain(&f, out, sizeof(out));
                        ck_assert_str_eq(out, stream_expected);
                        varlink_framer_done(&f);
                }
}
END_TEST

START_TEST(test_byte_by_byte) {
        VarlinkFramer f;
        char out[1024] = "";

        varlink_framer_init(&f, VARLINK_MESSAGE_SIZE_MAX_DEFAULT, VARLINK_DEPTH_MAX_DEFAULT);
        for (size_t i = 0; i < sizeof(stream) - 1; i++) {
                ck_assert_int_eq(varlink_framer_feed(&f, stream + i, 1), 0);
                drain(&f, out, sizeof(out));
        }
        ck_assert_str_eq(out, stream_expected);
        varlink_framer_done(&f);
}
END_TEST

START_TEST(test_many_in_one_feed) {
        enum { N = 10000 };
        char *buf = malloc(N * 32);
        size_t n = 0;
        VarlinkFramer f;

        ck_assert_ptr_nonnull(buf);
        for (int i = 0; i < N; i++)
                n += sprintf(buf + n, "{\"n\":%d}", i) + 1; /* sprintf's NUL is the terminator */

        varlink_framer_init(&f, 64, VARLINK_DEPTH_MAX_DEFAULT);
        ck_assert_int_eq(varlink_framer_feed(&f, buf, n), 0);
        for (int i = 0; i < N; i++) {
                _cleanup_json_ struct json_object *o = NULL;
                struct json_object *v;

                ck_assert_int_eq(varlink_framer_next(&f, &o), 1);
                ck_assert(json_object_object_get_ex(o, "n", &v));
                ck_assert_int_eq(json_object_get_int(v), i);
        }
        ck_assert_int_eq(varlink_framer_next(&f, &(struct json_object *) { NULL }), 0);
        ck_assert(!varlink_framer_has_pending(&f));
        varlink_framer_done(&f);
        free(buf);
}
END_TEST

START_TEST(test_buffer_stays_small) {
        /* A long stream fed in odd-sized chunks and drained as it goes: the buffer holds at
         * most about one message plus one chunk, because consumed bytes are reclaimed. */
        const char msg[] = "{\"method\":\"io.alknet.Manager.ListProfiles\",\"parameters\":{}}";
        VarlinkFramer f;
        char chunk[97];
        size_t pos = 0, taken = 0;

        varlink_framer_init(&f, 128, VARLINK_DEPTH_MAX_DEFAULT);
        for (int round = 0; round < 20000; round++) {
                for (size_t i = 0; i < sizeof(chunk); i++, pos++)
                        chunk[i] = msg[pos % sizeof(msg)];
                ck_assert_int_eq(varlink_framer_feed(&f, chunk, sizeof(chunk)), 0);
                for (;;) {
                        _cleanup_json_ struct json_object *o = NULL;
                        int r = varlink_framer_next(&f, &o);

                        ck_assert_int_ge(r, 0);
                        if (r == 0)
                                break;
                        taken++;
                }
                ck_assert_uint_le(f.allocated, 512);
        }
        ck_assert_uint_eq(taken, pos / sizeof(msg));
        varlink_framer_done(&f);
}
END_TEST

START_TEST(test_size_cap) {
        /* The cap counts the NUL: with a cap of 64, a 63-byte JSON text fits. */
        char text[128];
        VarlinkFramer f;
        struct json_object *o = NULL;

        memset(text, 0, sizeof(text));
        strcpy(text, "{\"a\":\"");
        memset(text + 6, 'x', 63 - 8);
        strcpy(text + 63 - 2, "\"}");
        ck_assert_uint_eq(strlen(text), 63);
        ck_assert_int_eq(take_one(text, 64, 64, 8, &o), 1);
        json_object_put(o);

        /* One byte more is refused, at feed time, whether the message is complete... */
        strcpy(text + 63 - 2, "x\"}");
        ck_assert_uint_eq(strlen(text), 64);
        varlink_framer_init(&f, 64, 8);
        ck_assert_int_eq(varlink_framer_feed(&f, text, 65), -EMSGSIZE);
        varlink_framer_done(&f);

        /* ... completed by a later read ... */
        varlink_framer_init(&f, 64, 8);
        ck_assert_int_eq(varlink_framer_feed(&f, text, 40), 0);
        ck_assert_int_eq(varlink_framer_next(&f, &o), 0);
        ck_assert_int_eq(varlink_framer_feed(&f, text + 40, 25), -EMSGSIZE);
        varlink_framer_done(&f);

        /* ... or still unterminated: 63 pending bytes may still become a message, 64 cannot. */
        varlink_framer_init(&f, 64, 8);
        ck_assert_int_eq(varlink_framer_feed(&f, text, 63), 0);
        ck_assert_int_eq(varlink_framer_next(&f, &o), 0);
        ck_assert_int_eq(varlink_framer_feed(&f, text + 63, 1), -EMSGSIZE);
        varlink_framer_done(&f);

        /* A complete message ahead of the oversized one in the same read does not count. */
        varlink_framer_init(&f, 64, 8);
        ck_assert_int_eq(varlink_framer_feed(&f, BYTES("{\"a\":1}\0")), 0);
        ck_assert_int_eq(varlink_framer_feed(&f, text, 64), -EMSGSIZE);
        varlink_framer_done(&f);
}
END_TEST

START_TEST(test_size_cap_no_buffering) {
        /* 10 MB without a NUL, in 4 KiB reads, against the default cap: refused on the read
         * that crosses the cap, having buffered less than cap + one read. */
        static char chunk[4096];
        VarlinkFramer f;
        size_t fed = 0;
        int r = 0;

        memset(chunk, ' ', sizeof(chunk));
        chunk[0] = '{';
        varlink_framer_init(&f, VARLINK_MESSAGE_SIZE_MAX_DEFAULT, VARLINK_DEPTH_MAX_DEFAULT);
        while (fed < 10u * 1024 * 1024) {
                r = varlink_framer_feed(&f, chunk, sizeof(chunk));
                if (r < 0)
                        break;
                fed += sizeof(chunk);
        }
        ck_assert_int_eq(r, -EMSGSIZE);
        ck_assert_uint_eq(fed, VARLINK_MESSAGE_SIZE_MAX_DEFAULT - sizeof(chunk));
        ck_assert_uint_le(f.allocated, VARLINK_MESSAGE_SIZE_MAX_DEFAULT + sizeof(chunk));
        varlink_framer_done(&f);
}
END_TEST

START_TEST(test_finish) {
        VarlinkFramer f;
        struct json_object *o = NULL;

        varlink_framer_init(&f, 64, 8);
        ck_assert_int_eq(varlink_framer_finish(&f), 0);
        ck_assert(!varlink_framer_has_pending(&f));
        ck_assert_int_eq(varlink_framer_feed(&f, NULL, 0), 0);

        /* A complete message not yet taken is no protocol error at end of stream. */
        ck_assert_int_eq(varlink_framer_feed(&f, BYTES("{}\0")), 0);
        ck_assert(varlink_framer_has_pending(&f));
        ck_assert_int_eq(varlink_framer_finish(&f), 0);

        /* The missing NUL at the end is. */
        ck_assert_int_eq(varlink_framer_feed(&f, BYTES("{}")), 0);
        ck_assert_int_eq(varlink_framer_finish(&f), -EBADMSG);
        ck_assert_int_eq(varlink_framer_next(&f, &o), 1);
        json_object_put(o);
        ck_assert_int_eq(varlink_framer_next(&f, &o), 0);
        ck_assert(varlink_framer_has_pending(&f));
        ck_assert_int_eq(varlink_framer_finish(&f), -EBADMSG);

        ck_assert_int_eq(varlink_framer_feed(&f, BYTES("\0")), 0);
        ck_assert_int_eq(varlink_framer_next(&f, &o), 1);
        json_object_put(o);
        ck_assert_int_eq(varlink_framer_finish(&f), 0);
        ck_assert(!varlink_framer_has_pending(&f));
        varlink_framer_done(&f);
        varlink_framer_done(&f);
}
END_TEST

/* Messages as they arrive (NUL included) and what the framer must say about the first. */
static const struct {
        const char *data;
        size_t size;
        int result;
} message_table[] = {
        /* Not an object. */
        { BYTES("[1]\0"), -EBADMSG },
        { BYTES("1\0"), -EBADMSG },
        { BYTES("\"x\"\0"), -EBADMSG },
        { BYTES("null\0"), -EBADMSG },
        { BYTES("true\0"), -EBADMSG },
        { BYTES("[]\0"), -EBADMSG },
        /* Not JSON. */
        { BYTES("{\0"), -EBADMSG },
        { BYTES("}\0"), -EBADMSG },
        { BYTES("{\"a\"}\0"), -EBADMSG },
        { BYTES("{\"a\":1,}\0"), -EBADMSG },
        { BYTES("{a:1}\0"), -EBADMSG },
        { BYTES("{\"a\":01}\0"), -EBADMSG },
        { BYTES("{\"a\":+1}\0"), -EBADMSG },
        { BYTES("{\"a\":.5}\0"), -EBADMSG },
        { BYTES("{\"a\":\"\\x41\"}\0"), -EBADMSG },
        { BYTES("/*c*/{}\0"), -EBADMSG },
        { BYTES("hello\0"), -EBADMSG },
        /* What json-c's strict mode still takes, refused on top. */
        { BYTES("{'a':1}\0"), -EBADMSG },
        { BYTES("{\"a\":'x'}\0"), -EBADMSG },
        { BYTES("{\"a\":NaN}\0"), -EBADMSG },
        { BYTES("{\"a\":Infinity}\0"), -EBADMSG },
        { BYTES("{\"a\":-Infinity}\0"), -EBADMSG },
        { BYTES("{\"a\":1.}\0"), -EBADMSG },
        { BYTES("{\"a\":1.e5}\0"), -EBADMSG },
        { BYTES("{\"a\":\"\x01\"}\0"), -EBADMSG },
        { BYTES("{\"a\":\"\t\"}\0"), -EBADMSG },
        { BYTES("{\"a\":\"\\u0000\"}\0"), -EBADMSG },
        { BYTES("{\"a\\u0000b\":1}\0"), -EBADMSG },
        /* Trailing garbage; whitespace is fine. */
        { BYTES("{}x\0"), -EBADMSG },
        { BYTES("{} x\0"), -EBADMSG },
        { BYTES("{}{}\0"), -EBADMSG },
        { BYTES("{\"a\":1}]\0"), -EBADMSG },
        { BYTES("{}\x01\0"), -EBADMSG },
        { BYTES("{} \t\r\n\0"), 1 },
        { BYTES(" \n{}\0"), 1 },
        /* Empty messages. */
        { BYTES("\0"), -EBADMSG },
        { BYTES("\0{}\0"), -EBADMSG },
        { BYTES("  \0"), -EBADMSG },
        /* An embedded NUL ends the message early; the first part is then broken. */
        { BYTES("{\"a\":\"b\0c\"}\0"), -EBADMSG },
        { BYTES("{\"a\":1}\0\"}\0"), 1 },
        /* Invalid UTF-8, in values and keys. */
        { BYTES("{\"a\":\"\xff\"}\0"), -EBADMSG },
        { BYTES("{\"a\":\"\x80\"}\0"), -EBADMSG },
        { BYTES("{\"a\":\"\xc3\"}\0"), -EBADMSG },
        { BYTES("{\"a\":\"\xc0\xaf\"}\0"), -EBADMSG },         /* overlong '/' */
        { BYTES("{\"a\":\"\xe0\x80\xaf\"}\0"), -EBADMSG },     /* overlong '/' */
        { BYTES("{\"a\":\"\xed\xa0\x80\"}\0"), -EBADMSG },     /* surrogate U+D800 */
        { BYTES("{\"a\":\"\xf4\x90\x80\x80\"}\0"), -EBADMSG }, /* above U+10FFFF */
        { BYTES("{\"a\":\"\xf8\x88\x80\x80\x80\"}\0"), -EBADMSG },
        { BYTES("{\"\xfe\":1}\0"), -EBADMSG },
        { BYTES("{\"a\":\"\xe2\x82\"}\0"), -EBADMSG },         /* truncated sequence */
        /* Valid UTF-8 and escapes pass. */
        { BYTES("{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"}\0"), 1 },
        { BYTES("{\"a\":\"\\u0001\\\\u0000\\\"It's N.I.\"}\0"), 1 },
        { BYTES("{\"a\":[-0,1.5e3,2E-2,true,false,null,{}]}\0"), 1 },
};

START_TEST(test_message_table) {
        _cleanup_json_ struct json_object *o = NULL;
        int r;

        r = take_one(message_table[_i].data, message_table[_i].size,
                     VARLINK_MESSAGE_SIZE_MAX_DEFAULT, VARLINK_DEPTH_MAX_DEFAULT, &o);
        ck_assert_msg(r == message_table[_i].result, "row %d: got %d, want %d",
                      _i, r, message_table[_i].result);
        if (r == 1) {
                /* A message taken is an object whose compact form parses back the same. */
                _cleanup_json_ struct json_object *again = NULL;
                _cleanup_(freep) char *wire = NULL;
                size_t size;

                ck_assert(json_object_is_type(o, json_type_object));
                ck_assert_int_eq(varlink_serialize(o, &wire, &size), 0);
                ck_assert_int_eq(take_one_default(wire, size, &again), 1);
                ck_assert_str_eq(compact(again), compact(o));
        } else
                ck_assert_ptr_null(o);
}
END_TEST

/* depth levels of objects ('{"a":') or arrays (in an object) around a core, closed or not. */
static char *nested(int depth, bool objects, const char *core, bool close) {
        size_t n = (size_t) depth * 6 + strlen(core) + 16;
        char *s = malloc(n), *p = s;

        ck_assert_ptr_nonnull(s);
        if (!objects)
                p = stpcpy(p, "{\"a\":");
        for (int i = 0; i < depth - !objects; i++)
                p = stpcpy(p, objects ? "{\"a\":" : "[");
        p = stpcpy(p, core);
        if (close) {
                for (int i = 0; i < depth - !objects; i++)
                        p = stpcpy(p, objects ? "}" : "]");
                if (!objects)
                        p = stpcpy(p, "}");
        }
        *p = 0;
        return s;
}

START_TEST(test_depth) {
        static const struct {
                int depth;
                bool objects;
                const char *core;
                bool close;
                int result;
        } table[] = {
                /* Objects and arrays count, scalars do not: {} is depth 1, {"a":[1]} 2. */
                { 1, true, "1", true, 1 },
                { 8, true, "1", true, 1 },
                { 8, false, "1", true, 1 },
                { 8, false, "", true, 1 },
                { 8, true, "{}", true, -ELOOP },
                { 8, false, "[]", true, -ELOOP },
                { 8, false, "{\"b\":\"[[[[\"}", true, -ELOOP },
                { 7, false, "{\"b\":\"[[[[\"}", true, 1 },
                { 9, true, "1", true, -ELOOP },
                { 9, false, "1", true, -ELOOP },
                { 9, false, "", true, -ELOOP },
                { 9, false, "1", false, -ELOOP },
                { 9, true, "1", false, -ELOOP },
                { 5000, false, "", false, -ELOOP },
                { 5000, true, "", false, -ELOOP },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                _cleanup_(freep) char *s = nested(table[i].depth, table[i].objects, table[i].core, table[i].close);
                _cleanup_json_ struct json_object *o = NULL;

                ck_assert_msg(take_one(s, strlen(s) + 1, 1024 * 1024, 8, &o) == table[i].result,
                              "row %zu", i);
        }

        /* The default cap: exactly at it ok, one deeper refused. */
        for (int d = VARLINK_DEPTH_MAX_DEFAULT; d <= VARLINK_DEPTH_MAX_DEFAULT + 1; d++) {
                _cleanup_(freep) char *s = nested(d, true, "1", true);
                _cleanup_json_ struct json_object *o = NULL;

                ck_assert_int_eq(take_one_default(s, strlen(s) + 1, &o),
                                 d == VARLINK_DEPTH_MAX_DEFAULT ? 1 : -ELOOP);
        }
}
END_TEST

START_TEST(test_depth_bomb_brackets) {
        /* "[[[[..." of the full message size, NUL-terminated, unbalanced. */
        size_t n = VARLINK_MESSAGE_SIZE_MAX_DEFAULT;
        _cleanup_(freep) char *s = malloc(n);
        _cleanup_json_ struct json_object *o = NULL;

        ck_assert_ptr_nonnull(s);
        memset(s, '[', n - 1);
        s[n - 1] = 0;
        ck_assert_int_eq(take_one_default(s, n, &o), -ELOOP);
        s[0] = '{';
        ck_assert_int_eq(take_one_default(s, n, &o), -EBADMSG); /* '{' then '[': no key */
}
END_TEST

static const struct {
        const char *name;
        bool interface_valid;
        bool method_valid;
} name_table[] = {
        { "io.alknet.Manager", true, true }, /* the method "Manager" of io.alknet */
        { "io.alknet.Manager.ListProfiles", true, true },
        { "org.varlink.service.GetInfo", true, true },
        { "a.b", true, false },
        { "a.b.C", true, true },
        { "a.B", true, false }, /* the interface "a" has one label */
        { "A.b", true, false },
        { "io.alk--net.Manager.X9", true, true },
        { "io.1alknet.Manager.X", true, true },
        { "org.example.ftl", true, false },
        { "", false, false },
        { "io", false, false },
        { "ListProfiles", false, false },
        { "io.Foo", true, false },
        { ".io.alknet", false, false },
        { "io.alknet.", false, false },
        { "io..alknet", false, false },
        { "1io.alknet", false, false },
        { "-io.alknet", false, false },
        { "io-.alknet", false, false },
        { "io.-alknet", false, false },
        { "io.alknet-", false, false },
        { "io.al_knet", false, false },
        { "io.al knet", false, false },
        { "io.alknet.Manager.listProfiles", true, false },
        { "io.alknet.Manager.", false, false },
        { "io.alknet.Manager.List_Profiles", false, false },
        { "io.alknet.Manager.List-Profiles", true, false },
        { "io.alknet.Manager.L\xc3\xafst", false, false },
        { "io.alknet.Manager.1List", true, false },
        { ".X", false, false },
        { "io.alknet..X", false, false },
};

START_TEST(test_names) {
        const char *s = name_table[_i].name;

        ck_assert_msg(varlink_interface_name_is_valid(s) == name_table[_i].interface_valid, "interface %s", s);
        ck_assert_msg(varlink_method_name_is_valid(s) == name_table[_i].method_valid, "method %s", s);
}
END_TEST

START_TEST(test_names_null) {
        ck_assert(!varlink_interface_name_is_valid(NULL));
        ck_assert(!varlink_method_name_is_valid(NULL));
}
END_TEST

static const struct {
        const char *json;
        int result;
        const char *method;
        const char *parameters;
        bool oneway, more, upgrade;
} call_table[] = {
        { "{\"method\":\"io.alknet.Manager.ListProfiles\"}", 0, "io.alknet.Manager.ListProfiles", "{}" },
        { "{\"method\":\"io.alknet.Manager.GetProfile\",\"parameters\":{\"name\":\"x\"}}", 0,
          "io.alknet.Manager.GetProfile", "{\"name\":\"x\"}" },
        { "{\"parameters\":null,\"method\":\"a.b.C\",\"more\":true}", 0, "a.b.C", "{}", false, true },
        { "{\"method\":\"a.b.C\",\"oneway\":true,\"more\":false}", 0, "a.b.C", "{}", true },
        { "{\"method\":\"a.b.C\",\"upgrade\":true}", 0, "a.b.C", "{}", false, false, true },
        { "{\"method\":\"a.b.C\",\"oneway\":null,\"more\":null,\"upgrade\":null}", 0, "a.b.C", "{}" },
        /* Missing or malformed method. */
        { "{}", -EBADMSG },
        { "{\"parameters\":{}}", -EBADMSG },
        { "{\"method\":1}", -EBADMSG },
        { "{\"method\":null}", -EBADMSG },
        { "{\"method\":[\"a.b.C\"]}", -EBADMSG },
        { "{\"method\":{}}", -EBADMSG },
        { "{\"method\":\"\"}", -EBADMSG },
        { "{\"method\":\"ListProfiles\"}", -EBADMSG },
        { "{\"method\":\"io.alknet\"}", -EBADMSG },
        { "{\"method\":\"io.alknet.Manager.listProfiles\"}", -EBADMSG },
        { "{\"method\":\"io..Manager.X\"}", -EBADMSG },
        { "{\"method\":\"io.alknet.Manager.X \"}", -EBADMSG },
        /* Parameters not an object. */
        { "{\"method\":\"a.b.C\",\"parameters\":[]}", -EBADMSG },
        { "{\"method\":\"a.b.C\",\"parameters\":1}", -EBADMSG },
        { "{\"method\":\"a.b.C\",\"parameters\":\"x\"}", -EBADMSG },
        { "{\"method\":\"a.b.C\",\"parameters\":true}", -EBADMSG },
        /* Unknown keys. */
        { "{\"method\":\"a.b.C\",\"foo\":1}", -EBADMSG },
        { "{\"method\":\"a.b.C\",\"Method\":\"a.b.C\"}", -EBADMSG },
        { "{\"method\":\"a.b.C\",\"continues\":true}", -EBADMSG },
        /* Flags not boolean. */
        { "{\"method\":\"a.b.C\",\"more\":1}", -EBADMSG },
        { "{\"method\":\"a.b.C\",\"oneway\":\"true\"}", -EBADMSG },
        { "{\"method\":\"a.b.C\",\"upgrade\":{}}", -EBADMSG },
        { "{\"method\":\"a.b.C\",\"more\":[true]}", -EBADMSG },
        /* Contradicting flags. */
        { "{\"method\":\"a.b.C\",\"oneway\":true,\"more\":true}", -EBADMSG },
        { "{\"method\":\"a.b.C\",\"oneway\":true,\"upgrade\":true}", -EBADMSG },
};

START_TEST(test_call_parse) {
        _cleanup_json_ struct json_object *msg = json_tokener_parse(call_table[_i].json);
        VarlinkCall c = { .method = "unchanged" };

        ck_assert_ptr_nonnull(msg);
        ck_assert_msg(varlink_call_parse(msg, &c) == call_table[_i].result, "%s", call_table[_i].json);
        if (call_table[_i].result < 0) {
                ck_assert_str_eq(c.method, "unchanged");
                return;
        }
        ck_assert_str_eq(c.method, call_table[_i].method);
        ck_assert_ptr_nonnull(c.parameters);
        ck_assert_str_eq(compact(c.parameters), call_table[_i].parameters);
        ck_assert_int_eq(c.oneway, call_table[_i].oneway);
        ck_assert_int_eq(c.more, call_table[_i].more);
        ck_assert_int_eq(c.upgrade, call_table[_i].upgrade);
}
END_TEST

START_TEST(test_call_parse_odd_objects) {
        _cleanup_json_ struct json_object *msg = NULL, *arr = json_object_new_array();
        VarlinkCall c;

        ck_assert_int_eq(varlink_call_parse(NULL, &c), -EBADMSG);
        ck_assert_int_eq(varlink_call_parse(arr, &c), -EBADMSG);

        /* A method name with an embedded NUL, as only a local caller could build it. */
        msg = json_object_new_object();
        json_object_object_add(msg, "method", json_object_new_string_len("a.b.C\0x", 7));
        ck_assert_int_eq(varlink_call_parse(msg, &c), -EBADMSG);
}
END_TEST

static const struct {
        const char *json;
        int result;
        const char *error;
        const char *parameters;
        bool continues;
} reply_table[] = {
        { "{\"parameters\":{\"a\":1}}", 0, NULL, "{\"a\":1}" },
        { "{}", 0, NULL, "{}" },
        { "{\"parameters\":null,\"error\":null,\"continues\":null}", 0, NULL, "{}" },
        { "{\"parameters\":{},\"continues\":true}", 0, NULL, "{}", true },
        { "{\"continues\":false}", 0, NULL, "{}", false },
        { "{\"error\":\"org.varlink.service.MethodNotFound\",\"parameters\":{\"method\":\"a.b.C\"}}", 0,
          "org.varlink.service.MethodNotFound", "{\"method\":\"a.b.C\"}" },
        { "{\"error\":\"io.alknet.Manager.NoSuchProfile\"}", 0, "io.alknet.Manager.NoSuchProfile", "{}" },
        { "{\"error\":\"a.b.C\",\"continues\":false}", 0, "a.b.C", "{}" },
        { "{\"error\":\"a.b.C\",\"continues\":true}", -EBADMSG },
        { "{\"error\":1}", -EBADMSG },
        { "{\"error\":\"\"}", -EBADMSG },
        { "{\"error\":\"NotFound\"}", -EBADMSG },
        { "{\"error\":\"a.b.notFound\"}", -EBADMSG },
        { "{\"parameters\":[]}", -EBADMSG },
        { "{\"parameters\":\"x\"}", -EBADMSG },
        { "{\"continues\":1}", -EBADMSG },
        { "{\"continues\":\"yes\"}", -EBADMSG },
        { "{\"method\":\"a.b.C\"}", -EBADMSG },
        { "{\"parameters\":{},\"extra\":{}}", -EBADMSG },
};

START_TEST(test_reply_parse) {
        _cleanup_json_ struct json_object *msg = json_tokener_parse(reply_table[_i].json);
        VarlinkReply rp = { .error = "unchanged" };

        ck_assert_ptr_nonnull(msg);
        ck_assert_msg(varlink_reply_parse(msg, &rp) == reply_table[_i].result, "%s", reply_table[_i].json);
        if (reply_table[_i].result < 0) {
                ck_assert_str_eq(rp.error, "unchanged");
                return;
        }
        if (reply_table[_i].error)
                ck_assert_str_eq(rp.error, reply_table[_i].error);
        else
                ck_assert_ptr_null(rp.error);
        ck_assert_ptr_nonnull(rp.parameters);
        ck_assert_str_eq(compact(rp.parameters), reply_table[_i].parameters);
        ck_assert_int_eq(rp.continues, reply_table[_i].continues);
}
END_TEST

/* Serializes msg (taking it), checks the exact wire bytes, and feeds them back. */
static struct json_object *wire_check(struct json_object *msg, const char *expected) {
        _cleanup_(freep) char *wire = NULL;
        struct json_object *back = NULL;
        size_t size;

        ck_assert_ptr_nonnull(msg);
        ck_assert_int_eq(varlink_serialize(msg, &wire, &size), 0);
        json_object_put(msg);
        ck_assert_uint_eq(size, strlen(expected) + 1);
        ck_assert_mem_eq(wire, expected, size); /* including the NUL */
        ck_assert_int_eq(take_one_default(wire, size, &back), 1);
        return back;
}

START_TEST(test_serialize_round_trip) {
        _cleanup_json_ struct json_object *call = NULL, *reply = NULL, *err = NULL, *empty = NULL;
        struct json_object *p = json_object_new_object();
        VarlinkCall c;
        VarlinkReply rp;

        json_object_object_add(p, "name", json_object_new_string("x/y \"q\" \xc3\xa9"));
        json_object_object_add(p, "n", json_object_new_int64(-42));
        json_object_object_add(p, "l", json_object_new_array());
        call = wire_check(varlink_call_new("io.alknet.Manager.GetProfile", p, true, false),
                          "{\"method\":\"io.alknet.Manager.GetProfile\","
                          "\"parameters\":{\"name\":\"x/y \\\"q\\\" \xc3\xa9\",\"n\":-42,\"l\":[]},\"more\":true}");
        ck_assert_int_eq(varlink_call_parse(call, &c), 0);
        ck_assert_str_eq(c.method, "io.alknet.Manager.GetProfile");
        ck_assert_str_eq(json_object_get_string(json_object_object_get(c.parameters, "name")), "x/y \"q\" \xc3\xa9");
        ck_assert(c.more);
        ck_assert(!c.oneway);

        json_object_put(wire_check(varlink_call_new("a.b.C", NULL, false, true),
                                   "{\"method\":\"a.b.C\",\"parameters\":{},\"oneway\":true}"));

        reply = wire_check(varlink_reply_new(NULL, true), "{\"parameters\":{},\"continues\":true}");
        ck_assert_int_eq(varlink_reply_parse(reply, &rp), 0);
        ck_assert_ptr_null(rp.error);
        ck_assert(rp.continues);

        empty = wire_check(varlink_reply_new(NULL, false), "{\"parameters\":{}}");

        p = json_object_new_object();
        json_object_object_add(p, "parameter", json_object_new_string("name"));
        err = wire_check(varlink_error_new(VARLINK_ERROR_INVALID_PARAMETER, p),
                         "{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"name\"}}");
        ck_assert_int_eq(varlink_reply_parse(err, &rp), 0);
        ck_assert_str_eq(rp.error, VARLINK_ERROR_INVALID_PARAMETER);
        ck_assert(!rp.continues);
        ck_assert_str_eq(compact(rp.parameters), "{\"parameter\":\"name\"}");
}
END_TEST

static Suite *varlink_suite(void) {
        Suite *s = suite_create("varlink");
        TCase *tc;

        tc = tcase_create("framing");
        tcase_add_test(tc, test_split_two_pieces);
        tcase_add_test(tc, test_split_three_pieces);
        tcase_add_test(tc, test_byte_by_byte);
        tcase_add_test(tc, test_many_in_one_feed);
        tcase_add_test(tc, test_buffer_stays_small);
        tcase_add_test(tc, test_size_cap);
        tcase_add_test(tc, test_size_cap_no_buffering);
        tcase_add_test(tc, test_finish);
        tcase_add_loop_test(tc, test_message_table, 0, ELEMENTSOF(message_table));
        tcase_add_test(tc, test_depth);
        tcase_add_test(tc, test_depth_bomb_brackets);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);

        tc = tcase_create("messages");
        tcase_add_loop_test(tc, test_names, 0, ELEMENTSOF(name_table));
        tcase_add_test(tc, test_names_null);
        tcase_add_loop_test(tc, test_call_parse, 0, ELEMENTSOF(call_table));
        tcase_add_test(tc, test_call_parse_odd_objects);
        tcase_add_loop_test(tc, test_reply_parse, 0, ELEMENTSOF(reply_table));
        tcase_add_test(tc, test_serialize_round_trip);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        SRunner *sr = srunner_create(varlink_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
