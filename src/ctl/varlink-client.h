/* A small blocking Varlink client for alknetctl: one connection to a unix socket, calls
 * answered in order, replies read with a deadline. Framing and messages come from varlink.h. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

/* No deadline: wait for a reply as long as it takes (for streams such as Monitor). */
#define VARLINK_CLIENT_TIMEOUT_INFINITY UINT64_MAX
#define VARLINK_CLIENT_TIMEOUT_DEFAULT_USEC (30 * USEC_PER_SEC)
/* Replies are trusted more than requests, but a runaway daemon must not eat our memory. */
#define VARLINK_CLIENT_MESSAGE_SIZE_MAX (16u * 1024u * 1024u)

typedef struct VarlinkClient VarlinkClient;

/* Connects to the socket at path. Fails with the errno of socket()/connect() ("cannot
 * reach": -ENOENT, -ECONNREFUSED, -EACCES, ...), -ENAMETOOLONG for a path that does not
 * fit a sockaddr_un, -ETIMEDOUT when the listen backlog stayed full past the timeout. */
int varlink_client_connect(const char *path, uint64_t timeout_usec, VarlinkClient **ret);
VarlinkClient *varlink_client_free(VarlinkClient *c);
DEFINE_POINTER_CLEANUP_FUNC(VarlinkClient, varlink_client_free);

/* The timeout applies to each wait for the peer: sending, and every single reply. */
void varlink_client_set_timeout(VarlinkClient *c, uint64_t timeout_usec);

/* Called for each reply of a call. error is NULL for a successful reply, else the error
 * name; parameters are borrowed and never NULL. A negative return ends the call with it. */
typedef int (*VarlinkReplyHandler)(const char *error, struct json_object *parameters, bool continues, void *userdata);

/* Sends a call (taking ownership of parameters, which may be NULL) and hands each reply to
 * handler until one comes with continues=false or is an error. With more=false exactly one
 * reply is read. Errors of the transport and protocol, after which the connection is
 * unusable: -ETIMEDOUT no reply in time, -ECONNRESET the peer closed the connection
 * (also -EPIPE), -EBADMSG a reply that is not a valid Varlink reply, -EMSGSIZE a reply
 * larger than VARLINK_CLIENT_MESSAGE_SIZE_MAX, -EPROTO continues=true to a call without
 * more; else the errno of send()/recv(), or the handler's negative return. */
int varlink_client_call_more(
                VarlinkClient *c,
                const char *method,
                struct json_object *parameters,
                bool more,
                VarlinkReplyHandler handler,
                void *userdata);

/* A single call and its single reply: 0 for a successful reply, 1 for an error reply, errors
 * as varlink_client_call_more(). On return >= 0 *ret_parameters holds a reference the caller
 * puts, and *ret_error is NULL (0) or the error name (1), which the caller frees. */
int varlink_client_call(
                VarlinkClient *c,
                const char *method,
                struct json_object *parameters,
                struct json_object **ret_parameters,
                char **ret_error);
