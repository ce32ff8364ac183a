/* The Varlink server on the control socket: connections, framing, limits, peer
 * credentials, dispatch to method tables, and org.varlink.service. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "macro.h"

typedef struct ControlServer ControlServer;
typedef struct ControlConnection ControlConnection;

/* Who is on the other end, from SO_PEERCRED and SO_PEERGROUPS at accept time. */
typedef struct ControlPeer {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        gid_t *groups;
        size_t n_groups;
} ControlPeer;

/* A handler answers with exactly one control_reply()/control_reply_error() (after any
 * number of control_reply_more() when the call asked for "more"), now or later. A negative
 * return without a reply sends org.varlink.service.InvalidParameter for -EINVAL/-EBADMSG
 * and closes the connection otherwise. */
typedef int (*ControlMethodHandler)(ControlConnection *c, struct json_object *parameters, void *userdata);

typedef struct ControlMethod {
        const char *name; /* "ListProfiles" */
        ControlMethodHandler handler;
        bool privileged; /* needs control_server_set_authorizer()'s approval */
} ControlMethod;

typedef struct ControlInterface {
        const char *name;        /* "io.alknet.Manager" */
        const char *description; /* the IDL text, served verbatim */
        const char *permission_denied_error;
        const ControlMethod *methods;
        size_t n_methods;
} ControlInterface;

typedef struct ControlLimits {
        unsigned max_connections;
        size_t max_message_size;
        int max_depth;
        size_t max_output; /* stop reading a peer while this much of our output is unread */
} ControlLimits;

#define CONTROL_MAX_DEPTH_DEFAULT 32
#define CONTROL_MAX_OUTPUT_DEFAULT (1024u * 1024u)
#define CONTROL_LISTEN_BACKLOG 128

typedef bool (*ControlAuthorizer)(const ControlPeer *peer, void *userdata);

int control_server_new(sd_event *event, const ControlLimits *limits, ControlServer **ret);
ControlServer *control_server_free(ControlServer *s);
DEFINE_POINTER_CLEANUP_FUNC(ControlServer, control_server_free);

/* Applies new limits (after a reload); the message size applies to new connections. */
void control_server_set_limits(ControlServer *s, const ControlLimits *limits);
void control_server_set_authorizer(ControlServer *s, ControlAuthorizer a, void *userdata);
/* The interface struct must outlive the server. */
int control_server_add_interface(ControlServer *s, const ControlInterface *iface, void *userdata);

/* Takes a listening socket (from socket activation) or binds path with mode. */
int control_server_listen_fd(ControlServer *s, int fd);
int control_server_listen_path(ControlServer *s, const char *path, mode_t mode);
/* Serves an already connected socket (tests use socketpairs); takes ownership of fd. */
int control_server_add_connection(ControlServer *s, int fd, ControlConnection **ret);

size_t control_server_n_connections(const ControlServer *s);

const ControlPeer *control_connection_peer(const ControlConnection *c);

/* Called once when the connection goes away (peer hung up, error, server freed), so that
 * whoever holds it for a later reply (Up waiting, Monitor) lets go. */
typedef void (*ControlCloseCallback)(ControlConnection *c, void *userdata);
void control_connection_set_close_callback(ControlConnection *c, ControlCloseCallback cb, void *userdata);
bool control_connection_more(const ControlConnection *c);
int control_reply(ControlConnection *c, struct json_object *parameters);
/* A reply with "continues": true; for calls without "more" it is the final reply. Outside
 * a handler, a negative return means the connection is gone (its close callback ran). */
int control_reply_more(ControlConnection *c, struct json_object *parameters);
int control_reply_error(ControlConnection *c, const char *error, struct json_object *parameters);
/* Replies org.varlink.service.InvalidParameter {"parameter": name}. */
int control_reply_invalid_parameter(ControlConnection *c, const char *name);
