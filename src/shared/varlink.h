/* Varlink wire codec (varlink.org): NUL-terminated JSON messages, calls, replies, errors.
 * Pure code on json-c: framing of a byte stream and building/parsing messages, no I/O. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

#define VARLINK_MESSAGE_SIZE_MAX_DEFAULT (64u * 1024u)
#define VARLINK_DEPTH_MAX_DEFAULT 32

/* Standard errors of org.varlink.service. */
#define VARLINK_ERROR_INTERFACE_NOT_FOUND "org.varlink.service.InterfaceNotFound"
#define VARLINK_ERROR_METHOD_NOT_FOUND "org.varlink.service.MethodNotFound"
#define VARLINK_ERROR_METHOD_NOT_IMPLEMENTED "org.varlink.service.MethodNotImplemented"
#define VARLINK_ERROR_INVALID_PARAMETER "org.varlink.service.InvalidParameter"
#define VARLINK_ERROR_PERMISSION_DENIED "org.varlink.service.PermissionDenied"
#define VARLINK_ERROR_EXPECTED_MORE "org.varlink.service.ExpectedMore"

/* Splits a byte stream into messages. Bytes are appended with varlink_framer_feed() and
 * complete messages taken with varlink_framer_next(); a message larger than max_size
 * (counting its NUL) is refused as soon as that is known, without buffering it. */
typedef struct VarlinkFramer {
        char *buf;
        size_t size;      /* bytes held */
        size_t allocated;
        size_t start;     /* first byte not yet returned as part of a message */
        size_t scanned;   /* bytes from start already known to hold no NUL */
        size_t tail;      /* offset where the last, unterminated message begins (after the last NUL) */
        size_t max_size;
        int max_depth;
} VarlinkFramer;

void varlink_framer_init(VarlinkFramer *f, size_t max_size, int max_depth);
void varlink_framer_done(VarlinkFramer *f);

/* -EMSGSIZE when the pending, unterminated message now exceeds max_size; -ENOMEM. */
int varlink_framer_feed(VarlinkFramer *f, const void *data, size_t n);

/* 1 and *ret set (a JSON object, owned by the caller): a message was taken.
 * 0: no complete message buffered. Errors, after which the stream is unusable:
 * -EBADMSG not JSON, not an object, or bytes after the JSON value before the NUL;
 * -ELOOP objects and arrays nested deeper than max_depth ({} is depth 1, {"a":[]} 2);
 * -EMSGSIZE message too large.
 * "Not JSON" is strict RFC 8259 plus valid UTF-8: json-c's extensions (single quotes,
 * NaN, Infinity, "1."), raw control characters in strings and the escape \u0000 (which
 * C consumers would silently truncate at) are refused too. */
int varlink_framer_next(VarlinkFramer *f, struct json_object **ret);

/* At end of stream: -EBADMSG if an unterminated message is pending (missing NUL), else 0. */
int varlink_framer_finish(const VarlinkFramer *f);
bool varlink_framer_has_pending(const VarlinkFramer *f);

typedef struct VarlinkCall {
        const char *method;             /* "interface.Method", borrowed from the message */
        struct json_object *parameters; /* borrowed; an empty object when absent */
        bool oneway;
        bool more;
        bool upgrade;
} VarlinkCall;

/* Validates a call: "method" a string of the form reverse.domain.Method, "parameters"
 * absent or an object, flags booleans, no other keys. -EBADMSG otherwise. The returned
 * pointers borrow from msg (parameters may be a shared empty object owned by msg).
 * JSON null counts as absent (the spec types these ?object/?bool); "oneway" together with
 * "more" or "upgrade" is refused, as a call without a reply cannot ask for those. */
int varlink_call_parse(struct json_object *msg, VarlinkCall *ret);

typedef struct VarlinkReply {
        const char *error;              /* NULL for a successful reply */
        struct json_object *parameters; /* borrowed, never NULL */
        bool continues;
} VarlinkReply;

/* Validates a reply: "error" absent/null or a qualified name as for methods, "parameters"
 * absent/null or an object, "continues" a boolean and not set on an error, no other keys.
 * -EBADMSG otherwise. Borrows from msg like varlink_call_parse(). */
int varlink_reply_parse(struct json_object *msg, VarlinkReply *ret);

bool varlink_interface_name_is_valid(const char *s);
bool varlink_method_name_is_valid(const char *s); /* "io.alknet.Manager.ListProfiles" */

/* Builders; they take ownership of parameters (which may be NULL). */
struct json_object *varlink_call_new(const char *method, struct json_object *parameters, bool more, bool oneway);
struct json_object *varlink_reply_new(struct json_object *parameters, bool continues);
struct json_object *varlink_error_new(const char *error, struct json_object *parameters);

/* The wire form: compact JSON followed by one NUL. *ret_size counts the NUL. */
int varlink_serialize(struct json_object *msg, char **ret, size_t *ret_size);
