/* One SOCKS5 server connection (RFC 1928, RFC 1929): the handshake on an accepted local
 * socket up to a CONNECT, the channel open through a ChannelOpener, and the reply. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "channel-opener.h"
#include "macro.h"

/* How long a client has, from accept, to finish greeting, authentication and request.
 * The wait for the channel that follows is the opener's business (its connect deadline). */
#define SOCKS_SERVER_HANDSHAKE_TIMEOUT_USEC_DEFAULT (10 * USEC_PER_SEC)
/* After an error reply we stop sending and read (and drop) what the client still sends
 * until it closes, for at most this long: closing a socket with unread input resets the
 * connection, and a reset can destroy the reply before the client has read it. */
#define SOCKS_SERVER_LINGER_USEC (1 * USEC_PER_SEC)

typedef struct SocksServer SocksServer;

typedef struct SocksServerConfig {
        /* Both set: RFC 1929 username/password is required. Both NULL: no authentication.
         * Borrowed: they must outlive the server. */
        const char *username;
        const char *password;
        /* Originator of the channel (the client's address as text, port). Copied. */
        const char *orig_host;
        uint16_t orig_port;
        uint64_t handshake_timeout_usec; /* 0: SOCKS_SERVER_HANDSHAKE_TIMEOUT_USEC_DEFAULT */
} SocksServerConfig;

/* Called exactly once, when the server is finished with its connection: the socket went
 * to the opener (success) or was closed. It is the last thing the server does; the owner
 * must free it (socks_server_free(), in the callback or later). */
typedef void (*SocksServerDoneCallback)(SocksServer *s, void *userdata);

/* Serves fd (a connected, non-blocking stream socket; ownership passes to the server,
 * also on failure). opener is borrowed and must outlive the server. Never calls done
 * from inside this function. */
int socks_server_new(
                sd_event *event,
                int fd,
                const SocksServerConfig *config,
                const ChannelOpener *opener,
                SocksServerDoneCallback done,
                void *userdata,
                SocksServer **ret);

/* Closes the socket unless it was handed on, cancels an open in progress, wipes the
 * credentials the client sent. Never calls done. */
SocksServer *socks_server_free(SocksServer *s);
DEFINE_POINTER_CLEANUP_FUNC(SocksServer, socks_server_free);

/* True while the request is complete and the server waits for the opener's answer. */
bool socks_server_is_opening(const SocksServer *s);
