/* libFuzzer target for the Varlink codec: a byte stream cut into reads of fuzzed sizes,
 * framed, every message validated as a call and a reply; abort() on any broken invariant.
 * Input: byte 0 picks the caps and how many size bytes follow; those give the read sizes
 * (cycled); the rest is the stream. */
#include <stdint.h>
#include <stdio.h>

#include "fuzz-check.h"
#include "varlink.h"

static const size_t size_caps[] = { 16, 200, 4096, VARLINK_MESSAGE_SIZE_MAX_DEFAULT };
static const int depth_caps[] = { 1, 3, 8, VARLINK_DEPTH_MAX_DEFAULT };

static void framer_check(const VarlinkFramer *f) {
        check(f->start <= f->tail);
        check(f->tail <= f->size);
        check(f->size <= f->allocated);
        check(f->scanned <= f->size - f->start);
        check(f->size - f->tail < f->max_size); /* the unterminated rest can still fit */
}

/* Serializes msg and parses the wire form back with the same caps; returns it. */
static struct json_object *reparse(struct json_object *msg, size_t max_size, int max_depth,
                                   char **ret_wire, size_t *ret_size) {
        struct json_object *back = NULL;
        VarlinkFramer f;
        char *wire;
        size_t n;

        check(varlink_serialize(msg, &wire, &n) == 0);
        check(n >= 3 && wire[n - 1] == 0 && memchr(wire, 0, n) == wire + n - 1);

        /* The compact form needs no more room than the message did: escapes never grow,
         * whitespace goes. Give the check room anyway, the caps are not its subject. */
        varlink_framer_init(&f, MAX(max_size, n), max_depth);
        check(varlink_framer_feed(&f, wire, n) == 0);
        check(varlink_framer_next(&f, &back) == 1);
        check(!varlink_framer_has_pending(&f));
        varlink_framer_done(&f);

        *ret_wire = wire;
        *ret_size = n;
        return back;
}

static void message_check(struct json_object *msg, size_t len, size_t max_size, int max_depth) {
        struct json_object *back, *again;
        char *wire, *wire2;
        size_t n, n2;
        VarlinkCall call;
        VarlinkReply reply;
        int r;

        check(json_object_is_type(msg, json_type_object));

        /* Wire form: at most as long as what came in, parses back, and is a fixed point. */
        back = reparse(msg, max_size, max_depth, &wire, &n);
        check(n <= len + 1);
        again = reparse(back, max_size, max_depth, &wire2, &n2);
        check(n == n2 && memcmp(wire, wire2, n) == 0);
        free(wire2);
        json_object_put(again);
        json_object_put(back);
        free(wire);

        r = varlink_call_parse(msg, &call);
        check(r == 0 || r == -EBADMSG);
        if (r == 0) {
                struct json_object *c, *c2;
                VarlinkCall call2;

                check(varlink_method_name_is_valid(call.method));
                check(json_object_is_type(call.parameters, json_type_object));
                check(!(call.oneway && (call.more || call.upgrade)));

                /* Rebuilt from its parts, the call survives the wire unchanged. */
                c = varlink_call_new(call.method, json_object_get(call.parameters), call.more, call.oneway);
                check(c);
                c2 = reparse(c, max_size, max_depth + 1, &wire, &n);
                check(varlink_call_parse(c2, &call2) == 0);
                check(streq(call.method, call2.method));
                check(call.more == call2.more && call.oneway == call2.oneway && !call2.upgrade);
                check(json_object_equal(call.parameters, call2.parameters));
                json_object_put(c2);
                json_object_put(c);
                free(wire);
        }

        r = varlink_reply_parse(msg, &reply);
        check(r == 0 || r == -EBADMSG);
        if (r == 0) {
                check(!reply.error || varlink_method_name_is_valid(reply.error));
                check(json_object_is_type(reply.parameters, json_type_object));
                check(!(reply.error && reply.continues));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *sizes, *p, *end;
        size_t n_sizes, max_size, i = 0;
        int max_depth;
        VarlinkFramer f;
        bool failed = false;

        if (size < 1)
                return 0;

        max_size = size_caps[data[0] & 3];
        max_depth = depth_caps[(data[0] >> 2) & 3];
        n_sizes = (data[0] >> 4) + 1;
        if (size < 1 + n_sizes)
                return 0;
        sizes = data + 1;
        p = data + 1 + n_sizes;
        end = data + size;

        varlink_framer_init(&f, max_size, max_depth);
        while (p < end && !failed) {
                /* Read sizes 1..256, or all the rest for a size byte of 0xff. */
                size_t chunk = sizes[i++ % n_sizes];
                int r;

                chunk = chunk == 0xff ? (size_t) (end - p) : MIN(chunk + 1, (size_t) (end - p));

                r = varlink_framer_feed(&f, p, chunk);
                check(r == 0 || r == -EMSGSIZE);
                if (r < 0)
                        break;
                p += chunk;
                framer_check(&f);

                for (;;) {
                        struct json_object *msg = NULL;
                        size_t before = f.start;

                        r = varlink_framer_next(&f, &msg);
                        framer_check(&f);
                        if (r == 0) {
                                check(!msg);
                                break;
                        }
                        if (r < 0) {
                                check(r == -EBADMSG || r == -ELOOP || r == -EMSGSIZE);
                                check(!msg);
                                failed = true;
                                break;
                        }
                        check(r == 1 && msg);
                        check(f.start - before <= max_size);
                        message_check(msg, f.start - before - 1, max_size, max_depth);
                        json_object_put(msg);
                }
        }

        /* With everything taken, an unterminated rest is exactly what finish() reports. */
        if (p == end && !failed)
                check((varlink_framer_finish(&f) < 0) == varlink_framer_has_pending(&f));

        varlink_framer_done(&f);
        return 0;
}
