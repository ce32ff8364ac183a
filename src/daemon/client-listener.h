/* The local listening sockets of one client profile: its SOCKS5 Listen= addresses and its
 * Local= forwards. Accepted connections go to a SocksServer or straight to the opener. */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#include "channel-opener.h"
#include "macro.h"
#include "profile.h"

/* SOCKS connections still held by the SOCKS server: in the handshake, waiting for the
 * channel, or lingering briefly after an error reply. Beyond this, new SOCKS connections
 * are closed at once. Sized for bursts (a browser opening a page, 200 parallel fetches)
 * while still bounding what idle half-open clients can hold: each costs < 1 KiB. */
#define CLIENT_LISTENERS_HANDSHAKES_MAX_DEFAULT 1024u
/* Local= connections waiting for their channel; beyond this, new ones are closed at once. */
#define CLIENT_LISTENERS_PENDING_OPENS_MAX_DEFAULT 1024u
/* Connections taken per wakeup of one listener, so one busy port cannot starve the loop. */
#define CLIENT_LISTENERS_ACCEPT_BATCH 64u
/* A burst of connects beyond the backlog loses SYNs and costs each a 1 s retransmit. */
#define CLIENT_LISTENERS_BACKLOG 1024
/* Unix socket listeners: owner and group may connect, others may not. Applications that
 * use a forward socket join the daemon's group; the directory may narrow it further. */
#define CLIENT_LISTENERS_SOCKET_MODE 0660
/* The originator sent in the channel open for a client on a unix socket, which has no
 * address: what OpenSSH sends in that case. */
#define CLIENT_LISTENERS_UNIX_ORIG_HOST "127.0.0.1"
#define CLIENT_LISTENERS_UNIX_ORIG_PORT 65535
/* RFC 1929 lengths. The PasswordFile= holds the password; one trailing "\n" or "\r\n" is
 * not part of it. */
#define CLIENT_LISTENERS_CREDENTIAL_MAX 255u

typedef struct ClientListeners ClientListeners;

typedef struct ClientListenersLimits {
        unsigned max_handshakes;         /* 0: CLIENT_LISTENERS_HANDSHAKES_MAX_DEFAULT */
        unsigned max_pending_opens;      /* 0: CLIENT_LISTENERS_PENDING_OPENS_MAX_DEFAULT */
        uint64_t handshake_timeout_usec; /* 0: SOCKS_SERVER_HANDSHAKE_TIMEOUT_USEC_DEFAULT */
} ClientListenersLimits;

/* Reads the SOCKS PasswordFile= (if any) and binds every listener of p: the SOCKS
 * addresses in effect (profile_socks_listen()) and every Local= listen address. IPv6
 * listeners are IPV6_V6ONLY; a stale unix socket file is replaced, any other file at the
 * path fails with -EEXIST. Either all listeners are bound or none is (-errno); then, if
 * error_what is not NULL, *error_what is set to a newly allocated description of what
 * failed, for the caller's log line ("SOCKS listener 127.0.0.1:1080", "Local= listener
 * /run/x.sock", "PasswordFile= /etc/alknet/pw"; never a forward target), or NULL.
 * Nothing of p is kept: the profile may be freed afterwards. opener is copied; its ctx
 * must outlive the set. limits may be NULL. */
int client_listeners_new(
                sd_event *event,
                const Profile *p,
                const ChannelOpener *opener,
                const ClientListenersLimits *limits,
                ClientListeners **ret,
                char **error_what);

/* Closes the listeners and every connection not yet handed to the opener (cancelling the
 * opens in progress), unlinks the unix socket files it created, wipes the password. */
ClientListeners *client_listeners_free(ClientListeners *l);
DEFINE_POINTER_CLEANUP_FUNC(ClientListeners, client_listeners_free);

/* The bound addresses as text, in profile order, NULL-terminated, never NULL: IP
 * listeners as "127.0.0.1:1080" / "[::1]:1080" with the port actually bound, unix
 * listeners as their path. Valid until the set is freed. */
char *const *client_listeners_socks_addresses(const ClientListeners *l);
char *const *client_listeners_local_addresses(const ClientListeners *l);

/* Connections counted against the two caps above. */
unsigned client_listeners_n_handshakes(const ClientListeners *l);
unsigned client_listeners_n_pending_opens(const ClientListeners *l);
