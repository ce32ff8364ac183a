/* The server role: a forwarding-only SSH server (direct-tcpip and tcpip-forward; no
 * shell, exec or subsystems), on TCP or inside TLS, with per-source and global limits. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "server-config.h"

typedef struct Server Server;

int server_new(sd_event *e, const ServerConfig *c, const char *state_dir, Server **ret);
Server *server_free(Server *s);
DEFINE_POINTER_CLEANUP_FUNC(Server, server_free);

/* A listening socket from systemd (socket activation) for the given transport. */
int server_add_listen_fd(Server *s, int fd, ServerTransport transport);
/* Loads keys and binds the Listen= sockets of the configuration, unless systemd handed
 * the listeners over (then Listen= only says which of them speak TLS). */
int server_start(Server *s, bool listeners_from_systemd);
/* New configuration: keys, certificates and authorized keys are read again; limits and
 * policies apply to new sessions. Listeners are kept (change them with a restart). */
int server_reload(Server *s, const ServerConfig *c);
/* Stop accepting; sessions keep running. */
void server_stop_accepting(Server *s);
size_t server_n_channels(const Server *s);

int server_status_json(const Server *s, struct json_object **ret);
